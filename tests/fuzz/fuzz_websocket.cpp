// libFuzzer target: websocket::Parser (server role) fed the same stream
// whole and cut at random boundaries, with and without a pool and pauses.
// Besides crashes it checks that the cut never changes the events or the
// close code, that text and close reasons handed out are valid UTF-8, and
// that every error code is one an endpoint may send.
//
// The server role unmasks in place, so each run feeds its own copy of the
// input (never libFuzzer's read-only buffer).
//
// Input: byte 0 picks the limits, pool and pausing, byte 1 seeds the chunk
// sizes, the rest is the stream.
// libfuzzer-options: -max_len=8192 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocols/websocket/frame.hpp"

using namespace ember;
using namespace ember::websocket;

namespace {

struct Recorder : ParserHandler {
  std::vector<std::string> events;
  Parser* parser = nullptr;
  bool pause = false;

  void event(char kind, std::string_view body) {
    std::string e(1, kind);
    e.append(body);
    events.push_back(std::move(e));
    if (pause) parser->pause();
  }
  void on_message(Opcode opcode, const Bytes& payload) override {
    if (opcode == Opcode::text && !valid_utf8(payload.span())) std::abort();
    if (opcode != Opcode::text && opcode != Opcode::binary) std::abort();
    event(opcode == Opcode::text ? 't' : 'b', payload.view());
  }
  void on_ping(const Bytes& payload) override {
    if (payload.size() > 125) std::abort();
    event('i', payload.view());
  }
  void on_pong(const Bytes& payload) override {
    if (payload.size() > 125) std::abort();
    event('o', payload.view());
  }
  void on_close(uint16_t code, std::string_view reason) override {
    if (code != close_code::no_status && !valid_close_code(code)) std::abort();
    if (!valid_utf8(reason)) std::abort();
    event('c', std::to_string(code) + ":" + std::string(reason));
  }
};

struct Run {
  std::vector<std::string> events;
  uint16_t code = 0;
  bool closed = false;
};

Run run(const uint8_t* data, size_t size, const std::vector<size_t>& cuts, Limits limits,
        BufferPool* pool, bool pause) {
  // A private, writable copy: the parser unmasks in place.
  Bytes stream = Bytes::copy(std::span(data, size));
  Recorder rec;
  Parser parser(Role::server, rec, limits, pool);
  rec.parser = &parser;
  rec.pause = pause;
  Run r;
  size_t off = 0;
  for (size_t i = 0; i <= cuts.size() && r.code == 0; ++i) {
    size_t end = i < cuts.size() ? cuts[i] : size;
    Bytes chunk = stream.slice(off, end - off);
    off = end;
    for (;;) {
      Parser::Result res = parser.feed(chunk);
      if (res.consumed > chunk.size()) std::abort();
      if (res.status == Parser::Status::paused) {
        if (!pause) std::abort();
        chunk = chunk.slice(res.consumed, chunk.size() - res.consumed);
        continue;
      }
      if (res.status == Parser::Status::error) {
        if (!valid_close_code(res.code) || res.reason.empty()) std::abort();
        r.code = res.code;
      } else if (res.status != Parser::Status::closed && res.consumed != chunk.size()) {
        std::abort();
      }
      break;
    }
  }
  r.events = std::move(rec.events);
  r.closed = parser.closed();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const size_t kFrame[] = {0, 1, 125, 126, 1000, 65536, 1u << 20, 1u << 20};
  static const size_t kMessage[] = {0, 200, 5000, 16u << 20};
  Limits limits;
  limits.max_frame = kFrame[data[0] & 7];
  limits.max_message = kMessage[(data[0] >> 3) & 3];
  static BufferPool pool;
  BufferPool* p = (data[0] & 0x20) ? &pool : nullptr;
  bool pause = (data[0] & 0x40) != 0;
  uint32_t state = data[1] * 2654435761u + 1;
  const uint8_t* stream = data + 2;
  size_t n = size - 2;

  Run whole = run(stream, n, {}, limits, nullptr, false);

  std::vector<size_t> cuts;
  for (size_t at = 0;;) {
    state = state * 1103515245u + 12345u;
    size_t step = 1 + (state >> 16) % ((state & 1) ? 16 : 300);
    at += step;
    if (at >= n) break;
    cuts.push_back(at);
  }
  Run split = run(stream, n, cuts, limits, p, pause);
  if (whole.events != split.events || whole.code != split.code || whole.closed != split.closed)
    std::abort();
  return 0;
}
