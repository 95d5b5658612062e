#include "protocols/http1/client.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <future>

#include "core/tls.hpp"
#include "protocols/http1/writer.hpp"

namespace ember::http1 {

// One request, recycled through the client's free list: the strings keep
// their capacity, so a steady stream of requests allocates nothing here.
struct RequestHandle::Req {
  Client* client = nullptr;
  uint64_t gen = 0;
  bool live = false;
  ClientHandler* handler = nullptr;
  Client::Origin* origin = nullptr;
  Client::Conn* conn = nullptr;
  Req* prev = nullptr;  // origin queue, or the free list (next only)
  Req* next = nullptr;
  bool queued = false;

  std::string method;
  Method m = Method::get;
  std::string url;
  std::string target;
  std::string field_store;          // names and values, back to back
  std::vector<uint32_t> field_pos;  // name off, name len, value off, value len
  std::vector<Field> fields;        // views into field_store, built when writing

  Bytes body;
  BodySource source;
  bool streaming = false;
  BodyFraming framing;

  bool retried = false;
  bool response_paused = false;
  TimerEntry deadline;
};

struct Client::Origin {
  bool https = false;
  std::string host;  // as in the URL, without IPv6 brackets
  uint16_t port = 0;
  std::string host_header;  // Host field: host[:port] (brackets kept)
  size_t open = 0;          // connections open or opening
  std::vector<Conn*> idle;  // most recently used last
  Req* qhead = nullptr;
  Req* qtail = nullptr;
};

namespace {

constexpr std::string_view kHeadOver = "header section too large";
constexpr std::string_view kBodyOver = "body too large";
constexpr std::string_view kCut = "connection closed before the message ended";

bool idempotent(Method m) {
  return m == Method::get || m == Method::head || m == Method::put || m == Method::delete_ ||
         m == Method::options || m == Method::trace;
}

// Core's connect errors name the target again ("connect 127.0.0.1:9: ...");
// the URL already does.
std::string connect_text(const std::string& text) {
  for (std::string_view verb : {"connect ", "resolve "}) {
    if (text.compare(0, verb.size(), verb) == 0) {
      size_t sep = text.find(": ", verb.size());
      if (sep != std::string::npos)
        return std::string(verb.substr(0, verb.size() - 1)) + text.substr(sep);
    }
  }
  return text;
}

}  // namespace

// ---- a connection -------------------------------------------------------------

class Client::Conn final : public ConnectionHandler, private ResponseHandler {
 public:
  enum class State : uint8_t { connecting, busy, idle, closing };

  Conn(Client& client, Origin& origin)
      : client_(&client), origin_(&origin), parser_(client.limits_, *this) {}

  bool usable() const noexcept {
    return state_ == State::idle && conn_ && !conn_->closing() && !draining_;
  }

  // Takes a request (a new or an idle connection).
  void start(Req* r) {
    req_ = r;
    r->conn = this;
    head_sent_ = body_done_ = upload_wait_ = got_byte_ = head_seen_ = complete_ = false;
    sent_ = 0;
    parser_.set_request_method(r->m);
    state_ = State::busy;
    if (conn_) {
      arm_progress();
      conn_->want_write();
    }
  }

  // The request leaves this connection, which cannot carry another one.
  void drop_request() noexcept {
    if (req_) req_->conn = nullptr;
    req_ = nullptr;
    state_ = State::closing;
    if (conn_) conn_->abort();
  }

  void detach_client() noexcept {
    client_ = nullptr;
    drop_request();
  }

  void pause_response() noexcept {
    if (conn_ && !in_feed_) {
      conn_->pause_reading();
      conn_->clear_deadline();
    }
  }
  void resume_response() noexcept {
    if (!conn_) return;
    conn_->resume_reading();
    arm_progress();
    if (!held_.empty()) conn_->want_write();  // fed from on_writable, not from here
  }
  void resume_upload() noexcept {
    if (!conn_ || !upload_wait_) return;
    upload_wait_ = false;
    arm_progress();
    conn_->want_write();
  }

  Origin* origin() const noexcept { return origin_; }

  // ConnectionHandler.
  void on_open(Connection& c) override {
    conn_ = &c;
    if (!client_ || !req_) {
      state_ = State::closing;
      c.abort();
      return;
    }
    arm_progress();
    c.want_write();
  }

  void on_data(Connection& c, const Bytes& data) override {
    if (!req_) {
      // Bytes on an idle connection: nothing can be framed after them.
      state_ = State::closing;
      c.abort();
      return;
    }
    got_byte_ = true;
    if (!held_.empty()) {
      // More plaintext from the same TLS read after a pause: gather (rare).
      MutableBuffer m = MutableBuffer::allocate(held_.size() + data.size());
      std::memcpy(m.data(), held_.data(), held_.size());
      std::memcpy(m.data() + held_.size(), data.data(), data.size());
      held_ = std::move(m).freeze(held_.size() + data.size());
      return;
    }
    if (!req_->response_paused) arm_progress();
    feed(data);
  }

  void on_writable(Connection& c, IoChain& out) override {
    if (!req_) return;
    if (!held_.empty() && !req_->response_paused) {
      Bytes h = std::move(held_);
      held_ = {};
      feed(h);
      if (!req_) return;
    }
    Req* r = req_;
    if (!head_sent_) {
      r->fields.clear();
      for (size_t i = 0; i + 3 < r->field_pos.size(); i += 4) {
        std::string_view s = r->field_store;
        r->fields.push_back({s.substr(r->field_pos[i], r->field_pos[i + 1]),
                             s.substr(r->field_pos[i + 2], r->field_pos[i + 3])});
      }
      if (!write_request(out, r->method, r->target, origin_->host_header, r->fields, r->framing)) {
        Client* cl = client_;
        drop_request();
        cl->fail(r, "invalid request head", -EINVAL);
        return;
      }
      head_sent_ = true;
      if (!r->streaming) {
        if (!r->body.empty()) out.append(r->body);
        body_done_ = true;
        arm_progress();
      }
    }
    if (body_done_ || upload_wait_) return;
    const size_t bound = client_->options_.upload_high_water;
    const bool chunked = r->framing.kind == BodyFraming::Kind::chunked;
    while (out.size() < bound && c.pending_output() < bound) {
      BodyChunk ch = r->source.pull();
      if (req_ != r) return;  // pull() cancelled the request
      if (ch.kind == BodyChunk::Kind::wait) {
        upload_wait_ = true;
        c.clear_deadline();  // the source is slow, not the server
        return;
      }
      if (ch.kind == BodyChunk::Kind::end) {
        if (!chunked && sent_ != r->framing.length) {
          std::string what = "body source ended after " + std::to_string(sent_) + " of " +
                             std::to_string(r->framing.length) + " bytes";
          Client* cl = client_;
          drop_request();
          cl->fail(r, std::move(what), -EINVAL);
          return;
        }
        if (chunked) (void)write_last_chunk(out);
        body_done_ = true;
        arm_progress();
        return;
      }
      if (ch.bytes.empty()) continue;
      if (!chunked && ch.bytes.size() > r->framing.length - sent_) {
        std::string what =
            "body source produced more than " + std::to_string(r->framing.length) + " bytes";
        Client* cl = client_;
        drop_request();
        cl->fail(r, std::move(what), -EINVAL);
        return;
      }
      sent_ += ch.bytes.size();
      if (chunked)
        write_chunk(out, ch.bytes);
      else
        out.append(std::move(ch.bytes));
    }
    c.want_write();  // bound reached: more in the next flush round
  }

  void on_close(Connection& c, int error) override {
    state_ = State::closing;
    Client* cl = client_;
    if (!cl) return;
    if (req_ && conn_ && !held_.empty()) {
      // Input read before the close (a TLS close_notify can end the
      // connection while delivery is paused) is delivered now, pause or not:
      // the connection, and with it the parser, ends with this call.
      ignore_pause_ = true;
      Bytes h = std::move(held_);
      held_ = {};
      feed(h);
    }
    Req* r = req_;
    if (r && conn_ && error == 0 && held_.empty() && parser_.finish() && complete_) {
      // A body delimited by the close.
      req_ = nullptr;
      r->conn = nullptr;
      cl->conn_closed(this);
      cl->finish(r);
      return;
    }
    req_ = nullptr;
    if (r) r->conn = nullptr;
    cl->conn_closed(this);
    if (!r) return;
    if (!conn_) {
      std::string text = c.error_text().empty() ? "connect: " + describe_errno(error)
                                                : connect_text(c.error_text());
      cl->fail(r, std::move(text), error ? error : -ECONNREFUSED);
      return;
    }
    if (!got_byte_ && reused_ && !r->retried && idempotent(r->m) &&
        (!r->streaming || r->source.rewind)) {
      cl->retry(r);
      return;
    }
    std::string what;
    if (error != 0 && error != -ECONNRESET && error != -EPIPE) {
      what = c.error_text().empty() ? describe_errno(error) : c.error_text();
    } else if (!got_byte_) {
      what = "server closed the connection before responding";
    } else if (parser_.failed() && parser_.error().reason != kCut) {
      what = "invalid response: " + std::string(parser_.error().reason);
    } else {
      what = "connection closed before the response ended";
    }
    cl->fail(r, std::move(what), error ? error : -ECONNRESET);
  }

  void on_drain(Connection& c) override {
    draining_ = true;
    if (!req_) c.close();
  }

  void on_timeout(Connection& c) override {
    Req* r = req_;
    Client* cl = client_;
    if (!r || !cl) {
      state_ = State::closing;
      c.abort();  // the idle timeout
      return;
    }
    const char* waiting = !body_done_   ? "sending the request body"
                          : !head_seen_ ? "waiting for the response head"
                                        : "waiting for the response body";
    std::string what = "timed out after " +
                       std::to_string(cl->options_.response_head_timeout.count()) + " ms " +
                       waiting;
    drop_request();
    cl->fail(r, std::move(what), -ETIMEDOUT);
  }

 private:
  void arm_progress() noexcept {
    if (conn_ && client_)
      conn_->set_deadline(static_cast<uint64_t>(client_->options_.response_head_timeout.count()));
  }

  // Feeds the parser until the input is used, delivery pauses, or the
  // response ends; completion is handled here, outside the parser's callbacks.
  void feed(Bytes data) {
    in_feed_ = true;
    while (!data.empty()) {
      Req* r = req_;
      FeedResult fr = parser_.feed(data);
      data = data.slice(fr.consumed, data.size() - fr.consumed);
      if (fr.status == ParseStatus::need_more) break;
      if (fr.status == ParseStatus::error) {
        in_feed_ = false;
        if (req_ != r || !r) return;
        ParseError e = parser_.error();
        Client* cl = client_;
        drop_request();
        if (e.reason == kHeadOver)
          cl->fail(r,
                   "response head over " + std::to_string(cl->options_.max_response_head_bytes) +
                       " bytes",
                   -EMSGSIZE);
        else if (e.reason == kBodyOver)
          cl->fail(r,
                   "response body over " + std::to_string(cl->options_.max_response_body_bytes) +
                       " bytes",
                   -EMSGSIZE);
        else
          cl->fail(r, "invalid response: " + std::string(e.reason), -EPROTO);
        return;
      }
      if (fr.status == ParseStatus::upgraded) {
        in_feed_ = false;
        if (req_ != r || !r) return;
        Client* cl = client_;
        drop_request();
        cl->fail(r, "invalid response: unexpected protocol switch", -EPROTO);
        return;
      }
      // paused
      if (complete_) {
        in_feed_ = false;
        parser_.resume();
        complete(!data.empty());
        return;
      }
      if (req_ != r || !r) break;  // cancelled from a callback: the connection is going
      if (r->response_paused && !ignore_pause_) {
        held_ = std::move(data);
        if (conn_) {
          conn_->pause_reading();
          conn_->clear_deadline();
        }
        break;
      }
      parser_.resume();
    }
    in_feed_ = false;
  }

  void complete(bool leftover) {
    Req* r = req_;
    Client* cl = client_;
    req_ = nullptr;
    r->conn = nullptr;
    complete_ = false;
    reused_ = true;
    // A connection opened during a drain never hears on_drain: the loop's
    // state decides too, so it does not idle past the drain.
    bool keep = keep_alive_ && body_done_ && !leftover && conn_ && !conn_->closing() &&
                !draining_ && !conn_->loop().draining();
    if (keep) {
      state_ = State::idle;
      conn_->set_deadline(static_cast<uint64_t>(cl->options_.idle_timeout.count()));
      cl->conn_idle(this);
    } else {
      state_ = State::closing;
      if (conn_) conn_->close();
    }
    cl->finish(r);
  }

  // ResponseHandler (parser events).
  Action on_head(const ResponseHead& head) override {
    Req* r = req_;
    if (!r) return Action::pause;
    head_seen_ = true;
    keep_alive_ = head.keep_alive;
    r->handler->on_head(head);
    if (req_ != r) return Action::pause;
    return (r->response_paused && !ignore_pause_) ? Action::pause : Action::proceed;
  }
  Action on_body(const Bytes& chunk) override {
    Req* r = req_;
    if (!r) return Action::pause;
    Action a = r->handler->on_body(chunk);
    if (req_ != r) return Action::pause;
    if (ignore_pause_) return Action::proceed;
    if (a == Action::pause) r->response_paused = true;
    return r->response_paused ? Action::pause : Action::proceed;
  }
  Action on_complete() override {
    complete_ = true;
    return Action::pause;
  }

  Client* client_;
  Origin* origin_;
  Connection* conn_ = nullptr;
  Req* req_ = nullptr;
  ResponseParser parser_;
  Bytes held_;  // input not fed yet (delivery paused)
  uint64_t sent_ = 0;
  State state_ = State::connecting;
  bool head_sent_ = false, body_done_ = false, upload_wait_ = false;
  bool got_byte_ = false, head_seen_ = false, complete_ = false, keep_alive_ = true;
  bool reused_ = false;  // served a response before: the server may have closed it
  bool in_feed_ = false;
  bool ignore_pause_ = false;  // the connection has closed: deliver everything now
  bool draining_ = false;
};

// ---- handles ------------------------------------------------------------------

RequestHandle::Req* RequestHandle::live() const noexcept {
  return (req_ && req_->live && req_->gen == gen_) ? req_ : nullptr;
}
bool RequestHandle::active() const noexcept {
  return live() != nullptr;
}
void RequestHandle::cancel() noexcept {
  if (Req* r = live()) client_->cancel(r);
}
void RequestHandle::pause_response() noexcept {
  Req* r = live();
  if (!r || r->response_paused) return;
  r->response_paused = true;
  if (r->conn) r->conn->pause_response();
}
void RequestHandle::resume_response() noexcept {
  Req* r = live();
  if (!r || !r->response_paused) return;
  r->response_paused = false;
  if (r->conn) r->conn->resume_response();
}
void RequestHandle::resume_upload() noexcept {
  Req* r = live();
  if (r && r->conn) r->conn->resume_upload();
}

// ---- the client -----------------------------------------------------------------

Client::Client(Loop& loop, Options options) : loop_(loop), options_(std::move(options)) {
  limits_.max_header_bytes = std::max<size_t>(options_.max_response_head_bytes, 64);
  limits_.max_request_line = limits_.max_header_bytes;
  limits_.max_body = options_.max_response_body_bytes;
}

Client::~Client() {
  for (Conn* c : conns_)
    c->detach_client();
  conns_.clear();
  for (auto& r : reqs_)
    if (r->live) loop_.cancel(r->deadline);
}

size_t Client::connections() const noexcept {
  return conns_.size();
}
size_t Client::idle_connections() const noexcept {
  size_t n = 0;
  for (auto& o : origins_)
    n += o->idle.size();
  return n;
}

Result<void> check_request(const ClientRequest& q, ParsedUrl& u) {
  auto error = [&](std::string_view what) {
    return Error(std::string(q.method) + " " + std::string(q.url) + ": " + std::string(what),
                 -EINVAL);
  };
  if (std::string_view why = parse_url(q.url, u); !why.empty()) return error(why);
  if (q.method.empty() || !valid_field_name(q.method)) return error("invalid method");
  for (const Field& f : q.headers) {
    if (!valid_field_name(f.name) || !valid_field_value(f.value))
      return error("invalid header field " + std::string(f.name));
    if (iequals(f.name, "host") || iequals(f.name, "content-length") ||
        iequals(f.name, "transfer-encoding"))
      return error("header field " + std::string(f.name) + " is set by the client");
  }
  return {};
}

Result<RequestHandle> Client::request(ClientRequest q, ClientHandler& handler) {
  ParsedUrl u;
  if (auto ok = check_request(q, u); !ok) return ok.error();
  if (u.https && !options_.tls) {
    auto ctx = tls::ClientContext::create({});
    if (!ctx)
      return Error(std::string(q.method) + " " + std::string(q.url) + ": " + ctx.error().message,
                   -EINVAL);
    options_.tls = std::move(*ctx);
  }

  Req* r = take_req();
  r->handler = &handler;
  r->method.assign(q.method);
  r->m = method_from_string(q.method);
  r->url.assign(q.url);
  r->target.clear();
  if (u.target.empty() || u.query_only) r->target.push_back('/');
  r->target.append(u.target);
  r->field_store.clear();
  r->field_pos.clear();
  for (const Field& f : q.headers) {
    r->field_pos.push_back(static_cast<uint32_t>(r->field_store.size()));
    r->field_pos.push_back(static_cast<uint32_t>(f.name.size()));
    r->field_store.append(f.name);
    r->field_pos.push_back(static_cast<uint32_t>(r->field_store.size()));
    r->field_pos.push_back(static_cast<uint32_t>(f.value.size()));
    r->field_store.append(f.value);
  }
  r->streaming = static_cast<bool>(q.source.pull);
  if (r->streaming) {
    r->framing =
        q.source.length ? BodyFraming::content_length(*q.source.length) : BodyFraming::chunked();
    r->source = std::move(q.source);
    r->body = {};
  } else {
    bool wants_length = r->m == Method::post || r->m == Method::put || r->m == Method::patch;
    r->framing = (!q.body.empty() || wants_length) ? BodyFraming::content_length(q.body.size())
                                                   : BodyFraming::no_body();
    r->body = std::move(q.body);
  }
  r->origin = origin_for(u.https, u.host, u.port);
  if (r->origin->host_header.empty()) r->origin->host_header.assign(u.host_header);
  if (options_.request_timeout.count() > 0)
    loop_.arm(r->deadline, static_cast<uint64_t>(options_.request_timeout.count()));
  RequestHandle h(this, r, r->gen);
  enqueue(*r->origin, r, false);
  dispatch(*r->origin);
  return h;
}

RequestHandle::Req* Client::take_req() {
  Req* r = free_;
  if (r) {
    free_ = r->next;
  } else {
    reqs_.push_back(std::make_unique<Req>());
    r = reqs_.back().get();
    r->client = this;
    r->deadline.fire = &Client::on_request_deadline;
    r->deadline.context = r;
  }
  r->next = r->prev = nullptr;
  r->gen = next_gen_++;
  r->live = true;
  r->retried = false;
  r->response_paused = false;
  r->conn = nullptr;
  r->queued = false;
  return r;
}

void Client::release(Req* r) noexcept {
  loop_.cancel(r->deadline);
  r->live = false;
  r->handler = nullptr;
  r->conn = nullptr;
  r->body = {};
  r->source = {};
  r->next = free_;
  free_ = r;
}

Client::Origin* Client::origin_for(bool https, std::string_view host, uint16_t port) {
  for (auto& o : origins_)
    if (o->https == https && o->port == port && iequals(o->host, host)) return o.get();
  auto o = std::make_unique<Origin>();
  o->https = https;
  o->host.assign(host);
  o->port = port;
  origins_.push_back(std::move(o));
  return origins_.back().get();
}

void Client::enqueue(Origin& o, Req* r, bool front) noexcept {
  r->queued = true;
  if (front) {
    r->prev = nullptr;
    r->next = o.qhead;
    if (o.qhead) o.qhead->prev = r;
    o.qhead = r;
    if (!o.qtail) o.qtail = r;
  } else {
    r->next = nullptr;
    r->prev = o.qtail;
    if (o.qtail) o.qtail->next = r;
    o.qtail = r;
    if (!o.qhead) o.qhead = r;
  }
}

void Client::unqueue(Req* r) noexcept {
  if (!r->queued) return;
  Origin& o = *r->origin;
  if (r->prev)
    r->prev->next = r->next;
  else
    o.qhead = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    o.qtail = r->prev;
  r->prev = r->next = nullptr;
  r->queued = false;
}

void Client::dispatch(Origin& o) {
  while (o.qhead) {
    Req* r = o.qhead;
    Conn* c = nullptr;
    while (!o.idle.empty()) {
      c = o.idle.back();
      o.idle.pop_back();
      if (c->usable()) break;
      c = nullptr;
    }
    if (c) {
      unqueue(r);
      c->start(r);
      continue;
    }
    if (o.open >= std::max<size_t>(options_.max_connections_per_origin, 1)) return;
    unqueue(r);
    auto conn = std::make_unique<Conn>(*this, o);
    Conn* raw = conn.get();
    conns_.push_back(raw);
    ++o.open;
    raw->start(r);
    ConnectOptions co;
    co.timeout = options_.connect_timeout;
    if (o.https) {
      co.tls = options_.tls;
      co.server_name = o.host;
    }
    loop_.connect(o.host, o.port, std::move(conn), std::move(co));
  }
}

void Client::conn_idle(Conn* c) {
  Origin& o = *c->origin();
  o.idle.push_back(c);
  dispatch(o);
}

void Client::conn_closed(Conn* c) noexcept {
  auto it = std::find(conns_.begin(), conns_.end(), c);
  if (it == conns_.end()) return;
  *it = conns_.back();
  conns_.pop_back();
  Origin& o = *c->origin();
  auto idle = std::find(o.idle.begin(), o.idle.end(), c);
  if (idle != o.idle.end()) o.idle.erase(idle);
  --o.open;
  dispatch(o);
}

void Client::fail(Req* r, std::string what, int code) {
  unqueue(r);
  if (r->conn) r->conn->drop_request();
  Error e(r->method + " " + r->url + ": " + what, code);
  ClientHandler* h = r->handler;
  release(r);
  h->on_error(e);
}

void Client::finish(Req* r) {
  ClientHandler* h = r->handler;
  release(r);
  h->on_complete();
}

void Client::retry(Req* r) {
  r->retried = true;
  if (r->streaming && !r->source.rewind()) {
    fail(r, "cannot replay the request body after the connection closed", -ECONNRESET);
    return;
  }
  enqueue(*r->origin, r, true);
  // A fresh connection: the idle ones may be as stale as the one that died.
  Origin& o = *r->origin;
  for (Conn* c : o.idle)
    c->drop_request();  // closes it; conn_closed() follows
  o.idle.clear();
  dispatch(o);
}

void Client::cancel(Req* r) noexcept {
  unqueue(r);
  if (r->conn) r->conn->drop_request();
  release(r);
}

void Client::on_request_deadline(TimerEntry* t) {
  Req* r = static_cast<Req*>(t->context);
  Client* c = r->client;
  c->fail(r,
          "timed out after " + std::to_string(c->options_.request_timeout.count()) +
              " ms (request deadline)",
          -ETIMEDOUT);
}

// ---- blocking -------------------------------------------------------------------

std::optional<std::string_view> FetchResponse::header(std::string_view name) const noexcept {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return std::string_view(v);
  return std::nullopt;
}

namespace {

struct FetchJob final : MailboxItem, ClientHandler {
  Client* client = nullptr;                  // shared client, or
  const Client::Options* options = nullptr;  // a one-shot one made on the loop
  Client* own = nullptr;
  std::string method, url;
  std::vector<std::pair<std::string, std::string>> header_store;
  std::vector<Field> headers;
  Bytes body;
  BodySource source;
  FetchResponse response;
  std::promise<Result<FetchResponse>> done;

  void start(Loop& loop) {
    if (options) {
      own = new Client(loop, *options);
      client = own;
    }
    ClientRequest q;
    q.method = method;
    q.url = url;
    q.headers = headers;
    q.body = std::move(body);
    q.source = std::move(source);
    auto h = client->request(std::move(q), *this);
    if (!h) finish(std::move(h).error());
  }
  void finish(Result<FetchResponse> result) {
    if (own) {
      // Not from inside its own callback: a later turn of the loop.
      Client* c = own;
      own = nullptr;
      c->loop().post([c](Loop&) { delete c; });
    }
    done.set_value(std::move(result));  // the waiting thread may free *this now
  }

  void on_head(const ResponseHead& head) override {
    response.status = head.status;
    response.reason.assign(head.reason);
    for (const Field& f : head.fields)
      response.headers.emplace_back(std::string(f.name), std::string(f.value));
  }
  Action on_body(const Bytes& chunk) override {
    response.body.append(chunk.view());
    return Action::proceed;
  }
  void on_complete() override { finish(std::move(response)); }
  void on_error(const Error& error) override { finish(error); }
};

Result<FetchResponse> run_fetch(Loop& loop, FetchJob& job, const ClientRequest& q) {
  if (loop.on_loop_thread())
    return Error(std::string(q.method) + " " + std::string(q.url) +
                     ": fetch_blocking called on the loop's own thread (it would wait for itself)",
                 -EDEADLK);
  job.method.assign(q.method);
  job.url.assign(q.url);
  for (const Field& f : q.headers)
    job.header_store.emplace_back(std::string(f.name), std::string(f.value));
  for (const auto& [n, v] : job.header_store)
    job.headers.push_back({n, v});
  job.body = q.body;
  job.source = q.source;
  job.run = [](MailboxItem* self, Loop* l) {
    auto* j = static_cast<FetchJob*>(self);
    if (!l) {
      j->done.set_value(Error(j->method + " " + j->url + ": the loop has stopped", -ECANCELED));
      return;
    }
    j->start(*l);
  };
  std::future<Result<FetchResponse>> f = job.done.get_future();
  loop.post(&job);
  return f.get();
}

}  // namespace

Result<FetchResponse> fetch_blocking(Client& client, const ClientRequest& request) {
  FetchJob job;
  job.client = &client;
  return run_fetch(client.loop(), job, request);
}

Result<FetchResponse> fetch_blocking(Loop& loop, const ClientRequest& request,
                                     const Client::Options& options) {
  FetchJob job;
  job.options = &options;
  return run_fetch(loop, job, request);
}

}  // namespace ember::http1
