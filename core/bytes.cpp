#include "ember/bytes.hpp"

#include <cassert>
#include <cstring>
#include <new>
#include <utility>

namespace ember {
namespace {

// Header and bytes in one allocation.
class HeapStorage final : public BufferStorage {
 public:
  static HeapStorage* create(size_t capacity) {
    void* mem = ::operator new(sizeof(HeapStorage) + capacity);
    return new (mem) HeapStorage(capacity);
  }

 private:
  explicit HeapStorage(size_t capacity)
      : BufferStorage(reinterpret_cast<uint8_t*>(this + 1), capacity) {}
  void destroy() noexcept override {
    this->~HeapStorage();
    ::operator delete(this);
  }
};

template <class Container>
class ContainerStorage final : public BufferStorage {
 public:
  explicit ContainerStorage(Container&& c) : BufferStorage(nullptr, 0), owned_(std::move(c)) {
    set_data(reinterpret_cast<uint8_t*>(owned_.data()), owned_.size());
  }

 private:
  void destroy() noexcept override { delete this; }
  Container owned_;
};

}  // namespace

Bytes Bytes::share(BufferStorage* storage, const uint8_t* data, size_t size) noexcept {
  assert(storage == nullptr ||
         (data >= storage->data() && data + size <= storage->data() + storage->capacity()));
  Bytes b;
  b.data_ = data;
  b.size_ = size;
  b.owner_ = storage;
  if (storage) storage->retain();
  return b;
}

Bytes Bytes::adopt(BufferStorage* storage, size_t size) noexcept {
  assert(storage && size <= storage->capacity());
  Bytes b;
  b.data_ = storage->data();
  b.size_ = size;
  b.owner_ = storage;
  return b;
}

Bytes Bytes::copy(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return {};
  HeapStorage* s = HeapStorage::create(bytes.size());
  std::memcpy(s->data(), bytes.data(), bytes.size());
  return adopt(s, bytes.size());
}

Bytes Bytes::copy(std::string_view bytes) {
  return copy(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Bytes Bytes::from(std::string&& owned) {
  if (owned.empty()) return {};
  size_t n = owned.size();
  return adopt(new ContainerStorage<std::string>(std::move(owned)), n);
}

Bytes Bytes::from(std::vector<uint8_t>&& owned) {
  if (owned.empty()) return {};
  size_t n = owned.size();
  return adopt(new ContainerStorage<std::vector<uint8_t>>(std::move(owned)), n);
}

Bytes Bytes::unowned(std::span<const uint8_t> bytes) noexcept {
  Bytes b;
  b.data_ = bytes.data();
  b.size_ = bytes.size();
  return b;
}

Bytes Bytes::unowned(std::string_view bytes) noexcept {
  return unowned(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Bytes Bytes::slice(size_t offset, size_t length) const noexcept {
  assert(offset <= size_ && length <= size_ - offset);
  return share(owner_, data_ + offset, length);
}

MutableBuffer& MutableBuffer::operator=(MutableBuffer&& other) noexcept {
  if (this != &other) {
    if (storage_) storage_->release();
    storage_ = other.storage_;
    other.storage_ = nullptr;
  }
  return *this;
}

MutableBuffer MutableBuffer::allocate(size_t capacity) {
  return MutableBuffer(HeapStorage::create(capacity));
}

Bytes MutableBuffer::freeze(size_t size) && noexcept {
  assert(size <= capacity());
  if (!storage_) return {};
  BufferStorage* s = storage_;
  storage_ = nullptr;
  return Bytes::adopt(s, size);
}

}  // namespace ember
