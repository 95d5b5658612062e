#include "protocols/http2/session.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ember::http2 {
namespace {

// Header lists up to this many fields are converted on the stack; longer
// ones borrow a block from the slab for the duration of the submit call.
constexpr size_t kInlineHeaders = 32;

void fill_nv(std::span<const Header> headers, nghttp2_nv* out) noexcept {
  for (const Header& h : headers) {
    nghttp2_nv& nv = *out++;
    nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data()));
    nv.namelen = h.name.size();
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data()));
    nv.valuelen = h.value.size();
    nv.flags = h.static_storage ? (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
               : h.static_name  ? NGHTTP2_NV_FLAG_NO_COPY_NAME
                                : NGHTTP2_NV_FLAG_NONE;
  }
}

uint32_t be24(const uint8_t* p) noexcept {
  return (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2];
}

// The SETTINGS_MAX_FRAME_SIZE we send: the configured size within RFC 9113's range.
uint32_t advertised_frame_size(uint32_t configured) noexcept {
  return std::clamp<uint32_t>(configured, 16384, (1u << 24) - 1);
}

constexpr auto kStatusDigits = [] {
  std::array<char, 500 * 3> t{};
  for (int s = 100; s < 600; ++s) {
    t[(s - 100) * 3] = static_cast<char>('0' + s / 100);
    t[(s - 100) * 3 + 1] = static_cast<char>('0' + s / 10 % 10);
    t[(s - 100) * 3 + 2] = static_cast<char>('0' + s % 10);
  }
  return t;
}();

}  // namespace

std::string_view status_digits(int status) noexcept {
  if (status < 100 || status > 599) status = 500;
  return {kStatusDigits.data() + (status - 100) * 3, 3};
}

template <class Fn>
int Session::with_nv(std::span<const Header> headers, Fn&& fn) {
  nghttp2_nv inline_nv[kInlineHeaders];
  nghttp2_nv* nv = inline_nv;
  if (headers.size() > kInlineHeaders) {
    if (headers.size() > SIZE_MAX / sizeof(nghttp2_nv)) return NGHTTP2_ERR_INVALID_ARGUMENT;
    nv = static_cast<nghttp2_nv*>(slab_.allocate(headers.size() * sizeof(nghttp2_nv)));
    if (!nv) return NGHTTP2_ERR_NOMEM;
  }
  fill_nv(headers, nv);
  // nghttp2 copies (or, for static storage, references) the strings during
  // the submit call; the array itself is not kept.
  int rv = fn(headers.empty() ? nullptr : nv, headers.size());
  if (nv != inline_nv) slab_.deallocate(nv);
  return rv;
}

void Body::reset(std::span<const uint8_t> head, Bytes payload) {
  assert(head.size() <= kMaxHead);
  head_len_ = std::min(head.size(), kMaxHead);
  if (head_len_) std::memcpy(head_, head.data(), head_len_);
  payload_ = std::move(payload);
  offset_ = 0;
  trailers = false;
  reset_after = false;
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
    : slab_(slab), handler_(handler), settings_(settings), role_(role) {
  // The server's frame walk starts after the client's 24-byte magic.
  preface_left_ = role == Role::server ? NGHTTP2_CLIENT_MAGIC_LEN : 0;
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
  if (role == Role::client)
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Session::on_frame_sent);

  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_closed_streams(opt, 1);
  if (!settings.http_messaging) nghttp2_option_set_no_http_messaging(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, 256u << 10);
  // Our frame walk (scan_frames) bounds CONTINUATIONs exactly. Debian's
  // backported bound counts each read that ends inside a CONTINUATION's frame
  // header, so a legitimate block arriving in small reads could trip it: keep
  // it only as a far backstop.
  nghttp2_option_set_max_continuations(opt, 1024);
  // SETTINGS/PING floods: a peer that makes us queue this many ACKs without
  // reading them is cut off (feed() fails, GOAWAY ENHANCE_YOUR_CALM).
  nghttp2_option_set_max_outbound_ack(opt, 1000);
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
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, advertised_frame_size(settings.max_frame_size)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_list_size},
  };
  if (role == Role::client) iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  if (role == Role::server && settings.complete_streams_in_order)
    iv.push_back({NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1});
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
  if (calmed()) return Error(calm_reason_, NGHTTP2_ERR_CALLBACK_FAILURE);
  std::string flood;
  size_t usable = scan_frames(input, &flood);
  input_ = &input;
  ssize_t rv = nghttp2_session_mem_recv(session_, input.data(), usable);
  input_ = nullptr;
  // The frames before a flood are processed; the flood itself never is.
  if (!flood.empty() && !calmed()) calm(std::move(flood));
  if (calmed()) return Error(calm_reason_, NGHTTP2_ERR_CALLBACK_FAILURE);
  if (rv < 0) {
    // Bad preface or a fatal protocol error: say so with a GOAWAY.
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
      return Error(
          "not an HTTP/2 client (bad connection preface); the peer must speak h2c "
          "with prior knowledge",
          static_cast<int>(rv));
    // nghttp2's own flood checks (unacknowledged SETTINGS/PING ACKs; the
    // CONTINUATION bound of patched builds) stop it without a GOAWAY.
    if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
      calm(std::string("HTTP/2 flood: ") + nghttp2_strerror(static_cast<int>(rv)));
      return Error(calm_reason_, static_cast<int>(rv));
    }
    terminate(NGHTTP2_PROTOCOL_ERROR);
    return Error(std::string("HTTP/2 protocol error: ") + nghttp2_strerror(static_cast<int>(rv)),
                 static_cast<int>(rv));
  }
  return {};
}

size_t Session::scan_frames(const Bytes& input, std::string* flood) {
  const uint8_t* p = input.data();
  const size_t n = input.size();
  size_t i = std::min(preface_left_, n);
  preface_left_ -= i;
  const uint64_t list = settings_.max_header_list_size ? settings_.max_header_list_size : 64u << 10;
  const uint64_t max_encoded = 4 * list + 16384;
  const uint32_t max_frame_size = advertised_frame_size(settings_.max_frame_size);
  while (i < n) {
    if (frame_payload_left_ > 0) {
      size_t k = std::min(frame_payload_left_, n - i);
      frame_payload_left_ -= k;
      i += k;
      continue;
    }
    // Where this frame's header starts in `input` (0 when an earlier input
    // carried its first bytes).
    size_t start = frame_hd_have_ ? 0 : i;
    size_t k = std::min(sizeof frame_hd_ - frame_hd_have_, n - i);
    std::memcpy(frame_hd_ + frame_hd_have_, p + i, k);
    frame_hd_have_ += k;
    i += k;
    if (frame_hd_have_ < sizeof frame_hd_) break;
    frame_hd_have_ = 0;
    uint32_t len = be24(frame_hd_);
    uint8_t type = frame_hd_[3];
    frame_payload_left_ = len;
    // Over the SETTINGS_MAX_FRAME_SIZE we sent, nghttp2 ends the connection
    // with FRAME_SIZE_ERROR (RFC 9113 4.2) as soon as it reads this header;
    // counting it towards a header block would answer ENHANCE_YOUR_CALM.
    if (len > max_frame_size) continue;
    bool ends_block = frame_hd_[4] & NGHTTP2_FLAG_END_HEADERS;
    if (type == NGHTTP2_HEADERS || type == NGHTTP2_PUSH_PROMISE) {
      continuations_ = 0;
      encoded_block_bytes_ = len;
    } else if (type == NGHTTP2_CONTINUATION) {
      ++continuations_;
      encoded_block_bytes_ += len;
    } else {
      continue;
    }
    // The last frame the bound allows, without END_HEADERS: the block can
    // only go past it. Decided here, on this frame's header, because
    // nghttp2 counts a CONTINUATION as soon as the next frame begins.
    if (!ends_block && continuations_ >= settings_.max_continuations) {
      *flood = "CONTINUATION flood: a header block in more than " +
               std::to_string(settings_.max_continuations + 1) + " frames";
      return start;
    }
    if (encoded_block_bytes_ > max_encoded) {
      *flood =
          "oversized header block: more than " + std::to_string(max_encoded) + " encoded bytes";
      return start;
    }
  }
  return n;
}

void Session::calm(std::string why) {
  calm_reason_ = std::move(why);
  if (calm_reason_.empty()) calm_reason_ = "ENHANCE_YOUR_CALM";
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

Result<void> Session::upgrade(std::string_view settings_payload, bool head_request,
                              void* stream_data) {
  int rv =
      nghttp2_session_upgrade2(session_, reinterpret_cast<const uint8_t*>(settings_payload.data()),
                               settings_payload.size(), head_request ? 1 : 0, stream_data);
  if (rv == NGHTTP2_ERR_INVALID_ARGUMENT)
    return Error("h2c upgrade: malformed HTTP2-Settings (not a SETTINGS payload)", rv);
  if (rv != 0) return Error(std::string("h2c upgrade failed: ") + nghttp2_strerror(rv), rv);
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
  return with_nv(headers, [&](const nghttp2_nv* nv, size_t count) {
    if (!body) return nghttp2_submit_response(session_, stream_id, nv, count, nullptr);
    nghttp2_data_provider dp = provider(body);
    return nghttp2_submit_response(session_, stream_id, nv, count, &dp);
  });
}

int Session::submit_trailers(int32_t stream_id, std::span<const Header> trailers) {
  return with_nv(trailers, [&](const nghttp2_nv* nv, size_t count) {
    return nghttp2_submit_trailer(session_, stream_id, nv, count);
  });
}

int32_t Session::submit_request(std::span<const Header> headers, Body* body, void* stream_data) {
  return with_nv(headers, [&](const nghttp2_nv* nv, size_t count) {
    if (!body) return nghttp2_submit_request(session_, nullptr, nv, count, nullptr, stream_data);
    nghttp2_data_provider dp = provider(body);
    return nghttp2_submit_request(session_, nullptr, nv, count, &dp, stream_data);
  });
}

int Session::submit_rst_stream(int32_t stream_id, uint32_t error_code) {
  return nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
}

void Session::resume_data(int32_t stream_id) noexcept {
  nghttp2_session_resume_data(session_, stream_id);
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

bool Session::local_open(int32_t stream_id) const noexcept {
  return nghttp2_session_get_stream_local_close(session_, stream_id) == 0;
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
  if (body->open && body->remaining() == 0) {
    self->handler_.on_body_drained(stream_id);
    if (body->open && body->remaining() == 0) return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(len, body->remaining());
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == body->remaining() && !body->open) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (body->trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      self->handler_.on_body_end(stream_id);
    } else if (body->reset_after && self->role_ == Role::server &&
               nghttp2_session_get_stream_remote_close(self->session_, stream_id) == 0) {
      // Queued behind the DATA frame being packed now: the answer arrives
      // whole, then the reset stops the rest of the request.
      nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
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
  auto* self = static_cast<Session*>(ud);
  self->block_stream_ = frame->hd.stream_id;
  self->block_fields_ = 0;
  self->block_bytes_ = 0;
  self->block_over_ = false;
  self->handler_.on_headers_begin(frame->hd.stream_id);
  return 0;
}

int Session::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
  auto* self = static_cast<Session*>(ud);
  // Past a limit the rest of the block is still decoded (HPACK state must
  // stay in step) but not delivered; the CONTINUATION bound caps the work.
  if (self->block_over_) return 0;
  const Settings& s = self->settings_;
  ++self->block_fields_;
  self->block_bytes_ += namelen + valuelen + 32;
  if ((s.max_header_count && self->block_fields_ > s.max_header_count) ||
      (s.max_header_list_size && self->block_bytes_ > s.max_header_list_size)) {
    self->block_over_ = true;
    return 0;
  }
  self->handler_.on_header(frame->hd.stream_id, {reinterpret_cast<const char*>(name), namelen},
                           {reinterpret_cast<const char*>(value), valuelen});
  return 0;
}

int Session::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto* self = static_cast<Session*>(ud);
  int32_t id = frame->hd.stream_id;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (self->block_over_ && self->block_stream_ == id) {
        self->block_over_ = false;
        if (!self->handler_.on_header_limit(id))
          nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, id,
                                    NGHTTP2_ENHANCE_YOUR_CALM);
      } else {
        self->block_ends_stream_ = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        self->handler_.on_headers_end(id);
      }
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) self->handler_.on_remote_end(id);
      break;
    case NGHTTP2_RST_STREAM:
      // A reset before our answer was complete (or of a stream we never
      // kept) cost us the request's work for nothing: the rapid reset
      // pattern when it outnumbers the streams the peer let finish.
      if (self->role_ == Role::server &&
          nghttp2_session_get_stream_local_close(self->session_, id) != 1) {
        ++self->unanswered_resets_;
        uint32_t max = self->settings_.max_unanswered_resets;
        if (max && self->unanswered_resets_ > max && self->unanswered_resets_ > self->completed_) {
          self->calm("rapid reset: the client reset " + std::to_string(self->unanswered_resets_) +
                     " streams before their answer, and let " + std::to_string(self->completed_) +
                     " complete");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
      }
      break;
    case NGHTTP2_GOAWAY:
      self->peer_goaway_ = true;
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

int Session::on_frame_sent(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  if (frame->hd.type == NGHTTP2_RST_STREAM)
    static_cast<Session*>(ud)->handler_.on_reset_sent(frame->hd.stream_id,
                                                      frame->rst_stream.error_code);
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
  auto* self = static_cast<Session*>(ud);
  if (error_code == NGHTTP2_NO_ERROR) ++self->completed_;
  self->handler_.on_stream_close(stream_id, error_code);
  return 0;
}

}  // namespace ember::http2
