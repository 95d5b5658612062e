// WebSocket edge connections: frames in, flare events out, frames back.
//
// Messages reach the flare as slices of the read buffer (unmasked in place);
// an echo sends that same slice back by reference. Sends are queued and
// written once per loop turn. Pings are answered, a Close is echoed, protocol
// errors close with the code RFC 6455 gives, a failing flare closes with
// 1011, idleness with 1001, a drain with 1001.
#include <vector>

#include "ember/log.hpp"
#include "handlers/flare/connections.hpp"
#include "protocols/websocket/frame.hpp"

namespace ember::flare::detail {
namespace {

// Frames up to this size are copied after their header (one iovec).
constexpr size_t kInlinePayload = 512;
// Queued output past which reading stops until the peer catches up.
constexpr size_t kMaxQueuedOutput = 4u << 20;

class WsConnection final : public ConnectionHandler,
                           private websocket::ParserHandler,
                           private WsChannel,
                           private RoomMember {
 public:
  WsConnection(LoopEdge& edge, const Route& route, StoredRequest request)
      : edge_(edge),
        flare_(route.flare),
        flare_name_(route.flare_name),
        request_(std::move(request)),
        upgrade_(request_.view()),
        parser_(
            websocket::Role::server, *this,
            {.max_frame = edge.limits().ws_max_frame, .max_message = edge.limits().ws_max_message},
            &edge.loop.buffers()),
        writer_(websocket::Role::server, {.inline_payload_max = kInlinePayload}) {}

  ~WsConnection() override { edge_.leave(this); }

  void on_open(Connection& conn) override {
    conn_ = &conn;
    conn.set_deadline(edge_.limits().ws_idle_timeout_ms);
    event(WsEventType::open, Bytes(), false);
  }

  void on_data(Connection& conn, const Bytes& data) override {
    // While closing, the close-wait deadline stands; otherwise traffic resets idleness.
    if (!closing_) conn.set_deadline(edge_.limits().ws_idle_timeout_ms);
    websocket::Parser::Result r = parser_.feed(data);
    if (r.status == websocket::Parser::Status::error) {
      EMBER_DEBUG("ember.edge", "WebSocket protocol error", {"connection", conn.id()},
                  {"code", r.code}, {"reason", r.reason});
      start_close(r.code, r.reason);
      peer_gone_ = true;  // no Close will come back worth waiting for
    }
  }

  void on_writable(Connection& conn, IoChain& out) override {
    for (Frame& f : queue_)
      writer_.write_frame(out, f.opcode, f.payload);
    queue_.clear();
    queued_bytes_ = 0;
    if (paused_) {
      paused_ = false;
      conn.resume_reading();
    }
    if (close_pending_) {
      close_pending_ = false;
      writer_.write_close(out, close_code_, close_reason_);
      close_sent_ = true;
    }
    // Our Close is out and theirs is in (or it will never come): done.
    if (close_sent_ && (close_received_ || peer_gone_)) conn.close();
  }

  void on_timeout(Connection& conn) override {
    if (closing_) {
      conn.abort();  // the peer never answered our Close
      return;
    }
    start_close(websocket::close_code::going_away, "idle");
  }
  void on_drain(Connection&) override {
    start_close(websocket::close_code::going_away, "server shutting down");
  }

  void on_close(Connection&, int) override {
    if (!close_reported_) {
      close_reported_ = true;
      if (!close_received_) peer_code_ = websocket::close_code::abnormal;
      closing_ = true;
      event(WsEventType::close, Bytes(), false);
    }
  }

 private:
  struct Frame {
    websocket::Opcode opcode;
    Bytes payload;
  };

  // ---- parser events ----

  void on_message(websocket::Opcode opcode, const Bytes& payload) override {
    event(WsEventType::message, payload, opcode == websocket::Opcode::text);
  }
  void on_ping(const Bytes& payload) override {
    if (!closing_)
      queue(websocket::Opcode::pong, payload);  // a slice: the pong echoes it without a copy
  }
  void on_close(uint16_t code, std::string_view) override {
    close_received_ = true;
    peer_code_ = code;
    // The peer answered our Close: on_writable ends the connection.
    if (closing_ && conn_) conn_->want_write();
    // Echo the peer's code (RFC 6455 §5.5.1); 1005 means it sent none.
    start_close(code == websocket::close_code::no_status ? websocket::close_code::normal : code,
                {});
  }

  // ---- the flare ----

  void event(WsEventType type, Bytes data, bool text) {
    WsContext ctx(type, *this, upgrade_, edge_.scratch(), edge_.loop.index());
    ctx.set_message(std::move(data), text);
    ctx.set_close_code(peer_code_);
    in_flare_ = true;
    try {
      switch (type) {
        case WsEventType::open:
          flare_->ws_open(ctx);
          break;
        case WsEventType::message:
          flare_->ws_message(ctx);
          break;
        case WsEventType::close:
          flare_->ws_close(ctx);
          break;
      }
    } catch (const std::exception& e) {
      EMBER_WARN("ember.flare", "WebSocket flare failed", {"flare", flare_name_},
                 {"error", e.what()});
      start_close(websocket::close_code::internal_error, "flare failed");
    }
    in_flare_ = false;
    edge_.finish();
  }

  // ---- WsChannel (what the flare calls) ----

  uint64_t id() const noexcept override { return conn_ ? conn_->id() : 0; }

  bool send_text(std::string_view text) override { return send(Bytes::copy(text), true); }
  bool send_binary(std::span<const uint8_t> data) override {
    return send(Bytes::copy(data), false);
  }
  bool send(Bytes data, bool text) override {
    if (closing_ || !conn_) return false;
    if (text && !websocket::valid_utf8(data.span()))
      throw std::invalid_argument("WebSocket text message is not valid UTF-8");
    queue(text ? websocket::Opcode::text : websocket::Opcode::binary, std::move(data));
    return true;
  }
  void close(uint16_t code, std::string_view reason) override {
    if (!websocket::valid_close_code(code))
      throw std::invalid_argument("WebSocket close code " + std::to_string(code) +
                                  " may not be sent (use 1000-1003, 1007-1014 or 3000-4999)");
    start_close(code, reason);
  }
  void join(std::string_view room) override { edge_.join(room, this); }
  void broadcast(std::string_view room, std::string_view data, bool text) override {
    edge_.shared.rooms.broadcast(room, data, text);
  }

  // ---- RoomMember ----
  void deliver(const Bytes& data, bool text) override {
    if (closing_) return;
    // Pausing our reads does not stop a room's other members: a member that
    // does not read would hold every room message. Past two of the largest
    // messages beyond the usual bound, it is closed (aborted 5 s later if
    // even the Close stays unread).
    size_t backlog = queued_bytes_ + (conn_ ? conn_->pending_output() : 0);
    if (backlog > kMaxQueuedOutput + 2 * edge_.limits().ws_max_message) {
      EMBER_INFO("ember.edge", "WebSocket room member not reading its messages; closing",
                 {"flare", flare_name_}, {"backlog", backlog});
      start_close(websocket::close_code::policy_violation, "not reading room messages");
      return;
    }
    queue(text ? websocket::Opcode::text : websocket::Opcode::binary, data);
  }

  void queue(websocket::Opcode op, Bytes payload) {
    queued_bytes_ += payload.size();
    queue_.push_back({op, std::move(payload)});
    if (!conn_) return;
    conn_->want_write();
    if (queued_bytes_ > kMaxQueuedOutput && !paused_) {
      paused_ = true;
      conn_->pause_reading();
    }
  }

  void start_close(uint16_t code, std::string_view reason) {
    if (closing_) return;
    closing_ = true;
    close_pending_ = true;
    close_code_ = code;
    close_reason_.assign(reason);
    if (conn_) {
      // The peer has a while to answer our Close.
      conn_->set_deadline(5'000);
      conn_->want_write();
    }
  }

  LoopEdge& edge_;
  // The flare it was routed to: a replacement of the route table leaves an
  // open connection on it.
  std::shared_ptr<Flare> flare_;
  std::string flare_name_;
  StoredRequest request_;
  Request upgrade_;
  websocket::Parser parser_;
  websocket::Writer writer_;
  Connection* conn_ = nullptr;
  std::vector<Frame> queue_;
  size_t queued_bytes_ = 0;
  std::string close_reason_;
  uint16_t close_code_ = websocket::close_code::normal;
  uint16_t peer_code_ = websocket::close_code::no_status;
  bool paused_ = false;
  bool in_flare_ = false;
  bool closing_ = false;
  bool close_pending_ = false;
  bool close_sent_ = false;
  bool close_received_ = false;
  bool close_reported_ = false;
  bool peer_gone_ = false;
};

}  // namespace

std::unique_ptr<ConnectionHandler> make_ws_connection(LoopEdge& edge, const Route& route,
                                                      StoredRequest request) {
  return std::make_unique<WsConnection>(edge, route, std::move(request));
}

}  // namespace ember::flare::detail
