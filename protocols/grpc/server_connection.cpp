#include "protocols/grpc/server_connection.hpp"

namespace ember::grpc {

ServerConnection::ServerConnection(Loop& loop, const http2::ServerConnectionOptions& connection,
                                   const ServerOptions& options)
    : http2::ServerConnection(connection),
      loop_(loop),
      session_(*this, options, loop.slab(), &loop.buffers()) {}

// The subclass is gone by now: the session must not call back into it.
ServerConnection::~ServerConnection() {
  session_.abandon_calls();
}

void ServerConnection::on_close(Connection& conn, int error) {
  session_.end_calls();
  closed(conn, error);
}

}  // namespace ember::grpc
