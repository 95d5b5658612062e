// The executor's side of the Flame instance protocol, on the reactor: launch
// a service the way Flame's executor does (InstanceProcess) and call it over
// its Unix socket (InstanceChannel, a grpc::Channel configured like the
// executor's tonic client: 16 KiB frames, 2 MiB stream window, 4 MiB largest
// response, no grpc-timeout). `ember flame-run` and `ember flame-local` use
// both; see ../shared/spec/flame.md §1 for the facts they follow.
//
// Thread: the loop's thread, for everything. Callbacks never run after the
// object that took them is destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/expected.hpp"
#include "ember/reactor.hpp"
#include "handlers/flame/wire.hpp"
#include "protocols/grpc/channel.hpp"
#include "protocols/grpc/status.hpp"

namespace ember::flame {

// The environment a service starts with: ours, FLAME_INSTANCE_ENDPOINT set to
// `socket_path`, and `extra` on top (overriding ours).
std::vector<std::string> instance_environment(
    const std::string& socket_path, const std::vector<std::pair<std::string, std::string>>& extra);

// "exited with status 3", "was killed by signal 9 (SIGKILL)" for a shell-style
// status (128+N for signal N).
std::string describe_exit(int status);

struct LaunchSpec {
  std::vector<std::string> argv;                         // program (PATH searched) and arguments
  std::vector<std::pair<std::string, std::string>> env;  // added to ours
  std::string working_directory;                         // empty: ours
  std::string socket_path;                               // FLAME_INSTANCE_ENDPOINT (≤ 107 bytes)
  std::chrono::milliseconds startup_timeout{10'000};     // for the socket to appear
  bool stdout_to_stderr = true;                          // keep our stdout clean
};

// A service process in its own process group (setsid), started with
// uv_spawn on the loop. `ready` is called once: OK when the socket file
// accepts connections, or an error (exited first, timed out). After a
// successful start `exited` is called once when the process ends, with its
// shell-style status; a process that ends before its socket appears is
// reported through `ready` alone.
class InstanceProcess {
 public:
  using ReadyFn = std::function<void(Result<void>)>;
  using ExitFn = std::function<void(int status)>;

  // Errors that are known at once (no program, path too long, spawn failed)
  // are returned; nothing is called back then.
  static Result<std::unique_ptr<InstanceProcess>> launch(Loop& loop, LaunchSpec spec, ReadyFn ready,
                                                         ExitFn exited);
  // A process still running is killed (SIGKILL to its group); its handle is
  // closed when it has exited.
  ~InstanceProcess();
  InstanceProcess(const InstanceProcess&) = delete;
  InstanceProcess& operator=(const InstanceProcess&) = delete;

  // SIGTERM to the process group, SIGKILL after `grace`. `exited` reports
  // the end.
  void terminate(std::chrono::milliseconds grace = std::chrono::milliseconds(10'000));
  pid_t pid() const noexcept;
  std::optional<int> exit_status() const noexcept;
  const std::string& socket_path() const noexcept { return spec_.socket_path; }

  struct Proc;

 private:
  InstanceProcess(Loop& loop, LaunchSpec spec) : loop_(loop), spec_(std::move(spec)) {}
  static void poll_socket(TimerEntry* t);
  static void kill_timer(TimerEntry* t);
  void on_exit(int status);
  void report_ready(Result<void> r);

  Loop& loop_;
  LaunchSpec spec_;
  Proc* proc_ = nullptr;
  ReadyFn ready_;
  ExitFn exited_;
  TimerEntry poll_;
  TimerEntry kill_;
  uint64_t startup_deadline_ = 0;
  std::optional<int> status_;
};

struct InstanceChannelOptions {
  uint32_t max_frame_size = 16 * 1024;
  uint32_t stream_window = 2u << 20;
  uint32_t connection_window = 5u << 20;
  size_t max_response_bytes = 4u << 20;
  size_t socket_send_buffer = 4u << 20;       // large requests go out in one write
  std::chrono::milliseconds call_timeout{0};  // 0: none, as the executor
};

// A Result reply of either edition (a wrapped one's attributes included).
using CallResult = wire::CallOutcome;
// A Result reply as a CallResult; malformed bytes are an INTERNAL status.
Expected<CallResult, grpc::Status> decode_call_result(const std::optional<Bytes>& message);

using wire::TaskOutcome;

// flame.v1.ApplicationContext, as the executor sends it with OnSessionEnter.
struct ApplicationInfo {
  std::string name;
  int shim = 0;  // Host
  std::optional<std::string> image, command, working_directory, url, installer;
};

// An asynchronous gRPC client of flame.v1.Instance on one connection (made
// by the first call). A lost connection fails the calls in flight with
// UNAVAILABLE and the reason.
class InstanceChannel {
 public:
  using ResultFn = std::function<void(Expected<CallResult, grpc::Status>)>;
  using TaskFn = std::function<void(Expected<TaskOutcome, grpc::Status>)>;

  InstanceChannel(Loop& loop, std::string socket_path, InstanceChannelOptions options = {});
  ~InstanceChannel();

  void enter(const std::string& session_id, const ApplicationInfo& app,
             const std::optional<Bytes>& common_data, ResultFn done);
  void invoke(std::string_view task_id, std::string_view session_id,
              const std::optional<Bytes>& input, TaskFn done);
  void leave(ResultFn done);
  size_t calls_in_flight() const noexcept { return channel_.calls_in_flight(); }

 private:
  InstanceChannelOptions options_;
  grpc::Channel channel_;
};

}  // namespace ember::flame
