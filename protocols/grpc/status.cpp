#include "protocols/grpc/status.hpp"

#include <limits>

namespace ember::grpc {

std::string_view status_name(StatusCode code) noexcept {
  static constexpr std::string_view kNames[] = {"OK",
                                                "CANCELLED",
                                                "UNKNOWN",
                                                "INVALID_ARGUMENT",
                                                "DEADLINE_EXCEEDED",
                                                "NOT_FOUND",
                                                "ALREADY_EXISTS",
                                                "PERMISSION_DENIED",
                                                "RESOURCE_EXHAUSTED",
                                                "FAILED_PRECONDITION",
                                                "ABORTED",
                                                "OUT_OF_RANGE",
                                                "UNIMPLEMENTED",
                                                "INTERNAL",
                                                "UNAVAILABLE",
                                                "DATA_LOSS",
                                                "UNAUTHENTICATED"};
  int c = static_cast<int>(code);
  return c >= 0 && c <= 16 ? kNames[c] : std::string_view("UNKNOWN");
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char ch : text) {
    if (ch >= 0x20 && ch <= 0x7E && ch != '%') {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(kHex[ch >> 4]);
      out.push_back(kHex[ch & 15]);
    }
  }
  return out;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::optional<uint64_t> parse_timeout(std::string_view v) noexcept {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  uint64_t mult;
  switch (v.back()) {
    case 'H':
      mult = 3'600'000'000'000ull;
      break;
    case 'M':
      mult = 60'000'000'000ull;
      break;
    case 'S':
      mult = 1'000'000'000ull;
      break;
    case 'm':
      mult = 1'000'000ull;
      break;
    case 'u':
      mult = 1'000ull;
      break;
    case 'n':
      mult = 1ull;
      break;
    default:
      return std::nullopt;
  }
  if (n > std::numeric_limits<uint64_t>::max() / mult) return std::numeric_limits<uint64_t>::max();
  return n * mult;
}

std::string format_timeout(uint64_t nanos) {
  struct Unit {
    uint64_t nanos;
    char suffix;
  };
  static constexpr Unit kUnits[] = {{1, 'n'},
                                    {1'000, 'u'},
                                    {1'000'000, 'm'},
                                    {1'000'000'000, 'S'},
                                    {60'000'000'000ull, 'M'},
                                    {3'600'000'000'000ull, 'H'}};
  for (const Unit& u : kUnits) {
    uint64_t v = nanos / u.nanos + (nanos % u.nanos ? 1 : 0);
    if (v <= 99'999'999) return std::to_string(v) + u.suffix;
  }
  return "99999999H";
}

StatusCode status_from_http(int http_status) noexcept {
  switch (http_status) {
    case 400:
      return StatusCode::internal;
    case 401:
      return StatusCode::unauthenticated;
    case 403:
      return StatusCode::permission_denied;
    case 404:
      return StatusCode::unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return StatusCode::unavailable;
    default:
      return StatusCode::unknown;
  }
}

}  // namespace ember::grpc
