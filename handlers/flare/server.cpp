// The edge server: config → reactor, listeners (plain and TLS), per-loop state.
#include <mutex>
#include <sstream>

#include "core/tls.hpp"
#include "ember/flare_server.hpp"
#include "ember/log.hpp"
#include "handlers/flare/connections.hpp"
#include "handlers/flare/edge.hpp"

namespace ember::flare {

struct Server::Impl {
  ServerConfig config;
  const Registry& registry;
  std::unique_ptr<detail::Shared> shared;
  // Declared before the reactor, so destroyed after it: connections still open
  // when the reactor goes give their state back to their LoopEdge.
  std::vector<std::unique_ptr<detail::LoopEdge>> loops;
  std::unique_ptr<Reactor> reactor;
  std::vector<std::shared_ptr<tls::ServerContext>> tls;  // per listener (null: plain)
  std::vector<uint16_t> ports;
  bool bound = false;
  mutable std::mutex routes_mutex;
  std::shared_ptr<const detail::Router> router;  // the newest table (routes_mutex)

  Impl(ServerConfig c, const Registry& r) : config(std::move(c)), registry(r) {}
};

Server::Server(ServerConfig config, const Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), registry)) {}

Server::~Server() = default;

Result<void> Server::bind() {
  Impl& s = *impl_;
  if (s.bound) return Error("Server::bind() called twice");
  // Routes name flares that must exist.
  std::vector<detail::Route> routes;
  for (const RouteConfig& r : s.config.routes) {
    std::shared_ptr<Flare> f = s.registry.find(r.flare);
    if (!f) {
      std::string known;
      for (const std::string& n : s.registry.names())
        known += (known.empty() ? "" : ", ") + n;
      return Error(s.config.origin + ": route " + r.host + r.path + " names flare '" + r.flare +
                   "', which is not registered (registered: " + known + ")");
    }
    routes.push_back({r.host, r.path, r.flare, std::move(f), false, r.origin, r.origin_protocol});
  }
  s.router = std::make_shared<const detail::Router>(std::move(routes));
  s.shared = std::make_unique<detail::Shared>(detail::Shared{s.config, nullptr, s.router, {}});
  if (!s.config.beam.ca_file.empty()) {
    tls::ClientConfig tc;
    tc.ca_file = s.config.beam.ca_file;
    auto ctx = tls::ClientContext::create(tc);
    if (!ctx) return Error(s.config.origin + ": beam.ca_file: " + ctx.error().message);
    s.shared->beam_tls = *ctx;
    tc.alpn = {"h2", "http/1.1"};  // the same trust, for HTTP/2
    ctx = tls::ClientContext::create(std::move(tc));
    if (!ctx) return Error(s.config.origin + ": beam.ca_file: " + ctx.error().message);
    s.shared->beam_h2_tls = *ctx;
  }

  ReactorOptions ro;
  ro.threads = s.config.loops;
  ro.pin_threads = s.config.pin_loops;
  ro.max_connections = s.config.limits.max_connections;
  ro.drain_timeout = std::chrono::milliseconds(s.config.limits.drain_timeout_ms);
  ro.tls_handshake_timeout = std::chrono::milliseconds(s.config.limits.header_timeout_ms);
  s.reactor = std::make_unique<Reactor>(ro);
  std::vector<detail::LoopEdge*> edges;
  for (size_t i = 0; i < s.reactor->size(); ++i) {
    s.loops.push_back(std::make_unique<detail::LoopEdge>(s.reactor->loop(i), *s.shared));
    edges.push_back(s.loops.back().get());
  }
  s.shared->rooms.attach(edges);

  for (const ListenerConfig& l : s.config.listeners) {
    std::shared_ptr<tls::ServerContext> ctx;
    if (l.tls()) {
      tls::ServerConfig tc;
      for (const Certificate& c : l.certificates)
        tc.certificates.push_back({c.cert_file, c.key_file, c.hosts});
      tc.alpn = l.alpn;
      auto created = tls::ServerContext::create(std::move(tc));
      if (!created)
        return Error("listener " + l.host + ":" + std::to_string(l.port) + ": " +
                     created.error().message);
      ctx = *created;
    }
    auto* loops = &s.loops;
    auto port = s.reactor->listen_tcp(
        l.host, l.port,
        [loops](Loop& loop) { return detail::make_http1_connection(*(*loops)[loop.index()]); },
        ctx);
    if (!port) return port.error();
    s.ports.push_back(*port);
    s.tls.push_back(std::move(ctx));
  }
  s.reactor->on_reload([this] {
    Result<void> r = reload_certificates();
    if (!r)
      EMBER_ERROR("ember.edge", "certificate reload failed; still serving the old ones",
                  {"error", r.error().message});
  });
  s.bound = true;
  return {};
}

const std::vector<uint16_t>& Server::ports() const noexcept {
  return impl_->ports;
}

std::string Server::describe() const {
  const Impl& s = *impl_;
  std::ostringstream out;
  for (size_t i = 0; i < s.config.listeners.size(); ++i) {
    const ListenerConfig& l = s.config.listeners[i];
    uint16_t port = i < s.ports.size() ? s.ports[i] : l.port;
    std::string scheme = l.tls() ? "https" : "http";
    out << "listening " << scheme << "://" << l.host << ":" << port
        << (l.tls() ? "  (TLS; ALPN " : "  (HTTP/1.1, h2c, WebSocket")
        << (l.tls() ? [&] {
             std::string a;
             for (const auto& p : l.alpn) a += (a.empty() ? "" : ", ") + p;
             return a + ")";
           }()
                    : std::string(")"))
        << "\n";
  }
  for (const RouteConfig& r : s.config.routes)
    out << "route    " << r.host << r.path << "  ->  " << r.flare << "\n";
  if (s.config.admin.enabled())
    out << "admin    *" << s.config.admin.path << "  (deploy API; bearer token)\n";
  out << "loops    " << (s.reactor ? s.reactor->size() : s.config.loops) << "\n";
  return out.str();
}

int Server::run() {
  if (!impl_->bound) {
    EMBER_ERROR("ember.edge", "Server::run() before bind()");
    return 1;
  }
  return impl_->reactor->run();
}

void Server::stop() noexcept {
  if (impl_->reactor) impl_->reactor->stop();
}

Result<void> Server::reload_certificates() {
  size_t n = 0;
  for (auto& ctx : impl_->tls) {
    if (!ctx) continue;
    Result<void> r = ctx->reload();
    if (!r) return r;
    ++n;
  }
  EMBER_INFO("ember.edge", "TLS certificates reloaded", {"listeners", n});
  return {};
}

std::vector<LiveRoute> Server::routes() const {
  std::lock_guard lock(impl_->routes_mutex);
  return impl_->router ? impl_->router->routes() : std::vector<LiveRoute>{};
}

void Server::set_routes(std::vector<LiveRoute> routes) {
  Impl& s = *impl_;
  auto router = std::make_shared<const detail::Router>(std::move(routes));
  {
    std::lock_guard lock(s.routes_mutex);
    s.router = std::move(router);
  }
  // Each loop takes the newest table when its turn comes (never inside an
  // invocation: the route being served stays valid), so the order in which
  // concurrent calls' posts arrive does not matter.
  for (auto& edge : s.loops) {
    detail::LoopEdge* e = edge.get();
    e->loop.post([&s, e](Loop&) {
      std::shared_ptr<const detail::Router> newest;
      {
        std::lock_guard lock(s.routes_mutex);
        newest = s.router;
      }
      e->set_router(std::move(newest));
    });
  }
}

}  // namespace ember::flare
