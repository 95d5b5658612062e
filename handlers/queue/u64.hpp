// The body of every queue message is a u64 in decimal ASCII. This is the one
// strict parser for it, usable on a whole body or on a body that arrives in
// pieces (AMQP content frames), with the same result for any split.
//
// Accepted: optional ASCII whitespace (space, \t, \n, \v, \f, \r), then 1 to
// 20 digits 0-9 whose value fits in 64 bits, then optional whitespace. Leading
// zeros count as digits ("007" is 7; 21 digits are refused even if zeros).
// No sign, no '_', no '+', no other characters. Bodies longer than
// kMaxBodySize bytes are refused without reading the rest, so a huge message
// costs nothing to reject. When a body breaks several rules, the error is the
// one at the lowest byte offset (too-long sits at offset kMaxBodySize).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ember::queue {

enum class U64Error : std::uint8_t {
  None = 0,
  Empty,          // no digit at all (empty or only whitespace)
  NotDigit,       // a byte that is neither a digit nor allowed whitespace
  TooManyDigits,  // a 21st digit
  Overflow,       // 20 digits above 18446744073709551615
  TooLong,        // more than kMaxBodySize bytes
};

// A short fixed description of the code ("not a decimal digit", ...).
const char* to_string(U64Error e) noexcept;

struct U64Result {
  std::uint64_t value = 0;  // valid when error == None
  U64Error error = U64Error::None;
  std::size_t offset = 0;  // byte offset of the offending byte (errors only)
  std::uint8_t byte = 0;   // the offending byte, for NotDigit

  bool ok() const noexcept { return error == U64Error::None; }
  // A human reason naming the byte and offset, e.g.
  // "byte 0x2d '-' at offset 0 is not a decimal digit". Empty when ok().
  std::string reason() const;
};

inline constexpr std::size_t kMaxBodySize = 4096;

// Incremental form: feed() the body's pieces in order, then finish().
// No allocation; the pieces are not retained.
class U64Reader {
 public:
  // Returns false once the body is known to be invalid; later feeds are
  // ignored and finish() reports the first error.
  bool feed(std::string_view piece) noexcept;
  U64Result finish() const noexcept;
  void reset() noexcept { *this = U64Reader(); }

 private:
  enum class State : std::uint8_t { Leading, Digits, Trailing, Failed };
  bool fail(U64Error e, std::size_t offset, std::uint8_t byte) noexcept;

  State state_ = State::Leading;
  std::uint8_t digits_ = 0;
  std::uint64_t value_ = 0;
  std::size_t seen_ = 0;
  U64Result error_;
};

// Whole-body form. Reads at most kMaxBodySize + 1 bytes of `body`.
U64Result parse_u64(std::string_view body) noexcept;

}  // namespace ember::queue
