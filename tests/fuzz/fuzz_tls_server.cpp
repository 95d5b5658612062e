// libFuzzer target: a tls::Engine server (SNI over three certificates, ALPN
// h2/http/1.1, tickets) fed arbitrary client bytes, once whole and once cut
// at boundaries derived from the input. Errors are fine; crashes, leaks, a
// dirty OpenSSL error queue, or the two runs disagreeing are not.
//
// Input: byte 0 picks how the second run is cut, the rest is everything the
// client sends. Seeds: real ClientHellos (tests/unit/tls/make_corpus.cpp).
// libfuzzer-options: -max_len=16384 -timeout=10 -rss_limit_mb=2048
#include <openssl/err.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/tls.hpp"
#include "tests/unit/tls/pki.hpp"

using namespace ember;

namespace {

struct Setup {
  test::pki::TempDir dir;
  std::shared_ptr<tls::ServerContext> ctx;

  Setup() {
    test::pki::Authority ca(dir, "ca");
    ca.issue(dir, "a", "a.example.com", "DNS:a.example.com");
    ca.issue(dir, "wild", "*.example.com", "DNS:*.example.com");
    ca.issue(dir, "default", "default.test", "DNS:localhost,IP:127.0.0.1");
    tls::ServerConfig config;
    config.certificates = {{dir.file("a.pem"), dir.file("a.key"), {"a.example.com"}},
                           {dir.file("wild.pem"), dir.file("wild.key"), {"*.example.com"}},
                           {dir.file("default.pem"), dir.file("default.key"), {}}};
    config.alpn = {"h2", "http/1.1"};
    auto r = tls::ServerContext::create(config);
    if (!r) std::abort();
    ctx = *r;
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

// Echoes plaintext (unreachable without the client's keys, but cheap to keep
// honest) and counts it.
struct EchoSink : tls::Sink {
  tls::Engine* engine = nullptr;
  IoChain out;
  void on_plaintext(const Bytes& b) override {
    IoChain in;
    in.append(b);
    (void)engine->encrypt(in, out);
  }
};

void check_queue() {
  if (ERR_peek_error() != 0) std::abort();  // the engine must leave it empty
}

// Feeds `wire` in pieces of next(offset) bytes; returns whether it failed.
template <class Next>
bool run(const Bytes& wire, Next next) {
  BufferPool pool;
  auto engine = tls::Engine::server(*setup().ctx, pool);
  if (!engine) std::abort();
  EchoSink sink;
  sink.engine = engine.get();
  bool failed = false;
  for (size_t off = 0; off < wire.size() && !failed;) {
    size_t n = std::min(std::max<size_t>(next(off), 1), wire.size() - off);
    auto r = engine->feed(wire.slice(off, n), sink);
    check_queue();
    if (!r) {
      failed = true;
      if (r.error().message.rfind("TLS", 0) != 0) std::abort();
    }
    IoChain out;
    (void)engine->produce(out);
    check_queue();
    off += n;
  }
  engine->shutdown();
  IoChain out;
  (void)engine->produce(out);
  check_queue();
  if (failed != engine->failed()) std::abort();
  return failed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  Bytes wire = Bytes::copy(std::span<const uint8_t>(data + 1, size - 1));
  bool whole = run(wire, [&](size_t) { return wire.size(); });
  bool split;
  switch (mode % 4) {
    case 0:  // fixed pieces of 1..64 bytes
      split = run(wire, [&](size_t) { return size_t{1} + (mode >> 2); });
      break;
    case 1:  // piece sizes read from the input itself
      split = run(wire, [&](size_t off) { return size_t{1} + (wire.data()[off] ^ mode) % 97; });
      break;
    case 2: {  // two pieces, cut at a point the selector picks
      size_t cut = wire.size() * (mode >> 2) / 64;
      split = run(wire, [&](size_t off) { return off < cut ? cut - off : wire.size(); });
      break;
    }
    default:  // one byte at a time
      split = run(wire, [](size_t) { return size_t{1}; });
      break;
  }
  // Record reassembly makes the cut invisible: both runs end the same way.
  if (whole != split) std::abort();
  return 0;
}
