// libFuzzer target: http1::RequestParser fed the same stream whole and split
// at pseudo-random boundaries derived from the input. Besides crashes it
// checks that the split never changes the events or the result, that body
// pieces are slices of the chunk being fed, and the feed() contract.
//
// Input: byte 0 picks the limits and when the handler pauses, byte 1 seeds
// the chunk sizes, the rest is the stream.
// libfuzzer-options: -max_len=65536 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocols/http1/request_parser.hpp"
#include "protocols/http1/writer.hpp"
#include "tests/fuzz/http1_fuzz_input.hpp"

using namespace ember;
using namespace ember::http1;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct Run {
  std::vector<std::string> events;  // consecutive body pieces merged
  int status = 0;
  std::string reason;
  std::vector<size_t> pauses;  // stream offsets where feed() stopped paused
  bool idle = false;
};

struct Recorder final : RequestHandler {
  Run* run = nullptr;
  const Bytes* feeding = nullptr;
  uint32_t pause_every = 0;     // pause on every Nth event (0: never)
  uint32_t count = 0;           // events other than body pieces
  uint32_t body_count = 0;      // body pieces: their number depends on the split
  bool recorded_pause = false;  // a non-body event asked to pause
  bool in_body = false;
  uint64_t body_bytes = 0;
  uint64_t max_body = 0;

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
  Action on_head(const RequestHead& h) override {
    in_body = false;
    body_bytes = 0;
    check(!h.method.empty());
    check(!(h.chunked && h.content_length));
    check(!h.chunked || h.version == Version::http1_1);
    check(!h.content_length || *h.content_length <= max_body);
    check(h.version == Version::http1_0 || h.field("Host").has_value());
    for (const Field& f : h.fields)
      check(valid_field_name(f.name) && valid_field_value(f.value));
    std::string e = "H " + std::string(h.method) + " " + std::string(h.target) + " " +
                    std::string(h.path) + " " + std::string(h.query) + " " + std::string(h.host) +
                    " " + std::string(h.upgrade) + " " +
                    (h.version == Version::http1_0 ? "1.0" : "1.1") + (h.keep_alive ? " ka" : "") +
                    (h.expect_continue ? " ec" : "") + (h.chunked ? " chunked" : "") +
                    (h.content_length ? " cl=" + std::to_string(*h.content_length) : "");
    for (const Field& f : h.fields)
      e += "|" + std::string(f.name) + ":" + std::string(f.value);
    run->events.push_back(std::move(e));
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
    check(!t.empty());
    std::string e = "T";
    for (const Field& f : t)
      e += "|" + std::string(f.name) + ":" + std::string(f.value);
    run->events.push_back(std::move(e));
    return next();
  }
  Action on_complete() override {
    in_body = false;
    run->events.push_back("C");
    return next();
  }
};

Run run(const std::vector<Bytes>& chunks, const Limits& limits, uint32_t pause_every) {
  Run r;
  Recorder rec;
  rec.run = &r;
  rec.pause_every = pause_every;
  rec.max_body = limits.max_body;
  RequestParser parser(limits, rec);
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
        check(r.status == 400 || r.status == 413 || r.status == 414 || r.status == 431 ||
              r.status == 501 || r.status == 505);
        check(parser.feed(rest).status == ParseStatus::error);  // sticky
        r.idle = parser.idle();
        return r;
      }
      check(f.status == ParseStatus::paused && parser.paused());
      check(parser.feed(rest.slice(f.consumed, rest.size() - f.consumed)).consumed == 0);
      if (rec.recorded_pause) r.pauses.push_back(offset);
      rec.recorded_pause = false;
      parser.resume();
      rest = rest.slice(f.consumed, rest.size() - f.consumed);
      if (rest.empty()) break;
    }
  }
  r.idle = parser.idle();
  return r;
}

bool same(const Run& a, const Run& b) {
  return a.events == b.events && a.status == b.status && a.reason == b.reason &&
         a.pauses == b.pauses && a.idle == b.idle;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const Limits& limits = fuzz::limits(data[0]);
  uint32_t pause_every = fuzz::pause_every(data[0]);
  Bytes stream = Bytes::copy(std::span(data + 2, size - 2));
  std::vector<Bytes> chunks = fuzz::chunks(stream, data[1]);
  Run whole = run({stream}, limits, pause_every);
  Run split = run(chunks, limits, pause_every);
  if (!same(whole, split)) std::abort();
  return 0;
}
