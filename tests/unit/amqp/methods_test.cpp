// Methods and content headers: exact bytes from the 0-9-1 spec for the ones
// a client uses most, a round trip for every method, and every malformed
// argument list with its reply code. Also the reply-code table and
// AmqpError::describe().
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocols/amqp/methods.hpp"
#include "protocols/amqp/reply.hpp"
#include "tests/unit/amqp/amqp_test_util.hpp"

namespace ember::amqp {
namespace {

using test::hex_bytes;
using test::method_payload;
using test::to_hex;

std::span<const uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A table to put in table-typed arguments.
const std::string kArgs = hex_bytes("0c 'x-queue-type' 'S' 00 00 00 06 'quorum'");
TableView args() {
  return TableView::trusted(span_of(kArgs));
}

// One instance of every method, every argument away from its default.
std::vector<Method> every_method() {
  return {
      ConnectionStart{0, 9, args(), "AMQPLAIN PLAIN", "en_US"},
      ConnectionStartOk{args(), "PLAIN", std::string_view("\0u\0p", 4), "en_US"},
      ConnectionSecure{"challenge"},
      ConnectionSecureOk{"response"},
      ConnectionTune{2047, 131072, 60},
      ConnectionTuneOk{100, 4096, 30},
      ConnectionOpen{"/vhost", "caps", true},
      ConnectionOpenOk{"known"},
      ConnectionClose{320, "CONNECTION_FORCED - shutdown", 10, 40},
      ConnectionCloseOk{},
      ConnectionBlocked{"low on memory"},
      ConnectionUnblocked{},
      ConnectionUpdateSecret{"secret", "refresh"},
      ConnectionUpdateSecretOk{},
      ChannelOpen{"oob"},
      ChannelOpenOk{"id"},
      ChannelFlow{false},
      ChannelFlowOk{false},
      ChannelClose{406, "PRECONDITION_FAILED - x", 50, 10},
      ChannelCloseOk{},
      ExchangeDeclare{1, "ex", "topic", true, true, true, true, true, args()},
      ExchangeDeclareOk{},
      ExchangeDelete{2, "ex", true, true},
      ExchangeDeleteOk{},
      ExchangeBind{3, "dst", "src", "rk", true, args()},
      ExchangeBindOk{},
      ExchangeUnbind{4, "dst", "src", "rk", true, args()},
      ExchangeUnbindOk{},
      QueueDeclare{5, "q", true, true, true, true, true, args()},
      QueueDeclareOk{"q", 7, 3},
      QueueBind{6, "q", "ex", "rk", true, args()},
      QueueBindOk{},
      QueuePurge{7, "q", true},
      QueuePurgeOk{12},
      QueueDelete{8, "q", true, true, true},
      QueueDeleteOk{13},
      QueueUnbind{9, "q", "ex", "rk", args()},
      QueueUnbindOk{},
      BasicQos{1024, 256, true},
      BasicQosOk{},
      BasicConsume{10, "q", "tag", true, true, true, true, args()},
      BasicConsumeOk{"tag"},
      BasicCancel{"tag", true},
      BasicCancelOk{"tag"},
      BasicPublish{11, "ex", "rk", true, true},
      BasicReturn{312, "NO_ROUTE", "ex", "rk"},
      BasicDeliver{"tag", 0x0102030405060708, true, "ex", "rk"},
      BasicGet{12, "q", true},
      BasicGetOk{99, true, "ex", "rk", 4},
      BasicGetEmpty{"cluster"},
      BasicAck{5, true},
      BasicReject{6, false},
      BasicRecoverAsync{true},
      BasicRecover{true},
      BasicRecoverOk{},
      BasicNack{7, true, false},
      ConfirmSelect{true},
      ConfirmSelectOk{},
  };
}

TEST(AmqpMethods, EveryMethodIsListedOnce) {
  std::vector<Method> all = every_method();
  ASSERT_EQ(all.size(), std::variant_size_v<Method>);
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(all[i].index(), i) << name_of(all[i]);
}

TEST(AmqpMethods, EveryMethodRoundTrips) {
  for (const Method& m : every_method()) {
    SCOPED_TRACE(std::string(name_of(m)));
    std::string wire = method_payload(m);
    Method back;
    DecodeResult r = decode_method(span_of(wire), back);
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(back.index(), m.index());
    EXPECT_EQ(r.class_id, class_of(m));
    EXPECT_EQ(r.method_id, method_of(m));
    EXPECT_EQ(to_hex(method_payload(back)), to_hex(wire));
    EXPECT_EQ(method_name(class_of(m), method_of(m)), name_of(m));
  }
}

struct Vector {
  Method method;
  std::string bytes;  // the payload per the spec's field layout
};

TEST(AmqpMethods, ExactBytesFromTheSpec) {
  const std::vector<Vector> vectors = {
      // basic.ack: delivery-tag longlong, multiple bit.
      {BasicAck{5, true}, hex_bytes("00 3c 00 50  00 00 00 00 00 00 00 05  01")},
      // basic.nack: bits packed from the low bit: multiple = 1, requeue = 2.
      {BasicNack{7, true, false}, hex_bytes("00 3c 00 78  00 00 00 00 00 00 00 07  01")},
      {BasicNack{7, false, true}, hex_bytes("00 3c 00 78  00 00 00 00 00 00 00 07  02")},
      {BasicReject{9, true}, hex_bytes("00 3c 00 5a  00 00 00 00 00 00 00 09  01")},
      // queue.declare: passive 1, durable 2, exclusive 4, auto-delete 8, no-wait 16.
      {QueueDeclare{0, "q", false, true, false, true, false, {}},
       hex_bytes("00 32 00 0a  00 00  01 'q'  0a  00 00 00 00")},
      {QueueDeclareOk{"q", 7, 3}, hex_bytes("00 32 00 0b  01 'q'  00 00 00 07  00 00 00 03")},
      {ConnectionTuneOk{2047, 131072, 60}, hex_bytes("00 0a 00 1f  07 ff  00 02 00 00  00 3c")},
      {ConnectionOpen{"/", "", false}, hex_bytes("00 0a 00 28  01 '/'  00  00")},
      {ConnectionStartOk{{}, "PLAIN", std::string_view("\0guest\0guest", 12), "en_US"},
       hex_bytes("00 0a 00 0b  00 00 00 00  05 'PLAIN'  00 00 00 0c 00 'guest' 00 'guest'"
                 "  05 'en_US'")},
      {ConnectionClose{200, "bye", 0, 0}, hex_bytes("00 0a 00 32  00 c8  03 'bye'  00 00 00 00")},
      {ChannelOpen{}, hex_bytes("00 14 00 0a  00")},
      {ChannelClose{406, "x", 50, 10}, hex_bytes("00 14 00 28  01 96  01 'x'  00 32 00 0a")},
      {BasicQos{0, 10, false}, hex_bytes("00 3c 00 0a  00 00 00 00  00 0a  00")},
      {BasicConsume{0, "in", "svc-consumer", false, false, false, false, {}},
       hex_bytes("00 3c 00 14  00 00  02 'in'  0c 'svc-consumer'  00  00 00 00 00")},
      {BasicPublish{0, "", "q", true, false}, hex_bytes("00 3c 00 28  00 00  00  01 'q'  01")},
      {BasicDeliver{"c", 1, true, "", "q"},
       hex_bytes("00 3c 00 3c  01 'c'  00 00 00 00 00 00 00 01  01  00  01 'q'")},
      {ConfirmSelect{false}, hex_bytes("00 55 00 0a  00")},
      {ConfirmSelectOk{}, hex_bytes("00 55 00 0b")},
      {ConnectionBlocked{"mem"}, hex_bytes("00 0a 00 3c  03 'mem'")},
      {ChannelOpenOk{}, hex_bytes("00 14 00 0b  00 00 00 00")},
  };
  for (const Vector& v : vectors) {
    SCOPED_TRACE(std::string(name_of(v.method)));
    EXPECT_EQ(to_hex(method_payload(v.method)), to_hex(v.bytes));
    Method back;
    ASSERT_TRUE(decode_method(span_of(v.bytes), back).ok());
    EXPECT_EQ(back.index(), v.method.index());
  }
  Method m;
  std::string deliver =
      hex_bytes("00 3c 00 3c  03 'c-1'  00 00 00 00 00 00 01 00  00  02 'ex'  01 'q'");
  ASSERT_TRUE(decode_method(span_of(deliver), m).ok());
  const auto& d = std::get<BasicDeliver>(m);
  EXPECT_EQ(d.consumer_tag, "c-1");
  EXPECT_EQ(d.delivery_tag, 256u);
  EXPECT_FALSE(d.redelivered);
  EXPECT_EQ(d.exchange, "ex");
  EXPECT_EQ(d.routing_key, "q");
  // Views point into the payload.
  EXPECT_EQ(d.routing_key.data(), deliver.data() + deliver.size() - 1);
}

TEST(AmqpMethods, EveryTruncationIsA502) {
  for (const Method& m : every_method()) {
    SCOPED_TRACE(std::string(name_of(m)));
    std::string wire = method_payload(m);
    for (size_t n = 0; n < wire.size(); ++n) {
      Method back;
      DecodeResult r = decode_method(span_of(wire).subspan(0, n), back);
      ASSERT_EQ(r.status, DecodeStatus::truncated) << "prefix " << n;
      EXPECT_EQ(r.reply_code(), ReplyCode::syntax_error);
    }
  }
  Method back;
  DecodeResult r = decode_method(span_of(hex_bytes("00 32 00 0b 05 'q'")), back);
  EXPECT_EQ(r.describe(), "truncated arguments of queue.declare-ok");
}

TEST(AmqpMethods, TrailingBytesAreA502) {
  for (const Method& m : every_method()) {
    SCOPED_TRACE(std::string(name_of(m)));
    std::string wire = method_payload(m) + std::string(1, '\0');
    Method back;
    DecodeResult r = decode_method(span_of(wire), back);
    EXPECT_EQ(r.status, DecodeStatus::trailing_bytes);
    EXPECT_EQ(r.reply_code(), ReplyCode::syntax_error);
  }
  Method back;
  EXPECT_EQ(decode_method(span_of(hex_bytes("00 55 00 0b 00")), back).describe(),
            "unexpected bytes after the arguments of confirm.select-ok");
}

TEST(AmqpMethods, UnknownMethodIsA540) {
  for (const std::string& wire :
       {hex_bytes("00 3c 00 63"), hex_bytes("00 63 00 0a 00"), hex_bytes("00 5a 00 0a")}) {
    Method back;
    DecodeResult r = decode_method(span_of(wire), back);
    EXPECT_EQ(r.status, DecodeStatus::unknown_method);
    EXPECT_EQ(r.reply_code(), ReplyCode::not_implemented);
  }
  Method back;
  EXPECT_EQ(decode_method(span_of(hex_bytes("00 3c 00 63")), back).describe(),
            "unknown method 60.99");
}

TEST(AmqpMethods, MalformedTableArgumentIsA502) {
  // queue.declare whose arguments hold an unknown type 'Z'.
  std::string wire = hex_bytes("00 32 00 0a  00 00  01 'q'  00  00 00 00 03 01 'a' 'Z'");
  Method back;
  DecodeResult r = decode_method(span_of(wire), back);
  EXPECT_EQ(r.status, DecodeStatus::bad_table);
  EXPECT_EQ(r.reply_code(), ReplyCode::syntax_error);
  EXPECT_EQ(r.table.status, TableStatus::unknown_type);
  EXPECT_EQ(r.describe(),
            "malformed table in queue.declare: unknown field type 'Z' (0x5a) at offset 6");

  // A table whose length runs past the frame is a truncated argument list.
  wire = hex_bytes("00 32 00 0a  00 00  01 'q'  00  00 00 00 09 01 'a' 't' 01");
  EXPECT_EQ(decode_method(span_of(wire), back).status, DecodeStatus::truncated);

  // Too deep inside connection.start's server properties.
  std::string deep;
  for (int i = 0; i < kMaxTableDepth; ++i)
    deep = hex_bytes("01 'n' 'F'") + std::string(3, '\0') + static_cast<char>(deep.size()) + deep;
  auto len = static_cast<char>(deep.size());
  wire = hex_bytes("00 0a 00 0a 00 09 00 00 00") + len + deep +
         hex_bytes("00 00 00 05 'PLAIN' 00 00 00 05 'en_US'");
  r = decode_method(span_of(wire), back);
  EXPECT_EQ(r.status, DecodeStatus::bad_table);
  EXPECT_EQ(r.table.status, TableStatus::too_deep);
}

TEST(AmqpMethods, ContentRules) {
  EXPECT_TRUE(carries_content(60, 40));
  EXPECT_TRUE(carries_content(60, 50));
  EXPECT_TRUE(carries_content(60, 60));
  EXPECT_TRUE(carries_content(60, 71));
  EXPECT_FALSE(carries_content(60, 70));
  EXPECT_FALSE(carries_content(60, 80));
  EXPECT_FALSE(carries_content(10, 40));
}

// ---- content header ----------------------------------------------------------------

TEST(AmqpContentHeader, ExactBytes) {
  BasicProperties p;
  p.set_content_type("text/plain").set_delivery_mode(2);
  std::vector<uint8_t> out;
  ASSERT_TRUE(encode_content_header(5, p, out));
  EXPECT_EQ(to_hex(std::span<const uint8_t>(out)),
            to_hex(hex_bytes("00 3c 00 00  00 00 00 00 00 00 00 05  90 00  0a 'text/plain'  02")));

  ContentHeader h;
  ASSERT_TRUE(decode_content_header(out, h).ok());
  EXPECT_EQ(h.class_id, 60);
  EXPECT_EQ(h.body_size, 5u);
  EXPECT_EQ(h.properties, p);
  EXPECT_EQ(h.properties.content_type, "text/plain");
  EXPECT_FALSE(h.properties.has(BasicProperties::kHeaders));

  // No properties at all.
  out.clear();
  ASSERT_TRUE(encode_content_header(0, {}, out));
  EXPECT_EQ(to_hex(std::span<const uint8_t>(out)),
            to_hex(hex_bytes("00 3c 00 00  00 00 00 00 00 00 00 00  00 00")));
}

BasicProperties every_property() {
  static const std::string headers = hex_bytes("07 'x-retry' 'l' 00 00 00 00 00 00 00 02");
  BasicProperties p;
  p.set_content_type("application/json")
      .set_content_encoding("gzip")
      .set_headers(TableView::trusted(span_of(headers)))
      .set_delivery_mode(2)
      .set_priority(9)
      .set_correlation_id("corr")
      .set_reply_to("amq.rabbitmq.reply-to")
      .set_expiration("60000")
      .set_message_id("msg-1")
      .set_timestamp(1700000000)
      .set_type("t")
      .set_user_id("guest")
      .set_app_id("app")
      .set_cluster_id("c");
  return p;
}

TEST(AmqpContentHeader, EveryPropertyRoundTrips) {
  BasicProperties p = every_property();
  EXPECT_EQ(p.flags, BasicProperties::kAllFlags);
  std::vector<uint8_t> out;
  ASSERT_TRUE(encode_content_header(123456789012ull, p, out));
  ContentHeader h;
  HeaderResult r = decode_content_header(out, h);
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(h.body_size, 123456789012ull);
  EXPECT_EQ(h.properties, p);
  EXPECT_EQ(h.properties.headers.find("x-retry")->as_int(), 2);
  EXPECT_EQ(h.properties.reply_to, "amq.rabbitmq.reply-to");
  EXPECT_EQ(h.properties.timestamp, 1700000000u);

  // Each property alone.
  for (int bit = 2; bit < 16; ++bit) {
    BasicProperties one = p;
    one.flags = static_cast<uint16_t>(1u << bit);
    out.clear();
    ASSERT_TRUE(encode_content_header(1, one, out));
    ASSERT_TRUE(decode_content_header(out, h).ok());
    EXPECT_EQ(h.properties, one) << bit;
  }
}

TEST(AmqpContentHeader, MalformedHeaders) {
  std::vector<uint8_t> out;
  ASSERT_TRUE(encode_content_header(3, every_property(), out));
  ContentHeader h;
  for (size_t n = 0; n < out.size(); ++n) {
    HeaderResult r = decode_content_header(std::span<const uint8_t>(out).subspan(0, n), h);
    EXPECT_EQ(r.status, HeaderStatus::truncated) << n;
  }
  out.push_back(0);
  EXPECT_EQ(decode_content_header(out, h).status, HeaderStatus::trailing_bytes);

  // Continuation bit and the unused bit 1.
  for (const char* flags : {"00 01", "00 02", "80 01"}) {
    std::string wire =
        hex_bytes("00 3c 00 00  00 00 00 00 00 00 00 00") + hex_bytes(flags) + hex_bytes("00 00");
    HeaderResult r = decode_content_header(span_of(wire), h);
    EXPECT_EQ(r.status, HeaderStatus::bad_flags) << flags;
  }
  std::string wire = hex_bytes("00 3c 00 00  00 00 00 00 00 00 00 00  00 01");
  EXPECT_EQ(decode_content_header(span_of(wire), h).describe(),
            "content header property flags 0x0001 set reserved bits");

  wire = hex_bytes("00 3c 00 01  00 00 00 00 00 00 00 00  00 00");
  EXPECT_EQ(decode_content_header(span_of(wire), h).status, HeaderStatus::bad_weight);

  wire = hex_bytes("00 3c 00 00  00 00 00 00 00 00 00 00  20 00  00 00 00 03 01 'a' 'Z'");
  HeaderResult r = decode_content_header(span_of(wire), h);
  EXPECT_EQ(r.status, HeaderStatus::bad_table);
  EXPECT_EQ(r.table.status, TableStatus::unknown_type);
}

TEST(AmqpEncode, OverlongShortStringsAreRefused) {
  std::string big(256, 'x');
  std::vector<uint8_t> out;
  EXPECT_FALSE(encode_method(BasicPublish{0, "", big, false, false}, out));
  out.clear();
  EXPECT_TRUE(encode_method(BasicPublish{0, "", big.substr(0, 255), false, false}, out));
  BasicProperties p;
  p.set_message_id(big);
  out.clear();
  EXPECT_FALSE(encode_content_header(0, p, out));
}

// ---- reply codes and errors -----------------------------------------------------------

TEST(AmqpReply, NamesTextsAndClasses) {
  struct Row {
    uint16_t code;
    const char* name;
    bool hard;
  };
  for (const Row& r : {Row{200, "REPLY_SUCCESS", false}, Row{311, "CONTENT_TOO_LARGE", false},
                       Row{312, "NO_ROUTE", false}, Row{313, "NO_CONSUMERS", false},
                       Row{320, "CONNECTION_FORCED", true}, Row{402, "INVALID_PATH", true},
                       Row{403, "ACCESS_REFUSED", false}, Row{404, "NOT_FOUND", false},
                       Row{405, "RESOURCE_LOCKED", false}, Row{406, "PRECONDITION_FAILED", false},
                       Row{501, "FRAME_ERROR", true}, Row{502, "SYNTAX_ERROR", true},
                       Row{503, "COMMAND_INVALID", true}, Row{504, "CHANNEL_ERROR", true},
                       Row{505, "UNEXPECTED_FRAME", true}, Row{506, "RESOURCE_ERROR", true},
                       Row{530, "NOT_ALLOWED", true}, Row{540, "NOT_IMPLEMENTED", true},
                       Row{541, "INTERNAL_ERROR", true}}) {
    EXPECT_EQ(reply_name(r.code), r.name);
    EXPECT_FALSE(reply_text(r.code).empty()) << r.code;
    EXPECT_EQ(is_hard_error(r.code), r.hard) << r.code;
  }
  EXPECT_EQ(reply_name(999), "UNKNOWN");
  EXPECT_TRUE(reply_text(999).empty());
  EXPECT_TRUE(is_hard_error(599));
  EXPECT_FALSE(is_hard_error(399));
}

TEST(AmqpReply, Describe) {
  AmqpError e(ReplyCode::precondition_failed,
              "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'x'",
              AmqpError::Origin::broker, AmqpError::Scope::channel, 1, 50, 10);
  EXPECT_EQ(e.describe(),
            "channel 1 closed by broker: 406 PRECONDITION_FAILED - inequivalent arg 'durable' "
            "for queue 'x' (queue.declare)");
  // A text without the name gets it.
  e.text = "inequivalent arg 'durable' for queue 'x'";
  EXPECT_EQ(e.describe(),
            "channel 1 closed by broker: 406 PRECONDITION_FAILED - inequivalent arg 'durable' "
            "for queue 'x' (queue.declare)");
  AmqpError nf(404, "NOT_FOUND - no queue 'missing' in vhost '/'", AmqpError::Origin::broker,
               AmqpError::Scope::channel, 3, 60, 20);
  EXPECT_EQ(nf.describe(),
            "channel 3 closed by broker: 404 NOT_FOUND - no queue 'missing' in vhost '/' "
            "(basic.consume)");
  AmqpError fe(ReplyCode::frame_error, "frame-end octet 0x00, expected 0xce");
  EXPECT_EQ(fe.describe(),
            "connection closed by client: 501 FRAME_ERROR - frame-end octet 0x00, expected 0xce");
  AmqpError forced(320,
                   "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
                   AmqpError::Origin::broker);
  EXPECT_EQ(forced.describe(),
            "connection closed by broker: 320 CONNECTION_FORCED - broker forced connection "
            "closure with reason 'shutdown'");
  AmqpError lost(0, "no data from the broker for 120000 ms", AmqpError::Origin::local);
  EXPECT_EQ(lost.describe(), "connection lost: no data from the broker for 120000 ms");
  AmqpError odd(777, "", AmqpError::Origin::broker, AmqpError::Scope::connection, 0, 99, 1);
  EXPECT_EQ(odd.describe(), "connection closed by broker: 777 UNKNOWN (method 99.1)");
  AmqpError ok(200, "", AmqpError::Origin::client);
  EXPECT_EQ(ok.describe(), "connection closed by client: 200 REPLY_SUCCESS");
}

}  // namespace
}  // namespace ember::amqp
