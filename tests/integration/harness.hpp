// Shared pieces of the integration tests: launching service processes the
// way Flame's executor does, grpc++ channels onto their sockets, and small
// waiting helpers. Calls go through grpc++ (raw_h2.hpp has the few things
// grpc++ will not do); Ember's own client code never judges Ember's server.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "flame.grpc.pb.h"
#include "flame.pb.h"

namespace ember_it {

using namespace std::chrono_literals;
using Env = std::vector<std::pair<std::string, std::string>>;

// Paths of the programs under test (compile definitions from CMake).
std::string echo_bin();
std::string pi_bin();
std::string test_service_bin();
std::string ember_cli_bin();

// Under ASan+UBSan everything runs several times slower; deadlines scale.
bool sanitized();
std::chrono::milliseconds scaled(std::chrono::milliseconds d);

// A fresh directory under TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& data);

// Polls `done` every millisecond until it holds or `timeout` passes. For
// conditions that have no notification (a file gains a line, a process exits).
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// A service process started as the executor starts one: its own process
// group, FLAME_INSTANCE_ENDPOINT set, stderr (its log) captured in a file
// that is shown when a test fails.
class Service {
 public:
  struct Options {
    std::string program;
    std::vector<std::string> args;
    Env env;                   // on top of ours
    std::string socket_path;   // empty: <dir>/instance.sock
    bool set_endpoint = true;  // false: FLAME_INSTANCE_ENDPOINT absent
    bool wait_for_socket = true;
    bool events = false;  // EMBER_TEST_EVENTS=<dir>/events
  };

  // Starts the process; with wait_for_socket, returns once the socket file
  // exists (fails the test if the process exits or it takes too long).
  static std::unique_ptr<Service> start(Options options);
  // The test service, sync or async, with an events file in its directory.
  static std::unique_ptr<Service> test_service(bool async, Env env = {});
  static std::unique_ptr<Service> echo(Env env = {});
  ~Service();

  const std::string& socket_path() const noexcept { return socket_path_; }
  const std::string& events_path() const noexcept { return events_path_; }
  pid_t pid() const noexcept { return pid_; }
  std::string log() const;  // everything it wrote to stderr so far
  std::vector<std::string> events() const;
  // Waits until the events file has `line`.
  bool wait_for_event(const std::string& line, std::chrono::milliseconds timeout) const;

  bool alive();
  void signal_group(int sig);
  // Exit status as a shell shows it (128+N for signal N), once exited.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // SIGTERM to the group and the exit status (SIGKILL after the timeout).
  int terminate();

 private:
  Service() = default;
  std::optional<int> poll();

  std::unique_ptr<TempDir> dir_;
  pid_t pid_ = -1;
  std::string socket_path_, log_path_, events_path_;
  std::optional<int> status_;
};

// Runs a program to completion (stdin from /dev/null unless `stdin_path`).
struct ProgramRun {
  std::optional<int> status;  // as a shell shows it; nullopt: killed at the timeout
  std::string out, err;
};
ProgramRun run_program(const std::vector<std::string>& argv, const Env& env = {},
                       const std::string& stdin_path = "/dev/null",
                       std::chrono::milliseconds timeout = 120s);

struct ChannelOptions {
  int max_receive = -1;  // -1: grpc++'s default (4 MiB, as Flame's executor)
};

// A channel with its own connection (no subchannel sharing between channels).
std::shared_ptr<grpc::Channel> channel(const std::string& socket_path,
                                       const ChannelOptions& options = {});

struct TaskCall {
  grpc::Status status;
  flame::v1::TaskResult result;
};

flame::v1::TaskContext task(const std::string& task_id, const std::string& session_id,
                            const std::optional<std::string>& input);
TaskCall invoke(flame::v1::Instance::Stub& stub, const flame::v1::TaskContext& request,
                std::chrono::milliseconds deadline = 0ms);
TaskCall invoke(flame::v1::Instance::Stub& stub, const std::optional<std::string>& input,
                const std::string& task_id = "1", const std::string& session_id = "s");

struct ResultCall {
  grpc::Status status;
  flame::v1::Result result;
};
ResultCall enter(flame::v1::Instance::Stub& stub, const std::string& session_id,
                 const std::string& app, const std::optional<std::string>& common_data = {});
ResultCall leave(flame::v1::Instance::Stub& stub);

// A unary call with raw request bytes on any path (grpc::GenericStub).
struct RawCall {
  grpc::Status status;
  std::string response;
};
RawCall raw_call(const std::shared_ptr<grpc::Channel>& channel, const std::string& path,
                 const std::string& request);

// Blocks until the service answers a trivial task correctly on a new
// channel: proof that it is alive and serving.
::testing::AssertionResult serves(const std::string& socket_path);

std::string status_text(const grpc::Status& s);

}  // namespace ember_it
