// Internal: the edge's connection handlers and what they hand each other on
// a protocol switch.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/flare.hpp"
#include "ember/reactor.hpp"
#include "handlers/flare/edge.hpp"

namespace ember::flare::detail {

// A request head copied out of the parser's buffers (one small copy per
// request), so that it outlives the read that carried it. The storage's
// capacity is reused from request to request.
struct StoredRequest {
  std::string storage;              // method, target, host and field bytes
  std::vector<HeaderField> fields;  // views into storage
  std::string_view method, url, host;
  std::string_view protocol;  // "HTTP/1.1", "HTTP/1.0", "HTTP/2"
  std::string_view scheme;    // "http" / "https"
  std::string remote;         // peer address
  Bytes body;

  // Copies the strings into storage (call once per request, fields last).
  void assign(std::string_view method, std::string_view url, std::string_view host,
              std::span<const HeaderField> fields);
  Request view() const;
};

// HTTP/1.1 on a fresh connection. It switches to HTTP/2 when ALPN chose h2,
// when the client starts with the HTTP/2 preface (h2c prior knowledge), or
// on "Upgrade: h2c"; to WebSocket on an accepted "Upgrade: websocket".
std::unique_ptr<ConnectionHandler> make_http1_connection(LoopEdge& edge);

// HTTP/1.1 "Upgrade: h2c": the request that asked for it becomes stream 1.
struct H2cUpgrade {
  std::string settings;  // HTTP2-Settings, base64url-decoded SETTINGS payload
  bool head_request = false;
  StoredRequest request;
};
// HTTP/2 (TLS with ALPN h2, h2c prior knowledge, or an h2c upgrade).
std::unique_ptr<ConnectionHandler> make_h2_connection(LoopEdge& edge,
                                                      std::unique_ptr<H2cUpgrade> upgrade = {});

// WebSocket after a 101 for `route`'s flare, which the connection keeps for
// its life; `request` is the upgrade request.
std::unique_ptr<ConnectionHandler> make_ws_connection(LoopEdge& edge, const Route& route,
                                                      StoredRequest request);

}  // namespace ember::flare::detail
