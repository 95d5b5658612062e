// IoChain: corked copies, referenced payloads, partial writes.
#include "ember/io_chain.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/test_util.hpp"

namespace ember {
namespace {

using test::flatten;

TEST(IoChain, ContiguousCopiesCoalesceIntoOneIovec) {
  IoChain chain;
  chain.append_copy("ab");
  chain.append_copy("cd");
  chain.append_copy(std::string(100, 'e'));
  EXPECT_EQ(chain.iov_count(), 1u);
  EXPECT_EQ(chain.size(), 104u);
  EXPECT_EQ(flatten(chain), "abcd" + std::string(100, 'e'));
}

TEST(IoChain, PayloadIsReferencedNotCopied) {
  Bytes payload = Bytes::copy(std::string_view("PAYLOAD"));
  IoChain chain;
  chain.append_copy("hdr");
  chain.append(payload);
  chain.append_copy("tail");
  ASSERT_EQ(chain.iov_count(), 3u);
  EXPECT_EQ(chain.iov()[1].iov_base, payload.data());
  EXPECT_EQ(chain.iov()[1].iov_len, payload.size());
  EXPECT_EQ(payload.storage()->use_count(), 2u);
  EXPECT_EQ(flatten(chain), "hdrPAYLOADtail");
}

TEST(IoChain, AdjacentSlicesOfOnePayloadCoalesce) {
  Bytes payload = Bytes::copy(std::string_view("0123456789"));
  IoChain chain;
  chain.append(payload.slice(0, 4));
  chain.append(payload.slice(4, 6));
  EXPECT_EQ(chain.iov_count(), 1u);
  EXPECT_EQ(flatten(chain), "0123456789");
  chain.append(payload.slice(0, 1));  // not contiguous: a new iovec
  EXPECT_EQ(chain.iov_count(), 2u);
}

TEST(IoChain, PayloadReferencesAreHeldUntilClear) {
  int destroyed = 0;
  IoChain chain;
  {
    Bytes payload = test::counted_bytes("kept alive", &destroyed);
    chain.append(payload);
    chain.append(std::move(payload));
  }
  EXPECT_EQ(destroyed, 0);
  chain.consume(chain.size());  // written, but the write may still be in flight
  EXPECT_TRUE(chain.empty());
  EXPECT_EQ(destroyed, 0);
  chain.clear();
  EXPECT_EQ(destroyed, 1);
}

TEST(IoChain, EmptyAppendsAddNothing) {
  IoChain chain;
  chain.append(Bytes());
  chain.append_copy("", 0);
  chain.append_unowned("x", 0);
  EXPECT_TRUE(chain.empty());
  EXPECT_EQ(chain.iov_count(), 0u);
}

TEST(IoChain, ConsumeAcrossIovecBoundaries) {
  Bytes a = Bytes::copy(std::string_view("AAA"));
  Bytes b = Bytes::copy(std::string_view("BBBB"));
  static const char kC[] = "CCCCC";
  IoChain chain;
  chain.append(a);
  chain.append(b);
  chain.append_unowned(kC, 5);
  ASSERT_EQ(chain.iov_count(), 3u);

  chain.consume(5);  // all of A and half of B
  EXPECT_EQ(chain.size(), 7u);
  ASSERT_EQ(chain.iov_count(), 2u);
  EXPECT_EQ(chain.iov()[0].iov_base, b.data() + 2);
  EXPECT_EQ(flatten(chain), "BBCCCCC");

  chain.consume(2);  // exactly to a boundary
  ASSERT_EQ(chain.iov_count(), 1u);
  EXPECT_EQ(flatten(chain), "CCCCC");

  chain.consume(0);
  EXPECT_EQ(chain.size(), 5u);
  chain.consume(4);
  EXPECT_EQ(flatten(chain), "C");
  chain.consume(1);
  EXPECT_TRUE(chain.empty());
  EXPECT_EQ(chain.iov_count(), 0u);
}

TEST(IoChain, AppendAfterPartialConsume) {
  IoChain chain;
  chain.append_copy("hello ");
  chain.consume(3);
  chain.append_copy("world");  // contiguous with the remaining "lo "
  EXPECT_EQ(flatten(chain), "lo world");
  EXPECT_EQ(chain.iov_count(), 1u);
}

TEST(IoChain, CopyLargerThanACorkChunk) {
  std::string big = test::random_bytes(IoChain::kCorkChunk * 2 + 3, 9);
  IoChain chain;
  chain.append_copy("x");
  chain.append_copy(big);
  chain.append_copy("y");
  EXPECT_EQ(flatten(chain), "x" + big + "y");
}

TEST(IoChain, ClearKeepsCorkMemoryForReuse) {
  IoChain chain;
  for (int i = 0; i < 3; ++i)
    chain.append_copy(std::string(IoChain::kCorkChunk - 10, 'a'));
  const void* first = chain.iov()[0].iov_base;
  chain.clear();
  EXPECT_TRUE(chain.empty());
  chain.append_copy("again");
  EXPECT_EQ(chain.iov()[0].iov_base, first);  // same cork chunk, no new allocation
  EXPECT_EQ(flatten(chain), "again");
}

TEST(IoChain, ManySmallPiecesKeepTheirOrder) {
  IoChain chain;
  std::string expected;
  Bytes payload = Bytes::copy(std::string_view("<payload>"));
  for (int i = 0; i < 5000; ++i) {
    std::string piece = std::to_string(i) + ",";
    chain.append_copy(piece);
    expected += piece;
    if (i % 100 == 0) {
      chain.append(payload);
      expected += "<payload>";
    }
  }
  EXPECT_EQ(flatten(chain), expected);
  EXPECT_EQ(chain.size(), expected.size());
}

}  // namespace
}  // namespace ember
