// HTTP/2 server connection: the glue between a server-side HTTP/2 session and
// core's ConnectionHandler seam, shared by every protocol served over HTTP/2
// (the edge's requests, gRPC calls).
//
// It feeds input to the session; writes the session's frames in the flush
// phase, coming back while produce() leaves some for the next turn; lets the
// kernel read large DATA payloads in place (read_target); answers a drain
// with GOAWAY and closes once no stream is in flight; and keeps the
// connection's one deadline: the protocol's earliest stream deadline, else
// the idle timeout (GOAWAY when no stream is open, else the connection ends:
// its streams stalled). A session that fails (protocol error, CONTINUATION
// flood, rapid reset: its GOAWAY is queued) stops input; the connection
// closes once that GOAWAY is written.
//
// The session belongs to the subclass, behind the session hooks below: a bare
// http2::Session (SessionConnection, the edge) or a protocol session built on
// one (grpc::ServerSession). Per-stream answers and errors (RST_STREAM, 4xx,
// gRPC statuses) are the protocol's; header count and size limits and the
// flood defences are http2::Settings. h2c upgrades: the subclass calls
// Session::upgrade() from opened().
//
// Errors: nothing is thrown; a failed feed() or produce() is logged under
// ServerConnectionOptions::log_target and ends the connection. Lifetime: the
// core owns the handler (Connection::switch_handler may hand it over).
// Thread: the loop thread that owns the connection, like every handler.
#pragma once

#include <cstdint>
#include <string_view>

#include "ember/error.hpp"
#include "ember/log.hpp"
#include "ember/reactor.hpp"
#include "protocols/http2/session.hpp"

namespace ember::http2 {

// "No deadline" for ServerConnectionOptions::idle_timeout_ms and
// ServerConnection::next_deadline_ms().
inline constexpr uint64_t kNoDeadline = UINT64_MAX;

struct ServerConnectionOptions {
  // Log target of the connection's messages; must outlive the connection.
  std::string_view log_target = "ember.http2";
  // Level of "the peer broke HTTP/2" and "send failed" messages: a trusted
  // peer (Flame's executor) warrants warn, Internet clients debug. Floods
  // (the session's calmed()) are info.
  log::Level peer_error_level = log::Level::debug;
  // With no stream deadline pending, the connection ends after this long
  // without input.
  uint64_t idle_timeout_ms = kNoDeadline;
};

class ServerConnection : public ConnectionHandler {
 public:
  explicit ServerConnection(const ServerConnectionOptions& options) noexcept : options_(options) {}

  void on_open(Connection& conn) final;
  bool read_target(ReadTarget& target) final;
  void on_data(Connection& conn, const Bytes& data) final;
  void on_writable(Connection& conn, IoChain& out) final;
  void on_drain(Connection& conn) final;
  void on_timeout(Connection& conn) final;
  // Logs a failed connection; a subclass may log its own way instead.
  void on_close(Connection& conn, int error) override;

 protected:
  // ---- the session (the subclass owns it) ----
  virtual Result<void> feed(const Bytes& input) = 0;
  virtual Result<void> produce(IoChain& out) = 0;
  virtual bool wants_write() const noexcept = 0;
  // False once both sides are done with the connection.
  virtual bool alive() const noexcept = 0;
  // Graceful GOAWAY (NO_ERROR): open streams finish, no new ones.
  virtual void goaway() = 0;
  // GOAWAY with `error_code`, and the session stops. The default is goaway():
  // the connection closes once it is written either way.
  virtual void terminate(uint32_t /*error_code*/) { goaway(); }
  // The session ended the connection for abuse (ENHANCE_YOUR_CALM).
  virtual bool calmed() const noexcept { return false; }
  // Where the next read should go when it is the middle of a large payload
  // (see ConnectionHandler::read_target).
  virtual bool direct_read(ReadTarget&) { return false; }

  // ---- the protocol ----
  // No stream is in flight: a draining connection may close.
  virtual bool idle() const noexcept = 0;
  // The connection is open (after TLS); the first flush is asked for next.
  virtual void opened(Connection&) {}
  // Loop time (Loop::now_ms) of the earliest stream deadline, kNoDeadline
  // when none: the connection's deadline follows it.
  virtual uint64_t next_deadline_ms() const noexcept { return kNoDeadline; }
  // That deadline passed: answer the streams due by `now_ms` (408, ...).
  virtual void expire_streams(uint64_t /*now_ms*/) {}

  // ---- for the subclass ----
  // Null before on_open().
  Connection* connection() const noexcept { return conn_; }
  // Output was submitted outside a session callback (an async answer).
  void want_write() noexcept {
    if (conn_) conn_->want_write();
  }
  // The earliest stream deadline changed while the session was producing
  // (a stream closed): the deadline is moved after this flush.
  void deadline_moved() noexcept { rearm_pending_ = true; }
  // Ends the connection now: terminate(error_code), no more input, close
  // once the GOAWAY is written.
  void abandon(uint32_t error_code);
  bool closing() const noexcept { return closing_; }
  const ServerConnectionOptions& options() const noexcept { return options_; }

 private:
  void rearm() noexcept;

  ServerConnectionOptions options_;
  Connection* conn_ = nullptr;
  bool broken_ = false;   // the session failed or was terminated: no more input
  bool closing_ = false;  // GOAWAY sent: close once idle
  bool rearm_pending_ = false;
  bool armed_ = false;  // a deadline is set on the connection
};

// A ServerConnection over an http2::Session of its own (the edge's
// requests): the session hooks are the session's. `handler` (usually the
// subclass) receives the stream events; it must outlive the connection.
class SessionConnection : public ServerConnection {
 protected:
  SessionConnection(const ServerConnectionOptions& options, SessionHandler& handler,
                    const Settings& settings, SlabAllocator& slab)
      : ServerConnection(options), session_(Role::server, handler, settings, slab) {}

  Result<void> feed(const Bytes& input) override { return session_.feed(input); }
  Result<void> produce(IoChain& out) override { return session_.produce(out); }
  bool wants_write() const noexcept override { return session_.wants_write(); }
  bool alive() const noexcept override { return session_.alive(); }
  void goaway() override { session_.submit_goaway(NGHTTP2_NO_ERROR); }
  void terminate(uint32_t error_code) override { session_.terminate(error_code); }
  bool calmed() const noexcept override { return session_.calmed(); }

  Session session_;
};

}  // namespace ember::http2
