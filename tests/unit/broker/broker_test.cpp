// ember::queue::Broker against a scripted fake broker in the same process:
// a loopback listener on the same loop whose sessions speak the server side
// of AMQP 0-9-1 through protocols/amqp's FrameReader and encoders. Covers the
// handshake and recovery logic without RabbitMQ: re-declare and re-consume
// after a reconnect, stale delivery tags, backoff after failed connects,
// channel closes, confirms (multiple, nack, return), connection.blocked,
// heartbeat timeouts and the clean close. Waits are failure guards only.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/tls.hpp"
#include "ember/log.hpp"
#include "ember/reactor.hpp"
#include "handlers/queue/broker.hpp"
#include "protocols/amqp/frames.hpp"
#include "tests/unit/amqp/amqp_test_util.hpp"
#include "tests/unit/broker/fake_broker.hpp"
#include "tests/unit/tls/pki.hpp"

namespace ember::queue {
namespace {

using namespace std::chrono_literals;
using test::FakeBroker;
using test::FakeSession;

// ---- the fixture ------------------------------------------------------------------

// "q" + std::to_string(i) without GCC 12's false -Wstringop-overflow.
std::string numbered(std::string_view head, int i) {
  std::string s(head);
  s += std::to_string(i);
  return s;
}

QueueSpec spec(std::string name, bool durable = false) {
  QueueSpec q;
  q.name = std::move(name);
  q.durable = durable;
  return q;
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::seconds guard = 20s) {
  auto end = std::chrono::steady_clock::now() + guard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class BrokerTest : public ::testing::Test {
 protected:
  // Runs `fn` on the loop thread and returns its result.
  template <class F>
  auto on_loop(F fn) {
    using R = decltype(fn());
    std::promise<R> done;
    auto fut = done.get_future();
    reactor_->loop(0).post([&](Loop&) {
      if constexpr (std::is_void_v<R>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return fut.get();
  }
  template <class F>
  bool wait_loop(F pred, std::chrono::seconds guard = 20s) {
    return wait_until([&] { return on_loop(pred); }, guard);
  }

  // Called first by SetUp: a TLS fixture makes its contexts here.
  virtual void configure() {}

  void SetUp() override {
    configure();
    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    o.drain_timeout = 5s;
    reactor_ = std::make_unique<Reactor>(o);
    auto port = reactor_->listen_tcp(
        "127.0.0.1", 0, [this](Loop&) { return std::make_unique<FakeSession>(fake_); },
        server_tls_);
    ASSERT_TRUE(port);
    port_ = *port;
    thread_ = std::thread([this] { reactor_->run(); });
  }

  void TearDown() override {
    if (thread_.joinable()) {
      on_loop([&] { broker_.reset(); });
      reactor_->stop();
      thread_.join();
    }
    broker_.reset();  // after the loop stopped: allowed, nothing left to run
  }

  BrokerSettings settings() {
    BrokerSettings s;
    s.port = port_;
    s.connection_name = "unit";
    s.reconnect_initial = 5ms;
    s.reconnect_max = 20ms;
    if (client_tls_) {
      s.tls = client_tls_;
      s.server_name = "localhost";
    }
    return s;
  }

  // Creates the Broker with a queue "q" and a consumer recording deliveries.
  void start(BrokerSettings s, bool with_consumer = true) {
    on_loop([&] {
      BrokerEvents ev;
      ev.on_ready = [this] { ++readies_; };
      ev.on_disconnected = [this](const amqp::AmqpError& e) {
        disconnects_.push_back(e.describe());
        codes_.push_back(e.code);
      };
      ev.on_blocked = [this](bool b, std::string_view) { blocked_events_.push_back(b); };
      ev.on_return = [this](const Returned& r) { returns_.push_back(std::string(r.body.view())); };
      ev.on_closed = [this] { closed_ = true; };
      broker_ = std::make_unique<Broker>(reactor_->loop(0), std::move(s), std::move(ev));
      broker_->declare_queue(spec("q"));
      if (with_consumer) {
        broker_->consume("q", [this](const Delivery& d) {
          deliveries_.push_back({d.tag, std::string(d.body.view()), d.redelivered});
        });
      }
      broker_->start();
    });
  }

  // The log of the latest session (back = 0), or an earlier one. Sessions
  // refused at once have empty logs.
  std::vector<std::string> session_log(size_t back = 0) {
    return on_loop([&] {
      auto& r = fake_.records;
      if (r.size() <= back) return std::vector<std::string>{};
      return r[r.size() - 1 - back]->log;
    });
  }
  bool logged(const std::string& line) {
    auto log = session_log();
    return std::find(log.begin(), log.end(), line) != log.end();
  }

  struct Seen {
    DeliveryTag tag;
    std::string body;
    bool redelivered;
  };

  FakeBroker fake_;
  std::shared_ptr<tls::ServerContext> server_tls_;
  std::shared_ptr<tls::ClientContext> client_tls_;
  uint16_t port_ = 0;
  std::unique_ptr<Reactor> reactor_;
  std::thread thread_;
  std::unique_ptr<Broker> broker_;
  int readies_ = 0;
  std::vector<std::string> disconnects_;
  std::vector<uint16_t> codes_;
  std::vector<bool> blocked_events_;
  std::vector<std::string> returns_;
  std::vector<Seen> deliveries_;
  bool closed_ = false;
};

struct Confirms {
  std::vector<std::string> seen;  // "acked", "failed: <text>", ...
  ConfirmFn fn() {
    return [this](const Confirm& c) {
      std::string s(to_string(c.outcome));
      if (c.code) s += " " + std::to_string(c.code);
      if (!c.text.empty()) s += ": " + std::string(c.text);
      seen.push_back(std::move(s));
    };
  }
};

TEST_F(BrokerTest, SetsUpChannelsTopologyAndConsumerInOrder) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  EXPECT_EQ(session_log(), (std::vector<std::string>{
                               "connection.start-ok 0", "connection.tune-ok 0", "connection.open 0",
                               "channel.open 1", "basic.qos 1 16", "queue.declare 1 q",
                               "basic.consume 1 q unit-1", "channel.open 2", "confirm.select 2"}));
  EXPECT_EQ(on_loop([&] { return fake_.current()->connection_name; }), "unit");
  EXPECT_EQ(on_loop([&] { return broker_->state(); }), Broker::State::ready);
}

TEST_F(BrokerTest, ConfirmsHonourMultipleAndNack) {
  fake_.auto_confirm = false;
  start(settings(), false);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  Confirms confirms;
  int reads = on_loop([&] { return fake_.records.back()->reads; });
  on_loop([&] {
    for (const char* body : {"a", "b", "c", "d"})
      broker_->publish("", "q", Bytes::copy(std::string_view(body)), {}, confirms.fn());
    EXPECT_EQ(broker_->in_flight(), 4u);
  });
  ASSERT_TRUE(wait_loop([&] { return fake_.current()->publish_seq == 4; }));
  // Published in one loop turn: one write, so one read on loopback.
  EXPECT_EQ(on_loop([&] { return fake_.records.back()->reads; }), reads + 1);
  on_loop([&] {
    FakeSession* s = fake_.current();
    s->send(2, amqp::BasicAck{2, true});    // 1 and 2
    s->send(2, amqp::BasicNack{4, false});  // 4 alone
    s->send(2, amqp::BasicAck{3, false});
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 4; }));
  EXPECT_EQ(confirms.seen, (std::vector<std::string>{"acked", "acked", "nacked", "acked"}));
  EXPECT_EQ(on_loop([&] { return broker_->in_flight(); }), 0u);
  EXPECT_EQ(session_log().back(), "basic.publish 2  q d");
}

TEST_F(BrokerTest, WithoutConfirmsAPublishIsAckedWhenWrittenAlongWithTheInboundAck) {
  fake_.auto_confirm = false;
  BrokerSettings s = settings();
  s.publisher_confirms = false;
  start(s);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  EXPECT_EQ(session_log().back(), "channel.open 2");  // no confirm.select
  on_loop([&] { fake_.current()->deliver(1, "in"); });
  ASSERT_TRUE(wait_loop([&] { return deliveries_.size() == 1; }));
  Confirms confirms;
  int reads = on_loop([&] { return fake_.records.back()->reads; });
  on_loop([&] {
    auto fn = confirms.fn();
    broker_->publish("", "out", Bytes::copy(std::string_view("result")), {},
                     [&, fn](const Confirm& c) {
                       fn(c);
                       EXPECT_TRUE(broker_->ack(deliveries_[0].tag));
                     });
    EXPECT_TRUE(confirms.seen.empty());  // not before it is written
  });
  ASSERT_TRUE(wait_until([&] { return logged("basic.ack 1 1"); }));
  EXPECT_EQ(confirms.seen, (std::vector<std::string>{"acked"}));
  auto log = session_log();
  EXPECT_EQ(std::vector<std::string>(log.end() - 2, log.end()),
            (std::vector<std::string>{"basic.publish 2  out result", "basic.ack 1 1"}));
  // The result and the inbound ack left in one write: one read on loopback.
  EXPECT_EQ(on_loop([&] { return fake_.records.back()->reads; }), reads + 1);
  EXPECT_EQ(on_loop([&] { return broker_->in_flight(); }), 0u);
}

TEST_F(BrokerTest, WithoutConfirmsAMandatoryPublishFailsAtOnce) {
  BrokerSettings s = settings();
  s.publisher_confirms = false;
  start(s, false);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  Confirms confirms;
  on_loop([&] {
    broker_->publish("", "q", Bytes::copy(std::string_view("m")), {}, confirms.fn(), true);
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 1; }));
  EXPECT_EQ(confirms.seen[0].rfind("failed: a mandatory publish needs publisher confirms", 0), 0u)
      << confirms.seen[0];
}

TEST_F(BrokerTest, MandatoryPublishReturnedIsReportedOnItsConfirm) {
  start(settings(), false);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  Confirms confirms;
  on_loop([&] {
    broker_->publish("", "q", Bytes::copy(std::string_view("ok")), {}, confirms.fn(), true);
    broker_->publish("", "unroutable", Bytes::copy(std::string_view("lost")), {}, confirms.fn(),
                     true);
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 2; }));
  EXPECT_EQ(confirms.seen, (std::vector<std::string>{"acked", "returned 312: NO_ROUTE"}));
  EXPECT_EQ(on_loop([&] { return returns_; }), std::vector<std::string>{"lost"});
}

TEST_F(BrokerTest, DeliveriesAreSettledOnTheConsumeChannel) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] {
    fake_.current()->deliver(1, "one");
    fake_.current()->deliver(2, "two", true);
    fake_.current()->deliver(3, "three");
  });
  ASSERT_TRUE(wait_loop([&] { return deliveries_.size() == 3; }));
  on_loop([&] {
    EXPECT_EQ(deliveries_[0].body, "one");
    EXPECT_FALSE(deliveries_[0].redelivered);
    EXPECT_TRUE(deliveries_[1].redelivered);
    EXPECT_EQ(broker_->unacked(), 3u);
    EXPECT_TRUE(broker_->ack(deliveries_[0].tag));
    EXPECT_TRUE(broker_->nack(deliveries_[1].tag, true));
    EXPECT_TRUE(broker_->reject(deliveries_[2].tag, false));
    EXPECT_EQ(broker_->unacked(), 0u);
  });
  ASSERT_TRUE(wait_loop([&] { return fake_.current()->log.size() >= 12; }));
  auto log = session_log();
  // The oldest delivery's ack waits for the end of the loop iteration (it
  // could have covered more); the others go at once.
  EXPECT_EQ(std::vector<std::string>(log.end() - 3, log.end()),
            (std::vector<std::string>{"basic.nack 1 2 requeue", "basic.reject 1 3 drop",
                                      "basic.ack 1 1"}));
}

TEST_F(BrokerTest, AcksOfTheOldestDeliveriesCoalesceIntoOneMultipleAck) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] {
    for (uint64_t t = 1; t <= 6; ++t)
      fake_.current()->deliver(t, "m");
  });
  ASSERT_TRUE(wait_loop([&] { return deliveries_.size() == 6; }));
  on_loop([&] {
    EXPECT_TRUE(broker_->ack(deliveries_[2].tag));  // not the oldest: sent at once, alone
    EXPECT_TRUE(broker_->ack(deliveries_[0].tag));  // the oldest: deferred
    // The oldest again: one ack up to 2 (not 3: 3 went already, and the
    // broker refuses a multiple ack naming a tag it no longer holds).
    EXPECT_TRUE(broker_->ack(deliveries_[1].tag));
    EXPECT_TRUE(broker_->nack(deliveries_[4].tag, true));
    EXPECT_EQ(broker_->unacked(), 2u);
  });
  ASSERT_TRUE(wait_until([&] { return logged("basic.ack 1 2 multiple"); }));
  on_loop([&] {
    EXPECT_TRUE(broker_->ack(deliveries_[3].tag));  // the oldest (5 is nacked): deferred
    EXPECT_TRUE(broker_->ack(deliveries_[5].tag));  // the last: flushed at once, up to 6
    EXPECT_EQ(broker_->unacked(), 0u);
  });
  ASSERT_TRUE(wait_until([&] { return logged("basic.ack 1 6 multiple"); }));
  auto log = session_log();
  std::vector<std::string> settles;
  for (const auto& line : log)
    if (line.rfind("basic.ack", 0) == 0 || line.rfind("basic.nack", 0) == 0)
      settles.push_back(line);
  // The fake broker checks every tag as RabbitMQ does (UNKNOWN-TAG otherwise).
  EXPECT_EQ(settles,
            (std::vector<std::string>{"basic.ack 1 3", "basic.nack 1 5 requeue",
                                      "basic.ack 1 2 multiple", "basic.ack 1 6 multiple"}));
}

TEST_F(BrokerTest, DeliveryCallbacksMayAddAndCancelConsumers) {
  start(settings(), false);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  std::vector<std::string> seen;
  Broker::ConsumerId self = 0;
  on_loop([&] {
    self = broker_->consume("q", [&, big = std::string(200, 'c')](const Delivery& d) {
      // Growing the consumer list moves its elements: this callback and its
      // captures must survive that.
      for (int i = 0; i < 16; ++i)
        broker_->consume(numbered("q", i), [](const Delivery&) {});
      EXPECT_TRUE(broker_->cancel(self));
      std::string got(d.body.view());
      got += big[0];
      seen.push_back(std::move(got));
      EXPECT_TRUE(broker_->ack(d.tag));
    });
  });
  ASSERT_TRUE(wait_until([&] { return logged("basic.consume 1 q unit-1"); }));
  on_loop([&] { fake_.current()->deliver(1, "x"); });
  ASSERT_TRUE(wait_until([&] { return logged("basic.cancel 1 unit-1"); }));
  on_loop([&] { EXPECT_EQ(seen, std::vector<std::string>{"xc"}); });
  ASSERT_TRUE(wait_until([&] { return logged("basic.consume 1 q15 unit-17"); }));
}

TEST_F(BrokerTest, ReconnectRedeclaresReconsumesAndDropsStaleTags) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] { fake_.current()->deliver(7, "before"); });
  ASSERT_TRUE(wait_loop([&] { return deliveries_.size() == 1; }));
  on_loop([&] { fake_.current()->abort(); });
  ASSERT_TRUE(wait_loop([&] { return readies_ == 2; }));
  EXPECT_EQ(on_loop([&] { return fake_.accepted; }), 2);
  auto log = session_log();
  EXPECT_EQ(
      std::vector<std::string>(log.begin() + 3, log.end()),
      (std::vector<std::string>{"channel.open 1", "basic.qos 1 16", "queue.declare 1 q",
                                "basic.consume 1 q unit-1", "channel.open 2", "confirm.select 2"}));
  on_loop([&] {
    EXPECT_EQ(disconnects_.size(), 1u);
    EXPECT_FALSE(broker_->ack(deliveries_[0].tag));  // stale: not sent
    EXPECT_EQ(broker_->stats().stale_tags, 1u);
    EXPECT_EQ(broker_->unacked(), 0u);
    fake_.current()->deliver(7, "after");  // the same broker tag, a new epoch
  });
  ASSERT_TRUE(wait_loop([&] { return deliveries_.size() == 2; }));
  on_loop([&] {
    EXPECT_NE(deliveries_[0].tag, deliveries_[1].tag);
    EXPECT_TRUE(broker_->ack(deliveries_[1].tag));
  });
  ASSERT_TRUE(wait_until([&] { return logged("basic.ack 1 7"); }));
  log = session_log();
  EXPECT_EQ(std::count(log.begin(), log.end(), "basic.ack 1 7"), 1);
}

TEST_F(BrokerTest, InFlightPublishesFailOnDisconnectAndHeldOnesGoAfterReconnect) {
  fake_.auto_confirm = false;
  start(settings(), false);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  Confirms confirms;
  on_loop(
      [&] { broker_->publish("", "q", Bytes::copy(std::string_view("A")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return fake_.current()->publish_seq == 1; }));
  on_loop([&] {
    fake_.auto_confirm = true;
    fake_.refuse_opens = 2;  // the reconnect needs three attempts
    fake_.current()->abort();
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 1; }));
  EXPECT_NE(confirms.seen[0].find("failed: connection lost: "), std::string::npos)
      << confirms.seen[0];
  on_loop([&] {
    if (broker_->state() != Broker::State::ready) {
      broker_->publish("", "q", Bytes::copy(std::string_view("B")), {}, confirms.fn());
      EXPECT_EQ(broker_->held(), 1u);
    } else {
      ADD_FAILURE() << "reconnected before the test could publish while disconnected";
    }
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 2; }));
  EXPECT_EQ(confirms.seen[1], "acked");
  EXPECT_EQ(session_log().back(), "basic.publish 2  q B");
  on_loop([&] {
    EXPECT_EQ(fake_.accepted, 4);
    EXPECT_GE(broker_->stats().connect_attempts, 4u);
    EXPECT_EQ(broker_->held(), 0u);
  });
}

TEST_F(BrokerTest, ConnectionCloseFromTheBrokerIsLoggedAndRecovered) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] {
    fake_.current()->send(
        0, amqp::ConnectionClose{320, "CONNECTION_FORCED - Closed via management plugin", 0, 0});
  });
  ASSERT_TRUE(wait_loop([&] { return readies_ == 2; }));
  on_loop([&] {
    ASSERT_EQ(codes_.size(), 1u);
    EXPECT_EQ(codes_[0], 320);
    EXPECT_NE(disconnects_[0].find("320 CONNECTION_FORCED - Closed via management plugin"),
              std::string::npos)
        << disconnects_[0];
  });
  auto first = session_log(1);
  EXPECT_EQ(first.back(), "connection.close-ok 0");
}

TEST_F(BrokerTest, PublishChannelClosedByBrokerIsReopened) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  uint64_t epoch = on_loop([&] { return broker_->epoch(); });
  Confirms confirms;
  on_loop([&] {
    broker_->publish("nope", "q", Bytes::copy(std::string_view("x")), {}, confirms.fn());
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 1; }));
  EXPECT_EQ(confirms.seen[0],
            "failed 404: channel 2 closed by broker: 404 NOT_FOUND - no "
            "exchange 'nope' in vhost '/' (basic.publish)");
  ASSERT_TRUE(wait_until([&] { return logged("confirm.select 2") && session_log().size() >= 13; }));
  on_loop(
      [&] { broker_->publish("", "q", Bytes::copy(std::string_view("y")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 2; }));
  EXPECT_EQ(confirms.seen[1], "acked");
  auto log = session_log();
  EXPECT_EQ(
      std::vector<std::string>(log.end() - 5, log.end()),
      (std::vector<std::string>{"basic.publish 2 nope q x", "channel.close-ok 2", "channel.open 2",
                                "confirm.select 2", "basic.publish 2  q y"}));
  on_loop([&] {
    EXPECT_EQ(broker_->epoch(), epoch);  // the consume channel was not touched
    EXPECT_EQ(broker_->stats().channel_closes, 1u);
  });
}

TEST_F(BrokerTest, FailedDeclareIsReportedAndTheConsumeChannelRecovers) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  uint64_t epoch = on_loop([&] { return broker_->epoch(); });
  std::optional<std::string> result;
  on_loop([&] {
    broker_->declare_queue(spec("bad", true),
                           [&](const amqp::AmqpError* e) { result = e ? e->describe() : "ok"; });
  });
  ASSERT_TRUE(wait_loop([&] { return result.has_value(); }));
  EXPECT_EQ(*result,
            "channel 1 closed by broker: 406 PRECONDITION_FAILED - inequivalent arg 'durable' "
            "(queue.declare)");
  // Re-opened with the remaining topology and the consumer.
  ASSERT_TRUE(wait_until([&] {
    auto log = session_log();
    return log.size() >= 15 && log.back() == "basic.consume 1 q unit-1";
  }));
  auto log = session_log();
  EXPECT_EQ(std::vector<std::string>(log.end() - 6, log.end()),
            (std::vector<std::string>{"queue.declare 1 bad durable", "channel.close-ok 1",
                                      "channel.open 1", "basic.qos 1 16", "queue.declare 1 q",
                                      "basic.consume 1 q unit-1"}));
  on_loop([&] { EXPECT_GT(broker_->epoch(), epoch); });
}

TEST_F(BrokerTest, FailedRedeclareOfAQueueDropsOnlyTheFailingEntry) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  std::optional<std::string> result;
  on_loop([&] {
    broker_->declare_queue(spec("q", true),
                           [&](const amqp::AmqpError* e) { result = e ? e->describe() : "ok"; });
  });
  ASSERT_TRUE(wait_loop([&] { return result.has_value(); }));
  EXPECT_NE(result->find("406 PRECONDITION_FAILED"), std::string::npos) << *result;
  // The first, good declaration of "q" stays in the topology: a reconnect
  // declares it again, and only it.
  on_loop([&] { fake_.current()->abort(); });
  ASSERT_TRUE(wait_loop([&] { return readies_ == 2; }));
  auto log = session_log();
  EXPECT_EQ(
      std::vector<std::string>(log.begin() + 3, log.end()),
      (std::vector<std::string>{"channel.open 1", "basic.qos 1 16", "queue.declare 1 q",
                                "basic.consume 1 q unit-1", "channel.open 2", "confirm.select 2"}));
}

TEST_F(BrokerTest, ConnectFailuresBackOffAndClosingStopsThem) {
  // A port nobody listens on: bind one and close it.
  auto s = settings();
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
  s.port = ntohs(a.sin_port);
  ::close(probe);
  start(s);
  ASSERT_TRUE(wait_loop([&] { return broker_->stats().connect_attempts >= 3; }));
  on_loop([&] {
    ASSERT_FALSE(disconnects_.empty());
    EXPECT_NE(disconnects_[0].find("refused"), std::string::npos) << disconnects_[0];
    EXPECT_EQ(readies_, 0);
  });
  bool closed_cb = false;
  on_loop([&] { broker_->close([&] { closed_cb = true; }); });
  ASSERT_TRUE(wait_loop([&] { return closed_cb && closed_; }));
  EXPECT_EQ(on_loop([&] { return broker_->state(); }), Broker::State::closed);
  Confirms confirms;
  on_loop(
      [&] { broker_->publish("", "q", Bytes::copy(std::string_view("z")), {}, confirms.fn()); });
  EXPECT_EQ(confirms.seen, std::vector<std::string>{"failed: the broker connection is closing"});
}

TEST_F(BrokerTest, MissingHeartbeatsAreDetectedAndOursAreSent) {
  fake_.heartbeat = 1;  // the fake never sends any
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  ASSERT_TRUE(wait_loop([&] { return !disconnects_.empty(); }, 10s));
  on_loop([&] {
    EXPECT_NE(disconnects_[0].find("no data from the broker"), std::string::npos)
        << disconnects_[0];
  });
  // Within the two intervals it waited, the client sent its own heartbeats
  // (one per half interval of silence on its side).
  EXPECT_GE(on_loop([&] { return fake_.records[0]->heartbeats; }), 2);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 2; }));
}

TEST_F(BrokerTest, BlockedHoldsPublishesUntilUnblocked) {
  start(settings(), false);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] { fake_.current()->send(0, amqp::ConnectionBlocked{"low on memory"}); });
  ASSERT_TRUE(wait_loop([&] { return broker_->blocked(); }));
  Confirms confirms;
  on_loop([&] {
    broker_->publish("", "q", Bytes::copy(std::string_view("1")), {}, confirms.fn());
    broker_->publish("", "q", Bytes::copy(std::string_view("2")), {}, confirms.fn());
    EXPECT_EQ(broker_->held(), 2u);
    fake_.current()->send(0, amqp::ConnectionUnblocked{});
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 2; }));
  EXPECT_EQ(confirms.seen, (std::vector<std::string>{"acked", "acked"}));
  EXPECT_EQ(on_loop([&] { return blocked_events_; }), (std::vector<bool>{true, false}));
}

TEST_F(BrokerTest, HeldPublishesAreBounded) {
  auto s = settings();
  s.max_held_publishes = 2;
  start(s, false);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] { fake_.current()->send(0, amqp::ConnectionBlocked{"disk"}); });
  ASSERT_TRUE(wait_loop([&] { return broker_->blocked(); }));
  Confirms confirms;
  on_loop([&] {
    for (int i = 0; i < 3; ++i)
      broker_->publish("", "q", Bytes::copy(std::string_view("m")), {}, confirms.fn());
  });
  EXPECT_EQ(confirms.seen, std::vector<std::string>{
                               "failed: publish queue full while the broker blocks publishing"});
}

TEST_F(BrokerTest, CloseCancelsConsumersWaitsForAcksThenClosesTheConnection) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] { fake_.current()->deliver(1, "work"); });
  ASSERT_TRUE(wait_loop([&] { return deliveries_.size() == 1; }));
  bool done = false;
  on_loop([&] { broker_->close([&] { done = true; }); });
  ASSERT_TRUE(wait_until([&] { return logged("basic.cancel 1 unit-1"); }));
  EXPECT_FALSE(logged("connection.close 0"));
  EXPECT_EQ(on_loop([&] { return broker_->state(); }), Broker::State::closing);
  on_loop([&] { EXPECT_TRUE(broker_->ack(deliveries_[0].tag)); });
  ASSERT_TRUE(wait_loop([&] { return done; }));
  auto log = session_log();
  EXPECT_EQ(
      std::vector<std::string>(log.end() - 3, log.end()),
      (std::vector<std::string>{"basic.cancel 1 unit-1", "basic.ack 1 1", "connection.close 0"}));
  EXPECT_EQ(on_loop([&] { return fake_.accepted; }), 1);
  on_loop([&] { EXPECT_EQ(broker_->state(), Broker::State::closed); });
}

TEST_F(BrokerTest, ReactorDrainClosesTheBrokerCleanly) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  reactor_->stop();
  thread_.join();  // run() returns once the Broker's connection has closed
  EXPECT_TRUE(closed_);
  EXPECT_EQ(broker_->state(), Broker::State::closed);
  auto& log = fake_.records.back()->log;
  EXPECT_EQ(std::vector<std::string>(log.end() - 2, log.end()),
            (std::vector<std::string>{"basic.cancel 1 unit-1", "connection.close 0"}));
}

TEST_F(BrokerTest, CloseGivesUpWaitingAfterTheTimeout) {
  auto s = settings();
  s.close_timeout = 100ms;
  start(s);
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  on_loop([&] { fake_.current()->deliver(1, "never acked"); });
  ASSERT_TRUE(wait_loop([&] { return deliveries_.size() == 1; }));
  bool done = false;
  on_loop([&] { broker_->close([&] { done = true; }); });
  ASSERT_TRUE(wait_loop([&] { return done; }));
  on_loop([&] {
    EXPECT_FALSE(broker_->ack(deliveries_[0].tag));  // the channel is gone: stale
  });
}

// The same fake behind TLS (certificates made at test time).
class BrokerTlsTest : public BrokerTest {
 protected:
  void configure() override {
    ember::test::pki::Authority ca(dir_, "ca");
    ca.issue(dir_, "leaf", "localhost", "DNS:localhost");
    tls::ServerConfig sc;
    sc.certificates = {{dir_.file("leaf.pem"), dir_.file("leaf.key"), {}}};
    auto server = tls::ServerContext::create(sc);
    ASSERT_TRUE(server);
    server_tls_ = *server;
    tls::ClientConfig cc;
    cc.ca_file = ca.cert_file;
    auto client = tls::ClientContext::create(cc);
    ASSERT_TRUE(client);
    client_tls_ = *client;
  }
  ember::test::pki::TempDir dir_;
};

TEST_F(BrokerTlsTest, ConsumesPublishesAndReconnectsOverTls) {
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return readies_ == 1; }));
  Confirms confirms;
  on_loop([&] {
    broker_->publish("", "q", Bytes::copy(std::string_view("sealed")), {}, confirms.fn());
    fake_.current()->deliver(1, "opened");
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 1 && deliveries_.size() == 1; }));
  EXPECT_EQ(confirms.seen[0], "acked");
  on_loop([&] {
    EXPECT_EQ(deliveries_[0].body, "opened");
    EXPECT_TRUE(broker_->ack(deliveries_[0].tag));
  });
  ASSERT_TRUE(wait_until([&] { return logged("basic.ack 1 1"); }));
  on_loop([&] { fake_.current()->abort(); });
  ASSERT_TRUE(wait_loop([&] { return readies_ == 2; }));
}

TEST_F(BrokerTlsTest, AnUntrustedCertificateIsAConnectFailure) {
  tls::ClientConfig cc;  // the system's CAs: the test CA is not among them
  auto client = tls::ClientContext::create(cc);
  ASSERT_TRUE(client);
  client_tls_ = *client;
  start(settings());
  ASSERT_TRUE(wait_loop([&] { return broker_->stats().connect_attempts >= 2; }));
  on_loop([&] {
    ASSERT_FALSE(disconnects_.empty());
    EXPECT_NE(disconnects_[0].find("certificate"), std::string::npos) << disconnects_[0];
    EXPECT_EQ(readies_, 0);
  });
}

}  // namespace
}  // namespace ember::queue
