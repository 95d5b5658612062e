// Arena: the per-request bump allocator.
#include "ember/arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace ember {
namespace {

bool aligned(const void* p, size_t align) {
  return reinterpret_cast<uintptr_t>(p) % align == 0;
}

TEST(Arena, EveryPowerOfTwoAlignmentIsHonoured) {
  Arena arena(1024);
  for (size_t align = 1; align <= 4096; align *= 2) {
    // An odd-sized piece first, so the next one needs padding.
    ASSERT_NE(arena.allocate(3, 1), nullptr);
    void* p = arena.allocate(24, align);
    ASSERT_NE(p, nullptr) << align;
    EXPECT_TRUE(aligned(p, align)) << align;
  }
  void* d = arena.allocate(8);
  EXPECT_TRUE(aligned(d, alignof(std::max_align_t)));
  EXPECT_TRUE(arena.ok());
}

TEST(Arena, PiecesDoNotOverlap) {
  Arena arena(256);
  std::vector<std::pair<uint8_t*, size_t>> pieces;
  for (size_t i = 1; i < 200; ++i) {
    auto* p = static_cast<uint8_t*>(arena.allocate(i % 61 + 1, 1u << (i % 5)));
    ASSERT_NE(p, nullptr);
    std::memset(p, static_cast<int>(i), i % 61 + 1);
    pieces.emplace_back(p, i % 61 + 1);
  }
  for (size_t i = 0; i < pieces.size(); ++i)
    for (size_t k = 0; k < pieces[i].second; ++k)
      ASSERT_EQ(pieces[i].first[k], static_cast<uint8_t>(i + 1)) << "piece " << i << " clobbered";
}

TEST(Arena, ResetReusesTheSameChunksWithoutAllocating) {
  Arena arena(512);
  std::vector<void*> first;
  for (int i = 0; i < 20; ++i)
    first.push_back(arena.allocate(100 + i));
  size_t reserved = arena.reserved();
  EXPECT_GT(reserved, 512u);  // several chunks were needed
  for (int round = 0; round < 3; ++round) {
    arena.reset();
    EXPECT_EQ(arena.used(), 0u);
    for (int i = 0; i < 20; ++i)
      EXPECT_EQ(arena.allocate(100 + i), first[i]) << "round " << round << " piece " << i;
    EXPECT_EQ(arena.reserved(), reserved);  // no chunk was added
  }
}

TEST(Arena, AllocationUpToTheLimitSucceedsAndOnePastFails) {
  Arena arena(4096, 1000);
  EXPECT_NE(arena.allocate(1000, 1), nullptr);
  EXPECT_EQ(arena.used(), 1000u);
  EXPECT_TRUE(arena.ok());
  EXPECT_EQ(arena.allocate(1, 1), nullptr);
  EXPECT_FALSE(arena.ok());
  arena.reset();
  EXPECT_TRUE(arena.ok());
  EXPECT_EQ(arena.allocate(1001, 1), nullptr);
  EXPECT_FALSE(arena.ok());
}

TEST(Arena, LimitCountsAlignmentPadding) {
  Arena arena(4096, 64);
  ASSERT_NE(arena.allocate(1, 1), nullptr);
  // 1 byte used; a 16-aligned piece needs 15 bytes of padding first.
  EXPECT_EQ(arena.allocate(49, 16), nullptr);
  EXPECT_NE(arena.allocate(48, 16), nullptr);
  EXPECT_EQ(arena.used(), 64u);
}

TEST(Arena, RequestPastTheLimitDoesNotGrowTheArena) {
  Arena arena(256, 1000);
  ASSERT_NE(arena.allocate(10, 1), nullptr);
  size_t reserved = arena.reserved();
  EXPECT_EQ(arena.allocate(5000, 1), nullptr);
  EXPECT_EQ(arena.reserved(), reserved);
}

TEST(Arena, HugeRequestsFailInsteadOfLooping) {
  Arena arena(256);
  EXPECT_EQ(arena.allocate(SIZE_MAX, 1), nullptr);
  EXPECT_EQ(arena.allocate(SIZE_MAX - 8, 16), nullptr);
  EXPECT_EQ(arena.allocate_array<char>(SIZE_MAX), nullptr);
  EXPECT_EQ(arena.allocate_array<uint64_t>(SIZE_MAX / 4), nullptr);
  EXPECT_FALSE(arena.ok());
  arena.reset();
  EXPECT_NE(arena.allocate(16), nullptr);
}

TEST(Arena, CallerProvidedInitialBlockIsUsedFirst) {
  alignas(64) uint8_t block[256];
  Arena arena(std::span<uint8_t>(block), 1024, Arena::kUnlimited);
  EXPECT_EQ(arena.reserved(), 256u);
  auto* a = static_cast<uint8_t*>(arena.allocate(200, 1));
  EXPECT_EQ(a, block);
  auto* b = static_cast<uint8_t*>(arena.allocate(100, 1));  // does not fit: heap chunk
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b < block || b >= block + sizeof block);
  EXPECT_EQ(arena.reserved(), 256u + 1024u);
  arena.reset();
  EXPECT_EQ(arena.allocate(200, 1), block);
  arena.trim();
  EXPECT_EQ(arena.reserved(), 256u);  // the initial block stays, heap chunks go
  EXPECT_EQ(arena.allocate(10, 1), block);
}

TEST(Arena, InitialBlockWithLimit) {
  uint8_t block[128];
  Arena arena(std::span<uint8_t>(block), 64, 128);
  EXPECT_NE(arena.allocate(128, 1), nullptr);
  EXPECT_EQ(arena.allocate(1, 1), nullptr);
  EXPECT_EQ(arena.reserved(), 128u);
}

TEST(Arena, LargeRequestGetsItsOwnChunk) {
  Arena arena(128);
  void* p = arena.allocate(10'000);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 10'000);
  EXPECT_GE(arena.reserved(), 10'000u);
  EXPECT_NE(arena.allocate(8), nullptr);
}

TEST(Arena, CopyPlacesTheBytesInTheArena) {
  Arena arena(128);
  std::string source = "request-scoped text";
  std::string_view copy = arena.copy(source);
  EXPECT_EQ(copy, source);
  EXPECT_NE(copy.data(), source.data());
  source[0] = 'X';
  EXPECT_EQ(copy, "request-scoped text");
  EXPECT_TRUE(arena.copy("").empty());
  EXPECT_TRUE(arena.ok());
}

TEST(Arena, CopyOutOfSpaceIsEmptyAndNotOk) {
  Arena arena(64, 10);
  EXPECT_EQ(arena.copy("0123456789"), "0123456789");
  EXPECT_TRUE(arena.copy("x").empty());
  EXPECT_FALSE(arena.ok());
}

TEST(Arena, AllocateArrayIsTypedAndAligned) {
  Arena arena(256);
  ASSERT_NE(arena.allocate(1, 1), nullptr);
  auto* d = arena.allocate_array<double>(10);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(aligned(d, alignof(double)));
  for (int i = 0; i < 10; ++i)
    d[i] = i;
  EXPECT_EQ(d[9], 9.0);
}

// A limit that falls inside a later chunk, reached through mixed sizes and
// alignments: every byte up to it is handed out, padding counted, none past
// it; after a reset the same sequence gets the same pieces.
TEST(Arena, LimitInsideALaterChunkAcrossResets) {
  const size_t limit = 1000;
  Arena arena(256, limit);
  auto fill = [&] {
    std::vector<void*> got;
    size_t padded = 0;
    for (size_t i = 0;; ++i) {
      size_t size = 1 + i % 37;
      size_t align = size_t{1} << (i % 4);
      size_t before = arena.used();
      void* p = arena.allocate(size, align);
      if (!p) {
        EXPECT_FALSE(arena.ok());
        EXPECT_EQ(arena.used(), before);  // a failure hands out nothing
        break;
      }
      EXPECT_TRUE(aligned(p, align));
      EXPECT_GE(arena.used(), before + size);
      padded = arena.used();
      got.push_back(p);
    }
    EXPECT_LE(padded, limit);
    EXPECT_GT(padded, limit - 37 - 8);  // stopped only for want of room
    EXPECT_EQ(arena.allocate(limit - arena.used() + 1, 1), nullptr);
    return got;
  };
  std::vector<void*> first = fill();
  size_t reserved = arena.reserved();
  arena.reset();
  EXPECT_TRUE(arena.ok());
  EXPECT_EQ(fill(), first);
  EXPECT_EQ(arena.reserved(), reserved);
}

}  // namespace
}  // namespace ember
