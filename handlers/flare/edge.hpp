// Internal: what every edge connection handler shares — routes, limits, the
// per-loop arena and the flare invocation boundary.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ember/arena.hpp"
#include "ember/flare.hpp"
#include "ember/flare_server.hpp"
#include "ember/reactor.hpp"

namespace ember::tls {
class ClientContext;
}

namespace ember::flare::detail {

using Route = LiveRoute;

class Router {
 public:
  explicit Router(std::vector<Route> routes);
  // Routes marked `first` (the admin API), then the most specific route:
  // exact host over wildcard over "*", then the longest path prefix (matched
  // at a segment boundary).
  const Route* match(std::string_view host, std::string_view path) const noexcept;
  const std::vector<Route>& routes() const noexcept { return routes_; }

 private:
  std::vector<Route> routes_;  // most specific first
};

class LoopEdge;

// WebSocket rooms across loops (the chat example): membership per loop,
// broadcasts posted to every loop's mailbox.
class Rooms {
 public:
  void attach(std::vector<LoopEdge*> loops) { loops_ = std::move(loops); }
  void broadcast(std::string_view room, std::string_view data, bool text);

 private:
  std::vector<LoopEdge*> loops_;
};

struct Shared {
  ServerConfig config;
  std::shared_ptr<tls::ClientContext> beam_tls;  // beam.ca_file's; null: the system's
  std::shared_ptr<const Router> router;          // the table each loop starts with
  Rooms rooms;
  std::shared_ptr<tls::ClientContext> beam_h2_tls = {};  // the same, offering h2 with ALPN
};

// A WebSocket connection as a room member sees it.
class RoomMember {
 public:
  virtual ~RoomMember() = default;
  virtual void deliver(const Bytes& data, bool text) = 0;
};

// Per-request state an HTTP/1.1 connection borrows from its loop while a
// request is in progress (parser, request copy), so idle keep-alive
// connections hold none. Only that one concrete type goes into the pool.
struct PooledRequestState {
  virtual ~PooledRequestState() = default;
};

// beam: the host (lower case; IPv6 in brackets) and port of an http(s) URL,
// or false; and whether beam.allow lets a flare fetch from it.
bool beam_origin(std::string_view url, std::string* host, uint16_t* port, bool* https);
bool beam_allowed(const std::vector<std::string>& allow, const std::string& host, uint16_t port);

// Hears that a waiting invocation has answered (loop thread).
class InvocationWaiter {
 public:
  virtual void invocation_done() = 0;

 protected:
  ~InvocationWaiter() = default;
};

struct Invocation;  // waiting.cpp
class Waiting;      // waiting.cpp: fibers, spare invocations, the beam client

// Per loop: the arena every invocation on this loop uses (invocations on a
// loop never overlap), the loop's room members and its pool of request state.
class LoopEdge {
 public:
  LoopEdge(Loop& loop, Shared& shared);
  ~LoopEdge();
  Loop& loop;
  Shared& shared;
  const Limits& limits() const noexcept { return shared.config.limits; }

  // This loop's route table (loop thread). Server::set_routes() replaces it
  // between two turns; a WebSocket connection keeps the flare it was routed
  // to for as long as it lives.
  const std::shared_ptr<const Router>& router() const noexcept { return router_; }
  void set_router(std::shared_ptr<const Router> router) noexcept { router_ = std::move(router); }

  // Runs the route's flare on `request`. Never throws: a failing flare,
  // an exhausted arena or a proxy action becomes an error response. The
  // response's views stay valid until finish() is called.
  void invoke(const Route* route, const Request& request, Response& response);
  // A route whose invocations run on a fiber: its flare may wait (fetch),
  // or it has an origin to forward to.
  static bool waits(const Route& route) noexcept {
    return !route.origin.empty() || route.flare->may_wait();
  }
  // For a route that waits(): runs its flare on a fiber with an arena and
  // a copy of `request` of its own. The invocation is done() when start()
  // returns unless the flare waits (a fetch); then `waiter` hears
  // invocation_done() once it has answered. Either way the caller writes
  // response(*inv) and then calls finish(inv). Null when the loop cannot
  // take another (beam.max_waiting, no memory): answer busy_response().
  Invocation* start(const Route& route, const Request& request, InvocationWaiter& waiter) noexcept;
  // 503 for a request start() refused.
  void busy_response(Response& response);
  static bool done(const Invocation& inv) noexcept;
  static Response& response(Invocation& inv) noexcept;
  static const std::string& flare_name(const Invocation& inv) noexcept;
  // The answer was written: its arena, request copy and fiber are recycled.
  void finish(Invocation* inv) noexcept;
  // The waiter is gone (connection closed, stream reset): the answer is
  // dropped when it comes.
  void abandon(Invocation* inv) noexcept;

  // A plain error answer (no flare involved).
  void error_response(Response& response, int status, std::string_view text);
  // Copies an arena body out (into a pool buffer), so that it survives
  // finish(). Bodies given as Bytes are returned as they are.
  Bytes stable_body(const Response& response);
  // The length to announce when answering HEAD: the body's, or when the
  // flare sent none, its own Content-Length if that is a plain number.
  static uint64_t head_length(const Response& response) noexcept;
  Scratch& scratch() noexcept { return scratch_; }
  // Ends an invocation: the arena is reset in one step.
  void finish() noexcept { arena_.reset(); }

  // Request state recycled between connections (loop thread): take_state()
  // returns null when the pool is empty; give_state() keeps up to
  // kMaxPooledStates and frees the rest.
  std::unique_ptr<PooledRequestState> take_state() noexcept;
  void give_state(std::unique_ptr<PooledRequestState> state) noexcept;
  static constexpr size_t kMaxPooledStates = 256;

  // Rooms (loop thread).
  void join(std::string_view room, RoomMember* member);
  void leave(RoomMember* member);
  void deliver_local(std::string_view room, const Bytes& data, bool text);

 private:
  friend class Waiting;
  friend struct Invocation;
  // invoke() with a given arena (the loop's, or a waiting invocation's).
  // Answers passthrough or transform (the response left as the flare built
  // it) only when `proxying` and the route has an origin; otherwise the
  // response is complete (a 502 for a proxy action) and the answer respond.
  Action run_flare(const Route* route, const Request& request, Response& response, Arena& arena,
                   Scratch& scratch, Fetcher* fetcher, bool proxying);
  // Continues a waiting invocation whose fetch has ended (loop thread).
  void resume(Invocation* inv);

  std::shared_ptr<const Router> router_;
  std::unique_ptr<Waiting> waiting_;
  Arena arena_;
  Scratch scratch_;
  std::vector<std::unique_ptr<PooledRequestState>> free_states_;
  std::unordered_map<std::string, std::vector<RoomMember*>> rooms_;
};

}  // namespace ember::flare::detail
