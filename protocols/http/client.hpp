// The HTTP client of a loop: HTTP/2 where the origin offers it, HTTP/1.1
// otherwise, behind the HTTP/1.1 client's request and handler types.
//
// Protocol::automatic (the default) offers "h2" and "http/1.1" with ALPN to
// https:// origins. An origin that chooses HTTP/1.1 is remembered and gets
// HTTP/1.1 for ClientOptions::http1_memory (then it is asked again: servers
// get upgraded); the requests that found out are sent again over
// HTTP/1.1 (nothing of them had been sent), which is why each request to an
// origin not known as HTTP/1.1 keeps its fields (in a recycled record; the
// body by reference) until it ends. Origins that chose h2 share one
// multiplexed connection. http:// stays HTTP/1.1 unless Protocol::h2 (prior
// knowledge, RFC 9113 §3.3). Protocol::http1 never speaks HTTP/2.
//
// ResponseHead::version tells which protocol answered (Version::http2).
// Errors and threading are those of http1::Client and H2Client.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocols/http/h2_client.hpp"
#include "protocols/http1/client.hpp"

namespace ember::http {

enum class Protocol : uint8_t { automatic, http1, h2 };

struct ClientOptions {
  // Timeouts, size limits and the pool of HTTP/1.1 connections per origin;
  // HTTP/2 uses the same timeouts and limits. `http1.tls` is the context for
  // HTTP/1.1 over TLS.
  http1::ClientOptions http1;
  Protocol protocol = Protocol::automatic;
  // For HTTP/2 over TLS: must offer "h2" (and "http/1.1", for automatic).
  // nullptr: one is made with the system's trust store.
  std::shared_ptr<tls::ClientContext> h2_tls;
  // How long an https:// origin that chose HTTP/1.1 gets HTTP/1.1 without
  // being offered h2 again (automatic only).
  std::chrono::milliseconds http1_memory{std::chrono::minutes(10)};
};

class Client;

class RequestHandle {
 public:
  RequestHandle() = default;
  void cancel() noexcept;
  void pause_response() noexcept;
  void resume_response() noexcept;
  void resume_upload() noexcept;
  bool active() const noexcept;

 private:
  friend class Client;
  struct Probe;
  Probe* live_probe() const noexcept;
  http1::RequestHandle h1_;
  H2RequestHandle h2_;
  Probe* probe_ = nullptr;  // automatic: the request that may go again over HTTP/1.1
  uint64_t gen_ = 0;
};

class Client {
 public:
  using Options = ClientOptions;

  Client(Loop& loop, Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // As http1::Client::request(), with Options::protocol or `protocol`.
  Result<RequestHandle> request(http1::ClientRequest request, http1::ClientHandler& handler) {
    return request_as(std::move(request), handler, options_.protocol);
  }
  Result<RequestHandle> request_as(http1::ClientRequest request, http1::ClientHandler& handler,
                                   Protocol protocol);

  Loop& loop() const noexcept { return loop_; }
  // Connections open or opening, both protocols (for tests, metrics).
  size_t connections() const noexcept;
  // Whether requests to `origin` ("host:port", https://) go over HTTP/1.1
  // without offering h2 now (for tests, metrics).
  bool remembers_http1(std::string_view origin) const;

 private:
  friend class RequestHandle;
  using Probe = RequestHandle::Probe;
  Probe* take_probe();
  void recycle(Probe* p) noexcept;

  Loop& loop_;
  Options options_;
  http1::Client h1_;
  H2Client h2_;
  // https:// origins ("host:port") that chose HTTP/1.1, and until when
  // (Loop::now_ms) that holds.
  std::unordered_map<std::string, uint64_t> h1_origins_;
  bool known_http1(const std::string& key);
  std::string key_;                             // request_as()'s "host:port", reused
  std::vector<std::unique_ptr<Probe>> probes_;  // every one made; free ones listed
  Probe* free_probes_ = nullptr;
  uint64_t next_gen_ = 1;
};

}  // namespace ember::http
