// grpc::MessageReader: the length-prefixed deframer. Every input is also
// replayed in every chunking; results must not depend on how bytes arrive.
#include "protocols/grpc/message_reader.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/test_util.hpp"

namespace ember::grpc {
namespace {

using test::all_splits;

std::string frame(std::string_view body, uint8_t flags = 0) {
  uint8_t prefix[5];
  write_message_prefix(prefix, static_cast<uint32_t>(body.size()));
  prefix[0] = flags;
  return std::string(reinterpret_cast<char*>(prefix), 5) + std::string(body);
}

struct Outcome {
  std::vector<Bytes> messages;
  Status error;  // the first non-OK status feed() returned
};

void collect(void* ctx, Bytes message) {
  static_cast<Outcome*>(ctx)->messages.push_back(std::move(message));
}

Outcome run(const std::vector<Bytes>& chunks, size_t max = 1 << 20, BufferPool* pool = nullptr) {
  MessageReader reader(max, pool);
  Outcome out;
  for (const Bytes& c : chunks) {
    Status st = reader.feed(c, &collect, &out);
    if (!st.ok() && out.error.ok()) out.error = st;
  }
  return out;
}

std::vector<std::string> texts(const Outcome& o) {
  std::vector<std::string> v;
  for (const Bytes& m : o.messages)
    v.push_back(m.to_string());
  return v;
}

// Replays `wire` in every chunking and checks each against the expected
// messages and status. Also checks the zero-copy rule: a message whose
// prefix end and body sit in one chunk is a slice of the input; any other
// message was gathered into its own buffer.
void expect_every_split(const std::string& wire, const std::vector<std::string>& expected,
                        StatusCode code = StatusCode::ok, size_t max = 1 << 20) {
  Bytes input = Bytes::copy(wire);
  for (const test::Split& split : all_splits(input)) {
    SCOPED_TRACE(split.name);
    Outcome o = run(split.chunks, max);
    EXPECT_EQ(texts(o), expected);
    EXPECT_EQ(o.error.code, code) << o.error.message;

    // Where each message's body starts in `wire`, walked from the prefixes.
    size_t at = 0;
    for (const Bytes& m : o.messages) {
      size_t body = at + 5;
      size_t chunk_start = 0;
      bool one_chunk = false;
      for (const Bytes& c : split.chunks) {
        size_t chunk_end = chunk_start + c.size();
        // The prefix's last byte and the whole body in this chunk.
        if (body - 1 >= chunk_start && body - 1 < chunk_end && body + m.size() <= chunk_end)
          one_chunk = true;
        chunk_start = chunk_end;
      }
      if (one_chunk) {
        EXPECT_EQ(m.data(), input.data() + body) << "message at " << at << " was copied";
        EXPECT_EQ(m.storage(), input.storage());
      } else {
        EXPECT_FALSE(test::points_into(input, m.data(), m.size()))
            << "message at " << at << " spans chunks but aliases the input";
      }
      at = body + m.size();
    }
  }
}

TEST(MessageReader, ZeroLengthMessage) {
  expect_every_split(frame(""), {""});
}

TEST(MessageReader, ZeroLengthMessagesBackToBack) {
  expect_every_split(frame("") + frame("") + frame(""), {"", "", ""});
}

TEST(MessageReader, ExactFitChunkYieldsSliceOfThatChunk) {
  Bytes chunk = Bytes::copy(frame("hello"));
  Outcome o = run({chunk});
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].view(), "hello");
  EXPECT_EQ(o.messages[0].data(), chunk.data() + 5);
  EXPECT_EQ(o.messages[0].storage(), chunk.storage());
  expect_every_split(frame("hello"), {"hello"});
}

TEST(MessageReader, SeveralMessagesInOneChunkAreAllSlices) {
  std::string big(300, 'x');
  std::string wire = frame("a") + frame("") + frame(big) + frame("tail");
  Bytes chunk = Bytes::copy(wire);
  Outcome o = run({chunk});
  ASSERT_EQ(o.messages.size(), 4u);
  for (const Bytes& m : o.messages)
    EXPECT_EQ(m.storage(), chunk.storage());
  EXPECT_EQ(o.messages[2].data(), chunk.data() + 5 + 1 + 5 + 5);
  expect_every_split(wire, {"a", "", big, "tail"});
}

TEST(MessageReader, MessageSpanningChunksIsGatheredIntact) {
  std::string body = test::random_bytes(5000, 1);
  Bytes wire = Bytes::copy(frame(body));
  Outcome o = run({wire.slice(0, 1000), wire.slice(1000, 3000), wire.slice(4000, 1005)});
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].view(), body);
  EXPECT_NE(o.messages[0].storage(), wire.storage());
}

TEST(MessageReader, MixedInputEveryChunking) {
  std::string wire = frame("first") + frame(test::random_bytes(700, 2)) + frame("") + frame("x");
  expect_every_split(wire, {"first", test::random_bytes(700, 2), "", "x"});
}

TEST(MessageReader, GatherBufferComesFromThePool) {
  BufferPool pool;
  std::string body(10000, 'q');
  Bytes wire = Bytes::copy(frame(body));
  Outcome o = run({wire.slice(0, 7), wire.slice(7, wire.size() - 7)}, 1 << 20, &pool);
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].view(), body);
  EXPECT_EQ(pool.stats().misses, 1u);
  EXPECT_EQ(o.messages[0].storage()->capacity(), 16384u);  // the 16 KiB class
  o.messages.clear();
  EXPECT_EQ(pool.stats().cached_bytes, 16384u);  // back in the pool once dropped
}

TEST(MessageReader, CompressedFlagIsUnimplemented) {
  expect_every_split(frame("zz", 1), {}, StatusCode::unimplemented);
  expect_every_split(frame("ok") + frame("zz", 1) + frame("never"), {"ok"},
                     StatusCode::unimplemented);
}

TEST(MessageReader, EveryOtherFlagsByteIsInternal) {
  for (int flags = 2; flags <= 255; ++flags) {
    SCOPED_TRACE(flags);
    Outcome o = run({Bytes::copy(frame("body", static_cast<uint8_t>(flags)))});
    EXPECT_TRUE(o.messages.empty());
    EXPECT_EQ(o.error.code, StatusCode::internal);
    EXPECT_NE(o.error.message.find("flags"), std::string::npos) << o.error.message;
  }
  expect_every_split(frame("body", 0x80), {}, StatusCode::internal);
}

TEST(MessageReader, MessageOfExactlyTheLimitIsAccepted) {
  std::string body(1000, 'm');
  expect_every_split(frame(body), {body}, StatusCode::ok, 1000);
}

TEST(MessageReader, MessageOnePastTheLimitIsResourceExhausted) {
  std::string body(1001, 'm');
  expect_every_split(frame(body), {}, StatusCode::resource_exhausted, 1000);
  // Rejected from the prefix alone: the body need not arrive.
  Outcome o = run({Bytes::copy(frame(body).substr(0, 5))}, 1000);
  EXPECT_EQ(o.error.code, StatusCode::resource_exhausted);
  EXPECT_NE(o.error.message.find("1001"), std::string::npos) << o.error.message;
  EXPECT_NE(o.error.message.find("1000"), std::string::npos) << o.error.message;
}

TEST(MessageReader, LimitZeroAcceptsOnlyEmptyMessages) {
  expect_every_split(frame(""), {""}, StatusCode::ok, 0);
  expect_every_split(frame("x"), {}, StatusCode::resource_exhausted, 0);
}

TEST(MessageReader, LargestLengthPrefixIsRejectedNotAllocated) {
  std::string prefix("\x00\xff\xff\xff\xff", 5);
  Outcome o = run({Bytes::copy(prefix)}, 64u << 20);
  EXPECT_EQ(o.error.code, StatusCode::resource_exhausted);
}

TEST(MessageReader, InputAfterAnErrorIsIgnored) {
  MessageReader reader(16, nullptr);
  Outcome out;
  Status st = reader.feed(Bytes::copy(frame(std::string(17, 'x'))), &collect, &out);
  EXPECT_EQ(st.code, StatusCode::resource_exhausted);
  EXPECT_TRUE(reader.failed());
  EXPECT_FALSE(reader.at_boundary());
  st = reader.feed(Bytes::copy(frame("fine")), &collect, &out);
  EXPECT_TRUE(st.ok());
  EXPECT_TRUE(out.messages.empty());
  // reset() makes the reader usable again (a new stream).
  reader.reset();
  st = reader.feed(Bytes::copy(frame("fine")), &collect, &out);
  EXPECT_TRUE(st.ok());
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].view(), "fine");
}

TEST(MessageReader, ReportsPartialProgress) {
  MessageReader reader(1 << 20, nullptr);
  Outcome out;
  std::string wire = frame(std::string(100, 'p'));
  EXPECT_TRUE(reader.at_boundary());
  ASSERT_TRUE(reader.feed(Bytes::copy(wire.substr(0, 3)), &collect, &out).ok());
  EXPECT_FALSE(reader.at_boundary());
  EXPECT_EQ(reader.partial_received(), 3u);
  EXPECT_EQ(reader.partial_expected(), 5u);
  ASSERT_TRUE(reader.feed(Bytes::copy(wire.substr(3, 50)), &collect, &out).ok());
  EXPECT_EQ(reader.partial_received(), 53u);
  EXPECT_EQ(reader.partial_expected(), 105u);
  ASSERT_TRUE(reader.feed(Bytes::copy(wire.substr(53)), &collect, &out).ok());
  EXPECT_TRUE(reader.at_boundary());
  ASSERT_EQ(out.messages.size(), 1u);
}

TEST(MessageReader, EmptyChunkChangesNothing) {
  MessageReader reader(1 << 20, nullptr);
  Outcome out;
  EXPECT_TRUE(reader.feed(Bytes(), &collect, &out).ok());
  EXPECT_TRUE(reader.at_boundary());
  EXPECT_TRUE(out.messages.empty());
}

TEST(MessageReader, GatheredMessageAboveLargestPoolClassUsesTheHeap) {
  BufferPool pool;
  std::string body(BufferPool::kLargest + 1, 'h');
  Bytes wire = Bytes::copy(frame(body));
  Outcome o = run({wire.slice(0, 100), wire.slice(100, wire.size() - 100)}, 8u << 20, &pool);
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].view(), body);
  EXPECT_EQ(pool.stats().oversize, 1u);
}

TEST(MessagePrefix, IsBigEndianWithZeroFlags) {
  uint8_t p[5];
  write_message_prefix(p, 0x01020304);
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[1], 1);
  EXPECT_EQ(p[2], 2);
  EXPECT_EQ(p[3], 3);
  EXPECT_EQ(p[4], 4);
}

}  // namespace
}  // namespace ember::grpc
