#include "ember/reactor.hpp"

#include <netdb.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/reactor_impl.hpp"
#include "ember/log.hpp"

namespace ember {

std::string describe_errno(int negative_code) {
  return std::strerror(negative_code < 0 ? -negative_code : negative_code);
}

namespace {

unsigned default_threads() {
  if (const char* v = std::getenv("EMBER_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && n > 0 && n <= 1024) return static_cast<unsigned>(n);
    EMBER_WARN("ember.reactor", "ignoring EMBER_THREADS: expected a whole number from 1 to 1024",
               {"value", v});
  }
  // The CPUs we may actually use: the affinity mask (taskset, cpusets),
  // capped by a cgroup v2 CPU quota (containers); hardware_concurrency()
  // sees neither.
  size_t n = Reactor::allowed_cpus().size();
  if (FILE* f = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    char quota[32] = {0};
    unsigned long long period = 0;
    if (std::fscanf(f, "%31s %llu", quota, &period) == 2 && std::strcmp(quota, "max") != 0 &&
        period > 0) {
      unsigned long long q = std::strtoull(quota, nullptr, 10);
      size_t cap = static_cast<size_t>((q + period - 1) / period);
      if (cap > 0 && cap < n) n = cap;
    }
    std::fclose(f);
  }
  return n == 0 ? 1 : static_cast<unsigned>(n);
}

Result<int> tcp_listener(const addrinfo* ai, size_t backlog) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return Error("socket(): " + describe_errno(errno), -errno);
  int one = 1;
  // libuv 1.44 cannot set SO_REUSEPORT: every loop binds its own socket to
  // the same port and the kernel spreads connections across them.
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    ::close(fd);
    return Error("setsockopt(SO_REUSEPORT): " + describe_errno(e), -e);
  }
  if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
      ::listen(fd, static_cast<int>(backlog)) != 0) {
    int e = errno;
    ::close(fd);
    return Error(describe_errno(e), -e);
  }
  return fd;
}

}  // namespace

std::vector<unsigned> Reactor::allowed_cpus() {
  std::vector<unsigned> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    for (unsigned i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  }
  if (cpus.empty()) {
    unsigned n = std::thread::hardware_concurrency();
    for (unsigned i = 0; i < (n ? n : 1); ++i)
      cpus.push_back(i);
  }
  return cpus;
}

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max) noexcept
    : initial_(initial), max_(max) {
  rng_ = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
         reinterpret_cast<uintptr_t>(this);
  if (rng_ == 0) rng_ = 0x9e3779b97f4a7c15ull;
}

std::chrono::milliseconds Backoff::next() noexcept {
  uint64_t base = static_cast<uint64_t>(initial_.count());
  for (unsigned i = 0; i < attempt_ && base < static_cast<uint64_t>(max_.count()); ++i)
    base *= 2;
  base = std::min<uint64_t>(base, static_cast<uint64_t>(max_.count()));
  if (attempt_ < 64) ++attempt_;
  // xorshift64: jitter spreads reconnecting clients; no need for a strong RNG.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  uint64_t half = base / 2;
  return std::chrono::milliseconds(half + (base - half == 0 ? 0 : rng_ % (base - half + 1)));
}

void Reactor::Impl::request_stop() noexcept {
  if (stopping.exchange(true)) return;
  for (auto& l : loops)
    l->post(&l->drain_item_);
}

void Reactor::Impl::request_force() noexcept {
  request_stop();
  if (forcing.exchange(true)) return;
  for (auto& l : loops)
    l->post(&l->force_item_);
}

void Reactor::Impl::on_loop_finished(detail::LoopImpl& loop) noexcept {
  if (loop.index_ == 0 && signals_on) {
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sighup), nullptr);
    signals_on = false;
  }
}

Reactor::Reactor(ReactorOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  unsigned n = options.threads ? options.threads : default_threads();
  impl_->options.threads = n;
  // Writes to a peer that went away must fail with EPIPE, not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  for (unsigned i = 0; i < n; ++i)
    impl_->loops.push_back(std::make_unique<detail::LoopImpl>(*impl_, i, impl_->options));
  if (impl_->options.handle_signals) {
    detail::LoopImpl& l0 = *impl_->loops[0];
    uv_signal_init(l0.uv_loop(), &impl_->sigterm);
    uv_signal_init(l0.uv_loop(), &impl_->sigint);
    impl_->sigterm.data = impl_.get();
    impl_->sigint.data = impl_.get();
    auto on_signal = [](uv_signal_t* h, int signum) {
      auto* self = static_cast<Impl*>(h->data);
      if (!self->stopping.load()) {
        EMBER_INFO("ember.reactor", "signal received; draining (send it again to stop at once)",
                   {"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"});
        if (self->drain_hook) self->drain_hook();
        self->request_stop();
      } else {
        EMBER_WARN("ember.reactor", "second signal; closing connections now",
                   {"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"});
        self->request_force();
      }
    };
    uv_signal_start(&impl_->sigterm, on_signal, SIGTERM);
    uv_signal_start(&impl_->sigint, on_signal, SIGINT);
    // Signals alone must not keep a loop alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(&impl_->sigterm));
    uv_unref(reinterpret_cast<uv_handle_t*>(&impl_->sigint));
    uv_signal_init(l0.uv_loop(), &impl_->sighup);
    impl_->sighup.data = impl_.get();
    uv_signal_start(
        &impl_->sighup,
        [](uv_signal_t* h, int) {
          auto* self = static_cast<Impl*>(h->data);
          if (self->reload_hook) {
            EMBER_INFO("ember.reactor", "SIGHUP received; reloading");
            self->reload_hook();
          } else {
            EMBER_INFO("ember.reactor", "SIGHUP received; nothing to reload");
          }
        },
        SIGHUP);
    uv_unref(reinterpret_cast<uv_handle_t*>(&impl_->sighup));
    impl_->signals_on = true;
  }
}

Reactor::~Reactor() {
  if (impl_->signals_on) {
    uv_close(reinterpret_cast<uv_handle_t*>(&impl_->sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&impl_->sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&impl_->sighup), nullptr);
    impl_->signals_on = false;
  }
  impl_->loops.clear();
}

size_t Reactor::size() const noexcept {
  return impl_->loops.size();
}
Loop& Reactor::loop(size_t i) noexcept {
  return *impl_->loops[i];
}
const ReactorOptions& Reactor::options() const noexcept {
  return impl_->options;
}
void Reactor::on_drain_start(std::function<void()> fn) {
  impl_->drain_hook = std::move(fn);
}
void Reactor::on_reload(std::function<void()> fn) {
  impl_->reload_hook = std::move(fn);
}
void Reactor::stop() noexcept {
  impl_->request_stop();
}

Result<uint16_t> Reactor::listen_tcp(const std::string& host, uint16_t port, HandlerFactory factory,
                                     std::shared_ptr<tls::ServerContext> tls) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  auto shared = std::make_shared<HandlerFactory>(std::move(factory));
  uint16_t bound = port;
  for (auto& loop : impl_->loops) {
    addrinfo* res = nullptr;
    std::string service = std::to_string(bound);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0)
      return Error("cannot resolve listen address \"" + host + "\": " + gai_strerror(rc));
    Result<int> fd = tcp_listener(res, impl_->options.listen_backlog);
    if (fd && bound == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      ::getsockname(*fd, reinterpret_cast<sockaddr*>(&ss), &len);
      bound = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    ::freeaddrinfo(res);
    if (!fd)
      return Error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                       fd.error().message + " (is another server on that port?)",
                   fd.error().code);
    auto l = std::make_unique<detail::Listener>();
    l->factory = shared;
    l->tls = tls;
    Result<void> added = loop->add_listener(std::move(l), *fd, impl_->options.listen_backlog);
    if (!added) return added.error();
  }
  EMBER_INFO("ember.reactor", "listening", {"transport", "tcp"}, {"host", host}, {"port", bound},
             {"loops", impl_->loops.size()});
  return bound;
}

Result<void> Reactor::listen_unix(const std::string& path, HandlerFactory factory) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error("Unix socket path \"" + path + "\" is " + std::to_string(path.size()) +
                 " bytes; it must be 1 to " + std::to_string(sizeof addr.sun_path - 1) +
                 " bytes (sun_path). Use a shorter path.");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error("\"" + path + "\" exists and is not a socket; refusing to replace it. " +
                   "Remove it or choose another path.");
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    int e = errno;
    ::close(probe);
    if (rc == 0)
      return Error("Unix socket \"" + path + "\" is in use: another process is listening on it. " +
                       "Stop that process or choose another path.",
                   -EADDRINUSE);
    if (e != ECONNREFUSED)
      return Error("cannot check existing socket \"" + path + "\": " + describe_errno(e), -e);
    EMBER_INFO("ember.reactor", "replacing stale socket file", {"path", path});
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return Error("cannot remove stale socket \"" + path + "\": " + describe_errno(errno), -errno);
  }
  // Bind under a staging name in the same directory and link the socket into
  // place only once it listens: the executor connects as soon as the path
  // exists, and a socket bound but not yet listening would refuse it.
  std::string staging =
      path.substr(0, path.rfind('/') + 1) + ".ember-" + std::to_string(::getpid());
  bool staged = staging.size() < sizeof addr.sun_path;
  sockaddr_un bind_addr = addr;
  if (staged) {
    std::memset(bind_addr.sun_path, 0, sizeof bind_addr.sun_path);
    std::memcpy(bind_addr.sun_path, staging.data(), staging.size());
    ::unlink(staging.c_str());  // left by a crashed process with our pid
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error("socket(AF_UNIX): " + describe_errno(errno), -errno);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&bind_addr), sizeof bind_addr) != 0 ||
      ::listen(fd, static_cast<int>(impl_->options.listen_backlog)) != 0) {
    int e = errno;
    ::close(fd);
    if (staged) ::unlink(staging.c_str());
    return Error("cannot listen on Unix socket \"" + path + "\": " + describe_errno(e) +
                     (e == ENOENT ? " (does its directory exist?)" : ""),
                 -e);
  }
  if (staged) {
    // link() fails if someone took the path meanwhile, where rename() would
    // silently replace their socket.
    int rc = ::link(staging.c_str(), path.c_str());
    if (rc != 0 && errno != EEXIST) rc = ::rename(staging.c_str(), path.c_str());  // no hard links
    int e = errno;
    ::unlink(staging.c_str());
    if (rc != 0) {
      ::close(fd);
      if (e == EEXIST)
        return Error("Unix socket \"" + path + "\" is in use: another process created it " +
                         "while we started. Stop that process or choose another path.",
                     -EADDRINUSE);
      return Error("cannot create Unix socket \"" + path + "\": " + describe_errno(e), -e);
    }
  }
  if (::stat(path.c_str(), &st) == 0) impl_->unix_paths.push_back({path, st.st_dev, st.st_ino});
  auto shared = std::make_shared<HandlerFactory>(std::move(factory));
  // Every loop watches the same listening socket through its own descriptor;
  // whichever wakes first accepts.
  for (size_t i = 0; i < impl_->loops.size(); ++i) {
    int lfd = i == 0 ? fd : ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (lfd < 0) return Error("dup(): " + describe_errno(errno), -errno);
    auto l = std::make_unique<detail::Listener>();
    l->is_unix = true;
    l->factory = shared;
    Result<void> added =
        impl_->loops[i]->add_listener(std::move(l), lfd, impl_->options.listen_backlog);
    if (!added) return added.error();
  }
  EMBER_INFO("ember.reactor", "listening", {"transport", "unix"}, {"path", path},
             {"loops", impl_->loops.size()});
  return {};
}

int Reactor::run() {
  if (impl_->ran) {
    EMBER_ERROR("ember.reactor", "Reactor::run() called twice; create a new Reactor");
    return 1;
  }
  impl_->ran = true;
  std::vector<std::thread> threads;
  for (size_t i = 1; i < impl_->loops.size(); ++i)
    threads.emplace_back([this, i] { impl_->loops[i]->run(); });
  impl_->loops[0]->run();
  for (auto& t : threads)
    t.join();
  for (const auto& u : impl_->unix_paths) {
    struct stat st;
    // Remove only our own socket file, not one a successor created since.
    if (::lstat(u.path.c_str(), &st) == 0 && st.st_dev == u.dev && st.st_ino == u.ino)
      ::unlink(u.path.c_str());
  }
  bool forced = false;
  for (auto& l : impl_->loops)
    forced = forced || l->forced_;
  return forced ? 1 : 0;
}

}  // namespace ember
