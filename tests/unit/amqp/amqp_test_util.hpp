// Helpers for the AMQP codec tests: hand-built frames from hex, frame
// builders on top of the codec's encoders, and a FrameHandler that records
// events as comparable strings.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ember/bytes.hpp"
#include "protocols/amqp/frames.hpp"
#include "protocols/amqp/methods.hpp"

namespace ember::amqp::test {

// "01 00 01 'abc' ce": hex octets, and quoted text taken literally. Spaces
// and line breaks separate.
std::string hex_bytes(std::string_view spec);
// Lower-case hex without separators.
std::string to_hex(std::string_view bytes);
std::string to_hex(std::span<const uint8_t> bytes);

// A frame with a hand-given payload.
std::string frame(uint8_t type, uint16_t channel, std::string_view payload);
std::string method_payload(const Method& m);
std::string method_frame(uint16_t channel, const Method& m);
std::string header_payload(uint64_t body_size, const BasicProperties& p = {});
// Method, header and body frames, the body cut into frames of at most
// frame_max - 8 bytes.
std::string content_frames(uint16_t channel, const Method& m, std::string_view body,
                           const BasicProperties& p = {}, uint32_t frame_max = kDefaultFrameMax);
std::string heartbeat_frame();

// Records FrameReader events as strings:
//   "M<channel> <name> <hex of re-encoded method>"
//   "C<channel> <name> <hex of method> <hex of header> body=<body>[ dropped]"
//   "H"
class Recorder final : public FrameHandler {
 public:
  void on_method(uint16_t channel, const Method& m) override;
  void on_content(const Content& c) override;
  void on_heartbeat() override { events.push_back("H"); }

  std::vector<std::string> events;
  std::vector<Bytes> bodies;
};

std::string method_event(uint16_t channel, const Method& m);
std::string content_event(uint16_t channel, const Method& m, std::string_view body,
                          const BasicProperties& p = {});

struct ReplayOutcome {
  std::vector<std::string> events;
  std::vector<Bytes> bodies;
  uint16_t error_code = 0;  // of the first error feed() returned
  std::string error_text;
};

ReplayOutcome replay(const std::vector<Bytes>& chunks, const FrameReaderOptions& options = {});

// Feeds `wire` whole and in every split (ember::test::all_splits) and expects
// the same events and error code each time. Returns the outcome of the
// whole feed.
ReplayOutcome expect_every_split(const std::string& wire, const std::vector<std::string>& events,
                                 uint16_t error_code = 0, const FrameReaderOptions& options = {});

}  // namespace ember::amqp::test
