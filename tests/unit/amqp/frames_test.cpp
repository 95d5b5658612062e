// Framing: parse_frame, FrameReader over every chunking of each stream
// (content assembly, zero-copy bodies, gathered bodies), every framing
// violation with its exact reply code, and FrameWriter's bytes and iovecs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocols/amqp/frames.hpp"
#include "tests/unit/amqp/amqp_test_util.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::amqp {
namespace {

using test::content_event;
using test::content_frames;
using test::expect_every_split;
using test::frame;
using test::header_payload;
using test::heartbeat_frame;
using test::hex_bytes;
using test::method_event;
using test::method_frame;
using test::method_payload;
using test::ReplayOutcome;
using test::to_hex;

std::span<const uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// connection.start as RabbitMQ 3.10.8 (Erlang/OTP 25.2.3) sent it on this
// machine, recorded from the socket.
const std::string kRabbitStart = hex_bytes(
    "010000000001f0000a000a0009000001cb0c6361706162696c697469657346000000c7127075626c69736865725f63"
    "6f"
    "6e6669726d7374011a65786368616e67655f65786368616e67655f62696e64696e677374010a62617369632e6e6163"
    "6b"
    "740116636f6e73756d65725f63616e63656c5f6e6f74696679740112636f6e6e656374696f6e2e626c6f636b656474"
    "01"
    "13636f6e73756d65725f7072696f72697469657374011c61757468656e7469636174696f6e5f6661696c7572655f63"
    "6c"
    "6f73657401107065725f636f6e73756d65725f716f7374010f6469726563745f7265706c795f746f74010c636c7573"
    "74"
    "65725f6e616d655300000009726d7163617040766d09636f707972696768745300000037436f707972696768742028"
    "63"
    "2920323030372d3230323220564d776172652c20496e632e206f722069747320616666696c69617465732e0b696e66"
    "6f"
    "726d6174696f6e53000000394c6963656e73656420756e64657220746865204d504c20322e302e2057656273697465"
    "3a"
    "2068747470733a2f2f7261626269746d712e636f6d08706c6174666f726d530000001145726c616e672f4f54502032"
    "35"
    "2e322e330770726f6475637453000000085261626269744d510776657273696f6e5300000006332e31302e38000000"
    "0e"
    "504c41494e20414d51504c41494e00000005656e5f5553ce");

// ---- parse_frame ---------------------------------------------------------------------

TEST(AmqpFrame, ParseOne) {
  std::string wire = frame(1, 7, "abcd") + "rest";
  Frame f;
  FrameParse p = parse_frame(span_of(wire), 4096, f);
  ASSERT_EQ(p.status, ParseStatus::complete);
  EXPECT_EQ(p.consumed, 12u);
  EXPECT_EQ(f.type, 1);
  EXPECT_EQ(f.channel, 7);
  EXPECT_EQ(Reader::as_view(f.payload), "abcd");
  EXPECT_EQ(f.payload.data(), span_of(wire).data() + 7);

  for (size_t n = 0; n < 12; ++n) {
    FrameParse q = parse_frame(span_of(wire).subspan(0, n), 4096, f);
    EXPECT_EQ(q.status, ParseStatus::need_more) << n;
    EXPECT_EQ(q.needed, n < 7 ? 7u : 12u) << n;
  }

  std::string bad = frame(1, 0, "abcd");
  bad.back() = 0;
  EXPECT_EQ(parse_frame(span_of(bad), 4096, f).status, ParseStatus::error);
  EXPECT_EQ(parse_frame(span_of(bad), 4096, f).code, ReplyCode::frame_error);
  EXPECT_EQ(parse_frame(span_of(frame(4, 0, "")), 4096, f).code, ReplyCode::frame_error);
  // frame_max counts the 8 bytes around the payload.
  EXPECT_EQ(parse_frame(span_of(frame(3, 1, std::string(4088, 'x'))), 4096, f).status,
            ParseStatus::complete);
  EXPECT_EQ(parse_frame(span_of(frame(3, 1, std::string(4089, 'x'))), 4096, f).status,
            ParseStatus::error);
  EXPECT_EQ(parse_frame(span_of(frame(3, 1, std::string(4089, 'x'))), 0, f).status,
            ParseStatus::complete);
}

// ---- FrameReader: good streams in every chunking ----------------------------------------

TEST(AmqpFrameReader, RecordedRabbitMqStart) {
  ReplayOutcome o = expect_every_split(
      kRabbitStart,
      {"M0 connection.start " + to_hex(std::string_view(kRabbitStart).substr(7, 0x1f0))});
  (void)o;
  // Decode once more and look inside.
  FrameReader reader;
  struct : FrameHandler {
    void on_method(uint16_t, const Method& m) override {
      const auto& s = std::get<ConnectionStart>(m);
      EXPECT_EQ(s.version_major, 0);
      EXPECT_EQ(s.version_minor, 9);
      EXPECT_EQ(s.mechanisms, "PLAIN AMQPLAIN");
      EXPECT_EQ(s.locales, "en_US");
      TableView p = s.server_properties;
      EXPECT_EQ(p.find("product")->as_string(), "RabbitMQ");
      EXPECT_EQ(p.find("version")->as_string(), "3.10.8");
      EXPECT_EQ(p.find("platform")->as_string(), "Erlang/OTP 25.2.3");
      TableView caps = p.find("capabilities")->as_table();
      EXPECT_EQ(caps.size(), 9u);
      for (const char* c :
           {"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
            "consumer_cancel_notify", "connection.blocked", "authentication_failure_close",
            "per_consumer_qos", "direct_reply_to", "consumer_priorities"})
        EXPECT_TRUE(caps.find(c)->as_bool()) << c;
      ++seen;
    }
    void on_content(const Content&) override { ADD_FAILURE(); }
    int seen = 0;
  } h;
  ASSERT_TRUE(reader.feed(Bytes::copy(kRabbitStart), h));
  EXPECT_EQ(h.seen, 1);
}

TEST(AmqpFrameReader, MethodsContentsAndHeartbeats) {
  BasicProperties props;
  props.set_content_type("text/plain").set_delivery_mode(2).set_message_id("m-1");
  BasicDeliver d1{"svc-consumer", 1, false, "", "in"};
  BasicDeliver d2{"svc-consumer", 2, true, "", "in"};
  BasicReturn ret{312, "NO_ROUTE", "", "nowhere"};
  std::string wire = method_frame(0, ConnectionTune{2047, 131072, 60}) +
                     method_frame(1, ChannelOpenOk{}) + heartbeat_frame() +
                     content_frames(1, d1, "42", props) +
                     method_frame(1, BasicAck{7, true}) +       // a confirm
                     content_frames(1, d2, "", {}) +            // empty body: no body frame
                     content_frames(2, ret, "returned body") +  //
                     method_frame(1, BasicNack{8, false, false});
  expect_every_split(wire, {
                               method_event(0, ConnectionTune{2047, 131072, 60}),
                               method_event(1, ChannelOpenOk{}),
                               "H",
                               content_event(1, d1, "42", props),
                               method_event(1, BasicAck{7, true}),
                               content_event(1, d2, ""),
                               content_event(2, ret, "returned body"),
                               method_event(1, BasicNack{8, false, false}),
                           });
}

TEST(AmqpFrameReader, BodyInOneFrameIsASliceOfTheInput) {
  BasicDeliver d{"c", 1, false, "", "q"};
  std::string wire = content_frames(1, d, "hello world");
  const size_t body_at = wire.size() - 1 - 11;  // before the frame end
  Bytes input = Bytes::copy(wire);
  for (const ember::test::Split& split : ember::test::all_splits(input)) {
    SCOPED_TRACE(split.name);
    ReplayOutcome o = test::replay(split.chunks);
    ASSERT_EQ(o.bodies.size(), 1u);
    const Bytes& body = o.bodies[0];
    EXPECT_EQ(body.view(), "hello world");
    // Zero copy exactly when the body frame's payload lies in one chunk.
    size_t start = 0;
    bool one_chunk = false;
    for (const Bytes& c : split.chunks) {
      size_t end = start + c.size();
      if (body_at >= start && body_at + 11 <= end) one_chunk = true;
      start = end;
    }
    if (one_chunk) {
      EXPECT_EQ(body.data(), input.data() + body_at);
      EXPECT_EQ(body.storage(), input.storage());
    } else {
      EXPECT_FALSE(ember::test::points_into(input, body.data(), body.size()));
    }
  }
}

TEST(AmqpFrameReader, BodySpreadOverManyFramesIsGatheredOnce) {
  // frame_max 64: 56-byte body frames. 1000 bytes -> 18 frames.
  std::string body = ember::test::random_bytes(1000, 7);
  BasicDeliver d{"c", 3, false, "ex", "rk"};
  FrameReaderOptions opts;
  opts.frame_max = 64;
  std::string wire = content_frames(1, d, body, {}, 64) + heartbeat_frame();
  ReplayOutcome o = expect_every_split(wire, {content_event(1, d, body), "H"}, 0, opts);
  ASSERT_EQ(o.bodies.size(), 1u);
  Bytes input = Bytes::copy(wire);
  EXPECT_FALSE(ember::test::points_into(input, o.bodies[0].data()));

  // With a pool, the gathered body comes from it.
  BufferPool pool;
  opts.pool = &pool;
  ReplayOutcome p = test::replay({input}, opts);
  ASSERT_EQ(p.bodies.size(), 1u);
  EXPECT_EQ(p.bodies[0].view(), body);
  EXPECT_EQ(pool.stats().misses + pool.stats().hits, 1u);
}

TEST(AmqpFrameReader, InterleavedChannelsAssembleSeparately) {
  // The spec allows frames of different channels between content frames.
  BasicDeliver a{"a", 1, false, "", "qa"};
  BasicDeliver b{"b", 1, false, "", "qb"};
  std::string wire = method_frame(1, a) + method_frame(2, b) + frame(2, 1, header_payload(6)) +
                     frame(2, 2, header_payload(3)) + frame(3, 1, "abc") + frame(3, 2, "xyz") +
                     heartbeat_frame() + frame(3, 1, "def");
  expect_every_split(wire, {content_event(2, b, "xyz"), "H", content_event(1, a, "abcdef")});
}

TEST(AmqpFrameReader, OversizeBodiesAreSkipped) {
  FrameReaderOptions opts;
  opts.frame_max = 64;
  opts.max_body_size = 100;
  BasicDeliver d{"c", 1, false, "", "q"};
  std::string at_limit(100, 'a');
  std::string past(101, 'b');
  std::string wire = content_frames(1, d, at_limit, {}, 64) + content_frames(1, d, past, {}, 64) +
                     content_frames(1, d, "ok", {}, 64);
  std::string dropped = "C1 basic.deliver " + to_hex(method_payload(d)) + " " +
                        to_hex(header_payload(101)) + " dropped";
  expect_every_split(wire, {content_event(1, d, at_limit), dropped, content_event(1, d, "ok")}, 0,
                     opts);
}

TEST(AmqpFrameReader, FrameMaxAtTheLimitAndOnePast) {
  FrameReaderOptions opts;
  opts.frame_max = 4096;
  BasicDeliver d{"c", 1, false, "", "q"};
  std::string body(4088, 'z');
  std::string wire = content_frames(1, d, body, {}, 4096);
  ReplayOutcome o = test::replay({Bytes::copy(wire)}, opts);
  EXPECT_EQ(o.error_code, 0) << o.error_text;
  ASSERT_EQ(o.bodies.size(), 1u);

  wire = method_frame(1, d) + frame(2, 1, header_payload(4089)) + frame(3, 1, body + "z");
  o = test::replay({Bytes::copy(wire)}, opts);
  EXPECT_EQ(o.error_code, 501);
  EXPECT_EQ(o.error_text, "frame of 4097 bytes exceeds frame_max 4096");

  // Raising frame_max (after connection.tune) applies to the next frame.
  FrameReader reader(opts);
  test::Recorder rec;
  ASSERT_TRUE(
      reader.feed(Bytes::copy(method_frame(1, d) + frame(2, 1, header_payload(4089))), rec));
  reader.set_frame_max(8192);
  EXPECT_TRUE(reader.feed(Bytes::copy(frame(3, 1, body + "z")), rec));
  EXPECT_EQ(rec.events.size(), 1u);
}

// ---- FrameReader: every violation, with its code ------------------------------------------

struct Bad {
  const char* name;
  std::string wire;
  uint16_t code;
  std::string text;  // empty: not checked
};

TEST(AmqpFrameReader, MalformedStreamsFailWithTheRightCode) {
  BasicDeliver d{"c", 1, false, "", "q"};
  std::string deliver = method_frame(1, d);
  std::string ok_frame = method_frame(1, ChannelOpenOk{});
  std::string bad_end = frame(1, 1, method_payload(BasicAck{1, false}));
  bad_end.back() = 0x00;
  std::string hb_payload = frame(8, 0, "x");
  std::vector<Bad> cases = {
      {"bad frame end", ok_frame + bad_end, 501, "frame-end octet 0x00, expected 0xce"},
      {"unknown frame type 4", ok_frame + frame(4, 1, ""), 501, "unknown frame type 4"},
      {"unknown frame type 0", frame(0, 0, "abc"), 501, "unknown frame type 0"},
      {"frame type 9", frame(9, 0, ""), 501, "unknown frame type 9"},
      {"protocol header reply", hex_bytes("'AMQP' 00 00 09 01"), 501,
       "the broker answered with a protocol header: it does not support AMQP 0-9-1"},
      {"oversize frame", hex_bytes("01 00 01 00 01 ff f9"), 501,
       "frame of 131073 bytes exceeds frame_max 131072"},
      {"heartbeat on channel 1", frame(8, 1, ""), 501, "heartbeat frame on channel 1"},
      {"heartbeat with payload", hb_payload, 501, "heartbeat frame with a payload of 1 bytes"},
      {"method frame too short", frame(1, 1, hex_bytes("00 3c 00")), 502,
       "method frame of 3 bytes on channel 1 is too short"},
      {"truncated method args", frame(1, 1, hex_bytes("00 3c 00 50 00 00 00 00 00 00 00 01")), 502,
       "truncated arguments of basic.ack"},
      {"trailing method bytes", frame(1, 1, hex_bytes("00 14 00 29 00")), 502,
       "unexpected bytes after the arguments of channel.close-ok"},
      {"bad table type",
       frame(1, 1, hex_bytes("00 32 00 0b 01 'q' 00 00 00 00 00 00 00 00")) +
           frame(1, 1, hex_bytes("00 3c 00 15 01 'c'")) +
           frame(1, 1, hex_bytes("00 32 00 0a 00 00 01 'q' 00 00 00 00 03 01 'a' 'Z'")),
       502, "malformed table in queue.declare: unknown field type 'Z' (0x5a) at offset 6"},
      {"truncated deliver", frame(1, 1, hex_bytes("00 3c 00 3c 05 'c'")), 502,
       "truncated arguments of basic.deliver"},
      {"unknown method", frame(1, 1, hex_bytes("00 3c 00 63")), 540, "unknown method 60.99"},
      {"unknown class", frame(1, 1, hex_bytes("00 5a 00 0a")), 540, "unknown method 90.10"},
      {"header without method", frame(2, 1, header_payload(1)), 505,
       "content header frame on channel 1 without a content-bearing method"},
      {"header after a non-content method", ok_frame + frame(2, 1, header_payload(1)), 505, ""},
      {"body without anything", frame(3, 1, "x"), 505,
       "content body frame on channel 1 without a content header"},
      {"body before header", deliver + frame(3, 1, "x"), 505,
       "content body frame on channel 1 without a content header"},
      {"body after complete content", content_frames(1, d, "ab") + frame(3, 1, "c"), 505, ""},
      {"body on another channel", deliver + frame(2, 1, header_payload(2)) + frame(3, 2, "ab"), 505,
       "content body frame on channel 2 without a content header"},
      {"body longer than declared",
       deliver + frame(2, 1, header_payload(3)) + frame(3, 1, "ab") + frame(3, 1, "cd"), 505,
       "content body on channel 1 exceeds its declared size of 3 bytes"},
      {"body frame longer than declared",
       deliver + frame(2, 1, header_payload(3)) + frame(3, 1, "abcd"), 505, ""},
      {"method while header expected", deliver + ok_frame, 505,
       "channel.open-ok on channel 1 while a content was expected (content header)"},
      {"method while body expected", deliver + frame(2, 1, header_payload(3)) + ok_frame, 505,
       "channel.open-ok on channel 1 while a content was expected (content body)"},
      {"content method while body expected",
       deliver + frame(2, 1, header_payload(3)) + frame(3, 1, "a") + deliver, 505, ""},
      {"heartbeat between content frames, then a method", deliver + heartbeat_frame() + ok_frame,
       505, ""},
      {"header class mismatch",
       deliver + frame(2, 1, hex_bytes("00 32 00 00 00 00 00 00 00 00 00 01 00 00")), 505,
       "content header of class 50 after basic.deliver on channel 1"},
      {"header weight",
       deliver + frame(2, 1, hex_bytes("00 3c 00 01 00 00 00 00 00 00 00 01 00 00")), 502,
       "content header weight is not zero"},
      {"header truncated", deliver + frame(2, 1, hex_bytes("00 3c 00 00 00 00 00")), 502,
       "truncated content header"},
      {"header bad flags",
       deliver + frame(2, 1, hex_bytes("00 3c 00 00 00 00 00 00 00 00 00 01 00 01")), 502,
       "content header property flags 0x0001 set reserved bits"},
      {"header bad table",
       deliver +
           frame(2, 1,
                 hex_bytes("00 3c 00 00 00 00 00 00 00 00 00 01 20 00 00 00 00 03 01 'a' 'Z'")),
       502, "malformed headers table in content header: unknown field type 'Z' (0x5a) at offset 6"},
      {"connection method on channel 1", method_frame(1, ConnectionBlocked{"x"}), 503,
       "connection.blocked on channel 1 (connection methods belong on channel 0)"},
      {"channel method on channel 0", method_frame(0, ChannelOpenOk{}), 504,
       "channel.open-ok on channel 0"},
      {"basic method on channel 0", method_frame(0, BasicAck{1, false}), 504,
       "basic.ack on channel 0"},
      {"channel above channel_max", method_frame(2048, ChannelOpenOk{}), 504,
       "channel.open-ok on channel 2048 above channel_max 2047"},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes input = Bytes::copy(c.wire);
    for (const ember::test::Split& split : ember::test::all_splits(input)) {
      ReplayOutcome o = test::replay(split.chunks);
      ASSERT_EQ(o.error_code, c.code) << split.name << ": " << o.error_text;
      if (!c.text.empty()) {
        ASSERT_EQ(o.error_text, c.text) << split.name;
      }
    }
  }
}

TEST(AmqpFrameReader, ChannelMaxAtTheLimit) {
  FrameReaderOptions opts;
  opts.channel_max = 5;
  EXPECT_EQ(test::replay({Bytes::copy(method_frame(5, ChannelOpenOk{}))}, opts).error_code, 0);
  EXPECT_EQ(test::replay({Bytes::copy(method_frame(6, ChannelOpenOk{}))}, opts).error_code, 504);
}

TEST(AmqpFrameReader, InputAfterAnErrorIsIgnored) {
  FrameReader reader;
  test::Recorder rec;
  Status st = reader.feed(Bytes::copy(frame(9, 0, "")), rec);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, 501);
  EXPECT_EQ(st.error().origin, AmqpError::Origin::client);
  EXPECT_TRUE(reader.failed());
  EXPECT_TRUE(reader.feed(Bytes::copy(heartbeat_frame()), rec));
  EXPECT_TRUE(rec.events.empty());
}

TEST(AmqpFrameReader, ErrorsCarryTheFailingMethod) {
  FrameReader reader;
  test::Recorder rec;
  Status st = reader.feed(Bytes::copy(frame(1, 1, hex_bytes("00 32 00 0b 01"))), rec);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().class_id, 50);
  EXPECT_EQ(st.error().method_id, 11);
  EXPECT_EQ(st.error().channel, 1);
  EXPECT_EQ(st.error().describe(),
            "connection closed by client: 502 SYNTAX_ERROR - truncated arguments of "
            "queue.declare-ok (queue.declare-ok)");
}

TEST(AmqpFrameReader, IdleAndResetChannel) {
  FrameReader reader;
  test::Recorder rec;
  EXPECT_TRUE(reader.idle());
  BasicDeliver d{"c", 1, false, "", "q"};
  ASSERT_TRUE(reader.feed(Bytes::copy(method_frame(1, d)), rec));
  EXPECT_FALSE(reader.idle());
  reader.reset_channel(1);
  EXPECT_TRUE(reader.idle());
  // The channel takes a fresh content now.
  ASSERT_TRUE(reader.feed(Bytes::copy(content_frames(1, d, "x")), rec));
  EXPECT_EQ(rec.events, std::vector<std::string>{content_event(1, d, "x")});
  ASSERT_TRUE(reader.feed(Bytes::copy(heartbeat_frame().substr(0, 3)), rec));
  EXPECT_FALSE(reader.idle());
}

// ---- FrameWriter ---------------------------------------------------------------------

TEST(AmqpFrameWriter, FixedFrames) {
  IoChain out;
  IoChainSink sink(out);
  FrameWriter::protocol_header(sink);
  FrameWriter::heartbeat(sink);
  EXPECT_EQ(to_hex(ember::test::flatten(out)),
            to_hex(hex_bytes("'AMQP' 00 00 09 01   08 00 00 00 00 00 00 ce")));
}

TEST(AmqpFrameWriter, MethodFrameExactBytes) {
  IoChain out;
  FrameWriter w;
  ASSERT_TRUE(w.method(out, 1, BasicAck{5, true}));
  ASSERT_TRUE(w.method(out, 0, ConnectionCloseOk{}));
  EXPECT_EQ(to_hex(ember::test::flatten(out)),
            to_hex(hex_bytes("01 00 01 00 00 00 0d  00 3c 00 50 00 00 00 00 00 00 00 05 01  ce"
                             "01 00 00 00 00 00 04  00 0a 00 33  ce")));
  EXPECT_EQ(out.iov_count(), 1u);  // coalesced in the cork
}

TEST(AmqpFrameWriter, PublishReferencesTheBody) {
  std::string text(2000, 'p');
  Bytes body = Bytes::copy(text);
  BasicProperties props;
  props.set_delivery_mode(2);
  BasicPublish m{0, "", "out", false, false};
  IoChain out;
  FrameWriter w;
  ASSERT_TRUE(w.publish(out, 1, m, props, body));
  EXPECT_EQ(ember::test::flatten(out), content_frames(1, m, text, props));
  // [method + header + body frame header] [body] [frame end]
  ASSERT_EQ(out.iov_count(), 3u);
  EXPECT_EQ(out.iov()[1].iov_base, body.data());
  EXPECT_EQ(out.iov()[1].iov_len, 2000u);

  // Split into frames of frame_max - 8, each piece a reference.
  IoChain small;
  w.set_frame_max(4096);
  std::string big_text = ember::test::random_bytes(10000, 3);
  Bytes big = Bytes::copy(big_text);
  ASSERT_TRUE(w.publish(small, 1, m, props, big));
  EXPECT_EQ(ember::test::flatten(small), content_frames(1, m, big_text, props, 4096));
  size_t referenced = 0;
  for (size_t i = 0; i < small.iov_count(); ++i)
    if (ember::test::points_into(big, small.iov()[i].iov_base, small.iov()[i].iov_len))
      referenced += small.iov()[i].iov_len;
  EXPECT_EQ(referenced, 10000u);
}

TEST(AmqpFrameWriter, SmallBodiesAreCopiedAndBatchesCoalesce) {
  FrameWriter w;
  IoChain out;
  std::string expected;
  std::vector<Bytes> bodies;
  for (int i = 0; i < 100; ++i) {
    bodies.push_back(Bytes::copy(std::to_string(1000000 + i)));
    BasicPublish m{0, "", "out", false, false};
    ASSERT_TRUE(w.publish(out, 1, m, {}, bodies.back()));
    expected += content_frames(1, m, bodies.back().view());
  }
  EXPECT_EQ(ember::test::flatten(out), expected);
  EXPECT_EQ(out.iov_count(), 1u);  // 100 publishes, one iovec

  // At the threshold copied, one past referenced.
  w.set_copy_threshold(4);
  IoChain two;
  ASSERT_TRUE(w.publish(two, 1, {}, {}, Bytes::copy("abcd")));
  EXPECT_EQ(two.iov_count(), 1u);
  Bytes five = Bytes::copy("abcde");
  ASSERT_TRUE(w.publish(two, 1, {}, {}, five));
  EXPECT_EQ(two.iov_count(), 3u);
  EXPECT_EQ(two.iov()[1].iov_base, five.data());
}

TEST(AmqpFrameWriter, EncodingErrorsAppendNothing) {
  FrameWriter w(4096);
  IoChain out;
  std::string big(256, 'k');
  Status st = w.publish(out, 1, BasicPublish{0, "", big, false, false}, {}, Bytes::copy("x"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, 0);
  EXPECT_EQ(st.error().text,
            "cannot encode basic.publish: a short string argument is longer "
            "than 255 bytes");
  EXPECT_TRUE(out.empty());

  BasicProperties p;
  p.set_message_id(big);
  st = w.publish(out, 1, BasicPublish{}, p, Bytes::copy("x"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().text,
            "cannot encode basic.publish: a short string property is longer than 255 bytes");

  // A headers table that cannot fit one header frame.
  std::string huge = hex_bytes("01 'h' 'S' 00 00 10 00") + std::string(4096, 'v');
  p = BasicProperties();
  p.set_headers(TableView::trusted(span_of(huge)));
  st = w.publish(out, 1, BasicPublish{}, p, Bytes::copy("x"));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().text, "cannot encode basic.publish: the content header exceeds frame_max");
  st = w.method(out, 0, ConnectionStartOk{TableView::trusted(span_of(huge)), "PLAIN", "", ""});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().text, "cannot encode connection.start-ok: the frame exceeds frame_max");
  EXPECT_TRUE(out.empty());

  // A frame of exactly frame_max is fine; one byte more is not.
  std::string fits(4096 - 8 - 4 - 4, 'r');  // payload: ids, u32 length, the string
  EXPECT_TRUE(w.method(out, 1, ChannelOpenOk{fits}));
  EXPECT_EQ(out.size(), 4096u);
  fits += 'r';
  EXPECT_FALSE(w.method(out, 1, ChannelOpenOk{fits}));
  EXPECT_EQ(out.size(), 4096u);
}

TEST(AmqpFrameWriter, WriterToReaderRoundTrip) {
  FrameWriter w(4096);
  IoChain out;
  BasicProperties p;
  static const std::string headers = hex_bytes("05 'retry' 'I' 00 00 00 03");
  p.set_headers(TableView::trusted(span_of(headers))).set_correlation_id("c-9");
  std::string body = ember::test::random_bytes(9000, 11);
  BasicReturn r{312, "NO_ROUTE", "ex", "rk"};
  ASSERT_TRUE(w.content(out, 3, r, p, Bytes::copy(body)));
  ASSERT_TRUE(w.method(out, 3, BasicAck{4, false}));
  FrameReaderOptions opts;
  opts.frame_max = 4096;
  expect_every_split(ember::test::flatten(out),
                     {content_event(3, r, body, p), method_event(3, BasicAck{4, false})}, 0, opts);
}

}  // namespace
}  // namespace ember::amqp
