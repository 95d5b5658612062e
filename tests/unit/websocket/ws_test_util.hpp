// Helpers for the WebSocket tests: frames built by hand, a recording
// handler, and replay of an input in many chunkings. The server role unmasks
// in place, so every replay feeds a fresh copy of the wire bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "protocols/websocket/frame.hpp"

namespace ember::websocket::test {

constexpr uint8_t kFin = 0x80;
constexpr uint8_t kCont = 0x0, kText = 0x1, kBin = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;
// The masking key of RFC 6455 §5.7's examples.
constexpr uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};

// Length encoding of a header: the minimal one, or a forced form.
enum class LenForm { minimal, l7, l16, l64 };

// A frame header with first byte `b0` and payload length `len`.
std::string header(uint8_t b0, uint64_t len, bool masked, LenForm form = LenForm::minimal);
// A whole frame: masked with kMask when `masked` (what a client sends).
std::string frame(uint8_t b0, std::string_view payload, bool masked = true,
                  LenForm form = LenForm::minimal);
// A close payload: big-endian code followed by the reason.
std::string close_payload(uint16_t code, std::string_view reason = {});

struct Recorder : ParserHandler {
  std::vector<std::string> events;
  std::vector<Bytes> payloads;  // every Bytes handed out, in order
  Parser* parser = nullptr;
  bool pause_each = false;

  void on_message(Opcode opcode, const Bytes& payload) override;
  void on_ping(const Bytes& payload) override;
  void on_pong(const Bytes& payload) override;
  void on_close(uint16_t code, std::string_view reason) override;

 private:
  void record(std::string_view kind, const Bytes& payload);
};

// "text:<payload>" for short payloads, "text[<size>]#<hash>" for long ones.
std::string describe(std::string_view kind, std::string_view payload);

struct Outcome {
  std::vector<std::string> events;
  uint16_t code = 0;  // close code of the error, 0 when none
  Parser::Status last = Parser::Status::complete;
};

// Feeds `chunks` in order (re-feeding after pauses) to a fresh parser.
Outcome run(Role role, const std::vector<Bytes>& chunks, Limits limits = {},
            BufferPool* pool = nullptr, bool pause_each = false);

// Chunk-size plans: for inputs up to `full_limit` bytes every way of
// test_util's all_splits (whole, two pieces at every byte, chunks of every
// size); above it, a selection (every cut in the first and last 20 bytes,
// the middle, and chunk sizes around the header and length boundaries).
std::vector<std::vector<size_t>> plans(size_t n, size_t full_limit = 600);
// A fresh copy of `wire` cut by `plan`.
std::vector<Bytes> cut(std::string_view wire, const std::vector<size_t>& plan);

// Replays `wire` in every plan and expects the same events and error code.
void expect_every_split(Role role, const std::string& wire, const std::vector<std::string>& events,
                        uint16_t code = 0, Limits limits = {});

}  // namespace ember::websocket::test
