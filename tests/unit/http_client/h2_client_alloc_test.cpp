// Steady-state heap allocations of the HTTP client over HTTP/2: GETs one
// after another on one connection (a server written frame by frame),
// counted on the loop thread after a warm-up.
#include <gtest/gtest.h>

#include "tests/unit/http_client/frames.hpp"
#include "tests/unit/http_client/harness.hpp"
#include "tests/unit/support/allocation_counter.hpp"

namespace ember::http::test {
namespace {

using namespace frames;

// Issues the next GET from on_complete until `left` reaches zero.
struct Chain : http1::ClientHandler {
  Client* client = nullptr;
  std::string url;
  int left = 0;
  size_t bytes = 0;
  int failures = 0;
  std::promise<void> done;
  void next() {
    if (left-- == 0) return done.set_value();
    if (!client->request({.url = url}, *this)) ++failures;
  }
  void on_head(const http1::ResponseHead& head) override {
    if (head.version != http1::Version::http2) ++failures;
  }
  http1::Action on_body(const Bytes& b) override {
    bytes += b.size();
    return http1::Action::proceed;
  }
  void on_complete() override { next(); }
  void on_error(const Error&) override {
    ++failures;
    next();
  }
};

uint64_t run_chain(Harness& h, const std::string& url, int n, bool armed) {
  Chain c;
  c.client = &h.client();
  c.url = url;
  c.left = n;
  auto f = c.done.get_future();
  h.on_loop([&] {
    if (armed) ember::test::arm_allocation_counter();
    c.next();
  });
  EXPECT_EQ(f.wait_for(60s), std::future_status::ready);
  uint64_t count = h.on_loop([&] { return armed ? ember::test::disarm_allocation_counter() : 0; });
  EXPECT_EQ(c.failures, 0);
  EXPECT_EQ(c.bytes, static_cast<size_t>(n) * 100);
  return count;
}

TEST(H2ClientAlloc, GetsOnOneConnectionAllocateNothing) {
  RawServer server([](int fd, int) {
    std::string body(100, 'x');
    serve(fd, settings(), [&](const Frame& f) {
      if (f.type == 1) send_all(fd, ok(f.stream, false) + data(f.stream, body, true));
      return true;
    });
  });
  Harness h(h2c());
  std::string url = server.url("/object/key?part=1");
  run_chain(h, url, 200, false);  // warm-up: connection, buffers, slabs, timer heap
  uint64_t count = run_chain(h, url, 1000, true);
  std::printf("allocations on the loop thread for 1000 HTTP/2 GETs: %llu\n",
              static_cast<unsigned long long>(count));
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(server.accepted(), 1);
}

}  // namespace
}  // namespace ember::http::test
