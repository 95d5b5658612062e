#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "core/loop_impl.hpp"
#include "ember/log.hpp"

namespace ember {
namespace detail {
namespace {

// A read buffer with less room than this left is replaced rather than filled.
constexpr size_t kMinReadTail = 4096;

static_assert(sizeof(uv_buf_t) == sizeof(iovec) && alignof(uv_buf_t) == alignof(iovec),
              "IoChain hands its iovecs to libuv as uv_buf_t");

}  // namespace

// An idle plaintext connection is this object, its handler and libuv's
// bookkeeping; 384 bytes is a mimalloc size class.
static_assert(sizeof(ConnectionImpl) <= sizeof(uv_tcp_t) + 136,
              "ConnectionImpl grew: put rarely used members in Extra");

ConnectionImpl::ConnectionImpl(LoopImpl& loop, bool is_unix, uint64_t id)
    : loop_(loop), id_(id), is_unix_(is_unix) {}

ConnectionImpl::Extra::~Extra() = default;

ConnectionImpl::Extra& ConnectionImpl::extra() {
  if (!extra_) extra_ = std::make_unique<Extra>();
  return *extra_;
}

const std::string& ConnectionImpl::error_text() const noexcept {
  static const std::string none;
  return extra_ ? extra_->error_text : none;
}

ConnectionImpl::~ConnectionImpl() {
  if (rbuf_) rbuf_->release();
  return_output();
}

IoChain& ConnectionImpl::output() {
  if (!out_) out_ = loop_.take_chain();
  return *out_;
}

void ConnectionImpl::return_output() noexcept {
  if (!out_) return;
  loop_.give_chain(out_);
  out_ = nullptr;
}

void ConnectionImpl::use_tls_server(std::shared_ptr<tls::ServerContext> ctx) {
  tls_hooks().use_server(*this, std::move(ctx));
}

namespace {
std::atomic<const ConnectionImpl::TlsHooks*> installed_tls{nullptr};
}  // namespace

void ConnectionImpl::install_tls(const TlsHooks* hooks) noexcept {
  installed_tls.store(hooks, std::memory_order_release);
}

// Only a connection with a TLS context asks, and making the context installed them.
const ConnectionImpl::TlsHooks& ConnectionImpl::tls_hooks() noexcept {
  const TlsHooks* hooks = installed_tls.load(std::memory_order_acquire);
  assert(hooks);
  return *hooks;
}

void ConnectionImpl::TlsLayerDelete::operator()(TlsLayer* layer) const noexcept {
  tls_hooks().destroy(layer);
}

std::string_view ConnectionImpl::alpn() const noexcept {
  return tls() ? tls_hooks().alpn(*tls()) : std::string_view();
}

std::string_view ConnectionImpl::server_name() const noexcept {
  return tls() ? tls_hooks().server_name(*tls()) : std::string_view();
}

int ConnectionImpl::init_handle() {
  int rc =
      is_unix_ ? uv_pipe_init(loop_.uv_loop(), &h_.pipe, 0) : uv_tcp_init(loop_.uv_loop(), &h_.tcp);
  h_.handle.data = this;
  loop_.add_connection(this);
  return rc;
}

void ConnectionImpl::start(std::unique_ptr<ConnectionHandler> handler) {
  if (handler) handler_ = std::move(handler);
  if (!is_unix_) uv_tcp_nodelay(&h_.tcp, 1);
  Outbound* ob = outbound();
  size_t want = ob ? ob->options.socket_send_buffer : loop_.options_.socket_send_buffer;
  if (want) {
    int value = static_cast<int>(std::min<size_t>(want, INT32_MAX));
    uv_send_buffer_size(&h_.handle, &value);  // capped by net.core.wmem_max; best effort
  }
  started_ = true;
  // Before the start, only use_tls_server() makes a TLS layer.
  if (tls_layer() || (ob && ob->options.tls)) {
    tls_hooks().start(*this);
    if (closed_) return;
  }
  if (!paused_) {
    reading_ = true;
    int rc = uv_read_start(&h_.stream, &ConnectionImpl::on_alloc, &ConnectionImpl::on_read);
    if (rc != 0) {
      fail(rc, "cannot read from the socket: " + std::string(uv_strerror(rc)));
      return;
    }
  }
  if (!tls()) open_handler();  // with TLS: once the handshake is done
}

void ConnectionImpl::open_handler() noexcept {
  if (closed_) return;
  if (extra_ && (extra_->outbound || extra_->tls))
    clear_deadline();  // connect or handshake timeout ends here
  opened_ = true;
  handler_->on_open(*this);
}

void ConnectionImpl::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<ConnectionImpl*>(h->data);
  ReadTarget& direct = c->loop_.direct_read_;
  direct = ReadTarget{};
  // In-place reads need plaintext: never with TLS.
  if (!c->closed_ && !c->tls() && c->handler_->read_target(direct) && direct.size > 0) {
    buf->base = reinterpret_cast<char*>(direct.data);
    buf->len = direct.size;
    return;
  }
  direct = ReadTarget{};
  // Nobody holds a slice of the current buffer any more: start it over, so a
  // request/response connection keeps reusing one hot buffer.
  if (c->rbuf_ && c->rbuf_->use_count() == 1) c->roff_ = 0;
  if (!c->rbuf_ || c->rbuf_->capacity() - c->roff_ < kMinReadTail) {
    if (c->rbuf_) c->rbuf_->release();
    // roff_ is 32 bits: no read buffer beyond 1 GiB, whatever the option says.
    size_t size = std::min<size_t>(c->loop_.options_.read_buffer_size, size_t{1} << 30);
    c->rbuf_ = std::move(c->loop_.pool_.take(size)).release();
    c->roff_ = 0;
  }
  assert(c->rbuf_->capacity() <= UINT32_MAX);
  buf->base = reinterpret_cast<char*>(c->rbuf_->data() + c->roff_);
  buf->len = c->rbuf_->capacity() - c->roff_;
}

void ConnectionImpl::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<ConnectionImpl*>(s->data);
  c->loop_.note_activity();
  ReadTarget& direct = c->loop_.direct_read_;
  if (direct.storage) {
    ReadTarget t = std::exchange(direct, ReadTarget{});
    if (nread > 0) {
      Bytes data = Bytes::share(t.storage, t.data, static_cast<size_t>(nread));
      if (!c->closed_) c->handler_->on_data(*c, data);
      return;
    }
  } else if (nread > 0) {
    assert(reinterpret_cast<uint8_t*>(buf->base) == c->rbuf_->data() + c->roff_);
    {
      Bytes data =
          Bytes::share(c->rbuf_, reinterpret_cast<uint8_t*>(buf->base), static_cast<size_t>(nread));
      c->roff_ += static_cast<uint32_t>(nread);
      if (c->closed_) return;
      if (c->tls())
        tls_hooks().feed(*c, data);
      else
        c->handler_->on_data(*c, data);
    }
    c->drop_read_buffer_if_unused();
    return;
  }
  // EAGAIN, EOF or an error: the buffer libuv asked for got nothing. Give it
  // back now, or 10,000 peers closing at once would each pin one until
  // their connection is freed.
  c->drop_read_buffer_if_unused();
  if (nread == 0) return;
  // The end of input after a failed write: the write's error says what happened.
  if (nread == UV_EOF) nread = c->write_failed_ ? c->close_error_ : 0;
  c->fail(static_cast<int>(nread));
}

// Nobody holds a slice: hand the buffer back, so an idle connection holds no
// read buffer (10,000 idle connections would otherwise pin 10,000 of them);
// the next read on this loop takes the same warm one from the pool.
void ConnectionImpl::drop_read_buffer_if_unused() noexcept {
  if (rbuf_ && rbuf_->use_count() == 1) {
    rbuf_->release();
    rbuf_ = nullptr;
    roff_ = 0;
  }
}

void ConnectionImpl::want_write() noexcept {
  if (!closed_) loop_.mark_dirty(this);
}

void ConnectionImpl::flush() noexcept {
  if (closed_) {
    if (extra_) extra_->retired.clear();
    return;
  }
  if (writing_) return;
  if (write_failed_) {
    if (extra_) extra_->retired.clear();
    return_output();
    if (closing_) do_close();
    return;
  }
  if (tls()) {
    tls_hooks().flush(*this);
    return;
  }
  if (!opened_) return;
  // Handlers switched away from write what they still hold (an HTTP/1.1 101
  // answer) ahead of their successor, then go; none of their callbacks runs now.
  IoChain& out = output();
  if (extra_) {
    for (auto& old : extra_->retired)
      old->on_writable(*this, out);
    extra_->retired.clear();
  }
  handler_->on_writable(*this, out);
  if (closed_) return;  // the handler aborted
  // A handler that answered in this phase may just have let go of the last
  // slice of the read that carried the request.
  drop_read_buffer_if_unused();
  if (out.empty()) {
    return_output();
    if (closing_) do_close();
    return;
  }
  write_out();
}

void ConnectionImpl::write_out() noexcept {
  // Try the write now; queue only what the kernel did not take.
  IoChain& out = *out_;
  int n = uv_try_write(&h_.stream, reinterpret_cast<const uv_buf_t*>(out.iov()),
                       static_cast<unsigned>(out.iov_count()));
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) {
    write_failed(n);
    return;
  }
  out.consume(static_cast<size_t>(n));
  if (out.empty()) {
    return_output();
    if (closing_) do_close();
    return;
  }
  // The request lives only while a write is queued: an idle connection
  // does not carry one. The slab recycles it, so this is no malloc.
  wreq_ = static_cast<uv_write_t*>(loop_.slab_.allocate(sizeof(uv_write_t)));
  if (!wreq_) {
    fail(UV_ENOMEM);
    return;
  }
  writing_ = true;
  int rc = uv_write(wreq_, &h_.stream, reinterpret_cast<const uv_buf_t*>(out.iov()),
                    static_cast<unsigned>(out.iov_count()), &ConnectionImpl::on_write);
  if (rc != 0) {
    writing_ = false;
    release_write_request();
    write_failed(rc);
    return;
  }
  // The peer is not taking its output: stop reading its input until it does.
  if (out.size() > loop_.options_.output_high_water) pause(kPauseOutput);
}

void ConnectionImpl::release_write_request() noexcept {
  loop_.slab_.deallocate(wreq_);
  wreq_ = nullptr;
}

void ConnectionImpl::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<ConnectionImpl*>(req->handle->data);
  c->release_write_request();
  c->writing_ = false;
  c->return_output();
  if (c->closed_) return;
  if (status < 0) {
    c->write_failed(status);
    return;
  }
  c->resume(kPauseOutput);
  // The handler may have produced more while we waited.
  c->loop_.mark_dirty(c);
}

// A reset (or a peer gone) fails the write, yet what the peer sent before it
// may still wait in the receive buffer: a server that refuses an upload
// answers at once and closes with the body unread. So a client drops its
// output and reads on until the input ends, then closes with the write's
// error. A server has nobody left to answer; a handler that holds its input
// back would keep the dead connection open; other errors, or a close already
// asked for: all of these end the connection now.
void ConnectionImpl::write_failed(int error) noexcept {
  if (!outbound() || closing_ || closed_ || (paused_ & kPauseUser) ||
      (error != UV_EPIPE && error != UV_ECONNRESET)) {
    fail(error);
    return;
  }
  write_failed_ = true;
  close_error_ = error;
  extra().error_text = uv_strerror(error);
  return_output();
  resume(kPauseOutput);  // no output is waiting any more
}

void ConnectionImpl::close() noexcept {
  if (closed_ || closing_) return;
  closing_ = true;
  loop_.mark_dirty(this);
}

void ConnectionImpl::fail(int error, std::string text) noexcept {
  if (closed_) return;
  close_error_ = error;
  if (!text.empty())
    extra().error_text = std::move(text);
  else if (error != 0 && error_text().empty())
    extra().error_text = uv_strerror(error);
  do_close();
}

void ConnectionImpl::do_close() noexcept {
  if (closed_) return;
  closed_ = true;
  clear_deadline();
  if (reading_) uv_read_stop(&h_.stream);
  reading_ = false;
  if (Outbound* ob = outbound(); ob && ob->resolving)
    uv_cancel(reinterpret_cast<uv_req_t*>(&ob->resolve));
  uv_close(&h_.handle, &ConnectionImpl::on_closed);
}

void ConnectionImpl::on_closed(uv_handle_t* h) {
  auto* c = static_cast<ConnectionImpl*>(h->data);
  if (c->handler_) c->handler_->on_close(*c, c->close_error_);
  c->return_output();
  c->loop_.remove_connection(c);
  // Flush phase may still list us; drop the entry before freeing.
  if (c->in_dirty_) c->loop_.forget_dirty(c);
  c->handle_closed_ = true;
  c->maybe_delete();
}

void ConnectionImpl::maybe_delete() noexcept {
  // A name lookup runs on libuv's thread pool; its callback still needs us.
  if (!handle_closed_ || (outbound() && outbound()->resolving)) return;
  LoopImpl& loop = loop_;
  delete this;
  loop.maybe_finish();
}

void ConnectionImpl::pause(uint8_t reason) noexcept {
  if (write_failed_ && (reason & kPauseUser)) {
    fail(close_error_);  // nothing would end the dead connection while paused
    return;
  }
  paused_ = static_cast<uint8_t>(paused_ | reason);
  if (reading_) {
    uv_read_stop(&h_.stream);
    reading_ = false;
  }
}

void ConnectionImpl::resume(uint8_t reason) noexcept {
  paused_ = static_cast<uint8_t>(paused_ & ~reason);
  if (closed_ || paused_ || reading_ || !started_) return;
  reading_ = true;
  int rc = uv_read_start(&h_.stream, &ConnectionImpl::on_alloc, &ConnectionImpl::on_read);
  if (rc != 0) fail(rc);
}

void ConnectionImpl::set_deadline(uint64_t delay_ms) noexcept {
  if (closed_) return;
  deadline_.fire = &ConnectionImpl::on_deadline;
  deadline_.context = this;
  loop_.arm(deadline_, delay_ms);
}

void ConnectionImpl::clear_deadline() noexcept {
  loop_.cancel(deadline_);
}

void ConnectionImpl::on_deadline(TimerEntry* t) {
  auto* c = static_cast<ConnectionImpl*>(t->context);
  if (c->closed_) return;
  if (!c->opened_) {
    // Still connecting (outbound) or handshaking: the connection never opened.
    Outbound* ob = c->outbound();
    uint64_t ms = ob ? static_cast<uint64_t>(ob->options.timeout.count())
                     : static_cast<uint64_t>(c->loop_.options_.tls_handshake_timeout.count());
    std::string what = ob ? "connect " + ob->target : "TLS handshake";
    c->fail(UV_ETIMEDOUT, what + ": timed out after " + std::to_string(ms) + " ms");
    return;
  }
  c->handler_->on_timeout(*c);
}

void ConnectionImpl::switch_handler(std::unique_ptr<ConnectionHandler> next, Bytes unread) {
  if (closed_ || !next) return;
  extra().retired.push_back(std::move(handler_));
  handler_ = std::move(next);
  loop_.mark_dirty(this);  // the flush frees the retired handler
  handler_->on_open(*this);
  if (!unread.empty() && !closed_) handler_->on_data(*this, unread);
}

// ---- outbound ----------------------------------------------------------------

void ConnectionImpl::connect_tcp(const std::string& host, uint16_t port, ConnectOptions options) {
  Outbound& ob = *(extra().outbound = std::make_unique<Outbound>());
  std::string& target = ob.target;
  bool v6 = host.find(':') != std::string::npos;
  if (v6) target.push_back('[');
  target.append(host);
  if (v6) target.push_back(']');
  target.push_back(':');
  target.append(std::to_string(port));
  ob.options = std::move(options);
  ob.port = port;
  ob.resolve.data = this;
  ob.connect.data = this;
  int rc = init_handle();
  if (rc != 0) {
    fail(rc, "connect " + ob.target + ": " + uv_strerror(rc));
    return;
  }
  set_deadline(static_cast<uint64_t>(ob.options.timeout.count()));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
  std::string service = std::to_string(port);
  ob.resolving = true;
  // Runs getaddrinfo on libuv's thread pool; a numeric address resolves at once there too.
  rc = uv_getaddrinfo(loop_.uv_loop(), &ob.resolve, &ConnectionImpl::on_resolved, host.c_str(),
                      service.c_str(), &hints);
  if (rc != 0) {
    ob.resolving = false;
    fail(rc, "resolve " + host + ": " + uv_strerror(rc));
  }
}

void ConnectionImpl::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* c = static_cast<ConnectionImpl*>(req->data);
  Outbound& ob = *c->outbound();
  ob.resolving = false;
  if (c->closed_) {
    if (res) uv_freeaddrinfo(res);
    c->maybe_delete();
    return;
  }
  if (status < 0 || !res) {
    if (res) uv_freeaddrinfo(res);
    std::string host = ob.target.substr(0, ob.target.rfind(':'));
    c->fail(status < 0 ? status : UV_EAI_NONAME,
            "resolve " + host + ": " + uv_strerror(status < 0 ? status : UV_EAI_NONAME));
    return;
  }
  ob.connecting = true;
  int rc = uv_tcp_connect(&ob.connect, &c->h_.tcp, res->ai_addr, &ConnectionImpl::on_connected);
  uv_freeaddrinfo(res);
  if (rc != 0) {
    ob.connecting = false;
    c->fail(rc, "connect " + ob.target + ": " + uv_strerror(rc));
  }
}

void ConnectionImpl::connect_unix(const std::string& path, ConnectOptions options) {
  Outbound& ob = *(extra().outbound = std::make_unique<Outbound>());
  ob.target = path;
  ob.options = std::move(options);
  ob.connect.data = this;
  int rc = init_handle();
  if (rc != 0) {
    fail(rc, "connect " + path + ": " + uv_strerror(rc));
    return;
  }
  set_deadline(static_cast<uint64_t>(ob.options.timeout.count()));
  ob.connecting = true;
  uv_pipe_connect(&ob.connect, &h_.pipe, path.c_str(), &ConnectionImpl::on_connected);
}

void ConnectionImpl::on_connected(uv_connect_t* req, int status) {
  auto* c = static_cast<ConnectionImpl*>(req->data);
  Outbound& ob = *c->outbound();
  ob.connecting = false;
  if (c->closed_) return;  // cancelled by close(); on_closed follows
  if (status < 0) {
    c->fail(status, "connect " + ob.target + ": " + uv_strerror(status));
    return;
  }
  c->start(nullptr);
}

void ConnectionImpl::drain() noexcept {
  if (closed_) return;
  handler_->on_drain(*this);
}

}  // namespace detail

using detail::impl;

Loop& Connection::loop() const noexcept {
  return impl(*this).loop_;
}
uint64_t Connection::id() const noexcept {
  return impl(*this).id_;
}
void Connection::want_write() noexcept {
  impl(*this).want_write();
}
void Connection::close() noexcept {
  impl(*this).close();
}
void Connection::abort() noexcept {
  impl(*this).abort();
}
void Connection::pause_reading() noexcept {
  impl(*this).pause(detail::ConnectionImpl::kPauseUser);
}
void Connection::resume_reading() noexcept {
  impl(*this).resume(detail::ConnectionImpl::kPauseUser);
}
bool Connection::closing() const noexcept {
  return impl(*this).closing();
}
size_t Connection::pending_output() const noexcept {
  return impl(*this).pending_output();
}
void Connection::set_deadline(uint64_t delay_ms) noexcept {
  impl(*this).set_deadline(delay_ms);
}
void Connection::clear_deadline() noexcept {
  impl(*this).clear_deadline();
}
void Connection::switch_handler(std::unique_ptr<ConnectionHandler> next, Bytes unread) {
  impl(*this).switch_handler(std::move(next), std::move(unread));
}
bool Connection::secure() const noexcept {
  return impl(*this).secure();
}
std::string_view Connection::alpn() const noexcept {
  return impl(*this).alpn();
}
std::string_view Connection::server_name() const noexcept {
  return impl(*this).server_name();
}
const std::string& Connection::error_text() const noexcept {
  return impl(*this).error_text();
}

PeerAddress Connection::peer() const noexcept {
  const auto& c = impl(*this);
  PeerAddress p;
  if (c.is_unix_) {
    p.family = PeerAddress::Family::unix_socket;
    return p;
  }
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(reinterpret_cast<const uv_tcp_t*>(c.handle()),
                         reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return p;
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    std::memcpy(p.address, &a->sin6_addr, 16);
    p.port = ntohs(a->sin6_port);
    p.family = PeerAddress::Family::ipv6;
  } else if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    std::memcpy(p.address, &a->sin_addr, 4);
    p.port = ntohs(a->sin_port);
    p.family = PeerAddress::Family::ipv4;
  }
  return p;
}

std::string Connection::peer_address() const {
  std::string text;
  peer().format(text);
  return text;
}

namespace {
// Writes `v` (at most 65535) in decimal at `p`; returns the end.
char* put_decimal(char* p, unsigned v) noexcept {
  char digits[5];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < 5);
  while (n > 0)
    *p++ = digits[--n];
  return p;
}
char* put_literal(char* p, std::string_view s) noexcept {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
}  // namespace

void PeerAddress::format(std::string& out) const {
  // Built in a local buffer and assigned once: this runs for every request
  // of an HTTP/1.1 connection, where growing `out` byte by byte cost more
  // than the formatting.
  char text[64];  // "[" IPv6 "]:" port: 54 at most
  char* p = text;
  switch (family) {
    case Family::unknown:
      p = put_literal(p, "?");
      break;
    case Family::unix_socket:
      p = put_literal(p, "unix");
      break;
    case Family::ipv4:
      for (int i = 0; i < 4; ++i) {
        if (i) *p++ = '.';
        p = put_decimal(p, address[i]);
      }
      break;
    case Family::ipv6:
      *p++ = '[';
      if (!inet_ntop(AF_INET6, address, p, INET6_ADDRSTRLEN)) {
        p = put_literal(text, "?");
        break;
      }
      p += std::strlen(p);
      *p++ = ']';
      break;
  }
  if (family == Family::ipv4 || (family == Family::ipv6 && text[0] == '[')) {
    *p++ = ':';
    p = put_decimal(p, port);
  }
  out.clear();
  out.append(text, static_cast<size_t>(p - text));
}

void ConnectionHandler::on_timeout(Connection& conn) {
  conn.abort();
}

// ---- Loop: outbound connections ----------------------------------------------

void Loop::connect(const std::string& host, uint16_t port,
                   std::unique_ptr<ConnectionHandler> handler, ConnectOptions options) {
  auto& loop = impl(*this);
  auto* c = new detail::ConnectionImpl(loop, false, loop.next_connection_id_++);
  c->set_handler(std::move(handler));
  c->connect_tcp(host, port, std::move(options));
}

void Loop::connect_unix(const std::string& path, std::unique_ptr<ConnectionHandler> handler,
                        ConnectOptions options) {
  auto& loop = impl(*this);
  auto* c = new detail::ConnectionImpl(loop, true, loop.next_connection_id_++);
  c->set_handler(std::move(handler));
  c->connect_unix(path, std::move(options));
}

}  // namespace ember
