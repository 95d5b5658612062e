#include "protocols/http2/session.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

namespace ember::http2 {
namespace {

constexpr size_t kMaxHeaders = 64;

struct NvArray {
  nghttp2_nv nv[kMaxHeaders];
  size_t count = 0;
};

bool to_nv(std::span<const Header> headers, NvArray* out) {
  if (headers.size() > kMaxHeaders) return false;
  for (const Header& h : headers) {
    nghttp2_nv& nv = out->nv[out->count++];
    nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data()));
    nv.namelen = h.name.size();
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data()));
    nv.valuelen = h.value.size();
    nv.flags = h.static_storage ? (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
                                : NGHTTP2_NV_FLAG_NONE;
  }
  return true;
}

}  // namespace

void Body::reset(std::span<const uint8_t> head, Bytes payload) {
  assert(head.size() <= kMaxHead);
  head_len_ = std::min(head.size(), kMaxHead);
  if (head_len_) std::memcpy(head_, head.data(), head_len_);
  payload_ = std::move(payload);
  offset_ = 0;
  trailers = false;
}

void Body::emit(IoChain& out, size_t n) {
  assert(n <= remaining());
  if (offset_ < head_len_) {
    size_t h = std::min(n, head_len_ - offset_);
    out.append_copy(head_ + offset_, h);
    offset_ += h;
    n -= h;
  }
  if (n > 0) {
    size_t p = offset_ - head_len_;
    // A slice shares the payload's storage: one refcount, no byte copy.
    out.append(payload_.slice(p, n));
    offset_ += n;
  }
}

Session::Session(Role role, SessionHandler& handler, const Settings& settings, SlabAllocator& slab)
    : handler_(handler), settings_(settings), role_(role) {
  mem_.mem_user_data = &slab;
  mem_.malloc = [](size_t size, void* ud) {
    return static_cast<SlabAllocator*>(ud)->allocate(size);
  };
  mem_.free = [](void* p, void* ud) { static_cast<SlabAllocator*>(ud)->deallocate(p); };
  mem_.calloc = [](size_t n, size_t size, void* ud) {
    return static_cast<SlabAllocator*>(ud)->allocate_zeroed(n, size);
  };
  mem_.realloc = [](void* p, size_t size, void* ud) {
    return static_cast<SlabAllocator*>(ud)->reallocate(p, size);
  };

  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, &Session::on_send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, &Session::on_send_data);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, &Session::on_read_length);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, &Session::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Session::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Session::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Session::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Session::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Session::on_stream_close);

  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_closed_streams(opt, 1);
  if (!settings.http_messaging) nghttp2_option_set_no_http_messaging(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, 256u << 10);
  if (role == Role::server) {
    nghttp2_session_server_new3(&session_, cbs, this, opt, &mem_);
  } else {
    // Until the server's SETTINGS arrive, assume it takes many streams.
    nghttp2_option_set_peer_max_concurrent_streams(opt, 1000);
    nghttp2_session_client_new3(&session_, cbs, this, opt, &mem_);
  }
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  std::vector<nghttp2_settings_entry> iv = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE,
       std::clamp<uint32_t>(settings.max_frame_size, 16384, (1u << 24) - 1)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_list_size},
  };
  if (role == Role::client) iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  // The connection window starts at 64 KiB whatever SETTINGS say; open it now.
  if (settings.connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(settings.connection_window_size));
}

Session::~Session() {
  nghttp2_session_del(session_);
}

Result<void> Session::feed(const Bytes& input) {
  input_ = &input;
  ssize_t rv = nghttp2_session_mem_recv(session_, input.data(), input.size());
  input_ = nullptr;
  if (rv < 0) {
    // Bad preface or a fatal protocol error: say so with a GOAWAY.
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
      return Error(
          "not an HTTP/2 client (bad connection preface); the peer must speak h2c "
          "with prior knowledge",
          static_cast<int>(rv));
    terminate(NGHTTP2_PROTOCOL_ERROR);
    return Error(std::string("HTTP/2 protocol error: ") + nghttp2_strerror(static_cast<int>(rv)),
                 static_cast<int>(rv));
  }
  return {};
}

Result<void> Session::produce(IoChain& out) {
  out_ = &out;
  produced_ = 0;
  int rv = nghttp2_session_send(session_);
  out_ = nullptr;
  if (rv != 0) return Error(std::string("HTTP/2 send failed: ") + nghttp2_strerror(rv), rv);
  return {};
}

bool Session::wants_write() const noexcept {
  return nghttp2_session_want_write(session_) != 0;
}
bool Session::alive() const noexcept {
  return nghttp2_session_want_read(session_) != 0 || nghttp2_session_want_write(session_) != 0;
}
uint32_t Session::peer_max_frame_size() const noexcept {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_FRAME_SIZE);
}

nghttp2_data_provider Session::provider(Body* body) noexcept {
  nghttp2_data_provider dp;
  dp.source.ptr = body;
  dp.read_callback = &Session::on_read_body;
  return dp;
}

int Session::submit_response(int32_t stream_id, std::span<const Header> headers, Body* body) {
  NvArray nva;
  if (!to_nv(headers, &nva)) return NGHTTP2_ERR_INVALID_ARGUMENT;
  if (body) {
    nghttp2_data_provider dp = provider(body);
    return nghttp2_submit_response(session_, stream_id, nva.nv, nva.count, &dp);
  }
  return nghttp2_submit_response(session_, stream_id, nva.nv, nva.count, nullptr);
}

int Session::submit_trailers(int32_t stream_id, std::span<const Header> trailers) {
  NvArray nva;
  if (!to_nv(trailers, &nva)) return NGHTTP2_ERR_INVALID_ARGUMENT;
  return nghttp2_submit_trailer(session_, stream_id, nva.nv, nva.count);
}

int32_t Session::submit_request(std::span<const Header> headers, Body* body, void* stream_data) {
  NvArray nva;
  if (!to_nv(headers, &nva)) return NGHTTP2_ERR_INVALID_ARGUMENT;
  if (body) {
    nghttp2_data_provider dp = provider(body);
    return nghttp2_submit_request(session_, nullptr, nva.nv, nva.count, &dp, stream_data);
  }
  return nghttp2_submit_request(session_, nullptr, nva.nv, nva.count, nullptr, stream_data);
}

int Session::submit_rst_stream(int32_t stream_id, uint32_t error_code) {
  return nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
}

void Session::submit_goaway(uint32_t error_code) {
  if (role_ == Role::server && error_code == NGHTTP2_NO_ERROR) {
    int32_t last = nghttp2_session_get_last_proc_stream_id(session_);
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, last, error_code, nullptr, 0);
  } else {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session_), error_code, nullptr,
                          0);
  }
}

void Session::terminate(uint32_t error_code) {
  nghttp2_session_terminate_session(session_, error_code);
}

bool Session::remote_open(int32_t stream_id) const noexcept {
  return nghttp2_session_get_stream_remote_close(session_, stream_id) == 0;
}

void* Session::stream_data(int32_t stream_id) const noexcept {
  return nghttp2_session_get_stream_user_data(session_, stream_id);
}

void Session::set_stream_data(int32_t stream_id, void* data) noexcept {
  nghttp2_session_set_stream_user_data(session_, stream_id, data);
}

// ---- nghttp2 callbacks -----------------------------------------------------

ssize_t Session::on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* ud) {
  auto* self = static_cast<Session*>(ud);
  // Control frames live in nghttp2's buffer only until we return: copy them
  // into the cork, where consecutive frames coalesce into one iovec.
  self->out_->append_copy(data, len);
  self->produced_ += len;
  return static_cast<ssize_t>(len);
}

int Session::on_send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                          size_t len, nghttp2_data_source* src, void* ud) {
  auto* self = static_cast<Session*>(ud);
  auto* body = static_cast<Body*>(src->ptr);
  IoChain& out = *self->out_;
  out.append_copy(framehd, 9);
  size_t padlen = frame->data.padlen;
  if (padlen > 0) {
    uint8_t pad_len_byte = static_cast<uint8_t>(padlen - 1);
    out.append_copy(&pad_len_byte, 1);
  }
  body->emit(out, len);
  if (padlen > 1) {
    static const uint8_t zeros[256] = {};
    out.append_unowned(zeros, padlen - 1);
  }
  self->produced_ += 9 + len + padlen;
  // Bound one flush so a huge body cannot balloon the chain; the connection
  // calls produce() again after the write completes.
  if (self->produced_ >= self->settings_.max_output_per_flush) return NGHTTP2_ERR_PAUSE;
  return 0;
}

ssize_t Session::on_read_length(nghttp2_session*, uint8_t, int32_t, int32_t session_window,
                                int32_t stream_window, uint32_t max_frame, void*) {
  // Send frames as large as the peer allows instead of nghttp2's 16 KiB default.
  int64_t n = std::min<int64_t>({session_window, stream_window, max_frame});
  return static_cast<ssize_t>(std::max<int64_t>(n, 1));
}

ssize_t Session::on_read_body(nghttp2_session*, int32_t stream_id, uint8_t*, size_t len,
                              uint32_t* flags, nghttp2_data_source* src, void* ud) {
  auto* self = static_cast<Session*>(ud);
  auto* body = static_cast<Body*>(src->ptr);
  size_t n = std::min(len, body->remaining());
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == body->remaining()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (body->trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      self->handler_.on_body_end(stream_id);
    }
  }
  return static_cast<ssize_t>(n);
}

int Session::on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
  auto* self = static_cast<Session*>(ud);
  // Padded frames interleave a pad length and padding with the payload; only
  // plain DATA payloads are predictable byte for byte.
  bool plain = hd->type == NGHTTP2_DATA && !(hd->flags & NGHTTP2_FLAG_PADDED);
  self->data_stream_ = plain ? hd->stream_id : 0;
  self->data_left_ = plain ? hd->length : 0;
  return 0;
}

int Session::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  static_cast<Session*>(ud)->handler_.on_headers_begin(frame->hd.stream_id);
  return 0;
}

int Session::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
  static_cast<Session*>(ud)->handler_.on_header(frame->hd.stream_id,
                                                {reinterpret_cast<const char*>(name), namelen},
                                                {reinterpret_cast<const char*>(value), valuelen});
  return 0;
}

int Session::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto* self = static_cast<Session*>(ud);
  int32_t id = frame->hd.stream_id;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      self->handler_.on_headers_end(id);
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) self->handler_.on_remote_end(id);
      break;
    case NGHTTP2_DATA:
      self->data_left_ = 0;
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) self->handler_.on_remote_end(id);
      break;
    default:
      break;
  }
  return 0;
}

int Session::on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                           size_t len, void* ud) {
  auto* self = static_cast<Session*>(ud);
  if (stream_id == self->data_stream_) self->data_left_ -= std::min(self->data_left_, len);
  const Bytes* in = self->input_;
  if (in && data >= in->data() && data + len <= in->data() + in->size()) {
    self->handler_.on_data(stream_id, in->slice(static_cast<size_t>(data - in->data()), len));
  } else {
    // nghttp2 hands DATA out of our input; this is only a safety net.
    self->handler_.on_data(stream_id, Bytes::copy(std::span(data, len)));
  }
  return 0;
}

int Session::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
  static_cast<Session*>(ud)->handler_.on_stream_close(stream_id, error_code);
  return 0;
}

}  // namespace ember::http2
