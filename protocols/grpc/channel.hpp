// gRPC channel: a client connection to one server, run on a Loop.
//
// The connection goes through the core's outbound path (Loop::connect or
// connect_unix: name resolution, connect timeout, TLS with ConnectOptions::tls)
// and carries a grpc::ClientSession. It is opened by the first call and
// opened again by the first call after it was lost. Calls are unary (one
// response message) or server-streaming (a callback per message); each ends
// with exactly one `done` callback carrying its status:
//
//   grpc::Channel ch(loop, grpc::Channel::tcp("127.0.0.1", 50051));
//   ch.server_streaming("/pkg.Svc/Watch", request,
//       [](Bytes m) { ... },                   // each message, in order
//       [](grpc::Status s) { ... });           // then the status, once
//
// Errors are statuses, never exceptions: a connection that cannot be made or
// is lost mid-call fails every call in flight with UNAVAILABLE and the
// core's reason ("connect 127.0.0.1:1: connection refused", "connection
// lost: ..."); a deadline passing is DEADLINE_EXCEEDED (the server hears
// grpc-timeout and gets RST_STREAM CANCEL); cancel() is CANCELLED. With TLS
// the context must offer ALPN "h2" (tls::ClientConfig::alpn); a server that
// does not choose it fails the calls with UNAVAILABLE.
//
// Lifetime: destroying the channel closes its connection and drops the calls
// in flight without calling them back. Callbacks may start and cancel calls,
// but must not destroy the channel. Buffers: request bodies are sent by
// reference; messages reach callbacks as slices of the read buffer (zero
// copy when a message lies in one read) and may be kept by copying the Bytes.
// Thread: the loop's thread, for everything (construction included).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ember/bytes.hpp"
#include "ember/reactor.hpp"
#include "protocols/grpc/client.hpp"
#include "protocols/grpc/status.hpp"

namespace ember::grpc {

// Where the server is: TCP host and port (TLS when ConnectOptions::tls is
// set) or a Unix socket path.
struct ChannelTarget {
  std::string host;
  uint16_t port = 0;
  std::string unix_path;  // non-empty: a Unix socket
};

struct ChannelOptions {
  // :authority defaults to host:port (TCP) or "localhost" (Unix).
  ClientOptions grpc;
  ConnectOptions connect;
};

struct CallOptions {
  // Sent as grpc-timeout and enforced here: 0 means none.
  std::chrono::milliseconds timeout{0};
};

class Channel {
 public:
  using Target = ChannelTarget;
  using Options = ChannelOptions;
  static Target tcp(std::string host, uint16_t port) { return {std::move(host), port, {}}; }
  static Target unix_socket(std::string path) { return {{}, 0, std::move(path)}; }

  using MessageFn = std::function<void(Bytes message)>;
  using DoneFn = std::function<void(Status status)>;
  using UnaryFn = std::function<void(Status status, std::optional<Bytes> message)>;

  Channel(Loop& loop, Target target, Options options = {});
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Starts a call and returns its id (for cancel()). `request` is sent by
  // reference. A call that cannot start (session out of streams or memory,
  // or a connection that fails at once) gets its callback before this
  // returns.
  uint64_t unary(std::string_view path, Bytes request, UnaryFn done, CallOptions options = {});
  uint64_t server_streaming(std::string_view path, Bytes request, MessageFn on_message, DoneFn done,
                            CallOptions options = {});
  // Ends a call in flight with CANCELLED (its callback runs now). False when
  // the call has already ended.
  bool cancel(uint64_t call_id);

  // A connection is open (or being opened).
  bool connected() const noexcept { return link_ != nullptr; }
  size_t calls_in_flight() const noexcept { return calls_.size(); }
  Loop& loop() const noexcept { return loop_; }

 private:
  class Link;
  struct Call;
  struct Handler;
  friend class Link;

  uint64_t start(std::string_view path, Bytes request, std::unique_ptr<Call> call,
                 CallOptions options);
  void connect();
  void ended(Call& call, Status status, std::optional<Bytes> message);
  void on_link_open(Connection& conn);
  void on_link_closed(std::string reason);

  Loop& loop_;
  Target target_;
  Options options_;
  std::unique_ptr<Handler> handler_;  // the ClientHandler of sessions
  std::unique_ptr<ClientSession> session_;
  Link* link_ = nullptr;  // the connection's handler (owned by the core)
  bool feeding_ = false;  // the session is inside feed(): see Link::adopt
  bool open_ = false;     // on_open seen
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Call>> calls_;
};

}  // namespace ember::grpc
