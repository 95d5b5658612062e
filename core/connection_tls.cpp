// The TLS half of a connection: the engine between the socket and the
// handler. connection.cpp reaches it only through ConnectionImpl::TlsHooks,
// installed when the first TLS context is made, so programs without TLS
// neither link nor load OpenSSL.
#include <memory>
#include <string>
#include <utility>

#include "core/loop_impl.hpp"

namespace ember {
namespace detail {

struct ConnectionImpl::TlsLayer final : tls::Sink {
  explicit TlsLayer(ConnectionImpl& conn) : c(conn) { plain.use_pool(conn.loop_.pool_); }
  // Decrypted input goes to the handler; the handshake opens it.
  void on_handshake_done() override { c.open_handler(); }
  void on_plaintext(const Bytes& data) override {
    if (!c.closed_) c.handler_->on_data(c, data);
  }

  ConnectionImpl& c;
  std::shared_ptr<tls::ServerContext> server;  // kept alive with the engine
  std::shared_ptr<tls::ClientContext> client;
  std::unique_ptr<tls::Engine> engine;
  IoChain plain;  // the handler's output before encryption
  bool shutdown = false;
};

void ConnectionImpl::start_tls() noexcept {
  Extra& x = extra();
  if (!x.tls_layer) x.tls_layer.reset(new TlsLayer(*this));
  TlsLayer& layer = *x.tls_layer;
  if (layer.server) {
    layer.engine = tls::Engine::server(*layer.server, loop_.pool_);
    if (!deadline_.armed())
      set_deadline(static_cast<uint64_t>(loop_.options_.tls_handshake_timeout.count()));
  } else {
    Outbound& ob = *x.outbound;
    layer.client = ob.options.tls;
    std::string host = ob.options.server_name;
    if (host.empty()) host = ob.target.substr(0, ob.target.rfind(':'));
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    layer.engine = tls::Engine::client(*layer.client, host, loop_.pool_, ob.port);
  }
  x.tls = layer.engine.get();
  if (!x.tls) {
    fail(UV_ENOMEM, "TLS: cannot create a session (out of memory)");
    return;
  }
  loop_.mark_dirty(this);  // a client's ClientHello goes out in the flush
}

void ConnectionImpl::feed_tls(const Bytes& data) noexcept {
  tls::Engine* tls = extra_->tls;
  Result<void> r = tls->feed(data, *extra_->tls_layer);
  if (closed_) return;
  if (!r) {
    // Send the alert OpenSSL queued, then close.
    extra_->error_text = r.error().message;
    close_error_ = UV_EPROTO;
    closing_ = true;
    loop_.mark_dirty(this);
    return;
  }
  if (tls->peer_closed()) {
    close();  // close_notify: the peer sends nothing more
    return;
  }
  if (tls->wants_write()) loop_.mark_dirty(this);
}

void ConnectionImpl::flush_tls() noexcept {
  TlsLayer& layer = *extra_->tls_layer;
  tls::Engine* tls = extra_->tls;
  IoChain& out = output();
  if (opened_ && !tls->failed()) {
    for (auto& old : extra_->retired)
      old->on_writable(*this, layer.plain);
    extra_->retired.clear();
    handler_->on_writable(*this, layer.plain);
    if (closed_) return;
    if (!layer.plain.empty()) {
      Result<void> r = tls->encrypt(layer.plain, out);
      if (!r) {
        fail(UV_EPROTO, r.error().message);
        return;
      }
    }
    if (closing_ && !layer.shutdown && out.size() < loop_.options_.output_high_water) {
      layer.shutdown = true;
      tls->shutdown();
    }
  }
  Result<void> r = tls->produce(out);
  if (!r && out.empty()) {
    fail(UV_EPROTO, r.error().message);
    return;
  }
  if (out.empty()) {
    return_output();
    if (closing_) do_close();
    return;
  }
  write_out();
}

const ConnectionImpl::TlsHooks& ConnectionImpl::openssl_hooks() noexcept {
  static const TlsHooks hooks = {
      .use_server =
          [](ConnectionImpl& c, std::shared_ptr<tls::ServerContext> ctx) {
            Extra& x = c.extra();
            if (!x.tls_layer) x.tls_layer.reset(new TlsLayer(c));
            x.tls_layer->server = std::move(ctx);
          },
      .destroy = [](TlsLayer* layer) noexcept { delete layer; },
      .start = [](ConnectionImpl& c) noexcept { c.start_tls(); },
      .feed = [](ConnectionImpl& c, const Bytes& data) noexcept { c.feed_tls(data); },
      .flush = [](ConnectionImpl& c) noexcept { c.flush_tls(); },
      .alpn = [](const tls::Engine& e) noexcept { return e.alpn(); },
      .server_name = [](const tls::Engine& e) noexcept { return e.server_name(); },
  };
  return hooks;
}

void enable_connection_tls() noexcept {
  ConnectionImpl::install_tls(&ConnectionImpl::openssl_hooks());
}

}  // namespace detail
}  // namespace ember
