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
  enter_chunk(0);
}

void Arena::enter_chunk(size_t index) noexcept {
  current_ = index;
  cur_ = reinterpret_cast<uintptr_t>(chunks_[index].data);
  cap_end();
}

void Arena::cap_end() noexcept {
  const Chunk& c = chunks_[current_];
  uintptr_t end = reinterpret_cast<uintptr_t>(c.data) + c.size;
  size_t left = limit_ - used_;
  end_ = end - cur_ > left ? cur_ + left : end;
}

void* Arena::allocate_slow(size_t size, size_t align) noexcept {
  // Fail early past the limit (no chunk for a request that cannot succeed),
  // and keep size + align below SIZE_MAX so next_chunk() can always fit it.
  if (size > limit_ - used_ || size > SIZE_MAX - align) {
    failed_ = true;
    return nullptr;
  }
  for (;;) {
    if (current_ < chunks_.size()) {
      const Chunk& c = chunks_[current_];
      uintptr_t end = reinterpret_cast<uintptr_t>(c.data) + c.size;
      uintptr_t at = (cur_ + (align - 1)) & ~(uintptr_t(align) - 1);
      if (at <= end && size <= end - at) {
        if (at + size - cur_ > limit_ - used_) break;
        used_ += at + size - cur_;
        cur_ = at + size;
        cap_end();
        return reinterpret_cast<void*>(at);
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
    enter_chunk(current_ + 1);
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
  enter_chunk(chunks_.size() - 1);
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
  used_ = 0;
  failed_ = false;
  if (chunks_.empty())
    current_ = 0;
  else
    enter_chunk(0);
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
