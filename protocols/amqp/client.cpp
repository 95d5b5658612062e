#include "protocols/amqp/client.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace ember::amqp {

// ---- PendingOutput -----------------------------------------------------------------

namespace detail {

void PendingOutput::copy(const void* data, size_t n) {
  auto p = static_cast<const uint8_t*>(data);
  cork_.insert(cork_.end(), p, p + n);
}

void PendingOutput::ref(const Bytes& payload) {
  if (payload.empty()) return;
  refs_.push_back(Ref{cork_.size(), payload});
  ref_bytes_ += payload.size();
}

void PendingOutput::drain(IoChain& out) {
  size_t at = 0;
  for (Ref& r : refs_) {
    if (r.cork_at > at) out.append_copy(cork_.data() + at, r.cork_at - at);
    at = r.cork_at;
    out.append(std::move(r.payload));
  }
  if (cork_.size() > at) out.append_copy(cork_.data() + at, cork_.size() - at);
  cork_.clear();
  refs_.clear();
  ref_bytes_ = 0;
}

}  // namespace detail

// ---- construction ------------------------------------------------------------------

namespace {

FrameReaderOptions reader_options(const ClientOptions& o) {
  FrameReaderOptions r;
  r.frame_max = o.frame_max == 0 ? 0 : std::max(o.frame_max, kFrameMinSize);
  r.channel_max = 0;  // nothing but channel 0 before open
  r.max_body_size = o.max_body_size;
  r.pool = o.pool;
  return r;
}

AmqpError local_error(std::string text, uint16_t channel = 0) {
  return AmqpError(0, std::move(text), AmqpError::Origin::local,
                   channel ? AmqpError::Scope::channel : AmqpError::Scope::connection, channel);
}

// Short strings on the wire are at most 255 bytes.
std::string_view clip(std::string_view s) {
  return s.size() > 255 ? s.substr(0, 255) : s;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t sp = list.find(' ');
    std::string_view t = list.substr(0, sp);
    if (t == token) return true;
    if (sp == std::string_view::npos) break;
    list.remove_prefix(sp + 1);
  }
  return false;
}

}  // namespace

Client::Client(ClientHandler& handler, ClientOptions options)
    : handler_(handler), options_(std::move(options)), reader_(reader_options(options_)) {
  if (options_.frame_max != 0) options_.frame_max = std::max(options_.frame_max, kFrameMinSize);
  writer_.set_frame_max(options_.frame_max);
  writer_.set_copy_threshold(options_.copy_threshold);

  TableWriter t;
  t.add("product", FieldValue::string(options_.product));
  t.add("version", FieldValue::string(options_.version));
  t.add("platform", FieldValue::string("C++20"));
  if (!options_.connection_name.empty())
    t.add("connection_name", FieldValue::string(options_.connection_name));
  t.begin_table("capabilities");
  for (const char* cap :
       {"publisher_confirms", "consumer_cancel_notify", "connection.blocked", "basic.nack",
        "exchange_exchange_bindings", "authentication_failure_close", "per_consumer_qos"})
    t.add(cap, FieldValue::boolean(true));
  t.end();
  auto bytes = t.view().bytes();
  client_properties_.assign(bytes.begin(), bytes.end());

  FrameWriter::protocol_header(pending_);
}

// ---- bytes and time ----------------------------------------------------------------

Status Client::feed(const Bytes& input) {
  if (state_ == ClientState::closed || input.empty()) return {};
  rx_seen_ = true;
  Status st = reader_.feed(input, *this);
  if (!st) {
    AmqpError e = st.error();
    protocol_error(e);
    feed_error_.reset();
    return e;
  }
  if (feed_error_) {
    AmqpError e = std::move(*feed_error_);
    feed_error_.reset();
    return e;
  }
  return {};
}

Status Client::produce(IoChain& out) {
  if (!pending_.empty()) {
    pending_.drain(out);
    last_tx_ = clock_;
  }
  return {};
}

uint64_t Client::on_timer(uint64_t now_ms) {
  clock_ = now_ms;
  if (state_ == ClientState::closed) return 0;
  if (state_ == ClientState::closing) {
    if (close_deadline_ == 0) {
      close_deadline_ = now_ms + options_.close_timeout_ms;
    } else if (now_ms >= close_deadline_) {
      AmqpError e = close_reason_;
      enter_closed();
      report_closed(e);
      return 0;
    }
  }
  if (!heartbeat_armed_) return close_deadline_;
  const uint64_t interval = uint64_t{tuning_.heartbeat} * 1000;
  if (!heartbeat_started_) {
    heartbeat_started_ = true;
    last_rx_ = last_tx_ = now_ms;
    rx_seen_ = false;
  }
  if (rx_seen_) last_rx_ = now_ms;
  rx_seen_ = false;
  if (now_ms - last_rx_ >= 2 * interval) {
    char text[128];
    std::snprintf(text, sizeof text,
                  "no data from the broker for %llu ms (two heartbeat intervals of %u s)",
                  static_cast<unsigned long long>(now_ms - last_rx_), unsigned{tuning_.heartbeat});
    enter_closed();
    report_closed(local_error(text));
    return 0;
  }
  if (now_ms - last_tx_ >= interval / 2 && state_ != ClientState::closing) {
    FrameWriter::heartbeat(pending_);
    last_tx_ = now_ms;
  }
  uint64_t next = std::min(last_tx_ + interval / 2, last_rx_ + 2 * interval);
  if (close_deadline_ != 0) next = std::min(next, close_deadline_);
  return next;
}

void Client::transport_closed(std::string_view reason) {
  if (state_ == ClientState::closed) return;
  ClientState was = state_;
  enter_closed();
  if (was == ClientState::closing) {
    report_closed(close_reason_);
    return;
  }
  std::string text = "the socket closed";
  if (!reason.empty()) {
    text += " (";
    text += reason;
    text += ')';
  }
  if (was == ClientState::awaiting_tune)
    text += " during the handshake: wrong username or password?";
  if (was == ClientState::awaiting_open_ok) text += " during the handshake: unknown vhost?";
  report_closed(local_error(std::move(text)));
}

void Client::enter_closed() {
  state_ = ClientState::closed;
  heartbeat_armed_ = false;
  close_deadline_ = 0;
  for (ChannelState& c : channels_)
    c = ChannelState();
}

void Client::report_closed(const AmqpError& e) {
  if (closed_reported_) return;
  closed_reported_ = true;
  handler_.on_connection_closed(e);
}

void Client::protocol_error(AmqpError e) {
  if (state_ == ClientState::closed || state_ == ClientState::closing) return;
  e.origin = AmqpError::Origin::client;
  e.scope = AmqpError::Scope::connection;
  send_raw(0, ConnectionClose{e.code, clip(e.text), e.class_id, e.method_id});
  state_ = ClientState::closing;
  close_reason_ = e;
  feed_error_ = e;
  report_closed(e);
}

void Client::send_raw(uint16_t channel, const Method& m) {
  // Only our own, well-formed methods come here: encoding cannot fail.
  (void)writer_.method(pending_, channel, m);
}

// ---- channels ----------------------------------------------------------------------

Client::ChannelState* Client::find_channel(uint16_t channel) noexcept {
  return channel < channels_.size() ? &channels_[channel] : nullptr;
}

const Client::ChannelState* Client::find_channel(uint16_t channel) const noexcept {
  return channel < channels_.size() ? &channels_[channel] : nullptr;
}

Client::ChannelState& Client::channel_state(uint16_t channel) {
  if (channel >= channels_.size()) channels_.resize(size_t{channel} + 1);
  return channels_[channel];
}

uint16_t Client::effective_channel_max() const noexcept {
  return tuning_.channel_max == 0 ? 65535 : tuning_.channel_max;
}

bool Client::channel_open(uint16_t channel) const noexcept {
  const ChannelState* c = find_channel(channel);
  return c && (c->phase == ChannelState::Phase::open || c->phase == ChannelState::Phase::opening);
}

Status Client::usable(uint16_t channel) const {
  if (state_ != ClientState::open) return local_error("the connection is not open", channel);
  if (!channel_open(channel))
    return local_error("channel " + std::to_string(channel) + " is not open", channel);
  return {};
}

Expected<uint16_t, AmqpError> Client::open_channel(uint16_t channel) {
  if (state_ != ClientState::open) return local_error("the connection is not open");
  uint16_t max = effective_channel_max();
  if (channel == 0) {
    for (uint32_t id = 1; id <= max; ++id) {
      const ChannelState* c = find_channel(static_cast<uint16_t>(id));
      if (!c || c->phase == ChannelState::Phase::closed) {
        channel = static_cast<uint16_t>(id);
        break;
      }
    }
    if (channel == 0) return local_error("no free channel id (channel_max reached)");
  } else if (channel > max) {
    return local_error("channel " + std::to_string(channel) + " is above channel_max " +
                       std::to_string(max));
  } else if (const ChannelState* c = find_channel(channel);
             c && c->phase != ChannelState::Phase::closed) {
    return local_error("channel " + std::to_string(channel) + " is already in use", channel);
  }
  ChannelState& c = channel_state(channel);
  c = ChannelState();
  c.phase = ChannelState::Phase::opening;
  reader_.reset_channel(channel);
  send_raw(channel, ChannelOpen{});
  return channel;
}

Status Client::close_channel(uint16_t channel, uint16_t code, std::string_view text) {
  if (Status st = usable(channel); !st) return st;
  ChannelState& c = channel_state(channel);
  c.phase = ChannelState::Phase::closing;
  c.close_code = code;
  c.close_text = std::string(clip(text));
  send_raw(channel, ChannelClose{code, c.close_text, 0, 0});
  return {};
}

Status Client::confirm_select(uint16_t channel) {
  if (Status st = usable(channel); !st) return st;
  ChannelState& c = channel_state(channel);
  if (c.confirms) return {};
  c.confirms = true;
  c.next_seq = 1;
  send_raw(channel, ConfirmSelect{});
  return {};
}

Status Client::qos(uint16_t channel, uint16_t prefetch_count, uint32_t prefetch_size, bool global) {
  return send(channel, BasicQos{prefetch_size, prefetch_count, global});
}

Status Client::cancel(uint16_t channel, std::string_view consumer_tag) {
  return send(channel, BasicCancel{consumer_tag, false});
}

Status Client::get(uint16_t channel, std::string_view queue, bool no_ack) {
  return send(channel, BasicGet{0, queue, no_ack});
}

Status Client::send(uint16_t channel, const Method& m) {
  if (Status st = usable(channel); !st) return st;
  return writer_.method(pending_, channel, m);
}

Expected<uint64_t, AmqpError> Client::publish(uint16_t channel, std::string_view exchange,
                                              std::string_view routing_key, const Bytes& body,
                                              const BasicProperties& properties, bool mandatory) {
  if (Status st = usable(channel); !st) return std::move(st.error());
  Status st =
      writer_.content(pending_, channel, BasicPublish{0, exchange, routing_key, mandatory, false},
                      properties, body);
  if (!st) return std::move(st.error());
  ChannelState& c = channels_[channel];
  return c.confirms ? c.next_seq++ : uint64_t{0};
}

Status Client::ack(uint16_t channel, uint64_t delivery_tag, bool multiple) {
  return send(channel, BasicAck{delivery_tag, multiple});
}

Status Client::nack(uint16_t channel, uint64_t delivery_tag, bool multiple, bool requeue) {
  return send(channel, BasicNack{delivery_tag, multiple, requeue});
}

Status Client::reject(uint16_t channel, uint64_t delivery_tag, bool requeue) {
  return send(channel, BasicReject{delivery_tag, requeue});
}

Status Client::close(uint16_t code, std::string_view text) {
  if (state_ == ClientState::closing) return {};
  if (state_ == ClientState::closed) return local_error("the connection is closed");
  close_reason_ = AmqpError(code, std::string(clip(text)), AmqpError::Origin::client);
  send_raw(0, ConnectionClose{code, close_reason_.text, 0, 0});
  state_ = ClientState::closing;
  return {};
}

// ---- incoming ----------------------------------------------------------------------

void Client::on_method(uint16_t channel, const Method& m) {
  if (state_ == ClientState::closed) return;
  if (state_ == ClientState::closing) {
    // After connection.close only close and close-ok matter (spec 4.2.5).
    if (std::holds_alternative<ConnectionCloseOk>(m)) {
      enter_closed();
      report_closed(close_reason_);
    } else if (const auto* c = std::get_if<ConnectionClose>(&m)) {
      send_raw(0, ConnectionCloseOk{});
      AmqpError e(c->reply_code, std::string(c->reply_text), AmqpError::Origin::broker,
                  AmqpError::Scope::connection, 0, c->failing_class_id, c->failing_method_id);
      enter_closed();
      report_closed(closed_reported_ ? close_reason_ : e);
    }
    return;
  }
  if (channel == 0) {
    on_connection_method(m);
  } else {
    on_channel_method(channel, m);
  }
}

void Client::on_connection_method(const Method& m) {
  auto unexpected = [&] {
    const char* when = state_ == ClientState::awaiting_start     ? "connection.start"
                       : state_ == ClientState::awaiting_tune    ? "connection.tune"
                       : state_ == ClientState::awaiting_open_ok ? "connection.open-ok"
                                                                 : "no connection method";
    protocol_error(AmqpError(
        ReplyCode::command_invalid, std::string(name_of(m)) + " while expecting " + when,
        AmqpError::Origin::client, AmqpError::Scope::connection, 0, class_of(m), method_of(m)));
  };
  if (const auto* c = std::get_if<ConnectionClose>(&m)) {
    send_raw(0, ConnectionCloseOk{});
    AmqpError e(c->reply_code, std::string(c->reply_text), AmqpError::Origin::broker,
                AmqpError::Scope::connection, 0, c->failing_class_id, c->failing_method_id);
    enter_closed();
    report_closed(e);
    return;
  }
  if (const auto* s = std::get_if<ConnectionStart>(&m)) {
    if (state_ != ClientState::awaiting_start) return unexpected();
    return handle_start(*s);
  }
  if (const auto* t = std::get_if<ConnectionTune>(&m)) {
    if (state_ != ClientState::awaiting_tune) return unexpected();
    return handle_tune(*t);
  }
  if (std::holds_alternative<ConnectionOpenOk>(m)) {
    if (state_ != ClientState::awaiting_open_ok) return unexpected();
    state_ = ClientState::open;
    reader_.set_channel_max(effective_channel_max());
    handler_.on_ready();
    return;
  }
  if (std::holds_alternative<ConnectionSecure>(m)) {
    if (state_ != ClientState::awaiting_tune) return unexpected();
    protocol_error(AmqpError(
        ReplyCode::not_implemented, "connection.secure: only the PLAIN mechanism is supported",
        AmqpError::Origin::client, AmqpError::Scope::connection, 0, class_of(m), method_of(m)));
    return;
  }
  if (const auto* b = std::get_if<ConnectionBlocked>(&m)) {
    blocked_ = true;
    handler_.on_blocked(b->reason);
    return;
  }
  if (std::holds_alternative<ConnectionUnblocked>(m)) {
    blocked_ = false;
    handler_.on_unblocked();
    return;
  }
  if (std::holds_alternative<ConnectionUpdateSecretOk>(m) && state_ == ClientState::open) {
    handler_.on_reply(0, m);
    return;
  }
  unexpected();
}

void Client::handle_start(const ConnectionStart& m) {
  if (m.version_major != 0 || m.version_minor != 9) {
    protocol_error(AmqpError(ReplyCode::not_implemented,
                             "broker speaks AMQP " + std::to_string(m.version_major) + "-" +
                                 std::to_string(m.version_minor) + ", not 0-9",
                             AmqpError::Origin::client, AmqpError::Scope::connection, 0,
                             ConnectionStart::class_id, ConnectionStart::method_id));
    return;
  }
  if (!has_token(m.mechanisms, "PLAIN")) {
    protocol_error(AmqpError(
        ReplyCode::not_implemented,
        "the broker does not offer the PLAIN mechanism (offers: " + std::string(m.mechanisms) + ")",
        AmqpError::Origin::client, AmqpError::Scope::connection, 0, ConnectionStart::class_id,
        ConnectionStart::method_id));
    return;
  }
  auto props = m.server_properties.bytes();
  server_properties_.assign(props.begin(), props.end());
  std::string response;
  response.reserve(options_.username.size() + options_.password.size() + 2);
  response += '\0';
  response += options_.username;
  response += '\0';
  response += options_.password;
  ConnectionStartOk ok;
  ok.client_properties = TableView::trusted(client_properties_);
  ok.mechanism = "PLAIN";
  ok.response = response;
  ok.locale = "en_US";
  send_raw(0, ok);
  state_ = ClientState::awaiting_tune;
}

void Client::handle_tune(const ConnectionTune& m) {
  tuning_.channel_max = static_cast<uint16_t>(negotiate(options_.channel_max, m.channel_max));
  tuning_.frame_max = negotiate(options_.frame_max, m.frame_max);
  tuning_.heartbeat = static_cast<uint16_t>(negotiate(options_.heartbeat, m.heartbeat));
  if (tuning_.frame_max != 0 && tuning_.frame_max < kFrameMinSize) {
    protocol_error(AmqpError(ReplyCode::not_allowed,
                             "connection.tune frame_max " + std::to_string(m.frame_max) +
                                 " is below the minimum of 4096",
                             AmqpError::Origin::client, AmqpError::Scope::connection, 0,
                             ConnectionTune::class_id, ConnectionTune::method_id));
    return;
  }
  send_raw(0, ConnectionTuneOk{tuning_.channel_max, tuning_.frame_max, tuning_.heartbeat});
  reader_.set_frame_max(tuning_.frame_max);
  writer_.set_frame_max(tuning_.frame_max);
  heartbeat_armed_ = tuning_.heartbeat != 0;
  heartbeat_started_ = false;
  send_raw(0, ConnectionOpen{options_.vhost, "", false});
  state_ = ClientState::awaiting_open_ok;
}

void Client::on_channel_method(uint16_t channel, const Method& m) {
  using Phase = ChannelState::Phase;
  ChannelState* c = find_channel(channel);
  // Both sides closed the channel at once: the broker's close-ok for our
  // close arrives after we answered its close.
  if (c && c->phase == Phase::closed && std::holds_alternative<ChannelCloseOk>(m)) return;
  if (state_ != ClientState::open || !c || c->phase == Phase::closed) {
    protocol_error(AmqpError(
        ReplyCode::channel_error,
        std::string(name_of(m)) + " on channel " + std::to_string(channel) + ", which is not open",
        AmqpError::Origin::client, AmqpError::Scope::connection, channel, class_of(m),
        method_of(m)));
    return;
  }
  if (const auto* close = std::get_if<ChannelClose>(&m)) {
    send_raw(channel, ChannelCloseOk{});
    AmqpError e(close->reply_code, std::string(close->reply_text), AmqpError::Origin::broker,
                AmqpError::Scope::channel, channel, close->failing_class_id,
                close->failing_method_id);
    *c = ChannelState();
    reader_.reset_channel(channel);
    handler_.on_channel_closed(channel, e);
    return;
  }
  if (c->phase == Phase::closing) {
    // After channel.close only close and close-ok matter.
    if (std::holds_alternative<ChannelCloseOk>(m)) {
      AmqpError e(c->close_code, std::move(c->close_text), AmqpError::Origin::client,
                  AmqpError::Scope::channel, channel);
      *c = ChannelState();
      reader_.reset_channel(channel);
      handler_.on_channel_closed(channel, e);
    }
    return;
  }
  if (std::holds_alternative<ChannelOpenOk>(m)) {
    if (c->phase != Phase::opening) {
      protocol_error(AmqpError(
          ReplyCode::command_invalid,
          "channel.open-ok on channel " + std::to_string(channel) + ", which is already open",
          AmqpError::Origin::client, AmqpError::Scope::connection, channel, class_of(m),
          method_of(m)));
      return;
    }
    c->phase = Phase::open;
    handler_.on_channel_open(channel);
    return;
  }
  if (const auto* a = std::get_if<BasicAck>(&m)) {
    handler_.on_confirm(channel, a->delivery_tag, a->multiple, true);
    return;
  }
  if (const auto* n = std::get_if<BasicNack>(&m)) {
    handler_.on_confirm(channel, n->delivery_tag, n->multiple, false);
    return;
  }
  if (const auto* cancel = std::get_if<BasicCancel>(&m)) {
    if (!cancel->no_wait) send_raw(channel, BasicCancelOk{cancel->consumer_tag});
    handler_.on_consumer_cancelled(channel, cancel->consumer_tag);
    return;
  }
  if (const auto* flow = std::get_if<ChannelFlow>(&m)) {
    send_raw(channel, ChannelFlowOk{flow->active});
    handler_.on_flow(channel, flow->active);
    return;
  }
  if (std::holds_alternative<ChannelCloseOk>(m)) {
    protocol_error(AmqpError(
        ReplyCode::command_invalid,
        "channel.close-ok on channel " + std::to_string(channel) + ", which we did not close",
        AmqpError::Origin::client, AmqpError::Scope::connection, channel, class_of(m),
        method_of(m)));
    return;
  }
  handler_.on_reply(channel, m);
}

void Client::on_content(const Content& content) {
  using Phase = ChannelState::Phase;
  if (state_ == ClientState::closed || state_ == ClientState::closing) return;
  const uint16_t channel = content.channel;
  const ChannelState* c = find_channel(channel);
  if (state_ != ClientState::open || !c || c->phase == Phase::closed) {
    protocol_error(AmqpError(ReplyCode::channel_error,
                             std::string(name_of(content.method)) + " on channel " +
                                 std::to_string(channel) + ", which is not open",
                             AmqpError::Origin::client, AmqpError::Scope::connection, channel,
                             class_of(content.method), method_of(content.method)));
    return;
  }
  if (c->phase == Phase::closing) return;
  if (const auto* d = std::get_if<BasicDeliver>(&content.method)) {
    handler_.on_delivery(Delivery{channel, d->consumer_tag, d->delivery_tag, d->redelivered,
                                  d->exchange, d->routing_key, content.properties, content.body,
                                  content.body_size, content.dropped, false, 0});
    return;
  }
  if (const auto* g = std::get_if<BasicGetOk>(&content.method)) {
    handler_.on_delivery(Delivery{channel,
                                  {},
                                  g->delivery_tag,
                                  g->redelivered,
                                  g->exchange,
                                  g->routing_key,
                                  content.properties,
                                  content.body,
                                  content.body_size,
                                  content.dropped,
                                  true,
                                  g->message_count});
    return;
  }
  if (const auto* r = std::get_if<BasicReturn>(&content.method)) {
    handler_.on_return(Returned{channel, r->reply_code, r->reply_text, r->exchange, r->routing_key,
                                content.properties, content.body});
    return;
  }
  protocol_error(AmqpError(ReplyCode::command_invalid,
                           std::string(name_of(content.method)) + " from the broker",
                           AmqpError::Origin::client, AmqpError::Scope::connection, channel,
                           class_of(content.method), method_of(content.method)));
}

}  // namespace ember::amqp
