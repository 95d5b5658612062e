// Steady-state heap allocations of the HTTP/1.1 codec, counted.
//
// After one warm-up round, parsing requests (whole or split heads, chunked
// bodies, pipelining) and writing responses must not allocate.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>

#include "protocols/http1/request_parser.hpp"
#include "protocols/http1/response_parser.hpp"
#include "protocols/http1/writer.hpp"
#include "tests/unit/support/allocation_counter.hpp"

namespace ember::http1 {
namespace {

struct Sink : RequestHandler {
  size_t bytes = 0, completes = 0, fields = 0;
  Action on_head(const RequestHead& h) override {
    fields += h.fields.size();
    return Action::proceed;
  }
  Action on_body(const Bytes& b) override {
    bytes += b.size();
    return Action::proceed;
  }
  Action on_trailers(std::span<const Field> t) override {
    fields += t.size();
    return Action::proceed;
  }
  Action on_complete() override {
    ++completes;
    return Action::proceed;
  }
};

TEST(Http1Alloc, RequestParsingAllocatesNothingInSteadyState) {
  std::string wire =
      "GET /plaintext HTTP/1.1\r\nHost: server\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
      "Connection: keep-alive\r\n\r\n"
      "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n";
  for (int i = 0; i < 30; ++i)
    wire += "GET /x HTTP/1.1\r\nHost: h\r\nX-" + std::to_string(i) + ": v\r\n\r\n";
  Bytes in = Bytes::copy(wire);
  Bytes a = in.slice(0, 40), b = in.slice(40, in.size() - 40);  // a split head
  Sink sink;
  RequestParser parser({}, sink);
  ASSERT_EQ(parser.feed(a).status, ParseStatus::need_more);  // warm-up
  ASSERT_EQ(parser.feed(b).status, ParseStatus::need_more);
  ember::test::CountingAllocations armed;
  for (int round = 0; round < 100; ++round) {
    (void)parser.feed(in);
    (void)parser.feed(a);
    (void)parser.feed(b);
  }
  EXPECT_EQ(armed.stop(), 0u);
  EXPECT_EQ(sink.completes, 33u * 201);
  EXPECT_FALSE(parser.failed());
}

TEST(Http1Alloc, ResponseParsingAllocatesNothingInSteadyState) {
  struct R : ResponseHandler {
    size_t completes = 0;
    Action on_head(const ResponseHead&) override { return Action::proceed; }
    Action on_body(const Bytes&) override { return Action::proceed; }
    Action on_complete() override {
      ++completes;
      return Action::proceed;
    }
  } sink;
  std::string wire =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
  Bytes in = Bytes::copy(wire);
  ResponseParser parser({}, sink);
  ASSERT_EQ(parser.feed(in).status, ParseStatus::need_more);
  ember::test::CountingAllocations armed;
  for (int round = 0; round < 100; ++round)
    (void)parser.feed(in);
  EXPECT_EQ(armed.stop(), 0u);
  EXPECT_EQ(sink.completes, 202u);
}

TEST(Http1Alloc, WritingResponsesAllocatesNothingInSteadyState) {
  IoChain out;
  ResponseWriter w(out);
  Bytes body = Bytes::copy("Hello, World!");
  Field f[] = {{"Server", "ember"}, {"Content-Type", "text/plain"}};
  auto round = [&] {
    for (int i = 0; i < 16; ++i)
      if (!w.write({.status = 200, .fields = f}, body)) return false;
    if (!w.begin({.status = 200}, std::nullopt) || !w.body(body) || !w.end()) return false;
    write_error(out, 400, "bad");
    write_continue(out);
    out.clear();
    return true;
  };
  ASSERT_TRUE(round());  // warm-up: cork, iovec and held-Bytes capacity
  ember::test::CountingAllocations armed;
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(round());
  EXPECT_EQ(armed.stop(), 0u);
}

}  // namespace
}  // namespace ember::http1
