// AMQP 0-9-1 methods (RabbitMQ's extended set) and basic content properties.
//
// Each method is a plain struct named after its class and method
// (QueueDeclare = queue.declare). Decoded strings and tables are views into
// the frame payload they came from: valid while that payload is (for the
// FrameReader: during the callback that delivers them). Reserved fields
// ("ticket", "out-of-band", ...) are kept so the wire is round-trip exact.
//
// encode_method() writes class id, method id and arguments; decode_method()
// reads them back and checks every table. Both are allocation-free apart
// from the output vector's growth.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "protocols/amqp/reply.hpp"
#include "protocols/amqp/table.hpp"
#include "protocols/amqp/wire.hpp"

namespace ember::amqp {

#define EMBER_AMQP_METHOD(cls, mth, text)    \
  static constexpr uint16_t class_id = cls;  \
  static constexpr uint16_t method_id = mth; \
  static constexpr std::string_view name = text;

// ---- connection (10) ---------------------------------------------------------
struct ConnectionStart {
  EMBER_AMQP_METHOD(10, 10, "connection.start")
  uint8_t version_major = 0;
  uint8_t version_minor = 9;
  TableView server_properties{};
  std::string_view mechanisms{};  // space-separated, e.g. "AMQPLAIN PLAIN"
  std::string_view locales{};
};
struct ConnectionStartOk {
  EMBER_AMQP_METHOD(10, 11, "connection.start-ok")
  TableView client_properties{};
  std::string_view mechanism{};
  std::string_view response{};
  std::string_view locale{};
};
struct ConnectionSecure {
  EMBER_AMQP_METHOD(10, 20, "connection.secure")
  std::string_view challenge{};
};
struct ConnectionSecureOk {
  EMBER_AMQP_METHOD(10, 21, "connection.secure-ok")
  std::string_view response{};
};
struct ConnectionTune {
  EMBER_AMQP_METHOD(10, 30, "connection.tune")
  uint16_t channel_max = 0;
  uint32_t frame_max = 0;
  uint16_t heartbeat = 0;
};
struct ConnectionTuneOk {
  EMBER_AMQP_METHOD(10, 31, "connection.tune-ok")
  uint16_t channel_max = 0;
  uint32_t frame_max = 0;
  uint16_t heartbeat = 0;
};
struct ConnectionOpen {
  EMBER_AMQP_METHOD(10, 40, "connection.open")
  std::string_view virtual_host = "/";
  std::string_view reserved_1{};  // capabilities
  bool reserved_2 = false;        // insist
};
struct ConnectionOpenOk {
  EMBER_AMQP_METHOD(10, 41, "connection.open-ok")
  std::string_view reserved_1{};  // known-hosts
};
struct ConnectionClose {
  EMBER_AMQP_METHOD(10, 50, "connection.close")
  uint16_t reply_code = 0;
  std::string_view reply_text{};
  uint16_t failing_class_id = 0;
  uint16_t failing_method_id = 0;
};
struct ConnectionCloseOk {
  EMBER_AMQP_METHOD(10, 51, "connection.close-ok")
};
struct ConnectionBlocked {
  EMBER_AMQP_METHOD(10, 60, "connection.blocked")
  std::string_view reason{};
};
struct ConnectionUnblocked {
  EMBER_AMQP_METHOD(10, 61, "connection.unblocked")
};
struct ConnectionUpdateSecret {
  EMBER_AMQP_METHOD(10, 70, "connection.update-secret")
  std::string_view new_secret{};
  std::string_view reason{};
};
struct ConnectionUpdateSecretOk {
  EMBER_AMQP_METHOD(10, 71, "connection.update-secret-ok")
};

// ---- channel (20) ------------------------------------------------------------
struct ChannelOpen {
  EMBER_AMQP_METHOD(20, 10, "channel.open")
  std::string_view reserved_1{};  // out-of-band
};
struct ChannelOpenOk {
  EMBER_AMQP_METHOD(20, 11, "channel.open-ok")
  std::string_view reserved_1{};  // channel-id (a long string)
};
struct ChannelFlow {
  EMBER_AMQP_METHOD(20, 20, "channel.flow")
  bool active = true;
};
struct ChannelFlowOk {
  EMBER_AMQP_METHOD(20, 21, "channel.flow-ok")
  bool active = true;
};
struct ChannelClose {
  EMBER_AMQP_METHOD(20, 40, "channel.close")
  uint16_t reply_code = 0;
  std::string_view reply_text{};
  uint16_t failing_class_id = 0;
  uint16_t failing_method_id = 0;
};
struct ChannelCloseOk {
  EMBER_AMQP_METHOD(20, 41, "channel.close-ok")
};

// ---- exchange (40) -----------------------------------------------------------
struct ExchangeDeclare {
  EMBER_AMQP_METHOD(40, 10, "exchange.declare")
  uint16_t reserved_1 = 0;
  std::string_view exchange{};
  std::string_view type = "direct";
  bool passive = false;
  bool durable = false;
  bool auto_delete = false;
  bool internal = false;
  bool no_wait = false;
  TableView arguments{};
};
struct ExchangeDeclareOk {
  EMBER_AMQP_METHOD(40, 11, "exchange.declare-ok")
};
struct ExchangeDelete {
  EMBER_AMQP_METHOD(40, 20, "exchange.delete")
  uint16_t reserved_1 = 0;
  std::string_view exchange{};
  bool if_unused = false;
  bool no_wait = false;
};
struct ExchangeDeleteOk {
  EMBER_AMQP_METHOD(40, 21, "exchange.delete-ok")
};
struct ExchangeBind {
  EMBER_AMQP_METHOD(40, 30, "exchange.bind")
  uint16_t reserved_1 = 0;
  std::string_view destination{};
  std::string_view source{};
  std::string_view routing_key{};
  bool no_wait = false;
  TableView arguments{};
};
struct ExchangeBindOk {
  EMBER_AMQP_METHOD(40, 31, "exchange.bind-ok")
};
struct ExchangeUnbind {
  EMBER_AMQP_METHOD(40, 40, "exchange.unbind")
  uint16_t reserved_1 = 0;
  std::string_view destination{};
  std::string_view source{};
  std::string_view routing_key{};
  bool no_wait = false;
  TableView arguments{};
};
struct ExchangeUnbindOk {
  EMBER_AMQP_METHOD(40, 51, "exchange.unbind-ok")
};

// ---- queue (50) --------------------------------------------------------------
struct QueueDeclare {
  EMBER_AMQP_METHOD(50, 10, "queue.declare")
  uint16_t reserved_1 = 0;
  std::string_view queue{};
  bool passive = false;
  bool durable = false;
  bool exclusive = false;
  bool auto_delete = false;
  bool no_wait = false;
  TableView arguments{};
};
struct QueueDeclareOk {
  EMBER_AMQP_METHOD(50, 11, "queue.declare-ok")
  std::string_view queue{};
  uint32_t message_count = 0;
  uint32_t consumer_count = 0;
};
struct QueueBind {
  EMBER_AMQP_METHOD(50, 20, "queue.bind")
  uint16_t reserved_1 = 0;
  std::string_view queue{};
  std::string_view exchange{};
  std::string_view routing_key{};
  bool no_wait = false;
  TableView arguments{};
};
struct QueueBindOk {
  EMBER_AMQP_METHOD(50, 21, "queue.bind-ok")
};
struct QueuePurge {
  EMBER_AMQP_METHOD(50, 30, "queue.purge")
  uint16_t reserved_1 = 0;
  std::string_view queue{};
  bool no_wait = false;
};
struct QueuePurgeOk {
  EMBER_AMQP_METHOD(50, 31, "queue.purge-ok")
  uint32_t message_count = 0;
};
struct QueueDelete {
  EMBER_AMQP_METHOD(50, 40, "queue.delete")
  uint16_t reserved_1 = 0;
  std::string_view queue{};
  bool if_unused = false;
  bool if_empty = false;
  bool no_wait = false;
};
struct QueueDeleteOk {
  EMBER_AMQP_METHOD(50, 41, "queue.delete-ok")
  uint32_t message_count = 0;
};
struct QueueUnbind {
  EMBER_AMQP_METHOD(50, 50, "queue.unbind")
  uint16_t reserved_1 = 0;
  std::string_view queue{};
  std::string_view exchange{};
  std::string_view routing_key{};
  TableView arguments{};
};
struct QueueUnbindOk {
  EMBER_AMQP_METHOD(50, 51, "queue.unbind-ok")
};

// ---- basic (60) --------------------------------------------------------------
struct BasicQos {
  EMBER_AMQP_METHOD(60, 10, "basic.qos")
  uint32_t prefetch_size = 0;
  uint16_t prefetch_count = 0;
  bool global = false;
};
struct BasicQosOk {
  EMBER_AMQP_METHOD(60, 11, "basic.qos-ok")
};
struct BasicConsume {
  EMBER_AMQP_METHOD(60, 20, "basic.consume")
  uint16_t reserved_1 = 0;
  std::string_view queue{};
  std::string_view consumer_tag{};
  bool no_local = false;
  bool no_ack = false;
  bool exclusive = false;
  bool no_wait = false;
  TableView arguments{};
};
struct BasicConsumeOk {
  EMBER_AMQP_METHOD(60, 21, "basic.consume-ok")
  std::string_view consumer_tag{};
};
// Sent by the client, and by RabbitMQ when a consumer's queue goes away
// (capability consumer_cancel_notify).
struct BasicCancel {
  EMBER_AMQP_METHOD(60, 30, "basic.cancel")
  std::string_view consumer_tag{};
  bool no_wait = false;
};
struct BasicCancelOk {
  EMBER_AMQP_METHOD(60, 31, "basic.cancel-ok")
  std::string_view consumer_tag{};
};
struct BasicPublish {
  EMBER_AMQP_METHOD(60, 40, "basic.publish")
  uint16_t reserved_1 = 0;
  std::string_view exchange{};
  std::string_view routing_key{};
  bool mandatory = false;
  bool immediate = false;
};
struct BasicReturn {
  EMBER_AMQP_METHOD(60, 50, "basic.return")
  uint16_t reply_code = 0;
  std::string_view reply_text{};
  std::string_view exchange{};
  std::string_view routing_key{};
};
struct BasicDeliver {
  EMBER_AMQP_METHOD(60, 60, "basic.deliver")
  std::string_view consumer_tag{};
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string_view exchange{};
  std::string_view routing_key{};
};
struct BasicGet {
  EMBER_AMQP_METHOD(60, 70, "basic.get")
  uint16_t reserved_1 = 0;
  std::string_view queue{};
  bool no_ack = false;
};
struct BasicGetOk {
  EMBER_AMQP_METHOD(60, 71, "basic.get-ok")
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string_view exchange{};
  std::string_view routing_key{};
  uint32_t message_count = 0;
};
struct BasicGetEmpty {
  EMBER_AMQP_METHOD(60, 72, "basic.get-empty")
  std::string_view reserved_1{};  // cluster-id
};
// Client ack of a delivery, or (confirm mode) the broker's ack of a publish.
struct BasicAck {
  EMBER_AMQP_METHOD(60, 80, "basic.ack")
  uint64_t delivery_tag = 0;
  bool multiple = false;
};
struct BasicReject {
  EMBER_AMQP_METHOD(60, 90, "basic.reject")
  uint64_t delivery_tag = 0;
  bool requeue = true;
};
struct BasicRecoverAsync {
  EMBER_AMQP_METHOD(60, 100, "basic.recover-async")
  bool requeue = false;
};
struct BasicRecover {
  EMBER_AMQP_METHOD(60, 110, "basic.recover")
  bool requeue = false;
};
struct BasicRecoverOk {
  EMBER_AMQP_METHOD(60, 111, "basic.recover-ok")
};
struct BasicNack {
  EMBER_AMQP_METHOD(60, 120, "basic.nack")
  uint64_t delivery_tag = 0;
  bool multiple = false;
  bool requeue = true;
};

// ---- confirm (85) ------------------------------------------------------------
struct ConfirmSelect {
  EMBER_AMQP_METHOD(85, 10, "confirm.select")
  bool no_wait = false;
};
struct ConfirmSelectOk {
  EMBER_AMQP_METHOD(85, 11, "confirm.select-ok")
};

#undef EMBER_AMQP_METHOD

using Method = std::variant<
    ConnectionStart, ConnectionStartOk, ConnectionSecure, ConnectionSecureOk, ConnectionTune,
    ConnectionTuneOk, ConnectionOpen, ConnectionOpenOk, ConnectionClose, ConnectionCloseOk,
    ConnectionBlocked, ConnectionUnblocked, ConnectionUpdateSecret, ConnectionUpdateSecretOk,
    ChannelOpen, ChannelOpenOk, ChannelFlow, ChannelFlowOk, ChannelClose, ChannelCloseOk,
    ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete, ExchangeDeleteOk, ExchangeBind,
    ExchangeBindOk, ExchangeUnbind, ExchangeUnbindOk, QueueDeclare, QueueDeclareOk, QueueBind,
    QueueBindOk, QueuePurge, QueuePurgeOk, QueueDelete, QueueDeleteOk, QueueUnbind, QueueUnbindOk,
    BasicQos, BasicQosOk, BasicConsume, BasicConsumeOk, BasicCancel, BasicCancelOk, BasicPublish,
    BasicReturn, BasicDeliver, BasicGet, BasicGetOk, BasicGetEmpty, BasicAck, BasicReject,
    BasicRecoverAsync, BasicRecover, BasicRecoverOk, BasicNack, ConfirmSelect, ConfirmSelectOk>;

// Class and method id of whichever method `m` holds.
uint16_t class_of(const Method& m) noexcept;
uint16_t method_of(const Method& m) noexcept;
std::string_view name_of(const Method& m) noexcept;
// basic.publish, basic.return, basic.deliver and basic.get-ok carry content
// (a header frame and body frames follow).
constexpr bool carries_content(uint16_t class_id, uint16_t method_id) noexcept {
  return class_id == 60 &&
         (method_id == 40 || method_id == 50 || method_id == 60 || method_id == 71);
}

enum class DecodeStatus : uint8_t {
  ok,
  truncated,       // arguments end early (502)
  trailing_bytes,  // bytes left after the last argument (502)
  bad_table,       // a table argument is malformed (502); see DecodeResult::table
  unknown_method,  // class/method ids name no known method (540)
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::ok;
  uint16_t class_id = 0;
  uint16_t method_id = 0;
  TableCheck table;  // for bad_table
  bool ok() const noexcept { return status == DecodeStatus::ok; }
  // The reply code a peer sends for this failure.
  ReplyCode reply_code() const noexcept;
  // "truncated arguments of queue.declare-ok", ...
  std::string describe() const;
};

// Decodes a method frame's payload (class id, method id, arguments) into
// `out`. Views point into `payload`.
DecodeResult decode_method(std::span<const uint8_t> payload, Method& out) noexcept;

// Appends class id, method id and arguments. False when an argument cannot
// be encoded (a short string over 255 bytes); `out` then holds garbage
// after its original size.
bool encode_method(const Method& m, std::vector<uint8_t>& out);

// ---- content header ----------------------------------------------------------

// The properties of class basic. `flags` says which are present (the wire's
// property flags); the setters set the flag too.
struct BasicProperties {
  enum Flag : uint16_t {
    kContentType = 1u << 15,
    kContentEncoding = 1u << 14,
    kHeaders = 1u << 13,
    kDeliveryMode = 1u << 12,
    kPriority = 1u << 11,
    kCorrelationId = 1u << 10,
    kReplyTo = 1u << 9,
    kExpiration = 1u << 8,
    kMessageId = 1u << 7,
    kTimestamp = 1u << 6,
    kType = 1u << 5,
    kUserId = 1u << 4,
    kAppId = 1u << 3,
    kClusterId = 1u << 2,
  };
  static constexpr uint16_t kAllFlags = 0xFFFC;

  uint16_t flags = 0;
  std::string_view content_type{};
  std::string_view content_encoding{};
  TableView headers{};
  uint8_t delivery_mode = 0;  // 1 transient, 2 persistent
  uint8_t priority = 0;
  std::string_view correlation_id{};
  std::string_view reply_to{};
  std::string_view expiration{};
  std::string_view message_id{};
  uint64_t timestamp = 0;  // seconds since the epoch
  std::string_view type{};
  std::string_view user_id{};
  std::string_view app_id{};
  std::string_view cluster_id{};

  bool has(Flag f) const noexcept { return (flags & f) != 0; }

  BasicProperties& set_content_type(std::string_view v) noexcept {
    return set(content_type, v, kContentType);
  }
  BasicProperties& set_content_encoding(std::string_view v) noexcept {
    return set(content_encoding, v, kContentEncoding);
  }
  BasicProperties& set_headers(const TableView& v) noexcept { return set(headers, v, kHeaders); }
  BasicProperties& set_delivery_mode(uint8_t v) noexcept {
    return set(delivery_mode, v, kDeliveryMode);
  }
  BasicProperties& set_priority(uint8_t v) noexcept { return set(priority, v, kPriority); }
  BasicProperties& set_correlation_id(std::string_view v) noexcept {
    return set(correlation_id, v, kCorrelationId);
  }
  BasicProperties& set_reply_to(std::string_view v) noexcept { return set(reply_to, v, kReplyTo); }
  BasicProperties& set_expiration(std::string_view v) noexcept {
    return set(expiration, v, kExpiration);
  }
  BasicProperties& set_message_id(std::string_view v) noexcept {
    return set(message_id, v, kMessageId);
  }
  BasicProperties& set_timestamp(uint64_t v) noexcept { return set(timestamp, v, kTimestamp); }
  BasicProperties& set_type(std::string_view v) noexcept { return set(type, v, kType); }
  BasicProperties& set_user_id(std::string_view v) noexcept { return set(user_id, v, kUserId); }
  BasicProperties& set_app_id(std::string_view v) noexcept { return set(app_id, v, kAppId); }
  BasicProperties& set_cluster_id(std::string_view v) noexcept {
    return set(cluster_id, v, kClusterId);
  }

 private:
  // A setter: the value, and its bit in the property flags.
  template <class T>
  BasicProperties& set(T& field, const T& v, uint16_t flag) noexcept {
    field = v;
    flags |= flag;
    return *this;
  }

  // Present fields equal (absent ones are ignored).
  friend bool operator==(const BasicProperties& a, const BasicProperties& b) noexcept;
};

// A content header frame's payload.
struct ContentHeader {
  uint16_t class_id = 60;
  uint16_t weight = 0;
  uint64_t body_size = 0;
  BasicProperties properties;
};

enum class HeaderStatus : uint8_t {
  ok,
  truncated,       // 502
  trailing_bytes,  // 502
  bad_flags,       // a continuation or reserved flag bit set (502)
  bad_table,       // the headers table is malformed (502)
  bad_weight,      // weight is not zero (502)
};

struct HeaderResult {
  HeaderStatus status = HeaderStatus::ok;
  TableCheck table;
  uint16_t flags = 0;
  bool ok() const noexcept { return status == HeaderStatus::ok; }
  std::string describe() const;
};

// Decodes a header frame's payload; views point into `payload`. The class id
// is reported, not checked (the frame layer compares it with the method's).
HeaderResult decode_content_header(std::span<const uint8_t> payload, ContentHeader& out) noexcept;
// Appends a header frame's payload for class basic. False when a property
// cannot be encoded.
bool encode_content_header(uint64_t body_size, const BasicProperties& p, std::vector<uint8_t>& out);

}  // namespace ember::amqp
