// libFuzzer target: http2::Session (server role) fed arbitrary bytes after a
// valid connection preface, with small limits so that every defence is
// reachable: header count and list size per block, the CONTINUATION bound,
// the rapid reset count, early answers with RST_STREAM NO_ERROR. Errors are
// fine; crashes, leaks, a Body read after its stream closed, and a session
// that takes input after a flood ended it are not.
//
// With nghttp2's HTTP messaging off (bit 6 of byte 0), every request goes
// through http2::RequestCheck as the edge server's does, and a refused one is
// reset with PROTOCOL_ERROR.
//
// Input: byte 0 picks the read size (how the stream is chunked) and, with
// bit 7, an h2c upgrade (stream 1 answered before any input); the rest is
// everything the client sends after "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
// libfuzzer-options: -max_len=16384 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "protocols/http2/request_check.hpp"
#include "protocols/http2/session.hpp"

using namespace ember;
using namespace ember::http2;

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const Header kOk[] = {{":status", "200", true}, {"content-type", "text/plain", true}};
const Header k431[] = {{":status", "431", true}};

struct Server : SessionHandler {
  explicit Server(const Settings& s)
      : session(Role::server, *this, s, slab), checking(!s.http_messaging) {}

  void on_headers_begin(int32_t id) override { ++blocks[id]; }
  void on_header(int32_t id, std::string_view name, std::string_view value) override {
    if (blocks[id] == 0) std::abort();
    if (!checking) {
      if (name.empty()) std::abort();  // nghttp2's HTTP messaging refuses it
      return;
    }
    RequestCheck& c = checks[id];
    refuse(id, blocks[id] == 1 ? c.header(name, value) : c.trailer(name, value));
  }
  void on_headers_end(int32_t id) override {
    if (checking && blocks[id] == 1) refuse(id, checks[id].end_headers());
  }
  void on_data(int32_t id, const Bytes& chunk) override {
    if (checking) refuse(id, checks[id].data(chunk.size()));
    // Early answer on a large upload: the rest is cut with RST_STREAM.
    if ((received[id] += chunk.size()) > 64 && !bodies.count(id) && !refused.count(id))
      answer(id, true);
  }
  void on_remote_end(int32_t id) override {
    if (checking) refuse(id, checks[id].end_stream());
    if (!bodies.count(id) && !refused.count(id)) answer(id, false);
  }
  void refuse(int32_t id, const char* why) {
    if (!why || refused.count(id) || bodies.count(id)) return;
    refused.insert(id);
    session.submit_rst_stream(id, NGHTTP2_PROTOCOL_ERROR);
  }
  void on_stream_close(int32_t id, uint32_t) override {
    auto it = bodies.find(id);
    if (it != bodies.end()) {
      // Poison: a read after this point is a use of freed memory (ASan).
      bodies.erase(it);
    }
    blocks.erase(id);
    received.erase(id);
    checks.erase(id);
    refused.erase(id);
  }
  void on_body_end(int32_t id) override {
    static const Header kTrailers[] = {{"x-done", "1", true}};
    session.submit_trailers(id, kTrailers);
  }
  bool on_header_limit(int32_t id) override {
    // Answered already (trailers over the limit after an early answer): the
    // Body nghttp2 reads must stay; let the session reset the stream.
    if (id % 4 == 1 || bodies.count(id) || refused.count(id)) return false;
    auto& body = bodies[id];
    body = std::make_unique<Body>(std::span<const uint8_t>(), Bytes::copy(std::string_view("431")));
    body->reset_after = true;
    session.submit_response(id, k431, body.get());
    return true;
  }

  void answer(int32_t id, bool early) {
    auto& body = bodies[id];
    body = std::make_unique<Body>(std::span<const uint8_t>(),
                                  Bytes::copy(std::string(static_cast<size_t>(id % 97), 'b')));
    body->reset_after = early;
    body->trailers = !early && id % 3 == 0;
    session.submit_response(id, kOk, body.get());
  }

  SlabAllocator slab;
  std::map<int32_t, int> blocks;
  std::map<int32_t, size_t> received;
  std::map<int32_t, std::unique_ptr<Body>> bodies;
  std::map<int32_t, RequestCheck> checks;
  std::set<int32_t> refused;
  Session session;
  bool checking;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t read_size = size_t{1} << (data[0] % 15);  // 1 B .. 16 KiB
  bool upgrade = data[0] & 0x80;
  std::string wire(kPreface);
  wire.append(reinterpret_cast<const char*>(data + 1), size - 1);
  Bytes input = Bytes::copy(wire);

  Settings settings;
  settings.max_header_count = 8;
  settings.max_header_list_size = 512;
  settings.max_unanswered_resets = 4;
  settings.initial_window_size = 65535;
  settings.max_output_per_flush = 4096;
  settings.http_messaging = !(data[0] & 0x40);
  {
    Server server(settings);
    if (upgrade) {
      static const uint8_t kSettings[] = {0, 3, 0, 0, 0, 100};  // MAX_CONCURRENT_STREAMS 100
      std::string_view payload(reinterpret_cast<const char*>(kSettings), sizeof kSettings);
      if (!server.session.upgrade(payload, false)) std::abort();
      server.answer(1, false);
    }
    IoChain out;
    for (size_t at = 0; at < input.size(); at += read_size) {
      bool calmed = server.session.calmed();
      bool ok = static_cast<bool>(
          server.session.feed(input.slice(at, std::min(read_size, input.size() - at))));
      if (calmed && ok) std::abort();  // a flood ends the session for good
      if (server.session.calmed() && ok) std::abort();
      out.clear();
      if (!server.session.produce(out)) break;
      if (!server.session.alive()) break;
    }
    // Whatever is still queued is drained, as a connection's last flush would.
    for (int i = 0; i < 64 && server.session.wants_write(); ++i) {
      out.clear();
      if (!server.session.produce(out)) break;
    }
  }
  return 0;
}
