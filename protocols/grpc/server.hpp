// gRPC server session (sans-I/O): unary and server-streaming calls over an
// HTTP/2 server session.
//
// feed() bytes in, produce() bytes out; the ServerHandler learns of calls.
// Both kinds take exactly one request message; a unary call is answered with
// respond() (or fail()), a server-streaming one with write() per message and
// then finish() with the status.
// Every per-call error becomes a trailers-only response with the gRPC status
// the spec names, and the connection carries on:
//   :method not POST            -> HTTP 405, INTERNAL
//   content-type not grpc       -> HTTP 415, INTERNAL
//   te missing / not "trailers" -> INTERNAL
//   malformed grpc-timeout      -> INTERNAL
//   header list over the limit  -> RESOURCE_EXHAUSTED
//   unknown path                -> UNIMPLEMENTED
//   compressed message          -> UNIMPLEMENTED (identity only)
//   message over the limit      -> RESOURCE_EXHAUSTED
//   zero or several messages, stream ends mid-message -> INTERNAL
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/io_chain.hpp"
#include "ember/slab.hpp"
#include "protocols/grpc/message_reader.hpp"
#include "protocols/grpc/status.hpp"
#include "protocols/http2/session.hpp"

namespace ember::grpc {

struct ServerOptions {
  // http_messaging off: the session checks :method, :path, content-type, te
  // and grpc-timeout itself, and ignores every other header.
  http2::Settings http2 = {.http_messaging = false};
  size_t max_receive_message_size = 64u << 20;
  // Per request: sum over fields of name + value + 32 (RFC 9113 §6.5.2).
  size_t max_header_list_size = 64u << 10;
};

class ServerSession;

// One call, owned by the session. Valid from on_call() until on_call_end()
// returns.
class ServerCall {
 public:
  int32_t stream_id() const noexcept { return stream_id_; }
  int method() const noexcept { return method_; }
  std::string_view path() const noexcept { return {path_, path_len_}; }
  // The request message (a slice of a read buffer or a gathered buffer).
  const Bytes& request() const noexcept { return request_; }
  // Absolute deadline from grpc-timeout, counted from the request headers.
  bool has_deadline() const noexcept { return has_deadline_; }
  std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }
  // The final status is queued (respond(), fail() or finish()).
  bool responded() const noexcept { return state_ == State::responded; }
  // Streaming: messages given to write() that HTTP/2 has not taken yet (the
  // peer's flow control holds them). A producer may wait for this to fall.
  size_t queued() const noexcept { return queue_.size() - queue_head_; }

  void* user = nullptr;  // for the ServerHandler

 private:
  friend class ServerSession;
  // streaming: write() sent the headers, the final status is not queued yet.
  enum class State : uint8_t { headers, receiving, rejected, dispatched, streaming, responded };

  ServerCall(int32_t id, size_t max_message, BufferPool* pool) noexcept
      : stream_id_(id), reader_(max_message, pool) {}

  int32_t stream_id_;
  ServerCall* prev_ = nullptr;  // the session's list of live calls
  ServerCall* next_ = nullptr;
  int method_ = -1;
  State state_ = State::headers;
  bool dispatched_ = false;
  bool remote_ended_ = false;
  bool headers_done_ = false;
  bool post_ = false, grpc_type_ = false, te_trailers_ = false, timeout_bad_ = false;
  bool too_large_ = false;
  bool has_deadline_ = false;
  uint8_t messages_ = 0;
  size_t header_bytes_ = 0;
  uint64_t timeout_ns_ = 0;
  std::chrono::steady_clock::time_point deadline_{};
  char path_[128];
  size_t path_len_ = 0;
  char method_name_[16];
  size_t method_name_len_ = 0;
  MessageReader reader_;
  Bytes request_;
  http2::Body body_;

  // Streaming responses: the messages behind the one in body_, and the final
  // status once finish() is called (sent as trailers after the last message).
  struct Queued {
    uint8_t head[http2::Body::kMaxHead];
    uint8_t head_len;
    Bytes body;
  };
  std::vector<Queued> queue_;
  size_t queue_head_ = 0;
  bool streaming_ = false;
  StatusCode final_code_ = StatusCode::ok;
  std::string final_message_;
};

class ServerHandler {
 public:
  virtual ~ServerHandler() = default;
  // At the request headers: a method id >= 0, or < 0 for UNIMPLEMENTED.
  virtual int resolve_method(std::string_view path) = 0;
  // The request is complete. Answer now or later with respond()/fail().
  virtual void on_call(ServerCall& call) = 0;
  // The call is over. `responded`: an answer (respond() or fail(), e.g. a
  // deadline) went out and the stream closed cleanly; false: the client reset
  // the stream or the connection ended first. The call is freed on return.
  virtual void on_call_end(ServerCall& call, bool responded) = 0;
};

class ServerSession final : private http2::SessionHandler {
 public:
  ServerSession(ServerHandler& handler, const ServerOptions& options, SlabAllocator& slab,
                BufferPool* pool);
  ~ServerSession();

  Result<void> feed(const Bytes& input) { return h2_.feed(input); }
  Result<void> produce(IoChain& out);
  bool wants_write() const noexcept { return h2_.wants_write(); }
  bool alive() const noexcept { return h2_.alive(); }
  bool idle() const noexcept { return calls_ == 0; }
  size_t calls() const noexcept { return calls_; }

  // Status OK with one response message: `head` (at most 59 bytes) followed by
  // `body`, sent without copying `body`.
  void respond(ServerCall& call, std::span<const uint8_t> head, Bytes body);
  // Trailers-only response with a non-OK status; on a streaming call that
  // has written, the same as finish(code, message).
  void fail(ServerCall& call, StatusCode code, std::string_view message);
  // Server streaming: queues one response message, `head` (at most 59 bytes)
  // then `body` (by reference). The first write() sends the response
  // headers; messages leave in order as the peer's flow control allows.
  // Ignored once the call has its final status or is gone.
  void write(ServerCall& call, std::span<const uint8_t> head, Bytes body);
  // Ends a call: trailers with `code` (and `message`) after every message
  // written. Without a write() first: OK is a response with no message,
  // another code a trailers-only response as fail() sends.
  void finish(ServerCall& call, StatusCode code = StatusCode::ok, std::string_view message = {});
  // Graceful: GOAWAY; calls in flight finish.
  void shutdown() { h2_.submit_goaway(); }
  // Ends every call now, as when the connection goes: each dispatched call
  // gets on_call_end(call, false), then all are freed. For a connection that
  // has closed: the session must not produce() afterwards (nghttp2 may still
  // hold the calls' bodies), only be destroyed.
  void end_calls();
  // The same without calling the handler: for a handler being destroyed.
  void abandon_calls() noexcept;

  uint32_t peer_max_frame_size() const noexcept { return h2_.peer_max_frame_size(); }
  // Where the next read should go when it is the middle of a large request
  // message (see ConnectionHandler::read_target).
  bool read_target(ReadTarget& target) noexcept;

 private:
  void on_headers_begin(int32_t id) override;
  void on_header(int32_t id, std::string_view name, std::string_view value) override;
  void on_headers_end(int32_t id) override;
  bool on_header_limit(int32_t id) override;
  void on_data(int32_t id, const Bytes& chunk) override;
  void on_remote_end(int32_t id) override;
  void on_stream_close(int32_t id, uint32_t error_code) override;
  void on_body_end(int32_t id) override;
  void on_body_drained(int32_t id) override;
  // Loads body_ with a framed message; false (and a failed call) when it
  // cannot be framed.
  bool frame(ServerCall& call, std::span<const uint8_t> head, Bytes body);

  ServerCall* call_of(int32_t id) const noexcept;
  void reject(ServerCall& call, int http_status, StatusCode code, std::string_view message);
  static void on_message(void* ctx, Bytes message);
  void destroy(ServerCall* call) noexcept;

  ServerHandler& handler_;
  ServerOptions options_;
  SlabAllocator& slab_;
  BufferPool* pool_;
  ServerCall* live_ = nullptr;
  // Rejected streams the client is still sending on: RST_STREAM(NO_ERROR)
  // once their trailers-only answer is out (see produce()).
  std::vector<int32_t> stop_after_answer_;
  size_t calls_ = 0;
  http2::Session h2_;
};

}  // namespace ember::grpc
