#include "protocols/http2/request_check.hpp"

#include <charconv>
#include <cstring>

#include "protocols/http1/chars.hpp"
#include "protocols/http1/http1.hpp"

namespace ember::http2 {
namespace {

namespace chars = http1::chars;  // RFC 9110's character classes

// A tchar that is not uppercase (RFC 9113 §8.2.1).
bool name_char(char c) noexcept {
  return chars::is(c, chars::kToken) && !(c >= 'A' && c <= 'Z');
}
// ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1), first byte unchecked.
bool scheme_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || chars::is_digit(c) || c == '+' ||
         c == '-' || c == '.';
}
template <class Pred>
bool all_of(std::string_view s, Pred pred) noexcept {
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}

// Fast path for values, eight bytes at a time: true when no byte
// is below `floor` (0x20, or 0x21 to refuse SP too) or DEL. Bytes of 0x80 and
// up pass (obs-text). A false answer only means "look closer".
bool no_byte_below_or_del(std::string_view s, uint8_t floor) noexcept {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const uint64_t below = kOnes * floor, del = kOnes * 0x7f;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    uint64_t x = w ^ del;  // DEL becomes zero
    if (((w - below) & ~w & kHigh) | ((x - kOnes) & ~x & kHigh)) return false;
  }
  for (; i < s.size(); ++i) {
    auto c = static_cast<uint8_t>(s[i]);
    if (c < floor || c == 0x7f) return false;
  }
  return true;
}

// True when every byte may stand in an HTTP/1.1 request-target
// (chars::kTarget: VCHAR but '#'), so that h2 and HTTP/1.1 serve the same
// paths. Eight bytes at a time: with no high bit set, each test is exact.
bool target_bytes(std::string_view s) noexcept {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const uint64_t below = kOnes * 0x21, del = kOnes * 0x7f, hash = kOnes * '#';
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    uint64_t x = w ^ del, y = w ^ hash;  // DEL, '#' become zero
    if ((w & kHigh) | ((w - below) & ~w & kHigh) | ((x - kOnes) & ~x & kHigh) |
        ((y - kOnes) & ~y & kHigh))
      return false;
  }
  for (; i < s.size(); ++i)
    if (!chars::is(s[i], chars::kTarget)) return false;
  return true;
}

}  // namespace

bool valid_field_name(std::string_view name) noexcept {
  return !name.empty() && all_of(name, name_char);
}

bool valid_field_value(std::string_view value) noexcept {
  if (value.empty()) return true;
  auto edge_ws = [](char c) { return c == ' ' || c == '\t'; };
  if (edge_ws(value.front()) || edge_ws(value.back())) return false;
  return no_byte_below_or_del(value, 0x20) ||
         chars::all_of(value, chars::kFieldValue);  // HTAB: the slow way
}

const char* RequestCheck::header(std::string_view name, std::string_view value) noexcept {
  if (!name.empty() && name[0] == ':') {
    if (seen_ & kRegular) return "a pseudo-header follows a regular field";
    return pseudo(name, value);
  }
  seen_ |= kRegular;
  return regular(name, value, false);
}

const char* RequestCheck::pseudo(std::string_view name, std::string_view value) noexcept {
  // The four request pseudo-headers differ in their second byte.
  uint16_t bit;
  switch (name.size() > 1 ? name[1] : 0) {
    case 'm':
      if (name != ":method") return "unknown pseudo-header";
      if (value.empty() || !chars::all_of(value, chars::kToken)) return "invalid :method";
      bit = kMethod;
      if (value.size() == 7 && value == "CONNECT") seen_ |= kConnect;
      if (value.size() == 7 && value == "OPTIONS") seen_ |= kOptions;
      if (value.size() == 4 && value == "HEAD") seen_ |= kHead;
      break;
    case 'p':
      if (name != ":path") return "unknown pseudo-header";
      if (value.empty() || !target_bytes(value)) return "invalid :path";
      bit = kPath;
      if (value == "*")
        seen_ |= kPathAsterisk;  // allowed with OPTIONS only: end_headers() knows the method
      else if (value[0] != '/')
        return ":path is neither absolute nor *";
      break;
    case 's':
      if (name != ":scheme") return "unknown pseudo-header";  // :status among them
      if (value.empty() || !all_of(value, scheme_char)) return "invalid :scheme";
      bit = kScheme;
      break;
    case 'a':
      if (name != ":authority") return "unknown pseudo-header";
      if (!http1::valid_authority(value)) return "invalid :authority";
      bit = kAuthority;
      break;
    default:
      return "unknown pseudo-header";  // :protocol too: extended CONNECT is off
  }
  if (seen_ & bit) return "duplicate pseudo-header";
  seen_ |= bit;
  return nullptr;
}

const char* RequestCheck::regular(std::string_view name, std::string_view value,
                                  bool trailer) noexcept {
  if (!valid_field_name(name)) return "invalid field name";
  if (!valid_field_value(value)) return "invalid field value";
  // Connection-specific fields (RFC 9113 §8.2.2) and the ones with rules.
  switch (name.size()) {
    case 2:
      if (name == "te" && !http1::iequals(value, "trailers")) return "te other than trailers";
      break;
    case 4:
      // Once, and not empty: with no :authority it routes the request, and
      // a second one could route differently from what a flare reads.
      if (name == "host" && !trailer) {
        if (!http1::valid_authority(value)) return "invalid host";
        if (seen_ & kHost) return "duplicate host";
        seen_ |= kHost;
      }
      break;
    case 7:
      if (name == "upgrade") return "connection-specific field";
      break;
    case 10:
      if (name == "connection" || name == "keep-alive") return "connection-specific field";
      break;
    case 14:
      if (name == "content-length" && !trailer) {
        if (content_length_ >= 0) return "duplicate content-length";
        int64_t n = -1;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || end != value.data() + value.size() || n < 0 || value.empty() ||
            value[0] == '+' || value[0] == '-')
          return "invalid content-length";
        content_length_ = n;
      }
      break;
    case 16:
      if (name == "proxy-connection") return "connection-specific field";
      break;
    case 17:
      if (name == "transfer-encoding") return "connection-specific field";
      break;
    default:
      break;
  }
  return nullptr;
}

const char* RequestCheck::end_headers() noexcept {
  if (!(seen_ & kMethod)) return "missing :method";
  if (seen_ & kConnect) {
    // RFC 9113 §8.5: authority only.
    if (!(seen_ & kAuthority)) return "CONNECT without :authority";
    if (seen_ & (kScheme | kPath)) return "CONNECT with :scheme or :path";
    return nullptr;
  }
  if (!(seen_ & (kAuthority | kHost))) return "neither :authority nor host";  // §8.3.1
  if (!(seen_ & kScheme)) return "missing :scheme";
  if (!(seen_ & kPath)) return "missing :path";
  if ((seen_ & kPathAsterisk) && !(seen_ & kOptions)) return ":path * on a method but OPTIONS";
  return nullptr;
}

const char* RequestCheck::trailer(std::string_view name, std::string_view value) noexcept {
  if (!name.empty() && name[0] == ':') return "pseudo-header in trailers";
  return regular(name, value, true);
}

const char* RequestCheck::data(uint64_t n) noexcept {
  received_ += n;
  if (content_length_ >= 0 && received_ > static_cast<uint64_t>(content_length_))
    return "more DATA than content-length";
  return nullptr;
}

const char* RequestCheck::end_stream() const noexcept {
  if (content_length_ >= 0 && received_ != static_cast<uint64_t>(content_length_))
    return "less DATA than content-length";
  return nullptr;
}

}  // namespace ember::http2
