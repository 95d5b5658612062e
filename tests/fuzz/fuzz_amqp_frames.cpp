// libfuzzer-options: -max_len=16384 -timeout=10 -rss_limit_mb=2048
//
// libFuzzer target: the AMQP frame reader, method/header/table decoders and
// the client state machine, fed the same stream whole and in chunks cut at
// input-derived boundaries. Besides crashes it checks that chunking never
// changes the events or the error, that every decoded method re-encodes to
// bytes that decode again, and that everything the client sends parses as
// valid frames.
//
// Input: byte 0 picks the mode (bits 0-1: reader, reader, client, raw
// decoders), frame_max (bits 2-3), pool use (bit 4) and max_body_size
// (bits 5-6); byte 1 seeds the chunk sizes; the rest is the broker's stream.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "protocols/amqp/client.hpp"
#include "protocols/amqp/frames.hpp"

using namespace ember;
using namespace ember::amqp;

namespace {

std::string encoded(const Method& m) {
  std::vector<uint8_t> out;
  if (!encode_method(m, out)) std::abort();  // decoded values always fit
  return std::string(out.begin(), out.end());
}

// Decoded methods must survive encode -> decode -> encode unchanged.
void check_round_trip(const Method& m) {
  std::string a = encoded(m);
  Method back;
  DecodeResult r =
      decode_method(std::span(reinterpret_cast<const uint8_t*>(a.data()), a.size()), back);
  if (!r.ok() || back.index() != m.index() || encoded(back) != a) std::abort();
}

std::string header_bytes(uint64_t size, const BasicProperties& p) {
  std::vector<uint8_t> out;
  if (!encode_content_header(size, p, out)) std::abort();
  return std::string(out.begin(), out.end());
}

struct Log final : FrameHandler {
  void on_method(uint16_t channel, const Method& m) override {
    check_round_trip(m);
    events.push_back("M" + std::to_string(channel) + encoded(m));
  }
  void on_content(const Content& c) override {
    check_round_trip(c.method);
    if (c.dropped ? !c.body.empty() : c.body.size() != c.body_size) std::abort();
    // Walk the headers table (its iterators assume a checked table).
    (void)to_string(c.properties.headers);
    events.push_back("C" + std::to_string(c.channel) + encoded(c.method) +
                     header_bytes(c.body_size, c.properties) + (c.dropped ? "!" : "") +
                     c.body.to_string());
  }
  void on_heartbeat() override { events.push_back("H"); }
  std::vector<std::string> events;
};

struct Outcome {
  std::vector<std::string> events;
  uint16_t code = 0;
  std::string text;
  bool operator==(const Outcome&) const = default;
};

Outcome read_frames(const std::vector<Bytes>& chunks, const FrameReaderOptions& o) {
  FrameReader reader(o);
  Log log;
  Outcome out;
  for (const Bytes& c : chunks) {
    Status st = reader.feed(c, log);
    if (!st && out.code == 0) {
      out.code = st.error().code;
      out.text = st.error().text;
      if (out.code == 0) std::abort();  // framing errors always carry a wire code
    }
  }
  out.events = std::move(log.events);
  return out;
}

// ---- client mode ----

struct Events final : ClientHandler {
  void on_ready() override {
    events.push_back("ready");
    (void)client->open_channel(1);
    (void)client->confirm_select(1);
    (void)client->qos(1, 16);
    (void)client->consume(1, BasicConsume{.queue = "in", .consumer_tag = "c"});
  }
  void on_channel_open(uint16_t ch) override { events.push_back("open" + std::to_string(ch)); }
  void on_reply(uint16_t ch, const Method& m) override {
    events.push_back("reply" + std::to_string(ch) + encoded(m));
  }
  void on_delivery(const Delivery& d) override {
    events.push_back("delivery" + std::to_string(d.delivery_tag) + d.body.to_string());
    (void)client->publish(d.channel, "", d.routing_key, d.body, d.properties);
    if (d.delivery_tag % 3 == 0) {
      (void)client->nack(d.channel, d.delivery_tag, false, false);
    } else {
      (void)client->ack(d.channel, d.delivery_tag);
    }
    if (d.delivery_tag % 7 == 0) (void)client->close_channel(d.channel);
    if (d.delivery_tag % 11 == 0) (void)client->open_channel();
  }
  void on_confirm(uint16_t ch, uint64_t tag, bool multiple, bool ack) override {
    events.push_back("confirm" + std::to_string(ch) + ":" + std::to_string(tag) +
                     (multiple ? "m" : "") + (ack ? "a" : "n"));
  }
  void on_return(const Returned& r) override { events.push_back("return" + r.body.to_string()); }
  void on_consumer_cancelled(uint16_t, std::string_view tag) override {
    events.push_back("cancel" + std::string(tag));
  }
  void on_blocked(std::string_view r) override { events.push_back("blocked" + std::string(r)); }
  void on_unblocked() override { events.push_back("unblocked"); }
  void on_channel_closed(uint16_t, const AmqpError& e) override {
    events.push_back("chclosed" + e.describe());
    if (e.code == 406) (void)client->open_channel();
  }
  void on_connection_closed(const AmqpError& e) override {
    events.push_back("closed" + e.describe());
  }
  Client* client = nullptr;
  std::vector<std::string> events;
};

// Everything the client sends must parse: the protocol header, then frames
// of methods we can decode.
void check_client_output(const std::string& sent, bool first, uint32_t frame_max) {
  std::string_view rest = sent;
  if (first) {
    if (rest.substr(0, 8) != std::string_view("AMQP\0\0\x09\x01", 8)) std::abort();
    rest.remove_prefix(8);
  }
  FrameReaderOptions o;
  o.frame_max = frame_max;
  o.channel_max = 65535;
  struct : FrameHandler {
    void on_method(uint16_t, const Method& m) override { check_round_trip(m); }
    void on_content(const Content&) override {}
  } sink;
  FrameReader server(o);
  Status st = server.feed(Bytes::copy(rest), sink);
  if (!st || !server.idle()) std::abort();
}

std::string frame(uint8_t type, uint16_t channel, const std::string& payload) {
  std::string f;
  f += static_cast<char>(type);
  f += static_cast<char>(channel >> 8);
  f += static_cast<char>(channel);
  auto n = static_cast<uint32_t>(payload.size());
  for (int s = 24; s >= 0; s -= 8)
    f += static_cast<char>(n >> s);
  return f + payload + '\xCE';
}

std::vector<std::string> run_client(const std::vector<Bytes>& chunks, uint32_t frame_max,
                                    const uint8_t* clock, size_t clock_len) {
  Events ev;
  ClientOptions o;
  o.frame_max = frame_max;
  o.heartbeat = 1;
  o.max_body_size = 4096;
  Client client(ev, o);
  ev.client = &client;
  IoChain out;
  bool first = true;
  auto flush = [&] {
    out.clear();
    (void)client.produce(out);
    std::string sent;
    for (size_t i = 0; i < out.iov_count(); ++i)
      sent.append(static_cast<const char*>(out.iov()[i].iov_base), out.iov()[i].iov_len);
    if (!sent.empty()) check_client_output(sent, first, client.tuning().frame_max);
    first = first && sent.empty();
  };
  flush();
  // A valid handshake first, so the fuzzer starts in the open state.
  std::string handshake = frame(1, 0, encoded(ConnectionStart{0, 9, {}, "PLAIN", "en_US"})) +
                          frame(1, 0, encoded(ConnectionTune{2047, frame_max, 1})) +
                          frame(1, 0, encoded(ConnectionOpenOk{}));
  (void)client.feed(Bytes::copy(handshake));
  flush();
  uint64_t now = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    (void)client.feed(chunks[i]);
    flush();
    // The timer advances by input-derived steps (heartbeat 1 s).
    now += clock_len ? clock[i % clock_len] * 8 : 0;
    (void)client.on_timer(now);
    flush();
  }
  return ev.events;
}

std::vector<Bytes> cut(const Bytes& stream, uint8_t seed_byte) {
  uint32_t seed = seed_byte * 2654435761u + 1;
  std::vector<Bytes> chunks;
  size_t spread = size_t{1} << (seed_byte % 10);
  for (size_t at = 0; at < stream.size();) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    size_t n = std::min<size_t>(seed % (spread + 1), stream.size() - at);
    chunks.push_back(stream.slice(at, n));
    at += n;
  }
  return chunks;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const uint32_t kFrameMax[] = {0, 64, 4096, 131072};
  static const uint64_t kMaxBody[] = {16, 1000, 65536, 1u << 20};
  static BufferPool pool;
  const uint8_t mode = data[0] & 3;
  Bytes stream = Bytes::copy(std::span(data + 2, size - 2));
  std::vector<Bytes> chunks = cut(stream, data[1]);

  if (mode == 3) {
    // The decoders alone, on the raw bytes.
    std::span<const uint8_t> in(data + 2, size - 2);
    Method m;
    if (decode_method(in, m).ok()) check_round_trip(m);
    ContentHeader h;
    if (decode_content_header(in, h).ok() && h.class_id == 60) {
      (void)to_string(h.properties.headers);
      if (header_bytes(h.body_size, h.properties) != std::string(in.begin(), in.end()))
        std::abort();
    }
    TableView t;
    if (TableView::parse(in, t).ok()) {
      (void)to_string(t);
      // Re-encoding is stable (booleans other than 0/1 become 1 once).
      TableWriter w;
      for (const auto& f : t)
        w.add(f.name, f.value);
      TableView again;
      if (!w.ok() || !TableView::parse(w.view().bytes(), again).ok()) std::abort();
      TableWriter w2;
      for (const auto& f : again)
        w2.add(f.name, f.value);
      if (!(w2.view() == w.view())) std::abort();
    }
    Frame f;
    (void)parse_frame(in, kFrameMax[(data[0] >> 2) & 3], f);
    return 0;
  }

  if (mode == 2) {
    uint32_t frame_max = kFrameMax[(data[0] >> 2) & 3];
    if (frame_max != 0 && frame_max < kFrameMinSize) frame_max = kFrameMinSize;
    // Without a clock the events cannot depend on the chunking.
    if (run_client(chunks, frame_max, nullptr, 0) != run_client({stream}, frame_max, nullptr, 0))
      std::abort();
    // With one (heartbeats, the close timeout), for coverage.
    (void)run_client(chunks, frame_max, data + 2, size - 2);
    return 0;
  }

  FrameReaderOptions o;
  o.frame_max = kFrameMax[(data[0] >> 2) & 3];
  o.pool = (data[0] & 16) ? &pool : nullptr;
  o.max_body_size = kMaxBody[(data[0] >> 5) & 3];
  o.channel_max = 65535;
  Outcome split = read_frames(chunks, o);
  Outcome whole = read_frames({stream}, o);
  if (!(split == whole)) std::abort();
  return 0;
}
