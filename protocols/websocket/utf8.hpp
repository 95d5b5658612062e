// UTF-8 validation for WebSocket text messages and close reasons (RFC 3629:
// no overlongs, no surrogates U+D800..DFFF, nothing above U+10FFFF).
//
// Utf8Validator is incremental: feed a message's pieces in order, in any
// cut, and it fails at the first byte that no valid continuation could make
// right ("fail fast", as RFC 6455 §8.1 allows), even mid-sequence. ASCII runs
// are checked 8 bytes at a time.
//
// Thread: plain value types, no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace ember::websocket {

class Utf8Validator {
 public:
  // False once the bytes seen so far cannot be the start of valid UTF-8; it
  // stays false until reset().
  bool feed(const uint8_t* data, size_t size) noexcept;
  bool feed(std::span<const uint8_t> bytes) noexcept { return feed(bytes.data(), bytes.size()); }
  // True when everything fed is valid and no code point is left unfinished.
  bool complete() const noexcept { return !failed_ && need_ == 0; }
  bool failed() const noexcept { return failed_; }
  void reset() noexcept { *this = Utf8Validator(); }

 private:
  uint8_t need_ = 0;   // continuation bytes still expected
  uint8_t lo_ = 0x80;  // allowed range of the next continuation byte
  uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

// Whole-buffer check: valid and complete.
bool valid_utf8(const uint8_t* data, size_t size) noexcept;
inline bool valid_utf8(std::span<const uint8_t> bytes) noexcept {
  return valid_utf8(bytes.data(), bytes.size());
}
inline bool valid_utf8(std::string_view text) noexcept {
  return valid_utf8(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace ember::websocket
