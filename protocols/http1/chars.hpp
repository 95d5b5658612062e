// Character classes of RFC 9110/9112, as lookup tables. Internal.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace ember::http1::chars {

enum : uint8_t {
  kToken = 1,       // tchar
  kFieldValue = 2,  // field-vchar / SP / HTAB (obs-text included)
  kTarget = 4,      // request-target bytes we accept: VCHAR except '#'
  kHost = 8,        // uri-host [":" port]: unreserved / pct-encoded / sub-delims / ":" / "[" / "]"
  kQdText = 16,     // qdtext of a quoted-string
  kHex = 32,
};

constexpr std::array<uint8_t, 256> make_table() {
  std::array<uint8_t, 256> t{};
  constexpr std::string_view token_extra = "!#$%&'*+-.^_`|~";
  constexpr std::string_view host_extra = "-._~%!$&'()*+,;=:[]";
  for (int c = 0; c < 256; ++c) {
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool digit = c >= '0' && c <= '9';
    uint8_t v = 0;
    if (alpha || digit || token_extra.find(static_cast<char>(c)) != std::string_view::npos)
      v |= kToken;
    if (c == '\t' || (c >= 0x20 && c != 0x7F)) v |= kFieldValue;
    if (c > 0x20 && c < 0x7F && c != '#') v |= kTarget;
    if (alpha || digit || host_extra.find(static_cast<char>(c)) != std::string_view::npos)
      v |= kHost;
    if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) ||
        (c >= 0x5D && c <= 0x7E) || c >= 0x80)
      v |= kQdText;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    t[static_cast<size_t>(c)] = v;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kTable = make_table();

inline bool is(char c, uint8_t cls) noexcept {
  return kTable[static_cast<uint8_t>(c)] & cls;
}
inline bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}
inline bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
inline char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

inline bool all_of(std::string_view s, uint8_t cls) noexcept {
  for (char c : s)
    if (!is(c, cls)) return false;
  return true;
}

// Calls f(element) for each comma-separated element, OWS trimmed. Empty
// elements are passed as empty views.
template <class F>
void for_each_element(std::string_view list, F&& f) {
  size_t i = 0;
  for (;;) {
    size_t comma = list.find(',', i);
    std::string_view e = list.substr(i, comma == std::string_view::npos ? list.npos : comma - i);
    while (!e.empty() && is_ows(e.front()))
      e.remove_prefix(1);
    while (!e.empty() && is_ows(e.back()))
      e.remove_suffix(1);
    f(e);
    if (comma == std::string_view::npos) return;
    i = comma + 1;
  }
}

}  // namespace ember::http1::chars
