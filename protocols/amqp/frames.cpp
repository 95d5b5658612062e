#include "protocols/amqp/frames.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

namespace ember::amqp {
namespace {

bool known_type(uint8_t t) noexcept {
  return t == 1 || t == 2 || t == 3 || t == 8;
}

// Largest payload a frame of at most `frame_max` bytes can carry.
uint64_t payload_limit(uint32_t frame_max) noexcept {
  if (frame_max == 0) return UINT32_MAX;
  return frame_max > kFrameOverhead ? frame_max - kFrameOverhead : 0;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string method_label(uint16_t c, uint16_t m) {
  std::string_view n = method_name(c, m);
  if (!n.empty()) return std::string(n);
  return "method " + std::to_string(c) + "." + std::to_string(m);
}

}  // namespace

FrameParse parse_frame(std::span<const uint8_t> in, uint32_t frame_max, Frame& out) noexcept {
  FrameParse r;
  if (in.size() < kFrameHeaderSize) {
    r.needed = kFrameHeaderSize;
    return r;
  }
  uint8_t type = in[0];
  uint16_t channel = static_cast<uint16_t>((in[1] << 8) | in[2]);
  uint32_t size =
      (uint32_t{in[3]} << 24) | (uint32_t{in[4]} << 16) | (uint32_t{in[5]} << 8) | uint32_t{in[6]};
  if (!known_type(type)) {
    r.status = ParseStatus::error;
    r.code = ReplyCode::frame_error;
    r.reason = "unknown frame type";
    return r;
  }
  if (size > payload_limit(frame_max)) {
    r.status = ParseStatus::error;
    r.code = ReplyCode::frame_error;
    r.reason = "frame exceeds frame_max";
    return r;
  }
  size_t total = kFrameOverhead + size;
  if (in.size() < total) {
    r.needed = total;
    return r;
  }
  if (in[total - 1] != kFrameEnd) {
    r.status = ParseStatus::error;
    r.code = ReplyCode::frame_error;
    r.reason = "bad frame-end octet";
    return r;
  }
  out.type = type;
  out.channel = channel;
  out.payload = in.subspan(kFrameHeaderSize, size);
  r.status = ParseStatus::complete;
  r.consumed = total;
  return r;
}

// ---- FrameReader -------------------------------------------------------------------

struct FrameReader::Assembly {
  enum class Phase : uint8_t { idle, want_header, want_body };
  Phase phase = Phase::idle;
  std::vector<uint8_t> method_bytes;  // the content method's payload (views point here)
  std::vector<uint8_t> header_bytes;  // the header frame's payload
  Method method;
  ContentHeader header;
  uint64_t have = 0;     // body bytes received
  Bytes single;          // the body, when one frame inside one chunk carried it
  MutableBuffer gather;  // the body, when gathered
  bool dropping = false;
};

FrameReader::FrameReader(const FrameReaderOptions& options) : options_(options) {}
FrameReader::~FrameReader() = default;

Status FrameReader::fail(ReplyCode code, std::string text, uint16_t channel, uint16_t class_id,
                         uint16_t method_id) {
  failed_ = true;
  partial_.clear();
  return AmqpError(code, std::move(text), AmqpError::Origin::client, AmqpError::Scope::connection,
                   channel, class_id, method_id);
}

FrameReader::Assembly* FrameReader::find_assembly(uint16_t channel) const noexcept {
  return channel < channels_.size() ? channels_[channel].get() : nullptr;
}

FrameReader::Assembly& FrameReader::assembly(uint16_t channel) {
  if (channel >= channels_.size()) channels_.resize(size_t{channel} + 1);
  if (!channels_[channel]) channels_[channel] = std::make_unique<Assembly>();
  return *channels_[channel];
}

bool FrameReader::idle() const noexcept {
  if (state_ != State::header || header_have_ != 0) return false;
  for (const auto& a : channels_)
    if (a && a->phase != Assembly::Phase::idle) return false;
  return true;
}

void FrameReader::reset_channel(uint16_t channel) noexcept {
  Assembly* a = find_assembly(channel);
  if (!a) return;
  a->phase = Assembly::Phase::idle;
  a->single = Bytes();
  a->gather = MutableBuffer();
  a->have = 0;
  a->dropping = false;
}

Status FrameReader::feed(const Bytes& chunk, FrameHandler& handler) {
  if (failed_) return {};
  const uint8_t* base = chunk.data();
  const size_t n = chunk.size();
  size_t off = 0;
  while (off < n) {
    switch (state_) {
      case State::header: {
        if (!saw_frame_ && header_have_ == 0 && base[off] == 'A') {
          // A broker that does not speak 0-9-1 answers with its own protocol
          // header and closes.
          return fail(ReplyCode::frame_error,
                      "the broker answered with a protocol header: it does not support "
                      "AMQP 0-9-1");
        }
        size_t take = std::min(kFrameHeaderSize - header_have_, n - off);
        std::memcpy(header_ + header_have_, base + off, take);
        header_have_ += take;
        off += take;
        if (header_have_ < kFrameHeaderSize) return {};
        header_have_ = 0;
        saw_frame_ = true;
        type_ = header_[0];
        channel_ = static_cast<uint16_t>((header_[1] << 8) | header_[2]);
        size_ = (uint32_t{header_[3]} << 24) | (uint32_t{header_[4]} << 16) |
                (uint32_t{header_[5]} << 8) | uint32_t{header_[6]};
        if (!known_type(type_))
          return fail(ReplyCode::frame_error, format("unknown frame type %u", type_), channel_);
        if (size_ > payload_limit(options_.frame_max))
          return fail(ReplyCode::frame_error,
                      format("frame of %" PRIu64 " bytes exceeds frame_max %" PRIu32,
                             uint64_t{size_} + kFrameOverhead, options_.frame_max),
                      channel_);
        if (type_ == static_cast<uint8_t>(FrameType::heartbeat)) {
          if (channel_ != 0)
            return fail(ReplyCode::frame_error, format("heartbeat frame on channel %u", channel_),
                        channel_);
          if (size_ != 0)
            return fail(ReplyCode::frame_error,
                        format("heartbeat frame with a payload of %" PRIu32 " bytes", size_));
        }
        left_ = size_;
        if (type_ == static_cast<uint8_t>(FrameType::body)) {
          Assembly* a = find_assembly(channel_);
          if (!a || a->phase != Assembly::Phase::want_body)
            return fail(
                ReplyCode::unexpected_frame,
                format("content body frame on channel %u without a content header", channel_),
                channel_);
          if (a->have + size_ > a->header.body_size)
            return fail(
                ReplyCode::unexpected_frame,
                format("content body on channel %u exceeds its declared size of %" PRIu64 " bytes",
                       channel_, a->header.body_size),
                channel_, class_of(a->method), method_of(a->method));
          state_ = State::body_payload;
        } else {
          partial_.clear();
          state_ = State::payload;
        }
        if (left_ == 0) state_ = State::frame_end;
        break;
      }
      case State::payload: {
        if (partial_.empty() && n - off > left_) {
          // Payload and end octet inside this chunk: decode in place.
          if (base[off + left_] != kFrameEnd)
            return fail(ReplyCode::frame_error,
                        format("frame-end octet 0x%02x, expected 0xce", base[off + left_]),
                        channel_);
          std::span<const uint8_t> payload(base + off, left_);
          off += left_ + 1;
          left_ = 0;
          state_ = State::header;
          Status st = dispatch(payload, handler);
          if (!st) return st;
          break;
        }
        size_t take = std::min(left_, n - off);
        partial_.insert(partial_.end(), base + off, base + off + take);
        off += take;
        left_ -= take;
        if (left_ == 0) state_ = State::frame_end;
        break;
      }
      case State::body_payload: {
        Assembly& a = *find_assembly(channel_);
        if (!a.dropping && a.have == 0 && left_ == a.header.body_size && n - off >= left_) {
          // The whole body in this frame and all of it in this chunk: pass
          // a slice on, copy nothing.
          a.single = chunk.slice(off, left_);
          a.have = left_;
          off += left_;
          left_ = 0;
          state_ = State::frame_end;
          break;
        }
        size_t take = std::min(left_, n - off);
        if (!a.dropping && take > 0) {
          if (!a.gather) {
            size_t size = static_cast<size_t>(a.header.body_size);
            a.gather = options_.pool ? options_.pool->take(size) : MutableBuffer::allocate(size);
          }
          uint8_t* dst = a.gather.data() + a.have;
          if (dst != base + off) std::memmove(dst, base + off, take);
        }
        a.have += take;
        off += take;
        left_ -= take;
        if (left_ == 0) state_ = State::frame_end;
        break;
      }
      case State::frame_end: {
        uint8_t end = base[off++];
        state_ = State::header;
        if (end != kFrameEnd)
          return fail(ReplyCode::frame_error, format("frame-end octet 0x%02x, expected 0xce", end),
                      channel_);
        Status st =
            type_ == static_cast<uint8_t>(FrameType::body)
                ? finish_body_frame(handler)
                : dispatch(std::span<const uint8_t>(partial_.data(), partial_.size()), handler);
        if (!st) return st;
        break;
      }
    }
  }
  return {};
}

Status FrameReader::dispatch(std::span<const uint8_t> payload, FrameHandler& handler) {
  switch (static_cast<FrameType>(type_)) {
    case FrameType::method:
      return on_method_frame(payload, handler);
    case FrameType::header:
      return on_header_frame(payload, handler);
    case FrameType::heartbeat:
      handler.on_heartbeat();
      return {};
    case FrameType::body:
      break;
  }
  return {};
}

Status FrameReader::on_method_frame(std::span<const uint8_t> payload, FrameHandler& handler) {
  if (payload.size() < 4)
    return fail(
        ReplyCode::syntax_error,
        format("method frame of %zu bytes on channel %u is too short", payload.size(), channel_),
        channel_);
  auto class_id = static_cast<uint16_t>((payload[0] << 8) | payload[1]);
  auto method_id = static_cast<uint16_t>((payload[2] << 8) | payload[3]);
  if (class_id == 10 && channel_ != 0)
    return fail(ReplyCode::command_invalid,
                format("%s on channel %u (connection methods belong on channel 0)",
                       method_label(class_id, method_id).c_str(), channel_),
                channel_, class_id, method_id);
  if (class_id != 10 && channel_ == 0)
    return fail(ReplyCode::channel_error,
                format("%s on channel 0", method_label(class_id, method_id).c_str()), 0, class_id,
                method_id);
  if (channel_ > options_.channel_max)
    return fail(ReplyCode::channel_error,
                format("%s on channel %u above channel_max %u",
                       method_label(class_id, method_id).c_str(), channel_, options_.channel_max),
                channel_, class_id, method_id);
  Assembly* busy = find_assembly(channel_);
  if (busy && busy->phase != Assembly::Phase::idle)
    return fail(
        ReplyCode::unexpected_frame,
        format("%s on channel %u while a content was expected (%s)",
               method_label(class_id, method_id).c_str(), channel_,
               busy->phase == Assembly::Phase::want_header ? "content header" : "content body"),
        channel_, class_id, method_id);

  if (carries_content(class_id, method_id)) {
    Assembly& a = assembly(channel_);
    a.method_bytes.assign(payload.begin(), payload.end());
    DecodeResult r = decode_method(a.method_bytes, a.method);
    if (!r.ok()) return fail(r.reply_code(), r.describe(), channel_, class_id, method_id);
    a.phase = Assembly::Phase::want_header;
    return {};
  }
  Method m;
  DecodeResult r = decode_method(payload, m);
  if (!r.ok()) return fail(r.reply_code(), r.describe(), channel_, class_id, method_id);
  handler.on_method(channel_, m);
  return {};
}

Status FrameReader::on_header_frame(std::span<const uint8_t> payload, FrameHandler& handler) {
  Assembly* a = find_assembly(channel_);
  if (!a || a->phase != Assembly::Phase::want_header)
    return fail(
        ReplyCode::unexpected_frame,
        format("content header frame on channel %u without a content-bearing method", channel_),
        channel_);
  a->header_bytes.assign(payload.begin(), payload.end());
  HeaderResult r = decode_content_header(a->header_bytes, a->header);
  uint16_t cls = class_of(a->method);
  uint16_t mth = method_of(a->method);
  if (!r.ok()) return fail(ReplyCode::syntax_error, r.describe(), channel_, cls, mth);
  if (a->header.class_id != cls)
    return fail(ReplyCode::unexpected_frame,
                format("content header of class %u after %s on channel %u", a->header.class_id,
                       method_label(cls, mth).c_str(), channel_),
                channel_, cls, mth);
  a->have = 0;
  a->single = Bytes();
  a->dropping = a->header.body_size > options_.max_body_size;
  if (a->header.body_size == 0) {
    deliver(*a, handler);
  } else {
    a->phase = Assembly::Phase::want_body;
  }
  return {};
}

Status FrameReader::finish_body_frame(FrameHandler& handler) {
  Assembly& a = *find_assembly(channel_);
  if (a.have == a.header.body_size) deliver(a, handler);
  return {};
}

void FrameReader::deliver(Assembly& a, FrameHandler& handler) {
  a.phase = Assembly::Phase::idle;
  Bytes body;
  if (a.dropping) {
    a.gather = MutableBuffer();
  } else if (a.single.data() != nullptr || a.header.body_size == 0) {
    body = std::move(a.single);
  } else {
    body = std::move(a.gather).freeze(static_cast<size_t>(a.header.body_size));
  }
  a.single = Bytes();
  Content c{channel_, a.method, a.header.properties, body, a.header.body_size, a.dropping};
  a.dropping = false;
  handler.on_content(c);
}

// ---- FrameWriter -------------------------------------------------------------------

void FrameWriter::protocol_header(FrameSink& out) {
  out.copy(kProtocolHeader, sizeof kProtocolHeader);
}

void FrameWriter::heartbeat(FrameSink& out) {
  static constexpr uint8_t kHeartbeat[8] = {8, 0, 0, 0, 0, 0, 0, kFrameEnd};
  out.copy(kHeartbeat, sizeof kHeartbeat);
}

size_t FrameWriter::max_payload() const noexcept {
  return static_cast<size_t>(payload_limit(frame_max_));
}

namespace {

void put_frame_header(uint8_t* p, uint8_t type, uint16_t channel, uint32_t size) noexcept {
  p[0] = type;
  p[1] = static_cast<uint8_t>(channel >> 8);
  p[2] = static_cast<uint8_t>(channel);
  p[3] = static_cast<uint8_t>(size >> 24);
  p[4] = static_cast<uint8_t>(size >> 16);
  p[5] = static_cast<uint8_t>(size >> 8);
  p[6] = static_cast<uint8_t>(size);
}

AmqpError encode_error(const Method& m, uint16_t channel, const char* what) {
  return AmqpError(0, "cannot encode " + std::string(name_of(m)) + ": " + what,
                   AmqpError::Origin::local, AmqpError::Scope::channel, channel, class_of(m),
                   method_of(m));
}

}  // namespace

template <class Fill>
bool FrameWriter::frame(uint8_t type, uint16_t channel, Fill&& fill) {
  size_t at = scratch_.size();
  scratch_.resize(at + kFrameHeaderSize);
  if (!fill()) return false;
  size_t size = scratch_.size() - at - kFrameHeaderSize;
  if (size > max_payload()) return false;
  put_frame_header(scratch_.data() + at, type, channel, static_cast<uint32_t>(size));
  scratch_.push_back(kFrameEnd);
  return true;
}

Status FrameWriter::method(FrameSink& out, uint16_t channel, const Method& m) {
  scratch_.clear();
  bool fits = true;
  if (!frame(1, channel, [&] { return fits = encode_method(m, scratch_); }))
    return encode_error(
        m, channel,
        fits ? "the frame exceeds frame_max" : "a short string argument is longer than 255 bytes");
  out.copy(scratch_.data(), scratch_.size());
  return {};
}

Status FrameWriter::content(FrameSink& out, uint16_t channel, const Method& m,
                            const BasicProperties& props, const Bytes& body) {
  scratch_.clear();
  bool fits = true;
  if (!frame(1, channel, [&] { return fits = encode_method(m, scratch_); }))
    return encode_error(
        m, channel,
        fits ? "the frame exceeds frame_max" : "a short string argument is longer than 255 bytes");
  if (!frame(2, channel,
             [&] { return fits = encode_content_header(body.size(), props, scratch_); }))
    return encode_error(m, channel,
                        fits ? "the content header exceeds frame_max"
                             : "a short string property is longer than 255 bytes");
  size_t limit = max_payload();
  if (!body.empty() && limit == 0) return encode_error(m, channel, "frame_max leaves no room");
  if (body.size() <= copy_threshold_) {
    for (size_t off = 0; off < body.size(); off += limit) {
      size_t len = std::min(limit, body.size() - off);
      size_t at = scratch_.size();
      scratch_.resize(at + kFrameHeaderSize + len + 1);
      put_frame_header(scratch_.data() + at, 3, channel, static_cast<uint32_t>(len));
      std::memcpy(scratch_.data() + at + kFrameHeaderSize, body.data() + off, len);
      scratch_[at + kFrameHeaderSize + len] = kFrameEnd;
    }
    out.copy(scratch_.data(), scratch_.size());
    return {};
  }
  for (size_t off = 0; off < body.size(); off += limit) {
    size_t len = std::min(limit, body.size() - off);
    size_t at = scratch_.size();
    scratch_.resize(at + kFrameHeaderSize);
    put_frame_header(scratch_.data() + at, 3, channel, static_cast<uint32_t>(len));
    out.copy(scratch_.data(), scratch_.size());
    out.ref(body.slice(off, len));
    scratch_.clear();
    scratch_.push_back(kFrameEnd);
  }
  out.copy(scratch_.data(), scratch_.size());
  return {};
}

}  // namespace ember::amqp
