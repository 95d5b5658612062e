// ember::queue::Broker: one long-lived AMQP 0-9-1 connection to RabbitMQ,
// bound to one Loop, for the queue microservice runtime.
//
// What it does for its user:
//   * connects with Loop::connect (optional TLS), runs the AMQP handshake and
//     heartbeats (protocols/amqp Client), and reconnects with Backoff after a
//     lost socket, a connection.close from the broker, a missed heartbeat, a
//     handshake that timed out or a failed connect;
//   * keeps the topology (queues) and the consumers as lists: after every
//     (re)connect each queue is declared again and each consumer registered
//     again, in the order they were added;
//   * two channels: channel 1 carries basic.qos, declarations, consumers and
//     acks; channel 2 carries publishes with publisher confirms. A channel the
//     broker closes (a publish to a missing exchange, a bad ack) is logged
//     and opened again; the other channel keeps going.
//
// Delivery tags carry the consume channel's epoch. The epoch changes every
// time that channel is opened again (after a reconnect or a channel close),
// so ack/nack/reject of a tag from an earlier epoch is dropped with a log
// line instead of reaching the new channel (where it would close it with
// 406 PRECONDITION_FAILED - unknown delivery tag).
//
// Publishing: publish() writes the publish into the connection's pending
// output; everything published in one loop turn leaves in one write (the
// flush phase). Each publish gets exactly one Confirm:
//   * acked / nacked: basic.ack / basic.nack from the broker (`multiple`
//     honoured);
//   * returned: a mandatory publish the broker could not route
//     (basic.return, then its ack);
//   * failed: the publish could not be sent, or was in flight when its
//     channel or the connection went away.
// In-flight publishes are failed, not re-sent, when the connection drops:
// the broker may already hold them (only the confirm was lost), so a re-send
// could duplicate silently. The caller decides; the queue runtime nacks or
// simply leaves the inbound delivery unacked (the broker requeues it when the
// connection drops), so the whole unit of work is retried.
// Publishes that have not left yet (made while connecting, reconnecting, or
// while the broker has blocked publishing with connection.blocked) are held
// in order, up to BrokerSettings::max_held_publishes, and sent when the
// connection is usable again; past the bound they fail at once.
//
// Thread: every method is called on the loop's thread, and every callback
// runs there. Other threads hand work to the Broker through the loop's
// mailbox (Loop::post). Construct, use and destroy the Broker on that
// thread. Callbacks may call any method of the Broker but must not destroy
// it; destroy it outside its callbacks (post the destruction if needed).
// Views in callbacks (Delivery, Confirm, Returned) are valid during the call
// only; a Bytes body may be kept (copying it shares the buffer).
//
// Example (on the loop's thread; `loop` is a Reactor's Loop):
//
//   Broker broker(loop, settings);
//   QueueSpec in;
//   in.name = "in";
//   broker.declare_queue(in);
//   broker.consume("in", [&](const Delivery& d) {
//     broker.publish("", "out", d.body, {}, [&, tag = d.tag](const Confirm& c) {
//       c.ok() ? broker.ack(tag) : broker.nack(tag);
//     });
//   });
//   broker.start();
//
//   // From a worker thread: finish on the loop (the Broker lives there).
//   loop.post([&broker, tag](Loop&) { broker.ack(tag); });
//
// Acks of the oldest outstanding deliveries made during one loop iteration
// go out as one basic.ack with `multiple` at its end; any other ack goes at
// once. nack and reject always go at once.
//
// Steady state (deliver, publish, confirm, ack) allocates nothing on the
// loop (counted in tests/unit/broker/alloc_test.cpp), provided callbacks
// keep their captures within std::function's local buffer (16 trivially
// copyable bytes in libstdc++: a pointer and a tag value); held publishes
// copy their routing strings and properties.
//
// Shutdown: close() cancels the consumers, waits (up to close_timeout) until
// every delivery has been acked/nacked and every publish confirmed, then runs
// the connection.close handshake. When the reactor drains (SIGTERM), the
// Broker does the same by itself; a drain that finds it between connections
// (reconnect backoff) ends the loop without it, and it makes no further
// attempt. The destructor aborts whatever is still open (no handshake;
// unacked deliveries return to their queues); it may also run after the
// Reactor's run() returned, on any thread, while the Reactor still exists.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/reactor.hpp"
#include "protocols/amqp/methods.hpp"
#include "protocols/amqp/reply.hpp"

namespace ember::queue {

struct BrokerSettings {
  std::string host = "127.0.0.1";
  uint16_t port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";
  // Heartbeat interval asked for, seconds (0: take the broker's). The
  // broker is declared dead after two intervals without a byte from it.
  uint16_t heartbeat = 30;
  uint32_t frame_max = 131072;
  // TLS (nullptr: plain TCP); server_name: SNI and certificate host (the
  // host when empty).
  std::shared_ptr<tls::ClientContext> tls;
  std::string server_name;
  // basic.qos prefetch count per consumer (0: unlimited).
  uint16_t prefetch = 16;
  // Client property connection_name (RabbitMQ's management UI shows it).
  std::string connection_name;
  // Resolve + TCP connect + TLS, and then again for the AMQP handshake.
  std::chrono::milliseconds connect_timeout{10'000};
  // Reconnect delays: exponential with full jitter between these.
  std::chrono::milliseconds reconnect_initial{100};
  std::chrono::milliseconds reconnect_max{30'000};
  // Publishes waiting for a usable connection (see the file comment).
  size_t max_held_publishes = 10'000;
  // close(): how long to wait for unacked deliveries and outstanding
  // confirms before the connection.close handshake; then how long to wait
  // for close-ok.
  std::chrono::milliseconds close_timeout{5'000};
  // Deliveries with larger bodies arrive with body_dropped set.
  uint64_t max_body_size = 128u << 20;
  // Publisher confirms on the publish channel (confirm.select). Off, a
  // publish's Confirm says `acked` as soon as it is written to the socket,
  // in the same write as whatever its callback sends next (an inbound ack):
  // the reference runtime's behaviour, one broker round trip less per
  // message, but a publish the broker never got (it died, the connection
  // dropped with it in the kernel's buffer) or discarded (its channel was
  // closed by an error: a missing exchange, and whatever followed it until
  // the close arrived) is lost without a word. Mandatory publishes fail at
  // once in this mode (nothing could report them returned).
  bool publisher_confirms = true;
};

// A queue to declare (queue.declare) on every connection.
struct QueueSpec {
  std::string name;
  // Defaults match the reference runtime: not passive, not durable, not
  // exclusive, not auto-delete.
  bool durable = false;
  bool exclusive = false;
  bool auto_delete = false;
  bool passive = false;
  // x-arguments as the body of an encoded field table (amqp::TableWriter's
  // view().bytes()); empty: none.
  std::vector<uint8_t> arguments;
};

// Identifies one delivery on one incarnation of the consume channel.
struct DeliveryTag {
  uint64_t value = 0;  // the broker's delivery tag
  uint64_t epoch = 0;  // the consume channel's epoch when it arrived
  friend bool operator==(const DeliveryTag&, const DeliveryTag&) = default;
};

struct Delivery {
  DeliveryTag tag;
  std::string_view queue;         // the consumer's queue
  std::string_view consumer_tag;  // as registered
  std::string_view exchange;      // empty: the default exchange
  std::string_view routing_key;
  bool redelivered = false;
  const amqp::BasicProperties& properties;
  // The body: a slice of the read buffer when it came in one frame, else
  // one gathered buffer. Empty when body_dropped.
  const Bytes& body;
  // The body was larger than max_body_size and was skipped: reject it.
  bool body_dropped = false;
};
using DeliveryFn = std::function<void(const Delivery&)>;

struct Confirm {
  enum class Outcome : uint8_t { acked, nacked, returned, failed };
  Outcome outcome = Outcome::failed;
  // returned: the broker's reply (312 NO_ROUTE ...); failed: why (code 0
  // when the failure has no wire code); acked/nacked: 0 and empty.
  uint16_t code = 0;
  std::string_view text;
  bool ok() const noexcept { return outcome == Outcome::acked; }
};
using ConfirmFn = std::function<void(const Confirm&)>;

// A mandatory publish the broker could not route (basic.return).
struct Returned {
  uint16_t reply_code = 0;
  std::string_view reply_text;
  std::string_view exchange;
  std::string_view routing_key;
  const amqp::BasicProperties& properties;
  const Bytes& body;
};

struct ConsumeOptions {
  // Empty: "<connection_name or ember>-<id>". Must be unique per connection.
  std::string consumer_tag;
  bool exclusive = false;
  // The consumer is gone for good: basic.consume failed (404 no queue ...)
  // or the broker cancelled it (its queue was deleted). Not called for
  // cancel() or close().
  std::function<void(const amqp::AmqpError&)> on_cancelled;
};

struct BrokerEvents {
  // Connected, both channels open, every queue declared and every consumer
  // registered (after the first connect and after each reconnect).
  std::function<void()> on_ready;
  // The connection went away; a reconnect follows unless closing.
  std::function<void(const amqp::AmqpError&)> on_disconnected;
  // connection.blocked (true, the broker's reason) / unblocked (false).
  std::function<void(bool blocked, std::string_view reason)> on_blocked;
  // Every basic.return (also those matched to a publish's Confirm).
  std::function<void(const Returned&)> on_return;
  // The Broker is closed for good (after close(), or a drain).
  std::function<void()> on_closed;
};

struct BrokerStats {
  uint64_t connect_attempts = 0;
  uint64_t connections = 0;  // reached on_ready
  uint64_t disconnects = 0;
  uint64_t channel_closes = 0;  // by the broker
  uint64_t deliveries = 0;
  uint64_t stale_tags = 0;  // ack/nack/reject dropped as stale
  uint64_t published = 0;   // handed to the wire
  uint64_t confirmed = 0;   // acked by the broker (0 without publisher confirms)
  uint64_t failed_publishes = 0;
};

class Broker {
 public:
  enum class State : uint8_t {
    idle,        // before start()
    connecting,  // TCP/TLS/AMQP handshake or channel setup
    ready,       // on_ready reached
    waiting,     // reconnect backoff
    closing,     // close() in progress
    closed,
  };

  // Loop thread. Nothing happens before start().
  Broker(Loop& loop, BrokerSettings settings, BrokerEvents events = {});
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Connects (and keeps reconnecting until close()).
  void start();

  // Adds a queue to the topology; declared now when connected, and on every
  // reconnect. `on_done` (optional) runs once, after the first declare-ok
  // (nullptr) or the first failure (the error; the queue is then removed from
  // the topology).
  using DeclareFn = std::function<void(const amqp::AmqpError*)>;
  void declare_queue(QueueSpec spec, DeclareFn on_done = {});

  // Registers a consumer (now when connected, and on every reconnect).
  // Every delivery must be settled once with ack, nack or reject.
  using ConsumerId = uint64_t;
  ConsumerId consume(std::string queue, DeliveryFn on_delivery, ConsumeOptions options = {});
  // basic.cancel; deliveries already on their way still arrive. False when
  // no such consumer.
  bool cancel(ConsumerId id);

  // Settle a delivery. False (and nothing sent) when the tag is stale (from
  // an earlier epoch: logged) or there is no connection.
  bool ack(DeliveryTag tag);
  bool nack(DeliveryTag tag, bool requeue = true);
  bool reject(DeliveryTag tag, bool requeue = false);

  // Publishes `body` (referenced, not copied, above the codec's copy
  // threshold) with confirms; `on_confirm` is called exactly once (possibly
  // before publish() returns, when it fails at once). `properties`' views
  // need to live only during the call.
  void publish(std::string_view exchange, std::string_view routing_key, Bytes body,
               const amqp::BasicProperties& properties, ConfirmFn on_confirm,
               bool mandatory = false);

  // Clean shutdown (see the file comment); `on_closed` (and
  // BrokerEvents::on_closed) runs when done. Held publishes fail at once.
  void close(std::function<void()> on_closed = {});

  State state() const noexcept;
  bool ready() const noexcept { return state() == State::ready; }
  bool blocked() const noexcept;
  // The consume channel's current epoch (see DeliveryTag).
  uint64_t epoch() const noexcept;
  size_t unacked() const noexcept;    // deliveries of this epoch not settled
  size_t in_flight() const noexcept;  // publishes awaiting their confirm
  size_t held() const noexcept;       // publishes waiting to be sent
  const BrokerStats& stats() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::string_view to_string(Broker::State s) noexcept;
std::string_view to_string(Confirm::Outcome o) noexcept;

}  // namespace ember::queue
