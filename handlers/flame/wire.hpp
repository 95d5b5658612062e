// flame.v1 messages on the task hot path, encoded and decoded without copying
// payloads. TaskContext is parsed with libprotobuf's CodedInputStream into
// views of the request buffer; TaskResult is written as a few header bytes
// followed by the output, which is sent by reference. The cold-path messages
// (SessionContext, Result) use the generated libprotobuf classes.
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

// A TaskResult split for zero-copy sending: `head` bytes, then `body`.
struct EncodedResult {
  uint8_t head[24];
  size_t head_len = 0;
  Bytes body;
  size_t size() const noexcept { return head_len + body.size(); }
  std::span<const uint8_t> head_span() const noexcept { return {head, head_len}; }
};

// return_code 0 with output present (possibly empty) or absent.
EncodedResult encode_task_success(std::optional<Bytes> output);
// return_code -1 with message.
EncodedResult encode_task_failure(std::string_view message);

Expected<SessionContext, std::string> decode_session_context(const Bytes& message);
// flame.v1.Result: 0 and no message, or -1 and the message.
Bytes encode_result(const Status& status);
// EmptyRequest: any well-formed message.
bool is_well_formed(const Bytes& message);

}  // namespace ember::flame::wire
