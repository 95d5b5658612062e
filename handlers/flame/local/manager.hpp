// flame-local: a single-node flame.v1.Frontend (the session manager's client
// API) that runs each application's instances on this machine the way
// Flame's executor does (launcher.hpp), keeping its state in SQLite
// (store.hpp) so that a restart keeps applications, sessions and finished
// tasks.
//
// Scheduling, per open session in creation order: it wants
// max(min_instances, pending + running tasks) instances, capped by the
// session's and the application's max_instances and by the node's instance
// limit. An instance is launched (or an idle one of the same application
// bound: OnSessionEnter), gets the session's pending tasks strictly one at a
// time (OnTaskInvoke), leaves (OnSessionLeave) when its session closes, and
// is released (SIGTERM to its process group) after the application's
// delay_release (seconds) without a session. An instance that exits while
// running a task fails that task with a message naming the exit status; the
// session goes on with a fresh instance. An application that cannot start
// three times in a row fails its sessions' pending tasks with the reason.
// batch_size, priority and resreq are kept and answered, not acted on.
//
// Thread: one loop; everything runs on its thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/expected.hpp"
#include "ember/reactor.hpp"
#include "protocols/grpc/status.hpp"

namespace ember::flame::local {

struct ManagerOptions {
  std::string state_file;  // SQLite file (created if missing)
  // Instances running at once on this node; 0: one per CPU this process
  // may use.
  unsigned max_instances = 0;
  std::string socket_dir;         // instance sockets; empty: a temp dir
  std::string frontend_endpoint;  // FLAME_ENDPOINT given to services (if set)
  std::chrono::milliseconds default_delay_release{60'000};
  std::chrono::milliseconds startup_timeout{30'000};
  std::chrono::milliseconds release_grace{10'000};  // SIGTERM, then SIGKILL
  std::string node_name;                            // empty: the host name
};

class Manager {
 public:
  enum Method : int {
    kRegisterApplication,
    kUnregisterApplication,
    kUpdateApplication,
    kGetApplication,
    kListApplication,
    kListExecutor,
    kListNodes,
    kGetNode,
    kCreateSession,
    kDeleteSession,
    kOpenSession,
    kCloseSession,
    kGetSession,
    kListSession,
    kCreateTask,
    kGetTask,
    kWatchTask,
    kListTask,
  };
  // A flame.v1.Frontend path (v0.6.0's names and the main branch's renamed
  // list calls) to its method; -1 when unknown.
  static int method_of(std::string_view path) noexcept;
  static bool streaming(int method) noexcept { return method == kWatchTask || method == kListTask; }

  // Opens the state file and loads it; tasks that were running when the
  // last run stopped run again.
  static Result<std::unique_ptr<Manager>> open(Loop& loop, ManagerOptions options);
  ~Manager();

  // A unary call: the serialized response or a status.
  Expected<std::string, grpc::Status> call(int method, const Bytes& request);

  // A streaming call: `message` per response, then `done` once (possibly
  // before stream() returns). Returns an id for cancel(); 0 if it is over.
  struct Sink {
    std::function<void(std::string message)> message;
    std::function<void(grpc::Status status)> done;
  };
  uint64_t stream(int method, const Bytes& request, Sink sink);
  // The client went away: no more callbacks for `id`.
  void cancel(uint64_t id);

  // Stops: ends every stream (UNAVAILABLE), saves the state, releases all
  // instances (tasks running now run again after a restart).
  void shutdown();

  unsigned max_instances() const noexcept { return max_instances_; }
  const std::string& socket_dir() const noexcept;

  struct Impl;

 private:
  Manager() = default;
  std::unique_ptr<Impl> impl_;
  unsigned max_instances_ = 0;
};

// The gRPC connection handler serving flame.v1.Frontend for `manager` (which
// must outlive the connections).
HandlerFactory frontend_factory(Manager& manager);

}  // namespace ember::flame::local
