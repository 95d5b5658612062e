// gRPC server session (sans-I/O): unary calls over an HTTP/2 server session.
//
// feed() bytes in, produce() bytes out; the ServerHandler learns of calls.
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

// One unary call, owned by the session. Valid from on_call() until
// on_call_end() returns.
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
  bool responded() const noexcept { return state_ == State::responded; }

  void* user = nullptr;  // for the ServerHandler

 private:
  friend class ServerSession;
  enum class State : uint8_t { headers, receiving, rejected, dispatched, responded };

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
  // Trailers-only response with a non-OK status.
  void fail(ServerCall& call, StatusCode code, std::string_view message);
  // Graceful: GOAWAY; calls in flight finish.
  void shutdown() { h2_.submit_goaway(); }

  uint32_t peer_max_frame_size() const noexcept { return h2_.peer_max_frame_size(); }
  // Where the next read should go when it is the middle of a large request
  // message (see ConnectionHandler::read_target).
  bool read_target(ReadTarget& target) noexcept;

 private:
  void on_headers_begin(int32_t id) override;
  void on_header(int32_t id, std::string_view name, std::string_view value) override;
  void on_headers_end(int32_t id) override;
  void on_data(int32_t id, const Bytes& chunk) override;
  void on_remote_end(int32_t id) override;
  void on_stream_close(int32_t id, uint32_t error_code) override;
  void on_body_end(int32_t id) override;

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
