// ember::queue::Broker against the real RabbitMQ: scripts/services.sh start
// rabbitmq, then `source` its env file. Skips when RABBITMQ_HOST is not set
// (fails instead when EMBER_REQUIRE_SERVICES is set, as scripts/test.sh does).
// Forced closes and restarts go through the broker's own rabbitmqctl (the
// one in /usr/lib/rabbitmq/bin: /usr/sbin's wrapper switches user), pointed
// at the services' node by RABBITMQ_HOME_DIR / RABBITMQ_EPMD_PORT /
// RABBITMQ_NODENAME; the heartbeat test freezes the broker's process group
// (pid file in EMBER_SERVICES_DIR) with SIGSTOP. Each test uses queues of its own; the CTest
// entries run serially because the restart test stops the whole node. Waits are failure guards
// only.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ember/reactor.hpp"
#include "handlers/queue/broker.hpp"
#include "protocols/amqp/table.hpp"

namespace ember::queue {
namespace {

using namespace std::chrono_literals;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Runs rabbitmqctl against the services' node; returns its stdout, or
// nullopt when it failed.
std::optional<std::string> rabbitmqctl(const std::string& args) {
  std::string cmd = "HOME='" + env("RABBITMQ_HOME_DIR") + "' ERL_EPMD_PORT='" +
                    env("RABBITMQ_EPMD_PORT") + "' /usr/lib/rabbitmq/bin/rabbitmqctl -q -n '" +
                    env("RABBITMQ_NODENAME") + "' " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
    out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) {
    ADD_FAILURE() << "rabbitmqctl " << args << " failed: " << out;
    return std::nullopt;
  }
  return out;
}

// Closes the connection whose client property connection_name is `name`
// (RabbitMQ sends connection.close 320 CONNECTION_FORCED).
bool force_close(const std::string& name) {
  auto list = rabbitmqctl("list_connections pid client_properties --no-table-headers");
  if (!list) return false;
  // One line per connection: "<pid>\t[{...},{"connection_name","name"},...]".
  size_t at = list->find("{\"connection_name\",\"" + name + "\"}");
  if (at == std::string::npos) {
    ADD_FAILURE() << "no connection named " << name << " in:\n" << *list;
    return false;
  }
  size_t line = list->rfind('\n', at);
  line = line == std::string::npos ? 0 : line + 1;
  std::string pid = list->substr(line, list->find('\t', line) - line);
  return rabbitmqctl("close_connection '" + pid + "' 'ember broker test'").has_value();
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::seconds guard = 60s) {
  auto end = std::chrono::steady_clock::now() + guard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// numbered("m", i) without GCC 12's false -Wstringop-overflow.
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

struct Seen {
  DeliveryTag tag;
  std::string body;
  bool redelivered;
  std::string message_id;
  std::string content_type;
};

class BrokerServices : public ::testing::Test {
 protected:
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
  bool wait_loop(F pred, std::chrono::seconds guard = 60s) {
    return wait_until([&] { return on_loop(pred); }, guard);
  }

  void SetUp() override {
    if (env("RABBITMQ_HOST").empty()) {
      // The suite sets EMBER_REQUIRE_SERVICES: there a missing service fails.
      if (std::getenv("EMBER_REQUIRE_SERVICES"))
        FAIL() << "EMBER_REQUIRE_SERVICES is set but RABBITMQ_HOST is not: source the env file "
                  "of scripts/services.sh";
      GTEST_SKIP() << "no RabbitMQ: run scripts/services.sh start rabbitmq and source its env file";
    }
    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    o.drain_timeout = 10s;
    reactor_ = std::make_unique<Reactor>(o);
    thread_ = std::thread([this] { reactor_->run(); });
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = "ember-broker-" + std::to_string(::getpid()) + "-" + info->name();
  }

  void TearDown() override {
    if (!reactor_) return;
    on_loop([&] {
      for (auto& b : brokers_)
        b.reset();
    });
    reactor_->stop();
    thread_.join();
  }

  BrokerSettings settings(const std::string& name) {
    BrokerSettings s;
    s.host = env("RABBITMQ_HOST");
    s.port = static_cast<uint16_t>(std::stoi(env("RABBITMQ_PORT")));
    s.vhost = env("RABBITMQ_VHOST").empty() ? "/" : env("RABBITMQ_VHOST");
    s.user = env("RABBITMQ_USER");
    s.password = env("RABBITMQ_PASSWORD");
    s.connection_name = prefix_ + "-" + name;
    s.reconnect_initial = 50ms;
    s.reconnect_max = 500ms;
    return s;
  }

  // A Broker on the loop with `queue` declared and consumed, recording
  // deliveries into `seen` (and acking them when `auto_ack`).
  struct Client {
    Broker* broker = nullptr;
    int readies = 0;
    std::vector<std::string> disconnects;
    std::vector<uint16_t> codes;
    std::vector<Seen> seen;
    bool auto_ack = false;
  };
  Client& make(BrokerSettings s, const std::string& queue, bool consume = true) {
    clients_.push_back(std::make_unique<Client>());
    Client& c = *clients_.back();
    on_loop([&] {
      BrokerEvents ev;
      ev.on_ready = [&c] { ++c.readies; };
      ev.on_disconnected = [&c](const amqp::AmqpError& e) {
        c.disconnects.push_back(e.describe());
        c.codes.push_back(e.code);
      };
      brokers_.push_back(std::make_unique<Broker>(reactor_->loop(0), std::move(s), std::move(ev)));
      c.broker = brokers_.back().get();
      c.broker->declare_queue(spec(queue));
      if (consume) {
        c.broker->consume(queue, [&c](const Delivery& d) {
          c.seen.push_back({d.tag, std::string(d.body.view()), d.redelivered,
                            std::string(d.properties.message_id),
                            std::string(d.properties.content_type)});
          if (c.auto_ack) {
            EXPECT_TRUE(c.broker->ack(d.tag));
          }
        });
      }
      c.broker->start();
    });
    return c;
  }

  std::unique_ptr<Reactor> reactor_;
  std::thread thread_;
  std::string prefix_;
  std::vector<std::unique_ptr<Broker>> brokers_;
  std::vector<std::unique_ptr<Client>> clients_;
};

struct Confirms {
  std::vector<std::string> seen;
  size_t acked = 0;
  ConfirmFn fn() {
    return [this](const Confirm& c) {
      if (c.ok()) ++acked;
      std::string s(to_string(c.outcome));
      if (c.code) {
        s += ' ';
        s += std::to_string(c.code);
      }
      if (!c.text.empty()) {
        s += ": ";
        s += c.text;
      }
      seen.push_back(std::move(s));
    };
  }
};

TEST_F(BrokerServices, RoundTripWithConfirmsAndProperties) {
  std::string q = prefix_;
  Client& c = make(settings("rt"), q);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  on_loop([&] {
    for (int i = 0; i < 10; ++i) {
      amqp::BasicProperties p;
      std::string id = numbered("m", i);
      p.set_content_type("text/plain").set_message_id(id).set_delivery_mode(2);
      c.broker->publish("", q, Bytes::copy(numbered("body ", i)), p, confirms.fn());
    }
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 10 && c.seen.size() == 10; }));
  on_loop([&] {
    EXPECT_EQ(confirms.acked, 10u);
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(c.seen[i].body, numbered("body ", i));
      EXPECT_EQ(c.seen[i].message_id, numbered("m", i));
      EXPECT_EQ(c.seen[i].content_type, "text/plain");
      EXPECT_FALSE(c.seen[i].redelivered);
      EXPECT_TRUE(c.broker->ack(c.seen[i].tag));
    }
    EXPECT_EQ(c.broker->unacked(), 0u);
  });
}

class BrokerVolume : public BrokerServices, public ::testing::WithParamInterface<uint16_t> {};

TEST_P(BrokerVolume, TenThousandMessagesAckedInOrderWithoutLoss) {
  const int n = 10'000;
  std::string q = prefix_;
  auto s = settings("volume");
  s.prefetch = GetParam();
  Client& c = make(s, q);
  c.auto_ack = true;
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  auto t0 = std::chrono::steady_clock::now();
  // Batches of 500 per loop turn: each batch leaves in one write.
  for (int i = 0; i < n; i += 500)
    on_loop([&] {
      for (int j = i; j < i + 500; ++j)
        c.broker->publish("", q, Bytes::copy(std::to_string(j)), {}, confirms.fn());
    });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() >= static_cast<size_t>(n); }, 120s))
      << on_loop([&] { return c.seen.size(); });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == static_cast<size_t>(n); }));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  on_loop([&] {
    EXPECT_EQ(confirms.acked, static_cast<size_t>(n));
    ASSERT_EQ(c.seen.size(), static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(c.seen[i].body, std::to_string(i)) << "at " << i;
      ASSERT_FALSE(c.seen[i].redelivered);
    }
    EXPECT_EQ(c.broker->unacked(), 0u);
    EXPECT_EQ(c.broker->stats().stale_tags, 0u);
  });
  std::printf("prefetch %u: %d messages published+consumed in %.2f s (%.0f msgs/s)\n",
              unsigned{GetParam()}, n, secs, n / secs);
  // Nothing left behind.
  auto list = rabbitmqctl("list_queues name messages --no-table-headers");
  ASSERT_TRUE(list);
  EXPECT_NE(list->find(q + "\t0"), std::string::npos) << *list;
}

INSTANTIATE_TEST_SUITE_P(Prefetch, BrokerVolume, ::testing::Values(uint16_t{1}, uint16_t{256}));

TEST_F(BrokerServices, WithoutConfirmsPublishesAreSettledAsWrittenAndAllArrive) {
  const int n = 2'000;
  std::string q = prefix_;
  auto s = settings("noconfirm");
  s.publisher_confirms = false;
  Client& c = make(s, q);
  c.auto_ack = true;
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  for (int i = 0; i < n; i += 500)
    on_loop([&] {
      for (int j = i; j < i + 500; ++j)
        c.broker->publish("", q, Bytes::copy(std::to_string(j)), {}, confirms.fn());
    });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() >= static_cast<size_t>(n); }, 120s))
      << on_loop([&] { return c.seen.size(); });
  on_loop([&] {
    EXPECT_EQ(confirms.acked, static_cast<size_t>(n));  // each once written
    for (int i = 0; i < n; ++i)
      ASSERT_EQ(c.seen[i].body, std::to_string(i)) << "at " << i;
    EXPECT_EQ(c.broker->in_flight(), 0u);
    EXPECT_EQ(c.broker->stats().confirmed, 0u);  // the broker confirmed nothing
  });
}

TEST_F(BrokerServices, LargeBodiesAreSplitIntoFramesAndGatheredBack) {
  std::string q = prefix_;
  Client& c = make(settings("large"), q);
  c.auto_ack = true;
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  // frame_max is 128 KiB: 1 MiB + 3 bytes goes out as 9 body frames.
  std::string big(1 << 20, 'x');
  big += "end";
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>('a' + (i / 4096) % 26);
  Confirms confirms;
  on_loop([&] { c.broker->publish("", q, Bytes::copy(big), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 1 && confirms.seen.size() == 1; }));
  EXPECT_EQ(confirms.seen[0], "acked");
  on_loop([&] { EXPECT_TRUE(c.seen[0].body == big); });
}

// Sets RabbitMQ's memory watermark to 0 (a memory alarm: publishers are
// blocked) and restores the default when it goes out of scope.
struct MemoryAlarm {
  bool on = rabbitmqctl("set_vm_memory_high_watermark 0").has_value();
  ~MemoryAlarm() { off(); }
  void off() {
    if (on) on = !rabbitmqctl("set_vm_memory_high_watermark 0.4").has_value();
  }
};

TEST_F(BrokerServices, ConnectionBlockedHoldsPublishesUntilUnblocked) {
  std::string q = prefix_;
  Client& c = make(settings("blocked"), q);
  c.auto_ack = true;
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  MemoryAlarm alarm;
  ASSERT_TRUE(alarm.on);
  // RabbitMQ blocks a connection when it next publishes during the alarm.
  on_loop([&] { c.broker->publish("", q, Bytes::copy(std::string("A")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return c.broker->blocked(); }));
  on_loop([&] {
    c.broker->publish("", q, Bytes::copy(std::string("B")), {}, confirms.fn());
    EXPECT_EQ(c.broker->held(), 1u);
    EXPECT_TRUE(confirms.seen.empty());
  });
  alarm.off();
  ASSERT_FALSE(alarm.on);
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 2 && c.seen.size() == 2; }));
  on_loop([&] {
    EXPECT_FALSE(c.broker->blocked());
    EXPECT_EQ(confirms.acked, 2u);
    EXPECT_EQ(c.seen[0].body, "A");
    EXPECT_EQ(c.seen[1].body, "B");
  });
}

TEST_F(BrokerServices, NackRequeueIsRedelivered) {
  std::string q = prefix_;
  Client& c = make(settings("nack"), q);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  on_loop([&] { c.broker->publish("", q, Bytes::copy(std::string("again")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 1; }));
  on_loop([&] {
    EXPECT_FALSE(c.seen[0].redelivered);
    EXPECT_TRUE(c.broker->nack(c.seen[0].tag, true));
  });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 2; }));
  on_loop([&] {
    EXPECT_EQ(c.seen[1].body, "again");
    EXPECT_TRUE(c.seen[1].redelivered);
    EXPECT_TRUE(c.broker->reject(c.seen[1].tag, false));  // dropped: no dead-letter exchange
  });
  auto list = rabbitmqctl("list_queues name messages --no-table-headers");
  ASSERT_TRUE(list);
  EXPECT_NE(list->find(q + "\t0"), std::string::npos) << *list;
}

TEST_F(BrokerServices, PublishToMissingExchangeClosesTheChannelAndRecovers) {
  std::string q = prefix_;
  Client& c = make(settings("noexchange"), q);
  c.auto_ack = true;
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  std::string missing = prefix_ + "-missing";
  on_loop(
      [&] { c.broker->publish(missing, q, Bytes::copy(std::string("lost")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 1; }));
  EXPECT_EQ(confirms.seen[0],
            "failed 404: channel 2 closed by broker: "
            "404 NOT_FOUND - no exchange '" +
                missing + "' in vhost '/' (basic.publish)");
  on_loop([&] { c.broker->publish("", q, Bytes::copy(std::string("ok")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 2 && c.seen.size() == 1; }));
  EXPECT_EQ(confirms.seen[1], "acked");
  on_loop([&] {
    EXPECT_EQ(c.seen[0].body, "ok");
    EXPECT_EQ(c.broker->stats().channel_closes, 1u);
    EXPECT_EQ(c.readies, 1);
  });
}

TEST_F(BrokerServices, MandatoryPublishWithoutARouteIsReturned) {
  std::string q = prefix_;
  Client& c = make(settings("mandatory"), q, false);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  on_loop([&] {
    c.broker->publish("", prefix_ + "-nobody", Bytes::copy(std::string("x")), {}, confirms.fn(),
                      true);
    c.broker->publish("", q, Bytes::copy(std::string("y")), {}, confirms.fn(), true);
  });
  ASSERT_TRUE(wait_loop([&] { return confirms.seen.size() == 2; }));
  EXPECT_EQ(confirms.seen, (std::vector<std::string>{"returned 312: NO_ROUTE", "acked"}));
}

TEST_F(BrokerServices, DoubleAckClosesTheConsumeChannelWhichRecovers) {
  std::string q = prefix_;
  Client& c = make(settings("doubleack"), q);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  on_loop([&] { c.broker->publish("", q, Bytes::copy(std::string("1")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 1; }));
  uint64_t epoch = on_loop([&] {
    EXPECT_TRUE(c.broker->ack(c.seen[0].tag));
    EXPECT_TRUE(c.broker->ack(c.seen[0].tag));  // same epoch: sent; the broker objects
    return c.broker->epoch();
  });
  ASSERT_TRUE(wait_loop([&] { return c.broker->stats().channel_closes == 1; }));
  on_loop([&] {
    EXPECT_GT(c.broker->epoch(), epoch);
    c.broker->publish("", q, Bytes::copy(std::string("2")), {}, confirms.fn());
  });
  // The consumer was registered again on the new channel.
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 2; }));
  on_loop([&] {
    EXPECT_EQ(c.seen[1].body, "2");
    EXPECT_TRUE(c.broker->ack(c.seen[1].tag));
  });
}

// Acks in any order, some coalesced into one `multiple` ack: RabbitMQ must
// accept every one (it closes the channel on a tag it no longer holds).
TEST_F(BrokerServices, AcksInAnyOrderCoalesceWithoutUnknownTags) {
  std::string q = prefix_;
  Client& c = make(settings("ackorder"), q);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  on_loop([&] {
    for (int i = 1; i <= 6; ++i)
      c.broker->publish("", q, Bytes::copy(std::to_string(i)), {}, confirms.fn());
  });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 6; }));
  on_loop([&] {
    EXPECT_TRUE(c.broker->ack(c.seen[2].tag));
    EXPECT_TRUE(c.broker->ack(c.seen[0].tag));
    EXPECT_TRUE(c.broker->ack(c.seen[1].tag));
    EXPECT_TRUE(c.broker->reject(c.seen[4].tag, false));
  });
  on_loop([&] {
    EXPECT_TRUE(c.broker->ack(c.seen[3].tag));
    EXPECT_TRUE(c.broker->ack(c.seen[5].tag));
    EXPECT_EQ(c.broker->unacked(), 0u);
  });
  // Nothing left unacknowledged at the broker, and the channel never closed.
  std::optional<std::string> list;
  for (int i = 0; i < 100; ++i) {
    list = rabbitmqctl("list_queues name messages messages_unacknowledged --no-table-headers");
    ASSERT_TRUE(list);
    if (list->find(q + "\t0\t0") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(list->find(q + "\t0\t0"), std::string::npos) << *list;
  on_loop([&] { EXPECT_EQ(c.broker->stats().channel_closes, 0u); });
}

TEST_F(BrokerServices, InequivalentDeclareIsReportedAndOthersKeepWorking) {
  std::string q = prefix_;
  Client& c = make(settings("inequivalent"), q);
  c.auto_ack = true;
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  std::optional<std::string> result;
  on_loop([&] {
    c.broker->declare_queue(spec(q, true),
                            [&](const amqp::AmqpError* e) { result = e ? e->describe() : "ok"; });
  });
  ASSERT_TRUE(wait_loop([&] { return result.has_value(); }));
  EXPECT_NE(result->find("406 PRECONDITION_FAILED - inequivalent arg 'durable'"), std::string::npos)
      << *result;
  Confirms confirms;
  on_loop([&] { c.broker->publish("", q, Bytes::copy(std::string("x")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 1; }));
}

TEST_F(BrokerServices, ForcedCloseReconnectsRedeclaresReconsumesAndDropsStaleTags) {
  std::string q = prefix_;
  auto s = settings("forced");
  Client& c = make(s, q);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  on_loop([&] { c.broker->publish("", q, Bytes::copy(std::string("held")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 1; }));
  ASSERT_TRUE(force_close(s.connection_name));
  ASSERT_TRUE(wait_loop([&] { return c.readies == 2; }));
  on_loop([&] {
    ASSERT_EQ(c.codes.size(), 1u);
    EXPECT_EQ(c.codes[0], 320);
    EXPECT_NE(c.disconnects[0].find("320 CONNECTION_FORCED"), std::string::npos)
        << c.disconnects[0];
    EXPECT_FALSE(c.broker->ack(c.seen[0].tag));  // stale: dropped, logged
    EXPECT_EQ(c.broker->stats().stale_tags, 1u);
  });
  // The unacked message came back, redelivered, to the new consumer.
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 2; }));
  on_loop([&] {
    EXPECT_EQ(c.seen[1].body, "held");
    EXPECT_TRUE(c.seen[1].redelivered);
    EXPECT_TRUE(c.broker->ack(c.seen[1].tag));
    c.broker->publish("", q, Bytes::copy(std::string("after")), {}, confirms.fn());
  });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 3; }));
  on_loop([&] {
    EXPECT_EQ(c.seen[2].body, "after");
    EXPECT_TRUE(c.broker->ack(c.seen[2].tag));
    EXPECT_EQ(confirms.acked, 2u);
  });
}

TEST_F(BrokerServices, BrokerRestartReconnectsAndRecreatesTheTopology) {
  std::string q = prefix_;
  Client& c = make(settings("restart"), q);
  c.auto_ack = true;
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  ASSERT_TRUE(rabbitmqctl("stop_app"));
  ASSERT_TRUE(wait_loop([&] { return !c.disconnects.empty(); }));
  ASSERT_TRUE(rabbitmqctl("start_app"));
  // The queue was transient: gone with the restart, declared again.
  ASSERT_TRUE(wait_loop([&] { return c.readies == 2; }, 120s));
  Confirms confirms;
  on_loop([&] {
    EXPECT_GE(c.broker->stats().connect_attempts, 2u);
    c.broker->publish("", q, Bytes::copy(std::string("back")), {}, confirms.fn());
  });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 1; }));
  EXPECT_EQ(confirms.seen, std::vector<std::string>{"acked"});
}

// Stops the broker's whole process group (SIGSTOP: it sends nothing, not
// even heartbeats) and lets it go on (SIGCONT) when asked or destroyed.
struct FrozenBroker {
  pid_t group = 0;
  FrozenBroker() {
    std::ifstream f(env("EMBER_SERVICES_DIR") + "/pids/rabbitmq.pid");
    if (f >> group && group > 0 && ::kill(-group, SIGSTOP) != 0) group = 0;
  }
  ~FrozenBroker() { thaw(); }
  void thaw() {
    if (group > 0) ::kill(-group, SIGCONT);
    group = 0;
  }
};

TEST_F(BrokerServices, MissedHeartbeatsOfAFrozenBrokerAreDetected) {
  std::string q = prefix_;
  auto s = settings("heartbeat");
  s.heartbeat = 1;  // RabbitMQ takes the smaller value: dead after 2 s of silence
  Client& c = make(s, q);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  {
    FrozenBroker frozen;
    ASSERT_GT(frozen.group, 0) << "cannot read or signal the rabbitmq pid file";
    ASSERT_TRUE(wait_loop([&] { return !c.disconnects.empty(); }, 30s));
  }
  on_loop([&] {
    EXPECT_NE(c.disconnects[0].find("no data from the broker"), std::string::npos)
        << c.disconnects[0];
  });
  // Thawed: the Broker reconnects (the broker may first have to notice the
  // old connection is gone).
  ASSERT_TRUE(wait_loop([&] { return c.readies == 2; }, 120s));
}

TEST_F(BrokerServices, CloseWaitsForAcksThenClosesCleanly) {
  std::string q = prefix_;
  auto s = settings("close");
  Client& c = make(s, q);
  ASSERT_TRUE(wait_loop([&] { return c.readies == 1; }));
  Confirms confirms;
  on_loop([&] { c.broker->publish("", q, Bytes::copy(std::string("w")), {}, confirms.fn()); });
  ASSERT_TRUE(wait_loop([&] { return c.seen.size() == 1; }));
  bool closed = false;
  on_loop([&] { c.broker->close([&] { closed = true; }); });
  EXPECT_EQ(on_loop([&] { return c.broker->state(); }), Broker::State::closing);
  on_loop([&] { EXPECT_TRUE(c.broker->ack(c.seen[0].tag)); });
  ASSERT_TRUE(wait_loop([&] { return closed; }));
  on_loop([&] { EXPECT_TRUE(c.disconnects.empty()); });
  // Acked before the close: nothing returned to the queue.
  auto list = rabbitmqctl("list_queues name messages --no-table-headers");
  ASSERT_TRUE(list);
  EXPECT_NE(list->find(q + "\t0"), std::string::npos) << *list;
}

}  // namespace
}  // namespace ember::queue
