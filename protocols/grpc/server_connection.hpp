// gRPC server connection: a ConnectionHandler serving gRPC calls, the
// http2::ServerConnection glue over a grpc::ServerSession of its own. A
// service derives from it and implements the ServerHandler methods
// (resolve_method, on_call, on_call_end); it answers with the helpers below,
// which also schedule the flush.
//
//   class Echo final : public grpc::ServerConnection {
//     int resolve_method(std::string_view p) override { return p == "/e.E/Echo" ? 0 : -1; }
//     void on_call(grpc::ServerCall& c) override { respond(c, {}, c.request()); }
//     void on_call_end(grpc::ServerCall&, bool) override {}
//   };
//
// Call lifetime: every dispatched call gets on_call_end() exactly once while
// the service object is whole: when its stream closes, or with responded =
// false when the connection closes (on_close, ahead of the handler's
// destruction). A handler destroyed without on_close (handed over by
// Connection::switch_handler) drops its calls without callbacks; a subclass
// that must hear of them calls end_calls() from its own destructor.
//
// Errors: per-call errors are gRPC statuses (see protocols/grpc/server.hpp);
// connection errors are logged and end the connection (see
// http2::ServerConnection). Thread: the loop thread of the connection.
#pragma once

#include <span>
#include <string_view>

#include "ember/reactor.hpp"
#include "protocols/grpc/server.hpp"
#include "protocols/http2/server_connection.hpp"

namespace ember::grpc {

class ServerConnection : public http2::ServerConnection, public ServerHandler {
 public:
  ServerConnection(Loop& loop, const http2::ServerConnectionOptions& connection,
                   const ServerOptions& options);
  ~ServerConnection() override;

  // Ends the calls in flight (on_call_end(call, false)), then closed().
  void on_close(Connection& conn, int error) final;

 protected:
  // Unary answer: status OK with one message, `head` (≤ 59 bytes) then `body`
  // by reference.
  void respond(ServerCall& call, std::span<const uint8_t> head, Bytes body) {
    session_.respond(call, head, std::move(body));
    want_write();
  }
  // Server streaming: one more message (see ServerSession::write).
  void write(ServerCall& call, std::span<const uint8_t> head, Bytes body) {
    session_.write(call, head, std::move(body));
    want_write();
  }
  // Final status after the messages written (see ServerSession::finish).
  void finish(ServerCall& call, StatusCode code = StatusCode::ok, std::string_view message = {}) {
    session_.finish(call, code, message);
    want_write();
  }
  // A non-OK status (trailers-only when nothing was written).
  void fail(ServerCall& call, StatusCode code, std::string_view message) {
    session_.fail(call, code, message);
    want_write();
  }
  void end_calls() { session_.end_calls(); }
  ServerSession& session() noexcept { return session_; }
  Loop& loop() const noexcept { return loop_; }

  // The connection closed (after the calls ended). The default logs a
  // failure like http2::ServerConnection.
  virtual void closed(Connection& conn, int error) {
    http2::ServerConnection::on_close(conn, error);
  }

 private:
  Result<void> feed(const Bytes& input) override { return session_.feed(input); }
  Result<void> produce(IoChain& out) override { return session_.produce(out); }
  bool wants_write() const noexcept override { return session_.wants_write(); }
  bool alive() const noexcept override { return session_.alive(); }
  void goaway() override { session_.shutdown(); }
  bool direct_read(ReadTarget& target) override { return session_.read_target(target); }
  bool idle() const noexcept override { return session_.idle(); }

  Loop& loop_;
  ServerSession session_;
};

}  // namespace ember::grpc
