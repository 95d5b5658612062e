// HTTP/2 session: sans-I/O glue over nghttp2, server or client role.
//
// Bytes go in with feed(); events come out through SessionHandler; frames to
// send are appended to an IoChain by produce(). No sockets, no loop.
//
// Zero copy both ways: DATA payloads reach on_data() as slices of the Bytes
// given to feed(), and bodies are sent with NGHTTP2_DATA_FLAG_NO_COPY straight
// from the Body's Bytes into the IoChain. nghttp2's own memory comes from a
// SlabAllocator, so a steady stream of requests reaches malloc zero times.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/io_chain.hpp"
#include "ember/slab.hpp"

namespace ember::http2 {

enum class Role { server, client };

struct Settings {
  uint32_t max_concurrent_streams = 256;
  // Receive windows, sized for MiB payloads; the connection window is opened
  // with a WINDOW_UPDATE right after the preface.
  uint32_t initial_window_size = 16u << 20;
  uint32_t connection_window_size = 64u << 20;
  // Largest frame payload the peer may send us (16 KiB .. 16 MiB - 1).
  uint32_t max_frame_size = 1u << 20;
  // Limits on each received header block (request, response or trailers):
  // a list over max_header_list_size (sum of name + value + 32 per field,
  // RFC 9113 §6.5.2; also advertised in SETTINGS) or more than
  // max_header_count fields stops delivery of that block and the handler
  // hears on_header_limit() instead of on_headers_end(). 0: no limit.
  uint32_t max_header_list_size = 64u << 10;
  uint32_t max_header_count = 0;
  // CONTINUATION flood (CVE-2024-28182): a header block spread over more
  // than 1 + max_continuations frames, or whose encoded size passes
  // 4 * max_header_list_size + 16 KiB, ends the connection with GOAWAY
  // ENHANCE_YOUR_CALM; feed() returns an error. Checked on the raw frame
  // headers, so blocks nghttp2 ignores (refused or reset streams) count too.
  uint32_t max_continuations = 8;
  // Rapid reset (CVE-2023-44487), server role: once the peer has reset more
  // than this many streams before their answer was complete, and more than
  // it let complete, the connection ends with GOAWAY ENHANCE_YOUR_CALM and
  // feed() returns an error. Counting only, no clock. 0: off.
  uint32_t max_unanswered_resets = 100;
  // produce() stops adding DATA after this many bytes; the rest goes next flush.
  size_t max_output_per_flush = 2u << 20;
  // nghttp2's checks of HTTP semantics on received headers (RFC 9113 §8).
  // A layer that validates the headers itself may turn them off (they are
  // about a tenth of a small request's instructions): the edge server runs
  // every request through RequestCheck, the gRPC server checks what it uses.
  bool http_messaging = true;
  // Server role: send each response to the end before the next one's DATA
  // (RFC 9218's non-incremental order, advertised with
  // SETTINGS_NO_RFC7540_PRIORITIES) instead of interleaving all streams'
  // frames. For unary RPCs this finishes calls sooner on average and spares
  // the client reassembling many messages at once: a grpc++ client spent
  // 8x less CPU per 1 MiB call at 16 in flight.
  bool complete_streams_in_order = false;
};

// A response/request body: up to 64 bytes of inline head followed by a
// payload shared by reference. The session reads it without copying the payload.
class Body {
 public:
  static constexpr size_t kMaxHead = 64;

  Body() = default;
  Body(std::span<const uint8_t> head, Bytes payload) { reset(head, std::move(payload)); }
  void reset(std::span<const uint8_t> head, Bytes payload);
  void clear() { reset({}, Bytes{}); }

  size_t size() const noexcept { return head_len_ + payload_.size(); }
  size_t remaining() const noexcept { return size() - offset_; }
  // Appends the next `n` bytes to `out` (head copied, payload referenced).
  void emit(IoChain& out, size_t n);
  // When the body is done, send trailers (the handler's on_body_end) instead
  // of ending the stream with the last DATA frame.
  bool trailers = false;
  // Server: when the body is done and the peer is still sending its request,
  // reset the stream with NO_ERROR right after the last DATA frame: a
  // complete early answer (413, 431) that tells the client to stop (RFC 9113
  // §8.1). reset() clears both flags.
  bool reset_after = false;
  // More may follow (a stream of messages): once drained, the session asks
  // the handler's on_body_drained(), which may reset() the body with the next
  // part (setting `open` again when still more may come); a body left empty
  // and open defers the stream's DATA until Session::resume_data(). Clearing
  // `open` ends the body as usual (trailers or END_STREAM). reset() keeps it.
  bool open = false;

 private:
  uint8_t head_[kMaxHead];
  size_t head_len_ = 0;
  Bytes payload_;
  size_t offset_ = 0;
};

struct Header {
  std::string_view name;
  std::string_view value;
  // Set when the strings outlive the frame's sending (static tables): nghttp2
  // then references them instead of copying.
  bool static_storage = false;
  // Only the name does (a literal name with a value built per answer).
  bool static_name = false;
};

// "100".."599" in static storage, for a :status field; "500" outside that range.
std::string_view status_digits(int status) noexcept;

class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  // A header block starts on `stream_id` (request, response or trailers).
  virtual void on_headers_begin(int32_t stream_id) = 0;
  // Views are valid only during the call.
  virtual void on_header(int32_t stream_id, std::string_view name, std::string_view value) = 0;
  virtual void on_headers_end(int32_t stream_id) = 0;
  // `chunk` shares the buffer given to feed().
  virtual void on_data(int32_t stream_id, const Bytes& chunk) = 0;
  // The peer ended its side of the stream (END_STREAM on HEADERS or DATA).
  virtual void on_remote_end(int32_t stream_id) = 0;
  // The stream is gone; `error_code` is an HTTP/2 error code (0 = NO_ERROR).
  virtual void on_stream_close(int32_t stream_id, uint32_t error_code) = 0;
  // A Body with trailers=true was fully handed out: submit trailers now.
  virtual void on_body_end(int32_t stream_id) = 0;
  // A Body with open=true was fully handed out: refill it (see Body::open).
  virtual void on_body_drained(int32_t /*stream_id*/) {}
  // A received header block passed Settings::max_header_count or
  // max_header_list_size. Fields past the limit were not delivered and
  // on_headers_end() is not called for this block; on_remote_end() still
  // follows when the block ended the stream. Return true when the handler
  // deals with the stream itself (a server answers 431); false makes the
  // session reset it (RST_STREAM ENHANCE_YOUR_CALM). The connection goes on.
  virtual bool on_header_limit(int32_t /*stream_id*/) { return false; }
  // Client role: a RST_STREAM went out (ours, or nghttp2's own when the
  // peer's frames broke HTTP/2 or HTTP semantics on that stream).
  virtual void on_reset_sent(int32_t /*stream_id*/, uint32_t /*error_code*/) {}
};

class Session {
 public:
  Session(Role role, SessionHandler& handler, const Settings& settings, SlabAllocator& slab);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Consumes all of `input`. An error means the connection is broken: send
  // what produce() still yields (a GOAWAY) and close. The message says why
  // (protocol error, CONTINUATION flood, rapid reset, or nghttp2's own bound
  // of 1000 unsent SETTINGS/PING ACKs); calmed() tells the floods apart
  // (GOAWAY ENHANCE_YOUR_CALM), which are the peer's abuse rather than a
  // broken peer. After a flood every later feed() fails too.
  Result<void> feed(const Bytes& input);
  // Appends pending frames. Returns an error when the session failed.
  Result<void> produce(IoChain& out);

  // h2c (RFC 7540 §3.2): the HTTP/1.1 request that asked for
  // the upgrade becomes stream 1. `settings_payload` is the base64url-decoded
  // HTTP2-Settings value; `head_request` when that request was a HEAD.
  // Server: stream 1 opens half-closed (remote); answer it with
  // submit_response(1, ...). Client: stream 1 opens half-closed (local) with
  // `stream_data`. Call once, before the first feed(). Errors: a malformed
  // payload, or stream 1 already used.
  Result<void> upgrade(std::string_view settings_payload, bool head_request,
                       void* stream_data = nullptr);

  bool wants_write() const noexcept;
  // False once both sides are done (GOAWAY exchanged, no streams).
  bool alive() const noexcept;

  // Server: respond on a request stream; without `body` the HEADERS end the
  // stream. `body` must stay alive and unchanged until the stream closes.
  // Returns an nghttp2 error code.
  int submit_response(int32_t stream_id, std::span<const Header> headers, Body* body);
  int submit_trailers(int32_t stream_id, std::span<const Header> trailers);
  // Client: open a stream. Returns the stream id or a negative nghttp2 error.
  int32_t submit_request(std::span<const Header> headers, Body* body, void* stream_data = nullptr);
  int submit_rst_stream(int32_t stream_id, uint32_t error_code);
  // An open Body that was left empty got more (or was closed): send again.
  // Harmless when the stream's DATA is not deferred.
  void resume_data(int32_t stream_id) noexcept;
  // Graceful: tells the peer no new streams will be taken; open ones finish.
  void submit_goaway(uint32_t error_code = NGHTTP2_NO_ERROR);
  // Immediate: GOAWAY, then the session stops.
  void terminate(uint32_t error_code);

  // True while the stream exists and the peer has not ended its side.
  bool remote_open(int32_t stream_id) const noexcept;
  // True while the stream exists and we have not ended our side.
  bool local_open(int32_t stream_id) const noexcept;
  // When the next input bytes are the rest of an unpadded DATA frame's
  // payload: its stream and how many payload bytes remain. 0 otherwise.
  size_t pending_data(int32_t* stream_id) const noexcept {
    *stream_id = data_stream_;
    return data_left_;
  }
  // During SessionHandler::on_headers_end: whether that block ends the
  // peer's side of the stream (on_remote_end follows). Trailers must.
  bool block_ends_stream() const noexcept { return block_ends_stream_; }
  void* stream_data(int32_t stream_id) const noexcept;
  void set_stream_data(int32_t stream_id, void* data) noexcept;
  uint32_t peer_max_frame_size() const noexcept;
  // The peer sent GOAWAY: it takes no new streams (client: open another
  // connection for new requests).
  bool peer_goaway() const noexcept { return peer_goaway_; }
  // True once the session ended the connection with ENHANCE_YOUR_CALM.
  bool calmed() const noexcept { return !calm_reason_.empty(); }
  // Server: streams the peer reset before their answer was complete, and
  // streams that closed cleanly (see Settings::max_unanswered_resets).
  uint64_t unanswered_resets() const noexcept { return unanswered_resets_; }
  uint64_t completed_streams() const noexcept { return completed_; }

 private:
  // Reads `body` with NO_COPY (see on_read_body / on_send_data).
  static nghttp2_data_provider provider(Body* body) noexcept;
  static ssize_t on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* self);
  static int on_send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                          size_t len, nghttp2_data_source* src, void* self);
  static ssize_t on_read_length(nghttp2_session*, uint8_t, int32_t, int32_t session_window,
                                int32_t stream_window, uint32_t max_frame, void*);
  static ssize_t on_read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t len,
                              uint32_t* flags, nghttp2_data_source* src, void* self);
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                       void* self);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_frame_sent(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                           size_t len, void* self);
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* self);

  // Walks the raw frame headers of `input` (CONTINUATION flood defence).
  // Returns how many leading bytes may go to nghttp2: all of them, or those
  // before the frame that broke the bound (then `flood` says why).
  size_t scan_frames(const Bytes& input, std::string* flood);
  // Ends the connection with GOAWAY ENHANCE_YOUR_CALM; feed() reports `why`.
  void calm(std::string why);
  template <class Fn>
  int with_nv(std::span<const Header> headers, Fn&& fn);

  nghttp2_session* session_ = nullptr;
  nghttp2_mem mem_;
  SlabAllocator& slab_;
  SessionHandler& handler_;
  Settings settings_;
  Role role_;
  const Bytes* input_ = nullptr;  // during feed()
  IoChain* out_ = nullptr;        // during produce()
  size_t produced_ = 0;           // bytes appended in this produce()
  int32_t data_stream_ = 0;       // DATA frame being received (see pending_data)
  size_t data_left_ = 0;

  // The header block being received (blocks never interleave).
  int32_t block_stream_ = 0;
  bool block_ends_stream_ = false;
  uint32_t block_fields_ = 0;
  uint64_t block_bytes_ = 0;
  bool block_over_ = false;

  // Raw frame walk (scan_frames).
  size_t preface_left_ = 0;
  uint8_t frame_hd_[9];
  size_t frame_hd_have_ = 0;
  size_t frame_payload_left_ = 0;
  uint32_t continuations_ = 0;
  uint64_t encoded_block_bytes_ = 0;

  bool peer_goaway_ = false;
  uint64_t unanswered_resets_ = 0;
  uint64_t completed_ = 0;
  std::string calm_reason_;
};

}  // namespace ember::http2
