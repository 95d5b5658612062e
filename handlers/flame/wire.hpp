// flame.v1 messages on the task hot path, encoded and decoded without copying
// payloads, for both sides of the instance protocol. Messages are parsed with
// libprotobuf's CodedInputStream into views of the receive buffer, and
// written as a few header bytes followed by the payload, which is sent by
// reference. The cold-path messages (SessionContext, Result) use the
// generated libprotobuf classes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

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

// The executor's side. TaskContext: ids in the head and the input by
// reference, or (ids too long for the head) one serialized copy.
EncodedMessage encode_task_context(std::string_view task_id, std::string_view session_id,
                                   const std::optional<Bytes>& input);
// flame.v1.TaskResult as the executor reads it; `output` shares `message`.
struct TaskOutcome {
  int32_t return_code = 0;
  std::optional<Bytes> output;
  std::optional<std::string> message;
};
Expected<TaskOutcome, std::string> decode_task_result(const Bytes& message);

// Why a cold-path message was refused: `malformed` bytes are not the message
// at all (a gRPC-level error, INTERNAL); an `invalid` message parsed but
// breaks a rule of the Flame protocol (a Flame failure the service reports).
struct DecodeError {
  enum class Kind : uint8_t { malformed, invalid };
  Kind kind;
  std::string message;
};

Expected<SessionContext, DecodeError> decode_session_context(const Bytes& message);
// flame.v1.Result: 0 and no message, or -1 and the message.
Bytes encode_result(const Status& status);
// EmptyRequest: any well-formed message.
bool is_well_formed(const Bytes& message);

}  // namespace ember::flame::wire
