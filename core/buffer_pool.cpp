#include "ember/buffer_pool.hpp"

#include <algorithm>
#include <cassert>
#include <new>
#include <thread>

namespace ember {
namespace {

constexpr std::align_val_t kAlign{64};

size_t class_size(size_t cls) {
  return BufferPool::kSmallest << (2 * cls);
}

size_t class_of(size_t size) {
  size_t cls = 0;
  while (class_size(cls) < size)
    ++cls;
  return cls;
}

// Owner-only counters: a relaxed load+store is enough and avoids a locked RMW.
inline void bump(std::atomic<uint64_t>& c) {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace

struct PooledStorage;

// Outlives the BufferPool while buffers are out. `live` counts the pool
// itself plus every buffer handed out and not yet back; whoever brings it to
// zero deletes the core.
struct BufferPool::Core {
  BufferPoolOptions options;
  std::thread::id owner;
  std::array<PooledStorage*, kClassCount> free_list{};
  std::array<size_t, kClassCount> free_count{};
  std::array<size_t, kClassCount> low_water{};  // least free_count since the last decay()
  std::atomic<PooledStorage*> remote{nullptr};
  std::atomic<bool> closed{false};
  std::atomic<int64_t> live{1};
  std::atomic<uint64_t> hits{0}, misses{0}, oversize{0}, remote_frees{0};

  void give_back(PooledStorage* s) noexcept;
  void drain_remote() noexcept;
  void free_storage(PooledStorage* s) noexcept;
  void drop_live() noexcept {
    if (live.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

struct PooledStorage final : BufferStorage {
  PooledStorage(BufferPool::Core* c, uint8_t k)
      : BufferStorage(reinterpret_cast<uint8_t*>(this) + header_size(), class_size(k)),
        core(c),
        cls(k) {}
  static constexpr size_t header_size() { return (sizeof(PooledStorage) + 63) & ~size_t{63}; }
  void destroy() noexcept override { core->give_back(this); }
  void revive() noexcept { reset_refs(); }

  BufferPool::Core* core;
  uint8_t cls;
  PooledStorage* next = nullptr;
};

void BufferPool::Core::free_storage(PooledStorage* s) noexcept {
  s->~PooledStorage();
  ::operator delete(static_cast<void*>(s), kAlign);
}

void BufferPool::Core::give_back(PooledStorage* s) noexcept {
  if (std::this_thread::get_id() == owner && !closed.load(std::memory_order_acquire)) {
    size_t limit = options.max_cached_bytes_per_class / class_size(s->cls);
    if (free_count[s->cls] < std::max<size_t>(limit, 2)) {
      s->next = free_list[s->cls];
      free_list[s->cls] = s;
      ++free_count[s->cls];
    } else {
      free_storage(s);
    }
    drop_live();
    return;
  }
  remote_frees.fetch_add(1, std::memory_order_relaxed);
  PooledStorage* head = remote.load(std::memory_order_relaxed);
  do {
    s->next = head;
  } while (
      !remote.compare_exchange_weak(head, s, std::memory_order_seq_cst, std::memory_order_relaxed));
  // Closed pools have no owner to drain the list: drain it here. Whichever of
  // us and the closing owner swaps the list out frees the nodes.
  if (closed.load(std::memory_order_seq_cst)) drain_remote();
}

void BufferPool::Core::drain_remote() noexcept {
  PooledStorage* s = remote.exchange(nullptr, std::memory_order_seq_cst);
  bool is_closed = closed.load(std::memory_order_seq_cst);
  while (s) {
    PooledStorage* next = s->next;
    size_t limit = options.max_cached_bytes_per_class / class_size(s->cls);
    if (!is_closed && free_count[s->cls] < std::max<size_t>(limit, 2)) {
      s->next = free_list[s->cls];
      free_list[s->cls] = s;
      ++free_count[s->cls];
    } else {
      free_storage(s);
    }
    s = next;
    drop_live();  // may delete this core only once the list is empty and closed
  }
}

BufferPool::BufferPool(BufferPoolOptions options) : core_(new Core) {
  core_->options = options;
  core_->owner = std::this_thread::get_id();
}

BufferPool::~BufferPool() {
  Core* c = core_;
  c->closed.store(true, std::memory_order_seq_cst);
  for (size_t k = 0; k < kClassCount; ++k) {
    while (PooledStorage* s = c->free_list[k]) {
      c->free_list[k] = s->next;
      c->free_storage(s);
    }
    c->free_count[k] = 0;
  }
  // Keep our own reference while draining so the core cannot vanish under us.
  c->drain_remote();
  c->drop_live();
}

void BufferPool::bind_to_current_thread() noexcept {
  core_->owner = std::this_thread::get_id();
}

MutableBuffer BufferPool::take(size_t size) {
  assert(std::this_thread::get_id() == core_->owner);
  Core* c = core_;
  if (size > kLargest) {
    bump(c->oversize);
    return MutableBuffer::allocate(size);
  }
  size_t k = class_of(size);
  if (!c->free_list[k] && c->remote.load(std::memory_order_relaxed)) c->drain_remote();
  c->live.fetch_add(1, std::memory_order_relaxed);
  if (PooledStorage* s = c->free_list[k]) {
    c->free_list[k] = s->next;
    --c->free_count[k];
    c->low_water[k] = std::min(c->low_water[k], c->free_count[k]);
    s->next = nullptr;
    s->revive();
    bump(c->hits);
    return MutableBuffer(s);
  }
  bump(c->misses);
  void* mem = ::operator new(PooledStorage::header_size() + class_size(k), kAlign);
  return MutableBuffer(new (mem) PooledStorage(c, static_cast<uint8_t>(k)));
}

BufferPoolStats BufferPool::stats() const noexcept {
  BufferPoolStats s;
  s.hits = core_->hits.load(std::memory_order_relaxed);
  s.misses = core_->misses.load(std::memory_order_relaxed);
  s.oversize = core_->oversize.load(std::memory_order_relaxed);
  s.remote_frees = core_->remote_frees.load(std::memory_order_relaxed);
  for (size_t k = 0; k < kClassCount; ++k)
    s.cached_bytes += core_->free_count[k] * class_size(k);
  return s;
}

size_t BufferPool::decay() noexcept {
  Core* c = core_;
  c->drain_remote();
  size_t freed = 0;
  for (size_t k = 0; k < kClassCount; ++k) {
    // Buffers that stayed cached through the whole period were not needed.
    for (size_t n = c->low_water[k]; n > 0 && c->free_list[k]; --n) {
      PooledStorage* s = c->free_list[k];
      c->free_list[k] = s->next;
      --c->free_count[k];
      c->free_storage(s);
      freed += class_size(k);
    }
    c->low_water[k] = c->free_count[k];
  }
  return freed;
}

void BufferPool::trim() noexcept {
  core_->drain_remote();
  for (size_t k = 0; k < kClassCount; ++k) {
    while (PooledStorage* s = core_->free_list[k]) {
      core_->free_list[k] = s->next;
      core_->free_storage(s);
    }
    core_->free_count[k] = 0;
  }
}

}  // namespace ember
