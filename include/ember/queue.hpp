// Queue microservices (shared/spec/slingshot.md): consume u64 requests from
// RabbitMQ, run `process` with S3-backed files and a PostgreSQL connection,
// publish each result id to the queues its case routes to.
//
//   int main() {
//     ember::queue::Microservice svc("resize", "sys-map.example",
//         [](uint64_t request, const ReadFileFn& read_file, const WriteFileFn& write_file,
//            Database& db) -> ProcessResult {
//           std::string in = read_file("in", request).read_all();
//           write_file("out", request).write(in);
//           return {{request, true}};
//         });
//     return svc.start();  // until SIGTERM/SIGINT
//   }
//
// Configuration comes from the config service at `config_host` (no scheme:
// https): {host}/{name}, /rabbitmq, /db, /object-storage; bucket keys are
// resolved through {host}/{name}/{key} once each. Secrets are `pass` entries.
//
// Per delivery: the body must be a u64 in decimal ASCII; anything else is
// dead-lettered at once (never requeued). `process` runs on a worker thread
// (it may block). After it returns, files written are uploaded; only then is
// each result published (publisher confirms); only then is the delivery
// acked. When `process` throws, an upload or a publish fails, the request is
// re-queued with an attempt count and, after `max_attempts`, dead-lettered
// (`{name}.dead-letter` by default) with the error in its headers. Nothing
// is acked before its results are confirmed by the broker.
//
// Thread: `process` runs on several workers at once (`workers`), or on the
// broker's loop (`process_on_loop`); the ReadFileFn/WriteFileFn and Database
// it gets belong to that one call.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/queue_case.hpp"
#include "ember/queue_database.hpp"
#include "ember/small_vector.hpp"

namespace ember::queue {

// An S3 object being read (streamed: memory stays bounded whatever its size).
// Errors (connection lost, timeout) throw std::runtime_error naming the object.
class InputFile {
 public:
  virtual ~InputFile() = default;
  // Up to out.size() bytes; 0 at the end of the object.
  virtual size_t read(std::span<uint8_t> out) = 0;
  // The rest of the object.
  std::string read_all();
  virtual uint64_t size() const noexcept = 0;
};

// A local file staged for upload to s3://{bucket}/{id} after `process`.
class OutputFile {
 public:
  virtual ~OutputFile() = default;
  // Throws std::runtime_error when the disk refuses (full, closed).
  virtual void write(std::span<const uint8_t> data) = 0;
  void write(std::string_view text) {
    write({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  }
  virtual const std::string& path() const noexcept = 0;
};

// Both return a file owned by the current `process` call (valid until it
// returns). Calling write_file twice for one (key, id) returns the same file.
// They throw std::runtime_error when the key cannot be resolved or the
// object cannot be opened (the request then fails and is retried).
using ReadFileFn = std::function<InputFile&(std::string_view key, uint64_t id)>;
using WriteFileFn = std::function<OutputFile&(std::string_view key, uint64_t id)>;
// Up to four results stay inside the value: no allocation per request.
using ProcessResult = SmallVector<std::pair<uint64_t, Case>, 4>;
using ProcessFn = std::function<ProcessResult(uint64_t request, const ReadFileFn& read_file,
                                              const WriteFileFn& write_file, Database& connection)>;

struct MicroserviceOptions {
  // Worker threads running `process` (0: the CPUs this process may use).
  unsigned workers = 0;
  // Run `process` on the broker connection's loop thread instead: no thread
  // hand-off per message (less CPU per message, lower latency at small
  // prefetch), but one request at a time, and the broker connection waits
  // while `process` runs (keep each call well under the 30 s heartbeat).
  // S3 and config-service traffic move to a second loop, so read_file and
  // write_file work as usual. `workers` is then ignored.
  bool process_on_loop = false;
  // Deliveries in flight (basic.qos); 0: twice the workers.
  uint16_t prefetch = 0;
  // Declare the inbound/outbound queues durable and publish results as
  // persistent, so both survive a broker restart (the reference declares
  // them non-durable; keep false to share queues with it).
  bool durable_queues = false;
  // Publisher confirms before the inbound ack (see the file comment). Off:
  // the reference runtime's behaviour — results are acked as soon as they
  // are written to the broker connection, in the same write as the inbound
  // ack, which saves a broker round trip per message (prefetch 1 relays run
  // about twice as fast) but loses the results of requests in flight if the
  // broker dies or the connection drops with them unsent.
  bool publisher_confirms = true;
  // Attempts of one request before it is dead-lettered.
  unsigned max_attempts = 5;
  // Where invalid and exhausted requests go; empty: "{name}.dead-letter".
  std::string dead_letter_queue;
  // Per-request directories for staged files; empty: $TMPDIR or /tmp.
  std::string temp_dir;
  // After SIGTERM/SIGINT (or stop()), work in flight gets this long.
  std::chrono::milliseconds shutdown_timeout{30'000};
  // Open each worker's PostgreSQL connection on its first use instead of
  // before its first request: a service that rarely queries holds no
  // connection until it does, and a binding with its own driver (the Python
  // module) none at all.
  bool lazy_database = false;
  // The `pass` program (tests point it elsewhere).
  std::string pass_program = "pass";
  // "host:port" for a Prometheus endpoint (GET /metrics); empty: none. Port
  // 0 picks a free one (see Microservice::metrics_port()).
  std::string metrics_listen;
};

struct MicroserviceStats {
  uint64_t received = 0;       // deliveries from the inbound queue
  uint64_t processed = 0;      // acked after every result was confirmed
  uint64_t failed = 0;         // attempts that failed (process, upload, publish)
  uint64_t retried = 0;        // re-queued with the next attempt number
  uint64_t dead_lettered = 0;  // invalid bodies and exhausted requests
  uint64_t unrouted = 0;       // results whose case has no route
  uint64_t published = 0;      // result messages confirmed (written, without confirms)
};

class Microservice {
 public:
  Microservice(std::string name, std::string config_host, ProcessFn process,
               MicroserviceOptions options = {});
  ~Microservice();
  Microservice(const Microservice&) = delete;
  Microservice& operator=(const Microservice&) = delete;

  // Fetches the configuration, connects, and serves until SIGTERM/SIGINT or
  // stop(). Returns 0 after a clean stop, 1 when start-up failed (the log
  // says what and what to do) or the shutdown timed out.
  int start();
  // Thread-safe: finish the work in flight and return from start().
  void stop();
  // Thread-safe snapshot.
  MicroserviceStats stats() const;
  // The metrics endpoint's port once start() has bound it; 0 before, or
  // without MicroserviceOptions::metrics_listen.
  uint16_t metrics_port() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::queue
