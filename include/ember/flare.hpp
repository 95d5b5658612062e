// Native C++ flares: handlers for edge HTTP and WebSocket traffic.
//
// A flare gets an HTTP request (HTTP/1.1 or HTTP/2, plain or TLS) or a
// WebSocket event and answers it. Flares are registered by name in a
// Registry and routed by host and path prefix from `ember serve`'s config.
//
// Lifetimes. Each invocation gets a fresh bump arena (256 KiB by default,
// `limits.arena_size` in the config): every request-scoped allocation the API
// makes (header copies, body copies, formatted strings) comes from it and is
// released in one step when the invocation returns. Views the API hands out
// (method, path, headers, body, WebSocket data) are valid until the flare
// returns; copy what you keep. Running out of arena throws ArenaExhausted,
// which the host turns into a 500 (or WebSocket close 1011) with a message
// that names the flare and the knob; it never crashes the server.
//
// Threads. A flare runs on the loop thread that owns the connection and
// must not block: every loop serves many connections. To wait for another
// server, return true from may_wait() and call Context::fetch(): the
// invocation then runs on a fiber (a stack of its own) and the loop serves
// other requests, this flare's included, while it waits. One Flare object
// serves every loop at once, so its own state must be thread-safe (or per
// loop: Context::loop_index()).
//
// Errors. Exceptions a flare throws are caught at the invocation boundary:
// the client gets a 500 (close 1011 on WebSocket) and the log names the flare
// and the message. No exception crosses the event loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/arena.hpp"
#include "ember/bytes.hpp"
#include "ember/error.hpp"

namespace ember::flare {

inline constexpr size_t kDefaultArenaSize = 256 * 1024;

// What the host does once handle_request returns.
enum class Action {
  respond,      // send the Response the flare built
  passthrough,  // forward the request to the route's origin; send its answer
  transform,    // forward, then send the origin's answer with the flare's status
                // (if it set one), headers (replacing the origin's of the same
                // name) and body (if not empty) laid over it
};

// The per-invocation arena ran out.
class ArenaExhausted : public std::runtime_error {
 public:
  explicit ArenaExhausted(size_t wanted, size_t limit);
  size_t wanted() const noexcept { return wanted_; }
  size_t limit() const noexcept { return limit_; }

 private:
  size_t wanted_, limit_;
};

struct HeaderField {
  std::string_view name;  // lower case for HTTP/2; as sent for HTTP/1.1
  std::string_view value;
};

// Bump allocation from the invocation's arena; throws ArenaExhausted.
class Scratch {
 public:
  explicit Scratch(Arena& arena) noexcept : arena_(arena) {}
  void* allocate(size_t size, size_t align = alignof(std::max_align_t));
  std::string_view copy(std::string_view s);
  std::span<uint8_t> bytes(size_t n);
  size_t used() const noexcept { return arena_.used(); }
  size_t limit() const noexcept { return arena_.limit(); }
  Arena& arena() noexcept { return arena_; }

 private:
  Arena& arena_;
};

class Request {
 public:
  std::string_view method() const noexcept { return method_; }
  // The request target as sent: path and query ("/a/b?x=1").
  std::string_view url() const noexcept { return url_; }
  std::string_view path() const noexcept { return path_; }
  std::string_view query() const noexcept { return query_; }  // without '?'
  std::string_view host() const noexcept { return host_; }    // Host / :authority
  std::string_view scheme() const noexcept { return scheme_; }
  std::string_view protocol() const noexcept { return protocol_; }  // "HTTP/1.1", "HTTP/2"
  std::string_view remote_address() const noexcept { return remote_; }
  // First field named `name` (ASCII case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  std::span<const HeaderField> headers() const noexcept { return headers_; }
  // The whole body. Shares the receive buffer when it arrived in one piece.
  const Bytes& body() const noexcept { return body_; }

  // Host side: filled by the server before the invocation.
  struct Parts {
    std::string_view method, url, host, scheme, protocol, remote;
    std::span<const HeaderField> headers;
    Bytes body;
  };
  explicit Request(Parts parts) noexcept;

 private:
  std::string_view method_, url_, path_, query_, host_, scheme_, protocol_, remote_;
  std::span<const HeaderField> headers_;
  Bytes body_;
};

class Response {
 public:
  explicit Response(Scratch& scratch) noexcept : scratch_(scratch) {}

  // 100..599, else std::invalid_argument. Flares send no interim answers:
  // a 1xx answer reaches the client as a 500.
  void set_status(int status);
  int status() const noexcept { return status_; }
  // set_status() was called (Action::transform keeps the origin's otherwise).
  bool status_set() const noexcept { return status_set_; }
  // Replaces any field of that name. Names and values are copied into the
  // arena; names are sent lower case on HTTP/2. A name or value with CR, LF
  // or NUL throws std::invalid_argument (header injection). The server
  // frames the answer itself: Content-Length, Transfer-Encoding, Date,
  // Connection and Keep-Alive set here are not sent (nor, on HTTP/2, other
  // connection-specific fields). On HEAD, a Content-Length without a body
  // gives the length a GET would get.
  void set_header(std::string_view name, std::string_view value);
  void add_header(std::string_view name, std::string_view value);
  void remove_header(std::string_view name) noexcept;
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  std::span<const HeaderField> headers() const noexcept { return {fields_, count_}; }
  // Copies the bytes into the arena.
  void set_body(std::string_view body);
  void set_body(std::span<const uint8_t> body);
  // Sends `body` by reference: no copy (e.g. the request body, a cached file).
  void set_body(Bytes body) noexcept;
  std::string_view body() const noexcept { return body_.view(); }
  const Bytes& body_bytes() const noexcept { return body_; }
  // Host side: the body lives in the arena and must be copied before the
  // invocation ends.
  bool body_in_arena() const noexcept { return body_in_arena_; }
  // Host side: back to an empty 200 (after the arena was reset).
  void reset() noexcept {
    status_ = 200;
    status_set_ = false;
    fields_ = nullptr;
    count_ = capacity_ = 0;
    body_ = Bytes();
    body_in_arena_ = false;
  }

 private:
  void append_field(std::string_view name, std::string_view value);

  Scratch& scratch_;
  int status_ = 200;
  bool status_set_ = false;
  HeaderField* fields_ = nullptr;
  size_t count_ = 0;
  size_t capacity_ = 0;
  Bytes body_;
  bool body_in_arena_ = false;
};

// ---- outbound HTTP (beam) -------------------------------------------------

struct FetchRequest {
  std::string_view method = "GET";
  std::string_view url;  // http:// or https://
  std::span<const HeaderField> headers = {};
  std::string_view body = {};
};

struct FetchResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower case
  std::string body;
};

// What Context::fetch() goes through; implemented by the host.
class Fetcher {
 public:
  virtual ~Fetcher() = default;
  virtual Result<FetchResponse> fetch(const FetchRequest& request) = 0;
};

// One HTTP invocation.
class Context {
 public:
  Context(const Request& request, Response& response, Scratch& scratch, unsigned loop_index,
          std::string_view flare_name, Fetcher* fetcher = nullptr) noexcept
      : request(request),
        response(response),
        scratch(scratch),
        loop_index_(loop_index),
        name_(flare_name),
        fetcher_(fetcher) {}
  const Request& request;
  Response& response;
  Scratch& scratch;
  unsigned loop_index() const noexcept { return loop_index_; }
  std::string_view flare_name() const noexcept { return name_; }

  // Outbound HTTP (`beam:` in the config: allowed hosts, timeouts, size
  // caps), for flares whose may_wait() is true: the invocation waits for the
  // answer on a stack of its own while its loop serves other connections.
  // Errors name what failed (not allowed, timeout, too large, connect).
  Result<FetchResponse> fetch(const FetchRequest& request);

 private:
  unsigned loop_index_;
  std::string_view name_;
  Fetcher* fetcher_;
};

// ---- WebSocket --------------------------------------------------------------

enum class WsEventType { open, message, close };

// Sends and closes on one WebSocket connection; implemented by the host.
class WsChannel {
 public:
  virtual ~WsChannel() = default;
  virtual uint64_t id() const noexcept = 0;
  // Queue a message (copied unless given as Bytes). False once closing.
  virtual bool send_text(std::string_view text) = 0;
  virtual bool send_binary(std::span<const uint8_t> data) = 0;
  virtual bool send(Bytes data, bool text) = 0;
  // Starts the close handshake (code 1000..4999, valid per RFC 6455).
  virtual void close(uint16_t code = 1000, std::string_view reason = {}) = 0;
  virtual void join(std::string_view room) = 0;
  virtual void broadcast(std::string_view room, std::string_view data, bool text) = 0;
};

class WsContext {
 public:
  WsContext(WsEventType type, WsChannel& channel, const Request& upgrade, Scratch& scratch,
            unsigned loop_index) noexcept
      : scratch(scratch),
        type_(type),
        channel_(channel),
        upgrade_(upgrade),
        loop_index_(loop_index) {}

  WsEventType event() const noexcept { return type_; }
  // Message payload (message events); shares the receive buffer.
  const Bytes& data() const noexcept { return data_; }
  bool is_text() const noexcept { return text_; }
  // Close code from the peer (close events; 1005 when none, 1006 when the
  // connection dropped without a close frame).
  uint16_t close_code() const noexcept { return close_code_; }
  uint64_t connection_id() const noexcept { return channel_.id(); }
  // The HTTP request that opened the WebSocket (its headers stay valid for
  // the open event only; method/path/host for the connection's life).
  const Request& upgrade_request() const noexcept { return upgrade_; }
  WsChannel& channel() noexcept { return channel_; }
  bool send_text(std::string_view s) { return channel_.send_text(s); }
  bool send_binary(std::span<const uint8_t> d) { return channel_.send_binary(d); }
  // Zero-copy send (echo the data you received, a shared buffer).
  bool send(Bytes d, bool text) { return channel_.send(std::move(d), text); }
  void close(uint16_t code = 1000, std::string_view reason = {}) { channel_.close(code, reason); }
  // Rooms: join() adds this connection to a named room (it leaves when it
  // closes); broadcast() sends a copy of `data` to every member of the room
  // on every loop, this connection included when it is a member.
  void join(std::string_view room) { channel_.join(room); }
  void broadcast(std::string_view room, std::string_view data, bool text) {
    channel_.broadcast(room, data, text);
  }
  Scratch& scratch;
  unsigned loop_index() const noexcept { return loop_index_; }

  // Host side.
  void set_message(Bytes data, bool text) noexcept {
    data_ = std::move(data);
    text_ = text;
  }
  void set_close_code(uint16_t code) noexcept { close_code_ = code; }

 private:
  WsEventType type_;
  WsChannel& channel_;
  const Request& upgrade_;
  Bytes data_;
  bool text_ = false;
  uint16_t close_code_ = 1005;
  unsigned loop_index_;
};

// ---- flares and their registry ---------------------------------------------------

class Flare {
 public:
  virtual ~Flare() = default;
  virtual Action handle_request(Context& ctx) = 0;
  // True when handle_request may call Context::fetch(). Such a flare runs on
  // a fiber with an arena and a copy of the request of its own, so that its
  // loop serves other connections while it waits.
  virtual bool may_wait() const noexcept { return false; }
  // WebSocket flares: return true from accepts_websocket() and handle the
  // three events. A plain flare answers upgrade requests over HTTP (426).
  virtual bool accepts_websocket() const noexcept { return false; }
  virtual void ws_open(WsContext&) {}
  virtual void ws_message(WsContext&) {}
  virtual void ws_close(WsContext&) {}
};

// Name → flare. Fill it before the server starts; read-only afterwards.
class Registry {
 public:
  void add(std::string name, std::shared_ptr<Flare> flare);
  // A request-only flare from a function.
  void add(std::string name, std::function<Action(Context&)> fn);
  std::shared_ptr<Flare> find(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::pair<std::string, std::shared_ptr<Flare>>> flares_;
};

// The bundled examples: "hello", "echo", "ws-echo", "chat".
void add_example_flares(Registry& registry);

}  // namespace ember::flare
