// SmallVector<T, N>: a vector that keeps up to N elements inside itself and
// moves to the heap only past that. Values that a hot path returns per
// request (a queue microservice's results, say) then cost no allocation in
// the common case, yet any size still works.
//
// std::vector's interface except insert in the middle and allocators, plus
// an implicit conversion from std::vector, so code written for a vector keeps
// working. Iterators and references are invalidated by growth, as with
// std::vector; a moved-from vector is empty. T's move constructor must not
// throw (checked at compile time): growth and moves then cannot fail
// half-way.
// Thread: a value type, no shared state.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace ember {

template <class T, std::size_t N>
class SmallVector {
  static_assert(N > 0, "use std::vector for no inline capacity");
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "SmallVector moves elements during growth and moves: T's move must not throw");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = T&;
  using const_reference = const T&;
  using pointer = T*;
  using const_pointer = const T*;
  using iterator = T*;
  using const_iterator = const T*;

  // Not `= default`: that would zero the inline bytes on value-initialization.
  SmallVector() noexcept {}
  // The constructors that copy delegate: when a copy throws, the destructor
  // frees what was built.
  SmallVector(std::initializer_list<T> init) : SmallVector(init.begin(), init.end()) {}
  template <std::forward_iterator It>
  SmallVector(It first, It last) : SmallVector() {
    reserve(static_cast<size_type>(std::distance(first, last)));
    for (; first != last; ++first)
      append_unchecked(*first);
  }
  SmallVector(const SmallVector& other) : SmallVector(other.begin(), other.end()) {}
  SmallVector(SmallVector&& other) noexcept { take(std::move(other)); }
  // Implicit, like the std::vector this type replaced in signatures.
  SmallVector(const std::vector<T>& v) : SmallVector(v.begin(), v.end()) {}
  SmallVector(std::vector<T>&& v) : SmallVector() {
    reserve(v.size());
    for (T& x : v)
      append_unchecked(std::move(x));
  }
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
  const_iterator cbegin() const noexcept { return data_; }
  const_iterator cend() const noexcept { return data_ + size_; }
  T& operator[](size_type i) noexcept { return data_[i]; }
  const T& operator[](size_type i) const noexcept { return data_[i]; }
  T& at(size_type i) {
    if (i >= size_) throw std::out_of_range("SmallVector::at");
    return data_[i];
  }
  const T& at(size_type i) const {
    if (i >= size_) throw std::out_of_range("SmallVector::at");
    return data_[i];
  }
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
      deallocate(fresh);
      throw;
    }
    move_into(fresh, cap);
    ++size_;
    return *slot;
  }

  void pop_back() noexcept { std::destroy_at(data_ + --size_); }

  iterator erase(const_iterator pos) { return erase(pos, pos + 1); }
  iterator erase(const_iterator first, const_iterator last) {
    T* f = data_ + (first - data_);
    T* l = data_ + (last - data_);
    if (f != l) {
      T* new_end = std::move(l, end(), f);
      std::destroy(new_end, end());
      size_ -= static_cast<size_type>(l - f);
    }
    return f;
  }

  // New elements are value-initialized.
  void resize(size_type n) {
    if (n <= size_) {
      std::destroy(data_ + n, data_ + size_);
      size_ = n;
      return;
    }
    reserve(n);
    while (size_ < n) {
      ::new (static_cast<void*>(data_ + size_)) T();
      ++size_;
    }
  }

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

  void swap(SmallVector& other) noexcept {
    SmallVector tmp(std::move(other));
    other = std::move(*this);
    *this = std::move(tmp);
  }
  friend void swap(SmallVector& a, SmallVector& b) noexcept { a.swap(b); }

  friend bool operator==(const SmallVector& a, const SmallVector& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  // Elements are placed there with placement new and reached through data_;
  // no std::launder, which needs a live object where an empty vector has none.
  T* inline_data() noexcept { return reinterpret_cast<T*>(inline_); }
  const T* inline_data() const noexcept { return reinterpret_cast<const T*>(inline_); }

  // Counted only once built: a throwing copy leaves size_ true.
  template <class V>
  void append_unchecked(V&& v) {
    ::new (static_cast<void*>(data_ + size_)) T(std::forward<V>(v));
    ++size_;
  }

  static T* allocate(size_type n) {
    if (n > static_cast<size_type>(-1) / sizeof(T)) throw std::length_error("SmallVector");
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
  }
  // Unsized: clang has sized deallocation only with -fsized-deallocation.
  static void deallocate(T* p) noexcept { ::operator delete (p, std::align_val_t{alignof(T)}); }
  size_type grown_capacity(size_type need) const {
    return std::max(need, capacity_ > static_cast<size_type>(-1) / 2 ? need : 2 * capacity_);
  }

  // Moves the elements into `fresh` (capacity `cap`) and frees the old block.
  void move_into(T* fresh, size_type cap) noexcept {
    std::uninitialized_move(data_, data_ + size_, fresh);
    std::destroy(data_, data_ + size_);
    if (!is_inline()) deallocate(data_);
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
    if (!is_inline()) deallocate(data_);
    data_ = inline_data();
    capacity_ = N;
  }

  alignas(T) std::byte inline_[N * sizeof(T)];
  T* data_ = inline_data();
  size_type size_ = 0;
  size_type capacity_ = N;
};

}  // namespace ember
