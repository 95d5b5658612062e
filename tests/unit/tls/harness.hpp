// In-memory plumbing between a client and a server tls::Engine: what one
// produces is fed to the other, whole or in chunks, until both go quiet.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tls.hpp"
#include "ember/buffer_pool.hpp"
#include "ember/io_chain.hpp"

namespace ember::test {

// Concatenation of the chain's iovecs.
inline std::string flat(const IoChain& chain) {
  std::string s;
  s.reserve(chain.size());
  for (size_t i = 0; i < chain.iov_count(); ++i)
    s.append(static_cast<const char*>(chain.iov()[i].iov_base), chain.iov()[i].iov_len);
  return s;
}

struct Collect : tls::Sink {
  std::string data;
  std::vector<size_t> sizes;  // of each on_plaintext() call
  int handshakes = 0;
  bool closed = false;
  bool all_pooled = true;        // every plaintext Bytes had storage behind it
  bool early_plaintext = false;  // plaintext before on_handshake_done()
  void on_handshake_done() override { ++handshakes; }
  void on_plaintext(const Bytes& b) override {
    if (!b.storage()) all_pooled = false;
    if (handshakes == 0) early_plaintext = true;
    data.append(b.view());
    sizes.push_back(b.size());
  }
  void on_close_notify() override { closed = true; }
};

// How each transfer is cut: returns the next chunk size (> 0) for a wire of
// `size` bytes at `offset`. Null = whole.
using Chunker = std::function<size_t(size_t offset, size_t size)>;

inline Chunker chunks_of(size_t n) {
  return [n](size_t, size_t) { return n; };
}

struct Side {
  std::unique_ptr<tls::Engine> engine;
  Collect sink;
  std::string error;                 // first error, empty while fine
  std::vector<std::string> flights;  // everything it produced, one entry per produce()
};

// Feeds `wire` to `to` as cut by `chunker`. Stops at the first error.
inline void deliver(const std::string& wire, Side& to, const Chunker& chunker = nullptr) {
  if (wire.empty() || !to.error.empty()) return;
  Bytes all = Bytes::copy(wire);
  for (size_t off = 0; off < all.size();) {
    size_t n = chunker ? std::min(chunker(off, all.size()), all.size() - off) : all.size();
    auto r = to.engine->feed(all.slice(off, n), to.sink);
    if (!r) {
      to.error = r.error().message;
      return;
    }
    off += n;
  }
}

// Moves one produce() worth from `from` to `to`; true when bytes moved.
inline bool transfer(Side& from, Side& to, const Chunker& chunker = nullptr) {
  IoChain out;
  auto r = from.engine->produce(out);
  if (!r && from.error.empty()) from.error = r.error().message;
  std::string wire = flat(out);
  if (wire.empty()) return false;
  from.flights.push_back(wire);
  deliver(wire, to, chunker);
  return true;
}

struct Pair {
  BufferPool pool;
  Side client, server;

  Pair(tls::ClientContext& cctx, tls::ServerContext& sctx, const std::string& host,
       uint16_t port = 443) {
    client.engine = tls::Engine::client(cctx, host, pool, port);
    server.engine = tls::Engine::server(sctx, pool);
  }

  // Shuttles bytes both ways until nothing moves. True when both sides
  // finished the handshake without error.
  bool handshake(const Chunker& chunker = nullptr) {
    for (int round = 0; round < 50; ++round) {
      bool moved = transfer(client, server, chunker);
      moved |= transfer(server, client, chunker);
      if (!moved) break;
    }
    return client.error.empty() && server.error.empty() && client.engine->handshake_done() &&
           server.engine->handshake_done();
  }

  // Encrypts `plain` on `from`, delivers the records to `to` (cut by
  // `chunker`) and returns the ciphertext.
  std::string send(Side& from, Side& to, const std::string& plain,
                   const Chunker& chunker = nullptr) {
    IoChain in, out;
    in.append(Bytes::copy(plain));
    auto r = from.engine->encrypt(in, out);
    if (!r && from.error.empty()) from.error = r.error().message;
    std::string wire = flat(out);
    deliver(wire, to, chunker);
    return wire;
  }
};

}  // namespace ember::test
