#include <algorithm>
#include <bit>
#include <cstring>

#include "protocols/websocket/frame.hpp"

namespace ember::websocket {
namespace {

// A gather buffer up to this size is kept for the next fragmented message;
// a larger one goes back to the pool so an idle connection holds little.
constexpr size_t kKeepGather = 64 * 1024;
// Memory is committed as payload arrives, not as headers claim: a peer that
// announces a 1 MiB frame and sends 20 bytes gets a buffer of this size.
constexpr size_t kGatherStep = 64 * 1024;

inline bool is_control(uint8_t opcode) noexcept {
  return (opcode & 0x8) != 0;
}

inline size_t header_length(uint8_t b1) noexcept {
  uint8_t len7 = b1 & 0x7F;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
}

}  // namespace

bool valid_close_code(uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

void apply_mask(uint8_t* dst, const uint8_t* src, size_t n, const uint8_t mask[4],
                size_t phase) noexcept {
  // The key as a word, rotated so that its first byte in memory is
  // mask[phase & 3], then doubled to 64 bits.
  uint32_t k;
  std::memcpy(&k, mask, 4);
  if (unsigned shift = 8 * (phase & 3)) {
    if constexpr (std::endian::native == std::endian::little) {
      k = std::rotr(k, static_cast<int>(shift));
    } else {
      k = std::rotl(k, static_cast<int>(shift));
    }
  }
  const uint64_t mw = (uint64_t{k} << 32) | k;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, src + i, 32);
    w[0] ^= mw;
    w[1] ^= mw;
    w[2] ^= mw;
    w[3] ^= mw;
    std::memcpy(dst + i, w, 32);
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= mw;
    std::memcpy(dst + i, &w, 8);
  }
  // i is a multiple of 8 here, and 8 is a multiple of the key's period.
  uint8_t m8[8];
  std::memcpy(m8, &mw, 8);
  for (; i < n; ++i)
    dst[i] = src[i] ^ m8[i & 7];
}

Parser::Parser(Role role, ParserHandler& handler, Limits limits, BufferPool* pool)
    : role_(role), handler_(handler), limits_(limits), pool_(pool) {}

Parser::Result Parser::fail(uint16_t code, std::string_view reason, size_t consumed) {
  state_ = State::failed;
  error_code_ = code;
  error_reason_ = reason;
  release_gather();
  msg_opcode_ = 0;
  Result r;
  r.status = Status::error;
  r.consumed = consumed;
  r.code = code;
  r.reason = reason;
  return r;
}

void Parser::release_gather() noexcept {
  gather_ = MutableBuffer();
}

bool Parser::reserve_gather(size_t need) {
  if (gather_ && gather_.capacity() >= need) return true;
  // Doubling keeps a growing message's copies linear in its size.
  size_t cap =
      std::max(need, std::min(limits_.max_message, std::max<size_t>(4096, gather_.capacity() * 2)));
  MutableBuffer next = pool_ ? pool_->take(cap) : MutableBuffer::allocate(cap);
  if (!next) return false;
  if (msg_have_) std::memcpy(next.data(), gather_.data(), msg_have_);
  gather_ = std::move(next);
  return true;
}

bool Parser::gather_tail(BufferStorage** storage, uint8_t** data, size_t* room) {
  if (state_ != State::payload || !gathering_) return false;
  size_t remaining = static_cast<size_t>(frame_len_ - frame_have_);
  if (gather_.capacity() == msg_have_ &&
      !reserve_gather(msg_have_ + std::min(remaining, kGatherStep)))
    return false;
  *storage = gather_.storage();
  *data = gather_.data() + msg_have_;
  *room = std::min(remaining, gather_.capacity() - msg_have_);
  return true;
}

uint16_t Parser::begin_frame(const uint8_t* h, size_t header_len) {
  uint8_t b0 = h[0], b1 = h[1];
  fin_ = (b0 & 0x80) != 0;
  opcode_ = b0 & 0x0F;
  masked_ = (b1 & 0x80) != 0;
  if (b0 & 0x70) {
    error_reason_ = "reserved bits set without a negotiated extension";
    return close_code::protocol_error;
  }
  if (is_control(opcode_)) {
    if (opcode_ > 0xA) {
      error_reason_ = "unknown control opcode";
      return close_code::protocol_error;
    }
    if (!fin_) {
      error_reason_ = "fragmented control frame";
      return close_code::protocol_error;
    }
    if ((b1 & 0x7F) > 125) {
      error_reason_ = "control frame payload over 125 bytes";
      return close_code::protocol_error;
    }
  } else {
    if (opcode_ > 0x2) {
      error_reason_ = "unknown data opcode";
      return close_code::protocol_error;
    }
    if (opcode_ == 0 && msg_opcode_ == 0) {
      error_reason_ = "continuation frame without a message to continue";
      return close_code::protocol_error;
    }
    if (opcode_ != 0 && msg_opcode_ != 0) {
      error_reason_ = "new data frame inside a fragmented message";
      return close_code::protocol_error;
    }
  }
  if (role_ == Role::server && !masked_) {
    error_reason_ = "unmasked frame from a client";
    return close_code::protocol_error;
  }
  if (role_ == Role::client && masked_) {
    error_reason_ = "masked frame from a server";
    return close_code::protocol_error;
  }
  if (header_len == 0) return 0;  // only the first two bytes so far (early check)

  uint64_t len = b1 & 0x7F;
  size_t at = 2;
  if (len == 126) {
    len = (uint64_t{h[2]} << 8) | h[3];
    at = 4;
    if (len < 126) {
      error_reason_ = "payload length not minimally encoded";
      return close_code::protocol_error;
    }
  } else if (len == 127) {
    len = 0;
    for (size_t i = 0; i < 8; ++i)
      len = (len << 8) | h[2 + i];
    at = 10;
    if (len >> 63) {
      error_reason_ = "64-bit payload length with the high bit set";
      return close_code::protocol_error;
    }
    if (len < 65536) {
      error_reason_ = "payload length not minimally encoded";
      return close_code::protocol_error;
    }
  }
  if (masked_) std::memcpy(mask_, h + at, 4);
  if (is_control(opcode_)) {
    // Bounded at 125 above; the limits are for data.
  } else if (len > limits_.max_frame) {
    error_reason_ = "frame larger than the frame size limit";
    return close_code::too_big;
  } else if (len > limits_.max_message - msg_have_) {
    error_reason_ = "message larger than the message size limit";
    return close_code::too_big;
  }
  frame_len_ = len;
  frame_have_ = 0;
  return 0;
}

uint16_t Parser::gather(const uint8_t* src, size_t n) {
  // Bytes read in place (gather_tail) are inside the buffer already.
  if (msg_have_ + n > gather_.capacity() && !reserve_gather(msg_have_ + n)) {
    error_reason_ = "out of memory for a message";
    return close_code::internal_error;
  }
  uint8_t* dst = gather_.data() + msg_have_;
  if (masked_) {
    apply_mask(dst, src, n, mask_, static_cast<size_t>(frame_have_ & 3));
  } else if (dst != src && n) {
    std::memcpy(dst, src, n);
  }
  msg_have_ += n;
  frame_have_ += n;
  if (msg_opcode_ == static_cast<uint8_t>(Opcode::text) && !utf8_.feed(dst, n)) {
    error_reason_ = "invalid UTF-8 in a text message";
    return close_code::invalid_payload;
  }
  return 0;
}

uint16_t Parser::end_data_frame() {
  state_ = State::header;
  gathering_ = false;
  if (!fin_) return 0;
  if (msg_opcode_ == static_cast<uint8_t>(Opcode::text) && !utf8_.complete()) {
    error_reason_ = "text message ends inside a UTF-8 sequence";
    return close_code::invalid_payload;
  }
  auto opcode = static_cast<Opcode>(msg_opcode_);
  size_t size = msg_have_;
  msg_opcode_ = 0;
  msg_have_ = 0;
  {
    Bytes message = size ? Bytes::share(gather_.storage(), gather_.data(), size) : Bytes();
    handler_.on_message(opcode, message);
  }
  // Kept by the handler: the bytes are now immutable and no longer ours.
  if (gather_ && (gather_.storage()->use_count() != 1 || gather_.capacity() > kKeepGather))
    release_gather();
  return 0;
}

uint16_t Parser::end_control_frame(const Bytes& payload) {
  state_ = State::header;
  switch (static_cast<Opcode>(opcode_)) {
    case Opcode::ping:
      handler_.on_ping(payload);
      return 0;
    case Opcode::pong:
      handler_.on_pong(payload);
      return 0;
    default:
      break;
  }
  // Close.
  uint16_t code = close_code::no_status;
  std::string_view reason;
  if (payload.size() == 1) {
    error_reason_ = "close payload of one byte";
    return close_code::protocol_error;
  }
  if (payload.size() >= 2) {
    code = static_cast<uint16_t>((payload.data()[0] << 8) | payload.data()[1]);
    if (!valid_close_code(code)) {
      error_reason_ = "close code not allowed on the wire";
      return close_code::protocol_error;
    }
    reason = payload.view().substr(2);
    if (!valid_utf8(reason)) {
      error_reason_ = "invalid UTF-8 in the close reason";
      return close_code::invalid_payload;
    }
  }
  state_ = State::closed;
  release_gather();
  msg_opcode_ = 0;
  handler_.on_close(code, reason);
  return 0;
}

Parser::Result Parser::feed(const Bytes& input) {
  Result r;
  if (state_ == State::failed) {
    r.status = Status::error;
    r.code = error_code_;
    r.reason = error_reason_;
    return r;
  }
  if (state_ == State::closed) {
    r.status = Status::closed;
    r.consumed = input.size();
    return r;
  }
  paused_ = false;
  // In place: see the precondition in frame.hpp.
  auto* base = const_cast<uint8_t*>(input.data());
  const size_t n = input.size();
  size_t pos = 0;
  const uint8_t mask_bit = role_ == Role::server ? 0x80 : 0;
  while (pos < n) {
    uint16_t code = 0;
    // The hot path, for small whole messages (an echo's 32 bytes): FIN, no
    // RSV, text or binary, no message open, masked as the role requires, a
    // 7-bit length, all of it in this input. Anything else takes the
    // general path below, which makes the same decisions.
    if (state_ == State::header && hdr_have_ == 0 && msg_opcode_ == 0 && n - pos >= 2) {
      const uint8_t b0 = base[pos], b1 = base[pos + 1];
      const size_t len = b1 & 0x7F;
      const size_t hlen = mask_bit ? 6 : 2;
      if ((b0 == 0x81 || b0 == 0x82) && (b1 & 0x80) == mask_bit && len < 126 &&
          n - pos >= hlen + len && len <= limits_.max_frame && len <= limits_.max_message) {
        uint8_t* p = base + pos + hlen;
        if (mask_bit) apply_mask(p, p, len, base + pos + 2, 0);
        if (b0 == 0x81 && !valid_utf8(p, len))
          return fail(close_code::invalid_payload, "invalid UTF-8 in a text message", pos + hlen);
        pos += hlen + len;
        handler_.on_message(static_cast<Opcode>(b0 & 0x0F), input.slice(pos - len, len));
        if (paused_) {
          paused_ = false;
          r.status = Status::paused;
          r.consumed = pos;
          return r;
        }
        continue;
      }
    }
    if (state_ == State::header) {
      const uint8_t* h;
      size_t hlen;
      if (hdr_have_ == 0 && n - pos >= 2 && n - pos >= header_length(base[pos + 1])) {
        h = base + pos;
        hlen = header_length(base[pos + 1]);
        pos += hlen;
      } else {
        // Assemble the header across calls; check the first two bytes as
        // soon as they are in, so a bad frame fails however it is cut.
        while (pos < n) {
          size_t want = hdr_have_ < 2 ? 2 : header_length(hdr_[1]);
          size_t take = std::min(want - hdr_have_, n - pos);
          std::memcpy(hdr_ + hdr_have_, base + pos, take);
          bool had_two = hdr_have_ >= 2;
          hdr_have_ = static_cast<uint8_t>(hdr_have_ + take);
          pos += take;
          if (!had_two && hdr_have_ == 2) {
            if ((code = begin_frame(hdr_, 0))) return fail(code, error_reason_, pos);
            continue;
          }
          if (hdr_have_ >= 2 && hdr_have_ == header_length(hdr_[1])) break;
        }
        if (hdr_have_ < 2 || hdr_have_ < header_length(hdr_[1])) break;
        h = hdr_;
        hlen = hdr_have_;
        hdr_have_ = 0;
      }
      if ((code = begin_frame(h, hlen))) return fail(code, error_reason_, pos);

      const size_t avail = n - pos;
      const auto len = static_cast<size_t>(frame_len_);
      if (is_control(opcode_)) {
        if (avail >= len) {
          if (masked_) apply_mask(base + pos, base + pos, len, mask_, 0);
          Bytes payload = input.slice(pos, len);
          pos += len;
          if ((code = end_control_frame(payload))) return fail(code, error_reason_, pos);
        } else {
          state_ = State::payload;
          gathering_ = false;
          continue;
        }
      } else if (msg_opcode_ == 0 && fin_ && avail >= len) {
        // The fast path: a whole message inside this input, handed out as a slice.
        uint8_t* p = base + pos;
        if (masked_) apply_mask(p, p, len, mask_, 0);
        if (opcode_ == static_cast<uint8_t>(Opcode::text) && !valid_utf8(p, len))
          return fail(close_code::invalid_payload, "invalid UTF-8 in a text message", pos);
        pos += len;
        handler_.on_message(static_cast<Opcode>(opcode_), input.slice(pos - len, len));
      } else {
        if (msg_opcode_ == 0) {
          msg_opcode_ = opcode_;
          msg_have_ = 0;
          utf8_.reset();
        }
        size_t first = std::min(len, std::max(avail, kGatherStep));
        if (first && !reserve_gather(msg_have_ + first))
          return fail(close_code::internal_error, "out of memory for a message", pos);
        state_ = State::payload;
        gathering_ = true;
        size_t take = std::min(avail, len);
        if (take && (code = gather(base + pos, take))) return fail(code, error_reason_, pos);
        pos += take;
        if (frame_have_ < frame_len_) continue;
        if ((code = end_data_frame())) return fail(code, error_reason_, pos);
      }
    } else {  // State::payload
      size_t take = static_cast<size_t>(std::min<uint64_t>(frame_len_ - frame_have_, n - pos));
      if (gathering_) {
        if ((code = gather(base + pos, take))) return fail(code, error_reason_, pos);
        pos += take;
        if (frame_have_ < frame_len_) continue;
        if ((code = end_data_frame())) return fail(code, error_reason_, pos);
      } else {
        uint8_t* dst = ctrl_ + frame_have_;
        if (masked_) {
          apply_mask(dst, base + pos, take, mask_, static_cast<size_t>(frame_have_ & 3));
        } else {
          std::memcpy(dst, base + pos, take);
        }
        frame_have_ += take;
        pos += take;
        if (frame_have_ < frame_len_) continue;
        // Rare (a control frame cut by a read): a private copy the handler may keep.
        Bytes payload = Bytes::copy(std::span<const uint8_t>(ctrl_, frame_len_));
        if ((code = end_control_frame(payload))) return fail(code, error_reason_, pos);
      }
    }
    if (state_ == State::closed) {
      r.status = Status::closed;
      r.consumed = pos;
      return r;
    }
    if (paused_) {
      paused_ = false;
      r.status = Status::paused;
      r.consumed = pos;
      return r;
    }
  }
  r.consumed = pos;
  if (state_ == State::payload) {
    r.status = Status::need_more;
    r.wanted = static_cast<size_t>(frame_len_ - frame_have_);
  } else if (hdr_have_ != 0) {
    r.status = Status::need_more;
    r.wanted = (hdr_have_ < 2 ? 2 : header_length(hdr_[1])) - hdr_have_;
  }
  return r;
}

}  // namespace ember::websocket
