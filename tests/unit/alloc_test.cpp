// Steady-state heap allocations of the gRPC path, counted.
//
// Counted by tests/unit/support/allocation_counter.hpp (per thread, while
// armed; malloc inside Ember's static libraries included).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "protocols/grpc/client.hpp"
#include "protocols/grpc/server.hpp"
#include "tests/unit/support/allocation_counter.hpp"

namespace ember::grpc {
namespace {

using ember::test::count_allocations;

// Allocations inside Ember's static libraries are seen too.
TEST(AllocationCounter, SeesEmberAllocations) {
  EXPECT_EQ(count_allocations([] { std::string s(1000, 'x'); }), 1u);
  EXPECT_EQ(count_allocations([] { (void)MutableBuffer::allocate(10); }), 1u);
  SlabAllocator slab;
  void* p = nullptr;
  EXPECT_EQ(count_allocations([&] { p = slab.allocate(100); }), 1u);  // malloc in libember.a
  EXPECT_EQ(count_allocations([&] {
              slab.deallocate(p);
              p = slab.allocate(100);
            }),
            0u);
  slab.deallocate(p);
}

constexpr std::string_view kEcho = "/bench.Echo/Echo";

struct EchoService : ServerHandler {
  int resolve_method(std::string_view path) override { return path == kEcho ? 0 : -1; }
  void on_call(ServerCall& call) override { session->respond(call, {}, call.request()); }
  void on_call_end(ServerCall&, bool responded) override { ok += responded; }
  ServerSession* session = nullptr;
  uint64_t ok = 0;
};

struct Collector : ClientHandler {
  void on_response(uint64_t, Status status, std::optional<Bytes> message) override {
    if (status.ok() && message && message->size() == expected_size) {
      ++ok;
    } else {
      ++bad;
    }
  }
  size_t expected_size = 0;
  uint64_t ok = 0, bad = 0;
};

// A server and a client wired in memory the way a connection feeds them:
// each produce() lands in one pooled read buffer on the other side. With
// `split_reads`, every delivery is cut in two, so messages are gathered.
struct Harness {
  Harness()
      : server(service, ServerOptions{}, server_slab, &server_pool),
        client(collector, ClientOptions{}, client_slab, &client_pool) {
    service.session = &server;
  }

  Bytes to_read_buffer(BufferPool& pool, const IoChain& out) {
    MutableBuffer m = pool.take(out.size());
    size_t at = 0;
    for (size_t i = 0; i < out.iov_count(); ++i) {
      std::memcpy(m.data() + at, out.iov()[i].iov_base, out.iov()[i].iov_len);
      at += out.iov()[i].iov_len;
    }
    return std::move(m).freeze(at);
  }

  // One call: returns false when something stalls or fails.
  bool call(const Bytes& payload, uint64_t tag) {
    uint64_t before = collector.ok;
    client_allocs += count_allocations([&] { ok_ &= !!client.session_start(payload, tag); });
    for (int round = 0; round < 20 && collector.ok == before; ++round) {
      client_out.clear();
      client_allocs += count_allocations([&] { ok_ &= !!client.produce(client_out); });
      if (!client_out.empty()) deliver_to_server();
      server_out.clear();
      server_allocs += count_allocations([&] { ok_ &= !!server.produce(server_out); });
      if (!server_out.empty()) deliver_to_client();
    }
    // Flush what is left (WINDOW_UPDATEs) so every call starts alike.
    client_out.clear();
    client_allocs += count_allocations([&] { ok_ &= !!client.produce(client_out); });
    if (!client_out.empty()) deliver_to_server();
    server_out.clear();
    return ok_ && collector.ok == before + 1;
  }

  void deliver_to_server() {
    Bytes in;
    harness_allocs += count_allocations([&] { in = to_read_buffer(server_pool, client_out); });
    if (split_reads && in.size() > 1) {
      Bytes a = in.slice(0, in.size() / 2), b = in.slice(in.size() / 2, in.size() - in.size() / 2);
      in = Bytes();
      server_allocs += count_allocations([&] { ok_ &= server.feed(a) && server.feed(b); });
    } else {
      server_allocs += count_allocations([&] { ok_ &= !!server.feed(in); });
    }
  }

  void deliver_to_client() {
    Bytes in;
    harness_allocs += count_allocations([&] { in = to_read_buffer(client_pool, server_out); });
    client_allocs += count_allocations([&] { ok_ &= !!client.feed(in); });
  }

  SlabAllocator server_slab, client_slab;
  BufferPool server_pool, client_pool;
  EchoService service;
  Collector collector;
  ServerSession server;
  struct ClientAdapter {
    ClientAdapter(Collector& c, const ClientOptions& o, SlabAllocator& s, BufferPool* p)
        : session(c, o, s, p) {}
    Result<void> session_start(const Bytes& payload, uint64_t tag) {
      return session.start_unary(kEcho, {}, payload, tag);
    }
    Result<void> produce(IoChain& out) { return session.produce(out); }
    Result<void> feed(const Bytes& in) { return session.feed(in); }
    ClientSession session;
  } client;
  IoChain client_out, server_out;
  bool split_reads = false;
  bool ok_ = true;
  uint64_t server_allocs = 0, client_allocs = 0, harness_allocs = 0;
};

struct Measured {
  uint64_t server = 0, client = 0, harness = 0;
};

Measured steady_state(size_t size, bool split_reads) {
  Harness h;
  h.split_reads = split_reads;
  h.collector.expected_size = size;
  Bytes payload = Bytes::copy(std::string(size, 'p'));
  // Warm-up: pools, slabs, HPACK tables, IoChain capacity.
  for (uint64_t i = 0; i < 300; ++i)
    EXPECT_TRUE(h.call(payload, i)) << "warm-up call " << i;
  h.server_allocs = h.client_allocs = h.harness_allocs = 0;
  constexpr int kCalls = 1000;
  for (uint64_t i = 0; i < kCalls; ++i)
    if (!h.call(payload, 1000 + i)) {
      ADD_FAILURE() << "call " << i << " failed";
      break;
    }
  EXPECT_EQ(h.collector.bad, 0u);
  EXPECT_EQ(h.service.ok, 300u + kCalls);
  return {h.server_allocs, h.client_allocs, h.harness_allocs};
}

TEST(SteadyStateAllocations, ServerMakesNoneFor64ByteMessages) {
  Measured m = steady_state(64, false);
  EXPECT_EQ(m.server, 0u) << "server heap allocations over 1000 calls";
  EXPECT_EQ(m.harness, 0u);
  RecordProperty("client_allocations_per_1000_calls", std::to_string(m.client));
}

TEST(SteadyStateAllocations, ServerMakesNoneFor4KiBMessages) {
  Measured m = steady_state(4096, false);
  EXPECT_EQ(m.server, 0u) << "server heap allocations over 1000 calls";
  EXPECT_EQ(m.harness, 0u);
}

TEST(SteadyStateAllocations, ServerMakesNoneFor64KiBMessages) {
  Measured m = steady_state(64 << 10, false);
  EXPECT_EQ(m.server, 0u) << "server heap allocations over 1000 calls";
}

TEST(SteadyStateAllocations, ServerMakesNoneWhenMessagesAreGathered) {
  // Each read holds half a flight: messages span reads and are gathered
  // into pooled buffers.
  Measured m = steady_state(4096, true);
  EXPECT_EQ(m.server, 0u) << "server heap allocations over 1000 calls";
}

TEST(SteadyStateAllocations, ClientMakesNoneEither) {
  EXPECT_EQ(steady_state(64, false).client, 0u);
  EXPECT_EQ(steady_state(4096, false).client, 0u);
}

}  // namespace
}  // namespace ember::grpc
