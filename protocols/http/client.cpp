#include "protocols/http/client.hpp"

#include <cerrno>
#include <utility>
#include <vector>

namespace ember::http {

namespace {

H2ClientOptions h2_options(const ClientOptions& o) {
  H2ClientOptions h;
  h.connect_timeout = o.http1.connect_timeout;
  h.response_head_timeout = o.http1.response_head_timeout;
  h.idle_timeout = o.http1.idle_timeout;
  h.request_timeout = o.http1.request_timeout;
  h.max_response_head_bytes = o.http1.max_response_head_bytes;
  h.max_response_body_bytes = o.http1.max_response_body_bytes;
  h.tls = o.h2_tls;
  return h;
}

}  // namespace

// A request to an https:// origin whose protocol is not known yet: sent as
// HTTP/2, and again as HTTP/1.1 when the origin's ALPN says so. It keeps the
// request for that, and stands between the inner client and the caller.
struct Client::Probe final : http1::ClientHandler {
  Client* client = nullptr;
  uint64_t id = 0;
  http1::ClientHandler* user = nullptr;
  std::string key;  // host:port
  std::string method, url;
  std::vector<std::pair<std::string, std::string>> fields;
  Bytes body;
  http1::BodySource source;
  H2RequestHandle h2;
  http1::RequestHandle h1;
  bool on_h1 = false;

  http1::ClientRequest rebuild(std::vector<http1::Field>& views) {
    views.clear();
    for (const auto& [n, v] : fields)
      views.push_back({n, v});
    http1::ClientRequest q;
    q.method = method;
    q.url = url;
    q.headers = views;
    q.body = body;  // shared, not copied
    if (source.pull) {
      // The caller's source stays here, in case the request goes again.
      q.source.pull = [this] { return source.pull(); };
      q.source.length = source.length;
      if (source.rewind) q.source.rewind = [this] { return source.rewind(); };
    }
    return q;
  }

  void on_head(const http1::ResponseHead& head) override {
    if (!on_h1) client->h2_origins_.insert(key);
    user->on_head(head);
  }
  http1::Action on_body(const Bytes& chunk) override { return user->on_body(chunk); }
  void on_complete() override {
    http1::ClientHandler* u = user;
    client->probe_ended(this);
    u->on_complete();
  }
  void on_error(const Error& error) override {
    if (!on_h1 && error.code == -EPROTONOSUPPORT &&
        (!source.pull || !source.rewind || source.rewind())) {
      client->h1_origins_.insert(key);
      on_h1 = true;
      std::vector<http1::Field> views;
      auto again = client->h1_.request(rebuild(views), *this);
      if (again) {
        h1 = *again;
        return;
      }
      http1::ClientHandler* u = user;
      Error e = again.error();
      client->probe_ended(this);
      return u->on_error(e);
    }
    http1::ClientHandler* u = user;
    client->probe_ended(this);
    u->on_error(error);
  }
};

Client::Client(Loop& loop, Options options)
    : loop_(loop),
      options_(std::move(options)),
      h1_(loop, options_.http1),
      h2_(loop, h2_options(options_)) {}

Client::~Client() = default;

size_t Client::connections() const noexcept {
  return h1_.connections() + h2_.connections();
}

Client::Probe* Client::probe(uint64_t id) const noexcept {
  auto it = probes_.find(id);
  return it == probes_.end() ? nullptr : it->second.get();
}

void Client::probe_ended(Probe* p) noexcept {
  // Freed after the callback that ended it has returned to the inner client.
  struct Item : MailboxItem {
    std::unique_ptr<Probe> probe;
  };
  auto it = probes_.find(p->id);
  if (it == probes_.end()) return;
  auto item = std::make_unique<Item>();
  item->probe = std::move(it->second);
  probes_.erase(it);
  item->run = [](MailboxItem* self, Loop*) { delete static_cast<Item*>(self); };
  loop_.post(item.release());
}

Result<RequestHandle> Client::request_as(http1::ClientRequest q, http1::ClientHandler& handler,
                                         Protocol mode) {
  RequestHandle h;
  h.client_ = this;
  http1::ParsedUrl u;
  bool parsed = http1::parse_url(q.url, u).empty();
  if (mode == Protocol::http1 || !parsed || (mode == Protocol::automatic && !u.https)) {
    auto r = h1_.request(std::move(q), handler);  // also reports what is wrong with the URL
    if (!r) return r.error();
    h.h1_ = *r;
    return h;
  }
  std::string key(u.host);
  key.push_back(':');
  key.append(std::to_string(u.port));
  if (mode == Protocol::automatic && h1_origins_.contains(key)) {
    auto r = h1_.request(std::move(q), handler);
    if (!r) return r.error();
    h.h1_ = *r;
    return h;
  }
  if (mode == Protocol::h2 || h2_origins_.contains(key)) {
    auto r = h2_.request(std::move(q), handler);
    if (!r) return r.error();
    h.h2_ = *r;
    return h;
  }
  auto owned = std::make_unique<Probe>();
  Probe* p = owned.get();
  p->client = this;
  p->id = next_probe_++;
  p->user = &handler;
  p->key = std::move(key);
  p->method.assign(q.method);
  p->url.assign(q.url);
  for (const http1::Field& f : q.headers)
    p->fields.emplace_back(std::string(f.name), std::string(f.value));
  p->body = std::move(q.body);
  p->source = std::move(q.source);
  probes_.emplace(p->id, std::move(owned));
  std::vector<http1::Field> views;
  auto r = h2_.request(p->rebuild(views), *p);
  if (!r) {
    probes_.erase(p->id);
    return r.error();
  }
  if (probe(h.probe_ = p->id)) p->h2 = *r;
  return h;
}

void RequestHandle::cancel() noexcept {
  if (!probe_) {
    h1_.cancel();
    h2_.cancel();
    return;
  }
  if (Client::Probe* p = client_ ? client_->probe(probe_) : nullptr) {
    p->h1.cancel();
    p->h2.cancel();
    client_->probe_ended(p);
  }
}

void RequestHandle::pause_response() noexcept {
  Client::Probe* p = probe_ && client_ ? client_->probe(probe_) : nullptr;
  (p ? p->h1 : h1_).pause_response();
  (p ? p->h2 : h2_).pause_response();
}

void RequestHandle::resume_response() noexcept {
  Client::Probe* p = probe_ && client_ ? client_->probe(probe_) : nullptr;
  (p ? p->h1 : h1_).resume_response();
  (p ? p->h2 : h2_).resume_response();
}

void RequestHandle::resume_upload() noexcept {
  Client::Probe* p = probe_ && client_ ? client_->probe(probe_) : nullptr;
  (p ? p->h1 : h1_).resume_upload();
  (p ? p->h2 : h2_).resume_upload();
}

bool RequestHandle::active() const noexcept {
  if (!probe_) return h1_.active() || h2_.active();
  return client_ && client_->probe(probe_) != nullptr;
}

}  // namespace ember::http
