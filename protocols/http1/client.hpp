// HTTP/1.1 client on an Ember loop: the ResponseParser and write_request()
// driven through core's outbound connections (Loop::connect, optional TLS).
//
// One Client per loop. It keeps a keep-alive pool per origin (scheme, host,
// port), queues requests beyond Options::max_connections_per_origin, streams
// request bodies from a pull source with backpressure, and delivers response
// bodies as slices of the connection's read buffer (no copy).
//
//   Client client(loop, {});
//   auto h = client.request({.method = "GET", .url = "http://10.0.0.1/x"}, handler);
//
// Thread: a Client, its RequestHandles and every callback live on the
// loop's thread; construct and destroy the Client there too. Other threads
// reach it through Loop::post(), or use fetch_blocking().
//
// Errors: an ember::Error whose message starts with "METHOD URL: " and says
// what failed, e.g. "GET http://127.0.0.1:9/x: connect: connection refused",
// "...: response head over 16384 bytes", "...: timed out after 5000 ms
// waiting for the response head", "...: invalid response: malformed status
// line". `code` is a negative errno (-ECONNREFUSED, -ETIMEDOUT, -EPROTO,
// -EMSGSIZE, ...) or 0.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/reactor.hpp"
#include "protocols/http1/http1.hpp"
#include "protocols/http1/response_parser.hpp"

namespace ember::tls {
class ClientContext;
}

namespace ember::http1 {

// What a body source's pull() returns.
struct BodyChunk {
  enum class Kind : uint8_t { data, wait, end };
  Kind kind = Kind::end;
  Bytes bytes;  // Kind::data: the next piece (sent by reference, not copied)

  static BodyChunk data(Bytes b) { return {Kind::data, std::move(b)}; }
  // Nothing ready yet: pull() is called again after RequestHandle::resume_upload().
  static BodyChunk wait() { return {Kind::wait, {}}; }
  static BodyChunk end() { return {Kind::end, {}}; }
};

// A request body produced piece by piece (an S3 upload read from disk).
// pull() runs on the loop thread whenever the connection can take more
// output: never while more than Client::Options::upload_high_water bytes
// wait for the socket, so a 1 GiB body is never held in memory at once.
struct BodySource {
  std::function<BodyChunk()> pull;
  // Sent as Content-Length when known (the source must then produce exactly
  // this many bytes, or the request fails); chunked otherwise.
  std::optional<uint64_t> length;
  // Optional: restart from the first byte. A body with it may be replayed
  // when a reused connection turns out dead (see Client::request).
  std::function<bool()> rewind;
};

struct ClientRequest {
  std::string_view method = "GET";
  // Absolute: http:// or https://, host (name, IPv4, or [IPv6]), optional
  // :port, path and query ("/" when empty). No user info, no fragment.
  std::string_view url;
  // Extra fields. Leave out Host, Content-Length, Transfer-Encoding and
  // Connection: the client writes them.
  std::span<const Field> headers = {};
  // A body held in memory (by reference). Sent with Content-Length when not
  // empty, or always for POST, PUT and PATCH (then "Content-Length: 0").
  Bytes body = {};
  // A streaming body instead of `body` (when `source.pull` is set).
  BodySource source = {};
};
// The views in a ClientRequest are copied by request(): they need to live
// only during the call. `body` and `source` are moved in.

// Receives one response. All callbacks run on the loop thread. Exactly one
// of on_complete() and on_error() ends a request, unless it is cancelled
// (then none does). A callback may call any RequestHandle method and
// Client::request(); it must not destroy the Client.
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // The final response head (1xx are skipped). Views are valid until this
  // returns.
  virtual void on_head(const ResponseHead& head) = 0;
  // The next body piece: a slice of the read buffer, kept alive by the Bytes
  // (copy the Bytes to keep it; that shares, it does not copy). Return
  // Action::pause to stop delivery until RequestHandle::resume_response().
  virtual Action on_body(const Bytes& chunk) = 0;
  virtual void on_complete() = 0;
  virtual void on_error(const Error& error) = 0;
};

class Client;

// Names one request. Cheap to copy; once the request has ended every method
// is a no-op (a generation number tells a stale handle apart). Loop thread
// only, and only while the Client lives.
class RequestHandle {
 public:
  RequestHandle() = default;
  // Stops all callbacks for this request and closes its connection (a
  // queued request just leaves the queue).
  void cancel() noexcept;
  // Backpressure for a slow consumer: stop / restart body delivery (and
  // reading the socket). on_body() returning Action::pause equals pause.
  void pause_response() noexcept;
  void resume_response() noexcept;
  // A body source that returned BodyChunk::wait() has data again.
  void resume_upload() noexcept;
  // The request has not ended yet.
  bool active() const noexcept;

 private:
  friend class Client;
  struct Req;
  RequestHandle(Client* c, Req* r, uint64_t gen) : client_(c), req_(r), gen_(gen) {}
  Req* live() const noexcept;
  Client* client_ = nullptr;
  Req* req_ = nullptr;
  uint64_t gen_ = 0;
};

// Knobs of a Client.
struct ClientOptions {
  // Name resolution + TCP connect + TLS handshake.
  std::chrono::milliseconds connect_timeout{10'000};
  // From the last request byte queued to the end of the response head;
  // also the longest silence allowed while a body is arriving or being sent.
  std::chrono::milliseconds response_head_timeout{30'000};
  // An idle kept-alive connection is closed after this.
  std::chrono::milliseconds idle_timeout{60'000};
  // The whole request, queueing included. 0: none.
  std::chrono::milliseconds request_timeout{0};
  size_t max_response_head_bytes = 16 * 1024;
  uint64_t max_response_body_bytes = 64u << 20;  // UINT64_MAX: no limit
  size_t max_connections_per_origin = 8;
  // A body source is not pulled while this much output waits for the socket.
  size_t upload_high_water = 256 * 1024;
  // For https:// (CA file, client certificate, session cache). nullptr: a
  // context with the system's trust store is made on the first https request.
  std::shared_ptr<tls::ClientContext> tls;
};

class Client {
 public:
  using Options = ClientOptions;

  explicit Client(Loop& loop, Options options = {});
  // Loop thread. Closes every connection; requests not ended get no callback.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Loop thread. Starts a request; `handler` must outlive it (until its
  // on_complete/on_error, or cancel()). An idle connection of the origin is
  // reused when there is one, else a new one is opened, else the request
  // waits in the origin's queue. When a reused connection is closed by the
  // server before any response byte, an idempotent request (GET, HEAD, PUT,
  // DELETE, OPTIONS, TRACE) whose body can be replayed (in memory, or a
  // source with rewind) is sent once more on a fresh connection.
  // An invalid request (URL, method, header) is returned as an error and no
  // callback follows.
  Result<RequestHandle> request(ClientRequest request, ClientHandler& handler);

  Loop& loop() const noexcept { return loop_; }
  const Options& options() const noexcept { return options_; }
  // Connections open or opening, and idle ones among them (for tests, metrics).
  size_t connections() const noexcept;
  size_t idle_connections() const noexcept;

  struct Origin;
  class Conn;

 private:
  friend class RequestHandle;
  using Req = RequestHandle::Req;

  Req* take_req();
  void release(Req* r) noexcept;
  Origin* origin_for(bool https, std::string_view host, uint16_t port);
  void dispatch(Origin& o);
  void enqueue(Origin& o, Req* r, bool front) noexcept;
  void unqueue(Req* r) noexcept;
  void fail(Req* r, std::string what, int code);
  void finish(Req* r);
  void retry(Req* r);
  void cancel(Req* r) noexcept;
  void conn_closed(Conn* c) noexcept;
  void conn_idle(Conn* c);
  static void on_request_deadline(TimerEntry* t);

  Loop& loop_;
  Options options_;
  Limits limits_;
  std::vector<std::unique_ptr<Origin>> origins_;
  std::vector<std::unique_ptr<Req>> reqs_;  // every Req ever made; free ones are listed
  Req* free_ = nullptr;
  std::vector<Conn*> conns_;  // open or opening, owned by their core Connection
  uint64_t next_gen_ = 1;
};

// What Client::request() checks first: the URL (parsed into `url`), the
// method and the fields, none of which the client sets itself. The error is
// request()'s ("METHOD URL: what is wrong", -EINVAL). For other clients
// taking the same requests (HTTP/2).
Result<void> check_request(const ClientRequest& request, ParsedUrl& url);

// The result of fetch_blocking().
struct FetchResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::string_view> header(std::string_view name) const noexcept;
};

// For worker threads: runs `request` on `client`'s loop (posted through its
// mailbox) and waits for the whole response. The body is capped by the
// client's max_response_body_bytes. A body source's pull() runs on the loop
// thread. Must not be called on a loop thread (it would wait for itself):
// that returns an error at once, as does a loop that has stopped.
// The client must outlive the call.
Result<FetchResponse> fetch_blocking(Client& client, const ClientRequest& request);
// Same with a one-shot Client made on `loop` with `options` (no connection
// reuse across calls).
Result<FetchResponse> fetch_blocking(Loop& loop, const ClientRequest& request,
                                     const Client::Options& options = {});

}  // namespace ember::http1
