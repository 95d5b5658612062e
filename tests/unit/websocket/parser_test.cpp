// websocket::Parser: valid vectors, hostile input with its exact close code,
// limits, zero copy and buffer reuse. Every vector is replayed in many
// chunkings (see ws_test_util.hpp); results must not depend on the cut.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "protocols/websocket/frame.hpp"
#include "tests/unit/test_util.hpp"
#include "tests/unit/websocket/ws_test_util.hpp"

namespace ember::websocket {
namespace {

using namespace test;  // NOLINT: the helpers of ws_test_util.hpp
using ember::test::random_bytes;

std::string bytes(std::initializer_list<uint8_t> b) {
  return std::string(b.begin(), b.end());
}

// ---- RFC 6455 §5.7 examples --------------------------------------------------

TEST(WsParser, RfcSingleFrameUnmaskedText) {
  expect_every_split(Role::client, bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}),
                     {"text:Hello"});
}

TEST(WsParser, RfcSingleFrameMaskedText) {
  expect_every_split(Role::server,
                     bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
                     {"text:Hello"});
}

TEST(WsParser, RfcFragmentedUnmaskedText) {
  expect_every_split(Role::client, bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}),
                     {"text:Hello"});
}

TEST(WsParser, RfcPingAndMaskedPong) {
  expect_every_split(Role::client, bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}),
                     {"ping:Hello"});
  expect_every_split(Role::server,
                     bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}),
                     {"pong:Hello"});
}

TEST(WsParser, RfcBinary256And64KiB) {
  std::string p256 = random_bytes(256, 1);
  expect_every_split(Role::client, bytes({0x82, 0x7E, 0x01, 0x00}) + p256,
                     {describe("binary", p256)});
  std::string p64k = random_bytes(65536, 2);
  expect_every_split(Role::client, bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}) + p64k,
                     {describe("binary", p64k)});
}

// ---- every length class, both roles --------------------------------------------

class WsLengthClass : public ::testing::TestWithParam<size_t> {};

TEST_P(WsLengthClass, BinaryAndTextEveryRole) {
  size_t n = GetParam();
  std::string bin = random_bytes(n, static_cast<uint32_t>(n));
  std::string text(n, 'a');
  for (size_t i = 0; i < n; ++i)
    text[i] = static_cast<char>('a' + i % 26);
  for (Role role : {Role::server, Role::client}) {
    bool masked = role == Role::server;
    expect_every_split(role, frame(kFin | kBin, bin, masked), {describe("binary", bin)});
    expect_every_split(role, frame(kFin | kText, text, masked), {describe("text", text)});
  }
}

INSTANTIATE_TEST_SUITE_P(Lengths, WsLengthClass,
                         ::testing::Values(0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70000));

// ---- fragmentation and control frames --------------------------------------------

TEST(WsParser, FragmentsWithInterleavedControlFrames) {
  std::string wire = frame(kText, "frag") + frame(kFin | kPing, "p1") + frame(kCont, "ment") +
                     frame(kFin | kPong, "") + frame(kFin | kPing, random_bytes(125, 3)) +
                     frame(kFin | kCont, "ed!") + frame(kFin | kBin, "next");
  expect_every_split(Role::server, wire,
                     {"ping:p1", "pong:", describe("ping", random_bytes(125, 3)),
                      "text:fragmented!", "binary:next"});
}

TEST(WsParser, EmptyFragmentsAndEmptyMessages) {
  std::string wire = frame(kText, "") + frame(kCont, "") + frame(kFin | kCont, "") +
                     frame(kFin | kBin, "") + frame(kBin, "") + frame(kFin | kCont, "x");
  expect_every_split(Role::server, wire, {"text:", "binary:", "binary:x"});
}

TEST(WsParser, Utf8SplitAcrossFragments) {
  // "κόσμε" with fragment boundaries inside its two-byte characters, and a
  // four-byte character (U+1F600) cut 1|3 and 3|1.
  std::string s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
  std::string emoji = "\xf0\x9f\x98\x80";
  std::string wire = frame(kText, s.substr(0, 1)) + frame(kCont, s.substr(1, 4)) +
                     frame(kFin | kCont, s.substr(5)) + frame(kText, emoji.substr(0, 1)) +
                     frame(kCont, emoji.substr(1, 2)) + frame(kFin | kCont, emoji.substr(3));
  expect_every_split(Role::server, wire, {"text:" + s, "text:" + emoji});
}

TEST(WsParser, ManyMessagesInOneInput) {
  std::string wire;
  std::vector<std::string> events;
  for (int i = 0; i < 20; ++i) {
    std::string m = "message " + std::to_string(i);
    wire += frame(kFin | (i % 2 ? kBin : kText), m);
    events.push_back((i % 2 ? "binary:" : "text:") + m);
  }
  expect_every_split(Role::server, wire, events);
}

TEST(WsParser, CloseFrames) {
  expect_every_split(Role::server, frame(kFin | kClose, close_payload(1000, "bye")),
                     {"close:1000:bye"});
  expect_every_split(Role::server, frame(kFin | kClose, ""), {"close:1005:"});
  expect_every_split(Role::client, frame(kFin | kClose, close_payload(1001), false),
                     {"close:1001:"});
  // A reason of the largest size, in UTF-8.
  std::string reason;
  while (reason.size() + 2 <= 123)
    reason += "\xc3\xa9";
  expect_every_split(Role::server, frame(kFin | kClose, close_payload(4999, reason)),
                     {"close:4999:" + reason});
}

TEST(WsParser, EveryCloseCodeAllowedOnTheWire) {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                        3000, 3999, 4000, 4999}) {
    SCOPED_TRACE(code);
    expect_every_split(Role::server, frame(kFin | kClose, close_payload(code, "r")),
                       {"close:" + std::to_string(code) + ":r"});
  }
}

TEST(WsParser, DataAfterCloseIsIgnored) {
  // Even garbage that would be an error: the parser is closed.
  std::string wire = frame(kFin | kText, "a") + frame(kFin | kClose, close_payload(1000)) +
                     frame(kFin | kText, "after") + bytes({0xff, 0xff, 0xff});
  expect_every_split(Role::server, wire, {"text:a", "close:1000:"});

  Recorder rec;
  Parser parser(Role::server, rec);
  Bytes in = Bytes::copy(wire);
  Parser::Result r = parser.feed(in);
  EXPECT_EQ(r.status, Parser::Status::closed);
  EXPECT_EQ(r.consumed, frame(kFin | kText, "a").size() + frame(kFin | kClose, "xx").size());
  Parser::Result again = parser.feed(Bytes::copy(frame(kFin | kText, "late")));
  EXPECT_EQ(again.status, Parser::Status::closed);
  EXPECT_EQ(again.consumed, frame(kFin | kText, "late").size());
  EXPECT_EQ(rec.events.size(), 2u);
}

TEST(WsParser, CloseInsideFragmentedMessageEndsIt) {
  std::string wire = frame(kText, "part") + frame(kFin | kClose, close_payload(1001, "gone"));
  expect_every_split(Role::server, wire, {"close:1001:gone"});
}

// ---- hostile input: the exact close code -------------------------------------------

struct Bad {
  const char* name;
  Role role;
  std::string wire;
  uint16_t code;
  std::vector<std::string> events = {};
};

std::vector<Bad> hostile_cases() {
  const uint16_t P = close_code::protocol_error, U = close_code::invalid_payload,
                 B = close_code::too_big;
  std::vector<Bad> v;
  auto add = [&](const char* name, std::string wire, uint16_t code,
                 std::vector<std::string> events = {}, Role role = Role::server) {
    v.push_back({name, role, std::move(wire), code, std::move(events)});
  };
  // Reserved bits (no extension is ever negotiated).
  add("rsv1 on text", frame(kFin | 0x40 | kText, "x"), P);
  add("rsv2 on text", frame(kFin | 0x20 | kText, "x"), P);
  add("rsv3 on text", frame(kFin | 0x10 | kText, "x"), P);
  add("rsv1 on continuation", frame(kText, "a") + frame(kFin | 0x40 | kCont, "b"), P);
  add("rsv1 on ping", frame(kFin | 0x40 | kPing, ""), P);
  add("all rsv on close", frame(kFin | 0x70 | kClose, ""), P);
  // Unknown opcodes.
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
    add("unknown opcode", frame(kFin | op, "x"), P);
  add("unknown opcode after a message", frame(kFin | kText, "ok") + frame(kFin | 0x3, ""), P,
      {"text:ok"});
  // Control frames.
  add("fragmented ping", frame(kPing, "x"), P);
  add("fragmented pong", frame(kPong, "x"), P);
  add("fragmented close", frame(kClose, ""), P);
  add("ping of 126 bytes", frame(kFin | kPing, std::string(126, 'p')), P);
  add("pong of 126 (16-bit length)", header(kFin | kPong, 126, true), P);
  add("ping with 64-bit length", header(kFin | kPing, 200, true, LenForm::l64), P);
  add("ping 5 in 16-bit form", header(kFin | kPing, 5, true, LenForm::l16), P);
  // Fragmentation order.
  add("continuation without start", frame(kCont, "x"), P);
  add("final continuation without start", frame(kFin | kCont, "x"), P);
  add("text inside fragmented text", frame(kText, "a") + frame(kFin | kText, "b"), P);
  add("binary inside fragmented text", frame(kText, "a") + frame(kBin, "b"), P);
  add("text inside fragmented binary", frame(kBin, "a") + frame(kText, "b"), P);
  add("continuation after a whole message", frame(kFin | kText, "a") + frame(kFin | kCont, "b"), P,
      {"text:a"});
  // Masking.
  add("unmasked text to server", frame(kFin | kText, "x", false), P);
  add("unmasked ping to server", frame(kFin | kPing, "", false), P);
  add("unmasked close to server", frame(kFin | kClose, "", false), P);
  add("masked text to client", frame(kFin | kText, "x", true), P, {}, Role::client);
  add("masked pong to client", frame(kFin | kPong, "", true), P, {}, Role::client);
  // Length encodings.
  add("16-bit length 0", header(kFin | kBin, 0, true, LenForm::l16), P);
  add("16-bit length 125", header(kFin | kBin, 125, true, LenForm::l16), P);
  add("64-bit length 0", header(kFin | kBin, 0, true, LenForm::l64), P);
  add("64-bit length 65535", header(kFin | kBin, 65535, true, LenForm::l64), P);
  add("64-bit length, high bit", header(kFin | kBin, uint64_t{1} << 63, true, LenForm::l64), P);
  add("64-bit length, all ones", header(kFin | kBin, ~uint64_t{0}, true, LenForm::l64), P);
  add("64-bit length 2^63-1", header(kFin | kBin, (uint64_t{1} << 63) - 1, true), B);
  add("64-bit length 2^32", header(kFin | kBin, uint64_t{1} << 32, true), B);
  // UTF-8 in text.
  add("invalid byte 0xff", frame(kFin | kText, "ab\xff"), U);
  add("byte 0xfe", frame(kFin | kText, "\xfe"), U);
  add("five-byte lead 0xf8", frame(kFin | kText, "\xf8\x88\x80\x80\x80"), U);
  add("overlong slash C0 AF", frame(kFin | kText, "\xc0\xaf"), U);
  add("overlong E0 80 AF", frame(kFin | kText, "\xe0\x80\xaf"), U);
  add("overlong F0 80 80 AF", frame(kFin | kText, "\xf0\x80\x80\xaf"), U);
  add("surrogate D800", frame(kFin | kText, "\xed\xa0\x80"), U);
  add("surrogate DFFF", frame(kFin | kText, "\xed\xbf\xbf"), U);
  add("above U+10FFFF", frame(kFin | kText, "\xf4\x90\x80\x80"), U);
  add("lone continuation", frame(kFin | kText, "a\x80"), U);
  add("truncated at message end", frame(kFin | kText, "\xe2\x82"), U);
  add("truncated at end of last fragment", frame(kText, "ok") + frame(kFin | kCont, "\xf0\x9f"), U);
  add("invalid in second fragment", frame(kText, "ok") + frame(kFin | kCont, "\xc3\x28"), U);
  // Fail fast: the message never ends, the error comes anyway.
  add("fail fast across fragments", frame(kText, "\xce\xba\xf4\x90") + frame(kCont, "more"), U);
  add("fail fast inside a partial frame",
      header(kFin | kText, 1000, true) + frame(0, "ab\xff", true).substr(2 + 4), U);
  // Close frames.
  add("close of one byte", frame(kFin | kClose, "\x03"), P);
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
    add("close code not allowed", frame(kFin | kClose, close_payload(code)), P);
  add("close reason invalid UTF-8", frame(kFin | kClose, close_payload(1000, "\xff")), U);
  add("close reason truncated UTF-8", frame(kFin | kClose, close_payload(1000, "ok\xe2\x82")), U);
  add("close of 126 bytes", frame(kFin | kClose, close_payload(1000, std::string(124, 'r'))), P);
  return v;
}

TEST(WsParser, HostileInputGetsTheExactCloseCode) {
  std::vector<Bad> cases = hostile_cases();
  EXPECT_GE(cases.size(), 50u);
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.name);
    expect_every_split(c.role, c.wire, c.events, c.code);
  }
}

TEST(WsParser, ErrorReportsReasonAndStays) {
  Recorder rec;
  Parser parser(Role::server, rec);
  Parser::Result r = parser.feed(Bytes::copy(frame(kFin | kText, "x", false)));
  EXPECT_EQ(r.status, Parser::Status::error);
  EXPECT_EQ(r.code, close_code::protocol_error);
  EXPECT_EQ(r.reason, "unmasked frame from a client");
  EXPECT_TRUE(parser.failed());
  r = parser.feed(Bytes::copy(frame(kFin | kText, "y")));
  EXPECT_EQ(r.status, Parser::Status::error);
  EXPECT_TRUE(rec.events.empty());
}

// ---- limits: at the limit, and one past ------------------------------------------

TEST(WsParser, FrameLimit) {
  Limits limits;
  limits.max_frame = 300;
  limits.max_message = 1000;
  std::string at = random_bytes(300, 4);
  Outcome ok = run(Role::server, {Bytes::copy(frame(kFin | kBin, at))}, limits);
  EXPECT_EQ(ok.events, std::vector<std::string>{describe("binary", at)});
  EXPECT_EQ(ok.code, 0);
  // One past: refused from the header alone, before any payload.
  Outcome over = run(Role::server, {Bytes::copy(header(kFin | kBin, 301, true))}, limits);
  EXPECT_EQ(over.code, close_code::too_big);
  expect_every_split(Role::server, frame(kFin | kBin, random_bytes(301, 5)), {},
                     close_code::too_big, limits);
}

TEST(WsParser, MessageLimitAcrossFragments) {
  Limits limits;
  limits.max_frame = 100;
  limits.max_message = 250;
  std::string a(100, 'a'), b(100, 'b'), c(50, 'c');
  expect_every_split(Role::server, frame(kText, a) + frame(kCont, b) + frame(kFin | kCont, c),
                     {describe("text", a + b + c)}, 0, limits);
  expect_every_split(Role::server, frame(kText, a) + frame(kCont, b) + frame(kFin | kCont, c + "d"),
                     {}, close_code::too_big, limits);
  // Control frames do not count against the message.
  expect_every_split(Role::server,
                     frame(kText, a) + frame(kFin | kPing, std::string(125, 'p')) +
                         frame(kCont, b) + frame(kFin | kCont, c),
                     {describe("ping", std::string(125, 'p')), describe("text", a + b + c)}, 0,
                     limits);
}

TEST(WsParser, SingleFrameAtMessageLimit) {
  Limits limits;
  limits.max_frame = 1000;
  limits.max_message = 200;
  std::string at(200, 'x');
  expect_every_split(Role::server, frame(kFin | kText, at), {describe("text", at)}, 0, limits);
  expect_every_split(Role::server, frame(kFin | kText, at + "x"), {}, close_code::too_big, limits);
}

TEST(WsParser, ControlFrameAt125) {
  std::string p(125, 'z');
  expect_every_split(Role::server, frame(kFin | kPing, p), {describe("ping", p)});
  expect_every_split(Role::server, frame(kFin | kPing, p + "z"), {}, close_code::protocol_error);
}

// ---- statuses -------------------------------------------------------------------

TEST(WsParser, NeedMoreSaysHowMuch) {
  Recorder rec;
  Parser parser(Role::server, rec);
  std::string wire = frame(kFin | kBin, std::string(300, 'q'));  // 2 + 2 + 4 header
  Parser::Result r = parser.feed(Bytes::copy(wire.substr(0, 1)));
  EXPECT_EQ(r.status, Parser::Status::need_more);
  EXPECT_EQ(r.wanted, 1u);
  r = parser.feed(Bytes::copy(wire.substr(1, 1)));
  EXPECT_EQ(r.wanted, 6u);
  r = parser.feed(Bytes::copy(wire.substr(2, 10)));
  EXPECT_EQ(r.status, Parser::Status::need_more);
  EXPECT_EQ(r.wanted, 300u - 4);
  EXPECT_TRUE(parser.in_message());
  r = parser.feed(Bytes::copy(wire.substr(12)));
  EXPECT_EQ(r.status, Parser::Status::complete);
  EXPECT_EQ(r.consumed, wire.size() - 12);
  EXPECT_FALSE(parser.in_message());
  ASSERT_EQ(rec.events.size(), 1u);
}

TEST(WsParser, PauseStopsAfterEachEvent) {
  std::string wire = frame(kFin | kText, "one") + frame(kFin | kPing, "p") + frame(kText, "tw") +
                     frame(kFin | kCont, "o") + frame(kFin | kBin, "3");
  for (const auto& plan : plans(wire.size())) {
    Outcome o = run(Role::server, cut(wire, plan), {}, nullptr, /*pause_each=*/true);
    ASSERT_EQ(o.events, (std::vector<std::string>{"text:one", "ping:p", "text:two", "binary:3"}));
  }
  Recorder rec;
  Parser parser(Role::server, rec);
  rec.parser = &parser;
  rec.pause_each = true;
  Bytes in = Bytes::copy(wire);
  Parser::Result r = parser.feed(in);
  EXPECT_EQ(r.status, Parser::Status::paused);
  EXPECT_EQ(r.consumed, frame(kFin | kText, "one").size());
}

// ---- zero copy, in-place unmasking, buffer reuse ----------------------------------------

TEST(WsParser, SingleFrameMessageIsASliceUnmaskedInPlace) {
  Recorder rec;
  Parser parser(Role::server, rec);
  std::string payload = random_bytes(1000, 6);
  std::string wire = frame(kFin | kBin, payload);
  Bytes in = Bytes::copy(wire);
  EXPECT_EQ(parser.feed(in).status, Parser::Status::complete);
  ASSERT_EQ(rec.payloads.size(), 1u);
  const Bytes& m = rec.payloads[0];
  EXPECT_EQ(m.data(), in.data() + 8);  // 2 + 2 length + 4 mask
  EXPECT_EQ(m.storage(), in.storage());
  EXPECT_EQ(m.to_string(), payload);
  // The input now holds the plain payload: it was unmasked where it lay.
  EXPECT_EQ(in.view().substr(8), payload);
}

TEST(WsParser, ControlPayloadIsASlice) {
  Recorder rec;
  Parser parser(Role::server, rec);
  Bytes in = Bytes::copy(frame(kFin | kPing, "hello"));
  (void)parser.feed(in);
  ASSERT_EQ(rec.payloads.size(), 1u);
  EXPECT_EQ(rec.payloads[0].data(), in.data() + 6);
  EXPECT_EQ(rec.payloads[0].to_string(), "hello");
}

TEST(WsParser, GatheredMessageIsOneCopyAndKeepable) {
  Recorder rec;
  Parser parser(Role::server, rec);
  Bytes in = Bytes::copy(frame(kBin, "abc") + frame(kFin | kCont, "def"));
  (void)parser.feed(in);
  ASSERT_EQ(rec.payloads.size(), 1u);
  EXPECT_FALSE(ember::test::points_into(in, rec.payloads[0].data(), 6));
  // The handler kept it: the next gathered message must go elsewhere.
  (void)parser.feed(Bytes::copy(frame(kBin, "ghi") + frame(kFin | kCont, "jkl")));
  ASSERT_EQ(rec.payloads.size(), 2u);
  EXPECT_EQ(rec.payloads[0].to_string(), "abcdef");
  EXPECT_EQ(rec.payloads[1].to_string(), "ghijkl");
  EXPECT_NE(rec.payloads[0].data(), rec.payloads[1].data());
}

// Remembers where each message was, keeps nothing.
struct AddressRecorder : ParserHandler {
  std::vector<const uint8_t*> where;
  std::vector<std::string> text;
  void on_message(Opcode, const Bytes& payload) override {
    where.push_back(payload.data());
    text.push_back(payload.to_string());
  }
};

TEST(WsParser, GatherBufferIsReusedWhenNotKept) {
  AddressRecorder rec;
  Parser parser(Role::server, rec);
  for (int i = 0; i < 3; ++i)
    (void)parser.feed(Bytes::copy(frame(kText, std::string(1, static_cast<char>('0' + i))) +
                                  frame(kFin | kCont, "y")));
  ASSERT_EQ(rec.where.size(), 3u);
  EXPECT_EQ(rec.where[0], rec.where[1]);
  EXPECT_EQ(rec.where[1], rec.where[2]);
  EXPECT_EQ(rec.text[2], "2y");
}

TEST(WsParser, GatherUsesThePool) {
  BufferPool pool;
  AddressRecorder rec;
  Parser parser(Role::server, rec, {}, &pool);
  std::string big = random_bytes(5000, 7);
  // A single frame cut by reads is gathered into a pool buffer too.
  std::string wire = frame(kFin | kBin, big);
  (void)parser.feed(Bytes::copy(wire.substr(0, 100)));
  (void)parser.feed(Bytes::copy(wire.substr(100)));
  BufferPoolStats s = pool.stats();
  EXPECT_EQ(s.hits + s.misses, 1u);
  ASSERT_EQ(rec.text.size(), 1u);
  EXPECT_EQ(rec.text[0], big);
}

TEST(WsParser, GatherTailReadsInPlace) {
  Recorder rec;
  Parser parser(Role::server, rec);
  std::string payload = random_bytes(4000, 8);
  std::string wire = frame(kFin | kBin, payload);
  BufferStorage* storage = nullptr;
  uint8_t* data = nullptr;
  size_t missing = 0;
  EXPECT_FALSE(parser.gather_tail(&storage, &data, &missing));
  (void)parser.feed(Bytes::copy(wire.substr(0, 1000)));
  ASSERT_TRUE(parser.gather_tail(&storage, &data, &missing));
  size_t at = 1000;
  EXPECT_EQ(missing, wire.size() - at);
  // A reader puts the rest (still masked) where the parser asked.
  std::memcpy(data, wire.data() + at, missing);
  storage->retain();
  Bytes read = Bytes::adopt(storage, storage->capacity())
                   .slice(static_cast<size_t>(data - storage->data()), missing);
  EXPECT_EQ(parser.feed(read).status, Parser::Status::complete);
  ASSERT_EQ(rec.payloads.size(), 1u);
  EXPECT_EQ(rec.payloads[0].to_string(), payload);
  EXPECT_EQ(rec.payloads[0].data() + 1000 - 8, data);
}

// Plays a reader that reads in place: each read lands where gather_tail()
// says, as much as fits, until the frame is complete.
void read_in_place(Parser& parser, const std::string& wire, size_t at) {
  BufferStorage* storage = nullptr;
  uint8_t* data = nullptr;
  size_t room = 0;
  while (parser.gather_tail(&storage, &data, &room)) {
    ASSERT_GT(room, 0u);
    size_t n = std::min(room, wire.size() - at);
    std::memcpy(data, wire.data() + at, n);
    at += n;
    storage->retain();
    Bytes read = Bytes::adopt(storage, storage->capacity())
                     .slice(static_cast<size_t>(data - storage->data()), n);
    ASSERT_NE(parser.feed(read).status, Parser::Status::error);
  }
  EXPECT_EQ(at, wire.size());
}

TEST(WsParser, BufferGrowsWithPayloadNotWithTheHeadersClaim) {
  BufferPool pool;
  Recorder rec;
  Parser parser(Role::server, rec, {}, &pool);
  std::string payload = random_bytes(1 << 20, 10);
  std::string wire = frame(kFin | kBin, payload);  // 14-byte header, at max_frame
  ASSERT_EQ(parser.feed(Bytes::copy(wire.substr(0, 34))).status, Parser::Status::need_more);
  BufferStorage* storage = nullptr;
  uint8_t* data = nullptr;
  size_t room = 0;
  ASSERT_TRUE(parser.gather_tail(&storage, &data, &room));
  EXPECT_EQ(storage->capacity(), 64u * 1024);  // not 1 MiB for 20 bytes
  EXPECT_EQ(room, 64u * 1024 - 20);
  read_in_place(parser, wire, 34);
  ASSERT_EQ(rec.payloads.size(), 1u);
  EXPECT_EQ(rec.payloads[0].to_string(), payload);
}

TEST(WsParser, GatherTailAcrossFragments) {
  Recorder rec;
  Parser parser(Role::server, rec);
  std::string a = random_bytes(100000, 11), b = random_bytes(200000, 12);
  std::string first = frame(kBin, a), second = frame(kFin | kCont, b);
  ASSERT_EQ(parser.feed(Bytes::copy(first.substr(0, 50))).status, Parser::Status::need_more);
  read_in_place(parser, first, 50);
  EXPECT_TRUE(parser.in_message());
  ASSERT_EQ(parser.feed(Bytes::copy(second.substr(0, 20))).status, Parser::Status::need_more);
  read_in_place(parser, second, 20);
  ASSERT_EQ(rec.payloads.size(), 1u);
  EXPECT_EQ(rec.payloads[0].to_string(), a + b);
}

TEST(WsParser, ClientRoleParsesUnmaskedFramesWithoutTouchingInput) {
  Recorder rec;
  Parser parser(Role::client, rec);
  std::string wire = frame(kFin | kText, "plain", false);
  Bytes in = Bytes::copy(wire);
  EXPECT_EQ(parser.feed(in).status, Parser::Status::complete);
  EXPECT_EQ(in.view(), wire);
  ASSERT_EQ(rec.payloads.size(), 1u);
  EXPECT_EQ(rec.payloads[0].data(), in.data() + 2);
}

TEST(WsParser, ApplyMaskEveryPhaseAndLength) {
  for (size_t n = 0; n < 70; ++n) {
    for (size_t phase = 0; phase < 4; ++phase) {
      std::string src = random_bytes(n, static_cast<uint32_t>(n));
      std::string dst(n, '\0');
      apply_mask(reinterpret_cast<uint8_t*>(dst.data()),
                 reinterpret_cast<const uint8_t*>(src.data()), n, kMask, phase);
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(static_cast<uint8_t>(dst[i]),
                  static_cast<uint8_t>(src[i]) ^ kMask[(phase + i) & 3])
            << n << " " << phase << " " << i;
    }
  }
}

TEST(WsParser, CloseCodeTable) {
  int allowed = 0;
  for (uint32_t code = 0; code <= 65535; ++code)
    allowed += valid_close_code(static_cast<uint16_t>(code));
  EXPECT_EQ(allowed, 4 + 8 + 2000);
  EXPECT_FALSE(valid_close_code(1005));
  EXPECT_TRUE(valid_close_code(1014));
  EXPECT_FALSE(valid_close_code(1015));
}

}  // namespace
}  // namespace ember::websocket
