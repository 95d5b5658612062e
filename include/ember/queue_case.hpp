// queue::Case: the routing value a queue microservice attaches to each result.
//
// A case is a bool, an integer or a string, and the three never compare equal
// to each other: `true`, `1` and `"1"` (and `"true"`) are four different cases,
// exactly as the JSON values in the service's `out` list are. Routing looks a
// result's case up among the configured ones with operator== and std::hash.
//
// Integers are signed 64-bit. Constructing from an unsigned 64-bit value is
// not allowed implicitly (it could exceed the range); convert explicitly.
// Lifetime: a Case owns its string. Thread: a value type, no shared state.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace ember::queue {

template <class T>
concept CaseInteger =
    std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool> &&
    !std::same_as<std::remove_cv_t<T>, char> && !std::same_as<std::remove_cv_t<T>, char8_t> &&
    !std::same_as<std::remove_cv_t<T>, char16_t> && !std::same_as<std::remove_cv_t<T>, char32_t> &&
    !std::same_as<std::remove_cv_t<T>, wchar_t> &&
    (std::is_signed_v<T> ? sizeof(T) <= sizeof(std::int64_t) : sizeof(T) < sizeof(std::int64_t));

class Case {
 public:
  enum class Kind : std::uint8_t { Bool = 0, Integer = 1, String = 2 };

  Case(bool b) noexcept : v_(b) {}
  template <CaseInteger I>
  Case(I i) noexcept : v_(static_cast<std::int64_t>(i)) {}
  Case(std::string s) noexcept : v_(std::move(s)) {}
  Case(std::string_view s) : v_(std::string(s)) {}
  // Without this, a string literal would silently become the bool `true`.
  Case(const char* s) : v_(std::string(s)) {}

  static Case boolean(bool b) noexcept { return Case(b); }
  static Case integer(std::int64_t i) noexcept { return Case(i); }
  static Case string(std::string s) noexcept { return Case(std::move(s)); }

  Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
  bool is_bool() const noexcept { return kind() == Kind::Bool; }
  bool is_integer() const noexcept { return kind() == Kind::Integer; }
  bool is_string() const noexcept { return kind() == Kind::String; }

  // Precondition: the matching kind (checked by assert in debug builds).
  bool as_bool() const { return std::get<bool>(v_); }
  std::int64_t as_integer() const { return std::get<std::int64_t>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }

  // Equal only when kind and value are both equal.
  friend bool operator==(const Case& a, const Case& b) noexcept = default;

  // Kind-aware: cases that differ only in kind hash differently as a rule.
  std::size_t hash() const noexcept;

  // The case as JSON text: true, -3, "a \"b\"". For logs and metric labels.
  std::string to_json() const;

 private:
  std::variant<bool, std::int64_t, std::string> v_;
};

}  // namespace ember::queue

template <>
struct std::hash<ember::queue::Case> {
  std::size_t operator()(const ember::queue::Case& c) const noexcept { return c.hash(); }
};
