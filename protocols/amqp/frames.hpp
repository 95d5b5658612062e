// AMQP 0-9-1 framing: parsing frames out of a byte stream, assembling
// content (method + header + body frames), and encoding frames.
//
// Reading: FrameReader::feed() takes the bytes as they arrive, in chunks of
// any size, and hands complete methods and contents to a FrameHandler.
//   * A content body that arrives in one body frame lying inside one fed
//     chunk is passed on as a slice of that chunk: no copy.
//   * A body spread over several frames (or chunks) is gathered once into a
//     buffer of its declared size (from the BufferPool when one is given).
//     This copy is unavoidable for a contiguous view: frame headers sit
//     between the pieces.
//   * The payloads of a content's method and header frames (tens of bytes)
//     are copied into per-channel buffers that keep their capacity, so the
//     views in the method and properties stay valid until the body is
//     complete. Steady state allocates nothing.
// Any violation of the framing rules is a connection error with the reply
// code the spec asks for; after it, feed() ignores its input.
//
// Writing: FrameWriter appends frames to a FrameSink (an IoChain, or a
// client's pending output). A published body goes by reference, split into
// body frames of at most frame_max - 8 bytes; only bodies below
// copy_threshold are copied (an iovec per tiny body costs more than the copy).
//
// Thread: one reader and one writer per connection, used on its loop thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "ember/expected.hpp"
#include "ember/io_chain.hpp"
#include "protocols/amqp/methods.hpp"
#include "protocols/amqp/reply.hpp"
#include "protocols/amqp/wire.hpp"

namespace ember::amqp {

using Status = Expected<void, AmqpError>;

// ---- one frame -------------------------------------------------------------------

enum class ParseStatus : uint8_t { complete, need_more, error };

struct Frame {
  uint8_t type = 0;
  uint16_t channel = 0;
  std::span<const uint8_t> payload;  // a view into the parsed input
};

struct FrameParse {
  ParseStatus status = ParseStatus::need_more;
  size_t consumed = 0;  // bytes of the frame when complete
  size_t needed = 0;    // when need_more: total bytes this frame needs, if known (else 7)
  ReplyCode code = ReplyCode::reply_success;  // when error
  const char* reason = "";                    // when error (static text)
};

// Parses one whole frame at the start of `in`: its header, a payload of at
// most frame_max - 8 bytes (frame_max 0: no limit) and the frame-end octet.
// Checks the frame type and end octet (501 FRAME_ERROR); nothing about
// channels or content order (FrameReader does that).
FrameParse parse_frame(std::span<const uint8_t> in, uint32_t frame_max, Frame& out) noexcept;

// ---- reading a stream ------------------------------------------------------------

// A content delivered by the broker: basic.deliver, basic.return or
// basic.get-ok with its properties and body.
struct Content {
  uint16_t channel = 0;
  const Method& method;
  const BasicProperties& properties;
  // The whole body; empty when dropped.
  const Bytes& body;
  uint64_t body_size = 0;  // as declared by the header
  // The declared size exceeded max_body_size: the body frames were skipped.
  bool dropped = false;
};

class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  // A method without content. Views are valid during the call only.
  virtual void on_method(uint16_t channel, const Method& m) = 0;
  // A complete content. Views are valid during the call; `body` may be kept
  // (copying the Bytes shares the buffer).
  virtual void on_content(const Content& c) = 0;
  virtual void on_heartbeat() {}
};

struct FrameReaderOptions {
  // Largest frame accepted, counting its 8 bytes of header and end (0: no
  // limit). Before connection.tune a client should accept at least
  // kFrameMinSize; after it, the negotiated value.
  uint32_t frame_max = kDefaultFrameMax;
  // Frames on channels above this are a 504 CHANNEL_ERROR.
  uint16_t channel_max = 2047;
  // Contents declaring more are skipped and delivered with dropped = true.
  uint64_t max_body_size = 128u << 20;
  // Where gathered bodies come from (null: the heap).
  BufferPool* pool = nullptr;
};

class FrameReader {
 public:
  explicit FrameReader(const FrameReaderOptions& options = {});
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;
  ~FrameReader();

  // Parses every complete frame in `chunk`, calling `handler` for each
  // method, content and heartbeat, and keeps a partial frame for the next
  // call. On a framing error returns it (a connection error: send
  // connection.close with its code) and ignores all later input.
  // The handler may call set_frame_max()/set_channel_max() (they apply to
  // the next frame), but must not destroy the reader.
  Status feed(const Bytes& chunk, FrameHandler& handler);

  void set_frame_max(uint32_t frame_max) noexcept { options_.frame_max = frame_max; }
  void set_channel_max(uint16_t channel_max) noexcept { options_.channel_max = channel_max; }
  uint32_t frame_max() const noexcept { return options_.frame_max; }
  bool failed() const noexcept { return failed_; }
  // No partial frame pending and no content being assembled.
  bool idle() const noexcept;
  // Forgets a content half-assembled on `channel` (the channel was closed).
  void reset_channel(uint16_t channel) noexcept;

 private:
  struct Assembly;
  enum class State : uint8_t { header, payload, body_payload, frame_end };

  Status fail(ReplyCode code, std::string text, uint16_t channel = 0, uint16_t class_id = 0,
              uint16_t method_id = 0);
  Status start_frame(const Bytes& chunk, size_t offset, size_t available, FrameHandler& handler,
                     size_t* used);
  Status dispatch(std::span<const uint8_t> payload, FrameHandler& handler);
  Status on_method_frame(std::span<const uint8_t> payload, FrameHandler& handler);
  Status on_header_frame(std::span<const uint8_t> payload, FrameHandler& handler);
  Status finish_body_frame(FrameHandler& handler);
  void deliver(Assembly& a, FrameHandler& handler);
  Assembly& assembly(uint16_t channel);
  Assembly* find_assembly(uint16_t channel) const noexcept;

  FrameReaderOptions options_;
  bool failed_ = false;
  bool saw_frame_ = false;
  State state_ = State::header;
  uint8_t header_[kFrameHeaderSize];
  size_t header_have_ = 0;
  uint8_t type_ = 0;
  uint16_t channel_ = 0;
  uint32_t size_ = 0;
  size_t left_ = 0;               // payload bytes still to come
  std::vector<uint8_t> partial_;  // a method/header frame's payload split across chunks
  std::vector<std::unique_ptr<Assembly>> channels_;
};

// ---- writing ---------------------------------------------------------------------

// Where encoded frames go. copy() takes small pieces, ref() a payload kept
// by reference.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void copy(const void* data, size_t n) = 0;
  virtual void ref(const Bytes& payload) = 0;
};

class IoChainSink final : public FrameSink {
 public:
  explicit IoChainSink(IoChain& out) noexcept : out_(out) {}
  void copy(const void* data, size_t n) override { out_.append_copy(data, n); }
  void ref(const Bytes& payload) override { out_.append(payload); }

 private:
  IoChain& out_;
};

class FrameWriter {
 public:
  static constexpr size_t kDefaultCopyThreshold = 512;

  explicit FrameWriter(uint32_t frame_max = kDefaultFrameMax) noexcept : frame_max_(frame_max) {}

  // The negotiated frame_max (0: no limit). Body frames carry at most
  // frame_max - 8 bytes.
  void set_frame_max(uint32_t frame_max) noexcept { frame_max_ = frame_max; }
  uint32_t frame_max() const noexcept { return frame_max_; }
  // Bodies of at most this many bytes are copied; larger ones referenced.
  void set_copy_threshold(size_t n) noexcept { copy_threshold_ = n; }

  static void protocol_header(FrameSink& out);
  static void heartbeat(FrameSink& out);

  // One method frame. Errors (code 0, nothing appended): an argument that
  // does not fit its type (a short string over 255 bytes), or a frame above
  // frame_max.
  Status method(FrameSink& out, uint16_t channel, const Method& m);
  // A content-bearing method (normally basic.publish), its header and body
  // frames, all appended together. Same errors; nothing appended on error.
  Status content(FrameSink& out, uint16_t channel, const Method& m, const BasicProperties& props,
                 const Bytes& body);
  Status publish(FrameSink& out, uint16_t channel, const BasicPublish& m,
                 const BasicProperties& props, const Bytes& body) {
    return content(out, channel, Method(m), props, body);
  }

  // The same, straight into an IoChain.
  Status method(IoChain& out, uint16_t channel, const Method& m) {
    IoChainSink s(out);
    return method(s, channel, m);
  }
  Status content(IoChain& out, uint16_t channel, const Method& m, const BasicProperties& props,
                 const Bytes& body) {
    IoChainSink s(out);
    return content(s, channel, m, props, body);
  }
  Status publish(IoChain& out, uint16_t channel, const BasicPublish& m,
                 const BasicProperties& props, const Bytes& body) {
    IoChainSink s(out);
    return publish(s, channel, m, props, body);
  }

 private:
  // Appends a frame around the payload written by `fill` to scratch_.
  template <class Fill>
  bool frame(uint8_t type, uint16_t channel, Fill&& fill);
  size_t max_payload() const noexcept;

  uint32_t frame_max_;
  size_t copy_threshold_ = kDefaultCopyThreshold;
  std::vector<uint8_t> scratch_;
};

}  // namespace ember::amqp
