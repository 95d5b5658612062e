#include <algorithm>
#include <cassert>
#include <climits>

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

ConnectionImpl::ConnectionImpl(LoopImpl& loop, bool is_unix, uint64_t id)
    : loop_(loop), id_(id), is_unix_(is_unix) {}

ConnectionImpl::~ConnectionImpl() {
  if (rbuf_) rbuf_->release();
}

int ConnectionImpl::init_handle() {
  int rc =
      is_unix_ ? uv_pipe_init(loop_.uv_loop(), &h_.pipe, 0) : uv_tcp_init(loop_.uv_loop(), &h_.tcp);
  h_.handle.data = this;
  loop_.add_connection(this);
  return rc;
}

void ConnectionImpl::start(std::unique_ptr<ConnectionHandler> handler) {
  handler_ = std::move(handler);
  if (!is_unix_) uv_tcp_nodelay(&h_.tcp, 1);
  if (size_t want = loop_.options_.socket_send_buffer) {
    int value = static_cast<int>(std::min<size_t>(want, INT32_MAX));
    uv_send_buffer_size(&h_.handle, &value);  // capped by net.core.wmem_max; best effort
  }
  reading_ = true;
  int rc = uv_read_start(&h_.stream, &ConnectionImpl::on_alloc, &ConnectionImpl::on_read);
  if (rc != 0) {
    fail(rc);
    return;
  }
  handler_->on_open(*this);
}

void ConnectionImpl::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<ConnectionImpl*>(h->data);
  c->direct_ = ReadTarget{};
  if (!c->closed_ && c->handler_->read_target(c->direct_) && c->direct_.size > 0) {
    buf->base = reinterpret_cast<char*>(c->direct_.data);
    buf->len = c->direct_.size;
    return;
  }
  c->direct_ = ReadTarget{};
  // Nobody holds a slice of the current buffer any more: start it over, so a
  // request/response connection keeps reusing one hot buffer.
  if (c->rbuf_ && c->rbuf_->use_count() == 1) c->roff_ = 0;
  if (!c->rbuf_ || c->rbuf_->capacity() - c->roff_ < kMinReadTail) {
    if (c->rbuf_) c->rbuf_->release();
    c->rbuf_ = std::move(c->loop_.pool_.take(c->loop_.options_.read_buffer_size)).release();
    c->roff_ = 0;
  }
  buf->base = reinterpret_cast<char*>(c->rbuf_->data() + c->roff_);
  buf->len = c->rbuf_->capacity() - c->roff_;
}

void ConnectionImpl::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<ConnectionImpl*>(s->data);
  c->loop_.note_activity();
  if (c->direct_.storage) {
    ReadTarget t = c->direct_;
    c->direct_ = ReadTarget{};
    if (nread > 0) {
      Bytes data = Bytes::share(t.storage, t.data, static_cast<size_t>(nread));
      if (!c->closed_) c->handler_->on_data(*c, data);
      return;
    }
  } else if (nread > 0) {
    assert(reinterpret_cast<uint8_t*>(buf->base) == c->rbuf_->data() + c->roff_);
    Bytes data =
        Bytes::share(c->rbuf_, reinterpret_cast<uint8_t*>(buf->base), static_cast<size_t>(nread));
    c->roff_ += static_cast<size_t>(nread);
    if (!c->closed_) c->handler_->on_data(*c, data);
    return;
  }
  if (nread == 0) return;  // EAGAIN
  c->fail(nread == UV_EOF ? 0 : static_cast<int>(nread));
}

void ConnectionImpl::want_write() noexcept {
  if (!closed_) loop_.mark_dirty(this);
}

void ConnectionImpl::flush() noexcept {
  if (closed_ || writing_) return;
  handler_->on_writable(*this, out_);
  if (closed_) return;  // the handler aborted
  if (out_.empty()) {
    if (closing_) do_close();
    return;
  }
  write_out();
}

void ConnectionImpl::write_out() noexcept {
  // Try the write now; queue only what the kernel did not take.
  int n = uv_try_write(&h_.stream, reinterpret_cast<const uv_buf_t*>(out_.iov()),
                       static_cast<unsigned>(out_.iov_count()));
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) {
    fail(n);
    return;
  }
  out_.consume(static_cast<size_t>(n));
  if (out_.empty()) {
    out_.clear();
    if (closing_) do_close();
    return;
  }
  writing_ = true;
  int rc = uv_write(&wreq_, &h_.stream, reinterpret_cast<const uv_buf_t*>(out_.iov()),
                    static_cast<unsigned>(out_.iov_count()), &ConnectionImpl::on_write);
  if (rc != 0) {
    writing_ = false;
    fail(rc);
  }
}

void ConnectionImpl::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<ConnectionImpl*>(req->handle->data);
  c->writing_ = false;
  c->out_.clear();
  if (c->closed_) return;
  if (status < 0) {
    c->fail(status);
    return;
  }
  // The handler may have produced more while we waited.
  c->loop_.mark_dirty(c);
}

void ConnectionImpl::close() noexcept {
  if (closed_ || closing_) return;
  closing_ = true;
  loop_.mark_dirty(this);
}

void ConnectionImpl::fail(int error) noexcept {
  if (closed_) return;
  close_error_ = error;
  do_close();
}

void ConnectionImpl::do_close() noexcept {
  if (closed_) return;
  closed_ = true;
  if (reading_) uv_read_stop(&h_.stream);
  uv_close(&h_.handle, &ConnectionImpl::on_closed);
}

void ConnectionImpl::on_closed(uv_handle_t* h) {
  auto* c = static_cast<ConnectionImpl*>(h->data);
  if (c->handler_) c->handler_->on_close(*c, c->close_error_);
  c->out_.clear();
  c->loop_.remove_connection(c);
  LoopImpl& loop = c->loop_;
  // Flush phase may still list us; drop the entry before freeing.
  if (c->in_dirty_) loop.forget_dirty(c);
  delete c;
  loop.maybe_finish();
}

void ConnectionImpl::pause_reading() noexcept {
  if (closed_ || paused_) return;
  paused_ = true;
  if (reading_) {
    uv_read_stop(&h_.stream);
    reading_ = false;
  }
}

void ConnectionImpl::resume_reading() noexcept {
  if (closed_ || !paused_) return;
  paused_ = false;
  if (!reading_) {
    reading_ = true;
    if (uv_read_start(&h_.stream, &ConnectionImpl::on_alloc, &ConnectionImpl::on_read) != 0)
      fail(UV_EIO);
  }
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
  impl(*this).pause_reading();
}
void Connection::resume_reading() noexcept {
  impl(*this).resume_reading();
}
bool Connection::closing() const noexcept {
  return impl(*this).closing();
}

}  // namespace ember
