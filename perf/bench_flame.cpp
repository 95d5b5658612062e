// ember-bench-flame: Ember's Flame instance server against a grpc++ server of
// the same echo service and a raw Unix-socket ping-pong (the floor), driven
// side by side over their sockets: Ember's InstanceClient for both gRPC
// servers ("ember", "grpc++"), a grpc++ client set up like Flame's executor
// for both ("ember/gc", "grpc++/gc": a client nobody here wrote), and a
// minimal length-prefixed client for the floor.
//
// For each scenario (input size x calls in flight) the servers are measured
// interleaved, A B C A B C ..., over several rounds; each measurement reports
// tasks/s, per-call p50/p99, server and client CPU per task. Medians with the
// min-max across rounds, ratios, idle RSS, heap calls per task (LD_PRELOAD
// counter) and the issue's targets are printed; CSVs, raw latency samples
// and a CDF plot go to the output directory. See perf/README.md.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "handlers/flame/executor.hpp"
#include "perf/grpcpp_instance_client.hpp"

namespace fl = ember::flame;
namespace fs = std::filesystem;

namespace {

// ---- small utilities -----------------------------------------------------------------

[[noreturn]] void die(const char* fmt, ...);

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double self_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string strprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return std::string(buf, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
}

std::string size_name(size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + "MiB";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + "KiB";
  return std::to_string(n) + "B";
}

std::optional<size_t> parse_size(std::string_view s) {
  size_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  std::string unit(p, s.data() + s.size());
  for (auto& c : unit)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.empty() || unit == "b") return v;
  if (unit == "k" || unit == "kib" || unit == "kb") return v << 10;
  if (unit == "m" || unit == "mib" || unit == "mb") return v << 20;
  return std::nullopt;
}

// Fields of `s` between `sep`s; empty fields are dropped.
std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> v;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    if (!cur.empty()) v.push_back(cur);
  return v;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return NAN;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// Output to stdout and to report.txt in the results directory.
FILE* g_report = nullptr;
void out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  if (g_report) std::fwrite(s.data(), 1, s.size(), g_report);
}
void outf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[4096];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) out(std::string(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1)));
}
void progress(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fflush(stderr);
}

// Aligned text table: first `left` columns left-aligned, the rest right-aligned.
struct Table {
  std::vector<std::vector<std::string>> rows;
  size_t left = 1;
  void add(std::vector<std::string> r) { rows.push_back(std::move(r)); }
  void print(const std::string& indent = "  ") const {
    std::vector<size_t> w;
    for (const auto& r : rows)
      for (size_t i = 0; i < r.size(); ++i) {
        if (w.size() <= i) w.push_back(0);
        w[i] = std::max(w[i], r[i].size());
      }
    for (size_t ri = 0; ri < rows.size(); ++ri) {
      std::string line = indent;
      for (size_t i = 0; i < rows[ri].size(); ++i) {
        const std::string& c = rows[ri][i];
        std::string pad(w[i] - c.size(), ' ');
        line += i < left ? c + pad : pad + c;
        if (i + 1 < rows[ri].size()) line += "  ";
      }
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      out(line + "\n");
      if (ri == 0) {
        size_t total = indent.size();
        for (size_t x : w)
          total += x + 2;
        out(indent + std::string(total - indent.size() - 2, '-') + "\n");
      }
    }
  }
};

// ---- scheduling: pinning, nice, slice, autogroup ---------------------------------------

// struct sched_attr, SCHED_ATTR_SIZE_VER0 (glibc 2.36 has no wrapper).
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
};

constexpr int kNice = -19;
constexpr uint64_t kSliceNs = 100'000;  // 100 us: EEVDF's shortest custom slice

// SCHED_OTHER with nice -19 and a 100 us slice for one thread.
int set_sched(pid_t tid) {
  SchedAttr a{};
  a.size = sizeof a;
  a.sched_policy = SCHED_OTHER;
  a.sched_nice = kNice;
  a.sched_runtime = kSliceNs;
  return static_cast<int>(::syscall(SYS_sched_setattr, tid, &a, 0u)) == 0 ? 0 : errno;
}

std::optional<SchedAttr> get_sched(pid_t tid) {
  SchedAttr a{};
  if (::syscall(SYS_sched_getattr, tid, &a, sizeof a, 0u) != 0) return std::nullopt;
  return a;
}

bool pin(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(pid, sizeof set, &set) == 0;
}

bool set_autogroup_nice(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/autogroup";
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string v = std::to_string(kNice);
  bool ok = ::write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size());
  ::close(fd);
  return ok;
}

std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> tids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
    tids.push_back(static_cast<pid_t>(std::atoi(e.path().filename().c_str())));
  return tids;
}

// The slice is not inherited by new threads (the kernel resets it at fork),
// so every thread of a server is set again before each measurement.
struct TuneResult {
  int threads = 0;
  int failed = 0;
  int first_error = 0;
  uint64_t slice_read_back = 0;
};
TuneResult tune_threads(pid_t pid) {
  TuneResult r;
  for (pid_t tid : threads_of(pid)) {
    ++r.threads;
    if (int e = set_sched(tid); e != 0) {
      ++r.failed;
      if (!r.first_error) r.first_error = e;
    }
  }
  if (auto a = get_sched(pid)) r.slice_read_back = a->sched_runtime;
  return r;
}

int g_server_cpu = 0;
int g_client_cpu = 1;
// --client-spin: the load generator polls its socket instead of sleeping.
bool g_client_spin = false;
int64_t g_stall_ns = 10'000'000'000;

// ---- /proc readings ------------------------------------------------------------------

// utime + stime + cutime + cstime of a process, in seconds.
double proc_cpu_seconds(pid_t pid) {
  std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  size_t close = s.rfind(')');
  if (close == std::string::npos) return NAN;
  std::istringstream in(s.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (in >> tok)
    f.push_back(tok);
  // f[0] is field 3 (state); utime is field 14.
  if (f.size() < 15) return NAN;
  double ticks = std::stod(f[11]) + std::stod(f[12]) + std::stod(f[13]) + std::stod(f[14]);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A "Vm...:  N kB" line of /proc/PID/status, in KiB.
long proc_status_kib(pid_t pid, const char* key) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key) + 1);
  return -1;
}

// ---- servers ---------------------------------------------------------------------------

enum class Kind { grpc, raw };

// Server pids for the emergency cleanup in the signal handler.
constexpr int kMaxServers = 8;
volatile sig_atomic_t g_server_pids[kMaxServers];

void register_pid(pid_t pid) {
  for (auto& p : g_server_pids)
    if (p == 0) {
      p = pid;
      return;
    }
}
void unregister_pid(pid_t pid) {
  for (auto& p : g_server_pids)
    if (p == pid) p = 0;
}

void on_fatal_signal(int sig) {
  for (auto& p : g_server_pids)
    if (p > 0) ::kill(-p, SIGKILL);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

struct Server {
  std::string name;  // "ember", "grpc++", "floor"
  Kind kind = Kind::grpc;
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;  // this server only
  pid_t pid = -1;
  std::string dir, sock, log_path;
  std::string tuning;  // what was applied, for the report
  std::unique_ptr<fl::InstanceClient> client;
  bool grpcpp_client = false;  // driven by GrpcppInstanceClient instead
  std::unique_ptr<ember::perf::GrpcppInstanceClient> gclient;
  int raw_fd = -1;
  long idle_rss_kib = -1;
  long end_rss_kib = -1, peak_rss_kib = -1;

  Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() { stop(); }

  void stop() {
    client.reset();
    gclient.reset();
    if (raw_fd >= 0) ::close(raw_fd);
    raw_fd = -1;
    if (pid > 0) {
      ::kill(-pid, SIGTERM);
      int st;
      bool gone = false;
      for (int i = 0; i < 5000 && !gone; ++i) {
        if (::waitpid(pid, &st, WNOHANG) == pid) gone = true;
        if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (!gone) {
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &st, 0);
      }
      unregister_pid(pid);
      pid = -1;
    }
    if (!sock.empty()) ::unlink(sock.c_str());
    if (!dir.empty()) ::rmdir(dir.c_str());
    sock.clear();
    dir.clear();
  }
};

struct LaunchOptions {
  std::vector<std::pair<std::string, std::string>> env;
  bool pin = true;   // server on g_server_cpu
  bool nice = true;  // nice -19, 100 us slice, autogroup nice -19
  std::chrono::milliseconds startup_timeout{20'000};
  int stall_ms = 10'000;  // no byte either way for this long: the server stalled
};

// Blocking socket I/O that gives up after `ms`: a stalled server shows up
// as EAGAIN instead of a bench hung forever, at no cost per call.
void set_io_timeout(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Whether `fd` is connected to a socket in `dir`. The server may have bound
// under another name there and linked the socket into place afterwards (Ember
// does): the peer's address is then that first name, so only the directory counts.
bool is_peer(int fd, const std::string& dir) {
  sockaddr_un peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;
  return peer.sun_family == AF_UNIX && std::string_view(peer.sun_path).starts_with(dir + "/");
}

// Starts a server as Flame's executor would (FLAME_INSTANCE_ENDPOINT, own
// process group), in its own session (its own autogroup), pinned to the
// server core with nice -19 and a 100 us slice. Our own fork/exec rather than
// ServiceProcess: setsid() must run in the child, and a process-group leader
// (which ServiceProcess makes of it) cannot call setsid().
void launch(Server& s, const LaunchOptions& lo) {
  char templ[] = "/tmp/ember-bench-XXXXXX";
  if (!::mkdtemp(templ)) die("mkdtemp: %s", std::strerror(errno));
  s.dir = templ;
  s.sock = s.dir + "/instance.sock";

  auto extra = lo.env;
  extra.insert(extra.end(), s.env.begin(), s.env.end());
  std::vector<std::string> env_strings = fl::ServiceProcess::environment(s.sock, extra);
  std::vector<char*> envp, argv;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = s.argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  int logfd = ::open(s.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) die("cannot open %s: %s", s.log_path.c_str(), std::strerror(errno));
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) die("pipe2: %s", std::strerror(errno));

  pid_t pid = ::fork();
  if (pid < 0) die("fork: %s", std::strerror(errno));
  if (pid == 0) {
    ::close(go[1]);
    ::setsid();                          // own session: own process group, own autogroup
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    ::signal(SIGPIPE, SIG_DFL);
    char c;
    // Wait until the parent has pinned and tuned us: what exec starts inherits it.
    while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::execve(argv[0], argv.data(), envp.data());
    std::string msg = "cannot run " + s.argv[0] + ": " + std::strerror(errno) + "\n";
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(127);
  }
  ::close(go[0]);
  ::close(logfd);
  s.pid = pid;
  register_pid(pid);

  std::vector<std::string> applied;
  // setsid() in the child may not have run yet: wait for it, so the
  // autogroup written below is the child's own.
  for (int i = 0; i < 1000 && ::getsid(pid) != pid; ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  applied.push_back(::getsid(pid) == pid ? "setsid" : "setsid FAILED");
  if (lo.pin)
    applied.push_back(pin(pid, g_server_cpu) ? "cpu " + std::to_string(g_server_cpu)
                                             : "pin FAILED");
  else
    applied.push_back("unpinned");
  if (lo.nice) {
    int e = set_sched(pid);
    applied.push_back(e == 0 ? "SCHED_OTHER nice -19 slice 100us (sched_setattr)"
                             : std::string("sched_setattr FAILED: ") + std::strerror(e));
    applied.push_back(set_autogroup_nice(pid) ? "autogroup nice -19" : "autogroup n/a");
  } else {
    applied.push_back("default nice and slice");
  }
  (void)!::write(go[1], "g", 1);
  ::close(go[1]);

  auto deadline = std::chrono::steady_clock::now() + lo.startup_timeout;
  for (;;) {
    struct stat st;
    if (::lstat(s.sock.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) break;
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      unregister_pid(pid);
      s.pid = -1;
      die("%s (%s) exited before creating its socket; see %s", s.name.c_str(), s.argv[0].c_str(),
          s.log_path.c_str());
    }
    if (std::chrono::steady_clock::now() > deadline)
      die("%s did not create its socket in time; see %s", s.name.c_str(), s.log_path.c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  if (s.kind == Kind::grpc && s.grpcpp_client) {
    s.gclient = ember::perf::GrpcppInstanceClient::connect(s.sock);
    // SessionContext{session_id "bench-session", application{name "echo"}}
    static constexpr char kEnter[] =
        "\x0a\x0d"
        "bench-session"
        "\x12\x06\x0a\x04"
        "echo";
    auto r = s.gclient->call("/flame.v1.Instance/OnSessionEnter",
                             std::string_view(kEnter, sizeof kEnter - 1));
    if (!r.ok) die("%s: OnSessionEnter failed: %s", s.name.c_str(), r.message.c_str());
    auto res = fl::wire::decode_result(ember::Bytes::copy(r.message));
    if (!res || res->return_code != 0)
      die("%s: OnSessionEnter did not succeed: %s", s.name.c_str(),
          res ? res->message.value_or("").c_str() : res.error().c_str());
  } else if (s.kind == Kind::grpc) {
    // InstanceClient keeps its socket private; it takes the lowest free fd,
    // which we find beforehand and check afterwards (the peer's path).
    int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ::close(probe);
    fl::InstanceClientOptions co;
    co.spin_wait = g_client_spin;
    auto c = fl::InstanceClient::connect(s.sock, co);
    if (!c) die("%s: %s", s.name.c_str(), c.error().message.c_str());
    if (is_peer(probe, s.dir)) {
      set_io_timeout(probe, lo.stall_ms);
    } else {
      // Not found: fall back to the client's poll() timeout (one more syscall per read).
      c->reset();
      co.io_timeout_ms = lo.stall_ms;
      c = fl::InstanceClient::connect(s.sock, co);
      if (!c) die("%s: %s", s.name.c_str(), c.error().message.c_str());
      progress("%s: client socket not found; stall detection uses poll()\n", s.name.c_str());
    }
    s.client = std::move(*c);
    auto r = s.client->enter("bench-session", "echo", std::nullopt);
    if (!r) die("%s: OnSessionEnter failed: %s", s.name.c_str(), r.error().message.c_str());
    if (r->return_code != 0) die("%s: OnSessionEnter returned %d", s.name.c_str(), r->return_code);
  } else {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, s.sock.data(), s.sock.size());
    int fd = -1;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int sndbuf = fl::InstanceClientOptions{}.socket_send_buffer;  // as the gRPC client's
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
      ::close(fd);
      fd = -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (fd < 0) die("%s: cannot connect to %s", s.name.c_str(), s.sock.c_str());
    set_io_timeout(fd, lo.stall_ms);
    s.raw_fd = fd;
  }
  if (lo.nice) {
    TuneResult t = tune_threads(pid);
    applied.push_back(strprintf("%d thread(s) tuned%s, slice read back %llu us", t.threads,
                                t.failed ? " (some FAILED)" : "",
                                static_cast<unsigned long long>(t.slice_read_back / 1000)));
  }
  s.tuning.clear();
  for (size_t i = 0; i < applied.size(); ++i)
    s.tuning += (i ? ", " : "") + applied[i];
}

// ---- load: one measurement -------------------------------------------------------------

struct Scenario {
  std::string name;
  size_t size = 0;
  int depth = 1;
};

// One input buffer per call in flight: a 4-byte length (for the floor) then
// the payload (for both). A slot is rewritten only after its call completed,
// and each call gets its sequence number stamped in, so a stale or mixed-up
// answer cannot pass the byte-exact check.
struct Slots {
  size_t size;
  std::vector<std::unique_ptr<uint8_t[]>> buf;
  std::vector<std::optional<ember::Bytes>> input;
  std::vector<int64_t> started;

  Slots(size_t sz, int depth) : size(sz) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < depth; ++i) {
      buf.emplace_back(new uint8_t[4 + sz]);
      uint32_t len = static_cast<uint32_t>(sz);
      std::memcpy(buf.back().get(), &len, 4);
      for (size_t j = 0; j < sz; ++j) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.back()[4 + j] = static_cast<uint8_t>(x);
      }
      input.emplace_back(ember::Bytes::unowned(std::span<const uint8_t>(payload(i), sz)));
      started.push_back(0);
    }
  }
  uint8_t* payload(int i) { return buf[static_cast<size_t>(i)].get() + 4; }
  uint8_t* frame(int i) { return buf[static_cast<size_t>(i)].get(); }
  void stamp(int i, uint64_t seq) {
    uint8_t* p = payload(i);
    std::memcpy(p, &seq, std::min<size_t>(8, size));
    if (size >= 16) std::memcpy(p + size - 8, &seq, 8);
  }
};

// The server stopped answering (or the connection broke): the measurement is
// void and the server is restarted. A wrong answer is not a stall: it aborts.
struct Stall {
  std::string what;
};
[[noreturn]] void stall(const std::string& server, const std::string& what) {
  throw Stall{server + ": " + what};
}

struct Budget {
  int64_t seconds_ns = 0;  // > 0: run for this long
  uint64_t tasks = 0;      // > 0: run this many tasks
};

struct RunStats {
  uint64_t tasks = 0;
  int64_t wall_ns = 0;
  double server_cpu_s = 0;
  double client_cpu_s = 0;
  std::vector<uint32_t> lat_ns;
  bool stalled = false;
  std::string error;
};

std::string g_session = "bench";  // short ids keep the client's no-copy head path

struct Loader {
  Server& server;
  Slots& slots;
  int depth;
  uint64_t seq = 0;
  bool record = false;
  std::vector<uint32_t>* lat = nullptr;
  int stall_ms = 10'000;

  void record_latency(int slot) {
    if (!record) return;
    int64_t d = now_ns() - slots.started[static_cast<size_t>(slot)];
    lat->push_back(static_cast<uint32_t>(std::clamp<int64_t>(d, 0, UINT32_MAX)));
  }

  // Runs calls until the budget is spent; returns the number completed.
  uint64_t run(const Budget& b) {
    if (server.kind == Kind::grpc) return server.gclient ? run_grpcpp(b) : run_grpc(b);
    return depth == 1 ? run_raw1(b) : run_raw(b);
  }

  bool more(const Budget& b, int64_t t0, uint64_t issued) const {
    if (b.tasks) return issued < b.tasks;
    return now_ns() - t0 < b.seconds_ns;
  }

  void check_grpc(const fl::Completion& c, int slot) {
    if (!c.status.ok())
      die("%s: task failed with gRPC status %d: %s", server.name.c_str(),
          static_cast<int>(c.status.code), c.status.message.c_str());
    if (!c.message) die("%s: OK response without a message", server.name.c_str());
    check_output(*c.message, slot);
  }

  void check_output(const ember::Bytes& message, int slot) {
    auto o = fl::wire::decode_task_result(message);
    if (!o) die("%s: %s", server.name.c_str(), o.error().c_str());
    if (o->return_code != 0)
      die("%s: return_code %d (%s)", server.name.c_str(), o->return_code,
          o->message.value_or("").c_str());
    std::string_view want(reinterpret_cast<const char*>(slots.payload(slot)), slots.size);
    if (!o->output || o->output->view() != want)
      die("%s: output differs from input (%zu bytes sent, %zu received)", server.name.c_str(),
          slots.size, o->output ? o->output->size() : size_t{0});
  }

  // Stamps `slot` for its next call and starts its clock; returns the call's
  // task id (its sequence number in decimal, written to `id`).
  std::string_view begin_call(int slot, char (&id)[24], uint64_t* seq_out = nullptr) {
    uint64_t s = seq++;
    slots.stamp(slot, s);
    auto [end, ec] = std::to_chars(id, id + sizeof id, s);
    (void)ec;
    slots.started[static_cast<size_t>(slot)] = now_ns();
    if (seq_out) *seq_out = s;
    return {id, static_cast<size_t>(end - id)};
  }

  uint64_t run_grpc(const Budget& b) {
    fl::InstanceClient& c = *server.client;
    std::vector<fl::Completion> done;
    done.reserve(static_cast<size_t>(depth) + 8);
    int64_t t0 = now_ns();
    uint64_t issued = 0, completed = 0;
    int inflight = 0;
    auto issue = [&](int slot) {
      char id[24];
      uint64_t s;
      std::string_view task_id = begin_call(slot, id, &s);
      uint64_t tag = (s << 8) | static_cast<uint64_t>(slot);
      auto r = c.start_task(tag, task_id, g_session, slots.input[static_cast<size_t>(slot)]);
      if (!r) stall(server.name, "start_task: " + r.error().message);
      ++issued;
      ++inflight;
    };
    for (int i = 0; i < depth && more(b, t0, issued); ++i)
      issue(i);
    while (inflight > 0) {
      done.clear();
      if (auto r = c.wait(done); !r)
        stall(server.name, r.error().code == -EAGAIN
                               ? strprintf("no answer for %.1f s with %d call(s) in flight",
                                           stall_ms / 1000.0, inflight)
                               : r.error().message);
      for (const auto& comp : done) {
        int slot = static_cast<int>(comp.tag & 0xFF);
        record_latency(slot);
        check_grpc(comp, slot);
        --inflight;
        ++completed;
        if (more(b, t0, issued)) issue(slot);
      }
    }
    return completed;
  }

  // The grpc++ client: the same calls through gRPC core's HTTP/2.
  uint64_t run_grpcpp(const Budget& b) {
    ember::perf::GrpcppInstanceClient& c = *server.gclient;
    int64_t t0 = now_ns();
    uint64_t issued = 0, completed = 0;
    int inflight = 0;
    auto issue = [&](int slot) {
      char id[24];
      fl::wire::EncodedMessage m = fl::wire::encode_task_context(
          begin_call(slot, id), g_session, slots.input[static_cast<size_t>(slot)]);
      c.start_task(static_cast<uint64_t>(slot), m.head_span(),
                   std::span<const uint8_t>(m.body.data(), m.body.size()));
      ++issued;
      ++inflight;
    };
    for (int i = 0; i < depth && more(b, t0, issued); ++i)
      issue(i);
    ember::perf::GrpcppInstanceClient::Completion comp;
    while (inflight > 0) {
      if (c.next(comp, stall_ms, g_client_spin) == ember::perf::GrpcppInstanceClient::Wait::timeout)
        stall(server.name, strprintf("no answer for %.1f s with %d call(s) in flight",
                                     stall_ms / 1000.0, inflight));
      int slot = static_cast<int>(comp.tag);
      record_latency(slot);
      if (!comp.ok) die("%s: task failed: %s", server.name.c_str(), comp.message.c_str());
      check_output(ember::Bytes::from(std::move(comp.message)), slot);
      --inflight;
      ++completed;
      if (more(b, t0, issued)) issue(slot);
    }
    return completed;
  }

  // Floor client, one call at a time: blocking write, blocking read.
  uint64_t run_raw1(const Budget& b) {
    int fd = server.raw_fd;
    std::vector<uint8_t> rbuf(4 + slots.size);
    int64_t t0 = now_ns();
    uint64_t done = 0;
    while (more(b, t0, done)) {
      slots.stamp(0, seq++);
      slots.started[0] = now_ns();
      const uint8_t* p = slots.frame(0);
      size_t n = 4 + slots.size;
      while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) stall("floor", std::string("write: ") + std::strerror(errno));
        p += w;
        n -= static_cast<size_t>(w);
      }
      size_t got = 0;
      uint64_t spins = 0;
      while (got < rbuf.size()) {
        ssize_t r = g_client_spin ? ::recv(fd, rbuf.data() + got, rbuf.size() - got, MSG_DONTWAIT)
                                  : ::read(fd, rbuf.data() + got, rbuf.size() - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN && g_client_spin) {
          // Spinning has no SO_RCVTIMEO: check for a stall now and then.
          if ((++spins & 0xffff) == 0 && now_ns() - slots.started[0] > g_stall_ns)
            stall("floor", "no answer");
          continue;
        }
        if (r <= 0) stall("floor", r == 0 ? "connection closed" : std::strerror(errno));
        got += static_cast<size_t>(r);
      }
      record_latency(0);
      if (std::memcmp(rbuf.data(), slots.frame(0), rbuf.size()) != 0)
        die("floor: echo differs from input");
      ++done;
    }
    return done;
  }

  // Floor client, many in flight: non-blocking, poll() for both directions
  // so large pipelined messages cannot deadlock against a blocking server.
  uint64_t run_raw(const Budget& b) {
    int fd = server.raw_fd;
    int fl_ = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl_ | O_NONBLOCK);
    size_t frame = 4 + slots.size;
    std::vector<uint8_t> rbuf(2 * frame + 65536);
    size_t rused = 0;
    std::deque<int> sendq, waiting;  // slots to send; slots sent, in order
    size_t send_off = 0;
    int64_t t0 = now_ns();
    uint64_t issued = 0, completed = 0;
    auto issue = [&](int slot) {
      slots.stamp(slot, seq++);
      slots.started[static_cast<size_t>(slot)] = now_ns();
      sendq.push_back(slot);
      ++issued;
    };
    for (int i = 0; i < depth && more(b, t0, issued); ++i)
      issue(i);
    while (!sendq.empty() || !waiting.empty()) {
      bool progress = false;
      while (!sendq.empty()) {
        // Every queued request in one writev, as the gRPC client does: the
        // server then finds a batch per read instead of one wake-up each.
        iovec iov[256];
        int cnt = 0;
        for (size_t i = 0; i < sendq.size() && cnt < 256; ++i, ++cnt) {
          size_t off = i == 0 ? send_off : 0;
          iov[cnt] = {slots.frame(sendq[i]) + off, frame - off};
        }
        ssize_t w = ::writev(fd, iov, cnt);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) break;
        if (w <= 0) stall("floor", std::string("write: ") + std::strerror(errno));
        progress = true;
        size_t n = static_cast<size_t>(w);
        while (n > 0) {
          size_t take = std::min(n, frame - send_off);
          send_off += take;
          n -= take;
          if (send_off == frame) {
            send_off = 0;
            waiting.push_back(sendq.front());
            sendq.pop_front();
          }
        }
      }
      ssize_t r = ::read(fd, rbuf.data() + rused, rbuf.size() - rused);
      if (r == 0) stall("floor", "connection closed");
      if (r < 0 && errno != EAGAIN && errno != EINTR) stall("floor", std::strerror(errno));
      if (r > 0) {
        progress = true;
        rused += static_cast<size_t>(r);
        size_t at = 0;
        while (rused - at >= frame) {
          if (waiting.empty()) die("floor: answer without a request");
          int slot = waiting.front();
          waiting.pop_front();
          record_latency(slot);
          if (std::memcmp(rbuf.data() + at, slots.frame(slot), frame) != 0)
            die("floor: echo differs from input");
          at += frame;
          ++completed;
          if (more(b, t0, issued)) issue(slot);
        }
        std::memmove(rbuf.data(), rbuf.data() + at, rused - at);
        rused -= at;
      }
      if (!progress) {
        pollfd p{fd, static_cast<short>(POLLIN | (sendq.empty() ? 0 : POLLOUT)), 0};
        if (::poll(&p, 1, stall_ms) == 0) stall("floor", "no progress within the stall timeout");
      }
    }
    ::fcntl(fd, F_SETFL, fl_);
    return completed;
  }
};

RunStats measure(Server& s, Slots& slots, int depth, const Budget& warm, const Budget& timed,
                 bool tune, int stall_ms) {
  Loader ld{s, slots, depth};
  ld.stall_ms = stall_ms;
  RunStats st;
  try {
    ld.run(warm);
    if (tune) tune_threads(s.pid);  // threads grpc++ may have started since
    st.lat_ns.reserve(1 << 16);
    ld.record = true;
    ld.lat = &st.lat_ns;
    double srv0 = proc_cpu_seconds(s.pid), cli0 = self_cpu_seconds();
    int64_t t0 = now_ns();
    st.tasks = ld.run(timed);
    st.wall_ns = now_ns() - t0;
    st.server_cpu_s = proc_cpu_seconds(s.pid) - srv0;
    st.client_cpu_s = self_cpu_seconds() - cli0;
  } catch (const Stall& e) {
    st.stalled = true;
    st.error = e.what;
  }
  return st;
}

// ---- allocation counting ---------------------------------------------------------------

using Counters = std::map<std::string, uint64_t>;

Counters parse_counters(const std::string& text) {
  Counters c;
  std::istringstream in(text);
  std::string k;
  uint64_t v;
  while (in >> k >> v)
    c[k] = v;
  return c;
}

// SIGUSR2 makes the shim write its counters; wait for dump number `seq`.
Counters dump_counters(const Server& s, const std::string& path, uint64_t seq) {
  ::kill(s.pid, SIGUSR2);
  for (int i = 0; i < 5000; ++i) {
    Counters c = parse_counters(read_file(path));
    if (c["seq"] == seq) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  die("%s: the allocation counter did not answer SIGUSR2 (is the LD_PRELOAD shim loaded?)",
      s.name.c_str());
}

const char* const kAllocKeys[] = {"malloc",        "calloc",   "realloc", "posix_memalign",
                                  "aligned_alloc", "memalign", "valloc",  "pvalloc",
                                  "reallocarray",  "new"};
const char* const kFreeKeys[] = {"free", "delete"};

struct AllocResult {
  size_t size;
  uint64_t tasks;
  double allocs_per_task, frees_per_task;
  std::string breakdown;  // nonzero counters per task
};

// ---- syscall counting (perf stat on the server) -------------------------------------------

constexpr const char* kPerf = "/usr/bin/perf";
const char* const kSysEvents[] = {"raw_syscalls:sys_enter",
                                  "syscalls:sys_enter_read",
                                  "syscalls:sys_enter_readv",
                                  "syscalls:sys_enter_recvmsg",
                                  "syscalls:sys_enter_recvfrom",
                                  "syscalls:sys_enter_write",
                                  "syscalls:sys_enter_writev",
                                  "syscalls:sys_enter_sendmsg",
                                  "syscalls:sys_enter_sendto",
                                  "syscalls:sys_enter_epoll_wait",
                                  "syscalls:sys_enter_epoll_pwait",
                                  "syscalls:sys_enter_futex",
                                  "context-switches"};

struct SysCount {
  std::string scenario, server;
  uint64_t tasks = 0;
  std::map<std::string, double> per_task;  // event -> count per task
  std::string error;
};

// Counts the server's syscalls over `work` with perf stat attached to its
// pid. Tracepoints slow every syscall, so this is never a timed run.
SysCount count_syscalls(const Server& s, const std::string& tmp_file,
                        const std::function<uint64_t()>& work) {
  SysCount r;
  std::string events;
  for (const char* e : kSysEvents) {
    if (!events.empty()) events += ',';
    events += e;
  }
  ::unlink(tmp_file.c_str());
  std::vector<std::string> args = {
      kPerf, "stat", "-x,", "-o", tmp_file, "-e", events, "-p", std::to_string(s.pid)};
  pid_t perf = ::fork();
  if (perf == 0) {
    std::vector<char*> av;
    for (auto& a : args)
      av.push_back(a.data());
    av.push_back(nullptr);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execv(kPerf, av.data());
    ::_exit(127);
  }
  // perf stat says nothing when it is attached; give it time to open its events.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  int st = 0;
  if (::waitpid(perf, &st, WNOHANG) == perf) {
    r.error = "perf stat exited early (is linux-perf installed, tracefs mounted?)";
    return r;
  }
  try {
    r.tasks = work();
  } catch (const Stall& e) {
    r.error = e.what;
  }
  ::kill(perf, SIGINT);
  ::waitpid(perf, &st, 0);
  std::istringstream in(read_file(tmp_file));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, ',');
    // value,unit,event,... (an empty unit is dropped by split)
    if (f.size() < 2 || f[0].find_first_not_of("0123456789.") != std::string::npos) continue;
    std::string ev =
        f[1].find(':') != std::string::npos || f[1] == "context-switches" ? f[1] : f[2];
    if (r.tasks) r.per_task[ev] = std::atof(f[0].c_str()) / static_cast<double>(r.tasks);
  }
  if (r.per_task.empty() && r.error.empty()) r.error = "no counts from perf stat";
  return r;
}

// ---- options ------------------------------------------------------------------------------

struct Options {
  int rounds = 5;
  double seconds = 2.0;
  uint64_t tasks = 0;
  std::vector<Scenario> scenarios;
  std::vector<std::string> servers{"ember", "grpc++", "floor", "ember/gc", "grpc++/gc"};
  std::string out;
  std::string ember = EMBER_PERF_EMBER_ECHO;
  std::string grpcpp = EMBER_PERF_GRPCPP_ECHO;
  std::string pingpong = EMBER_PERF_PINGPONG;
  std::string shim = EMBER_PERF_ALLOC_SHIM;
  std::string ember_wrap, grpcpp_wrap;
  uint64_t ember_busy_poll_us = 0;
  std::vector<size_t> alloc_sizes{64, 4096, 65536};
  uint64_t alloc_tasks = 5000;
  double stall_seconds = 10;
  bool alloc = true;
  bool syscalls = true;
  uint64_t syscall_tasks = 20000;
  bool pin = true;
  bool nice = true;
  bool own_session = true;
  bool plot = true;
  bool strict = false;
  bool quick = false;
};

void usage(FILE* f) {
  std::fprintf(
      f,
      "usage: ember-bench-flame [options]\n"
      "  --rounds N           interleaved rounds per scenario (default 5)\n"
      "  --seconds S          timed seconds per measurement (default 2)\n"
      "  --tasks N            fixed tasks per measurement instead of --seconds\n"
      "  --scenarios LIST     comma list of SIZE-xDEPTH, e.g. 64B-x1,1MiB-x1,64B-x16\n"
      "                       (default: 64B, 4KiB, 1MiB at 1 and 16 in flight)\n"
      "  --servers LIST       subset of ember,grpc++,floor,ember/gc,grpc++/gc (default: all;\n"
      "                       /gc: the same server driven by a grpc++ client)\n"
      "  --out DIR            results directory (default perf/results/<timestamp>)\n"
      "  --ember-server PATH  Ember echo binary (default: the built example)\n"
      "  --grpcpp-server PATH grpc++ echo binary\n"
      "  --floor-server PATH  raw ping-pong server binary\n"
      "  --alloc-shim PATH    LD_PRELOAD heap-call counter\n"
      "  --ember-wrap CMD     prefix for the Ember server (e.g. \"perf record -g --\")\n"
      "  --ember-busy-poll US run Ember with EMBER_BUSY_POLL_US=US (poll, don't sleep,\n"
      "                       for US microseconds after each request)\n"
      "  --client-spin        the load generator polls its socket instead of sleeping\n"
      "                       (all servers alike; removes client wake-up latency)\n"
      "  --grpcpp-wrap CMD    prefix for the grpc++ server\n"
      "  --alloc-tasks N      tasks per size when counting allocations (default 5000)\n"
      "  --stall-timeout S    a server silent this long has stalled: the measurement\n"
      "                       is void, the server restarted, the exit status 4 (default 10)\n"
      "  --no-alloc           skip the allocation count\n"
      "  --syscall-tasks N    tasks per scenario for the syscall count (default 20000)\n"
      "  --no-syscalls        skip the syscall count (perf stat on the server)\n"
      "  --server-cpu N       core for the servers (default 0)\n"
      "  --client-cpu N       core for the load generator (default 1)\n"
      "  --no-pin             no pinning\n"
      "  --no-nice            no nice -19, slice or autogroup nice\n"
      "  --no-tune            --no-pin and --no-nice\n"
      "  --no-setsid          keep the bench in the caller's session\n"
      "  --no-plot            skip the PNG\n"
      "  --strict             exit 3 when a target fails\n"
      "  --quick              smoke run: 2 rounds x 0.25 s, 300 alloc tasks, 5 s stall\n"
      "                       timeout (< 1 min)\n"
      "  --help\n");
}

[[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "ember-bench-flame: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  for (auto& p : g_server_pids)
    if (p > 0) ::kill(-p, SIGKILL);
  std::exit(1);
}

Scenario parse_scenario(const std::string& s) {
  size_t x = s.find("-x");
  std::optional<size_t> size = parse_size(x == std::string::npos ? s : s.substr(0, x));
  int depth = x == std::string::npos ? 1 : std::atoi(s.c_str() + x + 2);
  if (!size || depth < 1 || depth > 255)
    die("bad scenario \"%s\" (want SIZE-xDEPTH, e.g. 4KiB-x16, depth 1..255)", s.c_str());
  if (*size > (4u << 20) - 64)
    die("scenario %s: the client accepts answers up to 4 MiB", s.c_str());
  return Scenario{size_name(*size) + "-x" + std::to_string(depth), *size, depth};
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool rounds_set = false, seconds_set = false, alloc_set = false, stall_set = false;
  bool sys_set = false;
  std::string scen;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) die("%s needs a value", argv[i]);
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rounds")
      o.rounds = std::atoi(need(i).c_str()), rounds_set = true;
    else if (a == "--seconds")
      o.seconds = std::atof(need(i).c_str()), seconds_set = true;
    else if (a == "--tasks")
      o.tasks = std::strtoull(need(i).c_str(), nullptr, 10);
    else if (a == "--scenarios")
      scen = need(i);
    else if (a == "--servers")
      o.servers = split(need(i), ',');
    else if (a == "--out")
      o.out = need(i);
    else if (a == "--ember-server")
      o.ember = need(i);
    else if (a == "--grpcpp-server")
      o.grpcpp = need(i);
    else if (a == "--floor-server")
      o.pingpong = need(i);
    else if (a == "--alloc-shim")
      o.shim = need(i);
    else if (a == "--ember-wrap")
      o.ember_wrap = need(i);
    else if (a == "--grpcpp-wrap")
      o.grpcpp_wrap = need(i);
    else if (a == "--alloc-tasks")
      o.alloc_tasks = std::strtoull(need(i).c_str(), nullptr, 10), alloc_set = true;
    else if (a == "--stall-timeout")
      o.stall_seconds = std::atof(need(i).c_str()), stall_set = true;
    else if (a == "--no-alloc")
      o.alloc = false;
    else if (a == "--no-syscalls")
      o.syscalls = false;
    else if (a == "--syscall-tasks")
      o.syscall_tasks = std::strtoull(need(i).c_str(), nullptr, 10), sys_set = true;
    else if (a == "--no-tune")
      o.pin = o.nice = false;
    else if (a == "--no-pin")
      o.pin = false;
    else if (a == "--no-nice")
      o.nice = false;
    else if (a == "--server-cpu")
      g_server_cpu = std::atoi(need(i).c_str());
    else if (a == "--client-cpu")
      g_client_cpu = std::atoi(need(i).c_str());
    else if (a == "--client-spin")
      g_client_spin = true;
    else if (a == "--ember-busy-poll")
      o.ember_busy_poll_us = std::strtoull(need(i).c_str(), nullptr, 10);
    else if (a == "--no-setsid")
      o.own_session = false;
    else if (a == "--no-plot")
      o.plot = false;
    else if (a == "--strict")
      o.strict = true;
    else if (a == "--quick")
      o.quick = true;
    else if (a == "--help" || a == "-h")
      usage(stdout), std::exit(0);
    else {
      usage(stderr);
      die("unknown argument %s", a.c_str());
    }
  }
  if (o.quick) {
    if (!rounds_set) o.rounds = 2;
    if (!seconds_set) o.seconds = 0.25;
    if (!alloc_set) o.alloc_tasks = 300;
    if (!stall_set) o.stall_seconds = 5;
    if (!sys_set) o.syscall_tasks = 2000;
  }
  if (scen.empty()) scen = "64B-x1,4KiB-x1,1MiB-x1,64B-x16,4KiB-x16,1MiB-x16";
  for (const auto& s : split(scen, ','))
    o.scenarios.push_back(parse_scenario(s));
  for (const auto& s : o.servers)
    if (s != "ember" && s != "grpc++" && s != "floor" && s != "ember/gc" && s != "grpc++/gc")
      die("unknown server \"%s\" (ember, grpc++, floor, ember/gc, grpc++/gc)", s.c_str());
  if (o.rounds < 1 || (o.tasks == 0 && o.seconds <= 0)) die("need --rounds >= 1 and a budget");
  return o;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// ---- the run --------------------------------------------------------------------------------

struct Measurement {
  std::string scenario, server;
  int round;
  RunStats st;
  double tps() const { return st.tasks / (st.wall_ns * 1e-9); }
  double p50_us() const { return percentile(st.lat_ns, 0.50) / 1000; }
  double p99_us() const { return percentile(st.lat_ns, 0.99) / 1000; }
  double srv_cpu_us() const { return st.server_cpu_s * 1e6 / static_cast<double>(st.tasks); }
  double cli_cpu_us() const { return st.client_cpu_s * 1e6 / static_cast<double>(st.tasks); }
  double srv_util() const { return st.server_cpu_s / (st.wall_ns * 1e-9); }
  double cli_util() const { return st.client_cpu_s / (st.wall_ns * 1e-9); }
  bool ok() const { return !st.stalled; }
};

struct Agg {
  double med = NAN, lo = NAN, hi = NAN;
};
Agg agg(const std::vector<double>& v) {
  Agg a;
  if (v.empty()) return a;
  a.med = median(v);
  a.lo = *std::min_element(v.begin(), v.end());
  a.hi = *std::max_element(v.begin(), v.end());
  return a;
}

std::string fmt_num(double v, int prec) {
  if (std::isnan(v)) return "-";
  return strprintf("%.*f", prec, v);
}
std::string fmt_agg(const Agg& a, int prec, bool range) {
  if (std::isnan(a.med)) return "-";
  if (!range || a.lo == a.hi) return fmt_num(a.med, prec);
  return fmt_num(a.med, prec) + " (" + fmt_num(a.lo, prec) + "-" + fmt_num(a.hi, prec) + ")";
}
std::string fmt_ratio(double v) {
  return std::isnan(v) || std::isinf(v) ? "-" : strprintf("%.2fx", v);
}

// A server's name as a file name: "grpc++/gc" -> "grpcpp-gc".
std::string file_name(std::string name) {
  for (size_t at; (at = name.find("++")) != std::string::npos;)
    name.replace(at, 2, "pp");
  std::replace(name.begin(), name.end(), '/', '-');
  return name;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_./=:,+@%") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string cpu_model() {
  std::istringstream in(read_file("/proc/cpuinfo"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string loadavg() {
  std::string l = read_file("/proc/loadavg");
  auto parts = split(l, ' ');
  return parts.size() >= 3 ? parts[0] + " " + parts[1] + " " + parts[2] : l;
}

// Runs a child to completion (the plot script).
int run_child(const std::vector<std::string>& args) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> av;
    std::vector<std::string> copy = args;
    for (auto& a : copy)
      av.push_back(a.data());
    av.push_back(nullptr);
    ::dup2(2, 1);
    ::execv(av[0], av.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::vector<std::string> server_argv(const std::string& wrap, const std::string& path) {
  std::vector<std::string> v = split(wrap, ' ');
  if (!v.empty() && v[0].find('/') == std::string::npos) {
    // execve does not search PATH.
    for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/bin/"})
      if (::access((dir + v[0]).c_str(), X_OK) == 0) {
        v[0] = dir + v[0];
        break;
      }
  }
  v.push_back(path);
  return v;
}

// Forks so the bench runs in a session of its own (its own autogroup, whose
// nice we may then set without touching the caller's shell); the parent only
// forwards signals and the exit status.
pid_t g_child = 0;
void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}
void become_session_leader() {
  if (::getsid(0) == ::getpid()) return;
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid < 0) return;
  if (pid == 0) {
    ::setsid();
    return;
  }
  g_child = pid;
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
    ::sigaction(sig, &sa, nullptr);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  std::_Exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  std::string cmdline;
  for (int i = 0; i < argc; ++i)
    cmdline += (i ? " " : "") + shell_quote(argv[i]);
  if (o.nice && o.own_session) become_session_leader();
  ::signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
    ::signal(sig, on_fatal_signal);

  // ---- results directory
  if (o.out.empty()) {
    char ts[32];
    time_t t = ::time(nullptr);
    std::strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", std::localtime(&t));
    o.out = std::string(EMBER_PERF_SOURCE_DIR) + "/results/" + ts;
  }
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) die("cannot create %s: %s", o.out.c_str(), ec.message().c_str());
  fs::create_directories(o.out + "/latency", ec);
  g_report = std::fopen((o.out + "/report.txt").c_str(), "w");

  // ---- client tuning
  std::string client_tuning;
  {
    std::vector<std::string> a;
    a.push_back(::getsid(0) == ::getpid() ? "own session" : "caller's session");
    if (o.pin)
      a.push_back(pin(0, g_client_cpu) ? "cpu " + std::to_string(g_client_cpu) : "pin FAILED");
    else
      a.push_back("unpinned");
    if (o.nice) {
      int e = set_sched(0);
      a.push_back(e == 0 ? "SCHED_OTHER nice -19 slice 100us (sched_setattr)"
                         : std::string("sched_setattr FAILED: ") + std::strerror(e));
      if (::getsid(0) == ::getpid())
        a.push_back(set_autogroup_nice(::getpid()) ? "autogroup nice -19" : "autogroup n/a");
    } else {
      a.push_back("default nice and slice");
    }
    for (size_t i = 0; i < a.size(); ++i)
      client_tuning += (i ? ", " : "") + a[i];
  }

  // ---- header
  utsname u{};
  ::uname(&u);
  char when[64];
  time_t t = ::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  outf("ember-bench-flame  %s\n", when);
  outf("command : %s\n", cmdline.c_str());
  outf("machine : nproc %ld, %s, %s %s %s\n", ::sysconf(_SC_NPROCESSORS_ONLN), cpu_model().c_str(),
       u.sysname, u.release, u.machine);
  outf(
      "load    : loadavg %s at start (other work on the machine makes absolute numbers noisy;"
      " compare ratios)\n",
      loadavg().c_str());
  outf("budget  : %d round(s) per scenario, %s per measurement, servers interleaved %s\n", o.rounds,
       o.tasks ? (std::to_string(o.tasks) + " tasks").c_str()
               : strprintf("%.2f s", o.seconds).c_str(),
       [&] {
         std::string s;
         for (const auto& n : o.servers)
           s += (s.empty() ? "" : " ") + n;
         return s + " " + s + " ...";
       }()
           .c_str());
  outf("client  : %s\n", client_tuning.c_str());
  outf("mode    : client %s; ember %s\n",
       g_client_spin ? "spins on its socket (no wake-up on the client side)"
                     : "blocks in read() (as Flame's executor)",
       o.ember_busy_poll_us ? ("EMBER_BUSY_POLL_US=" + std::to_string(o.ember_busy_poll_us)).c_str()
                            : "on defaults (sleeps in epoll between requests)");
  outf("results : %s\n", o.out.c_str());

  // ---- servers
  auto make = [&](const std::string& name) {
    auto s = std::make_unique<Server>();
    s->name = name;
    s->grpcpp_client = name.ends_with("/gc");
    if (name == "ember" || name == "ember/gc") {
      s->argv = server_argv(o.ember_wrap, o.ember);
      if (o.ember_busy_poll_us)
        s->env.emplace_back("EMBER_BUSY_POLL_US", std::to_string(o.ember_busy_poll_us));
    }
    if (name == "grpc++" || name == "grpc++/gc") s->argv = server_argv(o.grpcpp_wrap, o.grpcpp);
    if (name == "floor") {
      s->argv = {o.pingpong};
      s->kind = Kind::raw;
    }
    std::string file = file_name(name);
    s->log_path = o.out + "/server-" + file + ".log";
    return s;
  };
  std::vector<std::unique_ptr<Server>> servers;
  LaunchOptions lo;
  lo.pin = o.pin;
  lo.nice = o.nice;
  lo.stall_ms = static_cast<int>(o.stall_seconds * 1000);
  g_stall_ns = static_cast<int64_t>(o.stall_seconds * 1e9);
  for (const auto& name : o.servers) {
    servers.push_back(make(name));
    progress("starting %s (%s)\n", name.c_str(), servers.back()->argv.back().c_str());
    launch(*servers.back(), lo);
  }
  // Idle RSS: after the session enter, before any task.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (auto& s : servers)
    s->idle_rss_kib = proc_status_kib(s->pid, "VmRSS:");
  for (auto& s : servers)
    outf("server  : %-6s pid %d, %s\n", s->name.c_str(), s->pid, s->tuning.c_str());
  out("\n");

  // ---- timed scenarios, interleaved
  std::vector<Measurement> ms;
  std::vector<std::string> stalls;
  std::FILE* csv = std::fopen((o.out + "/measurements.csv").c_str(), "w");
  std::fprintf(csv,
               "scenario,size,depth,server,round,tasks,seconds,tasks_per_s,p50_us,p99_us,"
               "server_cpu_us_per_task,client_cpu_us_per_task,server_core_util,client_core_"
               "util\n");
  std::FILE* lat_index = std::fopen((o.out + "/latency/index.csv").c_str(), "w");
  std::fprintf(lat_index, "scenario,size,depth,server,file\n");

  Budget timed, warm;
  if (o.tasks) {
    timed.tasks = o.tasks;
    warm.tasks = std::max<uint64_t>(o.tasks / 10, 2);
  } else {
    timed.seconds_ns = static_cast<int64_t>(o.seconds * 1e9);
    warm.seconds_ns = std::max<int64_t>(timed.seconds_ns / 10, 50'000'000);
  }
  size_t total = o.scenarios.size() * static_cast<size_t>(o.rounds) * servers.size(), step = 0;
  for (const auto& sc : o.scenarios) {
    Slots slots(sc.size, sc.depth);
    std::map<std::string, std::FILE*> lat_files;
    for (auto& s : servers) {
      std::string file = "latency/" + sc.name + "_" + file_name(s->name) + ".csv";
      lat_files[s->name] = std::fopen((o.out + "/" + file).c_str(), "w");
      std::fprintf(lat_files[s->name], "round,latency_ns\n");
      std::fprintf(lat_index, "%s,%zu,%d,%s,%s\n", sc.name.c_str(), sc.size, sc.depth,
                   s->name.c_str(), file.c_str());
    }
    for (int round = 1; round <= o.rounds; ++round) {
      for (auto& s : servers) {
        ++step;
        progress("[%zu/%zu] %-9s %-6s round %d/%d ... ", step, total, sc.name.c_str(),
                 s->name.c_str(), round, o.rounds);
        Measurement m{sc.name, s->name, round,
                      measure(*s, slots, sc.depth, warm, timed, o.nice, lo.stall_ms)};
        if (m.st.stalled) {
          progress("STALLED (%s); restarting %s\n", m.st.error.c_str(), s->name.c_str());
          std::fprintf(csv, "%s,%zu,%d,%s,%d,STALLED,,,,,,,,\n", sc.name.c_str(), sc.size, sc.depth,
                       s->name.c_str(), round);
          stalls.push_back(sc.name + " " + s->name + " round " + std::to_string(round) + ": " +
                           m.st.error);
          ms.push_back(std::move(m));
          s->stop();
          launch(*s, lo);
          continue;
        }
        std::sort(m.st.lat_ns.begin(), m.st.lat_ns.end());
        progress("%8.0f tasks/s  p50 %8.1f us  cpu %6.1f us/task\n", m.tps(), m.p50_us(),
                 m.srv_cpu_us());
        std::fprintf(csv, "%s,%zu,%d,%s,%d,%llu,%.6f,%.1f,%.2f,%.2f,%.3f,%.3f,%.3f,%.3f\n",
                     sc.name.c_str(), sc.size, sc.depth, s->name.c_str(), round,
                     static_cast<unsigned long long>(m.st.tasks), m.st.wall_ns * 1e-9, m.tps(),
                     m.p50_us(), m.p99_us(), m.srv_cpu_us(), m.cli_cpu_us(), m.srv_util(),
                     m.cli_util());
        std::FILE* lf = lat_files[s->name];
        for (uint32_t v : m.st.lat_ns)
          std::fprintf(lf, "%d,%u\n", round, v);
        m.st.lat_ns.shrink_to_fit();
        ms.push_back(std::move(m));
      }
    }
    for (auto& [n, f] : lat_files)
      std::fclose(f);
  }
  std::fclose(csv);
  std::fclose(lat_index);
  for (auto& s : servers) {
    s->end_rss_kib = proc_status_kib(s->pid, "VmRSS:");
    s->peak_rss_kib = proc_status_kib(s->pid, "VmHWM:");
  }

  // ---- syscalls per task: perf stat on each server, untimed
  std::vector<SysCount> sys;
  if (o.syscalls && ::access(kPerf, X_OK) != 0) {
    progress("syscalls: %s not found (Debian linux-perf); skipped\n", kPerf);
    o.syscalls = false;
  }
  if (o.syscalls) {
    for (const auto& sc : o.scenarios) {
      Slots slots(sc.size, sc.depth);
      // Big payloads take longer per task: fewer of them give as good a count.
      uint64_t n = sc.size > 65536 ? std::max<uint64_t>(o.syscall_tasks / 20, 50) : o.syscall_tasks;
      for (auto& s : servers) {
        progress("syscalls: %-9s %-6s %llu tasks under perf stat ... ", sc.name.c_str(),
                 s->name.c_str(), static_cast<unsigned long long>(n));
        Loader ld{*s, slots, sc.depth};
        ld.stall_ms = lo.stall_ms;
        try {
          ld.run(Budget{0, std::max<uint64_t>(n / 10, 16)});
        } catch (const Stall& e) {
          progress("STALLED in warm-up (%s)\n", e.what.c_str());
          s->stop();
          launch(*s, lo);
          continue;
        }
        SysCount c = count_syscalls(*s, o.out + "/perf-stat.tmp", [&] {
          return ld.run(Budget{0, n});
        });
        c.scenario = sc.name;
        c.server = s->name;
        if (!c.error.empty()) {
          progress("%s\n", c.error.c_str());
          if (c.error.find("no answer") != std::string::npos ||
              c.error.find("failed") != std::string::npos) {
            stalls.push_back("syscall count " + sc.name + " " + s->name + ": " + c.error);
            s->stop();
            launch(*s, lo);
          }
        } else {
          progress("%.1f syscalls/task\n", c.per_task["raw_syscalls:sys_enter"]);
        }
        sys.push_back(std::move(c));
      }
    }
    ::unlink((o.out + "/perf-stat.tmp").c_str());
  }

  // ---- per-scenario tables
  auto values = [&](const std::string& sc, const std::string& srv,
                    const std::function<double(const Measurement&)>& f) {
    std::vector<double> v;
    for (const auto& m : ms)
      if (m.scenario == sc && m.server == srv && m.ok()) v.push_back(f(m));
    return v;
  };
  auto med = [&](const std::string& sc, const std::string& srv,
                 const std::function<double(const Measurement&)>& f) {
    return agg(values(sc, srv, f)).med;
  };
  const auto f_tps = [](const Measurement& m) { return m.tps(); };
  const auto f_p50 = [](const Measurement& m) { return m.p50_us(); };
  const auto f_p99 = [](const Measurement& m) { return m.p99_us(); };
  const auto f_srv = [](const Measurement& m) { return m.srv_cpu_us(); };
  const auto f_cli = [](const Measurement& m) { return m.cli_cpu_us(); };
  const auto f_su = [](const Measurement& m) { return m.srv_util() * 100; };
  const auto f_cu = [](const Measurement& m) { return m.cli_util() * 100; };

  out("RESULTS  median (min-max) over rounds; latency is per call; CPU is per task\n");
  std::FILE* sum = std::fopen((o.out + "/summary.csv").c_str(), "w");
  std::fprintf(sum,
               "scenario,server,rounds,tasks_per_s,tasks_per_s_min,tasks_per_s_max,p50_us,p99_us,"
               "server_cpu_us_per_task,client_cpu_us_per_task,server_core_pct,client_core_pct,"
               "tps_vs_grpcpp,tps_vs_floor,p50_vs_grpcpp,p50_vs_floor,cpu_vs_grpcpp\n");
  for (const auto& sc : o.scenarios) {
    out("\n");
    outf("%s: %zu-byte input, %d in flight, one connection\n", sc.name.c_str(), sc.size, sc.depth);
    Table tb;
    tb.add({"server", "rounds", "tasks/s", "p50 us", "p99 us", "srv CPU us/task", "cli CPU us/task",
            "srv core", "cli core"});
    for (auto& s : servers) {
      const std::string& n = s->name;
      size_t good = values(sc.name, n, f_tps).size();
      size_t all =
          static_cast<size_t>(std::count_if(ms.begin(), ms.end(), [&](const Measurement& m) {
            return m.scenario == sc.name && m.server == n;
          }));
      tb.add({n, good == all ? std::to_string(all) : strprintf("%zu/%zu STALLED", all - good, all),
              fmt_agg(agg(values(sc.name, n, f_tps)), 0, true),
              fmt_agg(agg(values(sc.name, n, f_p50)), 1, true),
              fmt_agg(agg(values(sc.name, n, f_p99)), 1, true),
              fmt_agg(agg(values(sc.name, n, f_srv)), 1, true),
              fmt_agg(agg(values(sc.name, n, f_cli)), 1, false),
              fmt_num(med(sc.name, n, f_su), 0) + "%", fmt_num(med(sc.name, n, f_cu), 0) + "%"});
      auto ratio = [&](const std::function<double(const Measurement&)>& f, const char* other) {
        return has(o.servers, "ember") && has(o.servers, other)
                   ? med(sc.name, "ember", f) / med(sc.name, other, f)
                   : NAN;
      };
      std::fprintf(sum, "%s,%s,%d,%.1f,%.1f,%.1f,%.2f,%.2f,%.3f,%.3f,%.1f,%.1f", sc.name.c_str(),
                   n.c_str(), o.rounds, med(sc.name, n, f_tps), agg(values(sc.name, n, f_tps)).lo,
                   agg(values(sc.name, n, f_tps)).hi, med(sc.name, n, f_p50),
                   med(sc.name, n, f_p99), med(sc.name, n, f_srv), med(sc.name, n, f_cli),
                   med(sc.name, n, f_su), med(sc.name, n, f_cu));
      if (n == "ember")
        std::fprintf(sum, ",%.3f,%.3f,%.3f,%.3f,%.3f\n", ratio(f_tps, "grpc++"),
                     ratio(f_tps, "floor"), ratio(f_p50, "grpc++"), ratio(f_p50, "floor"),
                     ratio(f_srv, "grpc++"));
      else
        std::fprintf(sum, ",,,,,\n");
    }
    tb.print();
    if (has(o.servers, "ember")) {
      std::string r = "  ember vs";
      for (const char* other : {"grpc++", "floor"}) {
        if (!has(o.servers, other)) continue;
        r +=
            strprintf("  %s: tasks/s %s, p50 %s, p99 %s, srv CPU %s;", other,
                      fmt_ratio(med(sc.name, "ember", f_tps) / med(sc.name, other, f_tps)).c_str(),
                      fmt_ratio(med(sc.name, "ember", f_p50) / med(sc.name, other, f_p50)).c_str(),
                      fmt_ratio(med(sc.name, "ember", f_p99) / med(sc.name, other, f_p99)).c_str(),
                      fmt_ratio(med(sc.name, "ember", f_srv) / med(sc.name, other, f_srv)).c_str());
      }
      if (r.back() == ';') r.pop_back();
      out(r + "\n");
      // A ping-pong costs the server a sleep and a wake-up per call whatever
      // it runs; the floor pays those too. What is left is the server's own code.
      if (has(o.servers, "floor")) {
        double fl = med(sc.name, "floor", f_srv), e = med(sc.name, "ember", f_srv) - fl;
        std::string line =
            strprintf("  srv CPU/task above the floor's %.1f us: ember %.1f us", fl, e);
        if (has(o.servers, "grpc++")) {
          double g = med(sc.name, "grpc++", f_srv) - fl;
          line += strprintf(", grpc++ %.1f us (%s)", g,
                            e > 0 && g > 0.5 ? fmt_ratio(e / g).c_str() : "ratio n/a");
        }
        out(line + "\n");
      }
      // Who limited Ember's rate: the load generator's core, the server's, or
      // neither (a ping-pong waits on both in turn).
      double cu = med(sc.name, "ember", f_cu), su = med(sc.name, "ember", f_su);
      double cc = med(sc.name, "ember", f_cli), scpu = med(sc.name, "ember", f_srv);
      std::string verdict;
      if (o.pin && g_server_cpu == g_client_cpu)
        verdict =
            "server and load generator share one core: tasks/s is bounded by their sum "
            "of CPU per task, so server CPU/task is what ranks servers";
      else if (cu >= 90 && su < 90)
        verdict =
            "CLIENT-BOUND: the load generator's core was saturated, so tasks/s cannot "
            "rank servers here; compare server CPU/task and latency";
      else if (su >= 90 && cu < 90)
        verdict = "server-bound: the server's core was saturated, the load generator's was not";
      else if (sc.depth == 1)
        verdict = strprintf(
            "round-trip bound: neither core saturated; per call the client spent %.1f us and "
            "the server %.1f us of CPU, so %s",
            cc, scpu,
            scpu >= cc ? "the server, not the load generator, is the larger share"
                       : "the load generator's share is the larger one (same client for both "
                         "gRPC servers)");
      else
        verdict = "neither core saturated (waits on both sides)";
      outf("  bottleneck (ember): client core %.0f%%, server core %.0f%% -> %s\n", cu, su,
           verdict.c_str());
    }
    // The same servers under the grpc++ client: what a client nobody here
    // wrote sees, and what each server costs that client.
    if (has(o.servers, "ember/gc") && has(o.servers, "grpc++/gc")) {
      auto rt = [&](const std::function<double(const Measurement&)>& f) {
        return fmt_ratio(med(sc.name, "ember/gc", f) / med(sc.name, "grpc++/gc", f));
      };
      std::string line = strprintf(
          "  grpc++ client, ember/gc vs grpc++/gc: tasks/s %s, p50 %s, srv CPU %s, the client's "
          "CPU/task %s",
          rt(f_tps).c_str(), rt(f_p50).c_str(), rt(f_srv).c_str(), rt(f_cli).c_str());
      if (has(o.servers, "floor"))
        line += strprintf(
            "; ember/gc srv CPU vs the floor's %s",
            fmt_ratio(med(sc.name, "ember/gc", f_srv) / med(sc.name, "floor", f_srv)).c_str());
      out(line + "\n");
    }
  }
  std::fclose(sum);
  if (!stalls.empty()) {
    out("\nSTALLS  (server silent for the stall timeout; measurement void, server restarted)\n");
    for (const auto& st : stalls)
      out("  " + st + "\n");
  }

  if (!sys.empty()) {
    out("\nSYSCALLS PER TASK  (perf stat -p on the server over a separate, untimed run; "
        "reads = read/readv/recvmsg/recvfrom, writes = write/writev/sendmsg/sendto)\n");
    Table st;
    st.left = 2;
    st.add({"scenario", "server", "tasks", "syscalls", "reads", "writes", "epoll", "futex",
            "ctx switches"});
    std::FILE* scsv = std::fopen((o.out + "/syscalls.csv").c_str(), "w");
    std::fprintf(scsv, "scenario,server,tasks,event,per_task\n");
    for (auto& c : sys) {
      if (!c.error.empty()) {
        st.add({c.scenario, c.server, "-", c.error});
        continue;
      }
      auto& p = c.per_task;
      auto sum = [&](std::initializer_list<const char*> evs) {
        double v = 0;
        for (const char* e : evs)
          v += p[std::string("syscalls:sys_enter_") + e];
        return v;
      };
      st.add({c.scenario, c.server, std::to_string(c.tasks),
              fmt_num(p["raw_syscalls:sys_enter"], 2),
              fmt_num(sum({"read", "readv", "recvmsg", "recvfrom"}), 2),
              fmt_num(sum({"write", "writev", "sendmsg", "sendto"}), 2),
              fmt_num(sum({"epoll_wait", "epoll_pwait"}), 2), fmt_num(sum({"futex"}), 2),
              fmt_num(p["context-switches"], 2)});
      for (const auto& [ev, v] : p)
        std::fprintf(scsv, "%s,%s,%llu,%s,%.4f\n", c.scenario.c_str(), c.server.c_str(),
                     static_cast<unsigned long long>(c.tasks), ev.c_str(), v);
    }
    std::fclose(scsv);
    st.print();
  }

  // ---- memory and allocations
  out("\nMEMORY\n");
  Table mt;
  mt.add({"server", "idle RSS KiB", "end RSS KiB", "peak RSS KiB"});
  for (auto& s : servers)
    mt.add({s->name, std::to_string(s->idle_rss_kib), std::to_string(s->end_rss_kib),
            std::to_string(s->peak_rss_kib)});
  mt.print();
  out("  idle RSS: VmRSS after OnSessionEnter, before any task; end/peak: VmRSS/VmHWM after "
      "the timed runs\n");
  long ember_rss = -1, grpc_rss = -1;
  for (auto& s : servers) {
    if (s->name == "ember") ember_rss = s->idle_rss_kib;
    if (s->name == "grpc++") grpc_rss = s->idle_rss_kib;
  }
  for (auto& s : servers)
    s->stop();
  servers.clear();

  std::map<std::string, std::vector<AllocResult>> allocs;
  if (o.alloc) {
    out("\nHEAP CALLS PER TASK  (steady state, 1 in flight; LD_PRELOAD counter, SIGUSR2 "
        "before and after)\n");
    std::FILE* acsv = std::fopen((o.out + "/alloc.csv").c_str(), "w");
    std::fprintf(acsv, "server,size,tasks,allocs_per_task,frees_per_task,breakdown\n");
    Table at;
    at.add({"server", "input", "tasks", "allocs/task", "frees/task", "which calls (per task)"});
    for (const std::string name : {"ember", "grpc++"}) {
      if (!has(o.servers, name)) continue;
      auto s = make(name);
      std::string file = o.out + "/alloc-" + file_name(name) + ".txt";
      ::unlink(file.c_str());
      LaunchOptions alo = lo;
      alo.env = {{"LD_PRELOAD", o.shim}, {"EMBER_ALLOC_COUNT_FILE", file}};
      progress("allocations: starting %s under %s\n", name.c_str(), o.shim.c_str());
      launch(*s, alo);
      uint64_t seq = 0;
      Counters boot = dump_counters(*s, file, ++seq);
      uint64_t boot_allocs = 0;
      for (const char* k : kAllocKeys)
        boot_allocs += boot[k];
      if (boot_allocs == 0)
        die("%s: the shim counted no allocation at all: it is not interposing", name.c_str());
      outf("  %s: shim active, %llu heap allocations up to the session enter\n", name.c_str(),
           static_cast<unsigned long long>(boot_allocs));
      for (size_t size : o.alloc_sizes) {
        Slots slots(size, 1);
        Loader ld{*s, slots, 1};
        ld.stall_ms = lo.stall_ms;
        Counters before, after;
        uint64_t n = 0;
        try {
          ld.run(Budget{0, std::max<uint64_t>(o.alloc_tasks / 2, 100)});  // warm up
          before = dump_counters(*s, file, ++seq);
          n = ld.run(Budget{0, o.alloc_tasks});
          after = dump_counters(*s, file, ++seq);
        } catch (const Stall& e) {
          stalls.push_back("allocation count " + size_name(size) + ": " + e.what);
          progress("allocations: STALLED (%s)\n", e.what.c_str());
          break;
        }
        AllocResult r{size, n, 0, 0, ""};
        auto per = [&](const char* k) {
          return static_cast<double>(after[k] - before[k]) / static_cast<double>(n);
        };
        for (const char* k : kAllocKeys) {
          r.allocs_per_task += per(k);
          if (after[k] != before[k])
            r.breakdown += strprintf("%s%s %.2f", r.breakdown.empty() ? "" : ", ", k, per(k));
        }
        for (const char* k : kFreeKeys) {
          r.frees_per_task += per(k);
          if (after[k] != before[k])
            r.breakdown += strprintf("%s%s %.2f", r.breakdown.empty() ? "" : ", ", k, per(k));
        }
        if (r.breakdown.empty()) r.breakdown = "none";
        progress("allocations: %s %s: %.2f allocs/task\n", name.c_str(), size_name(size).c_str(),
                 r.allocs_per_task);
        at.add({name, size_name(size), std::to_string(n), fmt_num(r.allocs_per_task, 2),
                fmt_num(r.frees_per_task, 2), r.breakdown});
        std::fprintf(acsv, "%s,%zu,%llu,%.4f,%.4f,\"%s\"\n", name.c_str(), size,
                     static_cast<unsigned long long>(n), r.allocs_per_task, r.frees_per_task,
                     r.breakdown.c_str());
        allocs[name].push_back(r);
      }
      s->stop();
    }
    std::fclose(acsv);
    at.left = 2;
    at.print();
  }

  // ---- targets (issue 2, part 8)
  out("\nTARGETS  (issue 2 part 8, Ember's client; issue 8 item 6, the grpc++ client (/gc);"
      " ratios of medians, measured side by side)\n");
  Table tt;
  tt.left = 1;
  tt.add({"target", "measured", "result"});
  int failed = 0, unmeasured = 0;
  auto target = [&](const std::string& what, double v, bool ok, const std::string& shown) {
    if (std::isnan(v)) {
      tt.add({what, "not measured", "n/a"});
      ++unmeasured;
      return;
    }
    tt.add({what, shown, ok ? "PASS" : "FAIL"});
    if (!ok) ++failed;
  };
  auto ratio_of = [&](const char* sc, const char* a, const char* b,
                      const std::function<double(const Measurement&)>& f) {
    bool ran = std::any_of(o.scenarios.begin(), o.scenarios.end(),
                           [&](const Scenario& s) { return s.name == sc; });
    if (!ran || !has(o.servers, a) || !has(o.servers, b)) return double{NAN};
    return med(sc, a, f) / med(sc, b, f);
  };
  double r;
  r = ratio_of("64B-x1", "ember", "floor", f_p50);
  target("64B x1: ember p50 <= 1.5x floor p50", r, r <= 1.5, fmt_ratio(r));
  r = ratio_of("64B-x1", "ember", "grpc++", f_tps);
  target("64B x1: ember tasks/s >= 2x grpc++", r, r >= 2, fmt_ratio(r));
  r = ratio_of("64B-x1", "ember", "grpc++", f_srv);
  target("64B x1: ember server CPU/task <= 1/3 grpc++", r, r <= 1.0 / 3, fmt_ratio(r));
  r = ratio_of("1MiB-x1", "ember", "grpc++", f_tps);
  target("1MiB x1: ember tasks/s >= 2x grpc++", r, r >= 2, fmt_ratio(r));
  r = ratio_of("64B-x16", "ember", "grpc++", f_tps);
  target("64B x16: ember tasks/s >= 2x grpc++", r, r >= 2, fmt_ratio(r));
  r = ratio_of("64B-x1", "ember/gc", "floor", f_srv);
  target("64B x1, grpc++ client: ember server CPU/task <= 1.3x floor", r, r <= 1.3, fmt_ratio(r));
  r = ratio_of("64B-x16", "ember/gc", "grpc++/gc", f_cli);
  target("64B x16, grpc++ client: its CPU/task vs ember <= vs grpc++", r, r <= 1.0, fmt_ratio(r));
  r = ratio_of("64B-x16", "ember/gc", "grpc++/gc", f_srv);
  target("64B x16, grpc++ client: ember server CPU/task <= 0.5x grpc++", r, r <= 0.5, fmt_ratio(r));
  r = ratio_of("1MiB-x1", "ember/gc", "grpc++/gc", f_tps);
  target("1MiB x1, grpc++ client: ember tasks/s >= 2x grpc++", r, r >= 2, fmt_ratio(r));
  for (const auto& a : allocs["ember"])
    if (a.size <= 65536)
      target("ember heap allocations/task = 0 at " + size_name(a.size), a.allocs_per_task,
             a.allocs_per_task == 0, fmt_num(a.allocs_per_task, 2) + "/task");
  if (allocs["ember"].empty()) target("ember heap allocations/task = 0", NAN, false, "");
  r = ember_rss > 0 && grpc_rss > 0 ? static_cast<double>(ember_rss) / grpc_rss : NAN;
  target("ember idle RSS <= 1/2 grpc++", r, r <= 0.5,
         fmt_ratio(r) + strprintf(" (%ld / %ld KiB)", ember_rss, grpc_rss));
  tt.print();
  outf("  %d target(s) failed, %d not measured; loadavg %s at the end\n", failed, unmeasured,
       loadavg().c_str());

  // ---- plot
  if (o.plot) {
    std::string script = std::string(EMBER_PERF_SOURCE_DIR) + "/plot_latency.py";
    int rc = run_child({"/usr/bin/python3", script, o.out});
    if (rc == 0)
      outf("\nplot    : %s/latency_cdf.png\n", o.out.c_str());
    else
      outf("\nplot    : FAILED (exit %d from %s)\n", rc, script.c_str());
  }
  outf("files   : report.txt measurements.csv summary.csv alloc.csv latency/*.csv in %s\n",
       o.out.c_str());
  if (!stalls.empty())
    outf("\n%zu stall(s): a server stopped answering (see STALLS); exit status 4\n", stalls.size());
  if (g_report) std::fclose(g_report);
  if (!stalls.empty()) return 4;
  return o.strict && failed > 0 ? 3 : 0;
}
