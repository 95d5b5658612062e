// AMQP 0-9-1 wire primitives: frame constants, a bounds-checked big-endian
// reader and a growable writer.
//
// Reader never reads past its span: a short read returns zero/empty and makes
// ok() false for good, so a decoder can read every field and check once.
// Writer appends to a caller's std::vector (capacity kept between uses, so a
// steady stream of frames allocates nothing); a value that cannot be encoded
// (a short string over 255 bytes) makes ok() false.
//
// Thread: plain values, no shared state.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace ember::amqp {

// "AMQP" 0 0 9 1: the client's first bytes on a connection.
inline constexpr uint8_t kProtocolHeader[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

enum class FrameType : uint8_t { method = 1, header = 2, body = 3, heartbeat = 8 };

inline constexpr uint8_t kFrameEnd = 0xCE;
// Type (1), channel (2), payload size (4).
inline constexpr size_t kFrameHeaderSize = 7;
// A frame's bytes besides its payload; frame_max counts them too.
inline constexpr size_t kFrameOverhead = kFrameHeaderSize + 1;
// Every peer accepts frames of this size, before and after tuning.
inline constexpr uint32_t kFrameMinSize = 4096;
// RabbitMQ's default frame_max.
inline constexpr uint32_t kDefaultFrameMax = 131072;

class Reader {
 public:
  Reader() = default;
  explicit Reader(std::span<const uint8_t> in) noexcept : p_(in.data()), end_(p_ + in.size()) {}

  bool ok() const noexcept { return ok_; }
  size_t remaining() const noexcept { return static_cast<size_t>(end_ - p_); }
  const uint8_t* position() const noexcept { return p_; }
  void fail() noexcept {
    ok_ = false;
    p_ = end_;
  }

  uint8_t u8() noexcept {
    if (!need(1)) return 0;
    return *p_++;
  }
  uint16_t u16() noexcept {
    if (!need(2)) return 0;
    uint16_t v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return v;
  }
  uint32_t u32() noexcept {
    if (!need(4)) return 0;
    uint32_t v = (uint32_t{p_[0]} << 24) | (uint32_t{p_[1]} << 16) | (uint32_t{p_[2]} << 8) |
                 uint32_t{p_[3]};
    p_ += 4;
    return v;
  }
  uint64_t u64() noexcept {
    uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  // `n` raw bytes; empty (and !ok()) when fewer remain.
  std::span<const uint8_t> bytes(size_t n) noexcept {
    if (!need(n)) return {};
    std::span<const uint8_t> s(p_, n);
    p_ += n;
    return s;
  }
  std::string_view shortstr() noexcept { return as_view(bytes(u8())); }
  std::string_view longstr() noexcept {
    uint32_t n = u32();
    return ok_ ? as_view(bytes(n)) : std::string_view{};
  }

  static std::string_view as_view(std::span<const uint8_t> s) noexcept {
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }

 private:
  bool need(size_t n) noexcept {
    if (static_cast<size_t>(end_ - p_) >= n) return true;
    fail();
    return false;
  }

  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  bool ok_ = true;
};

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) noexcept : out_(out) {}

  bool ok() const noexcept { return ok_; }
  void fail() noexcept { ok_ = false; }
  size_t size() const noexcept { return out_.size(); }
  std::vector<uint8_t>& buffer() noexcept { return out_; }

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) {
    uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    raw(b, 2);
  }
  void u32(uint32_t v) {
    uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                    static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    raw(b, 4);
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  void raw(const void* data, size_t n) {
    if (n == 0) return;
    size_t at = out_.size();
    out_.resize(at + n);
    std::memcpy(out_.data() + at, data, n);
  }
  void shortstr(std::string_view s) {
    if (s.size() > 255) {
      ok_ = false;
      return;
    }
    u8(static_cast<uint8_t>(s.size()));
    raw(s.data(), s.size());
  }
  void longstr(std::string_view s) {
    if (s.size() > UINT32_MAX) {
      ok_ = false;
      return;
    }
    u32(static_cast<uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  // Overwrites 4 bytes written earlier (a length known only afterwards).
  void patch_u32(size_t at, uint32_t v) noexcept {
    out_[at] = static_cast<uint8_t>(v >> 24);
    out_[at + 1] = static_cast<uint8_t>(v >> 16);
    out_[at + 2] = static_cast<uint8_t>(v >> 8);
    out_[at + 3] = static_cast<uint8_t>(v);
  }

 private:
  std::vector<uint8_t>& out_;
  bool ok_ = true;
};

}  // namespace ember::amqp
