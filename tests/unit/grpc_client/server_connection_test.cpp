// grpc::ServerConnection on a real loop: a test service with unary and
// server-streaming methods, called by grpcio's client (grpc_client_peer.py,
// an independent peer) and by grpc::Channel; calls parked when the client
// cancels or disconnects end with on_call_end(false), from on_close.
#include <gtest/gtest.h>

#include <charconv>
#include <condition_variable>
#include <mutex>

#include "protocols/grpc/server_connection.hpp"
#include "tests/unit/grpc_client/harness.hpp"

namespace ember::grpc {
namespace {

using namespace std::chrono_literals;
using namespace test;

// What the service saw, read by the test thread.
struct Stats {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<bool> ends;  // on_call_end's `responded`, in order
  int parked = 0;

  void ended(bool responded) {
    std::lock_guard lock(mu);
    ends.push_back(responded);
    cv.notify_all();
  }
  void park() {
    std::lock_guard lock(mu);
    ++parked;
    cv.notify_all();
  }
  // The ends seen once `n` are in (or after 30 s).
  std::vector<bool> wait_ends(size_t n) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 30s, [&] { return ends.size() >= n; });
    return ends;
  }
};

enum Method { kEcho, kCount, kCountThenFail, kHang };

int count_of(const Bytes& request) {
  int n = 0;
  std::from_chars(request.view().data(), request.view().data() + request.size(), n);
  return n;
}

class TestService final : public ServerConnection {
 public:
  TestService(Loop& loop, Stats& stats) : ServerConnection(loop, {}, {}), stats_(stats) {}

 private:
  int resolve_method(std::string_view path) override {
    if (path == "/test.Ember/Echo") return kEcho;
    if (path == "/test.Ember/Count") return kCount;
    if (path == "/test.Ember/CountThenFail") return kCountThenFail;
    if (path == "/test.Ember/Hang") return kHang;
    return -1;
  }
  void on_call(ServerCall& call) override {
    switch (call.method()) {
      case kEcho:
        return respond(call, {}, call.request());
      case kCount:
      case kCountThenFail: {
        int n = count_of(call.request());
        for (int i = 0; i < n; ++i) {
          std::string m = numbered(i);
          // The head carries the text, the body nothing: both paths framed.
          write(call, std::span(reinterpret_cast<const uint8_t*>(m.data()), m.size()), Bytes());
        }
        if (call.method() == kCount) return finish(call);
        return finish(call, StatusCode::resource_exhausted,
                      "quota used up after " + std::to_string(n));
      }
      case kHang:
        write(call, {}, Bytes::copy("first"));
        stats_.park();
        return;
    }
  }
  void on_call_end(ServerCall&, bool responded) override { stats_.ended(responded); }

  Stats& stats_;
};

// A one-loop reactor on a thread serving TestService on 127.0.0.1.
class Server {
 public:
  Server() : reactor_(options()) {
    auto port = reactor_.listen_tcp(
        "127.0.0.1", 0, [this](Loop& loop) { return std::make_unique<TestService>(loop, stats); });
    EXPECT_TRUE(port) << port.error().message;
    port_ = port ? *port : 0;
    thread_ = std::thread([this] { reactor_.run(); });
  }
  ~Server() {
    reactor_.stop();
    thread_.join();
  }
  uint16_t port() const { return port_; }
  Stats stats;

 private:
  static ReactorOptions options() {
    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    o.drain_timeout = 2s;
    return o;
  }
  Reactor reactor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

TEST(GrpcServerConnection, GrpcioClientGetsUnaryStreamsAndStatuses) {
  REQUIRE_PEER();
  Server server;
  ASSERT_NE(server.port(), 0);
  std::string cmd = std::string("/usr/bin/python3 ") + EMBER_GRPC_CLIENT_PEER + " " +
                    std::to_string(server.port()) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_TRUE(p);
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  int rc = pclose(p);
  EXPECT_EQ(rc, 0) << out;
  // Every call that was dispatched ended answered: 2 echoes, 2 counts, 1 failing.
  EXPECT_EQ(server.stats.wait_ends(5), std::vector<bool>(5, true));
}

TEST(GrpcServerConnection, ChannelStreamsFromIt) {
  Server server;
  Harness h(Channel::tcp("127.0.0.1", server.port()));
  Outcome o = h.stream("/test.Ember/Count", "1000");
  ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
  ASSERT_EQ(o.messages.size(), 1000u);
  EXPECT_EQ(o.messages[999], numbered(999));
  o = h.stream("/test.Ember/CountThenFail", "2");
  EXPECT_EQ(o.status->code, StatusCode::resource_exhausted);
  EXPECT_EQ(o.status->message, "quota used up after 2");
  EXPECT_EQ(o.messages, (std::vector<std::string>{numbered(0), numbered(1)}));
}

TEST(GrpcServerConnection, CancelledAndDisconnectedCallsEndUnanswered) {
  Server server;
  {
    Harness h(Channel::tcp("127.0.0.1", server.port()));
    Outcome o =
        h.stream("/test.Ember/Hang", "", {}, [](Channel& ch, uint64_t id) { ch.cancel(id); });
    EXPECT_EQ(o.status->code, StatusCode::cancelled);
    EXPECT_EQ(server.stats.wait_ends(1), std::vector<bool>{false});
    // A second parked call, then the client goes away: the connection's
    // on_close ends it while the service object is whole.
    Outcome parked;
    std::promise<void> done, first;
    h.start_stream("/test.Ember/Hang", "", parked, done, {},
                   [&](Channel&, uint64_t) { first.set_value(); });
    ASSERT_EQ(first.get_future().wait_for(30s), std::future_status::ready);
  }  // the channel is destroyed with the call in flight (no callback)
  EXPECT_EQ(server.stats.wait_ends(2), (std::vector<bool>{false, false}));
}

}  // namespace
}  // namespace ember::grpc
