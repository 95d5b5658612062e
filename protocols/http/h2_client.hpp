// HTTP/2 client on an Ember loop: http2::Session (nghttp2, client role)
// driven through core's outbound connections, with the HTTP/1.1 client's
// request and handler types, so a caller can use either (see http::Client).
//
// One connection per origin (scheme, host, port) carries every request to
// it as streams; nghttp2 holds streams beyond the server's
// SETTINGS_MAX_CONCURRENT_STREAMS until one ends. https:// must negotiate
// "h2" with ALPN (the TLS context must offer it); http:// speaks HTTP/2 with
// prior knowledge (RFC 9113 §3.3). A server that sends GOAWAY keeps its open
// streams; new requests go to a new connection. A stream the server refused
// (REFUSED_STREAM, or above a GOAWAY's last stream id) was not processed and
// is sent again on a new connection (up to 8 times).
//
// Response bodies arrive as slices of the connection's read buffer (no
// copy). Pausing one response stops reading the connection (every stream on
// it waits) and holds what was already read for that stream.
//
// Errors: ember::Error, "METHOD URL: what failed"; `code` is a negative errno.
// -EPROTONOSUPPORT means the server does not speak HTTP/2 (ALPN chose
// something else) and nothing was sent: the request may go over HTTP/1.1.
//
// Thread: the loop's, for everything (construction and destruction too).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/error.hpp"
#include "ember/reactor.hpp"
#include "protocols/http1/client.hpp"

namespace ember::tls {
class ClientContext;
}

namespace ember::http {

class H2Client;

// Names one request, like http1::RequestHandle (stale handles are no-ops).
class H2RequestHandle {
 public:
  H2RequestHandle() = default;
  // Resets the stream (CANCEL); no callback follows.
  void cancel() noexcept;
  void pause_response() noexcept;
  void resume_response() noexcept;
  void resume_upload() noexcept;
  bool active() const noexcept;

  struct Req;

 private:
  friend class H2Client;
  H2RequestHandle(H2Client* c, Req* r, uint64_t gen) : client_(c), req_(r), gen_(gen) {}
  Req* live() const noexcept;
  H2Client* client_ = nullptr;
  Req* req_ = nullptr;
  uint64_t gen_ = 0;
};

struct H2ClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  // From the request's submission to its response head; also the longest
  // silence while its body arrives.
  std::chrono::milliseconds response_head_timeout{30'000};
  // A connection with no stream is closed (GOAWAY) after this.
  std::chrono::milliseconds idle_timeout{60'000};
  // The whole request. 0: none.
  std::chrono::milliseconds request_timeout{0};
  // The response header block (RFC 9113 §6.5.2 size: name + value + 32 per
  // field), advertised as SETTINGS_MAX_HEADER_LIST_SIZE.
  size_t max_response_head_bytes = 16 * 1024;
  uint64_t max_response_body_bytes = 64u << 20;
  // Our receive windows (per stream, per connection).
  uint32_t stream_window = 1u << 20;
  uint32_t connection_window = 16u << 20;
  // https://. Must offer "h2" in its ALPN list. nullptr: a context with the
  // system's trust store offering {"h2", "http/1.1"} is made when first needed.
  std::shared_ptr<tls::ClientContext> tls;
};

class H2Client {
 public:
  using Options = H2ClientOptions;

  explicit H2Client(Loop& loop, Options options = {});
  // Closes every connection; requests not ended get no callback.
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  // As http1::Client::request(): the views are copied, `body`/`source` moved
  // in, `handler` must outlive the request. Callbacks may start and cancel
  // requests but must not destroy the client.
  Result<H2RequestHandle> request(http1::ClientRequest request, http1::ClientHandler& handler);

  Loop& loop() const noexcept { return loop_; }
  // Connections open or opening (for tests, metrics).
  size_t connections() const noexcept { return pipes_.size(); }

  struct Origin;
  struct Pipe;
  class Link;

 private:
  friend class H2RequestHandle;
  friend struct Pipe;
  using Req = H2RequestHandle::Req;

  Req* take_req();
  void release(Req* r) noexcept;
  Origin& origin_for(bool https, std::string_view host, uint16_t port);
  Pipe& pipe_for(Origin& o);
  void connect(Pipe& p);
  // Submits `r` on its origin's current connection.
  void submit(Req* r);
  void fail(Req* r, std::string what, int code);
  void complete(Req* r);
  // Takes `r` off its stream (RST_STREAM CANCEL) and connection.
  void drop(Req* r) noexcept;
  void cancel(Req* r) noexcept;
  void recycle(Req* r) noexcept;
  void pause(Req* r) noexcept;
  void resume(Req* r);
  void pipe_closed(Pipe* p, std::string reason, int code) noexcept;
  static void on_req_timer(TimerEntry* t);

  Loop& loop_;
  Options options_;
  // Requests outlive the pipes (whose sessions may still point into them).
  std::vector<std::unique_ptr<Req>> reqs_;  // every Req ever made; free ones are listed
  std::vector<std::unique_ptr<Origin>> origins_;
  std::vector<std::unique_ptr<Pipe>> pipes_;
  Req* free_ = nullptr;
  uint64_t next_gen_ = 1;
  bool fresh_retry_ = false;  // submit() is retrying on a new connection
};

}  // namespace ember::http
