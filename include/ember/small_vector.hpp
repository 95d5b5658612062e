// SmallVector<T, N>: a vector that keeps up to N elements inside itself and
// moves to the heap only past that. Values that a hot path returns per
// request (a queue microservice's results, say) then cost no allocation in
// the common case, yet any size still works.
//
// The subset of std::vector that callers use: push_back, emplace_back,
// pop_back, reserve, clear, size, capacity, data, iteration, indexing,
// equality. Iterators and references are invalidated by growth, as with
// std::vector; a moved-from vector is empty. T's move constructor must not
// throw (checked at compile time): growth and moves then cannot fail
// half-way.
// Thread: a value type, no shared state.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace ember {

template <class T, std::size_t N>
class SmallVector {
  static_assert(N > 0, "use std::vector for no inline capacity");
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "SmallVector moves elements during growth and moves: T's move must not throw");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using reference = T&;
  using const_reference = const T&;
  using iterator = T*;
  using const_iterator = const T*;

  SmallVector() noexcept = default;
  // Delegating: when a copy throws, the destructor frees what was built.
  SmallVector(std::initializer_list<T> init) : SmallVector() {
    reserve(init.size());
    for (const T& v : init)
      append_unchecked(v);
  }
  SmallVector(const SmallVector& other) : SmallVector() {
    reserve(other.size_);
    for (const T& v : other)
      append_unchecked(v);
  }
  SmallVector(SmallVector&& other) noexcept { take(std::move(other)); }
  SmallVector& operator=(const SmallVector& other) {
    if (this != &other) {
      SmallVector copy(other);
      *this = std::move(copy);
    }
    return *this;
  }
  SmallVector& operator=(SmallVector&& other) noexcept {
    if (this != &other) {
      release();
      take(std::move(other));
    }
    return *this;
  }
  ~SmallVector() { release(); }

  size_type size() const noexcept { return size_; }
  size_type capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  // True while the elements live inside the object (no heap block held).
  bool is_inline() const noexcept { return data_ == inline_data(); }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  iterator begin() noexcept { return data_; }
  iterator end() noexcept { return data_ + size_; }
  const_iterator begin() const noexcept { return data_; }
  const_iterator end() const noexcept { return data_ + size_; }
  T& operator[](size_type i) noexcept { return data_[i]; }
  const T& operator[](size_type i) const noexcept { return data_[i]; }
  T& front() noexcept { return data_[0]; }
  const T& front() const noexcept { return data_[0]; }
  T& back() noexcept { return data_[size_ - 1]; }
  const T& back() const noexcept { return data_[size_ - 1]; }

  void push_back(const T& v) { emplace_back(v); }
  void push_back(T&& v) { emplace_back(std::move(v)); }

  // The new element is built before the old ones move, so an argument that
  // refers into this vector (v.push_back(v[0])) stays valid through growth.
  template <class... Args>
  T& emplace_back(Args&&... args) {
    if (size_ < capacity_) {
      T* slot = ::new (static_cast<void*>(data_ + size_)) T(std::forward<Args>(args)...);
      ++size_;
      return *slot;
    }
    size_type cap = grown_capacity(size_ + 1);
    T* fresh = allocate(cap);
    T* slot;
    try {
      slot = ::new (static_cast<void*>(fresh + size_)) T(std::forward<Args>(args)...);
    } catch (...) {
      deallocate(fresh, cap);
      throw;
    }
    move_into(fresh, cap);
    ++size_;
    return *slot;
  }

  void pop_back() noexcept { std::destroy_at(data_ + --size_); }

  void reserve(size_type n) {
    if (n <= capacity_) return;
    T* fresh = allocate(n);
    move_into(fresh, n);
  }

  // Keeps the capacity, like std::vector.
  void clear() noexcept {
    std::destroy(data_, data_ + size_);
    size_ = 0;
  }

  friend bool operator==(const SmallVector& a, const SmallVector& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  T* inline_data() noexcept { return std::launder(reinterpret_cast<T*>(inline_)); }
  const T* inline_data() const noexcept {
    return std::launder(reinterpret_cast<const T*>(inline_));
  }

  // Counted only once built: a throwing copy leaves size_ true.
  void append_unchecked(const T& v) {
    ::new (static_cast<void*>(data_ + size_)) T(v);
    ++size_;
  }

  static T* allocate(size_type n) {
    if (n > static_cast<size_type>(-1) / sizeof(T)) throw std::length_error("SmallVector");
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
  }
  static void deallocate(T* p, size_type n) noexcept {
    ::operator delete (p, n * sizeof(T), std::align_val_t{alignof(T)});
  }
  size_type grown_capacity(size_type need) const {
    return std::max(need, capacity_ > static_cast<size_type>(-1) / 2 ? need : 2 * capacity_);
  }

  // Moves the elements into `fresh` (capacity `cap`) and frees the old block.
  void move_into(T* fresh, size_type cap) noexcept {
    std::uninitialized_move(data_, data_ + size_, fresh);
    std::destroy(data_, data_ + size_);
    if (!is_inline()) deallocate(data_, capacity_);
    data_ = fresh;
    capacity_ = cap;
  }

  // Precondition: this holds nothing (fresh or released).
  void take(SmallVector&& other) noexcept {
    if (other.is_inline()) {
      std::uninitialized_move(other.data_, other.data_ + other.size_, data_);
      size_ = other.size_;
      other.clear();
      return;
    }
    data_ = std::exchange(other.data_, other.inline_data());
    capacity_ = std::exchange(other.capacity_, N);
    size_ = std::exchange(other.size_, 0);
  }

  void release() noexcept {
    clear();
    if (!is_inline()) deallocate(data_, capacity_);
    data_ = inline_data();
    capacity_ = N;
  }

  alignas(T) std::byte inline_[N * sizeof(T)];
  T* data_ = inline_data();
  size_type size_ = 0;
  size_type capacity_ = N;
};

}  // namespace ember
