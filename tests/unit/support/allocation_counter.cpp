// The hooks behind allocation_counter.hpp, and a test (in every binary that
// links them) that they see each kind of allocation: without it, a count of
// zero elsewhere could mean the hooks are not wired up.
#include "tests/unit/support/allocation_counter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

extern "C" {
void* __real_malloc(size_t);
void* __real_calloc(size_t, size_t);
void* __real_realloc(void*, size_t);
void __real_free(void*);
int __real_posix_memalign(void**, size_t, size_t);
void* __real_aligned_alloc(size_t, size_t);
}

namespace {

thread_local bool t_armed = false;
thread_local uint64_t t_count = 0;

void note() noexcept {
  if (t_armed) ++t_count;
}

void* counted(size_t n) {
  note();
  void* p = __real_malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

void* counted_aligned(size_t n, std::align_val_t al) {
  note();
  void* p = nullptr;
  size_t a = std::max(static_cast<size_t>(al), sizeof(void*));
  if (__real_posix_memalign(&p, a, n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}

}  // namespace

namespace ember::test {

void arm_allocation_counter() noexcept {
  t_count = 0;
  t_armed = true;
  // Compiler barrier: GCC knows malloc reads no user memory and would
  // otherwise drop the store of `true` as dead.
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

uint64_t disarm_allocation_counter() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_armed = false;
  return t_count;
}

TEST(AllocationCounter, SeesEveryKindOfAllocation) {
  EXPECT_EQ(count_allocations([] { delete new int(1); }), 1u);
  EXPECT_EQ(count_allocations([] { delete[] new char[3]; }), 1u);
  EXPECT_EQ(count_allocations([] {
              void* volatile p = std::malloc(10);  // volatile: not elided
              std::free(p);
            }),
            1u);
  EXPECT_EQ(count_allocations([] {
              void* volatile p = std::calloc(2, 8);
              p = std::realloc(p, 64);
              std::free(p);
            }),
            2u);
}

}  // namespace ember::test

extern "C" {
void* __wrap_malloc(size_t n) {
  note();
  return __real_malloc(n);
}
void* __wrap_calloc(size_t n, size_t s) {
  note();
  return __real_calloc(n, s);
}
void* __wrap_realloc(void* p, size_t n) {
  note();
  return __real_realloc(p, n);
}
void __wrap_free(void* p) {
  __real_free(p);
}
int __wrap_posix_memalign(void** out, size_t align, size_t n) {
  note();
  return __real_posix_memalign(out, align, n);
}
void* __wrap_aligned_alloc(size_t align, size_t n) {
  note();
  return __real_aligned_alloc(align, n);
}
}

void* operator new(size_t n) {
  return counted(n);
}
void* operator new[](size_t n) {
  return counted(n);
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  note();
  return __real_malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  note();
  return __real_malloc(n ? n : 1);
}
void* operator new(size_t n, std::align_val_t al) {
  return counted_aligned(n, al);
}
void* operator new[](size_t n, std::align_val_t al) {
  return counted_aligned(n, al);
}
void operator delete(void* p) noexcept {
  __real_free(p);
}
void operator delete[](void* p) noexcept {
  __real_free(p);
}
void operator delete(void* p, size_t) noexcept {
  __real_free(p);
}
void operator delete[](void* p, size_t) noexcept {
  __real_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  __real_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  __real_free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  __real_free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  __real_free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  __real_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  __real_free(p);
}
void* operator new(size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned(n, al);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned(n, al);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  __real_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  __real_free(p);
}
