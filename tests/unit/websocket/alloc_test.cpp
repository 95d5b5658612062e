// Steady state allocates nothing: the echo path (parse masked messages,
// write them back by reference) and the gathered-message path, counted
// (tests/unit/support/allocation_counter.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "protocols/websocket/frame.hpp"
#include "tests/unit/support/allocation_counter.hpp"
#include "tests/unit/websocket/ws_test_util.hpp"

namespace ember::websocket {
namespace {

// Echoes every message into an IoChain, as an edge server would.
struct Echo : ParserHandler {
  Writer writer{Role::server};
  IoChain* out = nullptr;
  size_t messages = 0;
  void on_message(Opcode opcode, const Bytes& payload) override {
    writer.write_frame(*out, opcode, payload);
    ++messages;
  }
  void on_ping(const Bytes& payload) override { writer.write_pong(*out, payload.span()); }
};

TEST(WsAlloc, EchoOfSmallMessagesAllocatesNothing) {
  BufferPool pool;
  Echo echo;
  IoChain out;
  echo.out = &out;
  Parser parser(Role::server, echo, {}, &pool);
  // One "read": 16 masked 32-byte messages and a ping.
  std::string wire;
  for (int i = 0; i < 16; ++i)
    wire += test::frame(test::kFin | test::kBin, std::string(32, static_cast<char>('a' + i)));
  wire += test::frame(test::kFin | test::kPing, "p");

  auto round = [&] {
    MutableBuffer buf = pool.take(wire.size());
    std::memcpy(buf.data(), wire.data(), wire.size());
    Bytes read = std::move(buf).freeze(wire.size());
    ASSERT_EQ(parser.feed(read).status, Parser::Status::complete);
    out.clear();
  };
  for (int i = 0; i < 10; ++i)
    round();  // warm: pool, IoChain capacity
  ember::test::arm_allocation_counter();
  for (int i = 0; i < 1000; ++i)
    round();
  EXPECT_EQ(ember::test::disarm_allocation_counter(), 0u);
  EXPECT_EQ(echo.messages, 1010u * 16);
}

// Counts messages and keeps nothing.
struct Sink : ParserHandler {
  size_t messages = 0;
  void on_message(Opcode, const Bytes&) override { ++messages; }
};

std::vector<Bytes> fragmented_reads(size_t count) {
  std::string wire = test::frame(test::kText, "first half, ") +
                     test::frame(test::kFin | test::kCont, "second half");
  std::vector<Bytes> reads;
  for (size_t i = 0; i < count; ++i)
    reads.push_back(Bytes::copy(wire));
  return reads;
}

TEST(WsAlloc, GatheredMessagesReuseTheParsersBuffer) {
  Sink sink;
  Parser parser(Role::server, sink);  // no pool: the parser's own buffer
  std::vector<Bytes> reads = fragmented_reads(1010);
  for (size_t i = 0; i < 10; ++i)
    ASSERT_EQ(parser.feed(reads[i]).status, Parser::Status::complete);
  ember::test::arm_allocation_counter();
  for (size_t i = 10; i < reads.size(); ++i)
    ASSERT_EQ(parser.feed(reads[i]).status, Parser::Status::complete);
  EXPECT_EQ(ember::test::disarm_allocation_counter(), 0u);
  EXPECT_EQ(sink.messages, 1010u);
}

TEST(WsAlloc, GatheredMessagesEchoedFromThePool) {
  // The echo holds each gathered message until the write: the parser lets
  // that buffer go and the pool recycles it.
  BufferPool pool;
  Echo echo;
  IoChain out;
  echo.out = &out;
  Parser parser(Role::server, echo, {}, &pool);
  std::vector<Bytes> reads = fragmented_reads(1010);
  auto round = [&](size_t i) {
    ASSERT_EQ(parser.feed(reads[i]).status, Parser::Status::complete);
    out.clear();
  };
  for (size_t i = 0; i < 10; ++i)
    round(i);
  ember::test::arm_allocation_counter();
  for (size_t i = 10; i < reads.size(); ++i)
    round(i);
  EXPECT_EQ(ember::test::disarm_allocation_counter(), 0u);
  EXPECT_EQ(echo.messages, 1010u);
}

}  // namespace
}  // namespace ember::websocket
