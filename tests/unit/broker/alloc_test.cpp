// Steady-state heap allocations of the Broker, counted: a relay (delivery
// in, its body published onward by reference, the confirm acking the
// delivery) must allocate nothing on the Broker's loop thread once warm.
//
// The fake broker runs on a second reactor, so its own bookkeeping (it logs
// strings) is on another thread, which the per-thread counter
// (tests/unit/support/allocation_counter.hpp) does not see.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "ember/reactor.hpp"
#include "handlers/queue/broker.hpp"
#include "tests/unit/broker/fake_broker.hpp"
#include "tests/unit/support/allocation_counter.hpp"

namespace ember::queue {
namespace {

using namespace std::chrono_literals;

struct Running {
  explicit Running(ReactorOptions o) : reactor(o) {}
  void start() {
    thread = std::thread([this] { reactor.run(); });
  }
  ~Running() {
    reactor.stop();
    if (thread.joinable()) thread.join();
  }
  template <class F>
  auto on_loop(F fn) {
    using R = decltype(fn());
    std::promise<R> done;
    auto fut = done.get_future();
    reactor.loop(0).post([&](Loop&) {
      if constexpr (std::is_void_v<R>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return fut.get();
  }
  Reactor reactor;
  std::thread thread;
};

ReactorOptions one_loop() {
  ReactorOptions o;
  o.threads = 1;
  o.handle_signals = false;
  o.drain_timeout = 5s;
  return o;
}

// What the relay callbacks reach; captured by pointer so each ConfirmFn
// (pointer + tag value, 16 bytes) fits std::function's local buffer.
struct Relay {
  Broker* broker = nullptr;
  uint64_t relayed = 0;
};

TEST(BrokerAlloc, RelayAllocatesNothingOnceWarm) {
  test::FakeBroker fake;
  Running server(one_loop());
  auto port = server.reactor.listen_tcp(
      "127.0.0.1", 0, [&](Loop&) { return std::make_unique<test::FakeSession>(fake); });
  ASSERT_TRUE(port);
  server.start();
  Running client(one_loop());
  client.start();

  Relay relay;
  std::unique_ptr<Broker> broker;
  int readies = 0;
  client.on_loop([&] {
    BrokerSettings s;
    s.port = *port;
    BrokerEvents ev;
    ev.on_ready = [&] { ++readies; };
    broker = std::make_unique<Broker>(client.reactor.loop(0), s, std::move(ev));
    relay.broker = broker.get();
    QueueSpec q;
    q.name = "q";
    broker->declare_queue(q);
    broker->consume("q", [r = &relay](const Delivery& d) {
      r->broker->publish("", "out", d.body, {}, [r, value = d.tag.value](const Confirm& c) {
        ++r->relayed;
        DeliveryTag tag{value, r->broker->epoch()};
        if (c.ok()) {
          r->broker->ack(tag);
        } else {
          r->broker->nack(tag);
        }
      });
    });
    broker->start();
  });
  auto wait = [&](auto pred) {
    auto end = std::chrono::steady_clock::now() + 20s;
    while (!client.on_loop(pred))
      if (std::chrono::steady_clock::now() > end) return false;
    return true;
  };
  ASSERT_TRUE(wait([&] { return readies == 1; }));

  uint64_t tag = 0;
  auto run = [&](int n) {
    server.on_loop([&] {
      for (int i = 0; i < n; ++i)
        fake.current()->deliver(++tag, "a body of some bytes");
    });
    return wait([&] { return relay.relayed == tag; });
  };
  ASSERT_TRUE(run(64));
  ASSERT_TRUE(run(512));  // warm: buffers at their working size
  client.on_loop([] { ember::test::arm_allocation_counter(); });
  for (int round = 0; round < 8; ++round)
    ASSERT_TRUE(run(128));
  uint64_t count = client.on_loop([] { return ember::test::disarm_allocation_counter(); });
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(client.on_loop([&] { return broker->unacked(); }), 0u);
  client.on_loop([&] { broker.reset(); });
}

}  // namespace
}  // namespace ember::queue
