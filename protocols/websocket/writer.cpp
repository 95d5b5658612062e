#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "protocols/websocket/frame.hpp"

namespace ember::websocket {

size_t encode_header(uint8_t out[14], Opcode opcode, bool fin, uint64_t payload_len,
                     const uint8_t* mask) noexcept {
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | static_cast<uint8_t>(opcode));
  uint8_t mask_bit = mask ? 0x80 : 0;
  size_t at;
  if (payload_len < 126) {
    out[1] = static_cast<uint8_t>(mask_bit | payload_len);
    at = 2;
  } else if (payload_len <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<uint8_t>(payload_len >> 8);
    out[3] = static_cast<uint8_t>(payload_len);
    at = 4;
  } else {
    out[1] = mask_bit | 127;
    for (size_t i = 0; i < 8; ++i)
      out[2 + i] = static_cast<uint8_t>(payload_len >> (56 - 8 * i));
    at = 10;
  }
  if (mask) {
    std::memcpy(out + at, mask, 4);
    at += 4;
  }
  return at;
}

Writer::Writer(Role role, WriterOptions options) : role_(role), options_(options) {}

void Writer::next_mask(uint8_t mask[4]) {
  if (key_at_ + 4 > sizeof keys_) {
    if (RAND_bytes(keys_, sizeof keys_) != 1) {
      // OpenSSL's generator failed (not seeded): the OS's is the fallback.
      std::random_device rd;
      for (size_t i = 0; i < sizeof keys_; i += 4) {
        uint32_t v = rd();
        std::memcpy(keys_ + i, &v, 4);
      }
    }
    key_at_ = 0;
  }
  std::memcpy(mask, keys_ + key_at_, 4);
  key_at_ += 4;
}

void Writer::write_frame(IoChain& out, Opcode opcode, const Bytes& payload, bool fin) {
  uint8_t h[14];
  if (role_ == Role::server) {
    out.append_copy(h, encode_header(h, opcode, fin, payload.size(), nullptr));
    if (payload.size() <= options_.inline_payload_max) {
      out.append_copy(payload.data(), payload.size());
    } else {
      out.append(payload);
    }
    return;
  }
  uint8_t mask[4];
  next_mask(mask);
  out.append_copy(h, encode_header(h, opcode, fin, payload.size(), mask));
  // Masked through a stack chunk; its size keeps the key phase at 0.
  uint8_t chunk[4096];
  for (size_t off = 0; off < payload.size(); off += sizeof chunk) {
    size_t k = std::min(sizeof chunk, payload.size() - off);
    apply_mask(chunk, payload.data() + off, k, mask, 0);
    out.append_copy(chunk, k);
  }
}

void Writer::write_control(IoChain& out, Opcode opcode, const uint8_t* payload, size_t n) {
  n = std::min<size_t>(n, 125);
  uint8_t frame[14 + 125];
  size_t at;
  if (role_ == Role::server) {
    at = encode_header(frame, opcode, true, n, nullptr);
    if (n) std::memcpy(frame + at, payload, n);
  } else {
    uint8_t mask[4];
    next_mask(mask);
    at = encode_header(frame, opcode, true, n, mask);
    apply_mask(frame + at, payload, n, mask, 0);
  }
  out.append_copy(frame, at + n);
}

void Writer::write_ping(IoChain& out, std::span<const uint8_t> payload) {
  write_control(out, Opcode::ping, payload.data(), payload.size());
}

void Writer::write_pong(IoChain& out, std::span<const uint8_t> payload) {
  write_control(out, Opcode::pong, payload.data(), payload.size());
}

void Writer::write_close(IoChain& out, uint16_t code, std::string_view reason) {
  uint8_t payload[125];
  size_t n = 0;
  if (code != close_code::no_status) {
    payload[0] = static_cast<uint8_t>(code >> 8);
    payload[1] = static_cast<uint8_t>(code);
    size_t cut = reason.size();
    if (cut > 123) {
      cut = 123;
      // Never split a character: back up over continuation bytes.
      while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80)
        --cut;
    }
    if (cut) std::memcpy(payload + 2, reason.data(), cut);
    n = 2 + cut;
  }
  write_control(out, Opcode::close, payload, n);
}

}  // namespace ember::websocket
