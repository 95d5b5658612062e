// Arena: a bump allocator for per-request scratch, reset in one step.
//
// allocate() hands out aligned pieces of the current chunk; reset() rewinds to
// the start and keeps every chunk, so a steady stream of requests allocates
// nothing. An arena may start in caller-provided memory (a stream's inline
// bytes, a flare's fixed 256 KiB) and may have a hard limit, past which
// allocate() returns nullptr instead of growing.
//
// Not thread-safe; objects placed in an arena are not destroyed by reset().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace ember {

class Arena {
 public:
  static constexpr size_t kUnlimited = SIZE_MAX;

  // Chunks of `chunk_size` bytes from the heap, up to `limit` bytes in all.
  explicit Arena(size_t chunk_size = 4096, size_t limit = kUnlimited);
  // First chunk is `initial` (not owned; must outlive the arena).
  Arena(std::span<uint8_t> initial, size_t chunk_size, size_t limit);
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // nullptr when the limit would be exceeded. `align` must be a power of two.
  void* allocate(size_t size, size_t align = alignof(std::max_align_t)) noexcept {
    // Inline: most allocations fit the current chunk, whose end_ is capped
    // at the limit (each byte handed out moves cur_ and used_ alike).
    uintptr_t at = (cur_ + (align - 1)) & ~(uintptr_t(align) - 1);
    if (cur_ != 0 && at <= end_ && size <= end_ - at) {
      used_ += at + size - cur_;
      cur_ = at + size;
      return reinterpret_cast<void*>(at);
    }
    return allocate_slow(size, align);
  }
  template <class T>
  T* allocate_array(size_t n) noexcept {
    if (n > SIZE_MAX / sizeof(T)) return nullptr;
    return static_cast<T*>(allocate(n * sizeof(T), alignof(T)));
  }
  // Copies `s` into the arena; empty view when out of space (check ok()).
  std::string_view copy(std::string_view s) noexcept;

  // Rewinds to empty in O(chunks); keeps the chunks for reuse.
  void reset() noexcept;
  // Returns the chunks beyond the first to the heap.
  void trim() noexcept;

  size_t used() const noexcept { return used_; }
  size_t limit() const noexcept { return limit_; }
  size_t reserved() const noexcept;              // bytes of chunks held
  bool ok() const noexcept { return !failed_; }  // false once an allocation failed since reset

 private:
  struct Chunk {
    uint8_t* data;
    size_t size;
    std::unique_ptr<uint8_t[]> owned;
  };
  void* allocate_slow(size_t size, size_t align) noexcept;
  bool next_chunk(size_t need) noexcept;
  // cur_ to the start of chunks_[index], end_ to match.
  void enter_chunk(size_t index) noexcept;
  // end_: the current chunk's end, or less when the limit comes first.
  void cap_end() noexcept;

  std::vector<Chunk> chunks_;
  size_t current_ = 0;  // index into chunks_
  uintptr_t cur_ = 0;   // next free byte in chunks_[current_]; 0 before the first chunk
  uintptr_t end_ = 0;
  size_t used_ = 0;  // bytes handed out since reset, padding included
  size_t chunk_size_;
  size_t limit_;
  bool failed_ = false;
};

}  // namespace ember
