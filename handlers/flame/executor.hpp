// A BLOCKING gRPC client of the Flame instance protocol, kept for one user:
// perf/bench_flame.cpp, which drives instance servers with it as a load
// generator (its spin_wait mode polls the socket without sleeping, so the
// client adds no wake-up latency to what the benchmark measures). Ember's
// own executor side (`ember flame-run`, `ember flame-local`) runs on the
// reactor instead: see handlers/flame/launcher.hpp.
//
// Configured like the executor's client (16 KiB frames, 2 MiB stream window,
// 4 MiB largest response).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/expected.hpp"
#include "handlers/flame/launcher.hpp"
#include "handlers/flame/wire.hpp"
#include "protocols/grpc/status.hpp"

namespace ember::flame {

struct InstanceClientOptions {
  uint32_t max_frame_size = 16 * 1024;
  uint32_t stream_window = 2u << 20;
  uint32_t connection_window = 5u << 20;
  size_t max_response_bytes = 4u << 20;
  // SO_SNDBUF of the connection (0: kernel default), so large requests go
  // out in one write.
  int socket_send_buffer = 4 << 20;
  // 0: block until the server answers.
  int io_timeout_ms = 0;
  // Wait for answers by polling the socket without sleeping (a load
  // generator's choice: no wake-up latency on the client side).
  bool spin_wait = false;
  // Sent as grpc-timeout when > 0 (the executor sends none).
  uint64_t call_timeout_ns = 0;
};

struct Completion {
  uint64_t tag;
  grpc::Status status;
  std::optional<Bytes> message;  // raw response message when status is OK
};

// A blocking gRPC client of flame.v1.Instance on one connection.
// Not thread-safe: one thread drives it.
class InstanceClient {
 public:
  static Result<std::unique_ptr<InstanceClient>> connect(const std::string& socket_path,
                                                         const InstanceClientOptions& options = {});
  ~InstanceClient();

  Expected<CallResult, grpc::Status> enter(const std::string& session_id,
                                           const std::string& application,
                                           const std::optional<Bytes>& common_data);
  Expected<TaskOutcome, grpc::Status> invoke(std::string_view task_id, std::string_view session_id,
                                             const std::optional<Bytes>& input);
  Expected<CallResult, grpc::Status> leave();
  // Any unary call with a raw request message (tests: unknown methods, bad bytes).
  Expected<std::optional<Bytes>, grpc::Status> call_raw(std::string_view path, Bytes request);

  // Pipelining: start calls, then collect completions.
  Result<void> start_task(uint64_t tag, std::string_view task_id, std::string_view session_id,
                          const std::optional<Bytes>& input);
  // Blocks until at least one call completes (or the transport fails);
  // appends completions to `out`.
  Result<void> wait(std::vector<Completion>& out);
  size_t in_flight() const noexcept;

  struct Impl;

 private:
  explicit InstanceClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// perf/bench_flame.cpp starts its services itself (setsid in the child) and
// takes their environment from here.
struct ServiceProcess {
  static std::vector<std::string> environment(
      const std::string& socket_path,
      const std::vector<std::pair<std::string, std::string>>& extra) {
    return instance_environment(socket_path, extra);
  }
};

}  // namespace ember::flame
