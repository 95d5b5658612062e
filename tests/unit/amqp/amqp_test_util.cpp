#include "tests/unit/amqp/amqp_test_util.hpp"

#include <cstdio>

#include "tests/unit/test_util.hpp"

namespace ember::amqp::test {

std::string hex_bytes(std::string_view spec) {
  std::string out;
  size_t i = 0;
  while (i < spec.size()) {
    char c = spec[i];
    if (c == ' ' || c == '\n' || c == '\t') {
      ++i;
    } else if (c == '\'') {
      size_t end = spec.find('\'', i + 1);
      EXPECT_NE(end, std::string_view::npos) << "unterminated quote in hex spec";
      out += spec.substr(i + 1, end - i - 1);
      i = end + 1;
    } else {
      EXPECT_LT(i + 1, spec.size()) << "odd hex digit count";
      out += static_cast<char>(std::stoi(std::string(spec.substr(i, 2)), nullptr, 16));
      i += 2;
    }
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  std::string out;
  char buf[4];
  for (char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(c));
    out += buf;
  }
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  return to_hex(Reader::as_view(bytes));
}

std::string frame(uint8_t type, uint16_t channel, std::string_view payload) {
  std::string f;
  f += static_cast<char>(type);
  f += static_cast<char>(channel >> 8);
  f += static_cast<char>(channel & 0xFF);
  auto n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    f += static_cast<char>((n >> shift) & 0xFF);
  f += payload;
  f += static_cast<char>(0xCE);
  return f;
}

std::string method_payload(const Method& m) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(encode_method(m, out));
  return std::string(out.begin(), out.end());
}

std::string method_frame(uint16_t channel, const Method& m) {
  return frame(1, channel, method_payload(m));
}

std::string header_payload(uint64_t body_size, const BasicProperties& p) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(encode_content_header(body_size, p, out));
  return std::string(out.begin(), out.end());
}

std::string content_frames(uint16_t channel, const Method& m, std::string_view body,
                           const BasicProperties& p, uint32_t frame_max) {
  std::string out = method_frame(channel, m) + frame(2, channel, header_payload(body.size(), p));
  size_t limit = frame_max - kFrameOverhead;
  for (size_t off = 0; off < body.size(); off += limit)
    out += frame(3, channel, body.substr(off, std::min(limit, body.size() - off)));
  return out;
}

std::string heartbeat_frame() {
  return frame(8, 0, "");
}

// Appends rather than `"M" + std::string`: GCC 12 warns falsely (-Wrestrict) on that.
std::string event_head(char kind, uint16_t channel, const Method& m) {
  std::string e(1, kind);
  e += std::to_string(channel);
  e += ' ';
  e += name_of(m);
  e += ' ';
  e += to_hex(method_payload(m));
  return e;
}

std::string method_event(uint16_t channel, const Method& m) {
  return event_head('M', channel, m);
}

std::string content_event(uint16_t channel, const Method& m, std::string_view body,
                          const BasicProperties& p) {
  std::string e = event_head('C', channel, m);
  e += ' ';
  e += to_hex(header_payload(body.size(), p));
  e += " body=";
  e += body;
  return e;
}

void Recorder::on_method(uint16_t channel, const Method& m) {
  events.push_back(method_event(channel, m));
}

void Recorder::on_content(const Content& c) {
  std::string e;
  if (c.dropped) {
    // The header says the declared size, not the empty body we got.
    e = event_head('C', c.channel, c.method);
    e += ' ';
    e += to_hex(header_payload(c.body_size, c.properties));
    e += " dropped";
  } else {
    e = content_event(c.channel, c.method, c.body.view(), c.properties);
  }
  events.push_back(std::move(e));
  bodies.push_back(c.body);
}

ReplayOutcome replay(const std::vector<Bytes>& chunks, const FrameReaderOptions& options) {
  FrameReader reader(options);
  Recorder rec;
  ReplayOutcome out;
  for (const Bytes& c : chunks) {
    Status st = reader.feed(c, rec);
    if (!st && out.error_code == 0) {
      out.error_code = st.error().code;
      out.error_text = st.error().text;
    }
  }
  out.events = std::move(rec.events);
  out.bodies = std::move(rec.bodies);
  return out;
}

ReplayOutcome expect_every_split(const std::string& wire, const std::vector<std::string>& events,
                                 uint16_t error_code, const FrameReaderOptions& options) {
  Bytes input = Bytes::copy(wire);
  ReplayOutcome whole;
  bool first = true;
  for (const ember::test::Split& split : ember::test::all_splits(input)) {
    SCOPED_TRACE(split.name);
    ReplayOutcome o = replay(split.chunks, options);
    EXPECT_EQ(o.events, events);
    EXPECT_EQ(o.error_code, error_code) << o.error_text;
    if (first) whole = std::move(o);
    first = false;
    if (::testing::Test::HasFailure()) break;  // one failing split is enough to read
  }
  return whole;
}

}  // namespace ember::amqp::test
