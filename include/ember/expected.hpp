// Expected<T, E>: a value or an error, the error type Ember's layers return.
//
// C++20 has no std::expected; this is the small subset Ember needs. Both a T
// and an E convert implicitly, so handlers can `return value;` or
// `return SomeError{...};`. T and E must be different types.
#pragma once

#include <cassert>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace ember {

template <class E>
class Unexpected {
 public:
  explicit Unexpected(E error) : error_(std::move(error)) {}
  E& error() & { return error_; }
  E&& error() && { return std::move(error_); }

 private:
  E error_;
};

template <class T, class E>
class [[nodiscard]] Expected {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::remove_cv_t<E>>,
                "Expected<T, E> needs distinct value and error types");

 public:
  template <class U = T, std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                              !std::is_same_v<std::decay_t<U>, Expected> &&
                                              !std::is_convertible_v<U&&, E>,
                                          int> = 0>
  Expected(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}
  Expected(E error) : v_(std::in_place_index<1>, std::move(error)) {}
  template <class G>
  Expected(Unexpected<G> u) : v_(std::in_place_index<1>, std::move(u).error()) {}
  Expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  E& error() & {
    assert(!has_value());
    return std::get<1>(v_);
  }
  const E& error() const& {
    assert(!has_value());
    return std::get<1>(v_);
  }
  E&& error() && {
    assert(!has_value());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, E> v_;
};

// Success carries nothing; only the error matters.
template <class E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  Expected(E error) : error_(std::move(error)) {}
  template <class G>
  Expected(Unexpected<G> u) : error_(std::move(u).error()) {}

  bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  E& error() & {
    assert(error_);
    return *error_;
  }
  const E& error() const& {
    assert(error_);
    return *error_;
  }
  E&& error() && {
    assert(error_);
    return std::move(*error_);
  }

 private:
  std::optional<E> error_;
};

}  // namespace ember
