// SlabAllocator: size-class free lists for small, short-lived objects on one
// loop (nghttp2's streams and frames, per-stream state). Blocks are recycled,
// so steady-state traffic never reaches malloc. Single-threaded: use it only
// on the loop that owns it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace ember {

struct SlabStats {
  uint64_t fresh = 0;   // blocks obtained from the heap
  uint64_t reused = 0;  // blocks served from a free list
  uint64_t large = 0;   // above the largest class: straight to the heap
  size_t cached_bytes = 0;
};

class SlabAllocator {
 public:
  // Classes 16 B .. 64 KiB in powers of two.
  static constexpr size_t kClassCount = 13;
  static constexpr size_t kLargestClass = size_t{16} << (kClassCount - 1);

  explicit SlabAllocator(size_t max_cached_bytes_per_class = 1u << 20);
  ~SlabAllocator();
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // nullptr on allocation failure. Alignment: 16 bytes.
  void* allocate(size_t size) noexcept;
  void* allocate_zeroed(size_t count, size_t size) noexcept;
  void* reallocate(void* block, size_t size) noexcept;
  void deallocate(void* block) noexcept;

  SlabStats stats() const noexcept;

 private:
  struct FreeBlock {
    FreeBlock* next;
  };
  std::array<FreeBlock*, kClassCount> free_{};
  std::array<size_t, kClassCount> count_{};
  size_t max_cached_;
  SlabStats stats_;
};

}  // namespace ember
