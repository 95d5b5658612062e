// Steady-state heap allocations of tls::Engine, counted: ours through a
// replaced operator new, OpenSSL's through CRYPTO_set_mem_functions.
// Counting is per thread and only while armed.
#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "tests/unit/tls/harness.hpp"
#include "tests/unit/tls/pki.hpp"

namespace {

thread_local bool t_armed = false;
thread_local uint64_t t_cxx = 0;
thread_local uint64_t t_openssl = 0;

void* counted_malloc(size_t n, const char*, int) {
  if (t_armed) ++t_openssl;
  return std::malloc(n);
}
void* counted_realloc(void* p, size_t n, const char*, int) {
  if (t_armed) ++t_openssl;
  return std::realloc(p, n);
}
void counted_free(void* p, const char*, int) {
  std::free(p);
}

// Before anything in OpenSSL allocates (static initialisation).
const bool g_hooked = CRYPTO_set_mem_functions(counted_malloc, counted_realloc, counted_free) == 1;

void* cxx_alloc(size_t n) {
  if (t_armed) ++t_cxx;
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

void* cxx_alloc_aligned(size_t n, std::align_val_t al) {
  if (t_armed) ++t_cxx;
  void* p = nullptr;
  size_t a = std::max(static_cast<size_t>(al), sizeof(void*));
  if (posix_memalign(&p, a, n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t n) {
  return cxx_alloc(n);
}
void* operator new[](size_t n) {
  return cxx_alloc(n);
}
void* operator new(size_t n, std::align_val_t al) {
  return cxx_alloc_aligned(n, al);
}
void* operator new[](size_t n, std::align_val_t al) {
  return cxx_alloc_aligned(n, al);
}
// The nothrow forms too (std::stable_sort's temporary buffer uses them):
// a replaced delete must pair with every new the program can call.
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (t_armed) ++t_cxx;
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  if (t_armed) ++t_cxx;
  return std::malloc(n ? n : 1);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace ember::test {
namespace {

struct Counts {
  uint64_t cxx = 0, openssl = 0;
};

template <class Fn>
Counts count_allocations(Fn&& fn) {
  Counts before{t_cxx, t_openssl};
  t_armed = true;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_armed = false;
  return {t_cxx - before.cxx, t_openssl - before.openssl};
}

// Counts bytes only: a sink that allocates would hide the engine's zero.
struct CountingSink : tls::Sink {
  size_t bytes = 0;
  void on_plaintext(const Bytes& b) override { bytes += b.size(); }
};

TEST(TlsAllocations, CountersWork) {
  ASSERT_TRUE(g_hooked) << "OpenSSL allocated before the hooks were installed";
  EXPECT_EQ(count_allocations([] { delete new int(1); }).cxx, 1u);
  EXPECT_EQ(count_allocations([] { OPENSSL_free(OPENSSL_malloc(10)); }).openssl, 1u);
}

// Request/response exchanges after warm-up: no allocation on our side;
// OpenSSL keeps its record buffers and allocates only small bookkeeping.
TEST(TlsAllocations, SteadyStateRoundTripsAllocateNothing) {
  for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
    SCOPED_TRACE(version);
    pki::TempDir dir;
    pki::Authority ca(dir, "ca");
    ca.issue(dir, "leaf", "localhost", "DNS:localhost");
    tls::ServerConfig sc;
    sc.certificates = {{dir.file("leaf.pem"), dir.file("leaf.key"), {}}};
    sc.alpn = {"h2"};
    auto sctx = tls::ServerContext::create(sc);
    ASSERT_TRUE(sctx);
    tls::ClientConfig cc;
    cc.ca_file = ca.cert_file;
    cc.alpn = {"h2"};
    cc.max_version = version;
    auto cctx = tls::ClientContext::create(cc);
    ASSERT_TRUE(cctx);
    Pair p(**cctx, **sctx, "localhost");
    ASSERT_TRUE(p.handshake());

    const Bytes request = Bytes::copy(std::string(200, 'q'));
    const Bytes response = Bytes::copy(std::string(40000, 'r'));  // three records
    IoChain plain, wire;
    CountingSink client_sink, server_sink;
    auto round_trip = [&] {
      plain.append(request);
      ASSERT_TRUE(p.client.engine->encrypt(plain, wire));
      for (size_t i = 0; i < wire.iov_count(); ++i) {
        const iovec& v = wire.iov()[i];
        ASSERT_TRUE(p.server.engine->feed(
            Bytes::unowned(std::span(static_cast<const uint8_t*>(v.iov_base), v.iov_len)),
            server_sink));
      }
      wire.clear();
      plain.append(response);
      ASSERT_TRUE(p.server.engine->encrypt(plain, wire));
      for (size_t i = 0; i < wire.iov_count(); ++i) {
        const iovec& v = wire.iov()[i];
        ASSERT_TRUE(p.client.engine->feed(
            Bytes::unowned(std::span(static_cast<const uint8_t*>(v.iov_base), v.iov_len)),
            client_sink));
      }
      wire.clear();
    };
    for (int i = 0; i < 50; ++i)
      round_trip();
    Counts c = count_allocations([&] {
      for (int i = 0; i < 1000; ++i)
        round_trip();
    });
    EXPECT_EQ(c.cxx, 0u);
    // OpenSSL 3.0's record layer allocates 40-byte WPACKET bookkeeping for
    // each record it writes or decrypts (measured: 3 per TLS 1.3 write, 1
    // per read). Not ours to remove; bound it so a regression shows.
    const uint64_t records = 1000 * (1 + 3);
    EXPECT_LE(c.openssl, records * 4);
    ::testing::Test::RecordProperty(std::string("openssl_allocs_per_record_") + version,
                                    std::to_string(double(c.openssl) / records));
    EXPECT_EQ(server_sink.bytes, 1050u * 200);
    EXPECT_EQ(client_sink.bytes, 1050u * 40000);
  }
}

}  // namespace
}  // namespace ember::test
