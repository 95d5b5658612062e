// The `ember` command line.
//
//   ember flame-run [options] [--] SERVICE [ARGS...]
//
// Runs a Flame service binary the way Flame's executor does, without a Flame
// cluster: starts it with FLAME_INSTANCE_ENDPOINT pointing at a socket in a
// temp dir, enters a session, runs tasks one at a time, leaves, and stops it
// with SIGTERM to its process group.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ember/config.hpp"
#include "ember/log.hpp"
#include "ember/reactor.hpp"
#include "handlers/flame/launcher.hpp"

namespace {

using ember::Bytes;
namespace flame = ember::flame;

constexpr int kExitOk = 0;
constexpr int kExitTaskFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitService = 3;

const char kUsage[] = R"(usage: ember flame-run [options] [--] SERVICE [ARGS...]

Runs SERVICE as Flame's executor would: starts it with FLAME_INSTANCE_ENDPOINT
set to a Unix socket in a temp dir, enters a session, runs the tasks one at a
time, leaves the session and stops the service with SIGTERM. Outputs go to
stdout, one per task; failures and the summary go to stderr.

Tasks (in the order given; with none of these, tasks are read from stdin):
  -i, --input TEXT           a task whose input is TEXT (repeatable)
      --no-input             a task without input (absent, not empty)
  -f, --input-file PATH      tasks read from PATH ("-" for stdin)
      --format lines|binary  how files split into tasks: one per line (default)
                             or a 4-byte big-endian length before each input
  -n, --repeat N             run the task list N times (default 1)

Session:
      --app NAME             application name (default: SERVICE's file name)
      --session-id ID        session id (default: flame-run-<pid>)
      --common-data TEXT     session common data
      --common-data-file PATH
      --sessions N           enter, run the tasks and leave N times (default 1)

Output:
      --output text|hex|binary|none
                             text: the output bytes and a newline (default);
                             binary: 4-byte big-endian length, then the bytes
  -q, --quiet                no summary line

Limits:
      --max-response SIZE    largest task result accepted (default 4MiB, as
                             Flame's executor)
      --timeout DURATION     per call (default: wait forever)
      --startup-timeout DURATION   for the socket to appear (default 10s)

Exit status: 0 all tasks succeeded; 1 a task failed or the service exited
non-zero; 2 usage error; 3 the service could not be started or spoke wrongly.
)";

struct Options {
  std::vector<std::optional<std::string>> inputs;  // nullopt: task without input
  std::vector<std::string> input_files;
  bool binary_format = false;
  uint64_t repeat = 1;
  uint64_t sessions = 1;
  std::string app;
  std::string session_id;
  std::optional<std::string> common_data;
  std::string output = "text";
  bool quiet = false;
  uint64_t max_response = 4u << 20;
  uint64_t timeout_ms = 0;
  uint64_t startup_timeout_ms = 10'000;
  std::vector<std::string> command;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "ember flame-run: %s\nRun `ember flame-run --help` for usage.\n",
               msg.c_str());
  std::exit(kExitUsage);
}

bool read_file(const std::string& path, std::string* out) {
  if (path == "-") {
    *out = std::string(std::istreambuf_iterator<char>(std::cin), {});
    return true;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  *out = std::string(std::istreambuf_iterator<char>(f), {});
  return true;
}

uint64_t parse_count(const std::string& flag, const std::string& v) {
  auto n = ember::config::parse_byte_size(v);
  if (!n || *n == 0 || v.find_first_not_of("0123456789") != std::string::npos)
    usage_error(flag + " wants a positive whole number, got \"" + v + "\"");
  return *n;
}

Options parse_args(int argc, char** argv) {
  Options o;
  int i = 2;
  auto value = [&](const std::string& flag) -> std::string {
    if (i + 1 >= argc) usage_error(flag + " needs a value");
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.empty() || a[0] != '-') break;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(kExitOk);
    } else if (a == "-i" || a == "--input") {
      o.inputs.emplace_back(value(a));
    } else if (a == "--no-input") {
      o.inputs.emplace_back(std::nullopt);
    } else if (a == "-f" || a == "--input-file") {
      o.input_files.push_back(value(a));
    } else if (a == "--format") {
      std::string f = value(a);
      if (f != "lines" && f != "binary") usage_error("--format is lines or binary, got " + f);
      o.binary_format = f == "binary";
    } else if (a == "-n" || a == "--repeat") {
      o.repeat = parse_count(a, value(a));
    } else if (a == "--sessions") {
      o.sessions = parse_count(a, value(a));
    } else if (a == "--app") {
      o.app = value(a);
    } else if (a == "--session-id") {
      o.session_id = value(a);
    } else if (a == "--common-data") {
      o.common_data = value(a);
    } else if (a == "--common-data-file") {
      std::string path = value(a), data;
      if (!read_file(path, &data)) usage_error("cannot read --common-data-file " + path);
      o.common_data = data;
    } else if (a == "--output") {
      o.output = value(a);
      if (o.output != "text" && o.output != "hex" && o.output != "binary" && o.output != "none")
        usage_error("--output is text, hex, binary or none, got " + o.output);
    } else if (a == "-q" || a == "--quiet") {
      o.quiet = true;
    } else if (a == "--max-response") {
      std::string v = value(a);
      auto n = ember::config::parse_byte_size(v);
      if (!n || *n < 1024) usage_error("--max-response wants a size of at least 1k, got " + v);
      o.max_response = *n;
    } else if (a == "--timeout" || a == "--startup-timeout") {
      std::string v = value(a);
      auto ms = ember::config::parse_duration_ms(v);
      if (!ms || *ms == 0 || *ms > INT32_MAX) usage_error(a + " wants a duration like 500ms or 5s");
      (a == "--timeout" ? o.timeout_ms : o.startup_timeout_ms) = *ms;
    } else {
      usage_error("unknown option " + a);
    }
  }
  for (; i < argc; ++i)
    o.command.emplace_back(argv[i]);
  if (o.command.empty()) usage_error("no SERVICE program given");
  if (o.app.empty()) {
    std::string prog = o.command[0];
    size_t slash = prog.rfind('/');
    o.app = slash == std::string::npos ? prog : prog.substr(slash + 1);
  }
  if (o.session_id.empty()) o.session_id = "flame-run-" + std::to_string(::getpid());
  return o;
}

std::vector<std::optional<Bytes>> load_tasks(const Options& o) {
  std::vector<std::optional<Bytes>> tasks;
  for (const auto& in : o.inputs) {
    if (in)
      tasks.emplace_back(Bytes::copy(*in));
    else
      tasks.emplace_back(std::nullopt);
  }
  std::vector<std::string> files = o.input_files;
  if (tasks.empty() && files.empty()) files.push_back("-");
  for (const std::string& path : files) {
    std::string data;
    if (!read_file(path, &data)) usage_error("cannot read input file " + path);
    if (o.binary_format) {
      size_t pos = 0;
      while (pos < data.size()) {
        if (data.size() - pos < 4) usage_error(path + ": truncated length prefix");
        auto* p = reinterpret_cast<const unsigned char*>(data.data() + pos);
        size_t len = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
        pos += 4;
        if (len == 0xFFFFFFFFu) {
          tasks.emplace_back(std::nullopt);
          continue;
        }
        if (data.size() - pos < len) usage_error(path + ": truncated task input");
        tasks.emplace_back(Bytes::copy(std::string_view(data).substr(pos, len)));
        pos += len;
      }
    } else {
      std::istringstream lines(data);
      std::string line;
      while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        tasks.emplace_back(Bytes::copy(line));
      }
    }
  }
  return tasks;
}

void print_output(const Options& o, const std::optional<Bytes>& output) {
  if (o.output == "none") return;
  if (o.output == "binary") {
    uint32_t len = output ? static_cast<uint32_t>(output->size()) : 0xFFFFFFFFu;
    unsigned char prefix[4] = {
        static_cast<unsigned char>(len >> 24), static_cast<unsigned char>(len >> 16),
        static_cast<unsigned char>(len >> 8), static_cast<unsigned char>(len)};
    std::fwrite(prefix, 1, 4, stdout);
    if (output) std::fwrite(output->data(), 1, output->size(), stdout);
    return;
  }
  if (!output) {
    std::fputc('\n', stdout);
    return;
  }
  if (o.output == "hex") {
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    for (uint8_t b : output->span()) {
      hex.push_back(kHex[b >> 4]);
      hex.push_back(kHex[b & 15]);
    }
    std::fputs(hex.c_str(), stdout);
  } else {
    std::fwrite(output->data(), 1, output->size(), stdout);
  }
  std::fputc('\n', stdout);
}

// Drives one service on the loop: launch, then per session enter, the tasks
// one at a time, leave; then SIGTERM and the exit status.
class FlameRun {
 public:
  FlameRun(ember::Reactor& reactor, const Options& o, std::vector<std::optional<Bytes>> tasks)
      : reactor_(reactor), loop_(reactor.loop(0)), o_(o), tasks_(std::move(tasks)) {}

  void start() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp");
    templ.append("/ember-flame-XXXXXX");
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
      std::fprintf(stderr, "ember flame-run: cannot create a temp dir for the socket (%s): %s\n",
                   templ.c_str(), std::strerror(errno));
      return done(kExitService);
    }
    dir_ = buf.data();
    flame::LaunchSpec spec;
    spec.argv = o_.command;
    spec.socket_path = dir_ + "/instance.sock";
    spec.startup_timeout = std::chrono::milliseconds(o_.startup_timeout_ms);
    auto p = flame::InstanceProcess::launch(
        loop_, std::move(spec), [this](ember::Result<void> r) { on_ready(std::move(r)); },
        [this](int status) { on_exit(status); });
    if (!p) {
      std::fprintf(stderr, "ember flame-run: %s\n", p.error().message.c_str());
      return done(kExitService);
    }
    process_ = std::move(*p);
    started_ = std::chrono::steady_clock::now();
  }

  // SIGINT/SIGTERM: stop the service and leave.
  void interrupt() {
    std::fprintf(stderr, "ember flame-run: interrupted; stopping the service\n");
    broken_ = true;
    finish();
  }

  int exit_code() const { return code_; }
  ~FlameRun() {
    channel_.reset();
    process_.reset();
    if (!dir_.empty()) {
      ::unlink((dir_ + "/instance.sock").c_str());
      ::rmdir(dir_.c_str());
    }
  }

 private:
  void on_ready(ember::Result<void> r) {
    if (!r) {
      std::fprintf(stderr, "ember flame-run: %s\n", r.error().message.c_str());
      process_.reset();
      return done(kExitService);
    }
    flame::InstanceChannelOptions co;
    co.max_response_bytes = o_.max_response;
    co.call_timeout = std::chrono::milliseconds(o_.timeout_ms);
    channel_ = std::make_unique<flame::InstanceChannel>(loop_, process_->socket_path(), co);
    if (o_.common_data) common_ = Bytes::copy(*o_.common_data);
    next_session();
  }

  void next_session() {
    if (session_ == o_.sessions || broken_) return finish();
    session_id_ =
        o_.sessions == 1 ? o_.session_id : o_.session_id + "-" + std::to_string(session_ + 1);
    ++session_;
    flame::ApplicationInfo app;
    app.name = o_.app;
    channel_->enter(session_id_, app, common_, [this](auto entered) {
      if (!entered) {
        std::fprintf(stderr, "ember flame-run: OnSessionEnter failed: %s: %s\n",
                     std::string(ember::grpc::status_name(entered.error().code)).c_str(),
                     entered.error().message.c_str());
        broken_ = true;
        return finish();
      }
      if (entered->return_code != 0) {
        std::fprintf(stderr, "ember flame-run: session %s was refused: %s\n", session_id_.c_str(),
                     entered->message.value_or("(no message)").c_str());
        failed_ += tasks_.size() * o_.repeat;
        return next_session();
      }
      task_no_ = 0;
      next_task();
    });
  }

  void next_task() {
    if (broken_) return finish();
    if (tasks_.empty() || task_no_ == tasks_.size() * o_.repeat) return leave();
    const std::optional<Bytes>& input = tasks_[task_no_ % tasks_.size()];
    std::string task_id = std::to_string(++task_no_);
    channel_->invoke(task_id, session_id_, input, [this, task_id](auto outcome) {
      ++ran_;
      if (!outcome) {
        std::fprintf(stderr, "ember flame-run: task %s: call failed: %s: %s\n", task_id.c_str(),
                     std::string(ember::grpc::status_name(outcome.error().code)).c_str(),
                     outcome.error().message.c_str());
        ++failed_;
        if (outcome.error().code == ember::grpc::StatusCode::unavailable) broken_ = true;
        return next_task();
      }
      if (outcome->return_code != 0) {
        std::fprintf(stderr, "ember flame-run: task %s failed (return_code %d): %s\n",
                     task_id.c_str(), outcome->return_code,
                     outcome->message.value_or("(no message)").c_str());
        ++failed_;
        if (o_.output == "text" || o_.output == "hex") std::fputc('\n', stdout);
        return next_task();
      }
      print_output(o_, outcome->output);
      next_task();
    });
  }

  void leave() {
    channel_->leave([this](auto left) {
      if (!left) {
        std::fprintf(stderr, "ember flame-run: OnSessionLeave failed: %s\n",
                     left.error().message.c_str());
        broken_ = true;
      } else if (left->return_code != 0) {
        std::fprintf(stderr, "ember flame-run: session %s: leave reported: %s\n",
                     session_id_.c_str(), left->message.value_or("(no message)").c_str());
      }
      next_session();
    });
  }

  // Stop the service; done() follows its exit.
  void finish() {
    if (finishing_) return;
    finishing_ = true;
    std::fflush(stdout);
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    channel_.reset();
    if (!process_) return summary_and_done();
    if (process_->exit_status()) return summary_and_done();
    process_->terminate();
  }

  void on_exit(int status) {
    status_ = status;
    if (!finishing_) {
      // Exited on its own: the calls in flight fail with UNAVAILABLE, which
      // ends the run; report how it ended.
      std::fprintf(stderr, "ember flame-run: the service %s\n",
                   flame::describe_exit(status).c_str());
      broken_ = true;
      return;
    }
    summary_and_done();
  }

  void summary_and_done() {
    int status =
        status_.value_or(process_ && process_->exit_status() ? *process_->exit_status() : -1);
    if (!o_.quiet) {
      double secs = seconds_;
      std::fprintf(stderr,
                   "ember flame-run: %llu task(s), %llu failed, %llu session(s) in %.3f s "
                   "(%.0f tasks/s); service exited with status %d\n",
                   static_cast<unsigned long long>(ran_), static_cast<unsigned long long>(failed_),
                   static_cast<unsigned long long>(o_.sessions), secs, secs > 0 ? ran_ / secs : 0.0,
                   status);
    }
    if (broken_)
      done(kExitService);
    else
      done(failed_ == 0 && status == 0 ? kExitOk : kExitTaskFailed);
  }

  void done(int code) {
    code_ = code;
    reactor_.stop();
  }

  ember::Reactor& reactor_;
  ember::Loop& loop_;
  const Options& o_;
  std::vector<std::optional<Bytes>> tasks_;
  std::string dir_;
  std::unique_ptr<flame::InstanceProcess> process_;
  std::unique_ptr<flame::InstanceChannel> channel_;
  std::optional<Bytes> common_;
  std::string session_id_;
  uint64_t session_ = 0, task_no_ = 0, ran_ = 0, failed_ = 0;
  bool broken_ = false, finishing_ = false;
  std::optional<int> status_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  double seconds_ = 0;
  int code_ = kExitService;
};

int flame_run(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  std::vector<std::optional<Bytes>> tasks = load_tasks(o);
  ember::ReactorOptions ro;
  ro.threads = 1;
  ro.drain_timeout = std::chrono::milliseconds(15'000);
  ember::Reactor reactor(ro);
  FlameRun run(reactor, o, std::move(tasks));
  reactor.on_drain_start([&run] { run.interrupt(); });
  reactor.loop(0).post([&run](ember::Loop&) { run.start(); });
  reactor.run();
  return run.exit_code();
}

}  // namespace

int serve_main(int argc, char** argv);        // serve.cpp
int flame_local_main(int argc, char** argv);  // flame_local.cpp
int flare_main(int argc, char** argv);        // flare_cli.cpp

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
    std::fputs(
        "usage: ember <command> [options]\n\ncommands:\n"
        "  flame-local a single-node Flame session manager (flame.v1.Frontend)\n"
        "  flame-run   run a Flame service binary the way Flame's executor does\n"
        "  flare       deploy, replace, list and remove Wasm flares on a running server\n"
        "  serve       serve HTTP/1.1, HTTP/2 and WebSocket traffic to flares\n"
        "\nRun `ember <command> --help` for a command's options.\n",
        argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (std::strcmp(argv[1], "flame-run") == 0) return flame_run(argc, argv);
  if (std::strcmp(argv[1], "flame-local") == 0) return flame_local_main(argc, argv);
  if (std::strcmp(argv[1], "serve") == 0) return serve_main(argc, argv);
  if (std::strcmp(argv[1], "flare") == 0) return flare_main(argc, argv);
  std::fprintf(stderr, "ember: unknown command \"%s\"; run `ember --help`\n", argv[1]);
  return kExitUsage;
}
