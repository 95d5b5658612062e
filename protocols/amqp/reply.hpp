// AMQP reply codes and the error value every layer of the AMQP codec returns.
//
// An AmqpError is what closed (or would close) a channel or the connection:
// the reply code and text from the wire (a broker's channel.close /
// connection.close), or the code this side sends when it finds the broker's
// bytes malformed, or code 0 for failures that have no wire code (a missed
// heartbeat, a lost socket, an argument the encoder cannot represent).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace ember::amqp {

enum class ReplyCode : uint16_t {
  reply_success = 200,
  content_too_large = 311,
  no_route = 312,
  no_consumers = 313,
  connection_forced = 320,
  invalid_path = 402,
  access_refused = 403,
  not_found = 404,
  resource_locked = 405,
  precondition_failed = 406,
  frame_error = 501,
  syntax_error = 502,
  command_invalid = 503,
  channel_error = 504,
  unexpected_frame = 505,
  resource_error = 506,
  not_allowed = 530,
  not_implemented = 540,
  internal_error = 541,
};

// "PRECONDITION_FAILED" (RabbitMQ's spelling); "UNKNOWN" for codes the spec
// does not define.
std::string_view reply_name(uint16_t code) noexcept;
// One sentence from the spec's description of the code; empty when unknown.
std::string_view reply_text(uint16_t code) noexcept;
// Hard errors close the connection; soft errors (3xx, 403-406) a channel.
bool is_hard_error(uint16_t code) noexcept;

// "queue.declare" for (50, 10); empty when the ids name no known method.
std::string_view method_name(uint16_t class_id, uint16_t method_id) noexcept;

struct AmqpError {
  enum class Scope : uint8_t { connection, channel };
  // Who decided: the broker (a close method it sent), this client (a close
  // we sent or are about to send), or nobody on the wire (code 0).
  enum class Origin : uint8_t { broker, client, local };

  uint16_t code = 0;
  std::string text;
  // The method that caused it, when known (0, 0 otherwise).
  uint16_t class_id = 0;
  uint16_t method_id = 0;
  uint16_t channel = 0;
  Scope scope = Scope::connection;
  Origin origin = Origin::local;

  AmqpError() = default;
  AmqpError(uint16_t c, std::string t, Origin o = Origin::client, Scope s = Scope::connection,
            uint16_t ch = 0, uint16_t cls = 0, uint16_t mth = 0)
      : code(c),
        text(std::move(t)),
        class_id(cls),
        method_id(mth),
        channel(ch),
        scope(s),
        origin(o) {}
  AmqpError(ReplyCode c, std::string t, Origin o = Origin::client, Scope s = Scope::connection,
            uint16_t ch = 0, uint16_t cls = 0, uint16_t mth = 0)
      : AmqpError(static_cast<uint16_t>(c), std::move(t), o, s, ch, cls, mth) {}

  ReplyCode reply() const noexcept { return static_cast<ReplyCode>(code); }

  // One line for logs, e.g.
  //   channel 1 closed by broker: 406 PRECONDITION_FAILED - inequivalent arg
  //   'durable' for queue 'x' (queue.declare)
  // The code's name is not repeated when the text already starts with it
  // (RabbitMQ's texts do).
  std::string describe() const;
};

}  // namespace ember::amqp
