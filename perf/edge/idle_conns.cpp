// Opens N keep-alive HTTP/1.1 connections, sends one request on each, reads
// the whole response, then holds them all open and idle.
//
//   ember-idle-conns -p PORT [-h 127.0.0.1] [-n 10000] [-P /] [-c 256] [-t 60]
//
// Prints "READY <n>" on stdout once every connection has its response (the
// server now holds N idle keep-alive connections), then waits for SIGTERM or
// SIGINT and prints "HELD <open> of <n>" (connections the server closed in
// the meantime are counted out, and reported on stderr as they go).
// At most -c connects/requests are in progress at once, so the server's
// listen backlog never overflows. Exit status: 0 ok, 1 a connection failed or
// the server answered other than 200, or -t seconds passed before READY.
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "edge_common.hpp"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

enum class State { kIdleSlot, kConnecting, kReading, kHeld, kClosed };

struct Conn {
  int fd = -1;
  State state = State::kIdleSlot;
  std::string got;
};

[[noreturn]] void fail(const char* what, const char* detail) {
  std::fprintf(stderr, "ember-idle-conns: %s: %s\n", what, detail);
  std::exit(1);
}

// True once GOT holds a complete response (head plus Content-Length bytes,
// or a chunked body's last chunk).
bool response_complete(const std::string& got) {
  size_t end = got.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string_view head(got.data(), end + 2);
  if (head.substr(0, 12) != "HTTP/1.1 200") {
    std::string first(head.substr(0, head.find("\r\n")));
    fail("server answered", first.c_str());
  }
  std::string_view cl = edge::header_value(head, "Content-Length");
  if (!cl.empty())
    return got.size() >= end + 4 + std::strtoull(std::string(cl).c_str(), nullptr, 10);
  return got.find("\r\n0\r\n\r\n", end) != std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  const char* path = "/";
  int port = 0;
  long n = 10000, concurrency = 256;
  double timeout = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view a = argv[i];
    const char* v = argv[i + 1];
    if (a == "-p")
      port = std::atoi(v);
    else if (a == "-h")
      host = v;
    else if (a == "-n")
      n = std::atol(v);
    else if (a == "-P")
      path = v;
    else if (a == "-c")
      concurrency = std::atol(v);
    else if (a == "-t")
      timeout = std::atof(v);
    else
      port = -1;
  }
  if (port <= 0 || n <= 0 || concurrency <= 0 || argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: ember-idle-conns -p PORT [-h HOST] [-n CONNS] [-P PATH] [-c CONCURRENCY] "
                 "[-t TIMEOUT_S]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  rlim_t limit = edge::raise_nofile();
  if (limit < static_cast<rlim_t>(n) + 16) {
    std::fprintf(stderr, "ember-idle-conns: RLIMIT_NOFILE is %llu, need %ld\n",
                 static_cast<unsigned long long>(limit), n + 16);
    return 1;
  }
  sockaddr_in addr = edge::loopback_addr(host, port);
  std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: " + host + ":" +
                    std::to_string(port) + "\r\n\r\n";

  std::vector<Conn> conns(static_cast<size_t>(n));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  size_t next = 0, ready = 0, active = 0;
  const uint64_t deadline = edge::now_ns() + static_cast<uint64_t>(timeout * 1e9);
  std::vector<epoll_event> events(256);
  char buf[4096];

  while (ready < conns.size()) {
    while (active < static_cast<size_t>(concurrency) && next < conns.size()) {
      Conn& c = conns[next++];
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) fail("socket", std::strerror(errno));
      int r = ::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      if (r != 0 && errno != EINPROGRESS) fail("connect", std::strerror(errno));
      c.state = State::kConnecting;
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.ptr = &c;
      epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      ++active;
    }
    if (edge::now_ns() > deadline || g_stop) {
      std::fprintf(stderr, "ember-idle-conns: only %zu of %zu connections ready\n", ready,
                   conns.size());
      return 1;
    }
    int k = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int i = 0; i < k; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (c.state == State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) fail("connect", std::strerror(err));
        if (::write(c.fd, req.data(), req.size()) != static_cast<ssize_t>(req.size()))
          fail("write", std::strerror(errno));
        c.state = State::kReading;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &c;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      } else if (c.state == State::kReading) {
        ssize_t r = ::read(c.fd, buf, sizeof buf);
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) fail("read", r == 0 ? "server closed before answering" : std::strerror(errno));
        c.got.append(buf, static_cast<size_t>(r));
        if (response_complete(c.got)) {
          std::string().swap(c.got);
          c.state = State::kHeld;
          ++ready;
          --active;
        }
      } else if (c.state == State::kHeld) {
        // The server closed (or sent something on) an idle connection.
        ssize_t r = ::read(c.fd, buf, sizeof buf);
        if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
          epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
          ::close(c.fd);
          c.state = State::kClosed;
          std::fprintf(stderr, "ember-idle-conns: the server closed an idle connection\n");
        }
      }
    }
  }
  std::printf("READY %zu\n", ready);
  std::fflush(stdout);

  size_t lost = 0;
  while (!g_stop) {
    int k = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (int i = 0; i < k; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      ssize_t r = ::read(c.fd, buf, sizeof buf);
      if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.state = State::kClosed;
        if (++lost == 1)
          std::fprintf(stderr, "ember-idle-conns: the server closes idle connections\n");
      }
    }
  }
  size_t open = 0;
  for (auto& c : conns)
    open += c.state == State::kHeld;
  std::printf("HELD %zu of %zu\n", open, conns.size());
  return 0;
}
