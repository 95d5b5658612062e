// The reactor: listeners, mailboxes, timers and drain, on loopback and Unix
// sockets with real threads. Waits have generous hang guards; nothing here
// asserts how fast anything happens.
#include "ember/reactor.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ember {
namespace {

using namespace std::chrono_literals;

// Polls `pred` until it holds; the deadline only guards against a hang.
template <class Pred>
bool wait_until(Pred pred, std::chrono::seconds guard = 20s) {
  auto end = std::chrono::steady_clock::now() + guard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

ReactorOptions options(unsigned threads) {
  ReactorOptions o;
  o.threads = threads;
  o.handle_signals = false;
  o.drain_timeout = 20s;
  return o;
}

// ---- blocking client helpers ----------------------------------------------

void set_timeouts(int fd) {
  timeval tv{20, 0};  // hang guard
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int connect_tcp(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  set_timeouts(fd);
  return fd;
}

int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof a.sun_path - 1));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  set_timeouts(fd);
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `n` bytes, EOF or error.
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

// True when the peer closed (EOF or reset) rather than the guard expiring.
bool peer_closed(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// ---- handlers ---------------------------------------------------------------

// Echoes every byte back, by reference to the read buffer.
struct Echo : ConnectionHandler {
  void on_data(Connection& c, const Bytes& data) override {
    pending.push_back(data);
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

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/ember-unit-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

// Listening TCP sockets on `port` that this process owns. Other processes
// (tests running in parallel) may hold SO_REUSEPORT sockets on the same port
// number: the kernel can hand a port of another reuseport group to bind(0).
int listeners_on(uint16_t port) {
  std::set<std::string> ours;  // socket inodes among our file descriptors
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.starts_with("socket:[")) ours.insert(target.substr(8, target.size() - 9));
  }
  std::ifstream f("/proc/net/tcp");
  std::string line;
  std::getline(f, line);
  int count = 0;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    in >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >>
        inode;
    unsigned p = std::stoul(local.substr(local.find(':') + 1), nullptr, 16);
    if (p == port && state == "0A" && ours.count(inode)) ++count;
  }
  return count;
}

// ---- TCP ----------------------------------------------------------------------

TEST(Reactor, TcpEchoOnTwoLoopsWithReusePort) {
  Reactor reactor(options(2));
  std::atomic<int> per_loop[2] = {0, 0};
  auto port = reactor.listen_tcp("127.0.0.1", 0, [&](Loop& loop) {
    EXPECT_TRUE(loop.on_loop_thread());
    ++per_loop[loop.index()];
    return std::make_unique<Echo>();
  });
  ASSERT_TRUE(port) << port.error().message;
  ASSERT_NE(*port, 0);
  EXPECT_EQ(listeners_on(*port), 2);  // one SO_REUSEPORT socket per loop

  int rc = -1;
  std::thread runner([&] { rc = reactor.run(); });
  // The kernel spreads connections over the two sockets by hash; with 64 of
  // them, one loop getting none has odds of 2^-63.
  for (int i = 0; i < 64; ++i) {
    int fd = connect_tcp(*port);
    ASSERT_GE(fd, 0);
    std::string msg = "hello " + std::to_string(i);
    ASSERT_TRUE(send_all(fd, msg));
    EXPECT_EQ(recv_n(fd, msg.size()), msg);
    ::close(fd);
  }
  // A large message forces partial writes and queued output.
  int fd = connect_tcp(*port);
  std::string big(4 << 20, 'b');
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>(i / 4096);
  std::thread sender([&] { EXPECT_TRUE(send_all(fd, big)); });
  EXPECT_TRUE(recv_n(fd, big.size()) == big);
  sender.join();
  ::close(fd);

  reactor.stop();
  runner.join();
  EXPECT_EQ(rc, 0);
  EXPECT_GT(per_loop[0].load(), 0);
  EXPECT_GT(per_loop[1].load(), 0);
}

TEST(Reactor, TcpPortInUseIsAnError) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  Reactor reactor(options(1));
  auto port = reactor.listen_tcp("127.0.0.1", ntohs(a.sin_port),
                                 [](Loop&) { return std::make_unique<Echo>(); });
  ASSERT_FALSE(port);
  EXPECT_NE(port.error().message.find("another server"), std::string::npos) << port.error().message;
  ::close(fd);
}

// ---- Unix sockets -------------------------------------------------------------

HandlerFactory echo_factory() {
  return [](Loop&) { return std::make_unique<Echo>(); };
}

TEST(Reactor, UnixListenerReplacesAStaleSocketFile) {
  TempDir dir;
  std::string path = dir.path + "/stale.sock";
  {
    // A socket file nobody listens on: what a crashed server leaves behind.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_LT(connect_unix(path), 0);

  Reactor reactor(options(2));
  auto ok = reactor.listen_unix(path, echo_factory());
  ASSERT_TRUE(ok) << ok.error().message;
  int rc = -1;
  std::thread runner([&] { rc = reactor.run(); });
  for (int i = 0; i < 8; ++i) {
    int fd = connect_unix(path);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, "over unix"));
    EXPECT_EQ(recv_n(fd, 9), "over unix");
    ::close(fd);
  }
  reactor.stop();
  runner.join();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "socket file left behind";
}

TEST(Reactor, UnixListenerRefusesALiveSocket) {
  TempDir dir;
  std::string path = dir.path + "/live.sock";
  Reactor first(options(1));
  ASSERT_TRUE(first.listen_unix(path, echo_factory()));
  Reactor second(options(1));
  auto r = second.listen_unix(path, echo_factory());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("in use"), std::string::npos) << r.error().message;
  // The first listener is untouched.
  int fd = connect_unix(path);
  EXPECT_GE(fd, 0);
  ::close(fd);
}

TEST(Reactor, UnixListenerRefusesARegularFile) {
  TempDir dir;
  std::string path = dir.path + "/precious.txt";
  std::ofstream(path) << "keep me";
  Reactor reactor(options(1));
  auto r = reactor.listen_unix(path, echo_factory());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a socket"), std::string::npos) << r.error().message;
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

TEST(Reactor, UnixPathLengthAtAndPastTheLimit) {
  TempDir dir;
  std::string base = dir.path + "/";
  ASSERT_LT(base.size(), 100u);
  std::string at_limit = base + std::string(107 - base.size(), 'a');
  std::string past_limit = base + std::string(108 - base.size(), 'b');
  ASSERT_EQ(at_limit.size(), 107u);
  {
    Reactor reactor(options(1));
    auto r = reactor.listen_unix(at_limit, echo_factory());
    EXPECT_TRUE(r) << r.error().message;
    int fd = connect_unix(at_limit);
    EXPECT_GE(fd, 0);
    ::close(fd);
  }
  Reactor reactor(options(1));
  auto r = reactor.listen_unix(past_limit, echo_factory());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("108 bytes"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("107"), std::string::npos) << r.error().message;
  EXPECT_FALSE(reactor.listen_unix("", echo_factory()));
}

TEST(Reactor, UnixListenerInAMissingDirectoryIsAnError) {
  Reactor reactor(options(1));
  auto r = reactor.listen_unix("/nonexistent-ember-dir/x.sock", echo_factory());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("directory"), std::string::npos) << r.error().message;
}

// ---- mailbox --------------------------------------------------------------------

struct Record : MailboxItem {
  int producer = 0;
  int seq = 0;
  std::vector<std::pair<int, int>>* log = nullptr;
  bool* wrong_thread = nullptr;
};

TEST(Reactor, PostDeliversEveryItemInOrderPerProducer) {
  Reactor reactor(options(2));
  Loop& target = reactor.loop(1);
  constexpr int kProducers = 4, kItems = 3000;
  std::vector<std::pair<int, int>> log;  // touched only on loop 1's thread
  bool wrong_thread = false;
  std::vector<std::vector<Record>> items(kProducers, std::vector<Record>(kItems));
  int rc = -1;
  std::thread runner([&] { rc = reactor.run(); });

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kItems; ++i) {
        if (i % 10 == 0) {
          // The allocating convenience form shares the same queue.
          target.post([&log, &wrong_thread, p, i](Loop& loop) {
            if (!loop.on_loop_thread() || loop.index() != 1) wrong_thread = true;
            log.emplace_back(p, i);
          });
          continue;
        }
        Record& r = items[p][i];
        r.producer = p;
        r.seq = i;
        r.log = &log;
        r.wrong_thread = &wrong_thread;
        r.run = [](MailboxItem* self, Loop* loop) {
          auto* rec = static_cast<Record*>(self);
          if (!loop || !loop->on_loop_thread() || loop->index() != 1) *rec->wrong_thread = true;
          rec->log->emplace_back(rec->producer, rec->seq);
        };
        target.post(&r);
      }
    });
  }
  for (auto& t : producers)
    t.join();
  // Posted after every producer finished, so it runs after all their items.
  target.post([&reactor](Loop&) { reactor.stop(); });
  runner.join();
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(wrong_thread);
  ASSERT_EQ(log.size(), static_cast<size_t>(kProducers * kItems));
  std::vector<int> next(kProducers, 0);
  for (auto [p, seq] : log) {
    ASSERT_EQ(seq, next[p]) << "producer " << p << " out of order";
    ++next[p];
  }
}

TEST(Reactor, PostAfterTheLoopStoppedRunsWithoutALoop) {
  Reactor reactor(options(1));
  std::thread runner([&] { EXPECT_EQ(reactor.run(), 0); });
  reactor.stop();
  runner.join();
  struct Item : MailboxItem {
    bool ran = false;
    bool had_loop = true;
  } item;
  item.run = [](MailboxItem* self, Loop* loop) {
    auto* it = static_cast<Item*>(self);
    it->ran = true;
    it->had_loop = loop != nullptr;
  };
  reactor.loop(0).post(&item);
  EXPECT_TRUE(item.ran);  // on this thread, at once, so it can release what it holds
  EXPECT_FALSE(item.had_loop);
  bool called = false;
  reactor.loop(0).post([&called](Loop&) { called = true; });
  EXPECT_FALSE(called);  // dropped (and freed: LeakSanitizer would say otherwise)
}

// Deferred items run once each, in order, at the end of the turn that
// deferred them; one deferred from a deferred item runs in that same flush.
TEST(Reactor, DeferredItemsRunOnceInOrderAtTheEndOfTheTurn) {
  Reactor reactor(options(1));
  std::thread runner([&] { EXPECT_EQ(reactor.run(), 0); });
  struct Item : MailboxItem {
    std::vector<std::string>* log = nullptr;
    std::string name;
    Item* then = nullptr;  // deferred from this one's run
    std::promise<void>* done = nullptr;
  };
  std::vector<std::string> log;
  std::promise<void> done;
  auto run = [](MailboxItem* self, Loop* loop) {
    auto* it = static_cast<Item*>(self);
    it->log->push_back(it->name);
    if (it->then) loop->defer(it->then);
    if (it->done) it->done->set_value();
  };
  Item a, b, c;
  for (auto [item, name] : {std::pair{&a, "a"}, {&b, "b"}, {&c, "c"}}) {
    item->log = &log;
    item->name = name;
    item->run = run;
  }
  a.then = &c;
  c.done = &done;
  reactor.loop(0).post([&](Loop& loop) {
    loop.defer(&a);
    loop.defer(&b);
    log.push_back("task");  // the deferred ones run after this returns
  });
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  reactor.stop();
  runner.join();
  EXPECT_EQ(log, (std::vector<std::string>{"task", "a", "b", "c"}));
}

// ---- timers ---------------------------------------------------------------------

struct Timed : TimerEntry {
  int id = 0;
};

struct TimerLog {
  std::vector<int> fired;
  Reactor* reactor = nullptr;
  Loop* loop = nullptr;
  Timed after_last;
};

TEST(Reactor, TimersFireInDeadlineOrderAndCancelWorks) {
  Reactor reactor(options(1));
  TimerLog log;
  log.reactor = &reactor;
  log.loop = &reactor.loop(0);
  Timed t[6];
  int ids[] = {30, 10, 20, 0, 15, 5};
  for (int i = 0; i < 6; ++i) {
    t[i].id = ids[i];
    t[i].context = &log;
    t[i].fire = [](TimerEntry* self) {
      auto* me = static_cast<Timed*>(self);
      auto* l = static_cast<TimerLog*>(me->context);
      EXPECT_FALSE(me->armed());
      l->fired.push_back(me->id);
      if (me->id == 30) {
        // Armed from inside a firing timer; it stops the reactor.
        l->after_last.id = 99;
        l->after_last.context = l;
        l->after_last.fire = [](TimerEntry* s) {
          auto* ll = static_cast<TimerLog*>(s->context);
          ll->fired.push_back(99);
          ll->reactor->stop();
        };
        l->loop->arm(l->after_last, 1);
      }
    };
  }
  bool cancelled_state_ok = false;
  reactor.loop(0).post([&](Loop& loop) {
    loop.arm(t[0], 30);
    loop.arm(t[1], 10);
    loop.arm(t[2], 20);
    loop.arm(t[3], 0);
    loop.arm(t[4], 15);
    loop.cancel(t[4]);  // never fires
    loop.cancel(t[4]);  // cancelling twice is harmless
    loop.arm(t[5], 5);
    loop.arm(t[5], 25);  // re-arming moves the deadline
    cancelled_state_ok = !t[4].armed() && t[5].armed();
  });
  EXPECT_EQ(reactor.run(), 0);
  EXPECT_TRUE(cancelled_state_ok);
  EXPECT_EQ(log.fired, (std::vector<int>{0, 10, 20, 5, 30, 99}));
}

struct Probe : TimerEntry {
  std::chrono::steady_clock::time_point fired_at{};
  bool fired = false;
  static void record(TimerEntry* self) {
    auto* p = static_cast<Probe*>(self);
    p->fired = true;
    p->fired_at = std::chrono::steady_clock::now();
  }
};

struct Stopper : TimerEntry {
  explicit Stopper(Reactor& r) {
    context = &r;
    fire = [](TimerEntry* self) { static_cast<Reactor*>(self->context)->stop(); };
  }
};

// A deadline pushed later leaves the loop's timer set for the old one: it
// wakes then with nothing due and is set again. Nothing fires early.
TEST(Reactor, ATimerPushedLaterFiresAtItsNewDeadline) {
  Reactor reactor(options(1));
  Probe later;
  later.fire = &Probe::record;
  Stopper stop(reactor);
  std::chrono::steady_clock::time_point armed_at;
  reactor.loop(0).post([&](Loop& loop) {
    armed_at = std::chrono::steady_clock::now();
    loop.arm(later, 20);  // the front: the loop's timer is set for 20 ms
    loop.arm(later, 200);
    loop.arm(stop, 400);
  });
  EXPECT_EQ(reactor.run(), 0);
  ASSERT_TRUE(later.fired);
  // Deadlines count from the loop's cached time, a little before armed_at.
  EXPECT_GE(later.fired_at - armed_at, std::chrono::milliseconds(150));
}

// Pulled earlier, a deadline becomes the front and moves the loop's timer;
// cancelling the front leaves the next one to fire on time.
TEST(Reactor, ATimerPulledEarlierOrACancelledFrontKeepsTheRestOnTime) {
  Reactor reactor(options(1));
  Probe earlier, cancelled, next;
  earlier.fire = cancelled.fire = next.fire = &Probe::record;
  Stopper stop(reactor);
  std::chrono::steady_clock::time_point armed_at;
  reactor.loop(0).post([&](Loop& loop) {
    armed_at = std::chrono::steady_clock::now();
    loop.arm(earlier, 60000);
    loop.arm(earlier, 30);    // a new front, a minute before the old deadline
    loop.arm(cancelled, 10);  // the front now
    loop.arm(next, 100);
    loop.cancel(cancelled);  // the loop's timer still says 10 ms
    loop.arm(stop, 500);     // both must have fired by then
  });
  EXPECT_EQ(reactor.run(), 0);
  EXPECT_FALSE(cancelled.fired);
  ASSERT_TRUE(earlier.fired);
  ASSERT_TRUE(next.fired);
  EXPECT_LT(earlier.fired_at, next.fired_at);
  EXPECT_GE(next.fired_at - armed_at, std::chrono::milliseconds(50));
}

// A front due after the loop's timer is set to fire leaves the timer alone;
// the early wake finds nothing due and sets it again, so nothing is lost.
TEST(Reactor, AFrontDueAfterTheScheduledWakeStillFires) {
  Reactor reactor(options(1));
  Probe cancelled, later;
  cancelled.fire = later.fire = &Probe::record;
  Stopper stop(reactor);
  std::chrono::steady_clock::time_point armed_at;
  reactor.loop(0).post([&](Loop& loop) {
    armed_at = std::chrono::steady_clock::now();
    loop.arm(stop, 500);      // keeps the heap non-empty through the cancel
    loop.arm(cancelled, 10);  // the loop's timer: 10 ms
    loop.cancel(cancelled);   // ... still 10 ms: a later front is left to the wake
    loop.arm(later, 40);      // the front, due after the timer fires: timer untouched
  });
  EXPECT_EQ(reactor.run(), 0);
  EXPECT_FALSE(cancelled.fired);
  ASSERT_TRUE(later.fired) << "lost after the empty wake at 10 ms";
  // Not at the early wake (10 ms); the loop's clock may lag steady_clock by 1 ms.
  EXPECT_GE(later.fired_at - armed_at, std::chrono::milliseconds(30));
}

// ---- drain ------------------------------------------------------------------------

// Holds its connection open through a drain until the client says "finish".
struct Worker : ConnectionHandler {
  struct Shared {
    std::atomic<int> drains{0};
    std::atomic<int> requests{0};
    bool close_on_drain = false;
  };
  explicit Worker(Shared* s) : shared(s) {}
  void on_open(Connection& c) override { conn = &c; }
  void on_data(Connection& c, const Bytes& data) override {
    got += data.view();
    if (got.find("work") != std::string::npos) {
      got.clear();
      ++shared->requests;
    }
    if (got.find("finish") != std::string::npos) {
      reply = true;
      c.want_write();
    }
  }
  void on_writable(Connection& c, IoChain& out) override {
    if (!reply) return;
    out.append_copy("done");
    reply = false;
    if (draining) c.close();  // after "done" is written
  }
  void on_drain(Connection& c) override {
    draining = true;
    ++shared->drains;
    if (shared->close_on_drain) c.close();
  }
  Shared* shared;
  Connection* conn = nullptr;
  std::string got;
  bool reply = false;
  bool draining = false;
};

TEST(Reactor, StopWaitsForWorkInFlightThenReturnsZero) {
  Reactor reactor(options(2));
  Worker::Shared shared;
  auto port =
      reactor.listen_tcp("127.0.0.1", 0, [&](Loop&) { return std::make_unique<Worker>(&shared); });
  ASSERT_TRUE(port);
  std::atomic<bool> returned{false};
  int rc = -1;
  std::thread runner([&] {
    rc = reactor.run();
    returned = true;
  });
  int fd = connect_tcp(*port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "work"));
  ASSERT_TRUE(wait_until([&] { return shared.requests.load() == 1; }));

  reactor.stop();
  ASSERT_TRUE(wait_until([&] { return shared.drains.load() == 1; }));
  // Draining, with the connection still busy: run() must not have returned.
  EXPECT_FALSE(returned.load());
  ASSERT_TRUE(send_all(fd, "finish"));
  EXPECT_EQ(recv_n(fd, 4), "done");
  EXPECT_TRUE(peer_closed(fd));
  ::close(fd);
  runner.join();
  EXPECT_EQ(rc, 0);
}

TEST(Reactor, DrainTimeoutCutsConnectionsAndReturnsOne) {
  ReactorOptions o = options(1);
  o.drain_timeout = 200ms;
  Reactor reactor(o);
  Worker::Shared shared;
  auto port =
      reactor.listen_tcp("127.0.0.1", 0, [&](Loop&) { return std::make_unique<Worker>(&shared); });
  ASSERT_TRUE(port);
  int rc = -1;
  std::thread runner([&] { rc = reactor.run(); });
  int fd = connect_tcp(*port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "work"));
  ASSERT_TRUE(wait_until([&] { return shared.requests.load() == 1; }));
  reactor.stop();  // the worker never finishes
  runner.join();
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(shared.drains.load(), 1);
  EXPECT_TRUE(peer_closed(fd));
  ::close(fd);
}

TEST(Reactor, IdleConnectionsCloseOnDrain) {
  Reactor reactor(options(1));
  Worker::Shared shared;
  shared.close_on_drain = true;
  auto port =
      reactor.listen_tcp("127.0.0.1", 0, [&](Loop&) { return std::make_unique<Worker>(&shared); });
  ASSERT_TRUE(port);
  int rc = -1;
  std::thread runner([&] { rc = reactor.run(); });
  int fd = connect_tcp(*port);
  ASSERT_TRUE(send_all(fd, "work"));
  ASSERT_TRUE(wait_until([&] { return shared.requests.load() == 1; }));
  reactor.stop();
  runner.join();
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(peer_closed(fd));
  ::close(fd);
}

TEST(Reactor, StopBeforeRunDrainsAtOnceAndRunsOnlyOnce) {
  Reactor reactor(options(2));
  reactor.stop();
  EXPECT_EQ(reactor.run(), 0);
  EXPECT_EQ(reactor.run(), 1);  // a reactor runs once
}

}  // namespace
}  // namespace ember

namespace ember {
namespace {

// CPU time (ms) the kernel charged to thread `tid` of this process.
long thread_cpu_ms(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(f, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; rest >> field; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return (utime + stime) * 1000 / sysconf(_SC_CLK_TCK);
}

TEST(Reactor, BusyPollSpinsOnlyForTheWindowAfterInput) {
  ReactorOptions o = options(1);
  o.busy_poll = 400ms;
  Reactor reactor(o);
  auto port = reactor.listen_tcp("127.0.0.1", 0, [](Loop&) { return std::make_unique<Echo>(); });
  ASSERT_TRUE(port) << port.error().message;
  std::atomic<pid_t> loop_tid{0};
  int rc = -1;
  std::thread runner([&] {
    loop_tid = static_cast<pid_t>(::gettid());
    rc = reactor.run();
  });
  ASSERT_TRUE(wait_until([&] { return loop_tid.load() != 0; }));
  auto cpu_over = [&](std::chrono::milliseconds span) {
    long before = thread_cpu_ms(loop_tid);
    std::this_thread::sleep_for(span);
    return thread_cpu_ms(loop_tid) - before;
  };
  // Before any input the loop sleeps in epoll.
  EXPECT_LT(cpu_over(300ms), 60);
  int fd = connect_tcp(*port);
  ASSERT_TRUE(send_all(fd, "ping"));
  EXPECT_EQ(recv_n(fd, 4), "ping");
  // Right after input it polls instead of sleeping: it burns CPU...
  EXPECT_GT(cpu_over(300ms), 60);
  // ...until the window has passed, then sleeps again.
  std::this_thread::sleep_for(300ms);
  EXPECT_LT(cpu_over(300ms), 60);
  ::close(fd);
  reactor.stop();
  runner.join();
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace ember
