// IoChain: output gathered for one vectored write.
//
// Small pieces (frame headers, HPACK blocks) are copied into a cork buffer and
// coalesced into as few iovecs as possible; payloads are appended by reference
// (Bytes) and never copied. The owner writes iov() with one writev/uv_write,
// calls consume() for what the kernel took, and clear() when done, which drops
// the payload references. Capacity is kept across clear(): no allocation in
// steady state.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "ember/bytes.hpp"

namespace ember {

class BufferPool;

// The read side: memory the next socket read should land in instead of a
// pool buffer (a large payload's final place), so no copy follows the read.
struct ReadTarget {
  BufferStorage* storage = nullptr;  // holds `data`; the read's Bytes share it
  uint8_t* data = nullptr;
  size_t size = 0;
};

class IoChain {
 public:
  static constexpr size_t kCorkChunk = 16 * 1024;

  IoChain() = default;
  ~IoChain();
  IoChain(const IoChain&) = delete;
  IoChain& operator=(const IoChain&) = delete;

  // Cork memory from `pool` (a loop's), handed back on every clear(): an
  // idle connection then holds no cork, and the next writer on the loop
  // reuses the same warm chunk. Without a pool the chunks stay with the
  // chain across clear(). Call before the first append.
  void use_pool(BufferPool& pool) noexcept { pool_ = &pool; }

  // Copies `n` bytes into the cork.
  void append_copy(const void* data, size_t n);
  void append_copy(std::string_view s) { append_copy(s.data(), s.size()); }
  // References the payload; keeps it alive until clear().
  void append(const Bytes& payload);
  void append(Bytes&& payload);
  // References memory the caller keeps valid and unchanged until clear().
  void append_unowned(const void* data, size_t n);

  const iovec* iov() const noexcept { return iov_.data() + first_; }
  size_t iov_count() const noexcept { return iov_.size() - first_; }
  size_t size() const noexcept { return bytes_; }
  bool empty() const noexcept { return bytes_ == 0; }

  // Drops the first `n` bytes (after a partial write).
  void consume(size_t n) noexcept;
  // Forgets all output and releases payload references.
  void clear() noexcept;

 private:
  void push_iov(const void* data, size_t n);

  std::vector<iovec> iov_;
  size_t first_ = 0;
  size_t bytes_ = 0;
  std::vector<Bytes> held_;
  struct CorkChunk {
    uint8_t* data;
    size_t size;
    BufferStorage* pooled;             // from pool_, or null
    std::unique_ptr<uint8_t[]> owned;  // from the heap, or null
  };
  std::vector<CorkChunk> cork_;  // chunks of kCorkChunk (or larger)
  size_t cork_index_ = 0;        // chunk being filled
  size_t cork_offset_ = 0;       // fill level of that chunk
  BufferPool* pool_ = nullptr;
};

}  // namespace ember
