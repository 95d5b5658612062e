#include "tests/unit/websocket/ws_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace ember::websocket::test {

std::string header(uint8_t b0, uint64_t len, bool masked, LenForm form) {
  if (form == LenForm::minimal)
    form = len < 126 ? LenForm::l7 : len <= 0xFFFF ? LenForm::l16 : LenForm::l64;
  std::string h;
  h.push_back(static_cast<char>(b0));
  uint8_t m = masked ? 0x80 : 0;
  if (form == LenForm::l7) {
    h.push_back(static_cast<char>(m | (len & 0x7F)));
  } else if (form == LenForm::l16) {
    h.push_back(static_cast<char>(m | 126));
    h.push_back(static_cast<char>(len >> 8));
    h.push_back(static_cast<char>(len));
  } else {
    h.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i)
      h.push_back(static_cast<char>(len >> (8 * i)));
  }
  if (masked) h.append(reinterpret_cast<const char*>(kMask), 4);
  return h;
}

std::string frame(uint8_t b0, std::string_view payload, bool masked, LenForm form) {
  std::string f = header(b0, payload.size(), masked, form);
  for (size_t i = 0; i < payload.size(); ++i)
    f.push_back(static_cast<char>(payload[i] ^ (masked ? kMask[i & 3] : 0)));
  return f;
}

std::string close_payload(uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code));
  p.append(reason);
  return p;
}

std::string describe(std::string_view kind, std::string_view payload) {
  if (payload.size() <= 200) return std::string(kind) + ":" + std::string(payload);
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : payload)
    h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return std::string(kind) + "[" + std::to_string(payload.size()) + "]#" + std::to_string(h);
}

void Recorder::record(std::string_view kind, const Bytes& payload) {
  events.push_back(describe(kind, payload.view()));
  payloads.push_back(payload);
  if (pause_each && parser) parser->pause();
}

void Recorder::on_message(Opcode opcode, const Bytes& payload) {
  record(opcode == Opcode::text ? "text" : "binary", payload);
}
void Recorder::on_ping(const Bytes& payload) {
  record("ping", payload);
}
void Recorder::on_pong(const Bytes& payload) {
  record("pong", payload);
}
void Recorder::on_close(uint16_t code, std::string_view reason) {
  events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
}

Outcome run(Role role, const std::vector<Bytes>& chunks, Limits limits, BufferPool* pool,
            bool pause_each) {
  Recorder rec;
  Parser parser(role, rec, limits, pool);
  rec.parser = &parser;
  rec.pause_each = pause_each;
  Outcome out;
  for (const Bytes& chunk : chunks) {
    Bytes rest = chunk;
    for (;;) {
      Parser::Result r = parser.feed(rest);
      out.last = r.status;
      EXPECT_LE(r.consumed, rest.size());
      if (r.status == Parser::Status::paused) {
        EXPECT_TRUE(pause_each);
        rest = rest.slice(r.consumed, rest.size() - r.consumed);
        continue;
      }
      if (r.status == Parser::Status::error) {
        out.code = r.code;
        EXPECT_FALSE(r.reason.empty());
        // Sticky: the same error again, nothing consumed, no events.
        size_t before = rec.events.size();
        Parser::Result again = parser.feed(rest);
        EXPECT_EQ(again.status, Parser::Status::error);
        EXPECT_EQ(again.code, r.code);
        EXPECT_EQ(again.consumed, 0u);
        EXPECT_EQ(rec.events.size(), before);
        out.events = rec.events;
        return out;
      }
      if (r.status == Parser::Status::closed) {
        EXPECT_TRUE(parser.closed());
      } else {
        EXPECT_EQ(r.consumed, rest.size());
      }
      break;
    }
  }
  out.events = rec.events;
  return out;
}

std::vector<std::vector<size_t>> plans(size_t n, size_t full_limit) {
  std::vector<std::vector<size_t>> out;
  auto chunks_of = [&](size_t size) {
    std::vector<size_t> p;
    for (size_t off = 0; off < n; off += size)
      p.push_back(std::min(size, n - off));
    out.push_back(std::move(p));
  };
  out.push_back({n});
  if (n <= full_limit) {
    for (size_t at = 1; at < n; ++at)
      out.push_back({at, n - at});
    for (size_t size = 1; size < n; ++size)
      chunks_of(size);
    return out;
  }
  std::set<size_t> cuts;
  for (size_t at = 1; at <= 20; ++at) {
    cuts.insert(at);
    cuts.insert(n - at);
  }
  cuts.insert(n / 2);
  for (size_t at : cuts)
    out.push_back({at, n - at});
  for (size_t size : {1, 2, 3, 5, 7, 13, 14, 64, 125, 126, 127, 1000, 4096, 65535, 65536})
    if (size < n) chunks_of(size);
  return out;
}

std::vector<Bytes> cut(std::string_view wire, const std::vector<size_t>& plan) {
  Bytes fresh = Bytes::copy(wire);
  std::vector<Bytes> chunks;
  size_t off = 0;
  for (size_t len : plan) {
    chunks.push_back(fresh.slice(off, len));
    off += len;
  }
  return chunks;
}

void expect_every_split(Role role, const std::string& wire, const std::vector<std::string>& events,
                        uint16_t code, Limits limits) {
  for (const auto& plan : plans(wire.size())) {
    Outcome o = run(role, cut(wire, plan), limits);
    std::string name = "plan of " + std::to_string(plan.size()) + " chunks, first " +
                       std::to_string(plan.empty() ? 0 : plan[0]);
    ASSERT_EQ(o.events, events) << name;
    ASSERT_EQ(o.code, code) << name;
    if (code == 0 && !events.empty() && events.back().rfind("close:", 0) != 0) {
      ASSERT_EQ(o.last, Parser::Status::complete) << name;
    }
  }
}

}  // namespace ember::websocket::test
