// Steady-state heap allocations of the HTTP/1.1 client: repeated GETs over one kept-alive
// connection, counted on the loop thread after a warm-up.
//
// Counted by tests/unit/support/allocation_counter.hpp (per thread, while
// armed; malloc inside Ember's static libraries included).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "tests/unit/http1_client/client_harness.hpp"
#include "tests/unit/support/allocation_counter.hpp"

namespace ember::http1::test {
namespace {

// Issues the next GET from on_complete until `left` reaches zero; the loop
// thread's allocations are counted while armed.
struct Chain : ClientHandler {
  Client* client = nullptr;
  std::string url;
  int left = 0;
  size_t bytes = 0;
  int failures = 0;
  std::promise<void> done;
  void next() {
    if (left-- == 0) {
      done.set_value();
      return;
    }
    if (!client->request({.url = url}, *this)) ++failures;
  }
  void on_head(const ResponseHead&) override {}
  Action on_body(const Bytes& b) override {
    bytes += b.size();
    return Action::proceed;
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

// The counter sees a library allocation made on the loop thread.
TEST(Http1ClientAlloc, CountingWorksOnTheLoopThread) {
  Harness h;
  auto counted = [&](auto fn) {
    return h.on_loop([&] { return ember::test::count_allocations(fn); });
  };
  EXPECT_EQ(counted([] {
              Bytes b = Bytes::copy(std::string_view("a heap copy"));
              EXPECT_EQ(b.size(), 11u);
            }),
            1u);
}

TEST(Http1ClientAlloc, KeptAliveGetsAllocateNothing) {
  RawServer server([](int fd, int) {
    std::string response(100, 'x');
    response.insert(0, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    while (!read_request(fd).empty())
      send_all(fd, response);
  });
  Harness h;
  std::string url = server.url("/object/key?part=1");
  run_chain(h, url, 50, false);  // warm-up: connection, buffers, timer heap
  uint64_t count = run_chain(h, url, 1000, true);
  std::printf("allocations on the loop thread for 1000 kept-alive GETs: %llu\n",
              static_cast<unsigned long long>(count));
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(server.accepted(), 1);
}

}  // namespace
}  // namespace ember::http1::test
