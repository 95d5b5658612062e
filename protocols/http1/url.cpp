// URLs: absolute http(s) URLs as the client reads them, and percent-encoding
// for paths, queries and form data.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

#include "protocols/http1/http1.hpp"

namespace ember::http1 {
namespace {

int unhex(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool target_char(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != '#';
}

// reg-name = *( unreserved / pct-encoded / sub-delims ) (RFC 3986 §3.2.2).
bool reg_name_char(char c) noexcept {
  return host_char(c) || c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' ||
         c == '*' || c == '+' || c == ',' || c == ';' || c == '=';
}

}  // namespace

bool valid_authority(std::string_view a) noexcept {
  std::string_view port;
  bool has_port = false;
  if (!a.empty() && a[0] == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view v6 = a.substr(1, close - 1);
    char text[INET6_ADDRSTRLEN];
    in6_addr addr;
    if (v6.empty() || v6.size() >= sizeof text) return false;
    std::memcpy(text, v6.data(), v6.size());
    text[v6.size()] = '\0';
    if (inet_pton(AF_INET6, text, &addr) != 1) return false;
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      has_port = true;
      port = rest.substr(1);
    }
  } else {
    size_t colon = a.find(':');
    std::string_view host = a.substr(0, colon);
    if (host.empty()) return false;
    for (size_t i = 0; i < host.size(); ++i) {
      if (host[i] == '%') {
        if (i + 2 >= host.size() || unhex(host[i + 1]) < 0 || unhex(host[i + 2]) < 0) return false;
        i += 2;
      } else if (!reg_name_char(host[i])) {
        return false;
      }
    }
    if (colon != std::string_view::npos) {
      has_port = true;
      port = a.substr(colon + 1);
    }
  }
  if (!has_port) return true;
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + static_cast<uint32_t>(c - '0');
    if (p > 65535) return false;
  }
  return true;
}

std::string_view parse_url(std::string_view url, ParsedUrl& out) {
  auto starts = [&](std::string_view p) {
    return url.size() >= p.size() && iequals(url.substr(0, p.size()), p);
  };
  size_t at;
  if (starts("http://")) {
    at = 7;
  } else if (starts("https://")) {
    out.https = true;
    at = 8;
  } else {
    return url.find("://") == std::string_view::npos
               ? "not an absolute URL"
               : "unsupported URL scheme (http or https only)";
  }
  size_t end = url.find_first_of("/?#", at);
  if (end == std::string_view::npos) end = url.size();
  std::string_view auth = url.substr(at, end - at);
  if (auth.find('@') != std::string_view::npos) return "user info in URL is not supported";
  std::string_view host, port;
  if (!auth.empty() && auth[0] == '[') {
    size_t close = auth.find(']');
    if (close == std::string_view::npos) return "invalid IPv6 address in URL";
    host = auth.substr(1, close - 1);
    for (char c : host)
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'))
        return "invalid IPv6 address in URL";
    std::string_view rest = auth.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return "invalid host in URL";
      port = rest.substr(1);
    }
  } else {
    size_t colon = auth.find(':');
    host = auth.substr(0, colon);
    if (colon != std::string_view::npos) port = auth.substr(colon + 1);
    for (char c : host)
      if (!host_char(c)) return "invalid host in URL";
  }
  if (host.empty()) return "no host in URL";
  out.host = host;
  out.port = out.https ? 443 : 80;
  if (!port.empty()) {
    uint32_t p = 0;
    if (port.size() > 5) return "invalid port in URL";
    for (char c : port) {
      if (c < '0' || c > '9') return "invalid port in URL";
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p == 0 || p > 65535) return "invalid port in URL";
    out.port = static_cast<uint16_t>(p);
  }
  // The Host field leaves out a default port.
  out.host_header = (port.empty() || out.port == (out.https ? 443 : 80))
                        ? auth.substr(0, auth.size() - (port.empty() ? 0 : port.size() + 1))
                        : auth;
  std::string_view target = url.substr(end);
  size_t frag = target.find('#');
  if (frag != std::string_view::npos) target = target.substr(0, frag);
  for (char c : target)
    if (!target_char(c)) return "invalid character in URL path";
  out.target = target;
  out.query_only = !target.empty() && target[0] == '?';
  return {};
}

std::string percent_encode(std::string_view in, bool keep_slash) {
  std::string out;
  out.reserve(in.size() + in.size() / 2);
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back("0123456789ABCDEF"[c >> 4]);
      out.push_back("0123456789ABCDEF"[c & 15]);
    }
  }
  return out;
}

bool form_decode(std::string_view in, std::string* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      int h = unhex(in[i + 1]), l = unhex(in[i + 2]);
      if (h < 0 || l < 0) return false;
      out->push_back(static_cast<char>(h << 4 | l));
      i += 2;
    } else if (in[i] == '+') {
      out->push_back(' ');
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

}  // namespace ember::http1
