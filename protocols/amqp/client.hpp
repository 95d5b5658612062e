// ember::amqp::Client: a sans-I/O AMQP 0-9-1 client connection (RabbitMQ).
//
// The glue owns the socket and the clock:
//   * bytes from the socket go to feed(); events come out through the
//     ClientHandler, synchronously, from inside feed() (or on_timer());
//   * produce() appends everything the client wants to send (the protocol
//     header first, then handshake replies, heartbeats and whatever the
//     application called) to an IoChain; wants_write() says whether there is
//     anything; pending_bytes() how much (for backpressure);
//   * on_timer(now_ms) runs heartbeats and returns the next deadline;
//   * transport_closed() reports a socket that went away;
//   * once finished() is true and produce() has been flushed, close the socket.
//
// Handshake: connection.start -> start-ok (PLAIN, client properties with
// RabbitMQ's capabilities), tune -> tune-ok (each limit: the smaller of the
// two non-zero values), open(vhost) -> open-ok -> on_ready(). Operations on
// channels are accepted from on_ready() on; several may be pipelined without
// waiting for replies (the broker answers in order).
//
// Publishing: publish() encodes the method, header and body frames straight
// into the pending output; the body is referenced, not copied (below
// copy_threshold it is copied: cheaper than an iovec). Publishes queued
// between two produce() calls leave in one write.
//
// Deliveries: on_delivery() gets views into the frames (valid during the
// call) and the body as Bytes: a slice of the fed buffer when the body came
// in one frame, else one gathered buffer. Keep the Bytes to keep the body.
//
// Errors: a broker's channel.close / connection.close arrive as
// on_channel_closed / on_connection_closed with its reply code; malformed
// frames from the broker make the client send connection.close with the
// matching code (501/502/503/504/505/540) and report it. Input is not parsed
// after a framing error; the close ends when the broker closes the socket
// (transport_closed) or after close_timeout_ms. Calls that cannot
// proceed (channel not open, string too long) return an AmqpError with code
// 0 and change nothing.
//
// Steady state (deliver, ack, publish, confirm) allocates nothing: pending
// output and assembly buffers keep their capacity.
//
// Thread: one loop thread. The handler may call any method of the client
// (publish, ack, close ...) from its callbacks, but must not destroy it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "ember/io_chain.hpp"
#include "protocols/amqp/frames.hpp"
#include "protocols/amqp/methods.hpp"
#include "protocols/amqp/reply.hpp"

namespace ember::amqp {

// The negotiation rule of connection.tune: the smaller of the two values,
// where 0 means "no limit" (so 0 only when both are 0).
constexpr uint32_t negotiate(uint32_t client, uint32_t server) noexcept {
  if (client == 0) return server;
  if (server == 0) return client;
  return client < server ? client : server;
}

struct ClientOptions {
  std::string username = "guest";
  std::string password = "guest";
  std::string vhost = "/";
  // Shown by RabbitMQ's management UI (client property connection_name).
  std::string connection_name;
  std::string product = "ember";
  std::string version = "0.1.0";
  // Our limits for connection.tune (0: take the broker's). frame_max below
  // kFrameMinSize is raised to it.
  uint16_t channel_max = 2047;
  uint32_t frame_max = kDefaultFrameMax;
  // Heartbeat interval in seconds (0: take the broker's).
  uint16_t heartbeat = 60;
  // Deliveries declaring larger bodies are skipped (Delivery::body_dropped).
  uint64_t max_body_size = 128u << 20;
  // Gathered bodies come from here (null: the heap).
  BufferPool* pool = nullptr;
  size_t copy_threshold = FrameWriter::kDefaultCopyThreshold;
  // After we send connection.close, how long to wait for close-ok.
  uint64_t close_timeout_ms = 5000;
};

struct Tuning {
  uint16_t channel_max = 0;
  uint32_t frame_max = 0;
  uint16_t heartbeat = 0;  // seconds; 0: none
};

// A message from basic.deliver (or basic.get-ok). Views valid during the
// callback only; `body` may be kept by copying the Bytes.
struct Delivery {
  uint16_t channel;
  std::string_view consumer_tag;  // empty for basic.get
  uint64_t delivery_tag;
  bool redelivered;
  std::string_view exchange;
  std::string_view routing_key;
  const BasicProperties& properties;
  const Bytes& body;
  uint64_t body_size;  // declared size
  // The body exceeded max_body_size and was skipped: reject or nack it.
  bool body_dropped;
  bool from_get;           // basic.get-ok rather than basic.deliver
  uint32_t message_count;  // basic.get-ok only
};

// A mandatory publish the broker could not route (basic.return).
struct Returned {
  uint16_t channel;
  uint16_t reply_code;
  std::string_view reply_text;
  std::string_view exchange;
  std::string_view routing_key;
  const BasicProperties& properties;
  const Bytes& body;
};

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // connection.open-ok: channels may be opened.
  virtual void on_ready() {}
  virtual void on_channel_open(uint16_t /*channel*/) {}
  // Replies to synchronous methods (queue.declare-ok, basic.qos-ok,
  // basic.consume-ok, basic.cancel-ok, confirm.select-ok, basic.get-empty,
  // queue.bind-ok, exchange.declare-ok, ...). Views valid during the call.
  virtual void on_reply(uint16_t /*channel*/, const Method& /*reply*/) {}
  virtual void on_delivery(const Delivery& /*d*/) {}
  // Publisher confirm: `tag` (and with `multiple` every earlier tag) was
  // acked (ack = true) or nacked by the broker.
  virtual void on_confirm(uint16_t /*channel*/, uint64_t /*tag*/, bool /*multiple*/, bool /*ack*/) {
  }
  virtual void on_return(const Returned& /*r*/) {}
  // The broker cancelled a consumer (its queue was deleted, ...).
  virtual void on_consumer_cancelled(uint16_t /*channel*/, std::string_view /*consumer_tag*/) {}
  virtual void on_flow(uint16_t /*channel*/, bool /*active*/) {}
  // connection.blocked / unblocked: the broker stopped reading publishes
  // (resource alarm) / resumed.
  virtual void on_blocked(std::string_view /*reason*/) {}
  virtual void on_unblocked() {}
  // The channel is closed (by the broker, or the close we asked for
  // completed). Not called for channels that end with the connection.
  virtual void on_channel_closed(uint16_t /*channel*/, const AmqpError& /*error*/) {}
  // Called once, when the connection becomes unusable.
  virtual void on_connection_closed(const AmqpError& /*error*/) {}
};

enum class ClientState : uint8_t {
  awaiting_start,    // protocol header sent (or pending)
  awaiting_tune,     // start-ok sent
  awaiting_open_ok,  // tune-ok and open sent
  open,
  closing,  // connection.close sent, waiting for close-ok
  closed,
};

namespace detail {
// Pending output: small pieces copied into one buffer, payloads referenced.
class PendingOutput final : public FrameSink {
 public:
  void copy(const void* data, size_t n) override;
  void ref(const Bytes& payload) override;
  bool empty() const noexcept { return cork_.empty() && refs_.empty(); }
  size_t size() const noexcept { return cork_.size() + ref_bytes_; }
  // Appends everything to `out` and empties itself (capacity kept).
  void drain(IoChain& out);

 private:
  struct Ref {
    size_t cork_at;  // the payload goes after cork_[0, cork_at)
    Bytes payload;
  };
  std::vector<uint8_t> cork_;
  std::vector<Ref> refs_;
  size_t ref_bytes_ = 0;
};
}  // namespace detail

class Client final : private FrameHandler {
 public:
  Client(ClientHandler& handler, ClientOptions options);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // ---- bytes and time ----
  // Error: the connection failed on this input (also reported through
  // on_connection_closed); produce() still yields the connection.close.
  Status feed(const Bytes& input);
  // Appends pending output. Never fails (the Status is for the pump idiom).
  Status produce(IoChain& out);
  bool wants_write() const noexcept { return !pending_.empty(); }
  size_t pending_bytes() const noexcept { return pending_.size(); }
  // Heartbeats: sends one when we have been silent for half the interval;
  // declares the broker dead after two intervals without a byte from it.
  // Also ends a close handshake that timed out. Returns the next time (ms,
  // same clock) it wants to be called, or 0 for no timer.
  uint64_t on_timer(uint64_t now_ms);
  // The socket closed or failed.
  void transport_closed(std::string_view reason);

  // ---- state ----
  ClientState state() const noexcept { return state_; }
  bool ready() const noexcept { return state_ == ClientState::open; }
  bool finished() const noexcept { return state_ == ClientState::closed; }
  bool blocked() const noexcept { return blocked_; }
  const Tuning& tuning() const noexcept { return tuning_; }
  // From connection.start; empty before it.
  TableView server_properties() const noexcept { return TableView::trusted(server_properties_); }
  bool channel_open(uint16_t channel) const noexcept;

  // ---- channels ----
  // Opens `channel`, or the lowest free id when 0. Usable at once
  // (pipelined); on_channel_open() reports channel.open-ok.
  Expected<uint16_t, AmqpError> open_channel(uint16_t channel = 0);
  Status close_channel(uint16_t channel, uint16_t code = 200, std::string_view text = "");
  // Turns on publisher confirms; publishes from now on are numbered 1, 2, ...
  // A second call is a no-op.
  Status confirm_select(uint16_t channel);
  Status qos(uint16_t channel, uint16_t prefetch_count, uint32_t prefetch_size = 0,
             bool global = false);
  Status declare_queue(uint16_t channel, const QueueDeclare& m) { return send(channel, m); }
  Status declare_exchange(uint16_t channel, const ExchangeDeclare& m) { return send(channel, m); }
  Status bind_queue(uint16_t channel, const QueueBind& m) { return send(channel, m); }
  Status consume(uint16_t channel, const BasicConsume& m) { return send(channel, m); }
  Status cancel(uint16_t channel, std::string_view consumer_tag);
  Status get(uint16_t channel, std::string_view queue, bool no_ack = false);

  // Returns the publish sequence number when confirms are on, else 0.
  Expected<uint64_t, AmqpError> publish(uint16_t channel, std::string_view exchange,
                                        std::string_view routing_key, const Bytes& body,
                                        const BasicProperties& properties = {},
                                        bool mandatory = false);
  Status ack(uint16_t channel, uint64_t delivery_tag, bool multiple = false);
  Status nack(uint16_t channel, uint64_t delivery_tag, bool multiple = false, bool requeue = true);
  Status reject(uint16_t channel, uint64_t delivery_tag, bool requeue = true);
  // Any other method on an open channel (no content).
  Status send(uint16_t channel, const Method& m);

  // Graceful close: connection.close, then close-ok ends it.
  Status close(uint16_t code = 200, std::string_view text = "Goodbye");

 private:
  struct ChannelState {
    enum class Phase : uint8_t { closed, opening, open, closing };
    Phase phase = Phase::closed;
    bool confirms = false;
    uint64_t next_seq = 1;
    uint16_t close_code = 0;  // ours, while closing
    std::string close_text;
  };

  // FrameHandler
  void on_method(uint16_t channel, const Method& m) override;
  void on_content(const Content& c) override;
  void on_heartbeat() override {}

  void on_connection_method(const Method& m);
  void on_channel_method(uint16_t channel, const Method& m);
  void handle_start(const ConnectionStart& m);
  void handle_tune(const ConnectionTune& m);
  // We found the broker at fault: connection.close with `e`'s code.
  void protocol_error(AmqpError e);
  void report_closed(const AmqpError& e);
  void enter_closed();
  void send_raw(uint16_t channel, const Method& m);
  Status usable(uint16_t channel) const;
  ChannelState* find_channel(uint16_t channel) noexcept;
  const ChannelState* find_channel(uint16_t channel) const noexcept;
  ChannelState& channel_state(uint16_t channel);
  uint16_t effective_channel_max() const noexcept;

  ClientHandler& handler_;
  ClientOptions options_;
  FrameReader reader_;
  FrameWriter writer_;
  detail::PendingOutput pending_;
  ClientState state_ = ClientState::awaiting_start;
  Tuning tuning_;
  bool blocked_ = false;
  bool closed_reported_ = false;
  AmqpError close_reason_;  // ours, while closing
  std::optional<AmqpError> feed_error_;
  std::vector<uint8_t> client_properties_;
  std::vector<uint8_t> server_properties_;
  std::vector<ChannelState> channels_;

  // Heartbeats (all times in the glue's ms clock).
  bool heartbeat_armed_ = false;    // tuned with a non-zero interval
  bool heartbeat_started_ = false;  // first on_timer after tuning seen
  // Input is dated by the tick after it (so a slow tick never declares a
  // live broker dead early), output by the tick before it (so a slow tick
  // never delays our heartbeat).
  bool rx_seen_ = false;  // bytes fed since the last tick
  uint64_t clock_ = 0;    // the latest on_timer() time
  uint64_t last_rx_ = 0;
  uint64_t last_tx_ = 0;
  uint64_t close_deadline_ = 0;
};

}  // namespace ember::amqp
