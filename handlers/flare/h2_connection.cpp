// HTTP/2 edge connections (TLS with ALPN h2, h2c prior knowledge, h2c
// upgrade): one http2::Session per connection driven by
// http2::ServerConnection (input, flushes, drain, idle timeout), a pooled
// record per stream, flares invoked when a request's END_STREAM arrives.
//
// Answers are submitted during on_data and leave in the connection's one
// flush per loop turn, so nghttp2 coalesces the HEADERS and DATA of every
// stream answered in that turn into one writev.
//
// Limits: header count and list size per block (431 on that stream), body
// size (413, then RST_STREAM NO_ERROR to stop the upload), request bytes
// buffered per connection (503 on the stream that passes the budget), each
// request's time from HEADERS to END_STREAM (408). CONTINUATION floods and
// rapid resets end the connection with GOAWAY ENHANCE_YOUR_CALM (the
// session's defences). No RFC 8441: WebSocket flares answer over HTTP/2 with
// their own handle_request.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ember/log.hpp"
#include "handlers/flare/connections.hpp"
#include "protocols/http1/writer.hpp"
#include "protocols/http2/request_check.hpp"
#include "protocols/http2/server_connection.hpp"
#include "protocols/http2/session.hpp"

namespace ember::flare::detail {
namespace {

using http2::Header;

constexpr std::string_view kTarget = "ember.edge";
// Request bytes one connection may hold for incomplete requests, at least
// max_body: bounds what many concurrent uploads on one connection cost.
constexpr uint64_t kMinConnectionBodyBudget = 16u << 20;
// Stream records each loop keeps for reuse; header storage above this is
// given back rather than kept warm.
constexpr size_t kPooledStreams = 1024;
constexpr size_t kKeptStorage = 16u << 10;

struct Span {
  uint32_t off = 0, len = 0;
};

class H2Connection;
struct Stream;

// Hears that a waiting flare answered one stream.
struct StreamWaiter final : InvocationWaiter {
  H2Connection* conn = nullptr;
  Stream* stream = nullptr;
  void invocation_done() override;
};

// One request/response exchange. Recycled through a per-loop free list, its
// vectors and string keep their capacity from stream to stream.
struct Stream {
  int32_t id = 0;
  uint64_t started_ms = 0;
  // Header bytes (names and values) and where each piece lies in them.
  std::string storage;
  Span method, path, authority;
  bool has_authority = false;
  std::vector<std::pair<Span, Span>> fields;
  // Body pieces: slices of read buffers, gathered once at the end.
  std::vector<Bytes> parts;
  uint64_t body_size = 0;
  uint64_t held = 0;  // bytes in `parts`, counted in the connection's budget
  bool headers_done = false;
  bool answered = false;  // an answer was submitted; later input is dropped
  bool head = false;      // HEAD: answer without a body
  http2::RequestCheck check;
  http2::Body out;  // the answer's body; nghttp2 reads it until close
  // Links: every live stream of the connection, and the requests still
  // incomplete (oldest first, for the request timeout).
  Stream* live_prev = nullptr;
  Stream* live_next = nullptr;
  Stream* wait_prev = nullptr;
  Stream* wait_next = nullptr;
  bool waiting = false;
  Invocation* pending = nullptr;  // a waiting flare's invocation
  StreamWaiter waiter;

  std::string_view str(Span s) const noexcept { return {storage.data() + s.off, s.len}; }
  Span put(std::string_view s) {
    Span sp{static_cast<uint32_t>(storage.size()), static_cast<uint32_t>(s.size())};
    storage.append(s);
    return sp;
  }
  void clear() noexcept {
    id = 0;
    if (storage.capacity() > kKeptStorage) std::string().swap(storage);
    storage.clear();
    method = path = authority = {};
    has_authority = false;
    fields.clear();
    parts.clear();
    body_size = held = 0;
    headers_done = answered = head = waiting = false;
    check.reset();
    out.clear();
    live_prev = live_next = wait_prev = wait_next = nullptr;
    pending = nullptr;
    waiter = {};
  }
};

struct StreamPool {
  std::vector<Stream*> free;
  ~StreamPool() {
    for (Stream* s : free)
      delete s;
  }
};
thread_local StreamPool tls_streams;

Stream* take_stream() {
  if (tls_streams.free.empty()) return new Stream;
  Stream* s = tls_streams.free.back();
  tls_streams.free.pop_back();
  return s;
}

void give_stream(Stream* s) noexcept {
  s->clear();
  if (tls_streams.free.size() >= kPooledStreams) {
    delete s;
    return;
  }
  tls_streams.free.push_back(s);
}

http2::Settings session_settings(const Limits& l) {
  http2::Settings s;
  s.max_concurrent_streams = l.h2_max_concurrent_streams;
  s.max_header_list_size = static_cast<uint32_t>(std::min<size_t>(l.max_header_bytes, UINT32_MAX));
  s.max_header_count = static_cast<uint32_t>(std::min<size_t>(l.max_headers, UINT32_MAX));
  // Flares read whole bodies; per-stream windows need not exceed that.
  s.initial_window_size = static_cast<uint32_t>(std::clamp<uint64_t>(l.max_body, 65535, 16u << 20));
  // RFC 9113 §8 is checked here (RequestCheck), where the fields are read
  // anyway: nghttp2's own pass costs about a tenth of a small request.
  s.http_messaging = false;
  return s;
}

// Connection-specific fields (RFC 9113 8.2.2), and the ones the server
// writes itself: content-length and date.
bool dropped_from_answer(std::string_view lower) noexcept {
  return lower == "connection" || lower == "keep-alive" || lower == "transfer-encoding" ||
         lower == "upgrade" || lower == "proxy-connection" || lower == "te" ||
         lower == "content-length" || lower == "date";
}

bool has_upper(std::string_view s) noexcept {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return true;
  return false;
}

http2::ServerConnectionOptions connection_options(const Limits& l) {
  http2::ServerConnectionOptions o;
  o.log_target = kTarget;
  o.idle_timeout_ms = l.idle_timeout_ms;
  return o;
}

class H2Connection final : public http2::SessionConnection, private http2::SessionHandler {
 public:
  // Both bases have an on_data; keep the connection's in view beside the stream's.
  using http2::SessionConnection::on_data;
  H2Connection(LoopEdge& edge, std::unique_ptr<H2cUpgrade> upgrade)
      : SessionConnection(connection_options(edge.limits()), *this, session_settings(edge.limits()),
                          edge.loop.slab()),
        edge_(edge),
        upgrade_(std::move(upgrade)),
        body_budget_(std::max<uint64_t>(edge.limits().max_body, kMinConnectionBodyBudget)) {}

  ~H2Connection() override {
    // nghttp2_session_del() closes streams without callbacks.
    while (Stream* s = live_) {
      if (s->pending) edge_.abandon(s->pending);
      unlink(s);
      give_stream(s);
    }
  }

  // A waiting flare answered `s`: submit it and flush.
  void waiting_done(Stream& s) {
    Invocation* inv = std::exchange(s.pending, nullptr);
    --flares_waiting_;
    submit(s, LoopEdge::response(*inv), false);
    edge_.finish(inv);
    deadline_moved();  // back to the idle timeout when nothing else waits
    want_write();
  }

 private:
  // ---- the connection, for ServerConnection ----

  bool idle() const noexcept override { return live_ == nullptr; }

  void opened(Connection& conn) override {
    remote_ = conn.peer_address();
    scheme_ = conn.secure() ? "https" : "http";
    if (upgrade_) serve_upgrade(conn);
  }

  // The oldest incomplete request bounds the wait. A flare that waits on an
  // origin is not idleness: its own timeouts bound it, so the idle timeout
  // is pushed back while one does.
  uint64_t next_deadline_ms() const noexcept override {
    if (waiting_) return waiting_->started_ms + edge_.limits().body_timeout_ms;
    if (flares_waiting_) return edge_.loop.now_ms() + edge_.limits().idle_timeout_ms;
    return http2::kNoDeadline;
  }

  // Requests whose END_STREAM did not come in time: 408 each.
  void expire_streams(uint64_t now) override {
    uint64_t limit = edge_.limits().body_timeout_ms;
    while (Stream* s = waiting_) {
      if (now - s->started_ms < limit) break;
      EMBER_DEBUG(kTarget, "HTTP/2 request timed out", {"connection", connection()->id()},
                  {"stream", s->id});
      reject(*s, 408, "the request did not arrive in time\n");
    }
  }

  // ---- session events ----

  // A request's callbacks come one after another for the same stream (a
  // header each): remember the last lookup instead of asking nghttp2's map.
  Stream* stream_of(int32_t id) noexcept {
    if (id != recent_id_) {
      recent_id_ = id;
      recent_ = static_cast<Stream*>(session_.stream_data(id));
    }
    return recent_;
  }
  void set_stream(int32_t id, Stream* s) noexcept {
    session_.set_stream_data(id, s);
    recent_id_ = id;
    recent_ = s;
  }

  void on_headers_begin(int32_t id) override {
    if (stream_of(id)) return;  // trailers: checked, nothing in them for a flare
    Stream* s = take_stream();
    s->id = id;
    s->started_ms = edge_.loop.now_ms();
    set_stream(id, s);
    link(s);
    // Requests complete in stream order more often than not: append.
    s->waiting = true;
    s->wait_prev = waiting_tail_;
    if (waiting_tail_)
      waiting_tail_->wait_next = s;
    else
      waiting_ = s;
    waiting_tail_ = s;
  }

  void on_header(int32_t id, std::string_view name, std::string_view value) override {
    Stream* s = stream_of(id);
    if (!s || s->answered) return;
    if (s->headers_done) {
      if (const char* why = s->check.trailer(name, value)) refuse(*s, why);
      return;
    }
    if (const char* why = s->check.header(name, value)) return refuse(*s, why);
    if (name[0] == ':') {  // checked: :method, :path, :scheme or :authority, once
      switch (name[1]) {
        case 'm':
          s->method = s->put(value);
          s->head = s->check.is_head();
          break;
        case 'p':
          s->path = s->put(value);
          break;
        case 'a':
          s->authority = s->put(value);
          s->has_authority = true;
          break;
        default:
          break;
      }
      return;
    }
    Span n = s->put(name);
    s->fields.emplace_back(n, s->put(value));
  }

  void on_headers_end(int32_t id) override {
    Stream* s = stream_of(id);
    if (!s) return;
    if (s->headers_done) {  // trailers, checked field by field; they end the request
      if (!s->answered && !session_.block_ends_stream()) refuse(*s, "trailers without END_STREAM");
      return;
    }
    s->headers_done = true;
    if (s->answered) return;
    if (const char* why = s->check.end_headers()) return refuse(*s, why);
    // A declared length past the limit is refused before any byte comes.
    if (s->check.content_length() > static_cast<int64_t>(edge_.limits().max_body))
      reject(*s, 413, too_large_text());
  }

  bool on_header_limit(int32_t id) override {
    Stream* s = stream_of(id);
    if (!s) return false;
    if (s->answered) {  // refused as malformed (reset already) or answered early
      s->headers_done = true;
      return true;
    }
    if (s->headers_done) {
      s->answered = true;  // trailers: the session resets the stream; no flare runs
      return false;
    }
    s->headers_done = true;
    EMBER_DEBUG(kTarget, "HTTP/2 request headers over the limit", {"stream", id});
    reject(*s, 431,
           "request headers exceed the server's limit of " +
               std::to_string(edge_.limits().max_headers) + " fields or " +
               std::to_string(edge_.limits().max_header_bytes) + " bytes\n");
    return true;
  }

  void on_data(int32_t id, const Bytes& chunk) override {
    Stream* s = stream_of(id);
    if (!s || s->answered) return;
    if (const char* why = s->check.data(chunk.size())) return refuse(*s, why);
    s->body_size += chunk.size();
    if (s->body_size > edge_.limits().max_body) return reject(*s, 413, too_large_text());
    if (buffered_ + chunk.size() > body_budget_)
      return reject(*s, 503,
                    "this connection holds too many request bytes at once (" +
                        std::to_string(body_budget_) + "); retry the request\n");
    buffered_ += chunk.size();
    s->held += chunk.size();
    s->parts.push_back(chunk);
  }

  void on_remote_end(int32_t id) override {
    Stream* s = stream_of(id);
    if (!s || s->answered) return;
    if (const char* why = s->check.end_stream()) return refuse(*s, why);
    unwait(s);
    answer(*s);
  }

  void on_stream_close(int32_t id, uint32_t) override {
    Stream* s = stream_of(id);
    if (!s) return;
    set_stream(id, nullptr);
    // Streams can close while we write (nghttp2 resets one): the deadline,
    // which follows the oldest waiting request, must move with it.
    if (s == waiting_) deadline_moved();
    unwait(s);
    if (s->pending) {  // reset while its flare waits
      edge_.abandon(s->pending);
      s->pending = nullptr;
      --flares_waiting_;
    }
    drop_parts(*s);
    unlink(s);
    give_stream(s);
  }

  void on_body_end(int32_t) override {}

  // ---- answers ----

  std::string too_large_text() const {
    return "request body exceeds the server's limit of " + std::to_string(edge_.limits().max_body) +
           " bytes\n";
  }

  void answer(Stream& s) {
    Bytes body;
    if (s.parts.size() == 1) {
      body = std::move(s.parts[0]);
    } else if (!s.parts.empty()) {
      // Spread over frames or reads: gathered once into a pool buffer.
      MutableBuffer buf = edge_.loop.buffers().take(s.body_size);
      size_t at = 0;
      for (const Bytes& b : s.parts) {
        std::memcpy(buf.data() + at, b.data(), b.size());
        at += b.size();
      }
      body = std::move(buf).freeze(s.body_size);
    }
    drop_parts(s);

    Span cookie = join_cookies(s);
    std::string_view host = s.has_authority ? s.str(s.authority) : std::string_view();
    fields_.clear();
    bool cookie_done = false;
    for (auto& [n, v] : s.fields) {
      std::string_view name = s.str(n);
      if (cookie.len && name == "cookie") {
        if (!cookie_done) fields_.push_back({name, s.str(cookie)});
        cookie_done = true;
        continue;
      }
      fields_.push_back({name, s.str(v)});
      if (!s.has_authority && name == "host") host = fields_.back().value;
    }
    Request::Parts parts;
    parts.method = s.str(s.method);
    parts.url = s.str(s.path);
    parts.host = host;
    parts.scheme = scheme_;
    parts.protocol = "HTTP/2";
    parts.remote = remote_;
    parts.headers = fields_;
    parts.body = std::move(body);
    respond(s, Request(std::move(parts)));
  }

  // RFC 9113 8.2.3: a cookie split over several fields reaches a flare as
  // one, joined with "; ". Its span in the stream's storage, or empty when
  // there is at most one cookie field.
  static Span join_cookies(Stream& s) {
    size_t count = 0, bytes = 0;
    for (auto& [n, v] : s.fields)
      if (s.str(n) == "cookie") {
        ++count;
        bytes += v.len + 2;
      }
    if (count < 2) return {};
    s.storage.reserve(s.storage.size() + bytes);  // the views below stay valid
    Span joined{static_cast<uint32_t>(s.storage.size()), 0};
    bool first = true;
    for (auto& [n, v] : s.fields) {
      if (s.str(n) != "cookie") continue;
      if (!first) s.storage.append("; ");
      s.storage.append(s.str(v));
      first = false;
    }
    joined.len = static_cast<uint32_t>(s.storage.size() - joined.off);
    return joined;
  }

  void respond(Stream& s, const Request& request) {
    const Route* route = edge_.router()->match(request.host(), request.path());
    if (route && LoopEdge::waits(*route)) {
      s.waiter.conn = this;
      s.waiter.stream = &s;
      Invocation* inv = edge_.start(*route, request, s.waiter);
      if (!inv) {
        Response busy(edge_.scratch());
        edge_.busy_response(busy);
        submit(s, busy, false);
        edge_.finish();
        return;
      }
      if (!LoopEdge::done(*inv)) {
        s.pending = inv;  // answered in waiting_done()
        ++flares_waiting_;
        return;
      }
      submit(s, LoopEdge::response(*inv), false);
      edge_.finish(inv);
      return;
    }
    Response response(edge_.scratch());
    edge_.invoke(route, request, response);
    submit(s, response, false);
    edge_.finish();
  }

  // A malformed request (RFC 9113 §8.1.1): RST_STREAM PROTOCOL_ERROR, no
  // answer, no flare; the connection and its other streams go on.
  void refuse(Stream& s, const char* why) {
    EMBER_DEBUG(kTarget, "malformed HTTP/2 request; stream reset",
                {"connection", connection()->id()}, {"stream", s.id}, {"reason", why});
    unwait(&s);
    drop_parts(s);
    s.answered = true;
    session_.submit_rst_stream(s.id, NGHTTP2_PROTOCOL_ERROR);
  }

  // An answer of the server's own (no flare): 408, 413, 431, 503. The client
  // may still be sending; the reset after the answer stops it.
  void reject(Stream& s, int status, std::string_view text) {
    unwait(&s);
    drop_parts(s);
    Response response(edge_.scratch());
    try {
      edge_.error_response(response, status, text);
    } catch (const std::exception&) {
      response.reset();
      response.set_status(status);
    }
    submit(s, response, true);
    edge_.finish();
  }

  void submit(Stream& s, const Response& response, bool reset_after) {
    s.answered = true;
    int status = response.status();
    if (status < 200) status = 500;  // run_flare answers 500 for these; stay safe anyway
    bool bodyless = s.head || status == 204 || status == 304;
    // A small body rides inline in the stream's Body (copied now, before the
    // arena is reset) instead of in a pool buffer.
    const Bytes& raw = response.body_bytes();
    bool inline_body = !bodyless && !raw.empty() && raw.size() <= http2::Body::kMaxHead;
    Bytes body = bodyless || inline_body ? Bytes() : edge_.stable_body(response);
    size_t body_size = inline_body ? raw.size() : body.size();

    // HEAD: the length a GET would get.
    char length_text[24];
    auto lr = std::to_chars(length_text, length_text + sizeof length_text,
                            s.head ? LoopEdge::head_length(response) : body_size);
    std::string_view length(length_text, static_cast<size_t>(lr.ptr - length_text));

    std::span<const HeaderField> in = response.headers();
    size_t lower_bytes = 0;
    for (const HeaderField& f : in)
      if (has_upper(f.name)) lower_bytes += f.name.size();
    lower_.clear();
    lower_.reserve(lower_bytes);  // no reallocation below: views stay valid
    out_headers_.clear();
    out_headers_.push_back({":status", http2::status_digits(status), true});
    // RFC 9110 6.6.1. The loop thread's date text outlives the frame: when the
    // second changes it is rewritten in place, still a valid date.
    out_headers_.push_back({"date", http1::http_date_now(), true});
    for (const HeaderField& f : in) {
      std::string_view name = f.name;
      if (has_upper(name)) {
        size_t at = lower_.size();
        for (char c : name)
          lower_.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
        name = std::string_view(lower_).substr(at, name.size());
      }
      if (dropped_from_answer(name)) continue;
      out_headers_.push_back({name, f.value});
    }
    if (status != 204 && status != 304)
      out_headers_.push_back({"content-length", length, false, true});

    http2::Body* provider = nullptr;
    if (inline_body) {
      s.out.reset(raw.span(), Bytes());
      s.out.reset_after = reset_after;
      provider = &s.out;
    } else if (!bodyless && !body.empty()) {
      s.out.reset({}, std::move(body));
      s.out.reset_after = reset_after;
      provider = &s.out;
    } else if (reset_after) {
      // The reset must follow the answer: an empty body carries the flag.
      s.out.reset({}, Bytes());
      s.out.reset_after = true;
      provider = &s.out;
    }
    int rv = session_.submit_response(s.id, out_headers_, provider);
    if (rv != 0)
      EMBER_DEBUG(kTarget, "HTTP/2 answer not submitted", {"stream", s.id},
                  {"error", nghttp2_strerror(rv)});
  }

  // h2c: the HTTP/1.1 request that asked for the upgrade is stream 1.
  void serve_upgrade(Connection& conn) {
    std::unique_ptr<H2cUpgrade> up = std::move(upgrade_);
    Result<void> r = session_.upgrade(up->settings, up->head_request);
    if (!r) {
      EMBER_DEBUG(kTarget, "h2c upgrade failed; closing", {"connection", conn.id()},
                  {"reason", r.error().message});
      abandon(NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    Stream* s = take_stream();
    s->id = 1;
    s->started_ms = edge_.loop.now_ms();
    s->headers_done = true;
    s->head = up->head_request;
    set_stream(1, s);
    link(s);
    up->request.protocol = "HTTP/2";
    respond(*s, up->request.view());
  }

  // ---- bookkeeping ----

  void link(Stream* s) noexcept {
    s->live_next = live_;
    if (live_) live_->live_prev = s;
    live_ = s;
  }
  void unlink(Stream* s) noexcept {
    if (s->live_prev)
      s->live_prev->live_next = s->live_next;
    else if (live_ == s)
      live_ = s->live_next;
    if (s->live_next) s->live_next->live_prev = s->live_prev;
    s->live_prev = s->live_next = nullptr;
  }
  void unwait(Stream* s) noexcept {
    if (!s->waiting) return;
    s->waiting = false;
    if (s->wait_prev)
      s->wait_prev->wait_next = s->wait_next;
    else
      waiting_ = s->wait_next;
    if (s->wait_next)
      s->wait_next->wait_prev = s->wait_prev;
    else
      waiting_tail_ = s->wait_prev;
    s->wait_prev = s->wait_next = nullptr;
  }
  void drop_parts(Stream& s) noexcept {
    s.parts.clear();
    buffered_ -= s.held;
    s.held = 0;
  }

  LoopEdge& edge_;
  std::unique_ptr<H2cUpgrade> upgrade_;
  std::string remote_;
  std::string_view scheme_ = "http";
  Stream* live_ = nullptr;
  int32_t recent_id_ = 0;  // stream_of()'s last answer (0: none; no stream has id 0)
  Stream* recent_ = nullptr;
  Stream* waiting_ = nullptr;
  Stream* waiting_tail_ = nullptr;
  uint64_t buffered_ = 0;      // body bytes held by incomplete requests
  size_t flares_waiting_ = 0;  // streams whose flare waits on an origin
  uint64_t body_budget_;
  // Per-connection scratch, reused by every answer.
  std::vector<HeaderField> fields_;
  std::vector<Header> out_headers_;
  std::string lower_;
};

void StreamWaiter::invocation_done() {
  conn->waiting_done(*stream);
}

}  // namespace

std::unique_ptr<ConnectionHandler> make_h2_connection(LoopEdge& edge,
                                                      std::unique_ptr<H2cUpgrade> upgrade) {
  return std::make_unique<H2Connection>(edge, std::move(upgrade));
}

}  // namespace ember::flare::detail
