#include "handlers/queue/u64.hpp"

#include <cstdio>
#include <limits>

namespace ember::queue {

namespace {

constexpr bool is_space(std::uint8_t c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

const char* to_string(U64Error e) noexcept {
  switch (e) {
    case U64Error::None:
      return "ok";
    case U64Error::Empty:
      return "no digits (empty or only whitespace)";
    case U64Error::NotDigit:
      return "not a decimal digit";
    case U64Error::TooManyDigits:
      return "more than 20 digits";
    case U64Error::Overflow:
      return "above 18446744073709551615";
    case U64Error::TooLong:
      return "body longer than 4096 bytes";
  }
  return "unknown";
}

std::string U64Result::reason() const {
  char buf[160];
  switch (error) {
    case U64Error::None:
      return {};
    case U64Error::NotDigit: {
      bool printable = byte >= 0x21 && byte < 0x7f;
      if (printable)
        std::snprintf(buf, sizeof buf, "byte 0x%02x '%c' at offset %zu is not a decimal digit",
                      byte, static_cast<char>(byte), offset);
      else
        std::snprintf(buf, sizeof buf, "byte 0x%02x at offset %zu is not a decimal digit", byte,
                      offset);
      return buf;
    }
    case U64Error::TooManyDigits:
      std::snprintf(buf, sizeof buf, "more than 20 digits (21st at offset %zu)", offset);
      return buf;
    case U64Error::Overflow:
      std::snprintf(buf, sizeof buf, "number above 18446744073709551615 (at offset %zu)", offset);
      return buf;
    case U64Error::TooLong:
      std::snprintf(buf, sizeof buf, "body longer than %zu bytes", kMaxBodySize);
      return buf;
    case U64Error::Empty:
      return to_string(error);
  }
  return to_string(error);
}

bool U64Reader::fail(U64Error e, std::size_t offset, std::uint8_t byte) noexcept {
  state_ = State::Failed;
  error_.error = e;
  error_.offset = offset;
  error_.byte = byte;
  return false;
}

bool U64Reader::feed(std::string_view piece) noexcept {
  if (state_ == State::Failed) return false;
  for (std::size_t i = 0; i < piece.size(); ++i) {
    std::size_t at = seen_ + i;
    if (at >= kMaxBodySize) return fail(U64Error::TooLong, kMaxBodySize, 0);
    auto c = static_cast<std::uint8_t>(piece[i]);
    bool digit = c >= '0' && c <= '9';
    switch (state_) {
      case State::Leading:
        if (is_space(c)) continue;
        if (!digit) return fail(U64Error::NotDigit, at, c);
        state_ = State::Digits;
        [[fallthrough]];
      case State::Digits:
        if (digit) {
          if (++digits_ > 20) return fail(U64Error::TooManyDigits, at, c);
          std::uint64_t next;
          if (__builtin_mul_overflow(value_, 10u, &next) ||
              __builtin_add_overflow(next, static_cast<std::uint64_t>(c - '0'), &next))
            return fail(U64Error::Overflow, at, c);
          value_ = next;
          continue;
        }
        if (!is_space(c)) return fail(U64Error::NotDigit, at, c);
        state_ = State::Trailing;
        continue;
      case State::Trailing:
        if (!is_space(c)) return fail(U64Error::NotDigit, at, c);
        continue;
      case State::Failed:
        return false;
    }
  }
  seen_ += piece.size();
  return true;
}

U64Result U64Reader::finish() const noexcept {
  if (state_ == State::Failed) return error_;
  if (digits_ == 0) {
    U64Result r;
    r.error = U64Error::Empty;
    r.offset = seen_;
    return r;
  }
  U64Result r;
  r.value = value_;
  return r;
}

U64Result parse_u64(std::string_view body) noexcept {
  U64Reader reader;
  // Past the limit the answer is TooLong or an earlier error: no need to
  // look further than one byte beyond it.
  reader.feed(body.substr(0, kMaxBodySize + 1));
  return reader.finish();
}

}  // namespace ember::queue
