// Connection features the edge and client faces build on: handler switching,
// deadlines, receive backpressure, outbound connections, reconnect backoff
// and CPU discovery. Real sockets on loopback; waits only guard against hangs.
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "ember/reactor.hpp"

namespace ember {
namespace {

using namespace std::chrono_literals;

template <class Pred>
bool wait_until(Pred pred, std::chrono::seconds guard = 20s) {
  auto end = std::chrono::steady_clock::now() + guard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

ReactorOptions one_loop() {
  ReactorOptions o;
  o.threads = 1;
  o.handle_signals = false;
  o.drain_timeout = 5s;
  return o;
}

int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

std::string recv_n(int fd, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

// Runs a reactor on a thread; stops and joins it on destruction.
struct Running {
  explicit Running(Reactor& r) : reactor(r), thread([this] { rc = reactor.run(); }) {}
  ~Running() {
    reactor.stop();
    thread.join();
  }
  Reactor& reactor;
  int rc = -1;
  std::thread thread;
};

// Queues output and writes it in the flush phase.
struct Writer : ConnectionHandler {
  void send(Connection& c, std::string s) {
    pending.push_back(Bytes::from(std::move(s)));
    c.want_write();
  }
  void on_writable(Connection&, IoChain& out) override {
    for (Bytes& b : pending)
      out.append(std::move(b));
    pending.clear();
  }
  void on_drain(Connection& c) override { c.close(); }
  std::vector<Bytes> pending;
};

// ---- handler switching ----------------------------------------------------------

// Answers in upper case: the protocol after the switch.
struct Upper : Writer {
  explicit Upper(std::atomic<int>* opened) : opened(opened) {}
  void on_open(Connection&) override { ++*opened; }
  void on_data(Connection& c, const Bytes& data) override {
    std::string s(data.view());
    for (char& ch : s)
      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    send(c, std::move(s));
  }
  std::atomic<int>* opened;
};

// Echoes until it reads "SWITCH\n", then hands the rest of the read to Upper.
struct Sniffer : Writer {
  explicit Sniffer(std::atomic<int>* opened, std::atomic<int>* destroyed)
      : opened(opened), destroyed(destroyed) {}
  ~Sniffer() override { ++*destroyed; }
  void on_data(Connection& c, const Bytes& data) override {
    size_t at = data.view().find("SWITCH\n");
    if (at == std::string_view::npos) {
      send(c, std::string(data.view()));
      return;
    }
    send(c, std::string(data.view().substr(0, at)));
    Bytes rest = data.slice(at + 7, data.size() - at - 7);
    c.switch_handler(std::make_unique<Upper>(opened), rest);
    // Still alive here: the old handler is retired, not destroyed.
    marker = 42;
  }
  std::atomic<int>* opened;
  std::atomic<int>* destroyed;
  int marker = 0;
};

TEST(Connection, SwitchHandlerHandsOverUnreadBytes) {
  Reactor reactor(one_loop());
  std::atomic<int> opened{0}, destroyed{0};
  auto port = reactor.listen_tcp(
      "127.0.0.1", 0, [&](Loop&) { return std::make_unique<Sniffer>(&opened, &destroyed); });
  ASSERT_TRUE(port);
  Running run(reactor);
  int fd = dial(*port);
  ASSERT_GE(fd, 0);
  std::string first = "abc";
  ASSERT_EQ(::send(fd, first.data(), first.size(), 0), 3);
  EXPECT_EQ(recv_n(fd, 3), "abc");
  // The switch and the first bytes for the new protocol in one write.
  std::string msg = "xySWITCH\nhello";
  ASSERT_EQ(::send(fd, msg.data(), msg.size(), 0), static_cast<ssize_t>(msg.size()));
  EXPECT_EQ(recv_n(fd, 7), "xyHELLO");
  ASSERT_EQ(::send(fd, "more", 4, 0), 4);
  EXPECT_EQ(recv_n(fd, 4), "MORE");
  EXPECT_EQ(opened.load(), 1);
  EXPECT_TRUE(wait_until([&] { return destroyed.load() == 1; }));
  ::close(fd);
}

// ---- peer addresses --------------------------------------------------------------

TEST(PeerAddress, FormatsEveryFamily) {
  auto v4 = [](uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
    PeerAddress p;
    p.family = PeerAddress::Family::ipv4;
    p.address[0] = a, p.address[1] = b, p.address[2] = c, p.address[3] = d;
    p.port = port;
    return p;
  };
  std::string out = "left over from before";
  v4(127, 0, 0, 1, 80).format(out);
  EXPECT_EQ(out, "127.0.0.1:80");
  v4(0, 0, 0, 0, 0).format(out);
  EXPECT_EQ(out, "0.0.0.0:0");
  v4(255, 255, 255, 255, 65535).format(out);
  EXPECT_EQ(out, "255.255.255.255:65535");
  v4(10, 1, 20, 100, 8080).format(out);
  EXPECT_EQ(out, "10.1.20.100:8080");
  PeerAddress v6;
  v6.family = PeerAddress::Family::ipv6;
  v6.address[15] = 1;
  v6.port = 443;
  v6.format(out);
  EXPECT_EQ(out, "[::1]:443");
  PeerAddress unix_peer;
  unix_peer.family = PeerAddress::Family::unix_socket;
  unix_peer.format(out);
  EXPECT_EQ(out, "unix");
  PeerAddress().format(out);
  EXPECT_EQ(out, "?");
}

// The peer's address as the server sees it is the client socket's own.
struct PeerEcho : Writer {
  void on_data(Connection& c, const Bytes&) override {
    std::string text;
    c.peer().format(text);
    send(c, text + "|" + c.peer_address() + "\n");
  }
};

TEST(Connection, KnowsItsPeersAddress) {
  Reactor reactor(one_loop());
  auto port =
      reactor.listen_tcp("127.0.0.1", 0, [](Loop&) { return std::make_unique<PeerEcho>(); });
  ASSERT_TRUE(port);
  Running run(reactor);
  int fd = dial(*port);
  ASSERT_GE(fd, 0);
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len), 0);
  std::string expected = "127.0.0.1:" + std::to_string(ntohs(local.sin_port));
  ASSERT_EQ(::send(fd, "?", 1, 0), 1);
  EXPECT_EQ(recv_n(fd, 2 * expected.size() + 2), expected + "|" + expected + "\n");
  ::close(fd);
}

// ---- deadlines ------------------------------------------------------------------

struct Deadline : Writer {
  explicit Deadline(std::atomic<int>* fired) : fired(fired) {}
  void on_open(Connection& c) override { c.set_deadline(50); }
  void on_data(Connection& c, const Bytes& data) override {
    if (data.view() == "extend") c.set_deadline(150);
    if (data.view() == "clear") c.clear_deadline();
  }
  void on_timeout(Connection& c) override {
    ++*fired;
    send(c, "timeout");
    c.close();
  }
  std::atomic<int>* fired;
};

TEST(Connection, DeadlineFiresOnTimeoutAndCanBeCleared) {
  Reactor reactor(one_loop());
  std::atomic<int> fired{0};
  auto port =
      reactor.listen_tcp("127.0.0.1", 0, [&](Loop&) { return std::make_unique<Deadline>(&fired); });
  ASSERT_TRUE(port);
  Running run(reactor);

  int a = dial(*port);                   // silent: its deadline passes
  EXPECT_EQ(recv_n(a, 100), "timeout");  // then EOF
  ::close(a);

  int b = dial(*port);  // clears its deadline: stays open
  ASSERT_EQ(::send(b, "clear", 5, 0), 5);
  std::this_thread::sleep_for(200ms);
  char c;
  EXPECT_EQ(::recv(b, &c, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(fired.load(), 1);
  ::close(b);
}

struct Silent : ConnectionHandler {
  void on_data(Connection&, const Bytes&) override {}
  void on_writable(Connection&, IoChain&) override {}
  void on_drain(Connection& c) override { c.close(); }
  void on_open(Connection& c) override { c.set_deadline(30); }
};

TEST(Connection, DefaultTimeoutClosesTheConnection) {
  Reactor reactor(one_loop());
  auto port = reactor.listen_tcp("127.0.0.1", 0, [](Loop&) { return std::make_unique<Silent>(); });
  ASSERT_TRUE(port);
  Running run(reactor);
  int fd = dial(*port);
  char c;
  EXPECT_LE(::recv(fd, &c, 1, 0), 0);  // closed by the server, not the 20 s guard
  ::close(fd);
}

// ---- receive backpressure -----------------------------------------------------

// Answers every byte with 16 bytes: a peer that writes without reading makes
// output pile up unless the connection stops reading it.
struct Amplifier : Writer {
  explicit Amplifier(std::atomic<size_t>* received, std::atomic<size_t>* max_pending)
      : received(received), max_pending(max_pending) {}
  void on_data(Connection& c, const Bytes& data) override {
    *received += data.size();
    size_t p = c.pending_output();
    if (p > *max_pending) *max_pending = p;
    send(c, std::string(data.size() * 16, 'x'));
  }
  std::atomic<size_t>* received;
  std::atomic<size_t>* max_pending;
};

TEST(Connection, StopsReadingWhileThePeerDoesNotTakeItsOutput) {
  ReactorOptions o = one_loop();
  o.output_high_water = 256 << 10;
  Reactor reactor(o);
  std::atomic<size_t> received{0}, max_pending{0};
  auto port = reactor.listen_tcp(
      "127.0.0.1", 0, [&](Loop&) { return std::make_unique<Amplifier>(&received, &max_pending); });
  ASSERT_TRUE(port);
  Running run(reactor);
  int fd = dial(*port);
  int small = 64 << 10;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  // Write 64 MiB without reading a byte; without backpressure the server
  // would read it all and queue 1 GiB of answers.
  std::string chunk(64 << 10, 'a');
  size_t sent = 0;
  auto end = std::chrono::steady_clock::now() + 1s;
  while (sent < (64u << 20) && std::chrono::steady_clock::now() < end) {
    ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0)
      sent += static_cast<size_t>(n);
    else
      std::this_thread::sleep_for(1ms);
  }
  EXPECT_LT(sent, 64u << 20) << "the server kept reading a peer that does not read";
  // What the server read is bounded by its high-water mark plus socket buffers.
  EXPECT_LT(received.load(), 16u << 20);
  size_t before = received.load();
  // Reading the answers lets it read again.
  std::vector<char> sink(1 << 20);
  auto drain_end = std::chrono::steady_clock::now() + 20s;
  while (received.load() <= before && std::chrono::steady_clock::now() < drain_end) {
    ::recv(fd, sink.data(), sink.size(), 0);
  }
  EXPECT_GT(received.load(), before);
  ::close(fd);
}

// ---- outbound connections ---------------------------------------------------------

// Client side: sends a greeting on open and records the answer and close.
struct Client : Writer {
  struct Seen {
    std::atomic<bool> opened{false};
    std::atomic<bool> closed{false};
    std::atomic<int> error{0};
    std::string answer;
    std::string error_text;
  };
  explicit Client(Seen* seen) : seen(seen) {}
  void on_open(Connection& c) override {
    seen->opened = true;
    send(c, "ping");
  }
  void on_data(Connection& c, const Bytes& data) override {
    seen->answer += data.view();
    if (seen->answer.size() >= 4) c.close();
  }
  void on_close(Connection& c, int error) override {
    seen->error_text = c.error_text();
    seen->error = error;
    seen->closed = true;
  }
  Seen* seen;
};

struct EchoServer : Writer {
  void on_data(Connection& c, const Bytes& data) override { send(c, std::string(data.view())); }
};

TEST(Connection, ConnectsOutByNameAndByAddress) {
  Reactor reactor(one_loop());
  auto port =
      reactor.listen_tcp("127.0.0.1", 0, [](Loop&) { return std::make_unique<EchoServer>(); });
  ASSERT_TRUE(port);
  Running run(reactor);
  for (std::string host : {"127.0.0.1", "localhost"}) {
    Client::Seen seen;
    reactor.loop(0).post(
        [&, host](Loop& loop) { loop.connect(host, *port, std::make_unique<Client>(&seen)); });
    ASSERT_TRUE(wait_until([&] { return seen.closed.load(); })) << host;
    EXPECT_TRUE(seen.opened) << host;
    EXPECT_EQ(seen.answer, "ping") << host;
    EXPECT_EQ(seen.error.load(), 0) << host << ": " << seen.error_text;
  }
}

TEST(Connection, ConnectsOutToUnixSockets) {
  Reactor reactor(one_loop());
  std::string path = "/tmp/ember-conn-" + std::to_string(::getpid()) + ".sock";
  ASSERT_TRUE(reactor.listen_unix(path, [](Loop&) { return std::make_unique<EchoServer>(); }));
  Running run(reactor);
  Client::Seen seen;
  reactor.loop(0).post(
      [&](Loop& loop) { loop.connect_unix(path, std::make_unique<Client>(&seen)); });
  ASSERT_TRUE(wait_until([&] { return seen.closed.load(); }));
  EXPECT_EQ(seen.answer, "ping");
}

TEST(Connection, ConnectFailuresSayWhatFailed) {
  Reactor reactor(one_loop());
  Running run(reactor);

  // A port nobody listens on: bind one and close it.
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t dead_port = ntohs(a.sin_port);
  ::close(probe);

  Client::Seen refused;
  reactor.loop(0).post([&](Loop& loop) {
    loop.connect("127.0.0.1", dead_port, std::make_unique<Client>(&refused));
  });
  ASSERT_TRUE(wait_until([&] { return refused.closed.load(); }));
  EXPECT_FALSE(refused.opened);
  EXPECT_LT(refused.error.load(), 0);
  EXPECT_NE(refused.error_text.find("connect 127.0.0.1:" + std::to_string(dead_port)),
            std::string::npos)
      << refused.error_text;
  EXPECT_NE(refused.error_text.find("refused"), std::string::npos) << refused.error_text;

  Client::Seen unknown;
  reactor.loop(0).post([&](Loop& loop) {
    loop.connect("no-such-host.invalid", 80, std::make_unique<Client>(&unknown));
  });
  ASSERT_TRUE(wait_until([&] { return unknown.closed.load(); }));
  EXPECT_FALSE(unknown.opened);
  EXPECT_NE(unknown.error_text.find("resolve no-such-host.invalid"), std::string::npos)
      << unknown.error_text;

  Client::Seen missing;
  reactor.loop(0).post([&](Loop& loop) {
    loop.connect_unix("/nonexistent/ember.sock", std::make_unique<Client>(&missing));
  });
  ASSERT_TRUE(wait_until([&] { return missing.closed.load(); }));
  EXPECT_NE(missing.error_text.find("connect /nonexistent/ember.sock"), std::string::npos)
      << missing.error_text;
}

TEST(Connection, ConnectTimesOut) {
  // A listener with a full accept queue drops further SYNs: connects hang.
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ::connect(f, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(f);
  }
  std::this_thread::sleep_for(50ms);

  Reactor reactor(one_loop());
  Running run(reactor);
  Client::Seen seen;
  ConnectOptions opts;
  opts.timeout = 200ms;
  reactor.loop(0).post(
      [&](Loop& loop) { loop.connect("127.0.0.1", port, std::make_unique<Client>(&seen), opts); });
  ASSERT_TRUE(wait_until([&] { return seen.closed.load(); }));
  EXPECT_FALSE(seen.opened);
  EXPECT_EQ(seen.error.load(), UV_ETIMEDOUT);
  EXPECT_NE(seen.error_text.find("timed out after 200 ms"), std::string::npos) << seen.error_text;
  for (int f : fillers)
    ::close(f);
  ::close(lfd);
}

// Uploads without end and records what comes back.
struct Uploader : ConnectionHandler {
  explicit Uploader(Client::Seen* seen, bool hold_input = false)
      : seen(seen), hold_input(hold_input) {}
  void on_open(Connection& c) override {
    seen->opened = true;
    if (hold_input) c.pause_reading();
    c.want_write();
  }
  void on_data(Connection&, const Bytes& data) override { seen->answer += data.view(); }
  void on_writable(Connection& c, IoChain& out) override {
    out.append(piece);
    c.want_write();
  }
  void on_drain(Connection& c) override { c.close(); }
  void on_close(Connection& c, int error) override {
    seen->error_text = c.error_text();
    seen->error = error;
    seen->closed = true;
  }
  Client::Seen* seen;
  bool hold_input;
  Bytes piece = Bytes::from(std::string(256 * 1024, 'u'));
};

// A listener whose one connection reads a little, answers, and closes with
// the rest unread: a reset.
struct RefusingServer {
  RefusingServer() {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1) != 0)
      return;
    socklen_t len = sizeof a;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    thread = std::thread([this] {
      int fd = ::accept(lfd, nullptr, nullptr);
      if (fd < 0) return;
      recv_n(fd, 1000);
      ::send(fd, "refused", 7, MSG_NOSIGNAL);
      ::close(fd);  // unread input: a reset
    });
  }
  ~RefusingServer() {
    ::shutdown(lfd, SHUT_RDWR);
    if (thread.joinable()) thread.join();
    ::close(lfd);
  }
  int lfd = -1;
  uint16_t port = 0;
  std::thread thread;
};

// Uploads to a fresh RefusingServer on a reactor of its own; false when the
// connection did not close within `guard`.
bool upload_until_closed(Client::Seen& seen, bool hold_input, std::chrono::seconds guard = 20s) {
  RefusingServer server;
  if (server.port == 0) return false;
  Reactor reactor(one_loop());
  Running run(reactor);
  reactor.loop(0).post([&](Loop& loop) {
    loop.connect("127.0.0.1", server.port, std::make_unique<Uploader>(&seen, hold_input));
  });
  return wait_until([&] { return seen.closed.load(); }, guard);
}

// A server that refuses an upload answers and closes with the upload unread:
// its kernel resets the connection and the client's next write fails. The
// answer is in the client's receive buffer by then, and it still gets it.
TEST(Connection, AClientReadsWhatItsPeerSentBeforeResettingIt) {
  for (int round = 0; round < 5; ++round) {
    Client::Seen seen;
    ASSERT_TRUE(upload_until_closed(seen, false)) << "round " << round;
    EXPECT_EQ(seen.answer, "refused") << "round " << round;
    // The reset, or the end of input when libuv took the reset for a queued write.
    int e = seen.error.load();
    EXPECT_TRUE(e == 0 || e == UV_ECONNRESET || e == UV_EPIPE)
        << "round " << round << ": " << e << " " << seen.error_text;
  }
}

// A client holding its input back would never read to the end of it: the
// reset closes its connection at once, as before, instead of leaving it open.
TEST(Connection, AClientHoldingItsInputBackClosesOnAReset) {
  Client::Seen seen;
  // Well before the reactor's stop would close it.
  ASSERT_TRUE(upload_until_closed(seen, true, 10s));
  EXPECT_TRUE(seen.error.load() == UV_ECONNRESET || seen.error.load() == UV_EPIPE)
      << seen.error.load() << " " << seen.error_text;
}

// ---- backoff and CPUs ---------------------------------------------------------------

TEST(Backoff, DoublesWithJitterUpToTheCapAndResets) {
  Backoff b(100ms, 1000ms);
  int64_t bases[] = {100, 200, 400, 800, 1000, 1000};
  for (int64_t base : bases) {
    auto d = b.next().count();
    EXPECT_GE(d, base / 2);
    EXPECT_LE(d, base);
  }
  EXPECT_EQ(b.attempts(), 6u);
  b.reset();
  auto d = b.next().count();
  EXPECT_GE(d, 50);
  EXPECT_LE(d, 100);
}

TEST(Reactor, DefaultLoopCountFollowsTheAffinityMask) {
  std::vector<unsigned> cpus = Reactor::allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  cpu_set_t saved;
  ASSERT_EQ(::sched_getaffinity(0, sizeof saved, &saved), 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus[0], &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
  ::unsetenv("EMBER_THREADS");
  {
    ReactorOptions o;
    o.handle_signals = false;
    Reactor r(o);
    EXPECT_EQ(r.size(), 1u);
    EXPECT_EQ(Reactor::allowed_cpus(), std::vector<unsigned>{cpus[0]});
  }
  ::sched_setaffinity(0, sizeof saved, &saved);
}

}  // namespace
}  // namespace ember
