// The `ember` command line.
//
//   ember flame-run [options] [--] SERVICE [ARGS...]
//
// Runs a Flame service binary the way Flame's executor does, without a Flame
// cluster: starts it with FLAME_INSTANCE_ENDPOINT pointing at a socket in a
// temp dir, enters a session, runs tasks one at a time, leaves, and stops it
// with SIGTERM to its process group.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ember/config.hpp"
#include "ember/log.hpp"
#include "handlers/flame/executor.hpp"

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

int flame_run(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  std::vector<std::optional<Bytes>> tasks = load_tasks(o);

  flame::ServiceProcess::Options po;
  po.argv = o.command;
  po.startup_timeout = std::chrono::milliseconds(o.startup_timeout_ms);
  auto service = flame::ServiceProcess::launch(po);
  if (!service) {
    std::fprintf(stderr, "ember flame-run: %s\n", service.error().message.c_str());
    return kExitService;
  }
  flame::InstanceClientOptions co;
  co.max_response_bytes = o.max_response;
  co.io_timeout_ms = static_cast<int>(o.timeout_ms);
  auto client = flame::InstanceClient::connect((*service)->socket_path(), co);
  if (!client) {
    std::fprintf(stderr, "ember flame-run: %s\n", client.error().message.c_str());
    return kExitService;
  }

  std::optional<Bytes> common;
  if (o.common_data) common = Bytes::copy(*o.common_data);
  uint64_t ran = 0, failed = 0;
  bool broken = false;
  auto started = std::chrono::steady_clock::now();
  for (uint64_t s = 0; s < o.sessions && !broken; ++s) {
    std::string session_id =
        o.sessions == 1 ? o.session_id : o.session_id + "-" + std::to_string(s + 1);
    auto entered = (*client)->enter(session_id, o.app, common);
    if (!entered) {
      std::fprintf(stderr, "ember flame-run: OnSessionEnter failed: %s: %s\n",
                   std::string(ember::grpc::status_name(entered.error().code)).c_str(),
                   entered.error().message.c_str());
      broken = true;
      break;
    }
    if (entered->return_code != 0) {
      std::fprintf(stderr, "ember flame-run: session %s was refused: %s\n", session_id.c_str(),
                   entered->message.value_or("(no message)").c_str());
      failed += tasks.size() * o.repeat;
      continue;
    }
    uint64_t task_no = 0;
    for (uint64_t r = 0; r < o.repeat && !broken; ++r) {
      for (const auto& input : tasks) {
        std::string task_id = std::to_string(++task_no);
        auto outcome = (*client)->invoke(task_id, session_id, input);
        ++ran;
        if (!outcome) {
          std::fprintf(stderr, "ember flame-run: task %s: call failed: %s: %s\n", task_id.c_str(),
                       std::string(ember::grpc::status_name(outcome.error().code)).c_str(),
                       outcome.error().message.c_str());
          ++failed;
          if (outcome.error().code == ember::grpc::StatusCode::unavailable) broken = true;
          if (broken) break;
          continue;
        }
        if (outcome->return_code != 0) {
          std::fprintf(stderr, "ember flame-run: task %s failed (return_code %d): %s\n",
                       task_id.c_str(), outcome->return_code,
                       outcome->message.value_or("(no message)").c_str());
          ++failed;
          if (o.output == "text" || o.output == "hex") std::fputc('\n', stdout);
          continue;
        }
        print_output(o, outcome->output);
      }
    }
    if (!broken) {
      auto left = (*client)->leave();
      if (!left) {
        std::fprintf(stderr, "ember flame-run: OnSessionLeave failed: %s\n",
                     left.error().message.c_str());
        broken = true;
      } else if (left->return_code != 0) {
        std::fprintf(stderr, "ember flame-run: session %s: leave reported: %s\n",
                     session_id.c_str(), left->message.value_or("(no message)").c_str());
      }
    }
  }
  std::fflush(stdout);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  client->reset();
  int status = (*service)->terminate();
  if (!o.quiet) {
    std::fprintf(stderr,
                 "ember flame-run: %llu task(s), %llu failed, %llu session(s) in %.3f s "
                 "(%.0f tasks/s); service exited with status %d\n",
                 static_cast<unsigned long long>(ran), static_cast<unsigned long long>(failed),
                 static_cast<unsigned long long>(o.sessions), secs, secs > 0 ? ran / secs : 0.0,
                 status);
  }
  if (broken) return kExitService;
  return failed == 0 && status == 0 ? kExitOk : kExitTaskFailed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0) {
    std::fputs(
        "usage: ember <command> [options]\n\ncommands:\n"
        "  flame-run   run a Flame service binary the way Flame's executor does\n"
        "\nRun `ember <command> --help` for a command's options.\n",
        argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitUsage : kExitOk;
  }
  if (std::strcmp(argv[1], "flame-run") == 0) return flame_run(argc, argv);
  std::fprintf(stderr, "ember: unknown command \"%s\"; run `ember --help`\n", argv[1]);
  return kExitUsage;
}
