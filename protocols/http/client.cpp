#include "protocols/http/client.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <utility>

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

// A request to an https:// origin not known to speak only HTTP/1.1: sent as
// HTTP/2, and again as HTTP/1.1 when the origin's ALPN says so. It keeps the
// request for that and stands between the inner client and the caller.
// Recycled: the strings keep their capacity.
struct RequestHandle::Probe final : http1::ClientHandler {
  Client* client = nullptr;
  uint64_t gen = 0;
  bool live = false;
  Probe* next = nullptr;  // free list
  http1::ClientHandler* user = nullptr;
  std::string key;  // host:port
  std::string method, url;
  std::string field_store;          // names and values, back to back
  std::vector<uint32_t> field_pos;  // name off, name len, value off, value len
  std::vector<http1::Field> views;
  Bytes body;
  http1::BodySource source;
  H2RequestHandle h2;
  http1::RequestHandle h1;
  bool on_h1 = false;
  bool paused = false;

  http1::ClientRequest rebuild() {
    views.clear();
    std::string_view store = field_store;
    for (size_t i = 0; i + 3 < field_pos.size(); i += 4)
      views.push_back({store.substr(field_pos[i], field_pos[i + 1]),
                       store.substr(field_pos[i + 2], field_pos[i + 3])});
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

  void on_head(const http1::ResponseHead& head) override { user->on_head(head); }
  http1::Action on_body(const Bytes& chunk) override {
    uint64_t g = gen;
    http1::Action a = user->on_body(chunk);
    // The callback may have cancelled this request and started another on
    // this same (recycled) record: the pause is not the new one's.
    if (a == http1::Action::pause && live && gen == g) paused = true;
    return a;
  }
  void on_complete() override {
    http1::ClientHandler* u = user;
    client->recycle(this);  // may be taken again from u's callback: touch nothing after
    u->on_complete();
  }
  void on_error(const Error& error) override {
    bool refused = !on_h1 && error.code == -EPROTONOSUPPORT;
    uint64_t g = gen;
    bool replayable = refused && (!source.pull || !source.rewind || source.rewind());
    if (!live || gen != g) return;  // the caller's rewind() cancelled it
    if (replayable) {
      uint64_t now = client->loop_.now_ms();
      uint64_t keep =
          static_cast<uint64_t>(std::max<int64_t>(0, client->options_.http1_memory.count()));
      client->h1_origins_[key] = now + std::min(keep, UINT64_MAX - now);
      on_h1 = true;
      auto again = client->h1_.request(rebuild(), *this);
      if (again) {
        h1 = *again;
        if (paused) h1.pause_response();
        return;
      }
      http1::ClientHandler* u = user;
      Error e = again.error();
      client->recycle(this);
      return u->on_error(e);
    }
    http1::ClientHandler* u = user;
    client->recycle(this);
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

bool Client::known_http1(const std::string& key) {
  auto it = h1_origins_.find(key);
  if (it == h1_origins_.end()) return false;
  if (loop_.now_ms() < it->second) return true;
  h1_origins_.erase(it);  // time to offer h2 again
  return false;
}

bool Client::remembers_http1(std::string_view origin) const {
  auto it = h1_origins_.find(std::string(origin));
  return it != h1_origins_.end() && loop_.now_ms() < it->second;
}

Client::Probe* Client::take_probe() {
  Probe* p = free_probes_;
  if (p) {
    free_probes_ = p->next;
  } else {
    probes_.push_back(std::make_unique<Probe>());
    p = probes_.back().get();
    p->client = this;
  }
  p->gen = next_gen_++;
  p->live = true;
  p->on_h1 = p->paused = false;
  p->h1 = {};
  p->h2 = {};
  return p;
}

void Client::recycle(Probe* p) noexcept {
  p->live = false;
  p->user = nullptr;
  p->body = {};
  if (p->source.pull || p->source.rewind) {
    // The caller may be inside its own pull() or rewind() (cancelling from
    // there): the functions are destroyed after it has returned.
    struct Item : MailboxItem {
      http1::BodySource source;
    };
    auto* item = new Item;
    item->source = std::move(p->source);
    item->run = [](MailboxItem* self, Loop*) { delete static_cast<Item*>(self); };
    loop_.post(item);
  }
  p->source = {};
  p->next = free_probes_;
  free_probes_ = p;
}

Result<RequestHandle> Client::request_as(http1::ClientRequest q, http1::ClientHandler& handler,
                                         Protocol mode) {
  RequestHandle h;
  http1::ParsedUrl u;
  bool parsed = http1::parse_url(q.url, u).empty();
  if (mode == Protocol::h2 && parsed) {
    auto r = h2_.request(std::move(q), handler);
    if (!r) return r.error();
    h.h2_ = *r;
    return h;
  }
  std::string& key = key_;  // capacity kept: no allocation per request
  key.clear();
  if (parsed && u.https && mode == Protocol::automatic) {
    key.assign(u.host);
    key.push_back(':');
    char port[8];
    key.append(port, std::to_chars(port, port + sizeof port, u.port).ptr);
  }
  if (key.empty() || known_http1(key)) {
    auto r = h1_.request(std::move(q), handler);  // also says what is wrong with a URL
    if (!r) return r.error();
    h.h1_ = *r;
    return h;
  }
  Probe* p = take_probe();
  p->user = &handler;
  p->key.assign(key);
  p->method.assign(q.method);
  p->url.assign(q.url);
  p->field_store.clear();
  p->field_pos.clear();
  for (const http1::Field& f : q.headers) {
    p->field_pos.push_back(static_cast<uint32_t>(p->field_store.size()));
    p->field_pos.push_back(static_cast<uint32_t>(f.name.size()));
    p->field_store.append(f.name);
    p->field_pos.push_back(static_cast<uint32_t>(p->field_store.size()));
    p->field_pos.push_back(static_cast<uint32_t>(f.value.size()));
    p->field_store.append(f.value);
  }
  p->body = std::move(q.body);
  p->source = std::move(q.source);
  uint64_t gen = p->gen;
  auto r = h2_.request(p->rebuild(), *p);
  if (!r) {
    recycle(p);
    return r.error();
  }
  h.probe_ = p;
  h.gen_ = gen;
  if (p->live && p->gen == gen) p->h2 = *r;  // else it ended at once (a failed connect)
  return h;
}

RequestHandle::Probe* RequestHandle::live_probe() const noexcept {
  return probe_ && probe_->live && probe_->gen == gen_ ? probe_ : nullptr;
}

void RequestHandle::cancel() noexcept {
  if (!probe_) {
    h1_.cancel();
    h2_.cancel();
  } else if (Probe* p = live_probe()) {
    p->h1.cancel();
    p->h2.cancel();
    p->client->recycle(p);
  }
}

void RequestHandle::pause_response() noexcept {
  if (!probe_) {
    h1_.pause_response();
    h2_.pause_response();
  } else if (Probe* p = live_probe()) {
    p->paused = true;
    (p->on_h1 ? static_cast<void>(p->h1.pause_response()) : p->h2.pause_response());
  }
}

void RequestHandle::resume_response() noexcept {
  if (!probe_) {
    h1_.resume_response();
    h2_.resume_response();
  } else if (Probe* p = live_probe()) {
    p->paused = false;
    (p->on_h1 ? static_cast<void>(p->h1.resume_response()) : p->h2.resume_response());
  }
}

void RequestHandle::resume_upload() noexcept {
  if (!probe_) {
    h1_.resume_upload();
    h2_.resume_upload();
  } else if (Probe* p = live_probe()) {
    (p->on_h1 ? static_cast<void>(p->h1.resume_upload()) : p->h2.resume_upload());
  }
}

bool RequestHandle::active() const noexcept {
  if (!probe_) return h1_.active() || h2_.active();
  return live_probe() != nullptr;
}

}  // namespace ember::http
