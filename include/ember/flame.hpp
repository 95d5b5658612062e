// Flame instance server: implement FlameService, call run().
//
//   struct Echo : ember::flame::FlameService {
//     ember::flame::TaskResult on_task_invoke(ember::flame::TaskContext ctx) override {
//       return ctx.input;  // shares the receive buffer: no copy either way
//     }
//   };
//   int main() { Echo echo; return ember::flame::run(echo); }
//
// Flame's executor starts the binary with FLAME_INSTANCE_ENDPOINT=<socket
// path>; run() serves flame.v1.Instance (gRPC over h2c) on that Unix socket
// until SIGTERM, then finishes the task in flight, answers it and returns 0.
//
// Threading: handlers run on Ember's loop thread, one call at a time (the
// executor sends tasks strictly one at a time; other clients may pipeline,
// and calls are still serialised). A handler that does I/O should use
// AsyncFlameService and complete from its own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/expected.hpp"

namespace ember::flame {

class FlameError {
 public:
  enum class Kind { NotFound, Internal, Network, InvalidConfig };

  FlameError(Kind kind, std::string message) : kind_(kind), message_(std::move(message)) {}
  static FlameError not_found(std::string what) { return {Kind::NotFound, std::move(what)}; }
  static FlameError internal(std::string msg) { return {Kind::Internal, std::move(msg)}; }
  static FlameError network(std::string msg) { return {Kind::Network, std::move(msg)}; }
  static FlameError invalid_config(std::string msg) {
    return {Kind::InvalidConfig, std::move(msg)};
  }

  Kind kind() const noexcept { return kind_; }
  const std::string& message() const noexcept { return message_; }
  // The text Flame shows for the failed task, as the reference SDK formats
  // it: "'<what>' not found" for NotFound, the message itself otherwise.
  std::string to_string() const;

 private:
  Kind kind_;
  std::string message_;
};

std::string_view kind_name(FlameError::Kind kind) noexcept;

using TaskInput = Bytes;
using TaskOutput = Bytes;
using CommonData = Bytes;

enum class Shim { Host = 0, Wasm = 1, Cri = 3 };  // Cri: Flame main only

struct ApplicationContext {
  std::string name;
  Shim shim = Shim::Host;
  std::optional<std::string> image;
  std::optional<std::string> command;
  std::optional<std::string> working_directory;
  std::optional<std::string> url;
  std::optional<std::string> installer;
  std::string workspace;  // Flame main's wire only; empty otherwise
};

struct SessionContext {
  std::string session_id;
  ApplicationContext application;
  std::optional<CommonData> common_data;
  // Flame main's wire only (empty under v0.6.0): session-scoped service
  // credentials, and the workspace the session belongs to.
  std::map<std::string, std::string> tokens;
  std::string workspace;
};

// One task. The views and `input` point into the buffer the request arrived
// in; they stay valid as long as this object (or a copy of `input`) lives.
// Returning `input` (or a slice of it) as the output sends those same bytes
// back without a copy.
struct TaskContext {
  std::string_view task_id;
  std::string_view session_id;
  std::optional<TaskInput> input;  // absent vs empty are distinct on the wire
  std::string_view workspace;      // Flame main's wire only

  TaskContext() = default;
  // Used by Ember's decoder: `request` backs the views.
  explicit TaskContext(Bytes request) : request_(std::move(request)) {}

 private:
  Bytes request_;
};

// Ok(output) / Ok(nullopt) (no output) / FlameError (task failed).
using TaskResult = Expected<std::optional<TaskOutput>, FlameError>;
using Status = Expected<void, FlameError>;

namespace detail {
struct PendingTask;
}

// The answer to one async task. Call it once, from any thread. Dropping it
// unanswered fails the task with an Internal error that says so.
class TaskCompletion {
 public:
  explicit TaskCompletion(detail::PendingTask* pending) noexcept : pending_(pending) {}
  TaskCompletion(TaskCompletion&& other) noexcept : pending_(other.pending_) {
    other.pending_ = nullptr;
  }
  TaskCompletion& operator=(TaskCompletion&& other) noexcept;
  TaskCompletion(const TaskCompletion&) = delete;
  TaskCompletion& operator=(const TaskCompletion&) = delete;
  ~TaskCompletion();

  void operator()(TaskResult result);
  // True until called.
  explicit operator bool() const noexcept { return pending_ != nullptr; }

 private:
  detail::PendingTask* pending_;
};

// Executor attributes (Flame main's wire): volatile, executor-local data a
// service advertises for affinity routing, e.g. the cache keys it holds.
// What is published rides on the next successful OnSessionEnter reply or the
// next OnTaskInvoke reply, which takes it; the session manager adds it to the
// executor's set. Flame v0.6.0's replies cannot carry attributes: they wait
// until a reply can (see RunOptions::wire). Thread-safe.
class AttributePublisher {
 public:
  // flamepy's limits, on what waits for one reply.
  static constexpr size_t kMaxAttributes = 1024;
  static constexpr size_t kMaxAttributeBytes = 256;
  static constexpr size_t kMaxTotalBytes = 64u << 10;

  // Adds attributes (bytes) to what the next reply carries; one already
  // waiting is not added twice. All or nothing: when a limit would be passed
  // nothing is added and the error names the limit.
  Status publish(std::span<const std::string_view> attributes);
  Status publish(std::initializer_list<std::string_view> attributes) {
    return publish(std::span<const std::string_view>(attributes.begin(), attributes.size()));
  }
  Status publish(const std::vector<std::string>& attributes);

  // How many wait for a reply.
  size_t pending() const noexcept { return count_.load(std::memory_order_relaxed); }
  // Takes everything waiting (Ember calls this as a reply leaves).
  std::vector<std::string> take();

 private:
  mutable std::mutex mu_;
  std::unordered_set<std::string> pending_;  // a set: the executor unions them
  size_t bytes_ = 0;
  std::atomic<size_t> count_{0};
};

// Synchronous service: each call runs on the loop thread and answers by
// returning. Exceptions thrown by a handler fail that call (Internal).
class FlameService {
 public:
  virtual ~FlameService() = default;
  virtual Status on_session_enter(const SessionContext& ctx);
  virtual TaskResult on_task_invoke(TaskContext ctx) = 0;
  virtual Status on_session_leave();

  // Executor attributes for Flame's affinity routing (callable from any thread).
  AttributePublisher& publisher() noexcept { return publisher_; }

 private:
  AttributePublisher publisher_;
};

// Asynchronous service: on_task_invoke must not block; it hands the task to
// its own threads and calls `done` when the answer is ready. Several tasks may
// be in flight when a client pipelines them.
class AsyncFlameService {
 public:
  virtual ~AsyncFlameService() = default;
  virtual Status on_session_enter(const SessionContext& ctx);
  virtual void on_task_invoke(TaskContext ctx, TaskCompletion done) = 0;
  virtual Status on_session_leave();

  // Executor attributes for Flame's affinity routing (callable from any thread).
  AttributePublisher& publisher() noexcept { return publisher_; }

 private:
  AttributePublisher publisher_;
};

// Which edition of the instance wire to answer in (../shared/spec/flame.md).
enum class WireMode {
  // v0.6.0, Flame's latest release, unless a request carries fields only
  // Flame's main branch sends (session tokens, a workspace): from then on
  // the connection answers in the wrapped edition.
  automatic,
  v0_6_0,   // always v0.6.0's plain Result / TaskResult replies
  wrapped,  // always main's wrapped replies (they carry executor attributes)
};

// Knobs, each with an environment variable read by RunOptions::from_env().
struct RunOptions {
  // Unix socket to serve on.                         FLAME_INSTANCE_ENDPOINT
  std::string endpoint;
  // Largest request message accepted.                EMBER_MAX_MESSAGE_BYTES
  size_t max_message_bytes = 64u << 20;
  // Largest TaskResult sent back. Flame's executor (tonic) refuses responses
  // over 4 MiB; a bigger output fails the task with a message that says so.
  //                                                   EMBER_FLAME_MAX_OUTPUT_BYTES
  size_t max_output_bytes = 4u << 20;
  // Per request header block.                        EMBER_MAX_HEADER_BYTES
  size_t max_header_bytes = 64u << 10;
  // Largest HTTP/2 frame the executor may send us.   EMBER_MAX_FRAME_BYTES
  uint32_t max_frame_bytes = 1u << 20;
  // HTTP/2 receive windows: per stream, and for the connection (opened with a
  // WINDOW_UPDATE right after the preface).           EMBER_STREAM_WINDOW_BYTES
  uint32_t stream_window_bytes = 16u << 20;
  //                                                   EMBER_CONNECTION_WINDOW_BYTES
  uint32_t connection_window_bytes = 64u << 20;
  // Streams in flight per connection.                EMBER_MAX_STREAMS
  uint32_t max_concurrent_streams = 256;
  // Connections at once (the executor opens one).    EMBER_MAX_CONNECTIONS
  size_t max_connections = 64;
  // SO_SNDBUF of the executor's connection, so a large
  // output leaves in one write.                       EMBER_SOCKET_SEND_BUFFER
  size_t socket_send_buffer = 4u << 20;
  // Keep polling this long after each request before sleeping, so the next
  // one is picked up without a wake-up (lower latency, more CPU; 0: off).
  //                                                   EMBER_BUSY_POLL_US
  std::chrono::microseconds busy_poll{0};
  // After SIGTERM, in-flight tasks get this long.    EMBER_DRAIN_TIMEOUT_MS
  std::chrono::milliseconds drain_timeout{30'000};
  // Reply edition: auto, v0.6.0 or wrapped. An executor built from Flame's
  // main branch that sends neither tokens nor a workspace cannot be told
  // from v0.6.0's: set `wrapped` in the application's environments.
  //                                                   EMBER_FLAME_WIRE
  WireMode wire = WireMode::automatic;

  // Defaults overridden by the environment. Fails with a message naming the
  // variable when one is missing (FLAME_INSTANCE_ENDPOINT) or malformed.
  static Expected<RunOptions, std::string> from_env();
};

// Serve until SIGTERM/SIGINT. Returns the process exit code: 0 after a clean
// drain, 1 when the drain timed out, 2 when the configuration is unusable
// (the message is logged).
int run(FlameService& service);
int run(FlameService& service, const RunOptions& options);
int run(AsyncFlameService& service);
int run(AsyncFlameService& service, const RunOptions& options);

}  // namespace ember::flame
