// libFuzzer target: http::H2Client (HTTP/2 with prior knowledge) on a real
// loop, answered by a server that sends arbitrary bytes. Each input opens a
// connection, sends one to three requests on it (GET, HEAD, POST with a
// body), and the "server" writes the input's bytes (in pieces the input
// picks), then ends its side. Errors are fine; crashes, leaks, ASan/UBSan reports,
// and a request that does not end with exactly one callback once the server
// has gone (checked with a 5 s guard) are not. Consumers may pause at the
// first body piece and resume a loop turn later, or cancel at the head.
//
// Input: byte 0: bits 0-1 how many requests less one (capped at 3), bit 2
// pause at the first body piece, bit 3 cancel the last request at its
// head, bits 4-7 the write size (64 << n bytes); the rest is what the
// server sends after reading the client's preface.
// libfuzzer-options: -max_len=16384 -timeout=10 -rss_limit_mb=2048
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "ember/reactor.hpp"
#include "protocols/http/h2_client.hpp"

using namespace ember;

namespace {

struct Setup {
  Reactor reactor;
  std::thread thread;
  std::unique_ptr<http::H2Client> client;
  int listener = -1;
  uint16_t port = 0;

  static ReactorOptions options() {
    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    return o;
  }
  Setup() : reactor(options()), thread([this] { reactor.run(); }) {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener, 16) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      std::abort();
    port = ntohs(a.sin_port);
    on_loop([&] {
      http::H2ClientOptions o;
      o.response_head_timeout = std::chrono::milliseconds(2000);
      o.max_response_body_bytes = 4096;  // reachable from a small input
      o.max_response_head_bytes = 1024;
      client = std::make_unique<http::H2Client>(reactor.loop(0), o);
    });
  }
  template <class F>
  void on_loop(F fn) {
    std::promise<void> done;
    reactor.loop(0).post([&](Loop&) {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
};

Setup& setup() {
  static Setup* s = new Setup;  // lives to the end: the loop thread runs until exit
  return *s;
}

struct Consumer : http1::ClientHandler {
  std::atomic<int>* ended = nullptr;
  http::H2RequestHandle handle;
  bool pause_first = false;
  bool cancel_at_head = false;
  bool paused_once = false;
  int endings = 0;
  Loop* loop = nullptr;

  void on_head(const http1::ResponseHead& head) override {
    if (head.status < 200 || head.status > 999) std::abort();
    for (const http1::Field& f : head.fields)
      if (f.name.empty()) std::abort();
    if (cancel_at_head) {
      handle.cancel();
      end();
    }
  }
  http1::Action on_body(const Bytes& chunk) override {
    if (chunk.size() > 4096) std::abort();
    if (pause_first && !paused_once) {
      paused_once = true;
      loop->post([this](Loop&) { handle.resume_response(); });
      return http1::Action::pause;
    }
    return http1::Action::proceed;
  }
  void on_complete() override { end(); }
  void on_error(const Error& e) override {
    if (e.message.empty() || e.code >= 0) std::abort();
    end();
  }
  void end() {
    if (++endings != 1) std::abort();  // exactly one ending per request
    ended->fetch_add(1);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Setup& s = setup();
  const uint8_t ctl = data[0];
  const int n = std::min(3, (ctl & 3) + 1);
  const size_t piece = size_t{64} << (ctl >> 4);
  std::atomic<int> ended{0};
  Consumer consumers[3];
  const std::string url = "http://127.0.0.1:" + std::to_string(s.port) + "/x";
  static const char kBody[] = "a request body";
  s.on_loop([&] {
    for (int i = 0; i < n; ++i) {
      Consumer& c = consumers[i];
      c.ended = &ended;
      c.loop = &s.reactor.loop(0);
      c.pause_first = ctl & 4;
      c.cancel_at_head = (ctl & 8) && i == n - 1;
      http1::ClientRequest q;
      q.method = i == 0 ? "GET" : i == 1 ? "HEAD" : "POST";
      q.url = url;
      if (i == 2) q.body = Bytes::unowned(std::string_view(kBody));
      auto h = s.client->request(q, c);
      if (!h) std::abort();
      c.handle = *h;
    }
  });

  int fd;
  do {  // libFuzzer's timeout alarm interrupts it now and then
    fd = ::accept(s.listener, nullptr, nullptr);
  } while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
  if (fd < 0) {
    std::perror("accept");
    std::abort();
  }
  // The client's preface (what has arrived), the input's bytes, then FIN:
  // the client reads everything before it sees the end (a close with
  // unread input would send RST, which may discard what was sent).
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 1000) > 0) (void)::read(fd, buf, sizeof buf);
  for (size_t off = 1; off < size; off += piece) {
    size_t len = std::min(piece, size - off);
    if (::send(fd, data + off, len, MSG_NOSIGNAL) < 0) break;
  }
  ::shutdown(fd, SHUT_WR);

  // Until every request has ended and every connection has gone (the next
  // input must open a new one); the consumers go out of scope after that.
  // A refused stream goes again on a new connection: it is accepted and
  // closed at once.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  size_t open = 1;
  while (ended.load() < n || open > 0) {
    if (std::chrono::steady_clock::now() > until) {  // a request hangs
      std::fprintf(stderr, "after 5 s: %d of %d requests ended, %zu connections open\n",
                   ended.load(), n, open);
      std::abort();
    }
    pollfd fds[2] = {{s.listener, POLLIN, 0}, {fd, POLLIN, 0}};
    if (::poll(fds, fd >= 0 ? 2 : 1, 1) > 0) {
      if (fds[0].revents & POLLIN) {
        int extra = ::accept(s.listener, nullptr, nullptr);
        if (extra >= 0) ::close(extra);
      }
      if (fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
          ::read(fd, buf, sizeof buf) <= 0) {
        ::close(fd);
        fd = -1;
      }
    }
    s.on_loop([&] { open = s.client->connections(); });
  }
  if (fd >= 0) ::close(fd);
  return 0;
}
