// SmallVector: inline up to N, heap past it, std::vector's semantics.
#include "ember/small_vector.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace ember {
namespace {

// Counts live instances, so a leak or a double destroy shows.
struct Tracked {
  static inline int live = 0;
  static inline int throw_after = -1;  // copies left before one throws
  std::string value;
  explicit Tracked(std::string v) : value(std::move(v)) { ++live; }
  Tracked(const Tracked& o) : value(o.value) {
    if (throw_after == 0) throw std::runtime_error("copy refused");
    if (throw_after > 0) --throw_after;
    ++live;
  }
  Tracked(Tracked&& o) noexcept : value(std::move(o.value)) { ++live; }
  Tracked& operator=(const Tracked&) = default;
  Tracked& operator=(Tracked&&) noexcept = default;
  ~Tracked() { --live; }
  friend bool operator==(const Tracked& a, const Tracked& b) { return a.value == b.value; }
};

class SmallVectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Tracked::live = 0;
    Tracked::throw_after = -1;
  }
  void TearDown() override { EXPECT_EQ(Tracked::live, 0) << "an element leaked or died twice"; }
};

using V = SmallVector<Tracked, 2>;

std::string long_text(char c) {
  return std::string(40, c);
}  // beyond SSO: moves must move

TEST_F(SmallVectorTest, StaysInlineUpToItsCapacity) {
  V v;
  EXPECT_TRUE(v.empty());
  EXPECT_TRUE(v.is_inline());
  v.emplace_back(long_text('a'));
  v.push_back(Tracked(long_text('b')));
  EXPECT_TRUE(v.is_inline());
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(v.capacity(), 2u);
  EXPECT_EQ(v[0].value, long_text('a'));
  EXPECT_EQ(v.back().value, long_text('b'));
}

TEST_F(SmallVectorTest, GrowsOntoTheHeapKeepingOrder) {
  V v;
  for (char c = 'a'; c < 'a' + 9; ++c)
    v.emplace_back(long_text(c));
  EXPECT_FALSE(v.is_inline());
  ASSERT_EQ(v.size(), 9u);
  EXPECT_GE(v.capacity(), 9u);
  char c = 'a';
  for (const Tracked& t : v)
    EXPECT_EQ(t.value, long_text(c++));
  EXPECT_EQ(Tracked::live, 9);
}

TEST_F(SmallVectorTest, PushingAnOwnElementSurvivesGrowth) {
  V v{Tracked(long_text('x')), Tracked(long_text('y'))};
  v.push_back(v[0]);  // the argument lives in the block growth frees
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[2].value, long_text('x'));
}

TEST_F(SmallVectorTest, CopiesAreIndependentInlineAndOnTheHeap) {
  for (int n : {1, 5}) {
    V a;
    for (int i = 0; i < n; ++i)
      a.emplace_back(std::to_string(i));
    V b(a);
    EXPECT_EQ(a, b);
    b[0].value = "changed";
    EXPECT_EQ(a[0].value, "0");
    V c;
    c.emplace_back("old");
    c = a;
    EXPECT_EQ(c, a);
    V& same = c;
    c = same;  // self-assignment keeps the elements
    EXPECT_EQ(c, a);
  }
}

TEST_F(SmallVectorTest, MovesTakeTheElementsAndLeaveTheSourceEmpty) {
  for (int n : {2, 6}) {
    V a;
    for (int i = 0; i < n; ++i)
      a.emplace_back(long_text(static_cast<char>('a' + i)));
    const Tracked* heap = a.is_inline() ? nullptr : a.data();
    V b(std::move(a));
    EXPECT_TRUE(a.empty());
    EXPECT_TRUE(a.is_inline());
    ASSERT_EQ(b.size(), static_cast<size_t>(n));
    EXPECT_EQ(b[n - 1].value, long_text(static_cast<char>('a' + n - 1)));
    if (heap) {
      EXPECT_EQ(b.data(), heap) << "a heap block moves by pointer";
    }
    V c;
    for (int i = 0; i < 5; ++i)
      c.emplace_back("c");
    c = std::move(b);  // frees c's own block first
    EXPECT_EQ(c.size(), static_cast<size_t>(n));
    EXPECT_TRUE(b.empty());
    b.emplace_back("reused");  // a moved-from vector is usable
    EXPECT_EQ(b.size(), 1u);
  }
}

TEST_F(SmallVectorTest, ClearKeepsCapacityAndPopBackDestroys) {
  V v;
  for (int i = 0; i < 4; ++i)
    v.emplace_back(std::to_string(i));
  size_t cap = v.capacity();
  v.pop_back();
  EXPECT_EQ(Tracked::live, 3);
  v.clear();
  EXPECT_EQ(Tracked::live, 0);
  EXPECT_EQ(v.capacity(), cap);
  v.reserve(cap + 10);
  EXPECT_GE(v.capacity(), cap + 10);
}

TEST_F(SmallVectorTest, AThrowingCopyLeaksNothing) {
  V src;
  for (int i = 0; i < 5; ++i)
    src.emplace_back(long_text('s'));
  Tracked::throw_after = 3;
  EXPECT_THROW(V copy(src), std::runtime_error);
  Tracked::throw_after = 1;
  EXPECT_THROW((V{Tracked("a"), Tracked("b"), Tracked("c")}), std::runtime_error);
  Tracked::throw_after = 0;
  V v;
  v.emplace_back("a");
  v.emplace_back("b");
  EXPECT_THROW(v.push_back(src[0]), std::runtime_error);  // fails while growing
  EXPECT_EQ(v.size(), 2u);
  EXPECT_TRUE(v.is_inline()) << "a failed growth keeps the old storage";
  Tracked::throw_after = -1;
}

TEST_F(SmallVectorTest, MovingOverAHeapBlockOrOntoItselfKeepsEveryElementOnce) {
  V heap;
  for (int i = 0; i < 6; ++i)
    heap.emplace_back(std::to_string(i));
  V small{Tracked("a")};
  heap = std::move(small);  // frees the block, takes the inline element
  ASSERT_EQ(heap.size(), 1u);
  EXPECT_TRUE(heap.is_inline());
  EXPECT_EQ(heap[0].value, "a");
  V& same = heap;
  heap = std::move(same);
  ASSERT_EQ(heap.size(), 1u);
  EXPECT_EQ(heap[0].value, "a");
  heap.reserve(3);  // inline onto the heap
  EXPECT_FALSE(heap.is_inline());
  EXPECT_EQ(heap[0].value, "a");
}

TEST_F(SmallVectorTest, VectorOperationsBehaveAsStdVectors) {
  std::vector<Tracked> src{Tracked("1"), Tracked("2"), Tracked("3")};
  V from_copy = src;  // implicit, as where a std::vector was returned before
  V from_move = std::move(src);
  EXPECT_EQ(from_copy, from_move);
  V range(from_copy.begin() + 1, from_copy.end());
  ASSERT_EQ(range.size(), 2u);
  EXPECT_EQ(range.at(0).value, "2");
  EXPECT_THROW((void)range.at(2), std::out_of_range);

  auto it = from_copy.erase(from_copy.begin());
  EXPECT_EQ(it->value, "2");
  EXPECT_EQ(from_copy, range);
  from_copy.erase(from_copy.cbegin(), from_copy.cend());
  EXPECT_TRUE(from_copy.empty());

  V other{Tracked("o")};
  swap(range, other);
  EXPECT_EQ(range.size(), 1u);
  EXPECT_EQ(other.size(), 2u);

  SmallVector<int, 2> ints{7};
  ints.resize(5);  // onto the heap, new elements zero
  EXPECT_EQ(ints, (SmallVector<int, 2>{7, 0, 0, 0, 0}));
  ints.resize(1);
  EXPECT_EQ(ints, (SmallVector<int, 2>{7}));
}

TEST_F(SmallVectorTest, EqualityComparesSizeAndElements) {
  V a{Tracked("1"), Tracked("2")}, b{Tracked("1"), Tracked("2")}, c{Tracked("1")};
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a == c);
  b[1].value = "3";
  EXPECT_FALSE(a == b);
}

}  // namespace
}  // namespace ember
