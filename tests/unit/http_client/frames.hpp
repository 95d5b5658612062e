// HTTP/2 frames written and read by hand, for servers in tests that speak
// HTTP/2 with prior knowledge (what nginx will not do on demand).
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/unit/http1_client/client_harness.hpp"

namespace ember::http::test::frames {

using http1::test::send_all;

struct Frame {
  uint8_t type = 0, flags = 0;
  int32_t stream = 0;
  std::string payload;
};

inline bool read_n(int fd, std::string& out, size_t n) {
  out.clear();
  char buf[65536];
  while (out.size() < n) {
    ssize_t k = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (k <= 0) return false;
    out.append(buf, static_cast<size_t>(k));
  }
  return true;
}

inline bool read_frame(int fd, Frame& f) {
  std::string h;
  if (!read_n(fd, h, 9)) return false;
  auto u = [&](int i) { return static_cast<uint32_t>(static_cast<uint8_t>(h[i])); };
  f.type = static_cast<uint8_t>(u(3));
  f.flags = static_cast<uint8_t>(u(4));
  f.stream = static_cast<int32_t>(((u(5) & 0x7f) << 24) | (u(6) << 16) | (u(7) << 8) | u(8));
  return read_n(fd, f.payload, (u(0) << 16) | (u(1) << 8) | u(2));
}

inline std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

inline std::string frame(uint8_t type, uint8_t flags, int32_t stream, std::string_view payload) {
  auto len = static_cast<uint32_t>(payload.size());
  std::string s = u32(len).substr(1);
  s.push_back(static_cast<char>(type));
  s.push_back(static_cast<char>(flags));
  s += u32(static_cast<uint32_t>(stream) & 0x7fffffffu);
  s.append(payload);
  return s;
}

inline std::string settings(std::vector<std::pair<uint16_t, uint32_t>> kv = {}) {
  std::string p;
  for (auto [k, v] : kv)
    p += std::string{static_cast<char>(k >> 8), static_cast<char>(k)} + u32(v);
  return frame(4, 0, 0, p);
}

constexpr uint8_t kEndStream = 1, kEndHeaders = 4;

// ":status: 200" (HPACK static index 8).
inline std::string ok(int32_t stream, bool end) {
  return frame(1, kEndHeaders | (end ? kEndStream : 0), stream, "\x88");
}
inline std::string data(int32_t stream, std::string_view d, bool end) {
  return frame(0, end ? kEndStream : 0, stream, d);
}
inline std::string goaway(int32_t last) {
  return frame(7, 0, 0, u32(static_cast<uint32_t>(last)) + u32(0));
}

// Ends the connection the way a careful server does: our side first, then
// whatever the client still sends is read until it closes too. Closing with
// unread input would send a reset, and a reset may cost the client the
// response still unread in its socket.
inline void lingering_close(int fd) {
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  while (::recv(fd, buf, sizeof buf, 0) > 0) {
  }
}

// Reads the preface, sends SETTINGS, then calls `on_frame` for every frame
// (SETTINGS are acknowledged first).
template <class F>
void serve(int fd, std::string server_settings, F on_frame) {
  std::string preface;
  if (!read_n(fd, preface, 24)) return;
  send_all(fd, server_settings);
  Frame f;
  while (read_frame(fd, f)) {
    if (f.type == 4 && !(f.flags & 1)) send_all(fd, frame(4, 1, 0, ""));
    if (!on_frame(f)) return;
  }
}

}  // namespace ember::http::test::frames
