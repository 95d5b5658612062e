#include "tests/integration/harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

#include <grpcpp/generic/generic_stub.h>

extern char** environ;

namespace ember_it {

// A null-terminated char* array over `strings` (which must outlive it), as
// posix_spawn wants for argv and envp.
static std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string echo_bin() {
  return EMBER_IT_ECHO_BIN;
}
std::string pi_bin() {
  return EMBER_IT_PI_BIN;
}
std::string test_service_bin() {
  return EMBER_IT_TEST_SERVICE_BIN;
}
std::string ember_cli_bin() {
  return EMBER_IT_EMBER_CLI_BIN;
}

bool sanitized() {
#if defined(EMBER_IT_SANITIZED)
  return true;
#else
  return false;
#endif
}

std::chrono::milliseconds scaled(std::chrono::milliseconds d) {
  return sanitized() ? d * 5 : d;
}

// ---- files ------------------------------------------------------------------

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/ember-it-XXXXXX";
  if (!::mkdtemp(templ.data())) {
    ADD_FAILURE() << "mkdtemp(" << templ << "): " << std::strerror(errno);
    return;
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
}

// ---- service processes --------------------------------------------------------

std::unique_ptr<Service> Service::start(Options o) {
  std::unique_ptr<Service> s(new Service);
  s->dir_ = std::make_unique<TempDir>();
  s->socket_path_ = o.socket_path.empty() ? s->dir_->file("instance.sock") : o.socket_path;
  s->log_path_ = s->dir_->file("service.log");
  s->events_path_ = s->dir_->file("events");

  // Our environment minus anything that would change the service's
  // behaviour behind the test's back, then the test's own settings.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("FLAME_") || kv.starts_with("EMBER_") || kv.starts_with("RUST_LOG="))
      continue;
    env.emplace_back(kv);
  }
  env.push_back("EMBER_LOG=info");
  if (o.set_endpoint) env.push_back("FLAME_INSTANCE_ENDPOINT=" + s->socket_path_);
  if (o.events) env.push_back("EMBER_TEST_EVENTS=" + s->events_path_);
  for (const auto& [k, v] : o.env)
    env.push_back(k + "=" + v);
  std::vector<std::string> args{o.program};
  args.insert(args.end(), o.args.begin(), o.args.end());
  std::vector<char*> envp = c_strings(env), argv = c_strings(args);

  // posix_spawn, not fork: this process runs grpc++ threads.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  // stderr (Ember's log) and stdout apart: tests check what goes to stderr.
  const std::string out_path = s->dir_->file("service.stdout");
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, s->log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, as the executor does: SIGTERM goes to the group.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  int rc = ::posix_spawn(&s->pid_, o.program.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn(" << o.program << "): " << std::strerror(rc);
    s->pid_ = -1;
    return s;
  }
  if (!o.wait_for_socket) return s;
  bool ready = wait_until(
      [&] {
        struct stat st;
        return (::lstat(s->socket_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ||
               s->poll().has_value();
      },
      scaled(10s));
  EXPECT_TRUE(ready) << o.program << " created no socket at " << s->socket_path_;
  EXPECT_FALSE(s->poll().has_value())
      << o.program << " exited with status " << *s->poll() << " before serving";
  return s;
}

std::unique_ptr<Service> Service::test_service(bool async, Env env) {
  Options o;
  o.program = test_service_bin();
  o.env = std::move(env);
  o.events = true;
  if (async) o.env.emplace_back("EMBER_TEST_ASYNC", "1");
  return start(std::move(o));
}

std::unique_ptr<Service> Service::echo(Env env) {
  Options o;
  o.program = echo_bin();
  o.env = std::move(env);
  return start(std::move(o));
}

Service::~Service() {
  if (pid_ > 0 && !poll()) {
    ::kill(-pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
  }
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- log of service pid " << pid_ << " (" << socket_path_ << ") ----\n"
              << log() << "---- end of log ----\n";
  }
}

std::string Service::log() const {
  return read_file(log_path_);
}

std::vector<std::string> Service::events() const {
  std::vector<std::string> lines;
  std::istringstream in(read_file(events_path_));
  std::string line;
  while (std::getline(in, line))
    lines.push_back(line);
  return lines;
}

bool Service::wait_for_event(const std::string& line, std::chrono::milliseconds timeout) const {
  return wait_until(
      [&] {
        for (const auto& l : events())
          if (l == line) return true;
        return false;
      },
      timeout);
}

std::optional<int> Service::poll() {
  if (status_ || pid_ <= 0) return status_;
  int st;
  if (::waitpid(pid_, &st, WNOHANG) == pid_)
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return status_;
}

bool Service::alive() {
  return pid_ > 0 && !poll();
}

void Service::signal_group(int sig) {
  if (alive()) ::kill(-pid_, sig);
}

std::optional<int> Service::wait_exit(std::chrono::milliseconds timeout) {
  wait_until([&] { return poll().has_value(); }, timeout);
  return poll();
}

int Service::terminate() {
  signal_group(SIGTERM);
  if (auto st = wait_exit(scaled(15s))) return *st;
  ADD_FAILURE() << "service " << pid_ << " ignored SIGTERM; killing it";
  ::kill(-pid_, SIGKILL);
  return wait_exit(5s).value_or(-1);
}

ProgramRun run_program(const std::vector<std::string>& argv_in, const Env& extra,
                       const std::string& stdin_path, std::chrono::milliseconds timeout) {
  TempDir dir;
  const std::string out_path = dir.file("stdout"), err_path = dir.file("stderr");
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("FLAME_") || kv.starts_with("EMBER_") || kv.starts_with("RUST_LOG="))
      continue;
    env.emplace_back(kv);
  }
  for (const auto& [k, v] : extra)
    env.push_back(k + "=" + v);
  std::vector<std::string> args = argv_in;
  std::vector<char*> envp = c_strings(env), argv = c_strings(args);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  pid_t pid;
  int rc = ::posix_spawn(&pid, args[0].c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ProgramRun run;
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn(" << args[0] << "): " << std::strerror(rc);
    return run;
  }
  int st = 0;
  bool exited = wait_until([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, timeout);
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    ADD_FAILURE() << args[0] << " did not finish within " << timeout.count() << " ms";
  } else {
    run.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  run.out = read_file(out_path);
  run.err = read_file(err_path);
  return run;
}

// ---- grpc++ -------------------------------------------------------------------

std::shared_ptr<grpc::Channel> channel(const std::string& socket_path,
                                       const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // No transparent retries: every status the test sees is the server's.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  if (options.max_receive != -1) args.SetMaxReceiveMessageSize(options.max_receive);
  return grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
}

RawCall raw_call(const std::shared_ptr<grpc::Channel>& ch, const std::string& path,
                 const std::string& request) {
  grpc::GenericStub stub(ch);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1), resp;
  RawCall c;
  auto call = stub.PrepareUnaryCall(&ctx, path, req, &cq);
  call->StartCall();
  int tag = 1;
  call->Finish(&resp, &c.status, &tag);
  void* got = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&got, &ok));
  EXPECT_EQ(got, &tag);
  std::vector<grpc::Slice> slices;
  if (c.status.ok() && resp.Dump(&slices).ok())
    for (const auto& s : slices)
      c.response.append(reinterpret_cast<const char*>(s.begin()), s.size());
  cq.Shutdown();
  while (cq.Next(&got, &ok)) {
  }
  return c;
}

std::string status_text(const grpc::Status& s) {
  return std::to_string(static_cast<int>(s.error_code())) + " \"" + s.error_message() + "\"";
}

}  // namespace ember_it
