#include "protocols/http/h2_client.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>

#include "core/tls.hpp"
#include "ember/log.hpp"
#include "protocols/http2/session.hpp"

namespace ember::http {

using http1::Field;

namespace {
// A server that answers a few streams per connection (GOAWAY after N
// requests) refuses the rest of a burst; each goes again, this many times.
constexpr uint8_t kMaxRetries = 8;
}  // namespace

// One request and its stream, recycled through the client's free list (the
// strings keep their capacity).
struct H2RequestHandle::Req {
  H2Client* client = nullptr;
  uint64_t gen = 0;
  bool live = false;
  http1::ClientHandler* handler = nullptr;
  H2Client::Origin* origin = nullptr;
  H2Client::Pipe* pipe = nullptr;
  int32_t stream = 0;
  // The session still has the stream (and may read h2body): a released Req
  // waits for the stream's close before it is reused.
  H2Client::Pipe* session_pipe = nullptr;
  bool zombie = false;
  Req* prev = nullptr;  // the pipe's list, or the free list (next only)
  Req* next = nullptr;

  std::string method;
  std::string url;
  std::string path;
  std::string field_store;          // lower-cased names and values, back to back
  std::vector<uint32_t> field_pos;  // name off, name len, value off, value len
  Bytes body;
  http1::BodySource source;
  bool streaming = false;
  uint64_t sent = 0;
  http2::Body h2body;
  uint8_t retries = 0;  // after REFUSED_STREAM
  bool head_method = false;
  std::vector<http2::Header> hdrs;  // built at submit (nghttp2 copies them)
  char length_text[24];
  bool reset_here = false;    // nghttp2 reset the stream: the response broke the rules
  bool sent_headers = false;  // set when its connection closes (see pipe_closed)

  // The response.
  int status = 0;
  bool head_done = false;
  std::string rstore;
  std::vector<uint32_t> rpos;
  std::vector<Field> rfields;
  uint64_t received = 0;
  bool paused = false;
  bool ended = false;       // the server ended its side (held while paused)
  std::vector<Bytes> held;  // read while paused, delivered on resume
  TimerEntry progress;      // head timeout, then the longest silence
  TimerEntry deadline;      // request_timeout
};

struct H2Client::Origin {
  bool https = false;
  std::string host;
  uint16_t port = 0;
  std::string authority;
  Pipe* pipe = nullptr;  // the connection new requests go to
};

// A connection and its session. Owned by the client; its Link (owned by the
// core) points back while both live.
struct H2Client::Pipe final : http2::SessionHandler {
  Pipe(H2Client& c, Origin& o, const http2::Settings& s)
      : client(c), origin(&o), session(http2::Role::client, *this, s, c.loop_.slab()) {}

  H2Client& client;
  Origin* origin;
  http2::Session session;
  Link* link = nullptr;
  bool open = false;     // on_open seen
  bool retired = false;  // no new streams (GOAWAY either way, or failure)
  Req* head = nullptr;   // requests on this connection
  size_t streams = 0;
  size_t paused = 0;  // streams whose response is paused
  TimerEntry idle;

  void add(Req* r) noexcept {
    r->pipe = this;
    r->prev = nullptr;
    r->next = head;
    if (head) head->prev = r;
    head = r;
    ++streams;
    client.loop_.cancel(idle);
  }
  void remove(Req* r) noexcept {
    if (r->prev) r->prev->next = r->next;
    if (r->next) r->next->prev = r->prev;
    if (head == r) head = r->next;
    r->prev = r->next = nullptr;
    r->pipe = nullptr;
    if (r->paused && paused > 0 && --paused == 0) pause_reading(false);
    --streams;
    if (streams == 0) went_quiet();
  }
  // Requests still waiting for their answer (not those complete but held
  // for a paused consumer).
  bool unfinished() const noexcept {
    for (Req* r = head; r; r = r->next)
      if (!r->ended) return true;
    return false;
  }
  void want_write() noexcept;
  void went_quiet() noexcept;
  void pause_reading(bool on) noexcept;

  Req* req(int32_t stream) const noexcept {
    auto* r = static_cast<Req*>(session.stream_data(stream));
    return r && r->live ? r : nullptr;
  }

  // ---- SessionHandler ----
  void on_headers_begin(int32_t stream) override {
    if (Req* r = req(stream); r && !r->head_done) {
      r->status = 0;
      r->rstore.clear();
      r->rpos.clear();
    }
  }
  void on_header(int32_t stream, std::string_view name, std::string_view value) override {
    Req* r = req(stream);
    if (!r || r->head_done) return;  // trailers are not delivered
    if (name == ":status") {
      int st = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), st);
      if (ec == std::errc() && end == value.data() + value.size() && value.size() == 3)
        r->status = st;
      return;
    }
    if (name.starts_with(':')) return;
    r->rpos.push_back(static_cast<uint32_t>(r->rstore.size()));
    r->rpos.push_back(static_cast<uint32_t>(name.size()));
    r->rstore.append(name);
    r->rpos.push_back(static_cast<uint32_t>(r->rstore.size()));
    r->rpos.push_back(static_cast<uint32_t>(value.size()));
    r->rstore.append(value);
  }
  void on_headers_end(int32_t stream) override;
  bool on_header_limit(int32_t stream) override {
    Req* r = req(stream);
    if (!r) return false;  // the session resets the stream
    client.fail(
        r,
        "response head over " + std::to_string(client.options_.max_response_head_bytes) + " bytes",
        -EMSGSIZE);
    return true;  // fail() reset it
  }
  void on_data(int32_t stream, const Bytes& chunk) override;
  void on_remote_end(int32_t stream) override;
  void on_stream_close(int32_t stream, uint32_t error_code) override;
  void on_body_end(int32_t) override {}
  void on_reset_sent(int32_t stream, uint32_t) override {
    // Ours go out after the request was released; a live one is nghttp2's
    // verdict on the server's frames for this stream.
    if (Req* r = req(stream)) r->reset_here = true;
  }
  void on_body_drained(int32_t stream) override;
};

// The connection's handler, owned by the core; outlives its pipe when the
// client closes first.
class H2Client::Link final : public ConnectionHandler {
 public:
  explicit Link(Pipe* p) : pipe_(p) {}
  void detach() noexcept {
    pipe_ = nullptr;
    if (conn_) conn_->abort();
  }
  Connection* conn() const noexcept { return conn_; }

  void on_open(Connection& conn) override {
    conn_ = &conn;
    if (!pipe_) return conn.abort();
    if (conn.secure() && conn.alpn() != "h2") {
      failure_ =
          "the server does not speak HTTP/2 (ALPN chose \"" + std::string(conn.alpn()) + "\")";
      code_ = -EPROTONOSUPPORT;
      return conn.abort();
    }
    pipe_->open = true;
    if (pipe_->paused > 0) conn.pause_reading();  // a consumer paused while we connected
    conn.want_write();
  }
  void on_data(Connection& conn, const Bytes& data) override {
    if (!pipe_ || !failure_.empty()) return;
    Result<void> r = pipe_->session.feed(data);
    if (!pipe_) return;
    if (!r) {
      failure_ = r.error().message;
      code_ = -EPROTO;
    }
    if (pipe_->session.peer_goaway()) retire();
    conn.want_write();
  }
  void on_writable(Connection& conn, IoChain& out) override {
    if (!pipe_) return conn.close();
    Result<void> r = pipe_->session.produce(out);
    if (!r && failure_.empty()) {
      failure_ = r.error().message;
      code_ = -EPROTO;
    }
    if (failure_.empty() && !pipe_->session.alive() && pipe_->unfinished()) {
      // nghttp2 ended the session itself (GOAWAY with an error code): the
      // server's frames broke the protocol (a frame over our size, ...).
      failure_ = "HTTP/2 protocol error: the server's frames broke the protocol";
      code_ = -EPROTO;
    }
    if (!failure_.empty() || (pipe_->retired && pipe_->streams == 0) || !pipe_->session.alive())
      return conn.close();
    if (!out.empty() && pipe_->session.wants_write()) conn.want_write();
  }
  void on_drain(Connection& conn) override {
    if (!pipe_ || pipe_->streams == 0) return conn.close();
    retire();  // the loop stops: let the streams in flight finish
    pipe_->session.submit_goaway();
    conn.want_write();
  }
  void on_close(Connection& conn, int error) override {
    conn_ = nullptr;
    if (!pipe_) return;
    std::string reason = failure_;
    int code = code_;
    if (reason.empty()) {
      if (!conn.error_text().empty())
        reason = conn.error_text();
      else if (error != 0)
        reason = describe_errno(error);
      else
        reason = "the server closed the connection";
      code = error != 0 ? error : -ECONNRESET;
      if (!pipe_->open) code = error != 0 ? error : -ECONNREFUSED;
    }
    Pipe* p = pipe_;
    pipe_ = nullptr;
    p->client.pipe_closed(p, std::move(reason), code);
  }

 private:
  void retire() noexcept {
    pipe_->retired = true;
    if (pipe_->origin->pipe == pipe_) pipe_->origin->pipe = nullptr;
  }

  Pipe* pipe_;
  Connection* conn_ = nullptr;
  std::string failure_;
  int code_ = 0;
};

void H2Client::Pipe::want_write() noexcept {
  if (link && link->conn() && open) link->conn()->want_write();
}

void H2Client::Pipe::went_quiet() noexcept {
  if (retired) return want_write();  // on_writable closes it
  client.loop_.arm(idle, static_cast<uint64_t>(client.options_.idle_timeout.count()));
}

void H2Client::Pipe::pause_reading(bool on) noexcept {
  if (!link || !link->conn()) return;
  if (on)
    link->conn()->pause_reading();
  else
    link->conn()->resume_reading();
}

void H2Client::Pipe::on_headers_end(int32_t stream) {
  Req* r = req(stream);
  if (!r || r->head_done) return;
  if (r->status == 0) return client.fail(r, "invalid response: no valid :status", -EPROTO);
  if (r->status < 200) return;  // interim: the final head follows
  r->head_done = true;
  r->rfields.clear();
  for (size_t i = 0; i + 3 < r->rpos.size(); i += 4)
    r->rfields.push_back({std::string_view(r->rstore).substr(r->rpos[i], r->rpos[i + 1]),
                          std::string_view(r->rstore).substr(r->rpos[i + 2], r->rpos[i + 3])});
  http1::ResponseHead head;
  head.version = http1::Version::http2;
  head.status = r->status;
  head.fields = r->rfields;
  head.has_body = !r->head_method && r->status != 204 && r->status != 304;
  if (auto cl = head.field("content-length")) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
    if (ec == std::errc() && end == cl->data() + cl->size()) head.content_length = n;
  }
  if (head.has_body && head.content_length &&
      *head.content_length > client.options_.max_response_body_bytes)
    return client.fail(r,
                       "response body of " + std::to_string(*head.content_length) +
                           " bytes is over the limit of " +
                           std::to_string(client.options_.max_response_body_bytes),
                       -EMSGSIZE);
  client.loop_.arm(r->progress,
                   static_cast<uint64_t>(client.options_.response_head_timeout.count()));
  r->handler->on_head(head);
}

void H2Client::Pipe::on_data(int32_t stream, const Bytes& chunk) {
  Req* r = req(stream);
  if (!r || !r->head_done) return;
  r->received += chunk.size();
  if (r->received > client.options_.max_response_body_bytes)
    return client.fail(r,
                       "response body over the limit of " +
                           std::to_string(client.options_.max_response_body_bytes) + " bytes",
                       -EMSGSIZE);
  if (r->paused) {  // held; the silence timer waits for the resume
    r->held.push_back(chunk);
    return;
  }
  client.loop_.arm(r->progress,
                   static_cast<uint64_t>(client.options_.response_head_timeout.count()));
  uint64_t gen = r->gen;
  if (r->handler->on_body(chunk) == http1::Action::pause && r->live && r->gen == gen)
    client.pause(r);
}

void H2Client::Pipe::on_remote_end(int32_t stream) {
  Req* r = req(stream);
  if (!r) return;
  if (!r->head_done)
    return client.fail(r, "the server ended the stream without a response", -EPROTO);
  r->ended = true;
  if (r->paused) {  // resume() completes it; nothing more to wait for
    client.loop_.cancel(r->progress);
    return;
  }
  client.complete(r);
}

void H2Client::Pipe::on_stream_close(int32_t stream, uint32_t error_code) {
  auto* r = static_cast<Req*>(session.stream_data(stream));
  if (!r) return;
  r->session_pipe = nullptr;
  if (r->zombie) return client.recycle(r);
  if (!r->live || r->ended) return;  // complete, held for a paused consumer
  bool replayable = !r->streaming || (r->source.rewind && r->source.rewind());
  if (error_code == NGHTTP2_REFUSED_STREAM && !r->head_done && r->retries < kMaxRetries &&
      replayable) {
    // Not processed (RFC 9113 §8.7): again, on a connection that takes it.
    ++r->retries;
    retired = true;  // a server that refuses streams gets no new ones here
    if (origin->pipe == this) origin->pipe = nullptr;
    remove(r);
    r->stream = 0;
    r->sent = 0;
    return client.submit(r);
  }
  if (r->reset_here)
    return client.fail(r,
                       std::string("invalid response (the stream was reset: ") +
                           nghttp2_http2_strerror(error_code) +
                           "): its frames or fields break HTTP/2's rules",
                       -EPROTO);
  client.fail(
      r,
      error_code == NGHTTP2_NO_ERROR
          ? std::string("the server closed the stream before the response ended")
          : std::string("stream reset by the server: ") + nghttp2_http2_strerror(error_code),
      -ECONNRESET);
}

void H2Client::Pipe::on_body_drained(int32_t stream) {
  Req* r = req(stream);
  if (!r || !r->streaming) return;
  http1::BodyChunk c = r->source.pull();
  switch (c.kind) {
    case http1::BodyChunk::Kind::data:
      r->sent += c.bytes.size();
      r->h2body.reset({}, std::move(c.bytes));
      r->h2body.open = true;
      break;
    case http1::BodyChunk::Kind::wait:
      break;
    case http1::BodyChunk::Kind::end:
      if (r->source.length && *r->source.length != r->sent) {
        client.fail(r,
                    "the body source produced " + std::to_string(r->sent) + " bytes, not the " +
                        std::to_string(*r->source.length) + " it announced",
                    -EINVAL);
        return;
      }
      r->h2body.open = false;
      break;
  }
}

// ---- the client ---------------------------------------------------------------

H2RequestHandle::Req* H2RequestHandle::live() const noexcept {
  return req_ && req_->live && req_->gen == gen_ ? req_ : nullptr;
}
bool H2RequestHandle::active() const noexcept {
  return live() != nullptr;
}
void H2RequestHandle::cancel() noexcept {
  if (Req* r = live()) client_->cancel(r);
}
void H2RequestHandle::pause_response() noexcept {
  if (Req* r = live()) client_->pause(r);
}
void H2RequestHandle::resume_response() noexcept {
  if (Req* r = live()) client_->resume(r);
}
void H2RequestHandle::resume_upload() noexcept {
  Req* r = live();
  if (r && r->pipe && r->stream > 0) {
    r->pipe->session.resume_data(r->stream);
    r->pipe->want_write();
  }
}

H2Client::H2Client(Loop& loop, Options options) : loop_(loop), options_(std::move(options)) {}

H2Client::~H2Client() {
  for (auto& r : reqs_) {
    loop_.cancel(r->progress);
    loop_.cancel(r->deadline);
    r->live = false;
  }
  for (auto& p : pipes_) {
    loop_.cancel(p->idle);
    if (p->link) p->link->detach();
  }
}

Result<H2RequestHandle> H2Client::request(http1::ClientRequest q, http1::ClientHandler& handler) {
  http1::ParsedUrl u;
  if (auto ok = http1::check_request(q, u); !ok) return ok.error();  // the HTTP/1.1 client's rules
  if (u.https && !options_.tls) {
    tls::ClientConfig config;
    config.alpn = {"h2", "http/1.1"};
    auto ctx = tls::ClientContext::create(std::move(config));
    if (!ctx)
      return Error(std::string(q.method) + " " + std::string(q.url) + ": " + ctx.error().message,
                   -EINVAL);
    options_.tls = std::move(*ctx);
  }

  Req* r = take_req();
  r->handler = &handler;
  r->method.assign(q.method);
  r->head_method = q.method == "HEAD";
  r->url.assign(q.url);
  r->path.clear();
  if (u.target.empty() || u.query_only) r->path.push_back('/');
  r->path.append(u.target);
  r->field_store.clear();
  r->field_pos.clear();
  for (const Field& f : q.headers) {
    // Connection-specific fields have no meaning in HTTP/2 (RFC 9113 §8.2.2).
    if (http1::iequals(f.name, "connection") || http1::iequals(f.name, "keep-alive") ||
        http1::iequals(f.name, "proxy-connection") || http1::iequals(f.name, "upgrade") ||
        (http1::iequals(f.name, "te") && !http1::iequals(f.value, "trailers")))
      continue;
    r->field_pos.push_back(static_cast<uint32_t>(r->field_store.size()));
    r->field_pos.push_back(static_cast<uint32_t>(f.name.size()));
    for (char c : f.name)
      r->field_store.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    r->field_pos.push_back(static_cast<uint32_t>(r->field_store.size()));
    r->field_pos.push_back(static_cast<uint32_t>(f.value.size()));
    r->field_store.append(f.value);
  }
  r->streaming = static_cast<bool>(q.source.pull);
  if (r->streaming) {
    r->source = std::move(q.source);
    r->body = {};
  } else {
    r->body = std::move(q.body);
  }
  r->origin = &origin_for(u.https, u.host, u.port);
  if (r->origin->authority.empty()) r->origin->authority.assign(u.host_header);
  if (options_.request_timeout.count() > 0)
    loop_.arm(r->deadline, static_cast<uint64_t>(options_.request_timeout.count()));
  H2RequestHandle h(this, r, r->gen);
  submit(r);
  return h;
}

H2RequestHandle::Req* H2Client::take_req() {
  Req* r = free_;
  if (r) {
    free_ = r->next;
  } else {
    reqs_.push_back(std::make_unique<Req>());
    r = reqs_.back().get();
    r->client = this;
    r->progress.fire = r->deadline.fire = &H2Client::on_req_timer;
    r->progress.context = r->deadline.context = r;
  }
  r->next = r->prev = nullptr;
  r->gen = next_gen_++;
  r->live = true;
  r->pipe = r->session_pipe = nullptr;
  r->zombie = false;
  r->stream = 0;
  r->sent = 0;
  r->retries = 0;
  r->head_done = r->paused = r->ended = r->reset_here = r->sent_headers = false;
  r->status = 0;
  r->received = 0;
  return r;
}

void H2Client::release(Req* r) noexcept {
  loop_.cancel(r->progress);
  loop_.cancel(r->deadline);
  r->live = false;
  r->handler = nullptr;
  r->body = {};
  r->source = {};
  r->h2body.clear();
  r->h2body.open = false;
  r->held.clear();
  if (r->session_pipe) {
    r->zombie = true;  // recycled when its stream closes
    return;
  }
  recycle(r);
}

void H2Client::recycle(Req* r) noexcept {
  r->zombie = false;
  r->next = free_;
  free_ = r;
}

void H2Client::complete(Req* r) {
  // The answer came before our body was all sent (an early 413, 404): stop
  // sending, or the half-open stream would hold one of the server's slots.
  if (Pipe* sp = r->session_pipe; sp && sp->session.local_open(r->stream)) {
    sp->session.submit_rst_stream(r->stream, NGHTTP2_NO_ERROR);
    sp->want_write();
  }
  if (Pipe* p = r->pipe) p->remove(r);
  http1::ClientHandler* h = r->handler;
  release(r);
  h->on_complete();
}

H2Client::Origin& H2Client::origin_for(bool https, std::string_view host, uint16_t port) {
  for (auto& o : origins_)
    if (o->https == https && o->port == port && o->host == host) return *o;
  auto o = std::make_unique<Origin>();
  o->https = https;
  o->host.assign(host);
  o->port = port;
  origins_.push_back(std::move(o));
  return *origins_.back();
}

H2Client::Pipe& H2Client::pipe_for(Origin& o) {
  if (o.pipe) return *o.pipe;
  http2::Settings s;
  s.max_concurrent_streams = 100;  // the server may not push: nothing comes our way
  s.initial_window_size = options_.stream_window;
  s.connection_window_size = options_.connection_window;
  s.max_header_list_size = static_cast<uint32_t>(options_.max_response_head_bytes);
  s.max_frame_size = 1u << 16;
  s.max_unanswered_resets = 0;
  pipes_.push_back(std::make_unique<Pipe>(*this, o, s));
  Pipe* p = pipes_.back().get();
  p->idle.context = p;
  p->idle.fire = [](TimerEntry* t) {
    auto* pipe = static_cast<Pipe*>(t->context);
    pipe->retired = true;
    if (pipe->origin->pipe == pipe) pipe->origin->pipe = nullptr;
    pipe->session.submit_goaway();
    if (pipe->link && pipe->link->conn()) {
      if (pipe->open)
        pipe->link->conn()->want_write();  // on_writable sends the GOAWAY and closes
      else
        pipe->link->conn()->abort();
    }
  };
  o.pipe = p;
  return *p;
}

void H2Client::connect(Pipe& p) {
  auto link = std::make_unique<Link>(&p);
  p.link = link.get();
  ConnectOptions co;
  co.timeout = options_.connect_timeout;
  if (p.origin->https) co.tls = options_.tls;
  // A connection that fails at once reports it through on_close, from here.
  loop_.connect(p.origin->host, p.origin->port, std::move(link), std::move(co));
}

void H2Client::submit(Req* r) {
  Pipe& p = pipe_for(*r->origin);
  // The record's own vector and buffer (capacity kept): no allocation here.
  std::vector<http2::Header>& hdrs = r->hdrs;
  hdrs.clear();
  hdrs.push_back({":method", r->method});
  hdrs.push_back({":scheme", r->origin->https ? "https" : "http", true});
  hdrs.push_back({":authority", r->origin->authority});
  hdrs.push_back({":path", r->path});
  bool wants_length = r->method == "POST" || r->method == "PUT" || r->method == "PATCH";
  std::optional<uint64_t> length;
  if (r->streaming)
    length = r->source.length;
  else if (!r->body.empty() || wants_length)
    length = r->body.size();
  if (length) {
    auto [end, ec] = std::to_chars(r->length_text, r->length_text + sizeof r->length_text, *length);
    (void)ec;
    hdrs.push_back({"content-length", std::string_view(r->length_text, end - r->length_text)});
  }
  std::string_view store = r->field_store;
  for (size_t i = 0; i + 3 < r->field_pos.size(); i += 4)
    hdrs.push_back({store.substr(r->field_pos[i], r->field_pos[i + 1]),
                    store.substr(r->field_pos[i + 2], r->field_pos[i + 3])});
  http2::Body* body = nullptr;
  if (r->streaming) {
    r->h2body.reset({}, {});
    r->h2body.open = true;
    body = &r->h2body;
  } else if (!r->body.empty()) {
    r->h2body.reset({}, r->body);
    body = &r->h2body;
  }
  int32_t id = p.session.submit_request(hdrs, body, r);
  if (id < 0 && p.streams + (p.link ? 1 : 0) > 0 && !fresh_retry_) {
    // This connection takes no more streams (ids used up, or going away):
    // it finishes what it has; the request goes to a new one.
    p.retired = true;
    if (r->origin->pipe == &p) r->origin->pipe = nullptr;
    if (p.streams == 0) p.want_write();  // on_writable closes it
    fresh_retry_ = true;
    submit(r);
    fresh_retry_ = false;
    return;
  }
  if (id < 0) {
    fail(r, std::string("cannot open a stream: ") + nghttp2_strerror(id), -EIO);
    return;
  }
  r->stream = id;
  r->session_pipe = &p;
  p.add(r);
  loop_.arm(r->progress, static_cast<uint64_t>(options_.response_head_timeout.count()));
  if (!p.link)
    connect(p);  // may fail at once: then r has had its on_error
  else
    p.want_write();
}

void H2Client::fail(Req* r, std::string what, int code) {
  if (!r->live) return;
  drop(r);
  http1::ClientHandler* h = r->handler;
  Error e(r->method + " " + r->url + ": " + what, code);
  release(r);
  h->on_error(e);
}

void H2Client::drop(Req* r) noexcept {
  if (r->session_pipe) {
    r->session_pipe->session.submit_rst_stream(r->stream, NGHTTP2_CANCEL);
    r->session_pipe->want_write();
  }
  if (Pipe* p = r->pipe) p->remove(r);
}

void H2Client::cancel(Req* r) noexcept {
  drop(r);
  release(r);
}

void H2Client::pause(Req* r) noexcept {
  if (r->paused) return;
  r->paused = true;  // also without a connection: held data waits for resume()
  if (r->pipe && r->pipe->paused++ == 0) r->pipe->pause_reading(true);
  loop_.cancel(r->progress);
}

void H2Client::resume(Req* r) {
  if (!r->paused) return;
  r->paused = false;
  Pipe* p = r->pipe;
  if (p && p->paused > 0 && --p->paused == 0) p->pause_reading(false);
  uint64_t gen = r->gen;
  size_t i = 0;
  // What was read meanwhile, in order, until the consumer pauses again.
  for (; i < r->held.size(); ++i) {
    http1::Action a = r->handler->on_body(r->held[i]);
    if (!r->live || r->gen != gen) return;
    if (a == http1::Action::pause) {
      r->held.erase(r->held.begin(), r->held.begin() + static_cast<ptrdiff_t>(i + 1));
      return pause(r);
    }
  }
  r->held.clear();
  if (r->ended) return complete(r);
  loop_.arm(r->progress, static_cast<uint64_t>(options_.response_head_timeout.count()));
}

void H2Client::pipe_closed(Pipe* p, std::string reason, int code) noexcept {
  loop_.cancel(p->idle);
  p->link = nullptr;
  p->retired = true;
  if (p->origin->pipe == p) p->origin->pipe = nullptr;
  // The session goes with the pipe: its streams are over. nghttp2 opens a
  // stream only when its HEADERS go out: a live request whose stream it
  // never opened was not sent.
  for (auto& r : reqs_)
    if (r->session_pipe == p) {
      if (r->live && p->session.stream_data(r->stream) != nullptr) r->sent_headers = true;
      r->session_pipe = nullptr;
      if (r->zombie) recycle(r.get());
    }
  bool opened = p->open;
  // Requests never sent (queued behind the server's stream limit) go again
  // on a new connection; the rest fail (for -EPROTONOSUPPORT the caller may
  // go elsewhere); one complete but held for a paused consumer ends when it
  // resumes.
  std::vector<std::pair<Req*, uint64_t>> again;  // with its generation: callbacks
  while (Req* r = p->head) {                     // below may cancel and reuse it
    p->remove(r);
    if (r->ended) continue;
    if (opened && !r->sent_headers && !r->head_done && r->retries < kMaxRetries &&
        (!r->streaming || r->sent == 0)) {
      again.emplace_back(r, r->gen);
      continue;
    }
    r->stream = 0;
    fail(r, opened ? "connection lost: " + reason : reason, code);
  }
  for (auto [r, gen] : again) {
    if (!r->live || r->gen != gen) continue;
    ++r->retries;
    r->stream = 0;
    submit(r);
  }
  for (auto it = pipes_.begin(); it != pipes_.end(); ++it)
    if (it->get() == p) {
      pipes_.erase(it);
      break;
    }
}

void H2Client::on_req_timer(TimerEntry* t) {
  auto* r = static_cast<Req*>(t->context);
  H2Client* c = r->client;
  bool whole = t == &r->deadline;
  auto ms = whole ? c->options_.request_timeout : c->options_.response_head_timeout;
  c->fail(r,
          "timed out after " + std::to_string(ms.count()) + " ms " +
              (whole          ? "(the whole request)"
               : r->head_done ? "of silence while the response body arrived"
                              : "waiting for the response head"),
          -ETIMEDOUT);
}

}  // namespace ember::http
