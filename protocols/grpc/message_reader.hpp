// gRPC length-prefixed message deframer (sans-I/O).
//
// Feed the DATA chunks of one stream in order; each complete message goes to
// the sink. A message that lies whole inside one chunk is passed as a slice of
// that chunk (no copy). A message spread over several chunks (frames, reads)
// is gathered once into a buffer from the pool, sized from its prefix.
//
// Errors follow the gRPC spec's mapping: compressed flag -> UNIMPLEMENTED
// (identity only), unknown flag -> INTERNAL, over the size limit ->
// RESOURCE_EXHAUSTED. After an error, further input is ignored.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "protocols/grpc/status.hpp"

namespace ember::grpc {

class MessageReader {
 public:
  // Called once per complete message.
  using Sink = void (*)(void* context, Bytes message);

  // `pool` may be null (gathering then uses the heap).
  MessageReader(size_t max_message_size, BufferPool* pool) noexcept
      : max_(max_message_size), pool_(pool) {}

  Status feed(const Bytes& chunk, Sink sink, void* context);

  // At a message boundary (no partial prefix or body pending).
  bool at_boundary() const noexcept { return !failed_ && prefix_have_ == 0 && !in_body_; }
  bool failed() const noexcept { return failed_; }
  // Bytes of the current partial message received / expected (for errors).
  size_t partial_received() const noexcept { return in_body_ ? body_have_ + 5 : prefix_have_; }
  size_t partial_expected() const noexcept { return in_body_ ? body_len_ + 5 : 5; }
  void reset() noexcept;
  // While a message is being gathered: where its next bytes go and how many
  // are still missing. A reader may put them there directly (a socket read);
  // feeding a chunk that already sits at that address copies nothing.
  bool gather_tail(BufferStorage** storage, uint8_t** data, size_t* missing) noexcept {
    if (!in_body_ || failed_) return false;
    *storage = gather_.storage();
    *data = gather_.data() + body_have_;
    *missing = body_len_ - body_have_;
    return true;
  }

 private:
  Status fail(StatusCode code, std::string message);

  size_t max_;
  BufferPool* pool_;
  uint8_t prefix_[5];
  size_t prefix_have_ = 0;
  bool in_body_ = false;
  bool failed_ = false;
  size_t body_len_ = 0;
  size_t body_have_ = 0;
  MutableBuffer gather_;
};

// Reading in place pays one syscall for one payload piece; below this size a
// pool-buffer read that also takes the following frames is cheaper.
constexpr size_t kMinDirectRead = 16 * 1024;

// Writes the 5-byte prefix for an uncompressed message of `length` bytes.
void write_message_prefix(uint8_t out[5], uint32_t length) noexcept;

}  // namespace ember::grpc
