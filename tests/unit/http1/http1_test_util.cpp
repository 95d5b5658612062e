#include "tests/unit/http1/http1_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/test_util.hpp"

namespace ember::http1::test {

namespace {

bool inside(const Bytes& outer, const void* p, size_t n) {
  auto* q = static_cast<const uint8_t*>(p);
  return q >= outer.data() && q + n <= outer.data() + outer.size();
}

Fields copy_fields(std::span<const Field> fields) {
  Fields out;
  for (const Field& f : fields)
    out.emplace_back(std::string(f.name), std::string(f.value));
  return out;
}

// Shared bookkeeping of both recorders.
struct Common {
  Outcome* out = nullptr;
  const Bytes* feeding = nullptr;  // the chunk feed() is working on
  PauseOn pause = PauseOn::nothing;
  bool last_was_complete = false;

  Action after(bool complete) {
    last_was_complete = complete;
    if (pause == PauseOn::every_event) return Action::pause;
    if (pause == PauseOn::complete && complete) return Action::pause;
    return Action::proceed;
  }
  void note_body(const Bytes& chunk) {
    ++out->body_pieces;
    if (!inside(*feeding, chunk.data(), chunk.size()) || chunk.storage() != feeding->storage())
      ++out->body_outside_input;
  }
  void note_head(std::string_view any_view) {
    if (!any_view.empty() && inside(*feeding, any_view.data(), any_view.size()))
      ++out->heads_in_place;
  }
};

struct RequestRecorder final : RequestHandler, Common {
  Action on_head(const RequestHead& h) override {
    Request r;
    r.method = h.method;
    r.method_id = h.method_id;
    r.target = h.target;
    r.path = h.path;
    r.query = h.query;
    r.version = h.version;
    r.fields = copy_fields(h.fields);
    r.content_length = h.content_length;
    r.chunked = h.chunked;
    r.keep_alive = h.keep_alive;
    r.expect_continue = h.expect_continue;
    r.upgrade = h.upgrade;
    r.host = h.host;
    out->requests.push_back(std::move(r));
    note_head(h.method);
    return after(false);
  }
  Action on_body(const Bytes& chunk) override {
    note_body(chunk);
    out->requests.back().body += chunk.view();
    return after(false);
  }
  Action on_trailers(std::span<const Field> t) override {
    out->requests.back().trailers = copy_fields(t);
    return after(false);
  }
  Action on_complete() override {
    out->requests.back().complete = true;
    return after(true);
  }
};

struct ResponseRecorder final : ResponseHandler, Common {
  ResponseParser* parser = nullptr;
  std::vector<Method> methods;
  size_t next = 0;  // response index
  std::vector<int> interim;

  void fill(Response& r, const ResponseHead& h) {
    r.version = h.version;
    r.status = h.status;
    r.reason = h.reason;
    r.fields = copy_fields(h.fields);
    r.content_length = h.content_length;
    r.chunked = h.chunked;
    r.until_close = h.until_close;
    r.has_body = h.has_body;
    r.keep_alive = h.keep_alive;
    r.upgrade = h.upgrade;
  }
  Action on_interim(const ResponseHead& h) override {
    interim.push_back(h.status);
    note_head(h.reason.empty() ? h.fields.empty() ? std::string_view{} : h.fields[0].name
                               : h.reason);
    return after(false);
  }
  Action on_head(const ResponseHead& h) override {
    Response r;
    fill(r, h);
    r.interim = std::move(interim);
    interim.clear();
    out->responses.push_back(std::move(r));
    note_head(h.reason.empty() ? h.fields.empty() ? std::string_view{} : h.fields[0].name
                               : h.reason);
    return after(false);
  }
  Action on_body(const Bytes& chunk) override {
    note_body(chunk);
    out->responses.back().body += chunk.view();
    return after(false);
  }
  Action on_trailers(std::span<const Field> t) override {
    out->responses.back().trailers = copy_fields(t);
    return after(false);
  }
  Action on_complete() override {
    out->responses.back().complete = true;
    ++next;
    parser->set_request_method(next < methods.size() ? methods[next] : Method::get);
    return after(true);
  }
};

// Feeds every chunk, resuming after each pause. Stops at an error or upgrade.
template <class Parser>
void drive(Parser& parser, Common& rec, const std::vector<Bytes>& chunks, Outcome& out) {
  size_t offset = 0;  // stream offset of `rest`
  for (size_t ci = 0; ci < chunks.size(); ++ci) {
    Bytes rest = chunks[ci];
    for (;;) {
      rec.feeding = &rest;
      rec.last_was_complete = false;
      FeedResult r = parser.feed(rest);
      if (r.consumed > rest.size()) {
        ++out.feed_contract_broken;
        return;
      }
      offset += r.consumed;
      if (r.status == ParseStatus::need_more) {
        if (r.consumed != rest.size()) ++out.feed_contract_broken;
        break;
      }
      if (r.status == ParseStatus::error) {
        out.failed = true;
        out.status = parser.error().status;
        out.reason = parser.error().reason;
        return;
      }
      if (r.status == ParseStatus::upgraded) {
        out.upgraded_at = offset;
        out.rest = rest.view().substr(r.consumed);
        for (size_t cj = ci + 1; cj < chunks.size(); ++cj)
          out.rest += chunks[cj].view();
        return;
      }
      // paused
      if (!parser.paused()) ++out.feed_contract_broken;
      if (rec.last_was_complete) out.complete_pauses.push_back(offset);
      parser.resume();
      rest = rest.slice(r.consumed, rest.size() - r.consumed);
      if (rest.empty()) break;
    }
  }
}

}  // namespace

Outcome run_requests(const std::vector<Bytes>& chunks, const Limits& limits, PauseOn pause) {
  Outcome out;
  RequestRecorder rec;
  rec.out = &out;
  rec.pause = pause;
  RequestParser parser(limits, rec);
  drive(parser, rec, chunks, out);
  out.idle_at_end = parser.idle();
  return out;
}

Outcome run_responses(const std::vector<Bytes>& chunks, const Limits& limits,
                      std::vector<Method> methods, PauseOn pause, bool finish) {
  Outcome out;
  ResponseRecorder rec;
  rec.out = &out;
  rec.pause = pause;
  rec.methods = std::move(methods);
  ResponseParser parser(limits, rec);
  rec.parser = &parser;
  parser.set_request_method(rec.methods.empty() ? Method::get : rec.methods[0]);
  drive(parser, rec, chunks, out);
  if (finish && !out.failed && !out.upgraded_at) {
    Bytes none;
    rec.feeding = &none;
    out.finished_clean = parser.finish();
    if (!out.finished_clean) {
      out.failed = true;
      out.status = parser.error().status;
      out.reason = parser.error().reason;
    }
  }
  out.idle_at_end = parser.idle();
  return out;
}

std::vector<std::vector<Bytes>> splits_of(const Bytes& input) {
  std::vector<std::vector<Bytes>> out;
  const size_t n = input.size();
  if (n <= 600) {
    for (ember::test::Split& s : ember::test::all_splits(input))
      out.push_back(std::move(s.chunks));
    return out;
  }
  out.push_back({input});
  for (size_t at = 1; at < n; ++at)
    out.push_back({input.slice(0, at), input.slice(at, n - at)});
  std::vector<size_t> sizes;
  for (size_t s = 1; s <= 64; ++s)
    sizes.push_back(s);
  for (size_t s : {100, 127, 256, 1000, 4096, 4097})
    if (s < n) sizes.push_back(s);
  for (size_t size : sizes) {
    std::vector<Bytes> c;
    for (size_t off = 0; off < n; off += size)
      c.push_back(input.slice(off, std::min(size, n - off)));
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

template <class Run>
Outcome replay(const std::string& wire, Run run) {
  Bytes input = Bytes::copy(wire);
  Outcome whole = run(std::vector<Bytes>{input});
  EXPECT_EQ(whole.body_outside_input, 0u) << "a body piece was copied";
  EXPECT_EQ(whole.feed_contract_broken, 0u);
  size_t index = 0;
  for (const std::vector<Bytes>& chunks : splits_of(input)) {
    Outcome o = run(chunks);
    bool same = o.same_as(whole);
    EXPECT_TRUE(same) << "split #" << index << " (" << chunks.size() << " chunks, first of "
                      << chunks[0].size() << " bytes) differs: status " << o.status << " '"
                      << o.reason << "' vs " << whole.status << " '" << whole.reason << "', "
                      << o.requests.size() + o.responses.size() << " messages vs "
                      << whole.requests.size() + whole.responses.size();
    EXPECT_EQ(o.body_outside_input, 0u) << "split #" << index << ": a body piece was copied";
    EXPECT_EQ(o.feed_contract_broken, 0u) << "split #" << index;
    if (!same || o.body_outside_input || o.feed_contract_broken) break;  // one report is enough
    ++index;
  }
  return whole;
}

}  // namespace

Outcome replay_requests(const std::string& wire, const Limits& limits, PauseOn pause) {
  return replay(wire, [&](const std::vector<Bytes>& c) { return run_requests(c, limits, pause); });
}

Outcome replay_responses(const std::string& wire, const Limits& limits, std::vector<Method> methods,
                         PauseOn pause, bool finish) {
  return replay(wire, [&](const std::vector<Bytes>& c) {
    return run_responses(c, limits, methods, pause, finish);
  });
}

}  // namespace ember::http1::test
