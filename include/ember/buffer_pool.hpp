// BufferPool: a loop's recycler of fixed-size byte buffers.
//
// Read buffers (libuv alloc_cb), assembled messages and output scratch come
// from here, so steady-state traffic allocates nothing. Buffers come in size
// classes; a request above the largest class goes to the heap.
//
// Thread contract: take() only on the owning thread (the loop's). A buffer may
// be released on any thread: a foreign release goes onto a lock-free list the
// owner drains on its next take(). Buffers may outlive the pool; they then
// free themselves.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "ember/bytes.hpp"

namespace ember {

struct BufferPoolOptions {
  // Bytes each size class may keep cached while idle.
  size_t max_cached_bytes_per_class = 8u << 20;
  // A loop calls decay() this often (0: never), so a burst's buffers go back
  // to the allocator within two periods once they are no longer needed.
  std::chrono::milliseconds decay_interval{250};
};

struct BufferPoolStats {
  uint64_t hits = 0;      // served from cache
  uint64_t misses = 0;    // new allocation
  uint64_t oversize = 0;  // above the largest class: heap, not pooled
  uint64_t remote_frees = 0;
  size_t cached_bytes = 0;
};

class BufferPool {
 public:
  // Size classes: 4 KiB, 16 KiB, 64 KiB, 256 KiB, 1 MiB, 4 MiB.
  static constexpr size_t kClassCount = 6;
  static constexpr size_t kSmallest = 4096;
  static constexpr size_t kLargest = kSmallest << (2 * (kClassCount - 1));

  explicit BufferPool(BufferPoolOptions options = {});
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Writable storage of at least `size` bytes (capacity is the class size).
  MutableBuffer take(size_t size);
  // Makes the calling thread the owner (the loop thread calls this on start).
  void bind_to_current_thread() noexcept;

  BufferPoolStats stats() const noexcept;
  // Frees every cached buffer (e.g. after a burst, to give memory back).
  void trim() noexcept;
  // Frees the cached buffers that no take() needed since the previous call
  // and returns their bytes: called periodically, memory held after a burst
  // goes back while a steady load keeps its working set. Owner thread only.
  size_t decay() noexcept;

  struct Core;  // shared with outstanding buffers; see buffer_pool.cpp

 private:
  Core* core_;
};

}  // namespace ember
