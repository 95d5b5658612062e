#include "protocols/http2/server_connection.hpp"

#include <nghttp2/nghttp2.h>

namespace ember::http2 {

void ServerConnection::on_open(Connection& conn) {
  conn_ = &conn;
  opened(conn);
  conn.want_write();  // our SETTINGS go first
  rearm();
}

bool ServerConnection::read_target(ReadTarget& target) {
  return !broken_ && direct_read(target);
}

void ServerConnection::on_data(Connection& conn, const Bytes& data) {
  if (broken_) return;
  Result<void> r = feed(data);
  if (!r) {
    if (calmed())
      EMBER_INFO(options_.log_target, "HTTP/2 client misbehaved; closing",
                 {"connection", conn.id()}, {"remote", conn.peer_address()},
                 {"reason", r.error().message});
    else
      EMBER_LOG(options_.peer_error_level, options_.log_target, "HTTP/2 connection failed; closing",
                {"connection", conn.id()}, {"reason", r.error().message});
    broken_ = true;
  }
  // Closing and the last stream went (a reset): on_writable closes.
  if (broken_ || wants_write() || (closing_ && idle())) conn.want_write();
  rearm();
}

void ServerConnection::on_writable(Connection& conn, IoChain& out) {
  Result<void> r = produce(out);
  if (!r) {
    EMBER_LOG(options_.peer_error_level, options_.log_target, "HTTP/2 send failed; closing",
              {"connection", conn.id()}, {"reason", r.error().message});
    conn.close();
    return;
  }
  if (broken_ || !alive() || (closing_ && idle())) {
    conn.close();
    return;
  }
  if (rearm_pending_) {
    rearm_pending_ = false;
    rearm();
  }
  // produce() stops after a bounded amount; come back for the rest.
  if (!out.empty() && wants_write()) conn.want_write();
}

void ServerConnection::on_drain(Connection& conn) {
  if (closing_) return;
  closing_ = true;
  goaway();
  conn.want_write();
}

void ServerConnection::on_timeout(Connection& conn) {
  armed_ = false;
  if (broken_) {
    conn.abort();
    return;
  }
  if (next_deadline_ms() != kNoDeadline) {
    expire_streams(conn.loop().now_ms());
    conn.want_write();
    rearm();
    return;
  }
  if (options_.idle_timeout_ms == kNoDeadline) return;
  // Nothing in flight moved for the idle timeout: say goodbye.
  EMBER_DEBUG(options_.log_target, "HTTP/2 connection idle; closing", {"connection", conn.id()});
  closing_ = true;
  if (idle()) {
    goaway();
  } else {
    terminate(NGHTTP2_NO_ERROR);  // streams stalled: nobody reads them
    broken_ = true;
  }
  conn.want_write();
}

void ServerConnection::on_close(Connection& conn, int error) {
  if (error != 0)
    EMBER_DEBUG(options_.log_target, "HTTP/2 connection failed", {"connection", conn.id()},
                {"error", conn.error_text()});
}

void ServerConnection::abandon(uint32_t error_code) {
  terminate(error_code);
  broken_ = true;
  want_write();
}

// The earliest stream deadline bounds the wait; without one, the idle
// timeout counts from the last input.
void ServerConnection::rearm() noexcept {
  if (!conn_ || broken_) return;
  uint64_t due = next_deadline_ms();
  if (due != kNoDeadline) {
    uint64_t now = conn_->loop().now_ms();
    conn_->set_deadline(due > now ? due - now : 0);
  } else if (options_.idle_timeout_ms != kNoDeadline) {
    conn_->set_deadline(options_.idle_timeout_ms);
  } else if (armed_) {
    conn_->clear_deadline();
    armed_ = false;
    return;
  } else {
    return;
  }
  armed_ = true;
}

}  // namespace ember::http2
