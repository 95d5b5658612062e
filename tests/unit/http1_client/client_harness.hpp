// Test harness for the HTTP/1.1 client: a one-loop reactor on a thread with a
// Client on it, a handler that collects a response, a raw TCP server driven
// by a thread (hostile responses), and child processes (nginx, python3).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ember/reactor.hpp"
#include "protocols/http1/client.hpp"

extern char** environ;

namespace ember::http1::test {

using namespace std::chrono_literals;

struct Outcome {
  bool ok = false;
  bool done = false;
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  size_t chunks = 0;
  std::string error;
  int code = 0;
  std::string header(std::string_view name) const {
    for (auto& [n, v] : headers)
      if (iequals(n, name)) return v;
    return {};
  }
};

// Collects one response; `done` is set by on_complete/on_error.
struct Collector : ClientHandler {
  Outcome out;
  std::promise<Outcome> done;
  std::function<Action(Collector&, const Bytes&)> body_hook;  // optional
  void on_head(const ResponseHead& h) override {
    out.status = h.status;
    out.reason.assign(h.reason);
    for (const Field& f : h.fields)
      out.headers.emplace_back(std::string(f.name), std::string(f.value));
  }
  Action on_body(const Bytes& b) override {
    out.body.append(b.view());
    ++out.chunks;
    return body_hook ? body_hook(*this, b) : Action::proceed;
  }
  void on_complete() override {
    out.ok = out.done = true;
    done.set_value(out);
  }
  void on_error(const Error& e) override {
    out.done = true;
    out.error = e.message;
    out.code = e.code;
    done.set_value(out);
  }
};

inline ReactorOptions one_loop() {
  ReactorOptions o;
  o.threads = 1;
  o.handle_signals = false;
  return o;
}

// A reactor with one loop on a thread and a Client on that loop.
class Harness {
 public:
  explicit Harness(ClientOptions options = {})
      : reactor_(one_loop()), thread_([this] { reactor_.run(); }) {
    on_loop([&] { client_ = std::make_unique<Client>(loop(), options); });
  }
  ~Harness() {
    on_loop([&] { client_.reset(); });
    reactor_.stop();
    thread_.join();
  }
  Loop& loop() { return reactor_.loop(0); }
  Client& client() { return *client_; }

  // Runs fn on the loop thread and waits for it.
  template <class F>
  auto on_loop(F fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::promise<R> p;
    auto f = p.get_future();
    loop().post([&](Loop&) {
      if constexpr (std::is_void_v<R>) {
        fn();
        p.set_value();
      } else {
        p.set_value(fn());
      }
    });
    return f.get();
  }

  // Starts a request with `c` (which must outlive it).
  Result<RequestHandle> start(ClientRequest q, Collector& c) {
    return on_loop([&] { return client_->request(std::move(q), c); });
  }

  // One request to the end; a guard fails the test rather than hanging.
  Outcome fetch(ClientRequest q, std::chrono::seconds guard = 60s) {
    Collector c;
    return wait(start(std::move(q), c), c, guard);
  }
  Outcome wait(Result<RequestHandle> h, Collector& c, std::chrono::seconds guard = 60s) {
    if (!h) {
      Outcome o;
      o.done = true;
      o.error = h.error().message;
      return o;
    }
    auto f = c.done.get_future();
    if (f.wait_for(guard) != std::future_status::ready) {
      on_loop([&] { h->cancel(); });
      ADD_FAILURE() << "no answer within the guard";
      return {};
    }
    return f.get();
  }

 private:
  Reactor reactor_;
  std::thread thread_;
  std::unique_ptr<Client> client_;
};

// ---- sockets ----------------------------------------------------------------------

inline void guard_timeouts(int fd) {
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads one request head (and, when it has Content-Length, its body).
inline std::string read_request(int fd) {
  std::string in;
  char buf[65536];
  size_t end;
  while ((end = in.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return {};
    in.append(buf, static_cast<size_t>(n));
  }
  size_t want = end + 4;
  size_t cl = in.find("Content-Length: ");
  if (cl != std::string::npos && cl < end) want += std::stoul(in.substr(cl + 16));
  while (in.size() < want) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

// Waits until the peer closes or resets; false when the guard expires.
inline bool wait_eof(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

inline int listen_any(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// A port nobody listens on (bound, then closed).
inline uint16_t free_port() {
  uint16_t port = 0;
  int fd = listen_any(&port);
  ::close(fd);
  return port;
}

// Accepts connections on 127.0.0.1 and runs `script(fd, index)` for each on
// its own thread; the script owns the fd until it returns (closed after).
class RawServer {
 public:
  using Script = std::function<void(int fd, int index)>;
  explicit RawServer(Script script) : script_(std::move(script)) {
    fd_ = listen_any(&port_);
    acceptor_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        guard_timeouts(c);
        int index = accepted_++;
        workers_.emplace_back([this, c, index] {
          script_(c, index);
          ::close(c);
        });
      }
    });
  }
  ~RawServer() {
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : workers_)
      t.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }

 private:
  Script script_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

// ---- child processes ------------------------------------------------------------

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/ember-h1c-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(std::string_view name) const { return (path / name).string(); }
};

inline void write_file(const std::string& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline int run_command(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

// Connects until something listens on the port (a start-up guard, not timing).
// A test CA (ca.pem, ca.key) and a server certificate it signed for
// localhost and 127.0.0.1 (srv.pem, srv.key) in `d`, made with the openssl
// CLI. False when a command fails.
inline bool make_test_pki(const TempDir& d) {
  write_file(d / "ext.cnf",
             "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n");
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
  return run_command("openssl req -x509" + ec + "-keyout " + (d / "ca.key") + " -out " +
                     (d / "ca.pem") + " -days 2 -subj /CN=Ember-Test-CA") == 0 &&
         run_command("openssl req" + ec + "-keyout " + (d / "srv.key") + " -out " +
                     (d / "srv.csr") + " -subj /CN=localhost") == 0 &&
         run_command("openssl x509 -req -in " + (d / "srv.csr") + " -CA " + (d / "ca.pem") +
                     " -CAkey " + (d / "ca.key") + " -CAcreateserial -days 2 -out " +
                     (d / "srv.pem") + " -extfile " + (d / "ext.cnf")) == 0;
}

inline bool wait_listening(uint16_t port, std::chrono::seconds guard = 20s) {
  auto until = std::chrono::steady_clock::now() + guard;
  while (std::chrono::steady_clock::now() < until) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(10ms);  // poll interval of the start-up guard
  }
  return false;
}

class Child {
 public:
  Child() = default;
  explicit Child(std::vector<std::string> argv, int* stdout_fd = nullptr) {
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int pipefd[2] = {-1, -1};
    if (stdout_fd) {
      if (::pipe(pipefd) != 0) return;
      posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
      posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    }
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    if (stdout_fd) {
      ::close(pipefd[1]);
      *stdout_fd = pipefd[0];
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

}  // namespace ember::http1::test
