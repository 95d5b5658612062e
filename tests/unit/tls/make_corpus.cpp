// Writes the seed corpus of fuzz_tls_server: real ClientHellos from client
// engines (and one resumption attempt), each behind the fuzz target's
// split-selector byte. Run from the repository root and commit the result:
//
//   build/tests/unit/tls/ember_tls_corpus tests/fuzz/corpus/fuzz_tls_server
#include <cstdio>
#include <string>

#include "tests/unit/tls/harness.hpp"
#include "tests/unit/tls/pki.hpp"

using namespace ember;
using namespace ember::test;

namespace {

std::string client_hello(tls::ClientContext& ctx, const std::string& host) {
  BufferPool pool;
  auto e = tls::Engine::client(ctx, host, pool);
  IoChain out;
  if (!e || !e->produce(out)) return {};
  return flat(out);
}

std::shared_ptr<tls::ClientContext> context(const std::string& max_version,
                                            std::vector<std::string> alpn) {
  tls::ClientConfig c;
  c.verify_peer = false;
  c.max_version = max_version;
  c.alpn = std::move(alpn);
  auto r = tls::ClientContext::create(c);
  return r ? *r : nullptr;
}

bool write(const std::string& dir, const std::string& name, char selector,
           const std::string& wire) {
  std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || wire.empty()) return false;
  std::fputc(selector, f);
  std::fwrite(wire.data(), 1, wire.size(), f);
  std::fclose(f);
  std::printf("%s: %zu bytes\n", path.c_str(), wire.size() + 1);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  bool ok = true;
  auto h2 = context("", {"h2", "http/1.1"});
  auto tls12 = context("TLSv1.2", {"http/1.1"});
  auto plain = context("", {});
  auto odd = context("", {"spdy/3", "acme-tls/1"});
  ok &= write(dir, "tls13_sni_alpn", 0, client_hello(*h2, "a.example.com"));
  ok &= write(dir, "tls13_sni_alpn_chunked", 5, client_hello(*h2, "www.example.com"));
  ok &= write(dir, "tls12_only", 1, client_hello(*tls12, "b.example.com"));
  ok &= write(dir, "no_sni_no_alpn", 2, client_hello(*plain, "127.0.0.1"));
  ok &= write(dir, "alpn_no_overlap", 3, client_hello(*odd, "a.example.com"));

  // A ClientHello offering a ticket (which the fuzz server cannot decrypt:
  // it takes the fallback path).
  pki::TempDir tmp;
  pki::Authority ca(tmp, "ca");
  ca.issue(tmp, "leaf", "a.example.com", "DNS:a.example.com");
  tls::ServerConfig sc;
  sc.certificates = {{tmp.file("leaf.pem"), tmp.file("leaf.key"), {}}};
  sc.alpn = {"h2", "http/1.1"};
  auto sctx = tls::ServerContext::create(sc);
  if (!sctx) return 1;
  for (auto& [ctx, name] : {std::pair{h2, "tls13_resumption"}, std::pair{tls12, "tls12_ticket"}}) {
    Pair p(*ctx, **sctx, "a.example.com");
    if (!p.handshake()) return 1;
    ok &= write(dir, name, 0, client_hello(*ctx, "a.example.com"));
  }
  return ok ? 0 : 1;
}
