#include "protocols/grpc/message_reader.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace ember::grpc {

void write_message_prefix(uint8_t out[5], uint32_t length) noexcept {
  out[0] = 0;
  out[1] = static_cast<uint8_t>(length >> 24);
  out[2] = static_cast<uint8_t>(length >> 16);
  out[3] = static_cast<uint8_t>(length >> 8);
  out[4] = static_cast<uint8_t>(length);
}

void MessageReader::reset() noexcept {
  prefix_have_ = 0;
  in_body_ = false;
  failed_ = false;
  body_len_ = body_have_ = 0;
  gather_ = MutableBuffer();
}

Status MessageReader::fail(StatusCode code, std::string message) {
  failed_ = true;
  gather_ = MutableBuffer();
  return Status{code, std::move(message)};
}

Status MessageReader::feed(const Bytes& chunk, Sink sink, void* context) {
  if (failed_) return {};
  const uint8_t* p = chunk.data();
  size_t n = chunk.size();
  while (n > 0) {
    if (!in_body_) {
      size_t take = std::min(5 - prefix_have_, n);
      std::memcpy(prefix_ + prefix_have_, p, take);
      prefix_have_ += take;
      p += take;
      n -= take;
      if (prefix_have_ < 5) break;
      prefix_have_ = 0;
      uint8_t flags = prefix_[0];
      size_t len = (size_t{prefix_[1]} << 24) | (size_t{prefix_[2]} << 16) |
                   (size_t{prefix_[3]} << 8) | size_t{prefix_[4]};
      if (flags == 1)
        return fail(StatusCode::unimplemented,
                    "compressed gRPC messages are not supported (identity encoding only); "
                    "turn off compression in the client");
      if (flags != 0) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "invalid gRPC message flags byte 0x%02x (expected 0 or 1)",
                      flags);
        return fail(StatusCode::internal, buf);
      }
      if (len > max_)
        return fail(StatusCode::resource_exhausted, "received message of " + std::to_string(len) +
                                                        " bytes exceeds the server's limit of " +
                                                        std::to_string(max_) + " bytes");
      if (len <= n) {
        // Whole message inside this chunk: hand out a slice, no copy.
        sink(context, chunk.slice(static_cast<size_t>(p - chunk.data()), len));
        p += len;
        n -= len;
        continue;
      }
      gather_ = pool_ ? pool_->take(len) : MutableBuffer::allocate(len);
      body_len_ = len;
      body_have_ = 0;
      in_body_ = true;
    }
    size_t take = std::min(body_len_ - body_have_, n);
    uint8_t* dst = gather_.data() + body_have_;
    // Bytes read in place are already where they belong. Others may overlap
    // the destination (a read landed there, but framing shifted it).
    if (dst != p) std::memmove(dst, p, take);
    body_have_ += take;
    p += take;
    n -= take;
    if (body_have_ == body_len_) {
      in_body_ = false;
      sink(context, std::move(gather_).freeze(body_len_));
    }
  }
  return {};
}

}  // namespace ember::grpc
