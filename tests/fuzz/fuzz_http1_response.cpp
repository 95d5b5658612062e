// libFuzzer target: http1::ResponseParser fed the same stream whole and split
// at pseudo-random boundaries derived from the input, then finish(). Besides
// crashes it checks that the split never changes the events, the result or
// where an upgrade starts, and that body pieces are slices of the input.
//
// Input: byte 0 picks the limits and when the handler pauses, byte 1 seeds
// the chunk sizes, byte 2's bits give the request methods (HEAD, CONNECT,
// GET) of the responses in turn, the rest is the stream.
// libfuzzer-options: -max_len=65536 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocols/http1/response_parser.hpp"
#include "protocols/http1/writer.hpp"
#include "tests/fuzz/http1_fuzz_input.hpp"

using namespace ember;
using namespace ember::http1;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct Run {
  std::vector<std::string> events;
  int status = 0;
  std::string reason;
  std::vector<size_t> pauses;
  size_t upgraded_at = SIZE_MAX;
  bool finished = false;
};

struct Recorder final : ResponseHandler {
  Run* run = nullptr;
  ResponseParser* parser = nullptr;
  const Bytes* feeding = nullptr;
  uint8_t methods = 0;
  uint32_t responses = 0;
  uint32_t pause_every = 0;
  uint32_t count = 0;           // events other than body pieces
  uint32_t body_count = 0;      // body pieces: their number depends on the split
  bool recorded_pause = false;  // a non-body event asked to pause
  bool in_body = false;
  uint64_t body_bytes = 0;
  uint64_t max_body = 0;

  Method method_for(uint32_t i) const {
    switch ((methods >> (2 * (i % 4))) & 3) {
      case 1:
        return Method::head;
      case 2:
        return Method::connect;
      default:
        return Method::get;
    }
  }
  Action next() {
    ++count;
    if (!pause_every || count % pause_every != 0) return Action::proceed;
    recorded_pause = true;
    return Action::pause;
  }
  // Pausing on body pieces exercises the parser, but where those pauses
  // fall depends on the split, so they are not recorded.
  Action next_body() {
    ++body_count;
    return pause_every && body_count % pause_every == 0 ? Action::pause : Action::proceed;
  }
  std::string describe(const char* kind, const ResponseHead& h) {
    check(h.status >= 100 && h.status <= 599);
    check(!(h.chunked && h.until_close));
    check(!h.until_close || !h.keep_alive);
    for (const Field& f : h.fields)
      check(valid_field_name(f.name) && valid_field_value(f.value));
    std::string e = std::string(kind) + " " + std::to_string(h.status) + " " +
                    std::string(h.reason) + " " + std::string(h.upgrade) +
                    (h.version == Version::http1_0 ? " 1.0" : " 1.1") +
                    (h.keep_alive ? " ka" : "") + (h.chunked ? " chunked" : "") +
                    (h.until_close ? " close" : "") + (h.has_body ? " body" : "") +
                    (h.content_length ? " cl=" + std::to_string(*h.content_length) : "");
    for (const Field& f : h.fields)
      e += "|" + std::string(f.name) + ":" + std::string(f.value);
    return e;
  }
  Action on_interim(const ResponseHead& h) override {
    in_body = false;
    check(h.status < 200 && h.status != 101);
    run->events.push_back(describe("I", h));
    return next();
  }
  Action on_head(const ResponseHead& h) override {
    in_body = false;
    body_bytes = 0;
    run->events.push_back(describe("H", h));
    return next();
  }
  Action on_body(const Bytes& b) override {
    check(!b.empty());
    check(b.data() >= feeding->data() && b.data() + b.size() <= feeding->data() + feeding->size());
    body_bytes += b.size();
    check(body_bytes <= max_body);
    if (!in_body) run->events.push_back("B ");
    in_body = true;
    run->events.back() += b.view();
    return next_body();
  }
  Action on_trailers(std::span<const Field> t) override {
    in_body = false;
    std::string e = "T";
    for (const Field& f : t)
      e += "|" + std::string(f.name) + ":" + std::string(f.value);
    run->events.push_back(std::move(e));
    return next();
  }
  Action on_complete() override {
    in_body = false;
    run->events.push_back("C");
    parser->set_request_method(method_for(++responses));
    return next();
  }
};

Run run(const std::vector<Bytes>& chunks, const Limits& limits, uint8_t methods,
        uint32_t pause_every) {
  Run r;
  Recorder rec;
  rec.run = &r;
  rec.methods = methods;
  rec.pause_every = pause_every;
  rec.max_body = limits.max_body;
  ResponseParser parser(limits, rec);
  rec.parser = &parser;
  parser.set_request_method(rec.method_for(0));
  size_t offset = 0;
  for (const Bytes& chunk : chunks) {
    Bytes rest = chunk;
    for (;;) {
      rec.feeding = &rest;
      FeedResult f = parser.feed(rest);
      check(f.consumed <= rest.size());
      offset += f.consumed;
      if (f.status == ParseStatus::need_more) {
        check(f.consumed == rest.size());
        break;
      }
      if (f.status == ParseStatus::error) {
        r.status = parser.error().status;
        r.reason = parser.error().reason;
        check(r.status == 502);
        return r;
      }
      if (f.status == ParseStatus::upgraded) {
        r.upgraded_at = offset;
        check(parser.feed(rest).consumed == 0);
        r.finished = parser.finish();
        return r;
      }
      check(f.status == ParseStatus::paused);
      if (rec.recorded_pause) r.pauses.push_back(offset);
      rec.recorded_pause = false;
      parser.resume();
      rest = rest.slice(f.consumed, rest.size() - f.consumed);
      if (rest.empty()) break;
    }
  }
  Bytes none;
  rec.feeding = &none;
  r.finished = parser.finish();
  if (!r.finished) {
    r.status = parser.error().status;
    r.reason = parser.error().reason;
  }
  return r;
}

bool same(const Run& a, const Run& b) {
  return a.events == b.events && a.status == b.status && a.reason == b.reason &&
         a.pauses == b.pauses && a.upgraded_at == b.upgraded_at && a.finished == b.finished;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const Limits& limits = fuzz::limits(data[0]);
  uint32_t pause_every = fuzz::pause_every(data[0]);
  uint8_t methods = data[2];
  Bytes stream = Bytes::copy(std::span(data + 3, size - 3));
  std::vector<Bytes> chunks = fuzz::chunks(stream, data[1]);
  Run whole = run({stream}, limits, methods, pause_every);
  Run split = run(chunks, limits, methods, pause_every);
  if (!same(whole, split)) std::abort();
  return 0;
}
