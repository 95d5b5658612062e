// Flares that wait: an invocation of a flare whose may_wait() is true runs on
// a Fiber of its loop, with an arena and a copy of the request of its own.
// Context::fetch() sends the request through the loop's HTTP client and
// suspends the fiber; the client's answer is handed back through the loop's
// mailbox (never from inside the client's callback), the fiber resumes, and
// once the flare returns its connection hears invocation_done().
//
// Invocations (with their fiber and arena) are recycled per loop. At the
// loop's stop, anything still waiting is resumed with an error, so no fiber
// is left holding a stack.
#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "core/fiber.hpp"
#include "ember/log.hpp"
#include "handlers/flare/connections.hpp"
#include "handlers/flare/edge.hpp"
#include "protocols/http/client.hpp"
#include "protocols/http1/chars.hpp"

namespace ember::flare::detail {

namespace {

constexpr size_t kSpareInvocations = 128;  // per loop, each with a fiber and an arena

}  // namespace

bool beam_origin(std::string_view url, std::string* host, uint16_t* port, bool* https) {
  http1::ParsedUrl u;  // the client's own reading of the URL
  if (!http1::parse_url(url, u).empty()) return false;
  bool v6 = u.host.find(':') != std::string_view::npos;
  host->clear();
  if (v6) host->push_back('[');
  host->append(u.host);
  if (v6) host->push_back(']');
  for (char& c : *host)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  *port = u.port;
  *https = u.https;
  return true;
}

bool beam_allowed(const std::vector<std::string>& allow, const std::string& host, uint16_t port) {
  std::string with_port = host + ":" + std::to_string(port);
  for (const std::string& a : allow) {
    if (a == "*" || a == host || a == with_port) return true;
    if (a.starts_with("*.") && host.size() > a.size() - 1 &&
        host.compare(host.size() - (a.size() - 1), a.size() - 1, a, 1) == 0)
      return true;
  }
  return false;
}

namespace {

// "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678" -> "::1" (X-Forwarded-For).
std::string_view address_only(std::string_view peer) {
  if (peer.starts_with('[')) {
    size_t close = peer.find(']');
    return close == std::string_view::npos ? peer : peer.substr(1, close - 1);
  }
  size_t colon = peer.rfind(':');
  return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

http::Protocol client_protocol(HttpProtocol p) {
  switch (p) {
    case HttpProtocol::http1:
      return http::Protocol::http1;
    case HttpProtocol::h2:
      return http::Protocol::h2;
    case HttpProtocol::automatic:
      break;
  }
  return http::Protocol::automatic;
}

bool hop_by_hop(std::string_view name) {
  return http1::iequals(name, "host") || http1::iequals(name, "content-length") ||
         http1::iequals(name, "transfer-encoding") || http1::iequals(name, "connection") ||
         http1::iequals(name, "keep-alive") || http1::iequals(name, "upgrade") ||
         http1::iequals(name, "te") || http1::iequals(name, "trailer");
}

// The options of a Connection field value: the fields they name are
// hop-by-hop too (RFC 9110 §7.6.1), and an intermediary removes them.
void add_connection_options(std::string_view value, std::vector<std::string_view>* options) {
  http1::chars::for_each_element(value, [&](std::string_view o) { options->push_back(o); });
}

bool named_in(const std::vector<std::string_view>& options, std::string_view name) {
  for (std::string_view o : options)
    if (http1::iequals(o, name)) return true;
  return false;
}

}  // namespace

// One invocation of a flare that may wait, and the fetch it waits for.
struct Invocation final : Fetcher, http1::ClientHandler {
  Invocation(LoopEdge& e, size_t arena_size)
      : edge(e), arena(arena_size, arena_size), scratch(arena), response(scratch) {}

  LoopEdge& edge;
  Arena arena;
  Scratch scratch;
  Route route;  // a copy: the table may be replaced while it waits
  StoredRequest stored;
  std::optional<Request> request;
  Response response;
  std::unique_ptr<Fiber> fiber;
  InvocationWaiter* waiter = nullptr;
  bool done = false;
  bool abandoned = false;
  uint32_t fetches = 0;

  // The fetch in flight (its state lives here, not on the fiber's stack).
  bool fetching = false;
  http::RequestHandle handle;
  FetchResponse answer;
  std::optional<Error> failure;
  uint64_t max_response = 0;
  const char* max_name = "";  // the knob behind max_response, for messages
  struct WakeItem : MailboxItem {
    Invocation* inv = nullptr;
  } wake_item;

  static void run(void* self) {
    auto* inv = static_cast<Invocation*>(self);
    try {
      Action action = inv->edge.run_flare(&inv->route, *inv->request, inv->response, inv->arena,
                                          inv->scratch, inv, true);
      if (action != Action::respond) inv->proxy(action);
    } catch (...) {  // nothing may leave a fiber's first frame
      inv->response.reset();
      inv->response.set_status(500);
      inv->response.set_body(Bytes::unowned(std::string_view("the flare failed\n")));
    }
  }

  Result<FetchResponse> fetch(const FetchRequest& request) override;
  // Sends `cr` on `client` and waits (on the fiber) for the whole answer.
  Result<FetchResponse> exchange(http::Client& client, http1::ClientRequest cr,
                                 HttpProtocol protocol, uint64_t max, const char* max_name);
  // Action::passthrough / transform: the request to the route's origin.
  void proxy(Action action);

  // ---- the client's callbacks (loop thread, outside the fiber) ----
  void on_head(const http1::ResponseHead& head) override {
    answer.status = head.status;
    for (const http1::Field& f : head.fields) {
      std::string name(f.name);
      for (char& c : name)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      answer.headers.emplace_back(std::move(name), std::string(f.value));
    }
    if (head.has_body && head.content_length && *head.content_length > max_response) {
      failure =
          Error("the answer's body (" + std::to_string(*head.content_length) +
                " bytes) is larger than " + max_name + " (" + std::to_string(max_response) + ")");
      handle.cancel();
      wake();
    }
  }
  http1::Action on_body(const Bytes& chunk) override {
    if (answer.body.size() + chunk.size() > max_response) {
      failure = Error(std::string("the answer's body is larger than ") + max_name + " (" +
                      std::to_string(max_response) + " bytes)");
      handle.cancel();
      wake();
      return http1::Action::pause;
    }
    answer.body.append(chunk.view());
    return http1::Action::proceed;
  }
  void on_complete() override { wake(); }
  void on_error(const Error& error) override {
    failure = error;
    wake();
  }

  // Resumes the fiber from the loop's next mailbox run, on a clean stack.
  void wake() {
    if (!fetching) return;
    fetching = false;
    wake_item.inv = this;
    wake_item.run = [](MailboxItem* item, Loop*) {
      Invocation* inv = static_cast<WakeItem*>(item)->inv;
      inv->edge.resume(inv);
    };
    edge.loop.post(&wake_item);
  }
};

class Waiting {
 public:
  explicit Waiting(LoopEdge& edge) : edge_(edge) {}

  // Null past beam.max_waiting.
  Invocation* take() {
    if (live_.size() >= edge_.shared.config.beam.max_waiting) return nullptr;
    std::unique_ptr<Invocation> inv;
    if (!spare_.empty()) {
      inv = std::move(spare_.back());
      spare_.pop_back();
    } else {
      inv = std::make_unique<Invocation>(edge_, edge_.limits().arena_size);
      inv->fiber = std::make_unique<Fiber>();
    }
    Invocation* raw = inv.get();
    live_.emplace(raw, std::move(inv));
    return raw;
  }

  void recycle(Invocation* inv) noexcept {
    auto it = live_.find(inv);
    if (it == live_.end()) return;
    std::unique_ptr<Invocation> owned = std::move(it->second);
    live_.erase(it);
    inv->arena.reset();
    inv->response.reset();
    inv->request.reset();
    inv->stored.body = Bytes();
    inv->route.flare.reset();
    inv->answer = FetchResponse();
    inv->failure.reset();
    inv->waiter = nullptr;
    if (spare_.size() < kSpareInvocations) spare_.push_back(std::move(owned));
  }

  http::Client& client() {
    if (!client_) {
      const BeamSettings& b = edge_.shared.config.beam;
      http::ClientOptions c;
      c.h2_tls = edge_.shared.beam_h2_tls;
      http1::ClientOptions& o = c.http1;
      o.connect_timeout = std::chrono::milliseconds(b.connect_timeout_ms);
      o.response_head_timeout = std::chrono::milliseconds(b.timeout_ms);
      o.request_timeout = std::chrono::milliseconds(b.timeout_ms);
      o.max_response_body_bytes = b.max_response;
      o.max_connections_per_origin = b.max_connections_per_origin;
      o.tls = edge_.shared.beam_tls;
      client_ = std::make_unique<http::Client>(edge_.loop, std::move(c));
    }
    return *client_;
  }

  // Routes' origins (passthrough, transform): the operator's own servers,
  // so no allowlist; their own limits.
  http::Client& origin_client() {
    if (!origin_client_) {
      const Limits& l = edge_.limits();
      http::ClientOptions c;
      c.h2_tls = edge_.shared.beam_h2_tls;
      http1::ClientOptions& o = c.http1;
      o.connect_timeout = std::chrono::milliseconds(l.origin_timeout_ms);
      o.response_head_timeout = std::chrono::milliseconds(l.origin_timeout_ms);
      o.request_timeout = std::chrono::milliseconds(l.origin_timeout_ms);
      o.max_response_body_bytes = l.max_origin_body;
      o.max_connections_per_origin = edge_.shared.config.beam.max_connections_per_origin;
      o.tls = edge_.shared.beam_tls;
      origin_client_ = std::make_unique<http::Client>(edge_.loop, std::move(c));
    }
    return *origin_client_;
  }

  // The loop has drained: what still waits gets an error and runs to its
  // end; then the client goes, while the loop still exists.
  void stop() {
    stopped_ = true;
    // Those whose answer is already posted resume from the loop's last
    // mailbox run; those still fetching are cut here.
    std::vector<Invocation*> waiting;
    for (auto& [raw, inv] : live_)
      if (inv->fiber->suspended() && inv->fetching) waiting.push_back(raw);
    for (Invocation* inv : waiting) {
      inv->handle.cancel();
      inv->failure = Error("the server stopped before the answer came");
      inv->fetching = false;
      edge_.resume(inv);
    }
    client_.reset();
    origin_client_.reset();
  }
  bool stopped() const noexcept { return stopped_; }

  ~Waiting() {
    // Only invocations that never waited (or ended) can be left; their
    // fibers hold no frames.
    for (auto& [raw, inv] : live_)
      if (inv->fiber->suspended())
        EMBER_ERROR("ember.flare", "a waiting invocation outlived its loop; its stack is leaked",
                    {"flare", inv->route.flare_name});
    for (auto& [raw, inv] : live_)
      if (inv->fiber->suspended()) (void)inv.release();
  }

 private:
  LoopEdge& edge_;
  std::vector<std::unique_ptr<Invocation>> spare_;
  std::unordered_map<Invocation*, std::unique_ptr<Invocation>> live_;
  std::unique_ptr<http::Client> client_;
  std::unique_ptr<http::Client> origin_client_;
  bool stopped_ = false;
};

Result<FetchResponse> Invocation::fetch(const FetchRequest& req) {
  const BeamSettings& beam = edge.shared.config.beam;
  auto refuse = [&](std::string why) {
    return Error("fetch " + std::string(req.method) + " " + std::string(req.url) + ": " + why);
  };
  if (Fiber::current() != fiber.get())
    return refuse("only the flare's own invocation may fetch (not another thread or fiber)");
  // A drain lets waiting flares finish (its timeout bounds them); only the
  // loop's stop refuses.
  if (edge.waiting_->stopped()) return refuse("the server has stopped");
  if (fetches >= beam.fetches_per_invocation)
    return refuse("this invocation has used its " + std::to_string(beam.fetches_per_invocation) +
                  " fetches (beam.fetches_per_invocation)");
  std::string host;
  uint16_t port = 0;
  bool https = false;
  if (!beam_origin(req.url, &host, &port, &https))
    return refuse("not an absolute http:// or https:// URL");
  if (!beam_allowed(beam.allow, host, port))
    return refuse("host " + host + ":" + std::to_string(port) + " is not in beam.allow");
  if (req.body.size() > beam.max_request)
    return refuse("the body (" + std::to_string(req.body.size()) +
                  " bytes) is larger than beam.max_request (" + std::to_string(beam.max_request) +
                  ")");
  ++fetches;

  std::vector<http1::Field> fields;
  fields.reserve(req.headers.size());
  for (const HeaderField& f : req.headers)
    if (!hop_by_hop(f.name)) fields.push_back({f.name, f.value});
  http1::ClientRequest cr;
  cr.method = req.method;
  cr.url = req.url;
  cr.headers = fields;
  if (!req.body.empty()) cr.body = Bytes::copy(req.body);
  auto got = exchange(edge.waiting_->client(), std::move(cr), beam.protocol, beam.max_response,
                      "beam.max_response");
  if (!got) return refuse(got.error().message);
  return got;
}

Result<FetchResponse> Invocation::exchange(http::Client& client, http1::ClientRequest cr,
                                           HttpProtocol protocol, uint64_t max, const char* name) {
  answer = FetchResponse();
  failure.reset();
  max_response = max;
  max_name = name;
  // Set first: a connection that fails at once calls on_error() from request().
  fetching = true;
  auto started = client.request_as(std::move(cr), *this, client_protocol(protocol));
  if (!started) {
    fetching = false;
    return started.error();
  }
  handle = *started;
  fiber->suspend();  // until wake() (or the loop's stop) resumes it
  handle = {};
  if (failure) return *failure;
  return std::move(answer);
}

void Invocation::proxy(Action action) {
  const Request& req = *request;
  const Limits& limits = edge.limits();
  std::string url = route.origin;
  url.append(req.url());
  // The request as it came, less hop-by-hop fields, plus where it came from.
  std::vector<http1::Field> fields;
  fields.reserve(req.headers().size() + 3);
  std::vector<std::string_view> request_connection;
  for (const HeaderField& f : req.headers())
    if (http1::iequals(f.name, "connection")) add_connection_options(f.value, &request_connection);
  for (const HeaderField& f : req.headers())
    if (!hop_by_hop(f.name) && !named_in(request_connection, f.name) &&
        !http1::iequals(f.name, "x-forwarded-for") &&
        !http1::iequals(f.name, "x-forwarded-proto") && !http1::iequals(f.name, "x-forwarded-host"))
      fields.push_back({f.name, f.value});
  fields.push_back({"x-forwarded-for", address_only(req.remote_address())});
  fields.push_back({"x-forwarded-proto", req.scheme()});
  fields.push_back({"x-forwarded-host", req.host()});
  http1::ClientRequest cr;
  cr.method = req.method();
  cr.url = url;
  cr.headers = fields;
  cr.body = req.body();  // by reference
  Result<FetchResponse> got = Error("the server has stopped");
  if (!edge.waiting_->stopped())
    got = exchange(edge.waiting_->origin_client(), std::move(cr), route.origin_protocol,
                   limits.max_origin_body, "limits.max_origin_body");
  if (!got) {
    EMBER_WARN("ember.flare", "the origin did not answer; 502", {"flare", route.flare_name},
               {"origin", route.origin}, {"error", got.error().message});
    arena.reset();
    response.reset();
    // The client learns nothing of the origin's address; the log has it.
    edge.error_response(response, 502,
                        "the origin did not answer; the server log has the details\n");
    return;
  }
  // Transform lays what the flare set over the origin's answer.
  std::vector<std::pair<std::string, std::string>> overlay;
  Bytes flare_body;
  int status = got->status < 200 || got->status > 599 ? 502 : got->status;
  if (action == Action::transform) {
    for (const HeaderField& f : response.headers())
      overlay.emplace_back(std::string(f.name), std::string(f.value));
    if (!response.body_bytes().empty()) flare_body = Bytes::copy(response.body());
    if (response.status_set()) status = response.status();
  }
  bool head = req.method() == "HEAD";
  std::vector<std::string_view> origin_connection;
  for (const auto& [name, value] : got->headers)
    if (http1::iequals(name, "connection")) add_connection_options(value, &origin_connection);
  arena.reset();
  response.reset();
  try {
    response.set_status(status);
    for (const auto& [name, value] : got->headers) {
      // A HEAD's Content-Length is the length a GET would have (RFC 9110
      // §8.6): head_length() announces it; otherwise the body sets it.
      if (http1::iequals(name, "content-length") ? !head : hop_by_hop(name)) continue;
      if (named_in(origin_connection, name)) continue;
      bool replaced = false;
      for (const auto& o : overlay)
        replaced = replaced || http1::iequals(o.first, name);
      if (!replaced) response.add_header(name, value);
    }
    for (const auto& [name, value] : overlay)
      response.add_header(name, value);
  } catch (const std::exception& e) {  // an arena too small for the origin's fields
    arena.reset();
    response.reset();
    edge.error_response(response, 502,
                        "the origin's answer does not fit the invocation's arena (" +
                            std::string(e.what()) + ")\n");
    return;
  }
  response.set_body(flare_body.empty() ? Bytes::from(std::move(got->body)) : std::move(flare_body));
}

// ---- LoopEdge's side ----------------------------------------------------------

LoopEdge::LoopEdge(Loop& l, Shared& s)
    : loop(l),
      shared(s),
      router_(s.router),
      waiting_(std::make_unique<Waiting>(*this)),
      arena_(s.config.limits.arena_size, s.config.limits.arena_size),
      scratch_(arena_) {
  free_states_.reserve(kMaxPooledStates);  // give_state() never allocates
  loop.at_stop([this] { waiting_->stop(); });
}

LoopEdge::~LoopEdge() = default;

Invocation* LoopEdge::start(const Route& route, const Request& request,
                            InvocationWaiter& waiter) noexcept {
  Invocation* inv = nullptr;
  try {
    inv = waiting_->take();
  } catch (const std::exception& e) {  // no memory, or no room for a stack
    EMBER_WARN("ember.flare", "cannot start a waiting invocation", {"flare", route.flare_name},
               {"error", e.what()});
    return nullptr;
  }
  if (!inv) {
    EMBER_WARN("ember.flare", "too many invocations waiting on this loop; answering 503",
               {"flare", route.flare_name}, {"max_waiting", shared.config.beam.max_waiting});
    return nullptr;
  }
  try {
    inv->route = route;
    inv->stored.assign(request.method(), request.url(), request.host(), request.headers());
    inv->stored.remote.assign(request.remote_address());
  } catch (const std::exception&) {
    finish(inv);
    return nullptr;
  }
  inv->stored.scheme = request.scheme();      // literals ("http", "https")
  inv->stored.protocol = request.protocol();  // literals ("HTTP/1.1", "HTTP/2")
  inv->stored.body = request.body();          // shares the buffer
  inv->request.emplace(inv->stored.view());
  inv->response.reset();
  inv->waiter = &waiter;
  inv->done = inv->abandoned = false;
  inv->fetches = 0;
  inv->done = inv->fiber->run(&Invocation::run, inv);
  return inv;
}

void LoopEdge::resume(Invocation* inv) {
  if (!inv->fiber->resume()) return;  // it fetches again
  inv->done = true;
  if (inv->abandoned) {
    finish(inv);
    return;
  }
  inv->waiter->invocation_done();
}

bool LoopEdge::done(const Invocation& inv) noexcept {
  return inv.done;
}

Response& LoopEdge::response(Invocation& inv) noexcept {
  return inv.response;
}

const std::string& LoopEdge::flare_name(const Invocation& inv) noexcept {
  return inv.route.flare_name;
}

void LoopEdge::finish(Invocation* inv) noexcept {
  waiting_->recycle(inv);
}

void LoopEdge::abandon(Invocation* inv) noexcept {
  inv->waiter = nullptr;
  inv->abandoned = true;
  if (inv->done) finish(inv);
}

}  // namespace ember::flare::detail
