// HTTP/1.1 edge connections: parse, route, invoke, answer; keep-alive and
// pipelining; Expect: 100-continue; timeouts (408); switches to HTTP/2 (ALPN,
// prior knowledge, Upgrade: h2c) and WebSocket (Upgrade: websocket).
//
// Requests are answered in the flush phase, in order: a complete request
// pauses the parser (and reading) until its answer is written into the
// connection's output, so pipelined requests cost no queue and a client that
// stops reading its answers stops being read.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "ember/log.hpp"
#include "handlers/flare/connections.hpp"
#include "protocols/http1/request_parser.hpp"
#include "protocols/http1/writer.hpp"
#include "protocols/websocket/handshake.hpp"

namespace ember::flare::detail {

void StoredRequest::assign(std::string_view m, std::string_view u, std::string_view h,
                           std::span<const HeaderField> in) {
  size_t total = m.size() + u.size() + h.size();
  for (const HeaderField& f : in)
    total += f.name.size() + f.value.size();
  storage.clear();
  storage.reserve(total);  // no reallocation below: views stay valid
  auto put = [&](std::string_view s) {
    size_t at = storage.size();
    storage.append(s);
    return std::string_view(storage.data() + at, s.size());
  };
  method = put(m);
  url = put(u);
  host = put(h);
  fields.clear();
  for (const HeaderField& f : in) {
    std::string_view name = put(f.name);
    fields.push_back({name, put(f.value)});
  }
}

Request StoredRequest::view() const {
  Request::Parts p;
  p.method = method;
  p.url = url;
  p.host = host;
  p.scheme = scheme;
  p.protocol = protocol;
  p.remote = remote;
  p.headers = fields;
  p.body = body;
  return Request(std::move(p));
}

namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// Answers written in one flush before the rest waits for the next turn.
constexpr size_t kMaxOutputPerFlush = 256 * 1024;
// Input that arrived while an answer is pending (pipelining) is kept up to
// this much; past it the connection stops reading until it catches up.
constexpr size_t kMaxQueuedInput = 64 * 1024;

http1::Limits parser_limits(const Limits& l) {
  http1::Limits p;
  p.max_request_line = l.max_request_line;
  p.max_header_bytes = l.max_header_bytes;
  p.max_headers = l.max_headers;
  p.max_body = l.max_body;
  return p;
}

// base64url (RFC 4648 §5) without padding, as HTTP2-Settings carries it.
bool base64url_decode(std::string_view in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-' || c == '+')
      v = 62;
    else if (c == '_' || c == '/')
      v = 63;
    else if (c == '=')
      break;
    else
      return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

class Http1Connection;

// What a connection needs only while a request is in progress: the parser
// (with its field tables) and the request's copy. Borrowed from the loop's
// pool when a request starts and given back when the connection goes idle,
// so 10,000 idle keep-alive connections do not hold 10,000 of these.
struct RequestState final : PooledRequestState, http1::RequestHandler, InvocationWaiter {
  explicit RequestState(const Limits& limits) : parser(parser_limits(limits), *this) {}
  http1::Action on_head(const http1::RequestHead& head) override;
  http1::Action on_body(const Bytes& chunk) override;
  http1::Action on_complete() override;
  void invocation_done() override;

  // Gives back what a connection left here (it closed mid-request).
  void clear() noexcept {
    owner = nullptr;
    parser.reset();
    request.body = Bytes();
    body_parts.clear();
    leftover = Bytes();
    queued.clear();
    queued_head = queued_bytes = 0;
  }

  Http1Connection* owner = nullptr;
  Invocation* pending = nullptr;  // a waiting flare's invocation (State::waiting)
  http1::RequestParser parser;
  StoredRequest request;
  std::string absolute_url;  // scratch for absolute-form targets
  std::vector<Bytes> body_parts;
  size_t body_size = 0;
  Bytes leftover;             // the rest of the read that completed a request
  std::vector<Bytes> queued;  // reads that arrived while an answer was pending
  size_t queued_head = 0;
  size_t queued_bytes = 0;
  int error_status = 0;  // State::failed: the answer to send
  std::string_view error_reason;
};

class Http1Connection final : public ConnectionHandler {
 public:
  explicit Http1Connection(LoopEdge& edge) : edge_(edge) {}
  ~Http1Connection() override {
    if (rs_ && rs_->pending) edge_.abandon(std::exchange(rs_->pending, nullptr));
    release_state();
  }

  // A waiting flare has answered the ready request (through RequestState,
  // so that idle connections carry no waiter).
  void waiting_done() {
    state_ = State::ready;
    conn_->want_write();
  }

  void on_open(Connection& conn) override {
    conn_ = &conn;
    if (conn.alpn() == "h2") {
      conn.switch_handler(make_h2_connection(edge_));
      return;
    }
    remote_ = conn.peer();
    conn.set_deadline(edge_.limits().header_timeout_ms);
  }

  void on_data(Connection& conn, const Bytes& data) override {
    if (fresh_) {
      // h2c with prior knowledge: the preface cannot start an HTTP/1.1 request.
      size_t n = std::min(data.size(), kH2Preface.size());
      if (n >= 4 && data.view().substr(0, n) == kH2Preface.substr(0, n)) {
        conn.switch_handler(make_h2_connection(edge_), data);
        return;
      }
      fresh_ = false;
    }
    if (state_ != State::reading) {
      // An answer is pending: keep the bytes for later, in order. Reading
      // stays on (no epoll change per request) until the bound is passed.
      if (state_ == State::ready || state_ == State::waiting) queue(conn, data);
      return;
    }
    if (!in_request_) {
      in_request_ = true;
      conn.set_deadline(edge_.limits().header_timeout_ms);
    }
    process(conn, data);
  }

  // ---- parser events (through RequestState) ----

  http1::Action on_head(const http1::RequestHead& head) {
    StoredRequest& request = rs_->request;
    std::span<const HeaderField> fields{reinterpret_cast<const HeaderField*>(head.fields.data()),
                                        head.fields.size()};
    if (head.target.starts_with('/') || head.target == "*") {
      request.assign(head.method, head.target, head.host, fields);
    } else {
      // Absolute-form (RFC 9112 §3.2.2): flares see the origin-form path and query.
      std::string& url = rs_->absolute_url;
      url.assign(head.path);
      if (!head.query.empty()) url.append("?").append(head.query);
      request.assign(head.method, url, head.host, fields);
    }
    request.protocol = head.version == http1::Version::http1_0 ? "HTTP/1.0" : "HTTP/1.1";
    version_ = head.version;
    keep_alive_ = head.keep_alive;
    head_request_ = head.method_id == http1::Method::head;
    upgrade_ = Upgrade::none;
    if (!head.upgrade.empty()) {
      if (websocket::has_token(head.upgrade, "websocket"))
        upgrade_ = Upgrade::websocket;
      else if (websocket::has_token(head.upgrade, "h2c") && !conn_->secure())
        upgrade_ = Upgrade::h2c;
    }
    rs_->body_parts.clear();
    rs_->body_size = 0;
    if (head.has_body()) {
      conn_->set_deadline(edge_.limits().body_timeout_ms);
      if (head.expect_continue) {
        continue_pending_ = true;
        conn_->want_write();
      }
    }
    return http1::Action::proceed;
  }

  http1::Action on_body(const Bytes& chunk) {
    rs_->body_parts.push_back(chunk);
    rs_->body_size += chunk.size();
    return http1::Action::proceed;
  }

  http1::Action on_complete() {
    continue_pending_ = false;
    // One piece: the body is a slice of the read buffer. Several (reads or
    // chunks): gathered once into a pool buffer.
    std::vector<Bytes>& parts = rs_->body_parts;
    StoredRequest& request = rs_->request;
    if (parts.size() == 1) {
      request.body = std::move(parts[0]);
    } else if (parts.empty()) {
      request.body = Bytes();
    } else {
      MutableBuffer buf = edge_.loop.buffers().take(rs_->body_size);
      size_t at = 0;
      for (const Bytes& b : parts) {
        std::memcpy(buf.data() + at, b.data(), b.size());
        at += b.size();
      }
      request.body = std::move(buf).freeze(rs_->body_size);
    }
    parts.clear();
    // Until the answer is out: bounds a flare that waits and a client that
    // stops reading its answers (on_timeout).
    arm_answer_deadline(*conn_);
    return http1::Action::pause;
  }

  void on_writable(Connection& conn, IoChain& out) override {
    if (continue_pending_) {
      continue_pending_ = false;
      http1::write_continue(out);
    }
    while (state_ == State::ready || state_ == State::failed) {
      if (state_ == State::failed) {
        http1::write_error(out, rs_->error_status, rs_->error_reason);
        state_ = State::done;
        conn.close();
        return;
      }
      if (!answer(conn, out)) return;  // switched protocol or closing
      if (out.size() >= kMaxOutputPerFlush && state_ == State::ready) {
        conn.want_write();  // the rest next turn, after this batch is written
        return;
      }
    }
  }

  void on_timeout(Connection& conn) override {
    // An answer still going out gets another period as long as the client
    // takes some of it in each; one that stopped reading is closed.
    size_t unsent = conn.pending_output();
    auto tag = static_cast<uint16_t>((unsent >> 10) % 65535 + 1);
    if (unsent > 0 && tag != unsent_tag_) {
      unsent_tag_ = tag;
      arm_answer_deadline(conn);
      return;
    }
    if (unsent > 0) {
      EMBER_DEBUG("ember.edge", "client stopped reading its answers; closing",
                  {"connection", conn.id()}, {"unsent", unsent});
      conn.abort();  // close() would wait for output that is not taken
      return;
    }
    if (state_ == State::waiting || state_ == State::ready) {  // the flare's timeouts bound it
      arm_answer_deadline(conn);
      return;
    }
    if (!in_request_ || !rs_ || rs_->parser.idle()) {
      conn.close();  // idle keep-alive connection
      return;
    }
    EMBER_DEBUG("ember.edge", "request timed out", {"connection", conn.id()});
    fail(408, "the request did not arrive in time");
  }

  void on_drain(Connection& conn) override {
    draining_ = true;
    if (!in_request_ && state_ == State::reading) conn.close();
  }

  void on_close(Connection& conn, int error) override {
    if (error != 0)
      EMBER_DEBUG("ember.edge", "connection failed", {"connection", conn.id()},
                  {"error", conn.error_text()});
  }

 private:
  // waiting: a flare that waits has not answered yet (rs_->pending).
  enum class State : uint8_t { reading, ready, waiting, failed, done };

  // The request state, borrowed from the loop while a request is in progress.
  void acquire_state() {
    if (rs_) return;
    std::unique_ptr<PooledRequestState> pooled = edge_.take_state();
    rs_.reset(pooled ? static_cast<RequestState*>(pooled.release())
                     : new RequestState(edge_.limits()));
    rs_->owner = this;
    rs_->request.scheme = conn_->secure() ? "https" : "http";
    remote_.format(rs_->request.remote);
  }

  // Gives the state back once nothing of a request is held in it.
  void release_state() noexcept {
    if (!rs_) return;
    rs_->clear();
    edge_.give_state(std::move(rs_));
  }

  void process(Connection& conn, Bytes data) {
    acquire_state();
    http1::RequestParser& parser = rs_->parser;
    while (!data.empty()) {
      http1::FeedResult r = parser.feed(data);
      if (r.status == http1::ParseStatus::error) {
        fail(parser.error().status, parser.error().reason);
        return;
      }
      if (r.status == http1::ParseStatus::paused) {
        // A complete request: answer it before reading on.
        // An empty slice would still pin the read buffer: keep none.
        if (r.consumed < data.size())
          rs_->leftover = data.slice(r.consumed, data.size() - r.consumed);
        state_ = State::ready;
        conn.want_write();
        return;
      }
      data = data.slice(r.consumed, data.size() - r.consumed);
      if (r.status == http1::ParseStatus::need_more) break;
    }
  }

  void fail(int status, std::string_view reason) {
    state_ = State::failed;
    rs_->error_status = status;
    rs_->error_reason = reason;
    set_paused(true);  // nothing more will be read from this connection
    conn_->want_write();
  }

  void queue(Connection&, const Bytes& data) {
    rs_->queued.push_back(data);
    rs_->queued_bytes += data.size();
    if (rs_->queued_bytes > kMaxQueuedInput) set_paused(true);
  }

  void set_paused(bool on) {
    if (on == paused_) return;
    paused_ = on;
    if (on)
      conn_->pause_reading();
    else
      conn_->resume_reading();
  }

  // Everything read but not parsed, as one Bytes (for the next protocol).
  Bytes take_unread() {
    RequestState& rs = *rs_;
    Bytes rest = std::move(rs.leftover);
    if (rs.queued_head == rs.queued.size()) return rest;
    size_t total = rest.size();
    for (size_t i = rs.queued_head; i < rs.queued.size(); ++i)
      total += rs.queued[i].size();
    MutableBuffer buf = edge_.loop.buffers().take(total);
    std::memcpy(buf.data(), rest.data(), rest.size());
    size_t at = rest.size();
    for (size_t i = rs.queued_head; i < rs.queued.size(); ++i) {
      std::memcpy(buf.data() + at, rs.queued[i].data(), rs.queued[i].size());
      at += rs.queued[i].size();
    }
    rs.queued.clear();
    rs.queued_head = 0;
    rs.queued_bytes = 0;
    return std::move(buf).freeze(total);
  }

  // ---- answers ----

  // Answers the ready request into `out`. False when the connection was
  // handed to another protocol or is closing.
  bool answer(Connection& conn, IoChain& out) {
    if (rs_->pending) {  // a waiting flare has answered
      Invocation* inv = std::exchange(rs_->pending, nullptr);
      return write_answer(conn, out, LoopEdge::response(*inv), LoopEdge::flare_name(*inv), inv);
    }
    StoredRequest& request = rs_->request;
    const Route* route = edge_.router()->match(request.host, path_of(request.url));
    if (upgrade_ == Upgrade::websocket && route && route->flare->accepts_websocket())
      return upgrade_websocket(conn, out, *route);
    if (upgrade_ == Upgrade::h2c && !draining_) {
      std::optional<std::string_view> settings = find("http2-settings");
      std::string decoded;
      if (settings && base64url_decode(*settings, &decoded)) return upgrade_h2c(conn, out, decoded);
    }

    Request req = request.view();
    if (route && LoopEdge::waits(*route)) {
      Invocation* inv = edge_.start(*route, req, *rs_);
      if (!inv) {
        Response busy(edge_.scratch());
        edge_.busy_response(busy);
        return write_answer(conn, out, busy, route->flare_name, nullptr);
      }
      if (!LoopEdge::done(*inv)) {
        rs_->pending = inv;
        state_ = State::waiting;  // invocation_done() brings it back
        return false;
      }
      return write_answer(conn, out, LoopEdge::response(*inv), route->flare_name, inv);
    }
    Response resp(edge_.scratch());
    edge_.invoke(route, req, resp);
    return write_answer(conn, out, resp, route ? route->flare_name : std::string_view("-"),
                        nullptr);
  }

  // Writes the answer to the ready request, then ends its invocation (`inv`,
  // or the loop's arena). False when the connection is closing.
  bool write_answer(Connection& conn, IoChain& out, const Response& resp, std::string_view flare,
                    Invocation* inv) {
    StoredRequest& request = rs_->request;
    bool keep = keep_alive_ && !draining_;
    std::span<const HeaderField> hf = resp.headers();
    http1::ResponseStart start;
    start.status = resp.status();
    start.fields = {reinterpret_cast<const http1::Field*>(hf.data()), hf.size()};
    start.keep_alive = keep;
    start.head_request = head_request_;
    start.request_version = version_;
    http1::ResponseWriter writer(out);
    bool written;
    if (head_request_) {
      written = writer.begin(start, LoopEdge::head_length(resp)) && writer.end();
    } else {
      // A small body is copied by the writer before the arena is reset.
      const Bytes& raw = resp.body_bytes();
      written = writer.write(
          start, raw.size() <= http1::ResponseWriter::kCopyBelow ? raw : edge_.stable_body(resp));
    }
    if (!written) {
      EMBER_WARN("ember.edge", "flare produced an invalid response header; answering 500",
                 {"flare", flare});
      http1::write_error(out, 500, "the flare produced an invalid response header");
      keep = false;
    }
    if (inv)
      edge_.finish(inv);
    else
      edge_.finish();
    request.body = Bytes();
    if (!keep || writer.closing()) {
      state_ = State::done;
      conn.close();
      return false;
    }
    next_request(conn);
    return true;
  }

  // While an answer is owed or going out. idle_timeout 0 (keep-alive off)
  // would fire every loop turn: no deadline then.
  void arm_answer_deadline(Connection& conn) noexcept {
    if (uint64_t ms = edge_.limits().idle_timeout_ms)
      conn.set_deadline(ms);
    else
      conn.clear_deadline();
  }

  void next_request(Connection& conn) {
    state_ = State::reading;
    in_request_ = false;
    unsent_tag_ = 0;
    RequestState& rs = *rs_;
    rs.parser.resume();
    conn.set_deadline(edge_.limits().idle_timeout_ms);
    Bytes rest = std::move(rs.leftover);
    if (!rest.empty()) {
      in_request_ = true;
      conn.set_deadline(edge_.limits().header_timeout_ms);
      process(conn, rest);
    }
    // Then what arrived while we answered, in order, until a request is ready again.
    while (state_ == State::reading && rs.queued_head < rs.queued.size()) {
      Bytes next = std::move(rs.queued[rs.queued_head++]);
      rs.queued_bytes -= next.size();
      if (!in_request_) {
        in_request_ = true;
        conn.set_deadline(edge_.limits().header_timeout_ms);
      }
      process(conn, next);
    }
    if (rs.queued_head == rs.queued.size()) {
      rs.queued.clear();
      rs.queued_head = 0;
    }
    if (state_ != State::failed && rs.queued_bytes <= kMaxQueuedInput) set_paused(false);
    if (state_ == State::reading && !in_request_) release_state();
  }

  bool upgrade_websocket(Connection& conn, IoChain& out, const Route& route) {
    StoredRequest& request = rs_->request;
    websocket::UpgradeRequest up;
    up.method = request.method;
    up.http_minor = version_ == http1::Version::http1_0 ? 0 : 1;
    up.upgrade = find("upgrade").value_or("");
    up.connection = find("connection").value_or("");
    up.key = find("sec-websocket-key").value_or("");
    up.version = find("sec-websocket-version").value_or("");
    up.repeated = repeated("sec-websocket-key") || repeated("sec-websocket-version");
    auto accept = websocket::validate_upgrade(up);
    if (!accept) {
      websocket::write_handshake_error(out, accept.error());
      state_ = State::done;
      conn.close();
      return false;
    }
    websocket::write_accept_response(out, *accept);
    state_ = State::done;
    conn.clear_deadline();
    set_paused(false);
    request.protocol = "WebSocket";
    conn.switch_handler(make_ws_connection(edge_, route, std::move(request)), take_unread());
    return false;
  }

  bool upgrade_h2c(Connection& conn, IoChain& out, std::string& settings) {
    StoredRequest& request = rs_->request;
    static constexpr std::string_view k101 =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    out.append_unowned(k101.data(), k101.size());
    auto up = std::make_unique<H2cUpgrade>();
    up->settings = std::move(settings);
    up->head_request = head_request_;
    request.protocol = "HTTP/2";
    up->request = std::move(request);
    state_ = State::done;
    conn.clear_deadline();
    set_paused(false);
    conn.switch_handler(make_h2_connection(edge_, std::move(up)), take_unread());
    return false;
  }

  std::optional<std::string_view> find(std::string_view name) const {
    const StoredRequest& request = rs_->request;
    return http1::find_field(
        {reinterpret_cast<const http1::Field*>(request.fields.data()), request.fields.size()},
        name);
  }

  // True when `name` came on more than one field line.
  bool repeated(std::string_view name) const {
    int n = 0;
    for (const HeaderField& f : rs_->request.fields)
      if (http1::iequals(f.name, name) && ++n > 1) return true;
    return false;
  }

  static std::string_view path_of(std::string_view url) { return url.substr(0, url.find('?')); }

  enum class Upgrade : uint8_t { none, websocket, h2c };

  // An idle keep-alive connection is this object alone (64 bytes): what a
  // request needs lives in the RequestState it borrows.
  LoopEdge& edge_;
  Connection* conn_ = nullptr;
  std::unique_ptr<RequestState> rs_;  // while a request is in progress
  PeerAddress remote_;
  bool paused_ = false;
  State state_ = State::reading;
  http1::Version version_ = http1::Version::http1_1;
  Upgrade upgrade_ = Upgrade::none;
  bool fresh_ = true;
  bool in_request_ = false;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool continue_pending_ = false;
  bool draining_ = false;
  // Output still unsent when the last deadline passed, in KiB, as a 16-bit
  // tag (0: none) to fit the 64 bytes: a client reading less than 1 KiB a
  // period counts as stalled.
  uint16_t unsent_tag_ = 0;
};

// 10,000 idle keep-alive connections hold 10,000 of these: keep it in
// mimalloc's 64-byte class.
static_assert(sizeof(Http1Connection) <= 64, "Http1Connection grew: move it into RequestState");

http1::Action RequestState::on_head(const http1::RequestHead& head) {
  return owner->on_head(head);
}
http1::Action RequestState::on_body(const Bytes& chunk) {
  return owner->on_body(chunk);
}
http1::Action RequestState::on_complete() {
  return owner->on_complete();
}

void RequestState::invocation_done() {
  owner->waiting_done();
}

}  // namespace

std::unique_ptr<ConnectionHandler> make_http1_connection(LoopEdge& edge) {
  return std::make_unique<Http1Connection>(edge);
}

}  // namespace ember::flare::detail
