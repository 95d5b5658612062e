// Counts heap allocations per thread, for tests that prove a hot path
// allocates nothing in steady state.
//
// A binary that includes this links allocation_counter.cpp, which replaces
// the global operator new/delete and wraps malloc, calloc, realloc,
// posix_memalign and aligned_alloc at link time (ember_add_allocation_tests
// in tests/unit/CMakeLists.txt), so allocations made inside Ember's static
// libraries and C dependencies linked statically are seen too. Counting is
// per thread and only while armed: gtest's own bookkeeping is not counted.
#pragma once

#include <cstdint>

namespace ember::test {

// Resets this thread's count to zero and starts counting.
void arm_allocation_counter() noexcept;
// Stops counting on this thread; returns the count since arm.
uint64_t disarm_allocation_counter() noexcept;

// Allocations made by `fn` on this thread.
template <class Fn>
uint64_t count_allocations(Fn&& fn) {
  arm_allocation_counter();
  fn();
  return disarm_allocation_counter();
}

// Counts while in scope.
class CountingAllocations {
 public:
  CountingAllocations() noexcept { arm_allocation_counter(); }
  ~CountingAllocations() { (void)disarm_allocation_counter(); }
  CountingAllocations(const CountingAllocations&) = delete;
  CountingAllocations& operator=(const CountingAllocations&) = delete;
  // Stops counting; returns the count.
  uint64_t stop() noexcept { return disarm_allocation_counter(); }
};

}  // namespace ember::test
