#include "handlers/queue/broker.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>

#include "ember/log.hpp"
#include "protocols/amqp/client.hpp"

namespace ember::queue {

namespace {

constexpr uint16_t kConsumeChannel = 1;
constexpr uint16_t kPublishChannel = 2;
constexpr std::string_view kLog = "ember.queue.broker";

amqp::AmqpError local_error(std::string text) {
  return amqp::AmqpError(0, std::move(text), amqp::AmqpError::Origin::local);
}

long long ms(std::chrono::milliseconds d) {
  return static_cast<long long>(d.count());
}

}  // namespace

std::string_view to_string(Broker::State s) noexcept {
  switch (s) {
    case Broker::State::idle:
      return "idle";
    case Broker::State::connecting:
      return "connecting";
    case Broker::State::ready:
      return "ready";
    case Broker::State::waiting:
      return "waiting";
    case Broker::State::closing:
      return "closing";
    case Broker::State::closed:
      return "closed";
  }
  return "?";
}

std::string_view to_string(Confirm::Outcome o) noexcept {
  switch (o) {
    case Confirm::Outcome::acked:
      return "acked";
    case Confirm::Outcome::nacked:
      return "nacked";
    case Confirm::Outcome::returned:
      return "returned";
    case Confirm::Outcome::failed:
      return "failed";
  }
  return "?";
}

// The consume channel's delivery tags not yet settled, in delivery order
// (tags only grow within a channel). A ring that keeps its capacity: steady
// state allocates nothing.
class OutstandingTags {
 public:
  void push(uint64_t tag) {
    if (size_ == ring_.size()) grow();
    ring_[(head_ + size_) % ring_.size()] = {tag, false};
    ++size_;
  }
  // Marks `tag` settled; true when it was the oldest (every settled one at
  // the front is dropped then).
  bool settle(uint64_t tag) {
    size_t at = find(tag);
    if (at == size_) return false;
    slot(at).settled = true;
    if (at != 0) return false;
    while (size_ > 0 && slot(0).settled) {
      head_ = (head_ + 1) % ring_.size();
      --size_;
    }
    return true;
  }
  void clear() noexcept { head_ = size_ = 0; }

 private:
  struct Slot {
    uint64_t tag;
    bool settled;
  };
  Slot& slot(size_t i) { return ring_[(head_ + i) % ring_.size()]; }
  size_t find(uint64_t tag) {
    size_t lo = 0, hi = size_;  // binary search: tags ascend from the front
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (slot(mid).tag < tag)
        lo = mid + 1;
      else
        hi = mid;
    }
    return (lo < size_ && slot(lo).tag == tag) ? lo : size_;
  }
  void grow() {
    std::vector<Slot> bigger(std::max<size_t>(64, ring_.size() * 2));
    for (size_t i = 0; i < size_; ++i)
      bigger[i] = slot(i);
    ring_ = std::move(bigger);
    head_ = 0;
  }
  std::vector<Slot> ring_;
  size_t head_ = 0, size_ = 0;
};

// The connection's handler. The connection owns it; it forwards to the
// Broker until the Broker detaches (destroyed first).
class BrokerLink final : public ConnectionHandler {
 public:
  explicit BrokerLink(Broker::Impl* broker) : broker_(broker) {}
  void detach() noexcept { broker_ = nullptr; }

  void on_open(Connection& c) override;
  void on_data(Connection& c, const Bytes& data) override;
  void on_writable(Connection& c, IoChain& out) override;
  void on_close(Connection& c, int error) override;
  void on_drain(Connection& c) override;
  void on_timeout(Connection&) override {}

 private:
  Broker::Impl* broker_;
};

struct Broker::Impl final : amqp::ClientHandler {
  struct QueueEntry {
    uint64_t id;  // names may repeat (a second declare of one queue)
    QueueSpec spec;
    DeclareFn on_done;
  };
  struct Consumer {
    ConsumerId id;
    std::string queue;
    std::string tag;
    DeliveryFn fn;
    ConsumeOptions options;
    bool registered = false;  // basic.consume sent on this channel epoch
    bool cancelling = false;
  };
  // A reply the consume channel owes us, in the order we asked.
  struct Sync {
    enum class Kind : uint8_t { qos, declare, consume, cancel } kind;
    uint64_t id = 0;  // declare: QueueEntry::id; consume/cancel: ConsumerId
  };
  struct InFlight {
    uint64_t seq = 0;
    ConfirmFn fn;
    bool done = false;
    bool mandatory = false;
    bool returned = false;
    uint16_t return_code = 0;
    std::string return_text;
    std::string exchange, routing_key;  // mandatory only: to match basic.return
  };
  // Publishes awaiting their confirm, oldest first: a vector used as a
  // queue, keeping its capacity, so steady-state publishing allocates nothing.
  class InFlightQueue {
   public:
    bool empty() const noexcept { return head_ == items_.size(); }
    size_t size() const noexcept { return items_.size() - head_; }
    InFlight& operator[](size_t i) noexcept { return items_[head_ + i]; }
    InFlight& front() noexcept { return items_[head_]; }
    void push_back(InFlight&& f) { items_.push_back(std::move(f)); }
    void pop_front() {
      items_[head_] = InFlight();
      if (++head_ == items_.size()) {
        items_.clear();
        head_ = 0;
      } else if (head_ >= 256 && head_ * 2 >= items_.size()) {
        items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
      }
    }
    // Everything, oldest first; leaves the queue empty.
    std::vector<InFlight> take() {
      std::vector<InFlight> out = std::move(items_);
      out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(head_));
      items_.clear();
      head_ = 0;
      return out;
    }

   private:
    std::vector<InFlight> items_;
    size_t head_ = 0;
  };
  struct Held {
    std::string exchange, routing_key;
    std::vector<uint8_t> header;  // the encoded properties
    Bytes body;
    ConfirmFn fn;
    bool mandatory;
  };

  Impl(Loop& l, BrokerSettings s, BrokerEvents e)
      : loop(l),
        settings(std::move(s)),
        events(std::move(e)),
        backoff(settings.reconnect_initial, settings.reconnect_max) {
    retry_timer.fire = [](TimerEntry* t) { static_cast<Impl*>(t->context)->on_retry(); };
    retry_timer.context = this;
    tick_timer.fire = [](TimerEntry* t) { static_cast<Impl*>(t->context)->on_tick(); };
    tick_timer.context = this;
    handshake_timer.fire = [](TimerEntry* t) {
      static_cast<Impl*>(t->context)->on_handshake_timeout();
    };
    handshake_timer.context = this;
    close_timer.fire = [](TimerEntry* t) { static_cast<Impl*>(t->context)->on_close_timeout(); };
    close_timer.context = this;
  }

  ~Impl() override {
    loop.cancel(retry_timer);
    loop.cancel(tick_timer);
    loop.cancel(handshake_timer);
    loop.cancel(close_timer);
    if (link) link->detach();
    if (conn) conn->abort();
  }

  // ---- connection life ------------------------------------------------------------

  void connect() {
    if (loop.draining()) {
      finish_closed();
      return;
    }
    state = State::connecting;
    ++stats.connect_attempts;
    EMBER_DEBUG(kLog, "connecting", {"host", settings.host}, {"port", unsigned{settings.port}},
                {"attempt", stats.connect_attempts});
    auto l = std::make_unique<BrokerLink>(this);
    link = l.get();
    ConnectOptions o;
    o.timeout = settings.connect_timeout;
    o.tls = settings.tls;
    o.server_name = settings.server_name;
    loop.connect(settings.host, settings.port, std::move(l), std::move(o));
  }

  void on_open(Connection& c) {
    conn = &c;
    if (state == State::closing || state == State::closed || loop.draining()) {
      if (state != State::closed) state = State::closing;
      abort_connection("closed while connecting");
      return;
    }
    amqp::ClientOptions o;
    o.username = settings.user;
    o.password = settings.password;
    o.vhost = settings.vhost;
    o.connection_name = settings.connection_name;
    o.heartbeat = settings.heartbeat;
    o.frame_max = settings.frame_max;
    o.max_body_size = settings.max_body_size;
    o.pool = &loop.buffers();
    o.close_timeout_ms = static_cast<uint64_t>(settings.close_timeout.count());
    client = std::make_unique<amqp::Client>(*this, std::move(o));
    loop.arm(handshake_timer, static_cast<uint64_t>(settings.connect_timeout.count()));
    c.want_write();
  }

  void on_data(const Bytes& data) {
    if (!client) return;
    (void)client->feed(data);  // errors arrive through on_connection_closed
    after_client_call();
  }

  void on_writable(IoChain& out) {
    settle_written();
    flush_acks();
    if (client) (void)client->produce(out);
  }

  // Without publisher confirms: every publish waiting in the client's output
  // goes out in this write, so its Confirm says acked now; whatever its
  // callback sends (the inbound ack) joins the same write, after it.
  void settle_written() {
    if (settings.publisher_confirms || !client) return;
    // Callbacks may publish (push_back): walk by index; those go out too.
    for (size_t i = 0; i < in_flight_.size(); ++i) {
      InFlight& f = in_flight_[i];
      if (f.done) continue;
      f.done = true;
      ConfirmFn fn = std::move(f.fn);
      report(fn, Confirm::Outcome::acked);
    }
    while (!in_flight_.empty() && in_flight_.front().done)
      in_flight_.pop_front();
    check_close_progress();
  }

  // Sends the coalesced ack (see settle), before anything else this
  // iteration produces.
  void flush_acks() {
    if (ack_upto_ == 0 || !client) return;
    uint64_t upto = std::exchange(ack_upto_, 0);
    bool alone = std::exchange(ack_deferred_, 0) == 1;
    if (!consume_usable()) return;  // the channel went: its tags are stale
    // `upto` is the last deferred ack; a lone one needs no `multiple`.
    auto st = client->ack(kConsumeChannel, upto, !alone);
    if (!st)
      EMBER_WARN(kLog, "cannot settle deliveries", {"up_to_delivery_tag", upto},
                 {"error", st.error().describe()});
  }

  // After anything that may have queued output or finished the client.
  void after_client_call() {
    if (!conn || !client) return;
    if (client->wants_write()) conn->want_write();
  }

  void on_link_closed(Connection& c, int error) {
    std::string why = abort_reason.empty() ? c.error_text() : abort_reason;
    abort_reason.clear();
    if (why.empty()) why = error == 0 ? "the broker closed the socket" : "socket error";
    bool opened = conn != nullptr;
    conn = nullptr;
    link = nullptr;
    loop.cancel(tick_timer);
    loop.cancel(handshake_timer);
    if (client) {
      client->transport_closed(why);  // reports on_connection_closed unless already done
      client.reset();
    }
    if (!opened) {
      EMBER_WARN(kLog, "connect failed", {"host", settings.host}, {"port", unsigned{settings.port}},
                 {"error", why});
      if (events.on_disconnected) events.on_disconnected(local_error(why));
    }
    if (state == State::closing || state == State::closed) {
      finish_closed();
      return;
    }
    schedule_reconnect();
  }

  void schedule_reconnect() {
    if (loop.draining()) {
      finish_closed();
      return;
    }
    state = State::waiting;
    auto delay = backoff.next();
    EMBER_INFO(kLog, "reconnecting", {"in_ms", ms(delay)}, {"attempt", backoff.attempts()});
    loop.arm(retry_timer, static_cast<uint64_t>(delay.count()));
  }

  void on_retry() {
    if (state != State::waiting) return;
    connect();
  }

  void abort_connection(std::string why) {
    if (!conn) return;
    abort_reason = std::move(why);
    conn->abort();
  }

  void on_handshake_timeout() {
    if (!client || client->ready()) return;
    std::string why = "AMQP handshake with " + settings.host + ":" + std::to_string(settings.port) +
                      " timed out after " + std::to_string(settings.connect_timeout.count()) +
                      " ms";
    EMBER_WARN(kLog, "connection failed", {"error", why});
    if (events.on_disconnected) events.on_disconnected(local_error(why));
    client.reset();  // not inside a client callback: timers run from the loop
    abort_connection(std::move(why));
  }

  void arm_tick() {
    if (!client) return;
    uint64_t now = loop.now_ms();
    uint64_t next = client->on_timer(now);
    if (!client) return;  // on_timer reported the connection dead
    after_client_call();
    if (next == 0) {
      loop.cancel(tick_timer);
    } else {
      loop.arm(tick_timer, next > now ? next - now : 0);
    }
  }

  void on_tick() { arm_tick(); }

  // ---- ClientHandler: the connection ----------------------------------------------

  void on_ready() override {
    loop.cancel(handshake_timer);
    backoff.reset();
    EMBER_INFO(kLog, "connected", {"host", settings.host}, {"port", unsigned{settings.port}},
               {"heartbeat_s", unsigned{client->tuning().heartbeat}},
               {"frame_max", client->tuning().frame_max});
    arm_tick();
    setup_pending = true;
    open_consume_channel();
    open_publish_channel();
  }

  void on_connection_closed(const amqp::AmqpError& e) override {
    using Origin = amqp::AmqpError::Origin;
    bool graceful = state == State::closing && e.origin == Origin::client && e.code == 200;
    if (graceful) {
      EMBER_INFO(kLog, "connection closed", {"reason", e.describe()});
    } else {
      ++stats.disconnects;
      EMBER_WARN(kLog, "connection closed", {"reason", e.describe()}, {"code", unsigned{e.code}});
    }
    lose_consume_channel();
    fail_in_flight(e.describe(), e.code);
    publish_usable = false;
    blocked_ = false;
    loop.cancel(handshake_timer);
    if (!graceful && events.on_disconnected) events.on_disconnected(e);
    if (!conn) return;
    // The broker's close-ok / our close-ok goes out first; a dead peer or
    // socket gets no more bytes.
    if (e.origin == Origin::local) {
      abort_connection(e.text);
    } else {
      conn->want_write();
      conn->close();
    }
  }

  void on_blocked(std::string_view reason) override {
    blocked_ = true;
    EMBER_WARN(kLog, "broker blocked publishing", {"reason", reason});
    if (events.on_blocked) events.on_blocked(true, reason);
  }

  void on_unblocked() override {
    blocked_ = false;
    EMBER_INFO(kLog, "broker unblocked publishing", {"held", held_.size()});
    if (events.on_blocked) events.on_blocked(false, {});
    flush_held();
  }

  // ---- channels -----------------------------------------------------------------------

  void open_consume_channel() {
    auto ch = client->open_channel(kConsumeChannel);
    if (!ch) {
      EMBER_ERROR(kLog, "cannot open the consume channel", {"error", ch.error().describe()});
      return;
    }
    ++epoch_;
    consume_open = true;
    sync.clear();
    // Always sent, so a prefetch of 0 (unlimited) is explicit too.
    (void)client->qos(kConsumeChannel, settings.prefetch);
    sync.push_back({Sync::Kind::qos, 0});
    for (QueueEntry& q : queues)
      send_declare(q);
    for (auto& c : consumers)
      if (!c->cancelling) send_consume(*c);
    after_client_call();
  }

  void open_publish_channel() {
    auto ch = client->open_channel(kPublishChannel);
    if (!ch) {
      EMBER_ERROR(kLog, "cannot open the publish channel", {"error", ch.error().describe()});
      return;
    }
    publish_usable = true;
    if (settings.publisher_confirms) {
      (void)client->confirm_select(kPublishChannel);
      confirm_pending = true;
    }
    flush_held();
    after_client_call();
  }

  void send_declare(const QueueEntry& q) {
    amqp::QueueDeclare m;
    m.queue = q.spec.name;
    m.durable = q.spec.durable;
    m.exclusive = q.spec.exclusive;
    m.auto_delete = q.spec.auto_delete;
    m.passive = q.spec.passive;
    m.arguments = amqp::TableView::trusted(q.spec.arguments);
    auto st = client->declare_queue(kConsumeChannel, m);
    if (!st) {
      EMBER_ERROR(kLog, "cannot send queue.declare", {"queue", q.spec.name},
                  {"error", st.error().describe()});
      return;
    }
    sync.push_back({Sync::Kind::declare, q.id});
  }

  void send_consume(Consumer& c) {
    amqp::BasicConsume m;
    m.queue = c.queue;
    m.consumer_tag = c.tag;
    m.exclusive = c.options.exclusive;
    auto st = client->consume(kConsumeChannel, m);
    if (!st) {
      EMBER_ERROR(kLog, "cannot send basic.consume", {"queue", c.queue},
                  {"error", st.error().describe()});
      return;
    }
    c.registered = true;
    sync.push_back({Sync::Kind::consume, c.id});
  }

  // The consume channel is gone (with or without the connection): its tags
  // are stale from now on, and its deliveries are back in their queues.
  void lose_consume_channel() {
    if (consume_open) ++epoch_;
    consume_open = false;
    unacked_ = 0;
    outstanding_.clear();
    ack_upto_ = 0;
    ack_deferred_ = 0;
    sync.clear();
    for (auto& c : consumers)
      c->registered = false;
    // Consumers cancelled by us whose cancel-ok never came are gone anyway.
    std::erase_if(consumers, [](const auto& c) { return c->cancelling; });
  }

  bool consume_usable() const noexcept {
    return client && consume_open && client->channel_open(kConsumeChannel);
  }

  void on_channel_closed(uint16_t channel, const amqp::AmqpError& e) override {
    ++stats.channel_closes;
    EMBER_WARN(kLog, "channel closed", {"channel", unsigned{channel}}, {"reason", e.describe()},
               {"code", unsigned{e.code}});
    if (channel == kConsumeChannel) {
      // The failing request is the oldest one unanswered.
      std::optional<Sync> culprit;
      if (!sync.empty()) culprit = sync.front();
      lose_consume_channel();
      if (culprit) drop_culprit(*culprit, e);
      if (state == State::closing) {
        check_close_progress();
        return;
      }
      open_consume_channel();
    } else if (channel == kPublishChannel) {
      publish_usable = false;
      fail_in_flight(e.describe(), e.code);
      if (state == State::closing) {
        check_close_progress();
        return;
      }
      open_publish_channel();
    }
  }

  void drop_culprit(const Sync& s, const amqp::AmqpError& e) {
    if (s.kind == Sync::Kind::declare && e.class_id == amqp::QueueDeclare::class_id) {
      auto it = std::find_if(queues.begin(), queues.end(),
                             [&](const QueueEntry& q) { return q.id == s.id; });
      if (it == queues.end()) return;
      EMBER_ERROR(kLog, "queue declare failed; removed from the topology", {"queue", it->spec.name},
                  {"reason", e.describe()});
      DeclareFn fn = std::move(it->on_done);
      queues.erase(it);
      if (fn) fn(&e);
    } else if (s.kind == Sync::Kind::consume && e.class_id == amqp::BasicConsume::class_id) {
      auto it = std::find_if(consumers.begin(), consumers.end(),
                             [&](const auto& c) { return c->id == s.id; });
      if (it == consumers.end()) return;
      EMBER_ERROR(kLog, "consume failed; consumer removed", {"queue", (*it)->queue},
                  {"consumer_tag", (*it)->tag}, {"reason", e.describe()});
      auto fn = std::move((*it)->options.on_cancelled);
      consumers.erase(it);
      if (fn) fn(e);
    }
  }

  void on_reply(uint16_t channel, const amqp::Method& m) override {
    if (channel == kPublishChannel) {
      if (std::holds_alternative<amqp::ConfirmSelectOk>(m)) {
        confirm_pending = false;
        maybe_ready();
      }
      return;
    }
    if (channel != kConsumeChannel || sync.empty()) return;
    Sync s = std::move(sync.front());
    sync.pop_front();
    switch (s.kind) {
      case Sync::Kind::qos:
        break;
      case Sync::Kind::declare:
        if (std::holds_alternative<amqp::QueueDeclareOk>(m)) {
          for (QueueEntry& q : queues)
            if (q.id == s.id && q.on_done) {
              DeclareFn fn = std::move(q.on_done);
              q.on_done = nullptr;
              fn(nullptr);
              break;
            }
        }
        break;
      case Sync::Kind::consume:
        break;
      case Sync::Kind::cancel:
        std::erase_if(consumers, [&](const auto& c) { return c->id == s.id; });
        break;
    }
    maybe_ready();
    check_close_progress();
  }

  void maybe_ready() {
    if (!setup_pending || confirm_pending || !sync.empty() || !consume_usable()) return;
    setup_pending = false;
    if (state != State::connecting) return;
    state = State::ready;
    ++stats.connections;
    EMBER_INFO(kLog, "ready", {"queues", queues.size()}, {"consumers", consumers.size()},
               {"epoch", epoch_});
    if (events.on_ready) events.on_ready();
  }

  void on_consumer_cancelled(uint16_t, std::string_view tag) override {
    auto it = std::find_if(consumers.begin(), consumers.end(),
                           [&](const auto& c) { return c->tag == tag; });
    if (it == consumers.end()) return;
    const Consumer& c = **it;
    amqp::AmqpError e(
        0,
        "the broker cancelled consumer '" + c.tag + "' of queue '" + c.queue + "' (queue deleted?)",
        amqp::AmqpError::Origin::broker, amqp::AmqpError::Scope::channel, kConsumeChannel);
    EMBER_WARN(kLog, "consumer cancelled by broker", {"queue", c.queue}, {"consumer_tag", c.tag});
    auto fn = std::move((*it)->options.on_cancelled);
    consumers.erase(it);
    if (fn) fn(e);
  }

  // ---- deliveries ---------------------------------------------------------------------

  void on_delivery(const amqp::Delivery& d) override {
    if (d.channel != kConsumeChannel || d.from_get) return;
    std::shared_ptr<Consumer> c;  // a reference count, no allocation
    for (auto& x : consumers)
      if (x->tag == d.consumer_tag) {
        c = x;
        break;
      }
    ++stats.deliveries;
    ++unacked_;
    outstanding_.push(d.delivery_tag);
    if (!c) {
      // Its consumer was cancelled here: hand the message back.
      settle(DeliveryTag{d.delivery_tag, epoch_}, Settle::nack, true);
      return;
    }
    Delivery out{DeliveryTag{d.delivery_tag, epoch_},
                 c->queue,
                 c->tag,
                 d.exchange,
                 d.routing_key,
                 d.redelivered,
                 d.properties,
                 d.body,
                 d.body_dropped};
    c->fn(out);
  }

  enum class Settle : uint8_t { ack, nack, reject };

  bool settle(DeliveryTag tag, Settle how, bool requeue) {
    static constexpr std::string_view names[] = {"ack", "nack", "reject"};
    if (tag.epoch != epoch_ || !consume_usable()) {
      ++stats.stale_tags;
      EMBER_WARN(kLog, "stale delivery tag dropped", {"op", names[static_cast<int>(how)]},
                 {"delivery_tag", tag.value}, {"tag_epoch", tag.epoch}, {"current_epoch", epoch_});
      return false;
    }
    amqp::Status st;
    switch (how) {
      case Settle::ack:
        // The oldest outstanding delivery: its ack waits for the flush and
        // covers every settled one up to it (one basic.ack multiple per
        // loop iteration instead of one per delivery: the broker's CPU
        // bounds a relay's rate). Any other: acked now, so a slow oldest
        // delivery never holds back the prefetch window.
        if (outstanding_.settle(tag.value)) {
          // Up to this tag, not to the last one the ring dropped: those
          // after it were acked on their own already, and the broker
          // refuses a multiple ack that names a tag it no longer holds.
          ack_upto_ = tag.value;
          ++ack_deferred_;
          if (unacked_ > 0) --unacked_;
          if (conn) conn->want_write();
          if (unacked_ == 0) flush_acks();  // nothing to wait for (and close may follow)
          check_close_progress();
          return true;
        }
        st = client->ack(kConsumeChannel, tag.value);
        break;
      case Settle::nack:
        st = client->nack(kConsumeChannel, tag.value, false, requeue);
        break;
      case Settle::reject:
        st = client->reject(kConsumeChannel, tag.value, requeue);
        break;
    }
    if (!st) {
      EMBER_WARN(kLog, "cannot settle delivery", {"delivery_tag", tag.value},
                 {"error", st.error().describe()});
      return false;
    }
    (void)outstanding_.settle(tag.value);  // on the wire already: nothing owed
    if (unacked_ > 0) --unacked_;
    after_client_call();
    check_close_progress();
    return true;
  }

  // ---- publishing ---------------------------------------------------------------------

  static void report(const ConfirmFn& fn, Confirm::Outcome o, uint16_t code = 0,
                     std::string_view text = {}) {
    if (!fn) return;
    Confirm c;
    c.outcome = o;
    c.code = code;
    c.text = text;
    fn(c);
  }

  bool can_send_publish() const noexcept {
    return client && publish_usable && !blocked_ && client->channel_open(kPublishChannel) &&
           state != State::closing;
  }

  void fail_publish(const ConfirmFn& fn, std::string_view why) {
    ++stats.failed_publishes;
    EMBER_DEBUG(kLog, "publish failed", {"error", why});
    report(fn, Confirm::Outcome::failed, 0, why);
  }

  void publish(std::string_view exchange, std::string_view routing_key, Bytes body,
               const amqp::BasicProperties& props, ConfirmFn fn, bool mandatory) {
    if (state == State::closing || state == State::closed || state == State::idle) {
      fail_publish(fn, state == State::idle ? "the broker connection is not started"
                                            : "the broker connection is closing");
      return;
    }
    if (mandatory && !settings.publisher_confirms) {
      // Its Confirm would say acked before the broker could return it.
      fail_publish(fn,
                   "a mandatory publish needs publisher confirms "
                   "(BrokerSettings::publisher_confirms)");
      return;
    }
    if (can_send_publish() && held_.empty()) {
      send_publish(exchange, routing_key, body, props, std::move(fn), mandatory);
      after_client_call();
      return;
    }
    if (held_.size() >= settings.max_held_publishes) {
      fail_publish(fn, blocked_ ? "publish queue full while the broker blocks publishing"
                                : "publish queue full while not connected");
      return;
    }
    Held h{std::string(exchange),
           std::string(routing_key),
           {},
           std::move(body),
           std::move(fn),
           mandatory};
    if (!amqp::encode_content_header(h.body.size(), props, h.header)) {
      fail_publish(h.fn, "properties cannot be encoded");
      return;
    }
    held_.push_back(std::move(h));
  }

  void send_publish(std::string_view exchange, std::string_view routing_key, const Bytes& body,
                    const amqp::BasicProperties& props, ConfirmFn fn, bool mandatory) {
    auto seq = client->publish(kPublishChannel, exchange, routing_key, body, props, mandatory);
    if (!seq) {
      fail_publish(fn, seq.error().describe());
      return;
    }
    ++stats.published;
    InFlight f;
    f.seq = *seq;
    f.fn = std::move(fn);
    if (mandatory) {
      f.mandatory = true;
      f.exchange = exchange;
      f.routing_key = routing_key;
    }
    in_flight_.push_back(std::move(f));
  }

  void flush_held() {
    while (!held_.empty() && can_send_publish()) {
      Held h = std::move(held_.front());
      held_.pop_front();
      amqp::ContentHeader ch;
      (void)amqp::decode_content_header(h.header, ch);  // our own encoding
      send_publish(h.exchange, h.routing_key, h.body, ch.properties, std::move(h.fn), h.mandatory);
    }
    after_client_call();
  }

  void fail_held(std::string_view why) {
    std::deque<Held> held = std::move(held_);
    held_.clear();
    for (Held& h : held)
      fail_publish(h.fn, why);
  }

  void fail_in_flight(const std::string& why, uint16_t code) {
    std::vector<InFlight> gone = in_flight_.take();
    for (InFlight& f : gone) {
      if (f.done) continue;
      ++stats.failed_publishes;
      report(f.fn, Confirm::Outcome::failed, code, why);
    }
  }

  void on_confirm(uint16_t channel, uint64_t tag, bool multiple, bool ack) override {
    // Without confirm.select a broker sends none; one that did could only
    // name publishes settle_written() has settled already.
    if (channel != kPublishChannel || !settings.publisher_confirms) return;
    auto finish = [&](InFlight& f) {
      f.done = true;
      ConfirmFn fn = std::move(f.fn);
      if (!ack) {
        report(fn, Confirm::Outcome::nacked);
      } else if (f.returned) {
        std::string text = std::move(f.return_text);
        report(fn, Confirm::Outcome::returned, f.return_code, text);
      } else {
        ++stats.confirmed;
        report(fn, Confirm::Outcome::acked);
      }
    };
    if (in_flight_.empty()) return;
    // Sequence numbers are contiguous from the front; callbacks may publish
    // (push_back), so walk by index.
    uint64_t first = in_flight_.front().seq;
    if (multiple) {
      for (size_t i = 0; i < in_flight_.size() && in_flight_[i].seq <= tag; ++i)
        if (!in_flight_[i].done) finish(in_flight_[i]);
    } else if (tag >= first && tag - first < in_flight_.size()) {
      InFlight& f = in_flight_[static_cast<size_t>(tag - first)];
      if (!f.done) finish(f);
    }
    while (!in_flight_.empty() && in_flight_.front().done)
      in_flight_.pop_front();
    check_close_progress();
  }

  void on_return(const amqp::Returned& r) override {
    if (r.channel != kPublishChannel) return;
    // The broker returns a mandatory publish before acking it, in publish
    // order: the oldest unconfirmed mandatory publish to the same exchange
    // and routing key not yet returned is this one.
    for (size_t i = 0; i < in_flight_.size(); ++i)
      if (InFlight& f = in_flight_[i]; f.mandatory && !f.done && !f.returned &&
                                       f.exchange == r.exchange && f.routing_key == r.routing_key) {
        f.returned = true;
        f.return_code = r.reply_code;
        f.return_text = std::string(r.reply_text);
        break;
      }
    EMBER_WARN(kLog, "publish returned", {"exchange", r.exchange}, {"routing_key", r.routing_key},
               {"code", unsigned{r.reply_code}}, {"reason", r.reply_text});
    if (events.on_return)
      events.on_return(
          Returned{r.reply_code, r.reply_text, r.exchange, r.routing_key, r.properties, r.body});
  }

  // ---- shutdown -----------------------------------------------------------------------

  void close(std::function<void()> fn) {
    if (fn) close_fns.push_back(std::move(fn));
    if (state == State::closed) {
      run_close_fns();
      return;
    }
    if (state == State::closing) return;
    state = State::closing;
    loop.cancel(retry_timer);
    fail_held("the broker connection is closing");
    if (!conn) {
      if (!link) finish_closed();  // a connect in progress ends in on_open / on_link_closed
      return;
    }
    if (!client || !client->ready()) {
      abort_connection("closed while connecting");
      return;
    }
    EMBER_INFO(kLog, "closing", {"unacked", unacked_}, {"in_flight", in_flight_.size()});
    if (consume_usable()) {
      for (auto& c : consumers)
        if (c->registered && !c->cancelling) {
          (void)client->cancel(kConsumeChannel, c->tag);
          c->cancelling = true;
          sync.push_back({Sync::Kind::cancel, c->id});
        }
    }
    after_client_call();
    loop.arm(close_timer, static_cast<uint64_t>(settings.close_timeout.count()));
    check_close_progress();
  }

  void check_close_progress() {
    if (state != State::closing || close_sent || !client || !client->ready()) return;
    if ((consume_usable() && unacked_ > 0) || !in_flight_.empty()) return;
    send_close();
  }

  void on_close_timeout() {
    if (state != State::closing || close_sent) return;
    EMBER_WARN(kLog, "close: giving up waiting", {"unacked", unacked_},
               {"in_flight", in_flight_.size()}, {"timeout_ms", ms(settings.close_timeout)});
    fail_in_flight("the broker connection closed before the confirm", 0);
    send_close();
  }

  void send_close() {
    if (!client || close_sent) return;
    flush_acks();
    close_sent = true;
    loop.cancel(close_timer);
    (void)client->close(200, "Goodbye");
    after_client_call();
    arm_tick();  // starts the close-ok timeout
  }

  void finish_closed() {
    if (state == State::closed) return;
    state = State::closed;
    loop.cancel(retry_timer);
    loop.cancel(close_timer);
    fail_held("the broker connection is closed");
    fail_in_flight("the broker connection is closed", 0);
    EMBER_INFO(kLog, "closed");
    if (events.on_closed) events.on_closed();
    run_close_fns();
  }

  void run_close_fns() {
    auto fns = std::move(close_fns);
    close_fns.clear();
    for (auto& f : fns)
      f();
  }

  // ---- state -------------------------------------------------------------------------

  Loop& loop;
  BrokerSettings settings;
  BrokerEvents events;
  Backoff backoff;
  State state = State::idle;
  BrokerStats stats;

  BrokerLink* link = nullptr;  // while a connection (attempt) exists
  Connection* conn = nullptr;  // once it opened
  std::unique_ptr<amqp::Client> client;
  std::string abort_reason;
  TimerEntry retry_timer, tick_timer, handshake_timer, close_timer;

  std::vector<QueueEntry> queues;
  // shared_ptr: a delivery keeps its consumer (and the running callback)
  // alive while the callback adds or cancels consumers.
  std::vector<std::shared_ptr<Consumer>> consumers;
  ConsumerId next_consumer = 1;
  uint64_t next_queue = 1;
  std::deque<Sync> sync;
  uint64_t epoch_ = 0;
  size_t unacked_ = 0;
  OutstandingTags outstanding_;  // this epoch's deliveries not yet acked on the wire
  uint64_t ack_upto_ = 0;        // a basic.ack multiple owed at the next flush (0: none)
  size_t ack_deferred_ = 0;      // acks deferred since the last flush
  bool consume_open = false;
  bool setup_pending = false;

  bool publish_usable = false;
  bool confirm_pending = false;
  bool blocked_ = false;
  InFlightQueue in_flight_;
  std::deque<Held> held_;

  bool close_sent = false;
  std::vector<std::function<void()>> close_fns;
};

// ---- BrokerLink ---------------------------------------------------------------------

void BrokerLink::on_open(Connection& c) {
  if (!broker_) {
    c.abort();
    return;
  }
  broker_->on_open(c);
}

void BrokerLink::on_data(Connection&, const Bytes& data) {
  if (broker_) broker_->on_data(data);
}

void BrokerLink::on_writable(Connection&, IoChain& out) {
  if (broker_) broker_->on_writable(out);
}

void BrokerLink::on_close(Connection& c, int error) {
  if (broker_) broker_->on_link_closed(c, error);
}

void BrokerLink::on_drain(Connection& c) {
  if (!broker_) {
    c.abort();
    return;
  }
  broker_->close(nullptr);
}

// ---- Broker -------------------------------------------------------------------------

Broker::Broker(Loop& loop, BrokerSettings settings, BrokerEvents events)
    : impl_(std::make_unique<Impl>(loop, std::move(settings), std::move(events))) {}

Broker::~Broker() = default;

void Broker::start() {
  if (impl_->state != State::idle) return;
  impl_->connect();
}

void Broker::declare_queue(QueueSpec spec, DeclareFn on_done) {
  Impl& m = *impl_;
  m.queues.push_back(Impl::QueueEntry{m.next_queue++, std::move(spec), std::move(on_done)});
  if (m.consume_usable()) {
    m.send_declare(m.queues.back());
    m.after_client_call();
  }
}

Broker::ConsumerId Broker::consume(std::string queue, DeliveryFn on_delivery,
                                   ConsumeOptions options) {
  Impl& m = *impl_;
  ConsumerId id = m.next_consumer++;
  std::string tag = options.consumer_tag;
  if (tag.empty())
    tag = (m.settings.connection_name.empty() ? std::string("ember") : m.settings.connection_name) +
          "-" + std::to_string(id);
  m.consumers.push_back(std::make_shared<Impl::Consumer>(
      Impl::Consumer{id, std::move(queue), std::move(tag), std::move(on_delivery), options}));
  if (m.consume_usable()) {
    m.send_consume(*m.consumers.back());
    m.after_client_call();
  }
  return id;
}

bool Broker::cancel(ConsumerId id) {
  Impl& m = *impl_;
  auto it = std::find_if(m.consumers.begin(), m.consumers.end(),
                         [&](const auto& c) { return c->id == id; });
  if (it == m.consumers.end() || (*it)->cancelling) return false;
  if ((*it)->registered && m.consume_usable()) {
    (void)m.client->cancel(kConsumeChannel, (*it)->tag);
    (*it)->cancelling = true;
    m.sync.push_back({Impl::Sync::Kind::cancel, id});
    m.after_client_call();
  } else {
    m.consumers.erase(it);
  }
  return true;
}

bool Broker::ack(DeliveryTag tag) {
  return impl_->settle(tag, Impl::Settle::ack, false);
}

bool Broker::nack(DeliveryTag tag, bool requeue) {
  return impl_->settle(tag, Impl::Settle::nack, requeue);
}

bool Broker::reject(DeliveryTag tag, bool requeue) {
  return impl_->settle(tag, Impl::Settle::reject, requeue);
}

void Broker::publish(std::string_view exchange, std::string_view routing_key, Bytes body,
                     const amqp::BasicProperties& properties, ConfirmFn on_confirm,
                     bool mandatory) {
  impl_->publish(exchange, routing_key, std::move(body), properties, std::move(on_confirm),
                 mandatory);
}

void Broker::close(std::function<void()> on_closed) {
  impl_->close(std::move(on_closed));
}

Broker::State Broker::state() const noexcept {
  return impl_->state;
}
bool Broker::blocked() const noexcept {
  return impl_->blocked_;
}
uint64_t Broker::epoch() const noexcept {
  return impl_->epoch_;
}
size_t Broker::unacked() const noexcept {
  return impl_->unacked_;
}
size_t Broker::in_flight() const noexcept {
  return impl_->in_flight_.size();
}
size_t Broker::held() const noexcept {
  return impl_->held_.size();
}
const BrokerStats& Broker::stats() const noexcept {
  return impl_->stats;
}

}  // namespace ember::queue
