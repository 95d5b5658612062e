// amqp::Client driven through scripted broker conversations: every frame it
// sends is compared with the bytes the spec fixes, events are logged as
// strings, the broker's side is replayed in every chunking, and heartbeats
// run on a fake clock.
#include "protocols/amqp/client.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/amqp/amqp_test_util.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::amqp {
namespace {

using test::content_frames;
using test::frame;
using test::header_payload;
using test::heartbeat_frame;
using test::hex_bytes;
using test::method_frame;
using test::to_hex;

class Log final : public ClientHandler {
 public:
  void on_ready() override { log.push_back("ready"); }
  void on_channel_open(uint16_t ch) override { log.push_back("open " + std::to_string(ch)); }
  void on_reply(uint16_t ch, const Method& m) override {
    std::string e = "reply ";
    e += std::to_string(ch);
    e += ' ';
    e += name_of(m);
    if (const auto* d = std::get_if<QueueDeclareOk>(&m)) {
      e += ' ';
      e += d->queue;
      e += ' ';
      e += std::to_string(d->message_count);
    }
    if (const auto* c = std::get_if<BasicConsumeOk>(&m)) {
      e += ' ';
      e += c->consumer_tag;
    }
    log.push_back(e);
  }
  void on_delivery(const Delivery& d) override {
    std::string e = d.from_get ? "get " : "delivery ";
    e += std::to_string(d.channel);
    e += " tag=" + std::to_string(d.delivery_tag);
    e += d.redelivered ? " redelivered" : "";
    e += " ctag=";
    e += d.consumer_tag;
    e += " ex=";
    e += d.exchange;
    e += " rk=";
    e += d.routing_key;
    if (d.properties.has(BasicProperties::kMessageId)) {
      e += " id=";
      e += d.properties.message_id;
    }
    if (d.body_dropped) {
      e += " dropped size=" + std::to_string(d.body_size);
    } else {
      e += " body=";
      e += d.body.view();
    }
    if (d.from_get) e += " left=" + std::to_string(d.message_count);
    log.push_back(e);
    bodies.push_back(d.body);
    if (on_delivery_hook) on_delivery_hook(d);
  }
  void on_confirm(uint16_t ch, uint64_t tag, bool multiple, bool ack) override {
    std::string e = "confirm ";
    e += std::to_string(ch);
    e += ' ';
    e += std::to_string(tag);
    e += multiple ? " multiple" : "";
    e += ack ? " ack" : " nack";
    log.push_back(e);
  }
  void on_return(const Returned& r) override {
    std::string e = "return ";
    e += std::to_string(r.channel);
    e += ' ';
    e += std::to_string(r.reply_code);
    e += ' ';
    e += r.reply_text;
    e += " rk=";
    e += r.routing_key;
    e += " body=";
    e += r.body.view();
    log.push_back(e);
  }
  void on_consumer_cancelled(uint16_t ch, std::string_view tag) override {
    std::string e = "cancelled ";
    e += std::to_string(ch);
    e += ' ';
    e += tag;
    log.push_back(e);
  }
  void on_flow(uint16_t ch, bool active) override {
    log.push_back("flow " + std::to_string(ch) + (active ? " on" : " off"));
  }
  void on_blocked(std::string_view reason) override {
    std::string e = "blocked ";
    e += reason;
    log.push_back(e);
  }
  void on_unblocked() override { log.push_back("unblocked"); }
  void on_channel_closed(uint16_t, const AmqpError& e) override {
    log.push_back("channel closed: " + e.describe());
    errors.push_back(e);
  }
  void on_connection_closed(const AmqpError& e) override {
    log.push_back("connection closed: " + e.describe());
    errors.push_back(e);
  }

  std::vector<std::string> take() {
    std::vector<std::string> out;
    out.swap(log);
    return out;
  }

  std::vector<std::string> log;
  std::vector<Bytes> bodies;
  std::vector<AmqpError> errors;
  std::function<void(const Delivery&)> on_delivery_hook;
};

// connection.start as RabbitMQ sends it (properties trimmed).
std::string broker_start(std::string_view mechanisms = "PLAIN AMQPLAIN", uint8_t minor = 9) {
  static const std::string props =
      hex_bytes("07 'product' 'S' 00 00 00 08 'RabbitMQ' 07 'version' 'S' 00 00 00 06 '3.10.8'");
  return method_frame(
      0, ConnectionStart{0, minor,
                         TableView::trusted(std::span(
                             reinterpret_cast<const uint8_t*>(props.data()), props.size())),
                         mechanisms, "en_US"});
}

struct Harness {
  explicit Harness(ClientOptions o = {}) : client(log, std::move(o)) {}

  // Everything the client has to send, as one string.
  std::string sent() {
    IoChain out;
    EXPECT_TRUE(client.produce(out));
    return ember::test::flatten(out);
  }
  Status broker(const std::string& bytes) { return client.feed(Bytes::copy(bytes)); }

  // Drives the handshake to on_ready with the broker's tune values.
  void open(uint16_t channel_max = 2047, uint32_t frame_max = 131072, uint16_t heartbeat = 60) {
    ASSERT_EQ(to_hex(sent()), to_hex(hex_bytes("'AMQP' 00 00 09 01")));
    ASSERT_TRUE(broker(broker_start()));
    std::string start_ok = sent();
    ASSERT_FALSE(start_ok.empty());
    ASSERT_TRUE(broker(method_frame(0, ConnectionTune{channel_max, frame_max, heartbeat})));
    sent();
    ASSERT_TRUE(broker(method_frame(0, ConnectionOpenOk{})));
    ASSERT_EQ(log.take(), std::vector<std::string>{"ready"});
  }

  // Opens channel 1 and confirms it.
  void open_channel() {
    ASSERT_EQ(client.open_channel().value(), 1);
    ASSERT_EQ(to_hex(sent()), to_hex(method_frame(1, ChannelOpen{})));
    ASSERT_TRUE(broker(method_frame(1, ChannelOpenOk{})));
    ASSERT_EQ(log.take(), std::vector<std::string>{"open 1"});
  }

  Log log;
  Client client;
};

// ---- handshake ------------------------------------------------------------------------

TEST(AmqpClient, Negotiate) {
  EXPECT_EQ(negotiate(60, 30), 30u);
  EXPECT_EQ(negotiate(10, 60), 10u);
  EXPECT_EQ(negotiate(0, 60), 60u);
  EXPECT_EQ(negotiate(60, 0), 60u);
  EXPECT_EQ(negotiate(0, 0), 0u);
}

TEST(AmqpClient, HandshakeBytes) {
  ClientOptions o;
  o.username = "svc";
  o.password = "s3cret";
  o.vhost = "prod";
  o.connection_name = "relay-1";
  o.heartbeat = 10;
  o.frame_max = 65536;
  o.channel_max = 0;
  Harness h(o);
  EXPECT_EQ(h.client.state(), ClientState::awaiting_start);
  EXPECT_TRUE(h.client.wants_write());
  EXPECT_EQ(to_hex(h.sent()), to_hex(hex_bytes("'AMQP' 00 00 09 01")));
  EXPECT_FALSE(h.client.wants_write());

  ASSERT_TRUE(h.broker(broker_start()));
  EXPECT_EQ(h.client.state(), ClientState::awaiting_tune);
  EXPECT_EQ(h.client.server_properties().find("product")->as_string(), "RabbitMQ");

  // start-ok: PLAIN, "\0user\0pass", en_US, and our properties.
  std::string start_ok = h.sent();
  test::Recorder rec;
  FrameReader server;
  ASSERT_TRUE(server.feed(Bytes::copy(start_ok), rec));
  ASSERT_EQ(rec.events.size(), 1u);
  Method m;
  ASSERT_TRUE(
      decode_method(
          std::span(reinterpret_cast<const uint8_t*>(start_ok.data()) + 7, start_ok.size() - 8), m)
          .ok());
  const auto& ok = std::get<ConnectionStartOk>(m);
  EXPECT_EQ(ok.mechanism, "PLAIN");
  EXPECT_EQ(ok.response, std::string_view("\0svc\0s3cret", 11));
  EXPECT_EQ(ok.locale, "en_US");
  EXPECT_EQ(to_string(ok.client_properties),
            "{product: \"ember\", version: \"0.1.0\", platform: \"C++20\", connection_name: "
            "\"relay-1\", capabilities: {publisher_confirms: true, consumer_cancel_notify: true, "
            "connection.blocked: true, basic.nack: true, exchange_exchange_bindings: true, "
            "authentication_failure_close: true, per_consumer_qos: true}}");

  // tune(2047, 131072, 60) against ours (0, 65536, 10): tune-ok(2047, 65536, 10), open.
  ASSERT_TRUE(h.broker(method_frame(0, ConnectionTune{2047, 131072, 60})));
  EXPECT_EQ(to_hex(h.sent()),
            to_hex(hex_bytes("01 00 00 00 00 00 0c  00 0a 00 1f  07 ff  00 01 00 00  00 0a  ce"
                             "01 00 00 00 00 00 0b  00 0a 00 28  04 'prod'  00  00  ce")));
  EXPECT_EQ(h.client.state(), ClientState::awaiting_open_ok);
  EXPECT_EQ(h.client.tuning().channel_max, 2047);
  EXPECT_EQ(h.client.tuning().frame_max, 65536u);
  EXPECT_EQ(h.client.tuning().heartbeat, 10);

  ASSERT_TRUE(h.broker(method_frame(0, ConnectionOpenOk{})));
  EXPECT_TRUE(h.client.ready());
  EXPECT_EQ(h.log.take(), std::vector<std::string>{"ready"});
}

TEST(AmqpClient, RecordedStartAndTuneInEveryChunking) {
  // The broker's handshake bytes, fed in every split, give the same result.
  std::string wire = broker_start() + method_frame(0, ConnectionTune{2047, 131072, 60}) +
                     method_frame(0, ConnectionOpenOk{});
  Bytes input = Bytes::copy(wire);
  for (const ember::test::Split& split : ember::test::all_splits(input)) {
    SCOPED_TRACE(split.name);
    Harness h;
    h.sent();
    for (const Bytes& c : split.chunks)
      ASSERT_TRUE(h.client.feed(c));
    ASSERT_EQ(h.log.take(), std::vector<std::string>{"ready"});
    ASSERT_TRUE(h.client.ready());
  }
}

TEST(AmqpClient, NoPlainMechanism) {
  Harness h;
  h.sent();
  Status st = h.broker(broker_start("AMQPLAIN EXTERNAL"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, 540);
  EXPECT_EQ(to_hex(h.sent()),
            to_hex(method_frame(0, ConnectionClose{540,
                                                   "the broker does not offer the PLAIN mechanism "
                                                   "(offers: AMQPLAIN EXTERNAL)",
                                                   10, 10})));
  EXPECT_EQ(h.log.take(),
            std::vector<std::string>{
                "connection closed: connection closed by client: 540 NOT_IMPLEMENTED - the broker "
                "does not offer the PLAIN mechanism (offers: AMQPLAIN EXTERNAL) "
                "(connection.start)"});
  EXPECT_EQ(h.client.state(), ClientState::closing);
  ASSERT_TRUE(h.broker(method_frame(0, ConnectionCloseOk{})));
  EXPECT_TRUE(h.client.finished());
  EXPECT_TRUE(h.log.take().empty());  // reported once
}

TEST(AmqpClient, WrongProtocolVersion) {
  Harness h;
  h.sent();
  ASSERT_FALSE(h.broker(broker_start("PLAIN", 8)));
  EXPECT_EQ(h.log.errors.at(0).code, 540);
  EXPECT_EQ(h.log.errors.at(0).text, "broker speaks AMQP 0-8, not 0-9");
}

TEST(AmqpClient, AccessRefused) {
  Harness h;
  h.sent();
  ASSERT_TRUE(h.broker(broker_start()));
  h.sent();
  // RabbitMQ with authentication_failure_close.
  ASSERT_TRUE(h.broker(method_frame(
      0, ConnectionClose{403,
                         "ACCESS_REFUSED - Login was refused using authentication mechanism "
                         "PLAIN. For details see the broker logfile.",
                         0, 0})));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(0, ConnectionCloseOk{})));
  EXPECT_TRUE(h.client.finished());
  EXPECT_EQ(h.log.take(),
            std::vector<std::string>{"connection closed: connection closed by broker: 403 "
                                     "ACCESS_REFUSED - Login was refused using authentication "
                                     "mechanism PLAIN. For details see the broker logfile."});
  EXPECT_EQ(h.log.errors.at(0).origin, AmqpError::Origin::broker);
}

TEST(AmqpClient, SocketClosedDuringHandshake) {
  Harness h;
  h.sent();
  ASSERT_TRUE(h.broker(broker_start()));
  h.client.transport_closed("EOF");
  EXPECT_TRUE(h.client.finished());
  EXPECT_EQ(h.log.take(),
            std::vector<std::string>{"connection closed: connection lost: the socket closed "
                                     "(EOF) during the handshake: wrong username or password?"});
  h.client.transport_closed("again");
  EXPECT_TRUE(h.log.take().empty());
}

TEST(AmqpClient, UnknownVhost) {
  Harness h;
  h.sent();
  ASSERT_TRUE(h.broker(broker_start()));
  ASSERT_TRUE(h.broker(method_frame(0, ConnectionTune{2047, 131072, 60})));
  h.sent();
  ASSERT_TRUE(h.broker(
      method_frame(0, ConnectionClose{530, "NOT_ALLOWED - vhost nope not found", 10, 40})));
  EXPECT_EQ(h.log.take(), std::vector<std::string>{"connection closed: connection closed by "
                                                   "broker: 530 NOT_ALLOWED - vhost nope not "
                                                   "found (connection.open)"});
}

TEST(AmqpClient, OperationsNeedAnOpenConnection) {
  Harness h;
  auto ch = h.client.open_channel();
  ASSERT_FALSE(ch);
  EXPECT_EQ(ch.error().text, "the connection is not open");
  auto p = h.client.publish(1, "", "q", Bytes::copy("x"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, 0);
}

// ---- the relay conversation -----------------------------------------------------------

TEST(AmqpClient, SetupPipelinesAndRepliesArrive) {
  Harness h;
  h.open();
  ASSERT_EQ(h.client.open_channel().value(), 1);
  ASSERT_TRUE(h.client.confirm_select(1));
  ASSERT_TRUE(h.client.confirm_select(1));  // no-op
  ASSERT_TRUE(h.client.qos(1, 256));
  ASSERT_TRUE(h.client.declare_queue(1, QueueDeclare{.queue = "in"}));
  ASSERT_TRUE(h.client.declare_queue(1, QueueDeclare{.queue = "out", .durable = true}));
  ASSERT_TRUE(h.client.consume(1, BasicConsume{.queue = "in", .consumer_tag = "svc-consumer"}));
  EXPECT_EQ(
      to_hex(h.sent()),
      to_hex(hex_bytes("01 00 01 00 00 00 05  00 14 00 0a  00  ce"  // channel.open
                       "01 00 01 00 00 00 05  00 55 00 0a  00  ce"  // confirm.select
                       "01 00 01 00 00 00 0b  00 3c 00 0a  00 00 00 00  01 00  00  ce"  // qos
                       "01 00 01 00 00 00 0e  00 32 00 0a  00 00  02 'in'  00  00 00 00 00  ce"
                       "01 00 01 00 00 00 0f  00 32 00 0a  00 00  03 'out'  02  00 00 00 00  ce"
                       "01 00 01 00 00 00 1b  00 3c 00 14  00 00  02 'in'  0c 'svc-consumer'"
                       "  00  00 00 00 00  ce")));

  std::string replies = method_frame(1, ChannelOpenOk{}) + method_frame(1, ConfirmSelectOk{}) +
                        method_frame(1, BasicQosOk{}) +
                        method_frame(1, QueueDeclareOk{"in", 5, 0}) +
                        method_frame(1, QueueDeclareOk{"out", 0, 0}) +
                        method_frame(1, BasicConsumeOk{"svc-consumer"});
  ASSERT_TRUE(h.broker(replies));
  EXPECT_EQ(h.log.take(), (std::vector<std::string>{
                              "open 1", "reply 1 confirm.select-ok", "reply 1 basic.qos-ok",
                              "reply 1 queue.declare-ok in 5", "reply 1 queue.declare-ok out 0",
                              "reply 1 basic.consume-ok svc-consumer"}));
}

// The relay: each delivery is published onward (confirms on) and acked once
// the broker confirmed the publish.
TEST(AmqpClient, RelayDeliveriesConfirmsAndAcks) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.client.confirm_select(1));
  h.sent();
  ASSERT_TRUE(h.broker(method_frame(1, ConfirmSelectOk{})));
  h.log.take();

  std::vector<uint64_t> seqs;
  h.log.on_delivery_hook = [&](const Delivery& d) {
    // Publish the body onward by reference, from inside the callback.
    auto seq = h.client.publish(1, "", "out", d.body);
    ASSERT_TRUE(seq);
    seqs.push_back(*seq);
  };
  BasicProperties props;
  props.set_message_id("m-1");
  std::string wire =
      content_frames(1, BasicDeliver{"svc-consumer", 1, false, "", "in"}, "42", props) +
      content_frames(1, BasicDeliver{"svc-consumer", 2, true, "", "in"}, "43");
  Bytes input = Bytes::copy(wire);
  ASSERT_TRUE(h.client.feed(input));
  EXPECT_EQ(h.log.take(), (std::vector<std::string>{
                              "delivery 1 tag=1 ctag=svc-consumer ex= rk=in id=m-1 body=42",
                              "delivery 1 tag=2 redelivered ctag=svc-consumer ex= rk=in body=43"}));
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));
  // Bodies are slices of the fed bytes.
  ASSERT_EQ(h.log.bodies.size(), 2u);
  EXPECT_TRUE(ember::test::points_into(input, h.log.bodies[0].data(), 2));

  // Two publishes in one output, body by reference unless tiny (copied).
  EXPECT_EQ(to_hex(h.sent()),
            to_hex(content_frames(1, BasicPublish{0, "", "out", false, false}, "42") +
                   content_frames(1, BasicPublish{0, "", "out", false, false}, "43")));

  // Confirms arrive interleaved with deliveries, multiple=true.
  ASSERT_TRUE(h.broker(method_frame(1, BasicAck{2, true}) +
                       content_frames(1, BasicDeliver{"svc-consumer", 3, false, "", "in"}, "44") +
                       method_frame(1, BasicNack{3, false, false})));
  EXPECT_EQ(h.log.take(),
            (std::vector<std::string>{"confirm 1 2 multiple ack",
                                      "delivery 1 tag=3 ctag=svc-consumer ex= rk=in body=44",
                                      "confirm 1 3 nack"}));
  h.sent();
  ASSERT_TRUE(h.client.ack(1, 2, true));
  ASSERT_TRUE(h.client.nack(1, 3, false, false));
  ASSERT_TRUE(h.client.reject(1, 4, true));
  EXPECT_EQ(
      to_hex(h.sent()),
      to_hex(hex_bytes("01 00 01 00 00 00 0d  00 3c 00 50  00 00 00 00 00 00 00 02  01  ce"
                       "01 00 01 00 00 00 0d  00 3c 00 78  00 00 00 00 00 00 00 03  00  ce"
                       "01 00 01 00 00 00 0d  00 3c 00 5a  00 00 00 00 00 00 00 04  01  ce")));
}

TEST(AmqpClient, BrokerStreamInEveryChunking) {
  std::string wire =
      method_frame(1, ChannelOpenOk{}) + method_frame(1, BasicConsumeOk{"c"}) +
      content_frames(1, BasicDeliver{"c", 1, false, "", "in"}, "payload-1") +
      method_frame(1, BasicAck{1, false}) + heartbeat_frame() +
      content_frames(1, BasicDeliver{"c", 2, false, "", "in"}, std::string(300, 'b'), {}, 4096) +
      method_frame(0, ConnectionBlocked{"low on memory"}) + method_frame(0, ConnectionUnblocked{}) +
      method_frame(1, ChannelClose{404, "NOT_FOUND - no queue 'x' in vhost '/'", 50, 10});
  const std::vector<std::string> expected = {
      "open 1",
      "reply 1 basic.consume-ok c",
      "delivery 1 tag=1 ctag=c ex= rk=in body=payload-1",
      "confirm 1 1 ack",
      "delivery 1 tag=2 ctag=c ex= rk=in body=" + std::string(300, 'b'),
      "blocked low on memory",
      "unblocked",
      "channel closed: channel 1 closed by broker: 404 NOT_FOUND - no queue 'x' in vhost '/' "
      "(queue.declare)"};
  Bytes input = Bytes::copy(wire);
  for (const ember::test::Split& split : ember::test::all_splits(input)) {
    SCOPED_TRACE(split.name);
    Harness h;
    h.open();
    ASSERT_EQ(h.client.open_channel().value(), 1);
    h.sent();
    for (const Bytes& c : split.chunks)
      ASSERT_TRUE(h.client.feed(c));
    ASSERT_EQ(h.log.take(), expected);
    ASSERT_EQ(to_hex(h.sent()), to_hex(method_frame(1, ChannelCloseOk{})));
  }
}

TEST(AmqpClient, ChannelClosedByBroker406) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.client.declare_queue(1, QueueDeclare{.queue = "x", .durable = true}));
  h.sent();
  ASSERT_TRUE(h.broker(method_frame(
      1, ChannelClose{406,
                      "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'x' in vhost "
                      "'/': received 'true' but current is 'false'",
                      50, 10})));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(1, ChannelCloseOk{})));
  ASSERT_EQ(h.log.errors.size(), 1u);
  const AmqpError& e = h.log.errors[0];
  EXPECT_EQ(e.code, 406);
  EXPECT_EQ(e.reply(), ReplyCode::precondition_failed);
  EXPECT_EQ(e.scope, AmqpError::Scope::channel);
  EXPECT_EQ(e.channel, 1);
  EXPECT_EQ(e.describe(),
            "channel 1 closed by broker: 406 PRECONDITION_FAILED - inequivalent arg 'durable' "
            "for queue 'x' in vhost '/': received 'true' but current is 'false' "
            "(queue.declare)");
  EXPECT_FALSE(h.client.channel_open(1));
  EXPECT_TRUE(h.client.ready());  // the connection lives on

  auto p = h.client.publish(1, "", "q", Bytes::copy("x"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().text, "channel 1 is not open");
  EXPECT_FALSE(h.client.ack(1, 1));

  // Channel 1 can be opened again.
  h.log.take();
  h.open_channel();
}

TEST(AmqpClient, ChannelClosedByBroker404OnConsume) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.client.consume(1, BasicConsume{.queue = "missing", .consumer_tag = "t"}));
  h.sent();
  ASSERT_TRUE(h.broker(
      method_frame(1, ChannelClose{404, "NOT_FOUND - no queue 'missing' in vhost '/'", 60, 20})));
  EXPECT_EQ(h.log.take(),
            std::vector<std::string>{"channel closed: channel 1 closed by broker: 404 NOT_FOUND - "
                                     "no queue 'missing' in vhost '/' (basic.consume)"});
}

TEST(AmqpClient, ChannelCloseByClient) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.client.close_channel(1, 200, "done"));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(1, ChannelClose{200, "done", 0, 0})));
  EXPECT_FALSE(h.client.channel_open(1));
  // Until close-ok, the broker's frames on the channel are dropped.
  ASSERT_TRUE(h.broker(content_frames(1, BasicDeliver{"c", 9, false, "", "in"}, "late") +
                       method_frame(1, BasicAck{1, false})));
  EXPECT_TRUE(h.log.take().empty());
  ASSERT_TRUE(h.broker(method_frame(1, ChannelCloseOk{})));
  EXPECT_EQ(h.log.take(),
            std::vector<std::string>{
                "channel closed: channel 1 closed by client: 200 REPLY_SUCCESS - done"});
  // A close-ok nobody asked for is a protocol error.
  h.open_channel();
  Status st = h.broker(method_frame(1, ChannelCloseOk{}));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, 503);
}

TEST(AmqpClient, ChannelClosedByBothSidesAtOnce) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.client.close_channel(1));
  h.sent();
  // The broker closed it too (its close crossed ours), then answers ours.
  ASSERT_TRUE(h.broker(method_frame(1, ChannelClose{406, "PRECONDITION_FAILED - x", 60, 40})));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(1, ChannelCloseOk{})));
  ASSERT_TRUE(h.broker(method_frame(1, ChannelCloseOk{})));
  EXPECT_TRUE(h.client.ready());
  EXPECT_EQ(h.log.take(), std::vector<std::string>{"channel closed: channel 1 closed by broker: "
                                                   "406 PRECONDITION_FAILED - x (basic.publish)"});
}

TEST(AmqpClient, ConnectionCloseByClient) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.client.close());
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(0, ConnectionClose{200, "Goodbye", 0, 0})));
  EXPECT_EQ(h.client.state(), ClientState::closing);
  ASSERT_TRUE(h.client.close());  // again: nothing more
  EXPECT_FALSE(h.client.wants_write());
  // Frames other than close/close-ok are discarded.
  ASSERT_TRUE(h.broker(content_frames(1, BasicDeliver{"c", 1, false, "", "in"}, "x") +
                       method_frame(0, ConnectionBlocked{"x"})));
  EXPECT_TRUE(h.log.take().empty());
  ASSERT_TRUE(h.broker(method_frame(0, ConnectionCloseOk{})));
  EXPECT_TRUE(h.client.finished());
  EXPECT_EQ(h.log.take(), std::vector<std::string>{"connection closed: connection closed by "
                                                   "client: 200 REPLY_SUCCESS - Goodbye"});
  EXPECT_FALSE(h.client.close());
  EXPECT_TRUE(h.broker(heartbeat_frame()));  // ignored
}

TEST(AmqpClient, CloseTimesOutWithoutCloseOk) {
  ClientOptions o;
  o.close_timeout_ms = 3000;
  Harness h(o);
  h.open(2047, 131072, 0);
  ASSERT_TRUE(h.client.close());
  EXPECT_EQ(h.client.on_timer(1000), 4000u);
  EXPECT_EQ(h.client.on_timer(3999), 4000u);
  EXPECT_FALSE(h.client.finished());
  EXPECT_EQ(h.client.on_timer(4000), 0u);
  EXPECT_TRUE(h.client.finished());
  EXPECT_EQ(h.log.take().size(), 1u);
}

TEST(AmqpClient, ConnectionClosedByBroker) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.broker(method_frame(
      0, ConnectionClose{320,
                         "CONNECTION_FORCED - broker forced connection closure with reason "
                         "'shutdown'",
                         0, 0})));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(0, ConnectionCloseOk{})));
  EXPECT_TRUE(h.client.finished());
  EXPECT_EQ(h.log.take(),
            std::vector<std::string>{"connection closed: connection closed by broker: 320 "
                                     "CONNECTION_FORCED - broker forced connection closure with "
                                     "reason 'shutdown'"});
  EXPECT_FALSE(h.client.channel_open(1));
}

// ---- broker faults ---------------------------------------------------------------------

struct Fault {
  const char* name;
  std::string wire;
  uint16_t code;
  std::string close_text;
  bool framing;  // found by the frame reader, which then stops parsing
};

TEST(AmqpClient, BrokerFaultsCloseTheConnectionWithTheRightCode) {
  std::vector<Fault> faults = {
      {"bad frame end", hex_bytes("08 00 00 00 00 00 00 00"), 501,
       "frame-end octet 0x00, expected 0xce", true},
      {"oversize frame", hex_bytes("01 00 01 00 02 00 00"), 501,
       "frame of 131080 bytes exceeds frame_max 131072", true},
      {"bad table", frame(1, 1, hex_bytes("00 32 00 0b 01 'q' 00 00 00 00")), 502,
       "truncated arguments of queue.declare-ok", true},
      {"body without header", frame(3, 1, "x"), 505,
       "content body frame on channel 1 without a content header", true},
      {"delivery on a channel never opened",
       content_frames(2, BasicDeliver{"c", 1, false, "", "q"}, "x"), 504,
       "basic.deliver on channel 2, which is not open", false},
      {"reply on a channel never opened", method_frame(3, BasicQosOk{}), 504,
       "basic.qos-ok on channel 3, which is not open", false},
      {"channel above channel_max", method_frame(2048, BasicQosOk{}), 504,
       "basic.qos-ok on channel 2048 above channel_max 2047", true},
      {"tune when open", method_frame(0, ConnectionTune{1, 2, 3}), 503,
       "connection.tune while expecting no connection method", false},
      {"open-ok twice", method_frame(1, ChannelOpenOk{}), 503,
       "channel.open-ok on channel 1, which is already open", false},
      {"publish from the broker", content_frames(1, BasicPublish{}, "x"), 503,
       "basic.publish from the broker", false},
      {"unknown method", frame(1, 1, hex_bytes("00 3c 00 63")), 540, "unknown method 60.99", true},
  };
  for (const Fault& f : faults) {
    SCOPED_TRACE(f.name);
    Harness h;
    h.open();
    h.open_channel();
    Status st = h.broker(f.wire);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, f.code);
    EXPECT_EQ(st.error().text, f.close_text);
    ASSERT_EQ(h.log.errors.size(), 1u);
    EXPECT_EQ(h.log.errors[0].origin, AmqpError::Origin::client);
    std::string sent = h.sent();
    // connection.close(code, text, failing class, method) on channel 0.
    Method m;
    ASSERT_TRUE(
        decode_method(std::span(reinterpret_cast<const uint8_t*>(sent.data()) + 7, sent.size() - 8),
                      m)
            .ok());
    const auto& close = std::get<ConnectionClose>(m);
    EXPECT_EQ(close.reply_code, f.code);
    EXPECT_EQ(close.reply_text, f.close_text);
    EXPECT_EQ(h.client.state(), ClientState::closing);
    EXPECT_TRUE(h.broker(method_frame(0, ConnectionCloseOk{})));
    if (f.framing) {
      // After a framing error nothing more is parsed: the broker closing the
      // socket (as RabbitMQ does after close-ok) ends it.
      EXPECT_EQ(h.client.state(), ClientState::closing);
      h.client.transport_closed("EOF");
    }
    EXPECT_TRUE(h.client.finished());
    EXPECT_EQ(h.log.errors.size(), 1u);  // reported once
  }
}

TEST(AmqpClient, OverlongCloseTextIsClipped) {
  Harness h;
  h.open();
  std::string text(300, 't');
  ASSERT_TRUE(h.client.close(200, text));
  EXPECT_EQ(to_hex(h.sent()),
            to_hex(method_frame(0, ConnectionClose{200, text.substr(0, 255), 0, 0})));
}

// ---- other broker events -----------------------------------------------------------------

TEST(AmqpClient, CancelFlowReturnGetAndDroppedBodies) {
  ClientOptions o;
  o.max_body_size = 10;
  Harness h(o);
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.broker(method_frame(1, BasicCancel{"svc-consumer", true})));
  EXPECT_TRUE(h.sent().empty());  // no-wait: no cancel-ok
  ASSERT_TRUE(h.broker(method_frame(1, BasicCancel{"other", false})));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(1, BasicCancelOk{"other"})));
  ASSERT_TRUE(h.broker(method_frame(1, ChannelFlow{false})));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(1, ChannelFlowOk{false})));
  ASSERT_TRUE(h.broker(content_frames(1, BasicReturn{312, "NO_ROUTE", "", "nowhere"}, "lost")));
  ASSERT_TRUE(h.client.get(1, "in"));
  EXPECT_EQ(to_hex(h.sent()), to_hex(method_frame(1, BasicGet{0, "in", false})));
  ASSERT_TRUE(h.broker(content_frames(1, BasicGetOk{7, false, "", "in", 3}, "got")));
  ASSERT_TRUE(h.broker(method_frame(1, BasicGetEmpty{})));
  ASSERT_TRUE(
      h.broker(content_frames(1, BasicDeliver{"c", 8, false, "", "in"}, std::string(11, 'x'))));
  ASSERT_TRUE(
      h.broker(content_frames(1, BasicDeliver{"c", 9, false, "", "in"}, std::string(10, 'y'))));
  EXPECT_EQ(h.log.take(),
            (std::vector<std::string>{"cancelled 1 svc-consumer", "cancelled 1 other", "flow 1 off",
                                      "return 1 312 NO_ROUTE rk=nowhere body=lost",
                                      "get 1 tag=7 ctag= ex= rk=in body=got left=3",
                                      "reply 1 basic.get-empty",
                                      "delivery 1 tag=8 ctag=c ex= rk=in dropped size=11",
                                      "delivery 1 tag=9 ctag=c ex= rk=in body=yyyyyyyyyy"}));
}

TEST(AmqpClient, BlockedState) {
  Harness h;
  h.open();
  ASSERT_TRUE(h.broker(method_frame(0, ConnectionBlocked{"low on memory"})));
  EXPECT_TRUE(h.client.blocked());
  ASSERT_TRUE(h.broker(method_frame(0, ConnectionUnblocked{})));
  EXPECT_FALSE(h.client.blocked());
  EXPECT_EQ(h.log.take(), (std::vector<std::string>{"blocked low on memory", "unblocked"}));
}

TEST(AmqpClient, ChannelIds) {
  Harness h;
  h.open(3);
  EXPECT_EQ(h.client.open_channel().value(), 1);
  EXPECT_EQ(h.client.open_channel().value(), 2);
  EXPECT_EQ(h.client.open_channel(3).value(), 3);
  auto full = h.client.open_channel();
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().text, "no free channel id (channel_max reached)");
  EXPECT_EQ(h.client.open_channel(4).error().text, "channel 4 is above channel_max 3");
  EXPECT_EQ(h.client.open_channel(2).error().text, "channel 2 is already in use");
}

TEST(AmqpClient, PublishErrorsKeepTheSequence) {
  Harness h;
  h.open();
  h.open_channel();
  ASSERT_TRUE(h.client.confirm_select(1));
  EXPECT_EQ(h.client.publish(1, "", "a", Bytes::copy("1")).value(), 1u);
  auto bad = h.client.publish(1, "", std::string(256, 'k'), Bytes::copy("2"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().text,
            "cannot encode basic.publish: a short string argument is longer than 255 bytes");
  EXPECT_EQ(h.client.publish(1, "", "a", Bytes::copy("3")).value(), 2u);
  // Without confirms the number is 0.
  ASSERT_EQ(h.client.open_channel().value(), 2);
  EXPECT_EQ(h.client.publish(2, "", "a", Bytes::copy("4")).value(), 0u);
}

TEST(AmqpClient, LargePublishReferencesTheBodyAcrossFrames) {
  ClientOptions o;
  o.frame_max = 4096;
  Harness h(o);
  h.open(2047, 131072, 60);  // negotiates 4096
  h.open_channel();
  std::string text = ember::test::random_bytes(10000, 5);
  Bytes body = Bytes::copy(text);
  ASSERT_TRUE(h.client.publish(1, "ex", "rk", body, BasicProperties().set_delivery_mode(2)));
  EXPECT_EQ(h.client.pending_bytes(),
            content_frames(1, BasicPublish{0, "ex", "rk", false, false}, text,
                           BasicProperties().set_delivery_mode(2), 4096)
                .size());
  IoChain out;
  ASSERT_TRUE(h.client.produce(out));
  size_t referenced = 0;
  for (size_t i = 0; i < out.iov_count(); ++i)
    if (ember::test::points_into(body, out.iov()[i].iov_base, out.iov()[i].iov_len))
      referenced += out.iov()[i].iov_len;
  EXPECT_EQ(referenced, 10000u);
  EXPECT_EQ(ember::test::flatten(out),
            content_frames(1, BasicPublish{0, "ex", "rk", false, false}, text,
                           BasicProperties().set_delivery_mode(2), 4096));
}

// ---- heartbeats -----------------------------------------------------------------------------

TEST(AmqpClient, HeartbeatTiming) {
  Harness h;
  h.open(2047, 131072, 60);
  const std::string hb = heartbeat_frame();
  // The first tick starts the clocks.
  EXPECT_EQ(h.client.on_timer(1000), 31000u);
  EXPECT_EQ(h.client.on_timer(30999), 31000u);
  EXPECT_TRUE(h.sent().empty());
  // Silent for half the interval: a heartbeat.
  EXPECT_EQ(h.client.on_timer(31000), 61000u);
  EXPECT_EQ(to_hex(h.sent()), to_hex(hb));
  // Input counts from the tick after it.
  ASSERT_TRUE(h.broker(hb));
  EXPECT_EQ(h.client.on_timer(50000), 61000u);
  EXPECT_TRUE(h.sent().empty());
  // Output counts from the tick before it: channel.open at 50000 postpones
  // our next heartbeat to 80000.
  h.open_channel();
  EXPECT_EQ(h.client.on_timer(70000), 80000u);
  EXPECT_TRUE(h.sent().empty());
  for (uint64_t t : {80000u, 110000u, 140000u}) {
    EXPECT_EQ(h.client.on_timer(t), t + 30000);
    EXPECT_EQ(to_hex(h.sent()), to_hex(hb)) << t;
  }
  // The broker last spoke by 70000 (channel.open-ok): dead at 190000.
  EXPECT_EQ(h.client.on_timer(170000), 190000u);
  EXPECT_EQ(to_hex(h.sent()), to_hex(hb));
  EXPECT_EQ(h.client.on_timer(189999), 190000u);
  EXPECT_FALSE(h.client.finished());
  EXPECT_EQ(h.client.on_timer(190000), 0u);
  EXPECT_TRUE(h.client.finished());
  EXPECT_EQ(h.log.take(), std::vector<std::string>{
                              "connection closed: connection lost: no data from the broker for "
                              "120000 ms (two heartbeat intervals of 60 s)"});
  EXPECT_EQ(h.client.on_timer(200000), 0u);
}

TEST(AmqpClient, HeartbeatsStartAtTune) {
  ClientOptions o;
  o.heartbeat = 5;
  Harness h(o);
  h.sent();
  EXPECT_EQ(h.client.on_timer(0), 0u);  // not tuned yet: no timer
  ASSERT_TRUE(h.broker(broker_start()));
  ASSERT_TRUE(h.broker(method_frame(0, ConnectionTune{2047, 131072, 60})));
  EXPECT_EQ(h.client.tuning().heartbeat, 5);
  h.sent();
  EXPECT_EQ(h.client.on_timer(100), 2600u);
  EXPECT_EQ(h.client.on_timer(2600), 5100u);
  EXPECT_EQ(to_hex(h.sent()), to_hex(heartbeat_frame()));
}

TEST(AmqpClient, HeartbeatsOff) {
  ClientOptions o;
  o.heartbeat = 0;
  Harness h(o);
  h.open(2047, 131072, 0);
  EXPECT_EQ(h.client.tuning().heartbeat, 0);
  EXPECT_EQ(h.client.on_timer(1000), 0u);
  EXPECT_EQ(h.client.on_timer(10'000'000), 0u);
  EXPECT_TRUE(h.sent().empty());
  EXPECT_FALSE(h.client.finished());
}

TEST(AmqpClient, TransportLossWhenOpen) {
  Harness h;
  h.open();
  h.client.transport_closed("ECONNRESET");
  EXPECT_EQ(h.log.take(),
            std::vector<std::string>{
                "connection closed: connection lost: the socket closed (ECONNRESET)"});
}

}  // namespace
}  // namespace ember::amqp
