#include "protocols/grpc/client.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

namespace ember::grpc {

struct ClientSession::Call {
  Call(uint64_t t, size_t max_message, BufferPool* pool) : tag(t), reader(max_message, pool) {}
  uint64_t tag;
  int32_t stream_id = 0;
  Call* prev = nullptr;
  Call* next = nullptr;
  int http_status = 0;
  bool have_grpc_status = false;
  bool done = false;
  bool streaming = false;
  ClientSession* session = nullptr;  // for on_message
  int grpc_status = 0;
  std::string grpc_message;
  uint8_t messages = 0;
  std::optional<Bytes> message;
  MessageReader reader;
  http2::Body body;
};

ClientSession::ClientSession(ClientHandler& handler, const ClientOptions& options,
                             SlabAllocator& slab, BufferPool* pool)
    : handler_(handler),
      options_(options),
      slab_(slab),
      pool_(pool),
      h2_(http2::Role::client, *this, options.http2, slab) {}

ClientSession::~ClientSession() {
  while (Call* c = live_) {
    live_ = c->next;
    c->~Call();
    slab_.deallocate(c);
  }
}

Result<void> ClientSession::start_unary(std::string_view path, std::span<const uint8_t> head,
                                        Bytes body, uint64_t tag, uint64_t timeout_ns) {
  return start(path, head, std::move(body), tag, timeout_ns, false);
}

Result<void> ClientSession::start_server_streaming(std::string_view path,
                                                   std::span<const uint8_t> head, Bytes body,
                                                   uint64_t tag, uint64_t timeout_ns) {
  return start(path, head, std::move(body), tag, timeout_ns, true);
}

bool ClientSession::cancel(uint64_t tag, Status status) {
  for (Call* c = live_; c; c = c->next) {
    if (c->tag != tag || c->done) continue;
    finish(c, std::move(status));
    h2_.submit_rst_stream(c->stream_id, NGHTTP2_CANCEL);
    return true;
  }
  return false;
}

Result<void> ClientSession::start(std::string_view path, std::span<const uint8_t> head, Bytes body,
                                  uint64_t tag, uint64_t timeout_ns, bool streaming) {
  if (head.size() > http2::Body::kMaxHead - 5)
    return Error("request head too long for one frame prefix");
  void* mem = slab_.allocate(sizeof(Call));
  if (!mem) return Error("out of memory");
  auto* call = new (mem) Call(tag, options_.max_receive_message_size, pool_);
  call->streaming = streaming;
  call->session = this;
  uint8_t prefixed[http2::Body::kMaxHead];
  write_message_prefix(prefixed, static_cast<uint32_t>(head.size() + body.size()));
  if (!head.empty()) std::memcpy(prefixed + 5, head.data(), head.size());
  call->body.reset(std::span<const uint8_t>(prefixed, 5 + head.size()), std::move(body));
  std::string timeout = timeout_ns ? format_timeout(timeout_ns) : std::string();
  http2::Header headers[] = {
      {":method", "POST", true},
      {":scheme", options_.scheme, false},
      {":path", path, false},
      {":authority", options_.authority, false},
      {"content-type", "application/grpc", true},
      {"te", "trailers", true},
      {"user-agent", options_.user_agent, false},
      {"grpc-timeout", timeout, false},
  };
  size_t n = timeout_ns ? 8 : 7;
  int32_t id = h2_.submit_request(std::span(headers, n), &call->body, call);
  if (id < 0) {
    call->~Call();
    slab_.deallocate(call);
    return Error(std::string("cannot start call: ") + nghttp2_strerror(id), id);
  }
  call->stream_id = id;
  call->next = live_;
  if (live_) live_->prev = call;
  live_ = call;
  ++in_flight_;
  return {};
}

Result<void> ClientSession::feed(const Bytes& input) {
  return h2_.feed(input);
}

void ClientSession::on_headers_begin(int32_t) {}

void ClientSession::on_header(int32_t id, std::string_view name, std::string_view value) {
  auto* call = static_cast<Call*>(h2_.stream_data(id));
  if (!call) return;
  if (name == ":status") {
    std::from_chars(value.data(), value.data() + value.size(), call->http_status);
  } else if (name == "grpc-status") {
    int v = -1;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    bool valid = ec == std::errc() && p == value.data() + value.size() && v >= 0 && v <= 16;
    call->grpc_status = valid ? v : static_cast<int>(StatusCode::unknown);
    call->have_grpc_status = true;
  } else if (name == "grpc-message") {
    call->grpc_message = percent_decode(value);
  }
}

void ClientSession::on_headers_end(int32_t) {}

void ClientSession::on_message(void* ctx, Bytes message) {
  auto* call = static_cast<Call*>(ctx);
  if (call->streaming) {
    // The handler may cancel the call from inside: later messages are dropped.
    if (!call->done) call->session->handler_.on_message(call->tag, std::move(message));
    return;
  }
  if (call->messages++ == 0) call->message = std::move(message);
}

void ClientSession::on_data(int32_t id, const Bytes& chunk) {
  auto* call = static_cast<Call*>(h2_.stream_data(id));
  if (!call || call->done) return;
  Status st = call->reader.feed(chunk, &ClientSession::on_message, call);
  if (!st.ok()) {
    finish(call, std::move(st));
    h2_.submit_rst_stream(id, NGHTTP2_CANCEL);
  }
}

void ClientSession::on_remote_end(int32_t id) {
  auto* call = static_cast<Call*>(h2_.stream_data(id));
  if (!call || call->done) return;
  if (call->http_status != 200) {
    StatusCode code = call->have_grpc_status ? static_cast<StatusCode>(call->grpc_status)
                                             : status_from_http(call->http_status);
    std::string msg = "HTTP status " + std::to_string(call->http_status);
    if (!call->grpc_message.empty()) msg += ": " + call->grpc_message;
    return finish(call, Status{code, std::move(msg)});
  }
  if (!call->have_grpc_status)
    return finish(call, Status{StatusCode::internal, "response ended without grpc-status"});
  if (call->grpc_status < 0 || call->grpc_status > 16) call->grpc_status = 2;
  if (call->grpc_status == 0 && !call->reader.at_boundary())
    return finish(call, Status{StatusCode::internal, "response ended inside a message"});
  if (call->grpc_status == 0 && call->messages > 1)
    return finish(call, Status{StatusCode::internal, "unary response carried several messages"});
  finish(call, Status{static_cast<StatusCode>(call->grpc_status), call->grpc_message});
}

void ClientSession::finish(Call* call, Status status) {
  if (call->done) return;
  call->done = true;
  std::optional<Bytes> message;
  if (status.ok()) message = std::move(call->message);
  handler_.on_response(call->tag, std::move(status), std::move(message));
}

void ClientSession::on_stream_close(int32_t id, uint32_t error_code) {
  auto* call = static_cast<Call*>(h2_.stream_data(id));
  if (!call) return;
  h2_.set_stream_data(id, nullptr);
  if (!call->done) {
    StatusCode code =
        error_code == NGHTTP2_REFUSED_STREAM ? StatusCode::unavailable : StatusCode::internal;
    finish(call, Status{code, "stream closed by the server before a status (HTTP/2 error " +
                                  std::to_string(error_code) + ")"});
  }
  if (call->prev)
    call->prev->next = call->next;
  else
    live_ = call->next;
  if (call->next) call->next->prev = call->prev;
  call->~Call();
  slab_.deallocate(call);
  --in_flight_;
}

void ClientSession::on_body_end(int32_t) {}

bool ClientSession::read_target(ReadTarget& target) noexcept {
  int32_t id;
  size_t left = h2_.pending_data(&id);
  if (left < kMinDirectRead) return false;
  auto* call = static_cast<Call*>(h2_.stream_data(id));
  if (!call || call->done) return false;
  size_t missing;
  if (!call->reader.gather_tail(&target.storage, &target.data, &missing)) return false;
  target.size = std::min(left, missing);
  return target.size >= kMinDirectRead;
}

void ClientSession::fail_all(StatusCode code, std::string_view message) {
  for (Call* c = live_; c; c = c->next)
    finish(c, Status{code, std::string(message)});
}

}  // namespace ember::grpc
