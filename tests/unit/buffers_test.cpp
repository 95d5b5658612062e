// Bytes, MutableBuffer and BufferPool: counted sharing and recycling.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "tests/unit/test_util.hpp"

namespace ember {
namespace {

// ---- Bytes -----------------------------------------------------------------

TEST(Bytes, CopyMakesAPrivateCopy) {
  std::string source = "hello";
  Bytes b = Bytes::copy(source);
  EXPECT_EQ(b.view(), "hello");
  EXPECT_NE(b.data(), reinterpret_cast<const uint8_t*>(source.data()));
  ASSERT_NE(b.storage(), nullptr);
  EXPECT_EQ(b.storage()->use_count(), 1u);
  source[0] = 'j';
  EXPECT_EQ(b.view(), "hello");
}

TEST(Bytes, EmptyCopyHasNoStorage) {
  Bytes b = Bytes::copy(std::string_view());
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.storage(), nullptr);
}

TEST(Bytes, CopiesAndSlicesShareOneStorage) {
  Bytes b = Bytes::copy(std::string_view("hello world"));
  BufferStorage* s = b.storage();
  Bytes world = b.slice(6, 5);
  EXPECT_EQ(world.view(), "world");
  EXPECT_EQ(world.data(), b.data() + 6);
  EXPECT_EQ(world.storage(), s);
  EXPECT_EQ(s->use_count(), 2u);
  {
    Bytes again = world;
    EXPECT_EQ(s->use_count(), 3u);
    Bytes moved = std::move(again);
    EXPECT_EQ(s->use_count(), 3u);
    EXPECT_TRUE(again.empty());
    EXPECT_EQ(again.storage(), nullptr);
  }
  EXPECT_EQ(s->use_count(), 2u);
  Bytes empty_tail = b.slice(11, 0);
  EXPECT_TRUE(empty_tail.empty());
  EXPECT_EQ(s->use_count(), 3u);
}

TEST(Bytes, LastReferenceDestroysTheStorageOnce) {
  int destroyed = 0;
  {
    Bytes a = test::counted_bytes("abcdef", &destroyed);
    Bytes b = a.slice(1, 2);
    Bytes c;
    c = b;
    a = Bytes();
    EXPECT_EQ(destroyed, 0);
    b = std::move(c);  // drops b's old reference, takes c's
    EXPECT_EQ(destroyed, 0);
    EXPECT_EQ(b.view(), "bc");
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(Bytes, SelfAssignmentKeepsTheReference) {
  int destroyed = 0;
  Bytes a = test::counted_bytes("x", &destroyed);
  Bytes& alias = a;
  a = alias;
  a = std::move(alias);
  EXPECT_EQ(a.view(), "x");
  EXPECT_EQ(a.storage()->use_count(), 1u);
  a = Bytes();
  EXPECT_EQ(destroyed, 1);
}

TEST(Bytes, FromTakesTheContainerWithoutCopying) {
  std::string s(1000, 's');  // beyond the small-string buffer
  const char* p = s.data();
  Bytes b = Bytes::from(std::move(s));
  EXPECT_EQ(reinterpret_cast<const char*>(b.data()), p);
  EXPECT_EQ(b.size(), 1000u);

  std::vector<uint8_t> v(64, 7);
  const uint8_t* q = v.data();
  Bytes c = Bytes::from(std::move(v));
  EXPECT_EQ(c.data(), q);
  EXPECT_EQ(c.size(), 64u);
  EXPECT_TRUE(Bytes::from(std::string()).empty());
}

TEST(Bytes, UnownedReferencesCallerMemory) {
  static const char kTable[] = "static table";
  Bytes b = Bytes::unowned(std::string_view(kTable));
  EXPECT_EQ(b.storage(), nullptr);
  EXPECT_EQ(reinterpret_cast<const char*>(b.data()), kTable);
  Bytes s = b.slice(7, 5);
  EXPECT_EQ(s.view(), "table");
  EXPECT_EQ(s.storage(), nullptr);
}

TEST(Bytes, EqualityComparesContent) {
  EXPECT_EQ(Bytes::copy(std::string_view("abc")), Bytes::unowned(std::string_view("abc")));
  EXPECT_FALSE(Bytes::copy(std::string_view("abc")) == Bytes::copy(std::string_view("abd")));
  EXPECT_EQ(Bytes(), Bytes::copy(std::string_view()));
  EXPECT_EQ(Bytes::copy(std::string_view("xyz")).to_vector(),
            (std::vector<uint8_t>{'x', 'y', 'z'}));
}

TEST(MutableBuffer, FreezeHandsOverTheStorage) {
  MutableBuffer m = MutableBuffer::allocate(100);
  ASSERT_TRUE(m);
  EXPECT_EQ(m.capacity(), 100u);
  uint8_t* p = m.data();
  std::memcpy(p, "frozen", 6);
  Bytes b = std::move(m).freeze(6);
  EXPECT_FALSE(m);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.view(), "frozen");
  EXPECT_EQ(b.storage()->use_count(), 1u);
}

TEST(MutableBuffer, MoveAssignReleasesTheOldStorage) {
  MutableBuffer a = MutableBuffer::allocate(10);
  MutableBuffer b = MutableBuffer::allocate(20);
  a = std::move(b);
  EXPECT_EQ(a.capacity(), 20u);
  EXPECT_FALSE(b);
  EXPECT_TRUE(std::move(b).freeze(0).empty());
  BufferStorage* s = std::move(a).release();
  ASSERT_NE(s, nullptr);
  Bytes adopted = Bytes::adopt(s, 5);
  EXPECT_EQ(adopted.storage()->use_count(), 1u);
}

// ---- BufferPool ------------------------------------------------------------

TEST(BufferPool, SizeClasses) {
  BufferPool pool;
  struct Case {
    size_t ask, capacity;
  } cases[] = {{1, 4096},
               {4096, 4096},
               {4097, 16384},
               {16384, 16384},
               {16385, 65536},
               {65537, 256 << 10},
               {(256 << 10) + 1, 1 << 20},
               {(1 << 20) + 1, 4 << 20},
               {BufferPool::kLargest, BufferPool::kLargest}};
  for (const Case& c : cases) {
    MutableBuffer m = pool.take(c.ask);
    EXPECT_EQ(m.capacity(), c.capacity) << c.ask;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data()) % 64, 0u);
  }
  EXPECT_EQ(pool.stats().oversize, 0u);
  MutableBuffer big = pool.take(BufferPool::kLargest + 1);
  EXPECT_EQ(big.capacity(), BufferPool::kLargest + 1);  // exact, from the heap
  EXPECT_EQ(pool.stats().oversize, 1u);
}

TEST(BufferPool, ReleasedBufferIsReused) {
  BufferPool pool;
  uint8_t* first;
  {
    MutableBuffer m = pool.take(1000);
    first = m.data();
  }
  EXPECT_EQ(pool.stats().cached_bytes, 4096u);
  MutableBuffer again = pool.take(4000);
  EXPECT_EQ(again.data(), first);
  BufferPoolStats s = pool.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.cached_bytes, 0u);
}

TEST(BufferPool, FrozenBytesReturnWhenTheLastSliceGoes) {
  BufferPool pool;
  MutableBuffer m = pool.take(10);
  uint8_t* p = m.data();
  Bytes whole = std::move(m).freeze(10);
  Bytes part = whole.slice(2, 3);
  whole = Bytes();
  EXPECT_EQ(pool.stats().cached_bytes, 0u);  // `part` still holds it
  part = Bytes();
  EXPECT_EQ(pool.stats().cached_bytes, 4096u);
  EXPECT_EQ(pool.take(10).data(), p);
}

TEST(BufferPool, ReleaseOnAnotherThreadIsReusedByTheOwner) {
  BufferPool pool;
  Bytes b = pool.take(5000).freeze(5000);
  const uint8_t* p = b.data();
  std::thread([moved = std::move(b)]() mutable { moved = Bytes(); }).join();
  BufferPoolStats s = pool.stats();
  EXPECT_EQ(s.remote_frees, 1u);
  EXPECT_EQ(s.cached_bytes, 0u);  // on the remote list until the owner drains it
  MutableBuffer again = pool.take(5000);
  EXPECT_EQ(again.data(), p);
  EXPECT_EQ(pool.stats().hits, 1u);
}

TEST(BufferPool, ManyRemoteReleasesFromSeveralThreads) {
  BufferPool pool;
  std::vector<std::vector<Bytes>> batches(4);
  for (int i = 0; i < 64; ++i)
    batches[i % 4].push_back(pool.take(100).freeze(100));
  std::vector<std::thread> threads;
  for (auto& batch : batches)
    threads.emplace_back([mine = std::move(batch)]() mutable { mine.clear(); });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(pool.stats().remote_frees, 64u);
  std::vector<MutableBuffer> again;
  for (int i = 0; i < 64; ++i)
    again.push_back(pool.take(100));
  EXPECT_EQ(pool.stats().misses, 64u);
  EXPECT_EQ(pool.stats().hits, 64u);  // every remote release was recycled
}

TEST(BufferPool, BuffersOutliveThePool) {
  Bytes survivor;
  Bytes remote;
  {
    BufferPool pool;
    survivor = pool.take(100).freeze(5);
    std::memcpy(const_cast<uint8_t*>(survivor.data()), "alive", 5);
    remote = pool.take(100).freeze(3);
  }
  EXPECT_EQ(survivor.view(), "alive");  // ASan would flag a use after free
  survivor = Bytes();                   // frees itself; LeakSanitizer checks it
  std::thread([r = std::move(remote)]() mutable { r = Bytes(); }).join();
}

TEST(BufferPool, CacheIsCappedPerClass) {
  BufferPoolOptions opts;
  opts.max_cached_bytes_per_class = 3 * 4096;
  BufferPool pool(opts);
  std::vector<MutableBuffer> held;
  for (int i = 0; i < 5; ++i)
    held.push_back(pool.take(1));
  held.clear();
  EXPECT_EQ(pool.stats().cached_bytes, 3u * 4096);
}

TEST(BufferPool, TrimFreesTheCache) {
  BufferPool pool;
  { MutableBuffer a = pool.take(1), b = pool.take(20000); }
  EXPECT_EQ(pool.stats().cached_bytes, 4096u + 65536u);
  pool.trim();
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
  MutableBuffer c = pool.take(1);
  EXPECT_EQ(pool.stats().misses, 3u);
}

TEST(BufferPool, DecayFreesOnlyWhatAWholePeriodDidNotNeed) {
  BufferPool pool;
  std::vector<MutableBuffer> burst;
  for (int i = 0; i < 8; ++i)
    burst.push_back(pool.take(1));
  burst.clear();                // a burst is over: 8 buffers cached
  EXPECT_EQ(pool.decay(), 0u);  // the burst fell into this period
  // A steady load of 2 buffers at a time during the next period.
  for (int round = 0; round < 3; ++round) {
    MutableBuffer a = pool.take(1), b = pool.take(1);
  }
  EXPECT_EQ(pool.decay(), 6u * 4096);  // 6 were never needed in the period
  EXPECT_EQ(pool.stats().cached_bytes, 2u * 4096);
  for (int round = 0; round < 3; ++round) {
    MutableBuffer a = pool.take(1), b = pool.take(1);
  }
  EXPECT_EQ(pool.decay(), 0u);         // the working set stays
  EXPECT_EQ(pool.decay(), 2u * 4096);  // idle for a whole period: all goes
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
}

TEST(BufferPool, BindMovesOwnershipToAnotherThread) {
  BufferPool pool;
  uint8_t* p = nullptr;
  uint64_t hits = 0;
  std::thread([&] {
    pool.bind_to_current_thread();
    {
      MutableBuffer m = pool.take(1);
      p = m.data();
    }  // released by the owner: cached
    MutableBuffer again = pool.take(1);
    hits = pool.stats().hits;
    EXPECT_EQ(again.data(), p);
  }).join();
  EXPECT_EQ(hits, 1u);
}

}  // namespace
}  // namespace ember
