#include "ember/slab.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ember {
namespace {

// Each block is preceded by a 16-byte header holding its class (or the size
// of a large block), which free() and realloc() need.
struct Header {
  uint32_t cls;  // kLarge for heap blocks
  uint32_t pad;
  size_t size;  // usable bytes
};
static_assert(sizeof(Header) == 16);
constexpr uint32_t kLarge = UINT32_MAX;

size_t class_size(size_t cls) {
  return size_t{16} << cls;
}

// Smallest class holding `size` (1 .. kLargestClass): a bit scan, not a loop,
// since nghttp2 allocates several blocks per stream.
size_t class_of(size_t size) {
  if (size <= 16) return 0;
  return static_cast<size_t>(64 - __builtin_clzll(static_cast<unsigned long long>(size - 1))) - 4;
}

Header* header_of(void* block) {
  return static_cast<Header*>(block) - 1;
}

}  // namespace

SlabAllocator::SlabAllocator(size_t max_cached_bytes_per_class)
    : max_cached_(max_cached_bytes_per_class) {}

SlabAllocator::~SlabAllocator() {
  for (size_t k = 0; k < kClassCount; ++k) {
    while (FreeBlock* b = free_[k]) {
      free_[k] = b->next;
      std::free(header_of(b));
    }
  }
}

void* SlabAllocator::allocate(size_t size) noexcept {
  if (size > kLargestClass) {
    auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + size));
    if (!h) return nullptr;
    h->cls = kLarge;
    h->size = size;
    ++stats_.large;
    return h + 1;
  }
  size_t k = class_of(std::max<size_t>(size, 1));
  if (FreeBlock* b = free_[k]) {
    free_[k] = b->next;
    --count_[k];
    ++stats_.reused;
    return b;
  }
  auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + class_size(k)));
  if (!h) return nullptr;
  h->cls = static_cast<uint32_t>(k);
  h->size = class_size(k);
  ++stats_.fresh;
  return h + 1;
}

void* SlabAllocator::allocate_zeroed(size_t count, size_t size) noexcept {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  void* p = allocate(count * size);
  if (p) std::memset(p, 0, count * size);
  return p;
}

void SlabAllocator::deallocate(void* block) noexcept {
  if (!block) return;
  Header* h = header_of(block);
  if (h->cls == kLarge) {
    std::free(h);
    return;
  }
  size_t k = h->cls;
  if ((count_[k] + 1) * class_size(k) > max_cached_ && count_[k] >= 4) {
    std::free(h);
    return;
  }
  auto* b = static_cast<FreeBlock*>(block);
  b->next = free_[k];
  free_[k] = b;
  ++count_[k];
}

void* SlabAllocator::reallocate(void* block, size_t size) noexcept {
  if (!block) return allocate(size);
  if (size == 0) {
    deallocate(block);
    return nullptr;
  }
  size_t have = header_of(block)->size;
  if (size <= have) return block;
  void* fresh = allocate(size);
  if (!fresh) return nullptr;
  std::memcpy(fresh, block, have);
  deallocate(block);
  return fresh;
}

SlabStats SlabAllocator::stats() const noexcept {
  SlabStats s = stats_;
  for (size_t k = 0; k < kClassCount; ++k)
    s.cached_bytes += count_[k] * class_size(k);
  return s;
}

}  // namespace ember
