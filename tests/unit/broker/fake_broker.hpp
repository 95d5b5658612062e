// A scripted fake AMQP 0-9-1 broker for the Broker tests: a loopback
// listener's sessions speak the server side through protocols/amqp's
// FrameReader and encoders, answer the handshake, channel, qos, declare,
// consume, cancel and confirm methods, and record what the client sent.
// Scripted cases: queue "bad" (or a durable "q") fails its declare with 406,
// a publish to exchange "nope" closes the channel with 404, a mandatory
// publish to "unroutable" is returned. Loop thread only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ember/reactor.hpp"
#include "protocols/amqp/frames.hpp"
#include "tests/unit/amqp/amqp_test_util.hpp"

namespace ember::queue::test {

using amqp::test::content_frames;
using amqp::test::method_frame;

struct FakeBroker;

class FakeSession final : public ConnectionHandler, public amqp::FrameHandler {
 public:
  explicit FakeSession(FakeBroker& fb);
  ~FakeSession() override;

  void on_open(Connection& c) override;
  void on_data(Connection&, const Bytes& data) override;
  void on_writable(Connection&, IoChain& out) override {
    out.append_copy(out_);
    out_.clear();
  }
  void on_close(Connection&, int) override { conn_ = nullptr; }
  // A drain waits for the client to close (the Broker under test does).
  void on_drain(Connection&) override {}

  void on_method(uint16_t ch, const amqp::Method& m) override;
  void on_content(const amqp::Content& c) override;
  void on_heartbeat() override { ++heartbeats; }

  void send(const std::string& bytes) {
    out_ += bytes;
    if (conn_) conn_->want_write();
  }
  void send(uint16_t ch, const amqp::Method& m) { send(method_frame(ch, m)); }
  void deliver(uint64_t tag, std::string_view body, bool redelivered = false) {
    outstanding_.insert(tag);
    send(content_frames(1, amqp::BasicDeliver{consumer_tag, tag, redelivered, "", queue}, body));
  }
  void abort() {
    if (conn_) conn_->abort();
  }

  // What the client sent, one line per method; kept by FakeBroker after the
  // session ends.
  std::vector<std::string>& log;
  int& heartbeats;
  std::string connection_name;
  std::string consumer_tag, queue;  // of the last basic.consume
  uint64_t publish_seq = 0;
  bool closed() const { return conn_ == nullptr; }

 private:
  FakeBroker& fb_;
  size_t record_;
  Connection* conn_ = nullptr;
  amqp::FrameReader reader_;
  size_t header_seen_ = 0;
  std::string out_;
  // Delivered and not yet settled. Like RabbitMQ, a settle must name one of
  // them (also with `multiple`), else "unknown delivery tag".
  std::set<uint64_t> outstanding_;

  bool settle_tag(uint64_t tag, bool multiple) {
    if (!outstanding_.count(tag)) return false;
    if (multiple)
      outstanding_.erase(outstanding_.begin(), outstanding_.upper_bound(tag));
    else
      outstanding_.erase(tag);
    return true;
  }
};

struct FakeBroker {
  struct Record {
    std::vector<std::string> log;
    int heartbeats = 0;
    int reads = 0;  // on_data calls
  };
  uint16_t heartbeat = 0;                        // tune value
  int refuse_opens = 0;                          // abort this many connections at once
  bool auto_confirm = true;                      // basic.ack every publish at once
  std::vector<std::unique_ptr<Record>> records;  // one per session, kept
  std::vector<FakeSession*> live;
  int accepted = 0;

  FakeSession* current() { return live.empty() ? nullptr : live.back(); }
};

inline FakeBroker::Record& new_record(FakeBroker& fb) {
  fb.records.push_back(std::make_unique<FakeBroker::Record>());
  return *fb.records.back();
}

inline FakeSession::FakeSession(FakeBroker& fb)
    : log(new_record(fb).log),
      heartbeats(fb.records.back()->heartbeats),
      fb_(fb),
      record_(fb.records.size() - 1) {}

inline FakeSession::~FakeSession() {
  std::erase(fb_.live, this);
}

inline void FakeSession::on_open(Connection& c) {
  conn_ = &c;
  ++fb_.accepted;
  if (fb_.refuse_opens > 0) {
    --fb_.refuse_opens;
    c.abort();
    return;
  }
  fb_.live.push_back(this);
}

inline void FakeSession::on_data(Connection&, const Bytes& data) {
  ++fb_.records[record_]->reads;
  Bytes rest = data;
  if (header_seen_ < 8) {
    size_t n = std::min(rest.size(), 8 - header_seen_);
    header_seen_ += n;
    rest = rest.slice(n, rest.size() - n);
    if (header_seen_ == 8) {
      amqp::TableWriter props;
      props.add("product", amqp::FieldValue::string("fake"));
      send(0, amqp::ConnectionStart{0, 9, props.view(), "PLAIN AMQPLAIN", "en_US"});
    }
  }
  if (!rest.empty()) {
    auto st = reader_.feed(rest, *this);
    EXPECT_TRUE(st) << st.error().describe();
  }
}

inline void FakeSession::on_method(uint16_t ch, const amqp::Method& m) {
  std::string line = std::string(amqp::name_of(m)) + " " + std::to_string(ch);
  if (auto* s = std::get_if<amqp::ConnectionStartOk>(&m)) {
    if (auto v = s->client_properties.find("connection_name")) connection_name = v->as_string();
    send(0, amqp::ConnectionTune{2047, 131072, fb_.heartbeat});
  } else if (std::holds_alternative<amqp::ConnectionOpen>(m)) {
    send(0, amqp::ConnectionOpenOk{});
  } else if (std::holds_alternative<amqp::ConnectionClose>(m)) {
    send(0, amqp::ConnectionCloseOk{});
    if (conn_) conn_->close();
  } else if (std::holds_alternative<amqp::ChannelOpen>(m)) {
    if (ch == 2) publish_seq = 0;
    send(ch, amqp::ChannelOpenOk{});
  } else if (std::holds_alternative<amqp::ChannelClose>(m)) {
    send(ch, amqp::ChannelCloseOk{});
  } else if (std::holds_alternative<amqp::ConfirmSelect>(m)) {
    send(ch, amqp::ConfirmSelectOk{});
  } else if (auto* q = std::get_if<amqp::BasicQos>(&m)) {
    line += " " + std::to_string(q->prefetch_count);
    send(ch, amqp::BasicQosOk{});
  } else if (auto* d = std::get_if<amqp::QueueDeclare>(&m)) {
    line += " " + std::string(d->queue);
    if (d->durable) line += " durable";
    if (d->queue == "bad" || (d->queue == "q" && d->durable))
      send(ch, amqp::ChannelClose{406, "PRECONDITION_FAILED - inequivalent arg 'durable'", 50, 10});
    else
      send(ch, amqp::QueueDeclareOk{d->queue, 0, 0});
  } else if (auto* c = std::get_if<amqp::BasicConsume>(&m)) {
    line += " " + std::string(c->queue) + " " + std::string(c->consumer_tag);
    consumer_tag = c->consumer_tag;
    queue = c->queue;
    send(ch, amqp::BasicConsumeOk{c->consumer_tag});
  } else if (auto* c = std::get_if<amqp::BasicCancel>(&m)) {
    line += " " + std::string(c->consumer_tag);
    send(ch, amqp::BasicCancelOk{c->consumer_tag});
  } else if (auto* a = std::get_if<amqp::BasicAck>(&m)) {
    line += " " + std::to_string(a->delivery_tag);
    if (a->multiple) line += " multiple";
    if (!settle_tag(a->delivery_tag, a->multiple)) line += " UNKNOWN-TAG";
  } else if (auto* n = std::get_if<amqp::BasicNack>(&m)) {
    line += " " + std::to_string(n->delivery_tag) + (n->requeue ? " requeue" : " drop");
    if (!settle_tag(n->delivery_tag, n->multiple)) line += " UNKNOWN-TAG";
  } else if (auto* r = std::get_if<amqp::BasicReject>(&m)) {
    line += " " + std::to_string(r->delivery_tag) + (r->requeue ? " requeue" : " drop");
    if (!settle_tag(r->delivery_tag, false)) line += " UNKNOWN-TAG";
  }
  log.push_back(std::move(line));
}

inline void FakeSession::on_content(const amqp::Content& c) {
  auto* p = std::get_if<amqp::BasicPublish>(&c.method);
  ASSERT_NE(p, nullptr);
  uint64_t seq = ++publish_seq;
  log.push_back("basic.publish " + std::to_string(c.channel) + " " + std::string(p->exchange) +
                " " + std::string(p->routing_key) + " " + std::string(c.body.view()));
  if (p->exchange == "nope") {
    send(c.channel, amqp::ChannelClose{404, "NOT_FOUND - no exchange 'nope' in vhost '/'", 60, 40});
    return;
  }
  if (p->mandatory && p->routing_key == "unroutable") {
    send(content_frames(c.channel, amqp::BasicReturn{312, "NO_ROUTE", p->exchange, p->routing_key},
                        c.body.view()));
    send(c.channel, amqp::BasicAck{seq, false});
    return;
  }
  if (fb_.auto_confirm) send(c.channel, amqp::BasicAck{seq, false});
}

}  // namespace ember::queue::test
