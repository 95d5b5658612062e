#include "ember/config.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

namespace ember::config {
namespace {

std::string lower(std::string_view s) {
  std::string out;
  for (char c : s)
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return out;
}

// Splits "123unit" into the number and the trimmed lower-case unit.
bool split_number(std::string_view text, uint64_t* value, std::string* unit) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) return false;
  std::string_view rest = text.substr(i);
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  *value = v;
  *unit = lower(rest);
  return true;
}

std::optional<uint64_t> scale(uint64_t v, uint64_t mult) {
  if (mult != 0 && v > std::numeric_limits<uint64_t>::max() / mult) return std::nullopt;
  return v * mult;
}

}  // namespace

std::optional<uint64_t> parse_byte_size(std::string_view text) noexcept {
  uint64_t v;
  std::string unit;
  if (!split_number(text, &v, &unit)) return std::nullopt;
  if (unit.empty() || unit == "b") return v;
  if (unit == "k" || unit == "kb" || unit == "ki" || unit == "kib") return scale(v, 1ull << 10);
  if (unit == "m" || unit == "mb" || unit == "mi" || unit == "mib") return scale(v, 1ull << 20);
  if (unit == "g" || unit == "gb" || unit == "gi" || unit == "gib") return scale(v, 1ull << 30);
  return std::nullopt;
}

std::optional<uint64_t> parse_duration_ms(std::string_view text) noexcept {
  uint64_t v;
  std::string unit;
  if (!split_number(text, &v, &unit)) return std::nullopt;
  if (unit.empty() || unit == "ms") return v;
  if (unit == "s") return scale(v, 1000);
  if (unit == "m" || unit == "min") return scale(v, 60'000);
  if (unit == "h") return scale(v, 3'600'000);
  return std::nullopt;
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error("cannot read " + path + ": " + describe_errno(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error("cannot read " + path + ": " + describe_errno(errno));
  return ss.str();
}

}  // namespace ember::config
