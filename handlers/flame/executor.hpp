// The executor's side of the Flame instance protocol, for `ember flame-run`,
// tests and benchmarks: launch a service binary the way Flame's executor
// does, and call it over its Unix socket with a gRPC client (nghttp2, client
// role) configured like the executor's (16 KiB frames, 2 MiB stream window,
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

// flame.v1.Result
struct CallResult {
  int32_t return_code = 0;
  std::optional<std::string> message;
};

using wire::TaskOutcome;

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

// A service process started as Flame's executor starts one.
class ServiceProcess {
 public:
  struct Options {
    std::vector<std::string> argv;                         // program and arguments
    std::vector<std::pair<std::string, std::string>> env;  // added to ours
    std::string socket_dir;  // empty: a new temp dir (removed afterwards)
    std::chrono::milliseconds startup_timeout{10'000};
    bool stdout_to_stderr = true;  // keep our stdout for task outputs
  };

  // Starts the process in its own process group and waits for its socket.
  static Result<std::unique_ptr<ServiceProcess>> launch(const Options& options);
  // The environment a service starts with: ours, FLAME_INSTANCE_ENDPOINT set
  // to `socket_path`, and `extra` on top (overriding ours).
  static std::vector<std::string> environment(
      const std::string& socket_path,
      const std::vector<std::pair<std::string, std::string>>& extra);
  ~ServiceProcess();

  const std::string& socket_path() const noexcept { return socket_path_; }
  pid_t pid() const noexcept { return pid_; }
  // SIGTERM to the process group, then wait up to `grace` (then SIGKILL).
  // Returns the exit status as the shell shows it (128+N for a signal).
  int terminate(std::chrono::milliseconds grace = std::chrono::milliseconds(10'000));
  // Exit status if it has exited already.
  std::optional<int> poll_exit();

 private:
  ServiceProcess() = default;
  pid_t pid_ = -1;
  std::string socket_path_;
  std::string temp_dir_;
  std::optional<int> status_;
};

}  // namespace ember::flame
