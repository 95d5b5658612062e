#include "ember/arena.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace ember {

Arena::Arena(size_t chunk_size, size_t limit)
    : chunk_size_(std::max<size_t>(chunk_size, 64)), limit_(limit) {}

Arena::Arena(std::span<uint8_t> initial, size_t chunk_size, size_t limit)
    : chunk_size_(std::max<size_t>(chunk_size, 64)), limit_(limit) {
  chunks_.push_back(Chunk{initial.data(), initial.size(), nullptr});
}

void* Arena::allocate(size_t size, size_t align) noexcept {
  // Fail early past the limit (no chunk for a request that cannot succeed),
  // and keep size + align below SIZE_MAX so next_chunk() can always fit it.
  if (size > limit_ - used_ || size > SIZE_MAX - align) {
    failed_ = true;
    return nullptr;
  }
  for (;;) {
    if (current_ < chunks_.size()) {
      Chunk& c = chunks_[current_];
      uintptr_t base = reinterpret_cast<uintptr_t>(c.data) + offset_;
      size_t pad = (align - (base & (align - 1))) & (align - 1);
      if (pad <= c.size - offset_ && size <= c.size - offset_ - pad) {
        if (size + pad > limit_ - used_) break;
        offset_ += pad + size;
        used_ += pad + size;
        return reinterpret_cast<void*>(base + pad);
      }
    }
    if (!next_chunk(size + align)) break;
  }
  failed_ = true;
  return nullptr;
}

bool Arena::next_chunk(size_t need) noexcept {
  // Reuse a chunk kept from before the last reset when it is big enough.
  while (current_ + 1 < chunks_.size()) {
    ++current_;
    offset_ = 0;
    if (chunks_[current_].size >= need) return true;
  }
  if (limit_ != kUnlimited && used_ >= limit_) return false;
  size_t size = std::max(chunk_size_, need);
  std::unique_ptr<uint8_t[]> owned(new (std::nothrow) uint8_t[size]);
  if (!owned) return false;
  uint8_t* mem = owned.get();
  try {
    chunks_.push_back(Chunk{mem, size, std::move(owned)});
  } catch (...) {
    return false;  // the Chunk being built owned `mem` and freed it
  }
  current_ = chunks_.size() - 1;
  offset_ = 0;
  return true;
}

std::string_view Arena::copy(std::string_view s) noexcept {
  if (s.empty()) return {};
  void* p = allocate(s.size(), 1);
  if (!p) return {};
  std::memcpy(p, s.data(), s.size());
  return {static_cast<const char*>(p), s.size()};
}

void Arena::reset() noexcept {
  current_ = 0;
  offset_ = 0;
  used_ = 0;
  failed_ = false;
}

void Arena::trim() noexcept {
  if (chunks_.size() > 1) chunks_.resize(1);
  reset();
}

size_t Arena::reserved() const noexcept {
  size_t n = 0;
  for (const Chunk& c : chunks_)
    n += c.size;
  return n;
}

}  // namespace ember
