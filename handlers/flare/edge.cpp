#include "handlers/flare/edge.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <exception>

#include "ember/log.hpp"

namespace ember::flare::detail {
namespace {

// 0: "*", 1: "*.suffix", 2: exact.
int host_rank(std::string_view pattern) noexcept {
  if (pattern == "*") return 0;
  if (pattern.starts_with("*.")) return 1;
  return 2;
}

bool host_matches(std::string_view pattern, std::string_view host) noexcept {
  // Host fields may carry a port; names compare case-insensitively.
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(']') == std::string_view::npos)
    host = host.substr(0, colon);
  if (pattern == "*") return true;
  auto ieq = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      char x = a[i];
      if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
      if (x != b[i]) return false;
    }
    return true;
  };
  if (pattern.starts_with("*.")) {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && ieq(host.substr(host.size() - suffix.size()), suffix);
  }
  return ieq(host, pattern);
}

bool path_matches(std::string_view prefix, std::string_view path) noexcept {
  if (!path.starts_with(prefix)) return false;
  if (prefix.empty() || prefix.back() == '/' || path.size() == prefix.size()) return true;
  char next = path[prefix.size()];
  return next == '/' || next == '?';
}

}  // namespace

Router::Router(std::vector<Route> routes) : routes_(std::move(routes)) {
  std::stable_sort(routes_.begin(), routes_.end(), [](const Route& a, const Route& b) {
    if (a.first != b.first) return a.first;
    int ra = host_rank(a.host), rb = host_rank(b.host);
    if (ra != rb) return ra > rb;
    return a.path.size() > b.path.size();
  });
}

const Route* Router::match(std::string_view host, std::string_view path) const noexcept {
  for (const Route& r : routes_)
    if (host_matches(r.host, host) && path_matches(r.path, path)) return &r;
  return nullptr;
}

void Rooms::broadcast(std::string_view room, std::string_view data, bool text) {
  // One shared copy for every loop; each loop delivers it to its members.
  Bytes payload = Bytes::copy(data);
  std::string name(room);
  for (LoopEdge* edge : loops_) {
    if (edge->loop.on_loop_thread()) {
      edge->deliver_local(name, payload, text);
      continue;
    }
    edge->loop.post(
        [edge, name, payload, text](Loop&) { edge->deliver_local(name, payload, text); });
  }
}

void LoopEdge::error_response(Response& response, int status, std::string_view text) {
  response.set_status(status);
  response.remove_header("content-type");
  response.set_header("content-type", "text/plain; charset=utf-8");
  response.set_body(text);
}

void LoopEdge::busy_response(Response& response) {
  try {
    response.set_header("retry-after", "1");
    error_response(response, 503,
                   "this server has too many requests waiting on origins; retry shortly\n");
  } catch (const std::exception&) {
    response.reset();
    response.set_status(503);
  }
}

void LoopEdge::invoke(const Route* route, const Request& request, Response& response) {
  run_flare(route, request, response, arena_, scratch_, nullptr, false);
}

Action LoopEdge::run_flare(const Route* route, const Request& request, Response& response,
                           Arena& arena, Scratch& scratch, Fetcher* fetcher, bool proxying) {
  if (!route) {
    try {
      std::string text =
          "no flare serves " + std::string(request.host()) + std::string(request.path()) + "\n";
      error_response(response, 404, text);
    } catch (const std::exception&) {
      response.set_body(Bytes::unowned(std::string_view("no route\n")));
    }
    return Action::respond;
  }
  Context ctx(request, response, scratch, loop.index(), route->flare_name, fetcher);
  Action action;
  try {
    action = route->flare->handle_request(ctx);
  } catch (const ArenaExhausted& e) {
    EMBER_WARN("ember.flare", "flare ran out of its arena", {"flare", route->flare_name},
               {"limit", e.limit()}, {"error", e.what()});
    arena.reset();  // the answer below needs a little room
    response.reset();
    error_response(response, 500,
                   "flare '" + route->flare_name + "' ran out of its " + std::to_string(e.limit()) +
                       "-byte arena\n");
    return Action::respond;
  } catch (const std::exception& e) {
    EMBER_WARN("ember.flare", "flare failed", {"flare", route->flare_name}, {"error", e.what()});
    arena.reset();
    response.reset();
    error_response(response, 500,
                   "flare '" + route->flare_name + "' failed; the server log has the details\n");
    return Action::respond;
  } catch (...) {
    EMBER_WARN("ember.flare", "flare threw a non-exception", {"flare", route->flare_name});
    arena.reset();
    response.reset();
    error_response(response, 500, "flare '" + route->flare_name + "' failed\n");
    return Action::respond;
  }
  if (response.status() < 200) {
    // An interim status would leave the request unanswered and the client
    // reading the next answer as this one's (HTTP/1.1's 101 switches protocols).
    int status = response.status();
    EMBER_WARN("ember.flare", "flare answered with an interim status; answering 500",
               {"flare", route->flare_name}, {"status", status});
    arena.reset();
    response.reset();
    error_response(response, 500,
                   "flare '" + route->flare_name + "' answered with the interim status " +
                       std::to_string(status) + "; a flare's answer must be 200..599\n");
    return Action::respond;
  }
  if (action == Action::respond || (proxying && !route->origin.empty())) return action;
  arena.reset();
  response.reset();
  error_response(response, 502,
                 "flare '" + route->flare_name + "' asked to " +
                     (action == Action::passthrough ? "pass the request through to"
                                                    : "transform the answer of") +
                     " the origin, but its route has no 'origin:' in the config\n");
  return Action::respond;
}

uint64_t LoopEdge::head_length(const Response& response) noexcept {
  const Bytes& body = response.body_bytes();
  if (!body.empty()) return body.size();
  std::string_view v = response.header("content-length").value_or("");
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  return ec == std::errc() && end == v.data() + v.size() ? n : 0;
}

Bytes LoopEdge::stable_body(const Response& response) {
  const Bytes& body = response.body_bytes();
  if (!response.body_in_arena() || body.empty()) return body;
  MutableBuffer buf = loop.buffers().take(body.size());
  std::memcpy(buf.data(), body.data(), body.size());
  return std::move(buf).freeze(body.size());
}

std::unique_ptr<PooledRequestState> LoopEdge::take_state() noexcept {
  if (free_states_.empty()) return nullptr;
  std::unique_ptr<PooledRequestState> state = std::move(free_states_.back());
  free_states_.pop_back();
  return state;
}

void LoopEdge::give_state(std::unique_ptr<PooledRequestState> state) noexcept {
  if (free_states_.size() < kMaxPooledStates) free_states_.push_back(std::move(state));
}

void LoopEdge::join(std::string_view room, RoomMember* member) {
  auto& members = rooms_[std::string(room)];
  if (std::find(members.begin(), members.end(), member) == members.end()) members.push_back(member);
}

void LoopEdge::leave(RoomMember* member) {
  for (auto it = rooms_.begin(); it != rooms_.end();) {
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), member), v.end());
    it = v.empty() ? rooms_.erase(it) : std::next(it);
  }
}

void LoopEdge::deliver_local(std::string_view room, const Bytes& data, bool text) {
  auto it = rooms_.find(std::string(room));
  if (it == rooms_.end()) return;
  std::vector<RoomMember*> members = it->second;  // delivery may close a member
  for (RoomMember* m : members)
    m->deliver(data, text);
}

}  // namespace ember::flare::detail
