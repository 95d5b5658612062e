// SlabAllocator: the per-loop free lists behind nghttp2 and per-stream state.
#include "ember/slab.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace ember {
namespace {

TEST(Slab, FreedBlockIsReusedForTheSameClass) {
  SlabAllocator slab;
  void* p = slab.allocate(100);
  ASSERT_NE(p, nullptr);
  slab.deallocate(p);
  EXPECT_EQ(slab.allocate(65), p);  // 65..128 share a class
  SlabStats s = slab.stats();
  EXPECT_EQ(s.fresh, 1u);
  EXPECT_EQ(s.reused, 1u);
  void* other = slab.allocate(129);  // the next class up is fresh
  EXPECT_NE(other, p);
  EXPECT_EQ(slab.stats().fresh, 2u);
  slab.deallocate(other);
  slab.deallocate(p);
}

TEST(Slab, BlocksAreSixteenByteAligned) {
  SlabAllocator slab;
  std::vector<void*> blocks;
  for (size_t size : {0u, 1u, 15u, 16u, 17u, 1000u, 70000u}) {
    void* p = slab.allocate(size);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u) << size;
    blocks.push_back(p);
  }
  for (void* p : blocks)
    slab.deallocate(p);
}

TEST(Slab, ReallocateKeepsTheContents) {
  SlabAllocator slab;
  auto* p = static_cast<char*>(slab.allocate(16));
  std::memcpy(p, "0123456789abcdef", 16);
  auto* q = static_cast<char*>(slab.reallocate(p, 5000));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(std::memcmp(q, "0123456789abcdef", 16), 0);
  // Shrinking (or growing within the class) keeps the block.
  EXPECT_EQ(slab.reallocate(q, 100), q);
  EXPECT_EQ(slab.reallocate(q, 8192), q);
  // Into a large block and back out of it.
  auto* big = static_cast<char*>(slab.reallocate(q, SlabAllocator::kLargestClass * 2));
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(std::memcmp(big, "0123456789abcdef", 16), 0);
  std::memset(big + 16, 'z', SlabAllocator::kLargestClass * 2 - 16);
  auto* bigger = static_cast<char*>(slab.reallocate(big, SlabAllocator::kLargestClass * 3));
  ASSERT_NE(bigger, nullptr);
  EXPECT_EQ(std::memcmp(bigger, "0123456789abcdef", 16), 0);
  EXPECT_EQ(bigger[SlabAllocator::kLargestClass * 2 - 1], 'z');
  EXPECT_EQ(slab.reallocate(bigger, 0), nullptr);  // frees
}

TEST(Slab, ReallocateNullAllocates) {
  SlabAllocator slab;
  void* p = slab.reallocate(nullptr, 40);
  ASSERT_NE(p, nullptr);
  slab.deallocate(p);
  slab.deallocate(nullptr);  // a no-op, like free(NULL)
}

TEST(Slab, LargeBlocksBypassTheFreeLists) {
  SlabAllocator slab;
  void* p = slab.allocate(SlabAllocator::kLargestClass + 1);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, SlabAllocator::kLargestClass + 1);
  EXPECT_EQ(slab.stats().large, 1u);
  slab.deallocate(p);
  EXPECT_EQ(slab.stats().cached_bytes, 0u);
  // The largest class itself is still pooled.
  void* q = slab.allocate(SlabAllocator::kLargestClass);
  slab.deallocate(q);
  EXPECT_EQ(slab.stats().cached_bytes, SlabAllocator::kLargestClass);
  EXPECT_EQ(slab.allocate(SlabAllocator::kLargestClass), q);
  slab.deallocate(q);
}

TEST(Slab, ZeroedAllocationIsZeroEvenWhenReused) {
  SlabAllocator slab;
  auto* p = static_cast<uint8_t*>(slab.allocate(64));
  std::memset(p, 0xAB, 64);
  slab.deallocate(p);
  auto* z = static_cast<uint8_t*>(slab.allocate_zeroed(8, 8));
  ASSERT_EQ(z, p);
  for (int i = 0; i < 64; ++i)
    ASSERT_EQ(z[i], 0) << i;
  slab.deallocate(z);
  EXPECT_EQ(slab.allocate_zeroed(SIZE_MAX / 2, 4), nullptr);  // count * size overflows
}

TEST(Slab, CacheIsCappedPerClass) {
  SlabAllocator slab(64);  // 64 bytes per class: four 16-byte blocks at least
  std::vector<void*> blocks;
  for (int i = 0; i < 10; ++i)
    blocks.push_back(slab.allocate(16));
  for (void* p : blocks)
    slab.deallocate(p);
  EXPECT_EQ(slab.stats().cached_bytes, 4u * 16);
}

}  // namespace
}  // namespace ember
