#include "protocols/websocket/utf8.hpp"

#include <cstring>

namespace ember::websocket {
namespace {

constexpr uint64_t kHighBits = 0x8080808080808080ull;

// Index of the first byte at or after `i` that is not ASCII (or n).
inline size_t skip_ascii(const uint8_t* p, size_t i, size_t n) noexcept {
  while (i + 8 <= n) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w & kHighBits) break;
    i += 8;
  }
  while (i < n && p[i] < 0x80)
    ++i;
  return i;
}

}  // namespace

bool Utf8Validator::feed(const uint8_t* p, size_t n) noexcept {
  if (failed_) return false;
  size_t i = 0;
  for (;;) {
    // Finish the pending sequence; each continuation byte has a range that
    // rules out overlongs, surrogates and values above U+10FFFF early.
    while (need_ != 0) {
      if (i == n) return true;
      uint8_t b = p[i++];
      if (b < lo_ || b > hi_) {
        failed_ = true;
        return false;
      }
      lo_ = 0x80;
      hi_ = 0xBF;
      --need_;
    }
    i = skip_ascii(p, i, n);
    if (i == n) return true;
    uint8_t lead = p[i++];
    if (lead < 0xC2) {  // stray continuation byte, or overlong C0/C1 lead
      failed_ = true;
      return false;
    }
    if (lead < 0xE0) {
      need_ = 1;
    } else if (lead < 0xF0) {
      need_ = 2;
      if (lead == 0xE0)
        lo_ = 0xA0;  // overlong 3-byte form
      else if (lead == 0xED)
        hi_ = 0x9F;  // surrogates
    } else if (lead < 0xF5) {
      need_ = 3;
      if (lead == 0xF0)
        lo_ = 0x90;  // overlong 4-byte form
      else if (lead == 0xF4)
        hi_ = 0x8F;  // above U+10FFFF
    } else {
      failed_ = true;
      return false;
    }
  }
}

bool valid_utf8(const uint8_t* data, size_t size) noexcept {
  Utf8Validator v;
  return v.feed(data, size) && v.complete();
}

}  // namespace ember::websocket
