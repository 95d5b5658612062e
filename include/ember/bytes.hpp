// Bytes: an immutable, reference-counted byte slice.
//
// A payload travels from the socket to a handler and back as Bytes that point
// into the buffer the kernel filled. Copying a Bytes object shares the storage
// (one atomic increment); it never copies the bytes. Use Bytes::copy() when
// you want a private copy.
//
// Thread safety: a Bytes object is not synchronised, but distinct Bytes that
// share storage may be used and dropped on different threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ember {

// The allocation behind one or more Bytes. destroy() runs when the last
// reference goes and decides where the memory returns (a loop's pool, the
// heap, a user's deleter).
class BufferStorage {
 public:
  BufferStorage(const BufferStorage&) = delete;
  BufferStorage& operator=(const BufferStorage&) = delete;

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  // Exact when called by the only holder; a hint otherwise.
  uint32_t use_count() const noexcept { return refs_.load(std::memory_order_acquire); }

  uint8_t* data() noexcept { return data_; }
  const uint8_t* data() const noexcept { return data_; }
  size_t capacity() const noexcept { return capacity_; }

 protected:
  BufferStorage(uint8_t* data, size_t capacity) noexcept : data_(data), capacity_(capacity) {}
  virtual ~BufferStorage() = default;
  virtual void destroy() noexcept = 0;
  void reset_refs() noexcept { refs_.store(1, std::memory_order_relaxed); }
  void set_data(uint8_t* data, size_t capacity) noexcept {
    data_ = data;
    capacity_ = capacity;
  }

 private:
  std::atomic<uint32_t> refs_{1};
  uint8_t* data_;
  size_t capacity_;
};

class Bytes {
 public:
  Bytes() noexcept = default;
  Bytes(const Bytes& other) noexcept
      : data_(other.data_), size_(other.size_), owner_(other.owner_) {
    if (owner_) owner_->retain();
  }
  Bytes(Bytes&& other) noexcept : data_(other.data_), size_(other.size_), owner_(other.owner_) {
    other.data_ = nullptr;
    other.size_ = 0;
    other.owner_ = nullptr;
  }
  Bytes& operator=(const Bytes& other) noexcept {
    if (this != &other) *this = Bytes(other);
    return *this;
  }
  Bytes& operator=(Bytes&& other) noexcept {
    if (this != &other) {
      if (owner_) owner_->release();
      data_ = other.data_;
      size_ = other.size_;
      owner_ = other.owner_;
      other.data_ = nullptr;
      other.size_ = 0;
      other.owner_ = nullptr;
    }
    return *this;
  }
  ~Bytes() {
    if (owner_) owner_->release();
  }

  // Shares [data, data + size) of `storage`, which must contain it.
  static Bytes share(BufferStorage* storage, const uint8_t* data, size_t size) noexcept;
  // Takes over the caller's reference to `storage` (no increment).
  static Bytes adopt(BufferStorage* storage, size_t size) noexcept;
  // One heap allocation holding a copy of the bytes.
  static Bytes copy(std::span<const uint8_t> bytes);
  static Bytes copy(std::string_view bytes);
  // Moves the container in; its buffer becomes the storage (no byte copy).
  static Bytes from(std::string&& owned);
  static Bytes from(std::vector<uint8_t>&& owned);
  // Memory the caller keeps alive and unchanged for as long as any copy lives
  // (a static table, a memory-mapped file that outlives the server).
  static Bytes unowned(std::span<const uint8_t> bytes) noexcept;
  static Bytes unowned(std::string_view bytes) noexcept;

  const uint8_t* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<const uint8_t> span() const noexcept { return {data_, size_}; }
  std::string_view view() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }
  // Shares a sub-range; offset + length must be within size().
  Bytes slice(size_t offset, size_t length) const noexcept;
  BufferStorage* storage() const noexcept { return owner_; }

  std::string to_string() const { return std::string(view()); }
  std::vector<uint8_t> to_vector() const { return {data_, data_ + size_}; }

  friend bool operator==(const Bytes& a, const Bytes& b) noexcept { return a.view() == b.view(); }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  BufferStorage* owner_ = nullptr;
};

// Exclusively owned, writable storage. Fill it, then freeze() it into Bytes
// without copying. Obtain one from a BufferPool or MutableBuffer::allocate().
class MutableBuffer {
 public:
  MutableBuffer() noexcept = default;
  // Takes over one reference to `storage`.
  explicit MutableBuffer(BufferStorage* storage) noexcept : storage_(storage) {}
  MutableBuffer(MutableBuffer&& other) noexcept : storage_(other.storage_) {
    other.storage_ = nullptr;
  }
  MutableBuffer& operator=(MutableBuffer&& other) noexcept;
  MutableBuffer(const MutableBuffer&) = delete;
  MutableBuffer& operator=(const MutableBuffer&) = delete;
  ~MutableBuffer() {
    if (storage_) storage_->release();
  }

  // Heap storage of exactly `capacity` bytes.
  static MutableBuffer allocate(size_t capacity);

  uint8_t* data() noexcept { return storage_ ? storage_->data() : nullptr; }
  size_t capacity() const noexcept { return storage_ ? storage_->capacity() : 0; }
  explicit operator bool() const noexcept { return storage_ != nullptr; }
  BufferStorage* storage() const noexcept { return storage_; }
  // The first `size` bytes become immutable Bytes; this buffer becomes empty.
  Bytes freeze(size_t size) && noexcept;
  // Hands the caller this buffer's reference to the storage.
  BufferStorage* release() && noexcept {
    BufferStorage* s = storage_;
    storage_ = nullptr;
    return s;
  }

 private:
  BufferStorage* storage_ = nullptr;
};

}  // namespace ember
