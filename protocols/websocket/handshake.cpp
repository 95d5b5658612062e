#include "protocols/websocket/handshake.hpp"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>
#include <random>

namespace ember::websocket {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Base64 of `n` bytes into `out` (4 * ceil(n / 3) chars), with padding.
void base64(const uint8_t* in, size_t n, char* out) noexcept {
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
    *out++ = kAlphabet[v >> 18];
    *out++ = kAlphabet[(v >> 12) & 63];
    *out++ = kAlphabet[(v >> 6) & 63];
    *out++ = kAlphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{in[i]} << 16;
    *out++ = kAlphabet[v >> 18];
    *out++ = kAlphabet[(v >> 12) & 63];
    *out++ = '=';
    *out++ = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8);
    *out++ = kAlphabet[v >> 18];
    *out++ = kAlphabet[(v >> 12) & 63];
    *out++ = kAlphabet[(v >> 6) & 63];
    *out++ = '=';
  }
}

int base64_digit(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// A key is 16 bytes in base64: 22 digits and "==". The last digit carries
// 2 data bits; its 4 spare bits are not checked (they decode to 16 bytes).
bool key_decodes_to_16(std::string_view key) noexcept {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i)
    if (base64_digit(key[i]) < 0) return false;
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// Calls f(item) for each trimmed, non-empty item of a comma list; stops
// when f returns true and returns that.
template <class F>
bool any_item(std::string_view list, F&& f) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty() && f(item)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool safe_value(std::string_view v) noexcept {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

HandshakeError refuse(int status, std::string_view reason) noexcept {
  return HandshakeError{status, reason};
}

}  // namespace

bool has_token(std::string_view list, std::string_view token) noexcept {
  return any_item(list, [&](std::string_view item) { return iequals(item, token); });
}

AcceptValue compute_accept(std::string_view key) noexcept {
  // Keys longer than a valid one are refused before this; cap the buffer anyway.
  char buf[128 + kGuid.size()];
  size_t k = std::min<size_t>(key.size(), 128);
  std::memcpy(buf, key.data(), k);
  std::memcpy(buf + k, kGuid.data(), kGuid.size());
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const uint8_t*>(buf), k + kGuid.size(), digest);
  AcceptValue out;
  base64(digest, sizeof digest, out.text);
  return out;
}

Expected<AcceptValue, HandshakeError> validate_upgrade(const UpgradeRequest& r) noexcept {
  if (r.method != "GET") return refuse(400, "WebSocket upgrade needs method GET");
  if (r.http_major < 1 || (r.http_major == 1 && r.http_minor < 1))
    return refuse(400, "WebSocket upgrade needs HTTP/1.1 or later");
  if (!has_token(r.upgrade, "websocket"))
    return refuse(400, "Upgrade header lacks the websocket token");
  if (!has_token(r.connection, "upgrade"))
    return refuse(400, "Connection header lacks the upgrade token");
  if (r.repeated) return refuse(400, "Sec-WebSocket-Key or Sec-WebSocket-Version repeated");
  if (trim(r.version) != "13") return refuse(426, "unsupported Sec-WebSocket-Version (want 13)");
  std::string_view key = trim(r.key);
  if (!key_decodes_to_16(key))
    return refuse(400, "Sec-WebSocket-Key missing or not base64 of 16 bytes");
  return compute_accept(key);
}

std::string_view select_subprotocol(std::string_view offered,
                                    std::span<const std::string_view> supported) noexcept {
  std::string_view chosen;
  any_item(offered, [&](std::string_view item) {
    for (std::string_view s : supported) {
      if (s == item) {
        chosen = s;
        return true;
      }
    }
    return false;
  });
  return chosen;
}

void write_accept_response(IoChain& out, const AcceptValue& accept, std::string_view protocol) {
  out.append_copy(
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ");
  out.append_copy(accept.view());
  if (!protocol.empty()) {
    out.append_copy("\r\nSec-WebSocket-Protocol: ");
    out.append_copy(protocol);
  }
  out.append_copy("\r\n\r\n");
}

void write_handshake_error(IoChain& out, const HandshakeError& error) {
  if (error.status == 426) {
    out.append_copy(
        "HTTP/1.1 426 Upgrade Required\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Connection: close\r\n"
        "Content-Length: 0\r\n\r\n");
  } else {
    out.append_copy(
        "HTTP/1.1 400 Bad Request\r\n"
        "Connection: close\r\n"
        "Content-Length: 0\r\n\r\n");
  }
}

ClientKey make_client_key(std::span<const uint8_t, 16> nonce) noexcept {
  ClientKey key;
  base64(nonce.data(), 16, key.text);
  return key;
}

ClientKey make_client_key() noexcept {
  uint8_t nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) {
    std::random_device rd;
    for (size_t i = 0; i < sizeof nonce; i += 4) {
      uint32_t v = rd();
      std::memcpy(nonce + i, &v, 4);
    }
  }
  return make_client_key(std::span<const uint8_t, 16>(nonce));
}

bool write_upgrade_request(IoChain& out, const ClientRequest& r, const ClientKey& key) {
  if (r.host.empty() || r.target.empty()) return false;
  for (std::string_view v : {r.host, r.target, r.protocols, r.origin})
    if (!safe_value(v)) return false;
  if (r.target.find(' ') != std::string_view::npos) return false;
  out.append_copy("GET ");
  out.append_copy(r.target);
  out.append_copy(" HTTP/1.1\r\nHost: ");
  out.append_copy(r.host);
  out.append_copy(
      "\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key: ");
  out.append_copy(key.view());
  out.append_copy("\r\nSec-WebSocket-Version: 13\r\n");
  if (!r.protocols.empty()) {
    out.append_copy("Sec-WebSocket-Protocol: ");
    out.append_copy(r.protocols);
    out.append_copy("\r\n");
  }
  if (!r.origin.empty()) {
    out.append_copy("Origin: ");
    out.append_copy(r.origin);
    out.append_copy("\r\n");
  }
  out.append_copy("\r\n");
  return true;
}

Expected<void, HandshakeError> verify_upgrade_response(const UpgradeResponse& r,
                                                       const ClientKey& key,
                                                       std::string_view offered) noexcept {
  if (r.status != 101) return refuse(0, "server did not answer 101 Switching Protocols");
  if (!has_token(r.upgrade, "websocket")) return refuse(0, "101 without Upgrade: websocket");
  if (!has_token(r.connection, "upgrade")) return refuse(0, "101 without Connection: upgrade");
  if (trim(r.accept) != compute_accept(key.view()).view())
    return refuse(0, "Sec-WebSocket-Accept does not match the key");
  if (!trim(r.extensions).empty())
    return refuse(0, "server chose an extension that was not offered");
  std::string_view protocol = trim(r.protocol);
  if (!protocol.empty() &&
      !any_item(offered, [&](std::string_view item) { return item == protocol; }))
    return refuse(0, "server chose a subprotocol that was not offered");
  return {};
}

}  // namespace ember::websocket
