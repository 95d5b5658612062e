#include "protocols/grpc/server.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "ember/log.hpp"

namespace ember::grpc {
namespace {

using http2::Header;

constexpr std::string_view kStatusText[] = {"0", "1",  "2",  "3",  "4",  "5",  "6",  "7", "8",
                                            "9", "10", "11", "12", "13", "14", "15", "16"};

std::string_view status_text(StatusCode c) {
  return kStatusText[static_cast<int>(c)];
}

std::string_view http_status_text(int s) {
  switch (s) {
    case 200:
      return "200";
    case 405:
      return "405";
    case 415:
      return "415";
    default:
      return "400";
  }
}

bool is_grpc_content_type(std::string_view v) {
  // application/grpc, application/grpc+proto, application/grpc;charset=...
  if (!v.starts_with("application/grpc")) return false;
  return v.size() == 16 || v[16] == '+' || v[16] == ';';
}

}  // namespace

ServerSession::ServerSession(ServerHandler& handler, const ServerOptions& options,
                             SlabAllocator& slab, BufferPool* pool)
    : handler_(handler),
      options_(options),
      slab_(slab),
      pool_(pool),
      h2_(http2::Role::server, *this, options.http2, slab) {}

ServerSession::~ServerSession() {
  // nghttp2_session_del() closes streams without callbacks: end the calls here.
  end_calls();
}

void ServerSession::end_calls() {
  while (ServerCall* call = live_) {
    h2_.set_stream_data(call->stream_id_, nullptr);
    if (call->dispatched_) {
      // Answers the handler gives from the callback are ignored.
      call->state_ = ServerCall::State::rejected;
      handler_.on_call_end(*call, false);
    }
    destroy(call);
  }
}

void ServerSession::abandon_calls() noexcept {
  while (ServerCall* call = live_) {
    h2_.set_stream_data(call->stream_id_, nullptr);
    destroy(call);
  }
}

void ServerSession::destroy(ServerCall* call) noexcept {
  if (call->prev_)
    call->prev_->next_ = call->next_;
  else
    live_ = call->next_;
  if (call->next_) call->next_->prev_ = call->prev_;
  call->~ServerCall();
  slab_.deallocate(call);
  --calls_;
}

ServerCall* ServerSession::call_of(int32_t id) const noexcept {
  return static_cast<ServerCall*>(h2_.stream_data(id));
}

void ServerSession::on_headers_begin(int32_t id) {
  if (call_of(id)) return;  // trailers on a request we already know
  void* mem = slab_.allocate(sizeof(ServerCall));
  if (!mem) {
    h2_.submit_rst_stream(id, NGHTTP2_REFUSED_STREAM);
    return;
  }
  auto* call = new (mem) ServerCall(id, options_.max_receive_message_size, pool_);
  h2_.set_stream_data(id, call);
  call->next_ = live_;
  if (live_) live_->prev_ = call;
  live_ = call;
  ++calls_;
}

void ServerSession::on_header(int32_t id, std::string_view name, std::string_view value) {
  ServerCall* call = call_of(id);
  if (!call || call->headers_done_) return;  // request trailers carry nothing we use
  call->header_bytes_ += name.size() + value.size() + 32;
  if (call->header_bytes_ > options_.max_header_list_size) {
    call->too_large_ = true;
    return;
  }
  if (name == ":method") {
    call->post_ = value == "POST";
    call->method_name_len_ = std::min(value.size(), sizeof call->method_name_);
    std::memcpy(call->method_name_, value.data(), call->method_name_len_);
  } else if (name == ":path") {
    call->path_len_ = std::min(value.size(), sizeof call->path_);
    std::memcpy(call->path_, value.data(), call->path_len_);
    if (value.size() > sizeof call->path_) call->path_len_ = 0;  // too long to be ours
  } else if (name == "content-type") {
    call->grpc_type_ = is_grpc_content_type(value);
  } else if (name == "te") {
    call->te_trailers_ = value == "trailers";
  } else if (name == "grpc-timeout") {
    if (auto ns = parse_timeout(value)) {
      call->timeout_ns_ = *ns;
      call->has_deadline_ = true;
    } else {
      call->timeout_bad_ = true;
    }
  }
}

// The HTTP/2 layer stopped a header block at its limit: answer as for our
// own limit (RESOURCE_EXHAUSTED), not with a bare stream reset.
bool ServerSession::on_header_limit(int32_t id) {
  ServerCall* call = call_of(id);
  if (!call || call->headers_done_) return false;
  call->too_large_ = true;
  on_headers_end(id);
  return true;
}

void ServerSession::on_headers_end(int32_t id) {
  ServerCall* call = call_of(id);
  if (!call || call->headers_done_) return;
  call->headers_done_ = true;
  if (call->has_deadline_) {
    auto now = std::chrono::steady_clock::now();
    auto max_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::time_point::max() - now);
    call->deadline_ =
        now + std::chrono::nanoseconds(std::min<uint64_t>(call->timeout_ns_, max_ns.count()));
  }
  if (call->too_large_)
    return reject(*call, 200, StatusCode::resource_exhausted,
                  "request headers exceed the server's limit of " +
                      std::to_string(options_.max_header_list_size) + " bytes");
  if (!call->post_)
    return reject(*call, 405, StatusCode::internal,
                  "gRPC requires :method POST, got " +
                      std::string(call->method_name_, call->method_name_len_));
  if (!call->grpc_type_)
    return reject(*call, 415, StatusCode::internal,
                  "content-type must be application/grpc or application/grpc+proto");
  if (!call->te_trailers_)
    return reject(*call, 200, StatusCode::internal,
                  "missing \"te: trailers\" header: the client (or a proxy on the way) does not "
                  "speak gRPC");
  if (call->timeout_bad_)
    return reject(*call, 200, StatusCode::internal,
                  "malformed grpc-timeout header (expected 1-8 digits and a unit H, M, S, m, u "
                  "or n)");
  call->method_ = call->path_len_ ? handler_.resolve_method(call->path()) : -1;
  if (call->method_ < 0)
    return reject(*call, 200, StatusCode::unimplemented,
                  "unknown method " + std::string(call->path()));
  call->state_ = ServerCall::State::receiving;
}

void ServerSession::on_message(void* ctx, Bytes message) {
  auto* call = static_cast<ServerCall*>(ctx);
  if (call->messages_++ == 0) call->request_ = std::move(message);
}

void ServerSession::on_data(int32_t id, const Bytes& chunk) {
  ServerCall* call = call_of(id);
  if (!call || call->state_ != ServerCall::State::receiving) return;  // discarded
  Status st = call->reader_.feed(chunk, &ServerSession::on_message, call);
  if (!st.ok()) return reject(*call, 200, st.code, st.message);
  if (call->messages_ > 1)
    return reject(
        *call, 200, StatusCode::internal,
        "unary method " + std::string(call->path()) + " received more than one request message");
}

void ServerSession::on_remote_end(int32_t id) {
  ServerCall* call = call_of(id);
  if (!call) return;
  call->remote_ended_ = true;
  if (call->state_ == ServerCall::State::headers) {
    // END_STREAM on headers that never completed validation cannot happen;
    // on_headers_end runs first. Nothing to do.
    return;
  }
  if (call->state_ != ServerCall::State::receiving) return;
  if (!call->reader_.at_boundary())
    return reject(*call, 200, StatusCode::internal,
                  "request stream ended inside a message (" +
                      std::to_string(call->reader_.partial_received()) + " of " +
                      std::to_string(call->reader_.partial_expected()) + " bytes)");
  if (call->messages_ == 0)
    return reject(*call, 200, StatusCode::internal,
                  "request stream ended without a message; unary methods take exactly one");
  call->state_ = ServerCall::State::dispatched;
  call->dispatched_ = true;
  handler_.on_call(*call);
}

namespace {
const Header kResponseHeaders[] = {{":status", "200", true},
                                   {"content-type", "application/grpc", true}};
}  // namespace

bool ServerSession::frame(ServerCall& call, std::span<const uint8_t> head, Bytes body) {
  uint8_t prefixed[http2::Body::kMaxHead];
  size_t total = head.size() + body.size();
  if (head.size() > http2::Body::kMaxHead - 5 || total > UINT32_MAX) {
    std::string why = "response message of " + std::to_string(total) + " bytes cannot be framed";
    if (call.streaming_)
      finish(call, StatusCode::resource_exhausted, why);
    else
      fail(call, StatusCode::resource_exhausted, why);
    return false;
  }
  write_message_prefix(prefixed, static_cast<uint32_t>(total));
  if (!head.empty()) std::memcpy(prefixed + 5, head.data(), head.size());
  call.body_.reset(std::span<const uint8_t>(prefixed, 5 + head.size()), std::move(body));
  return true;
}

void ServerSession::respond(ServerCall& call, std::span<const uint8_t> head, Bytes body) {
  if (call.state_ != ServerCall::State::dispatched) return;
  if (!frame(call, head, std::move(body))) return;
  call.body_.trailers = true;
  call.state_ = ServerCall::State::responded;
  int rv = h2_.submit_response(call.stream_id_, kResponseHeaders, &call.body_);
  if (rv != 0) {
    EMBER_WARN("ember.grpc", "cannot submit response", {"stream", call.stream_id_},
               {"error", nghttp2_strerror(rv)});
    h2_.submit_rst_stream(call.stream_id_, NGHTTP2_INTERNAL_ERROR);
  }
}

void ServerSession::write(ServerCall& call, std::span<const uint8_t> head, Bytes body) {
  if (call.state_ == ServerCall::State::dispatched) {
    // The first message goes with the response headers, straight into body_.
    if (!frame(call, head, std::move(body))) return;
    call.streaming_ = true;
    call.body_.open = true;
    call.state_ = ServerCall::State::streaming;
    int rv = h2_.submit_response(call.stream_id_, kResponseHeaders, &call.body_);
    if (rv != 0) {
      EMBER_WARN("ember.grpc", "cannot submit response", {"stream", call.stream_id_},
                 {"error", nghttp2_strerror(rv)});
      call.state_ = ServerCall::State::responded;
      h2_.submit_rst_stream(call.stream_id_, NGHTTP2_INTERNAL_ERROR);
    }
    return;
  }
  if (call.state_ != ServerCall::State::streaming) return;
  if (head.size() > http2::Body::kMaxHead - 5 || head.size() + body.size() > UINT32_MAX) {
    finish(call, StatusCode::resource_exhausted,
           "response message of " + std::to_string(head.size() + body.size()) +
               " bytes cannot be framed");
    return;
  }
  if (call.queue_head_ == call.queue_.size()) {
    call.queue_.clear();  // keeps its capacity: no allocation once warm
    call.queue_head_ = 0;
  }
  ServerCall::Queued& q = call.queue_.emplace_back();
  write_message_prefix(q.head, static_cast<uint32_t>(head.size() + body.size()));
  if (!head.empty()) std::memcpy(q.head + 5, head.data(), head.size());
  q.head_len = static_cast<uint8_t>(5 + head.size());
  q.body = std::move(body);
  h2_.resume_data(call.stream_id_);
}

void ServerSession::finish(ServerCall& call, StatusCode code, std::string_view message) {
  if (call.state_ == ServerCall::State::dispatched) {
    // Nothing written: trailers-only, OK included (the spec allows it).
    reject(call, 200, code, message);
    return;
  }
  if (call.state_ != ServerCall::State::streaming) return;
  call.state_ = ServerCall::State::responded;
  call.final_code_ = code;
  call.final_message_.assign(message);
  h2_.resume_data(call.stream_id_);
}

// The message in body_ is out: load the next one, or end the body when the
// final status is queued and nothing else is.
void ServerSession::on_body_drained(int32_t id) {
  ServerCall* call = call_of(id);
  if (!call) return;
  if (call->queue_head_ < call->queue_.size()) {
    ServerCall::Queued& q = call->queue_[call->queue_head_++];
    call->body_.reset(std::span<const uint8_t>(q.head, q.head_len), std::move(q.body));
  }
  bool last = call->queue_head_ == call->queue_.size();
  if (last && call->state_ == ServerCall::State::responded) {
    call->body_.open = false;
    call->body_.trailers = true;
  }
}

void ServerSession::on_body_end(int32_t id) {
  static const Header kTrailers[] = {{"grpc-status", "0", true}};
  ServerCall* call = call_of(id);
  if (!call || call->final_code_ == StatusCode::ok) {
    h2_.submit_trailers(id, kTrailers);
    return;
  }
  std::string encoded = percent_encode(call->final_message_);
  const Header trailers[] = {{"grpc-status", status_text(call->final_code_), true},
                             {"grpc-message", encoded, false}};
  h2_.submit_trailers(id, std::span(trailers, encoded.empty() ? 1 : 2));
}

void ServerSession::fail(ServerCall& call, StatusCode code, std::string_view message) {
  if (call.state_ == ServerCall::State::streaming) return finish(call, code, message);
  if (call.state_ != ServerCall::State::dispatched && call.state_ != ServerCall::State::receiving &&
      call.state_ != ServerCall::State::headers)
    return;
  reject(call, 200, code, message);
}

void ServerSession::reject(ServerCall& call, int http_status, StatusCode code,
                           std::string_view message) {
  bool was_dispatched = call.state_ == ServerCall::State::dispatched;
  call.state_ = was_dispatched ? ServerCall::State::responded : ServerCall::State::rejected;
  call.request_ = Bytes();
  call.reader_.reset();
  EMBER_DEBUG("ember.grpc", "call failed", {"stream", call.stream_id_}, {"path", call.path()},
              {"status", status_name(code)}, {"message", message});
  std::string encoded = percent_encode(message);
  const Header headers[] = {{":status", http_status_text(http_status), true},
                            {"content-type", "application/grpc", true},
                            {"grpc-status", status_text(code), true},
                            {"grpc-message", encoded, false}};
  int rv =
      h2_.submit_response(call.stream_id_, std::span(headers, encoded.empty() ? 3 : 4), nullptr);
  if (rv != 0) {
    h2_.submit_rst_stream(call.stream_id_, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  // The client is still sending: it may stop, with RST_STREAM(NO_ERROR) after
  // the answer (RFC 9113 §8.1). Not now: nghttp2 drops a stream's queued
  // HEADERS once a RST_STREAM is submitted for it, and the client would get
  // no status at all.
  if (!call.remote_ended_) stop_after_answer_.push_back(call.stream_id_);
}

Result<void> ServerSession::produce(IoChain& out) {
  Result<void> r = h2_.produce(out);
  if (!r || stop_after_answer_.empty()) return r;
  // nghttp2 sends HEADERS ahead of any DATA, so the trailers-only answers
  // are in `out` by now.
  for (int32_t id : stop_after_answer_)
    if (h2_.remote_open(id)) h2_.submit_rst_stream(id, NGHTTP2_NO_ERROR);
  stop_after_answer_.clear();
  return h2_.produce(out);
}

bool ServerSession::read_target(ReadTarget& target) noexcept {
  int32_t id;
  size_t left = h2_.pending_data(&id);
  if (left < kMinDirectRead) return false;
  ServerCall* call = call_of(id);
  if (!call || call->state_ != ServerCall::State::receiving) return false;
  size_t missing;
  if (!call->reader_.gather_tail(&target.storage, &target.data, &missing)) return false;
  target.size = std::min(left, missing);
  return target.size >= kMinDirectRead;
}

void ServerSession::on_stream_close(int32_t id, uint32_t error_code) {
  ServerCall* call = call_of(id);
  if (!call) return;
  h2_.set_stream_data(id, nullptr);
  if (call->dispatched_) {
    bool answered = call->state_ == ServerCall::State::responded;
    if (!answered || error_code != NGHTTP2_NO_ERROR)
      EMBER_DEBUG("ember.grpc", "call cancelled", {"stream", id}, {"path", call->path()},
                  {"h2_error", error_code});
    handler_.on_call_end(*call, answered && error_code == NGHTTP2_NO_ERROR);
  }
  destroy(call);
}

}  // namespace ember::grpc
