#include <cstdio>

#include "ember/queue_case.hpp"

namespace ember::queue {

std::size_t Case::hash() const noexcept {
  std::size_t h;
  switch (kind()) {
    case Kind::Bool:
      h = std::hash<bool>{}(as_bool());
      break;
    case Kind::Integer:
      h = std::hash<std::int64_t>{}(as_integer());
      break;
    default:
      h = std::hash<std::string>{}(as_string());
      break;
  }
  // Mix the kind in so that true, 1 and "1" do not collide by construction.
  std::size_t k = static_cast<std::size_t>(kind()) + 1;
  return h ^ (k * 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

std::string Case::to_json() const {
  switch (kind()) {
    case Kind::Bool:
      return as_bool() ? "true" : "false";
    case Kind::Integer:
      return std::to_string(as_integer());
    case Kind::String:
      break;
  }
  const std::string& s = as_string();
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace ember::queue
