// flame.v1 messages on the task hot path, encoded and decoded without copying
// payloads, for both sides of the instance protocol and both wire editions
// (v0.6.0's plain replies, Flame main's wrapped ones). Messages are parsed with
// libprotobuf's CodedInputStream into views of the receive buffer, and
// written as a few header bytes followed by the payload, which is sent by
// reference. The cold-path messages (SessionContext, Result) use the
// generated libprotobuf classes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/expected.hpp"
#include "ember/flame.hpp"

namespace ember::flame::wire {

// Decodes a TaskContext whose views share `message`. Errors name the problem.
Expected<TaskContext, std::string> decode_task_context(const Bytes& message);

// A message split for zero-copy sending: `head` bytes, then `body`.
struct EncodedMessage {
  static constexpr size_t kMaxHead = 59;  // what fits before a gRPC body (http2::Body)
  uint8_t head[kMaxHead];
  size_t head_len = 0;
  Bytes body;
  size_t size() const noexcept { return head_len + body.size(); }
  std::span<const uint8_t> head_span() const noexcept { return {head, head_len}; }
};

// TaskResult: return_code 0 with output present (possibly empty) or absent.
EncodedMessage encode_task_success(std::optional<Bytes> output);
// TaskResult: return_code -1 with message.
EncodedMessage encode_task_failure(std::string_view message);
// Flame main's OnTaskInvokeResponse around an encoded TaskResult. Without
// attributes the output stays by reference; with them the reply is one copy.
EncodedMessage wrap_task_result(EncodedMessage task_result,
                                std::span<const std::string> attributes);
// Bytes an ExecutorAttributes field adds to a wrapped reply.
size_t attributes_size(std::span<const std::string> attributes);

// The executor's side. TaskContext: ids in the head and the input by
// reference, or (ids too long for the head) one serialized copy.
EncodedMessage encode_task_context(std::string_view task_id, std::string_view session_id,
                                   const std::optional<Bytes>& input);
// flame.v1.TaskResult as the executor reads it; `output` shares `message`.
// Either edition: a wrapped reply's attributes land in `attributes`.
struct TaskOutcome {
  int32_t return_code = 0;
  std::optional<Bytes> output;
  std::optional<std::string> message;
  std::vector<std::string> attributes;
};
Expected<TaskOutcome, std::string> decode_task_result(const Bytes& message);
// flame.v1.Result, or Flame main's OnSessionEnterResponse around one.
struct CallOutcome {
  int32_t return_code = 0;
  std::optional<std::string> message;
  std::vector<std::string> attributes;
};
Expected<CallOutcome, std::string> decode_result(const Bytes& message);

// Why a cold-path message was refused: `malformed` bytes are not the message
// at all (a gRPC-level error, INTERNAL); an `invalid` message parsed but
// breaks a rule of the Flame protocol (a Flame failure the service reports).
struct DecodeError {
  enum class Kind : uint8_t { malformed, invalid };
  Kind kind;
  std::string message;
};

// Either edition: tokens and workspaces are filled when the executor sent them.
Expected<SessionContext, DecodeError> decode_session_context(const Bytes& message);
// True when the context carries what only Flame main's executor sends.
bool shows_wrapped_wire(const SessionContext& ctx) noexcept;
// flame.v1.Result: 0 and no message, or -1 and the message.
Bytes encode_result(const Status& status);
// Flame main's OnSessionEnterResponse: the Result and any attributes.
Bytes encode_session_enter_reply(const Status& status, std::span<const std::string> attributes);
// EmptyRequest: any well-formed message.
bool is_well_formed(const Bytes& message);

}  // namespace ember::flame::wire
