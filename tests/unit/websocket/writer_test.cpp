// websocket::Writer: exact bytes for every length class and control frame,
// payload by reference in the server role, masking in the client role
// (checked by parsing the output back).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocols/websocket/frame.hpp"
#include "tests/unit/test_util.hpp"
#include "tests/unit/websocket/ws_test_util.hpp"

namespace ember::websocket {
namespace {

using ember::test::flatten;
using ember::test::random_bytes;

std::string bytes(std::initializer_list<uint8_t> b) {
  return std::string(b.begin(), b.end());
}

TEST(WsWriter, ServerTextFrameExactAndByReference) {
  Writer w(Role::server);
  IoChain out;
  Bytes payload = Bytes::copy(std::string_view("Hello"));
  w.write_frame(out, Opcode::text, payload);
  EXPECT_EQ(flatten(out), bytes({0x81, 0x05}) + "Hello");
  ASSERT_EQ(out.iov_count(), 2u);
  EXPECT_EQ(out.iov()[1].iov_base, payload.data());  // no copy
  EXPECT_EQ(out.iov()[1].iov_len, 5u);
  EXPECT_EQ(payload.storage()->use_count(), 2u);  // the chain holds it
  out.clear();
  EXPECT_EQ(payload.storage()->use_count(), 1u);
}

TEST(WsWriter, HeaderForEveryLengthClass) {
  struct Case {
    size_t n;
    std::string header;
  };
  for (const Case& c : std::vector<Case>{
           {0, bytes({0x82, 0x00})},
           {125, bytes({0x82, 0x7D})},
           {126, bytes({0x82, 0x7E, 0x00, 0x7E})},
           {65535, bytes({0x82, 0x7E, 0xFF, 0xFF})},
           {65536, bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00})},
       }) {
    SCOPED_TRACE(c.n);
    Writer w(Role::server);
    IoChain out;
    std::string p = random_bytes(c.n, 9);
    Bytes payload = Bytes::copy(p);
    w.write_frame(out, Opcode::binary, payload);
    EXPECT_EQ(flatten(out), c.header + p);
    if (c.n) {
      ASSERT_EQ(out.iov_count(), 2u);
      EXPECT_EQ(out.iov()[1].iov_base, payload.data());
    }
  }
  uint8_t h[14];
  EXPECT_EQ(encode_header(h, Opcode::text, true, uint64_t{1} << 40, test::kMask), 14u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(h), 14),
            bytes({0x81, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0, 0x37, 0xfa, 0x21, 0x3d}));
}

TEST(WsWriter, FragmentsAndContinuation) {
  Writer w(Role::server);
  IoChain out;
  w.write_frame(out, Opcode::text, Bytes::copy(std::string_view("Hel")), false);
  w.write_frame(out, Opcode::continuation, Bytes::copy(std::string_view("lo")), true);
  EXPECT_EQ(flatten(out), bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}));
}

TEST(WsWriter, InlineSmallPayloads) {
  WriterOptions opt;
  opt.inline_payload_max = 64;
  Writer w(Role::server, opt);
  IoChain out;
  Bytes small = Bytes::copy(std::string(64, 's'));
  w.write_frame(out, Opcode::binary, small);
  EXPECT_EQ(out.iov_count(), 1u);  // header and payload share the cork
  EXPECT_EQ(small.storage()->use_count(), 1u);
  Bytes big = Bytes::copy(std::string(65, 'b'));
  w.write_frame(out, Opcode::binary, big);
  EXPECT_EQ(out.iov()[out.iov_count() - 1].iov_base, big.data());
  EXPECT_EQ(flatten(out),
            bytes({0x82, 64}) + std::string(64, 's') + bytes({0x82, 65}) + std::string(65, 'b'));
}

TEST(WsWriter, ControlFramesExact) {
  Writer w(Role::server);
  IoChain out;
  w.write_close(out, 1000, "bye");
  EXPECT_EQ(flatten(out), bytes({0x88, 0x05, 0x03, 0xE8}) + "bye");
  out.clear();
  w.write_close(out, close_code::no_status);
  EXPECT_EQ(flatten(out), bytes({0x88, 0x00}));
  out.clear();
  w.write_close(out, 1002);
  EXPECT_EQ(flatten(out), bytes({0x88, 0x02, 0x03, 0xEA}));
  out.clear();
  std::string p = "Hello";
  w.write_ping(out, std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  w.write_pong(out, std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  w.write_pong(out);
  EXPECT_EQ(flatten(out), bytes({0x89, 0x05}) + p + bytes({0x8A, 0x05}) + p + bytes({0x8A, 0x00}));
  EXPECT_EQ(out.iov_count(), 1u);  // all copied into the cork
}

TEST(WsWriter, ControlPayloadsAreCut) {
  Writer w(Role::server);
  IoChain out;
  std::string p(200, 'p');
  w.write_ping(out, std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  EXPECT_EQ(flatten(out), bytes({0x89, 125}) + std::string(125, 'p'));
  out.clear();
  // 2 + 61 two-byte characters = 124 bytes: a cut at 123 would split the last é.
  std::string reason = std::string(2, 'x');
  for (int i = 0; i < 61; ++i)
    reason += "\xc3\xa9";
  ASSERT_EQ(reason.size(), 124u);
  w.write_close(out, 1000, reason);
  std::string wire = flatten(out);
  ASSERT_EQ(static_cast<uint8_t>(wire[1]), 2u + 122u);  // cut at 122, not inside é
  EXPECT_TRUE(valid_utf8(std::string_view(wire).substr(4)));
}

TEST(WsWriter, ClientMasksAndServerParsesBack) {
  Writer w(Role::client);
  for (size_t n : {0, 1, 5, 125, 126, 4095, 4096, 4097, 65535, 65536, 100000}) {
    SCOPED_TRACE(n);
    IoChain out;
    std::string p = random_bytes(n, static_cast<uint32_t>(n) + 1);
    w.write_frame(out, Opcode::binary, Bytes::copy(p));
    std::string wire = flatten(out);
    ASSERT_TRUE(static_cast<uint8_t>(wire[1]) & 0x80);
    test::Outcome o = test::run(Role::server, {Bytes::copy(wire)}, {.max_frame = 1 << 20});
    EXPECT_EQ(o.code, 0);
    EXPECT_EQ(o.events, std::vector<std::string>{test::describe("binary", p)});
    if (n >= 16) {
      EXPECT_EQ(wire.find(p.substr(0, 16)), std::string::npos);  // masked
    }
  }
}

TEST(WsWriter, ClientControlFramesAreMaskedWithFreshKeys) {
  Writer w(Role::client);
  IoChain out;
  std::string p = "ping!";
  auto span = std::span(reinterpret_cast<const uint8_t*>(p.data()), p.size());
  w.write_ping(out, span);
  w.write_pong(out, span);
  w.write_close(out, 1001, "later");
  std::string wire = flatten(out);
  test::Outcome o = test::run(Role::server, {Bytes::copy(wire)});
  EXPECT_EQ(o.events, (std::vector<std::string>{"ping:ping!", "pong:ping!", "close:1001:later"}));
  // Each frame has a key of its own (a repeat of 64 bits has odds 2^-32 per pair).
  std::string k1 = wire.substr(2, 4), k2 = wire.substr(2 + 4 + 5 + 2, 4);
  EXPECT_NE(k1, k2);
}

TEST(WsWriter, ServerParsesWhatClientWritesWithFragments) {
  Writer client(Role::client);
  IoChain out;
  client.write_frame(out, Opcode::text, Bytes::copy(std::string_view("frag")), false);
  client.write_ping(out);
  client.write_frame(out, Opcode::continuation, Bytes::copy(std::string_view("ment")), true);
  std::string wire = flatten(out);
  test::expect_every_split(Role::server, wire, {"ping:", "text:fragment"});
  // And the other way round: what a server writes, a client parses.
  Writer server(Role::server);
  IoChain back;
  server.write_frame(back, Opcode::binary, Bytes::copy(std::string_view("reply")));
  server.write_close(back, 1000, "done");
  test::expect_every_split(Role::client, flatten(back), {"binary:reply", "close:1000:done"});
}

}  // namespace
}  // namespace ember::websocket
