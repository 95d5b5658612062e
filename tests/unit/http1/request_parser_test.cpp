// http1::RequestParser on valid input: every vector replayed at every split
// (test::replay_requests) with the same events expected as for the whole
// input, and no body piece copied.
#include "protocols/http1/request_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/http1/http1_test_util.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::http1 {
namespace {

using test::Fields;
using test::Outcome;
using test::PauseOn;
using test::replay_requests;
using test::run_requests;

TEST(RequestParser, SimpleGet) {
  std::string wire =
      "GET /index.html?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Empty:\r\n\r\n";
  Outcome o = replay_requests(wire);
  ASSERT_FALSE(o.failed) << o.reason;
  ASSERT_EQ(o.requests.size(), 1u);
  const test::Request& r = o.requests[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.method_id, Method::get);
  EXPECT_EQ(r.target, "/index.html?x=1&y");
  EXPECT_EQ(r.path, "/index.html");
  EXPECT_EQ(r.query, "x=1&y");
  EXPECT_EQ(r.version, Version::http1_1);
  EXPECT_EQ(r.fields, (Fields{{"Host", "example.com"}, {"Accept", "*/*"}, {"X-Empty", ""}}));
  EXPECT_EQ(r.host, "example.com");
  EXPECT_FALSE(r.content_length);
  EXPECT_FALSE(r.chunked);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.expect_continue);
  EXPECT_EQ(r.upgrade, "");
  EXPECT_EQ(r.body, "");
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(o.idle_at_end);
}

TEST(RequestParser, HeadViewsPointIntoTheInputWhenItArrivesWhole) {
  std::string wire = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Bytes input = Bytes::copy(wire);
  Outcome whole = run_requests({input});
  EXPECT_EQ(whole.heads_in_place, 1u);
  // Split inside the head: gathered into the parser's buffer instead.
  Outcome split = run_requests({input.slice(0, 10), input.slice(10, input.size() - 10)});
  EXPECT_EQ(split.heads_in_place, 0u);
  EXPECT_TRUE(split.same_as(whole));
}

TEST(RequestParser, FieldValuesAreTrimmedAndMayHoldObsText) {
  std::string wire =
      "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t spaced  value \t\r\nX-B:\xc3\xa9t\xe9\r\nx-c:  \r\n\r\n";
  Outcome o = replay_requests(wire);
  ASSERT_EQ(o.requests.size(), 1u) << o.reason;
  EXPECT_EQ(
      o.requests[0].fields,
      (Fields{{"Host", "a"}, {"X-A", "spaced  value"}, {"X-B", "\xc3\xa9t\xe9"}, {"x-c", ""}}));
}

TEST(RequestParser, FindsFieldsCaseInsensitively) {
  struct H : RequestHandler {
    std::string host, missing = "unset";
    Action on_head(const RequestHead& h) override {
      host = std::string(h.field("hOsT").value_or(""));
      if (!h.field("nope")) missing = "absent";
      return Action::proceed;
    }
    Action on_body(const Bytes&) override { return Action::proceed; }
    Action on_complete() override { return Action::proceed; }
  } h;
  RequestParser p({}, h);
  FeedResult r = p.feed(Bytes::copy("GET / HTTP/1.1\r\nHOST: x.y\r\n\r\n"));
  EXPECT_EQ(r.status, ParseStatus::need_more);
  EXPECT_EQ(h.host, "x.y");
  EXPECT_EQ(h.missing, "absent");
}

TEST(RequestParser, PipelinedRequestsInOneBuffer) {
  std::string wire =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
      "DELETE /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  Outcome o = replay_requests(wire);
  ASSERT_FALSE(o.failed) << o.reason;
  ASSERT_EQ(o.requests.size(), 4u);
  EXPECT_EQ(o.requests[0].path, "/a");
  EXPECT_EQ(o.requests[1].method_id, Method::post);
  EXPECT_EQ(o.requests[1].body, "hello");
  EXPECT_EQ(o.requests[1].content_length, 5u);
  EXPECT_EQ(o.requests[2].method_id, Method::put);
  EXPECT_TRUE(o.requests[2].chunked);
  EXPECT_EQ(o.requests[2].body, "abc");
  EXPECT_EQ(o.requests[3].method_id, Method::delete_);
  EXPECT_FALSE(o.requests[3].keep_alive);
  for (const auto& r : o.requests)
    EXPECT_TRUE(r.complete);
}

TEST(RequestParser, KeepAliveRules) {
  struct Case {
    std::string version, connection;
    bool keep_alive;
  };
  const Case cases[] = {
      {"1.1", "", true},
      {"1.1", "Connection: close\r\n", false},
      {"1.1", "Connection: CLOSE\r\n", false},
      {"1.1", "Connection: keep-alive\r\n", true},
      {"1.1", "Connection: foo, close\r\n", false},
      {"1.1", "Connection: keep-alive\r\nConnection: close\r\n", false},
      {"1.0", "", false},
      {"1.0", "Connection: keep-alive\r\n", true},
      {"1.0", "Connection: Keep-Alive\r\n", true},
      {"1.0", "Connection: te ,  keep-alive \r\n", true},
      {"1.0", "Connection: keep-alive, close\r\n", false},
      {"1.0", "Connection: close\r\n", false},
      {"1.2", "", true},  // 1.x reads as 1.1
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.version + " " + c.connection);
    Outcome o =
        replay_requests("GET / HTTP/" + c.version + "\r\nHost: h\r\n" + c.connection + "\r\n");
    ASSERT_EQ(o.requests.size(), 1u) << o.reason;
    EXPECT_EQ(o.requests[0].keep_alive, c.keep_alive);
    EXPECT_EQ(o.requests[0].version, c.version == "1.0" ? Version::http1_0 : Version::http1_1);
  }
}

TEST(RequestParser, ContentLengthBody) {
  Outcome o =
      replay_requests("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world");
  ASSERT_EQ(o.requests.size(), 1u) << o.reason;
  EXPECT_EQ(o.requests[0].body, "hello world");
  EXPECT_EQ(o.requests[0].content_length, 11u);
  EXPECT_TRUE(o.requests[0].complete);
}

TEST(RequestParser, ContentLengthZeroAndEqualDuplicates) {
  Outcome o = replay_requests(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nContent-Length: 003\r\n\r\nabc");
  ASSERT_EQ(o.requests.size(), 2u) << o.reason;
  EXPECT_EQ(o.requests[0].content_length, 0u);
  EXPECT_EQ(o.requests[0].body, "");
  EXPECT_TRUE(o.requests[0].complete);
  EXPECT_EQ(o.requests[1].content_length, 3u);
  EXPECT_EQ(o.requests[1].body, "abc");
}

TEST(RequestParser, ChunkedWithExtensionsAndTrailers) {
  std::string wire =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value;flag\r\nhello\r\n"
      "6 ; q=\"quoted \\\" ;str\" ;x = y\r\n world\r\n"
      "A\r\n0123456789\r\n"
      "0;last\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n";
  Outcome o = replay_requests(wire);
  ASSERT_FALSE(o.failed) << o.reason;
  ASSERT_EQ(o.requests.size(), 1u);
  EXPECT_TRUE(o.requests[0].chunked);
  EXPECT_FALSE(o.requests[0].content_length);
  EXPECT_EQ(o.requests[0].body, "hello world0123456789");
  EXPECT_EQ(o.requests[0].trailers, (Fields{{"X-Checksum", "abc"}, {"X-Other", "1"}}));
  EXPECT_TRUE(o.requests[0].complete);
}

TEST(RequestParser, ChunkSizesInAnyCaseWithLeadingZeros) {
  std::string wire =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "0000000000000000000001\r\na\r\nb\r\nbcdefghijkl\r\nB\r\nmnopqrstuvw\r\n000\r\n\r\n";
  Outcome o = replay_requests(wire);
  ASSERT_EQ(o.requests.size(), 1u) << o.reason;
  EXPECT_EQ(o.requests[0].body, "abcdefghijklmnopqrstuvw");
  EXPECT_TRUE(o.requests[0].trailers.empty());
}

TEST(RequestParser, TransferEncodingListsAcrossLines) {
  // Only chunked is understood, so a list must be exactly chunked; but the
  // value may spread over field lines and carry OWS.
  Outcome o = replay_requests(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  chunked \r\n\r\n1\r\nx\r\n0\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 1u) << o.reason;
  EXPECT_EQ(o.requests[0].body, "x");
}

TEST(RequestParser, ExpectContinue) {
  Outcome o = replay_requests(
      "PUT /big HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok"
      "PUT /big HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"
      "PUT /big HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 3u) << o.reason;
  EXPECT_TRUE(o.requests[0].expect_continue);
  EXPECT_FALSE(o.requests[1].expect_continue);  // ignored in HTTP/1.0
  EXPECT_FALSE(o.requests[2].expect_continue);
}

TEST(RequestParser, ExpectContinuePausedBeforeTheBody) {
  // The server sees the head, pauses, writes 100 Continue, then reads on.
  struct H : RequestHandler {
    std::string body;
    bool saw_expect = false;
    Action on_head(const RequestHead& h) override {
      saw_expect = h.expect_continue;
      return Action::pause;
    }
    Action on_body(const Bytes& b) override {
      body += b.view();
      return Action::proceed;
    }
    Action on_complete() override { return Action::proceed; }
  } h;
  RequestParser p({}, h);
  std::string head =
      "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  Bytes in = Bytes::copy(head + "data");
  FeedResult r = p.feed(in);
  EXPECT_EQ(r.status, ParseStatus::paused);
  EXPECT_EQ(r.consumed, head.size());
  EXPECT_TRUE(h.saw_expect);
  EXPECT_EQ(h.body, "");
  p.resume();
  r = p.feed(in.slice(r.consumed, in.size() - r.consumed));
  EXPECT_EQ(r.status, ParseStatus::need_more);
  EXPECT_EQ(r.consumed, 4u);
  EXPECT_EQ(h.body, "data");
}

TEST(RequestParser, UpgradeDetection) {
  Outcome o = replay_requests(
      "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
      "OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 4u) << o.reason;
  EXPECT_EQ(o.requests[0].upgrade, "websocket");
  EXPECT_EQ(o.requests[1].upgrade, "h2c");
  EXPECT_EQ(o.requests[1].path, "*");
  EXPECT_EQ(o.requests[2].upgrade, "");  // no "Connection: upgrade"
  EXPECT_EQ(o.requests[3].upgrade, "");  // no Upgrade field
}

TEST(RequestParser, ServerPausesToSwitchProtocols) {
  // After accepting an upgrade the server pauses at on_complete; the rest of
  // the input is the new protocol's and is left unconsumed.
  struct H : RequestHandler {
    Action on_head(const RequestHead&) override { return Action::proceed; }
    Action on_body(const Bytes&) override { return Action::proceed; }
    Action on_complete() override { return Action::pause; }
  } h;
  RequestParser p({}, h);
  std::string head =
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
  std::string frames = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  FeedResult r = p.feed(Bytes::copy(head + frames));
  EXPECT_EQ(r.status, ParseStatus::paused);
  EXPECT_EQ(r.consumed, head.size());
  EXPECT_TRUE(p.idle());
}

TEST(RequestParser, TargetForms) {
  Outcome o = replay_requests(
      "GET http://example.com:8080/p/q?a=b HTTP/1.1\r\nHost: ignored\r\n\r\n"
      "GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"
      "GET http://[::1]:80?x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
      "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /?only-query HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /a/b%20c/;p=1?x=%41&y=[]! HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 7u) << o.reason;
  EXPECT_EQ(o.requests[0].host, "example.com:8080");
  EXPECT_EQ(o.requests[0].path, "/p/q");
  EXPECT_EQ(o.requests[0].query, "a=b");
  EXPECT_EQ(o.requests[1].host, "example.com");
  EXPECT_EQ(o.requests[1].path, "/");
  EXPECT_EQ(o.requests[1].query, "");
  EXPECT_EQ(o.requests[2].host, "[::1]:80");
  EXPECT_EQ(o.requests[2].path, "/");
  EXPECT_EQ(o.requests[2].query, "x");
  EXPECT_EQ(o.requests[3].method_id, Method::connect);
  EXPECT_EQ(o.requests[3].target, "example.com:443");
  EXPECT_EQ(o.requests[3].path, "");
  EXPECT_EQ(o.requests[3].host, "example.com:443");
  EXPECT_EQ(o.requests[4].method_id, Method::options);
  EXPECT_EQ(o.requests[4].path, "*");
  EXPECT_EQ(o.requests[5].path, "/");
  EXPECT_EQ(o.requests[5].query, "only-query");
  EXPECT_EQ(o.requests[6].path, "/a/b%20c/;p=1");
  EXPECT_EQ(o.requests[6].query, "x=%41&y=[]!");
}

TEST(RequestParser, MethodsAreTokensMatchedCaseSensitively) {
  Outcome o = replay_requests(
      "PURGE / HTTP/1.1\r\nHost: h\r\n\r\n"
      "get / HTTP/1.1\r\nHost: h\r\n\r\n"
      "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
      "PATCH / HTTP/1.1\r\nHost: h\r\n\r\n"
      "TRACE / HTTP/1.1\r\nHost: h\r\n\r\n"
      "M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(o.status, 400);  // asterisk-form only with OPTIONS
  EXPECT_EQ(o.reason, "asterisk-form target outside OPTIONS");
  ASSERT_EQ(o.requests.size(), 5u);
  EXPECT_EQ(o.requests[0].method, "PURGE");
  EXPECT_EQ(o.requests[0].method_id, Method::other);
  EXPECT_EQ(o.requests[1].method_id, Method::other);
  EXPECT_EQ(o.requests[2].method_id, Method::head);
  EXPECT_EQ(o.requests[3].method_id, Method::patch);
  EXPECT_EQ(o.requests[4].method_id, Method::trace);
}

TEST(RequestParser, Http10WithoutHost) {
  Outcome o = replay_requests("GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nHost: h\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 2u) << o.reason;
  EXPECT_EQ(o.requests[0].host, "");
  EXPECT_EQ(o.requests[0].version, Version::http1_0);
  EXPECT_EQ(o.requests[1].host, "h");
}

TEST(RequestParser, EmptyHostIsAllowed) {
  Outcome o = replay_requests("GET / HTTP/1.1\r\nHost:\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 1u) << o.reason;
  EXPECT_EQ(o.requests[0].host, "");
}

TEST(RequestParser, EmptyLinesBeforeARequestAreSkipped) {
  Outcome o = replay_requests(
      "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx\r\n"
      "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 2u) << o.reason;
  EXPECT_EQ(o.requests[1].path, "/2");
}

TEST(RequestParser, LargeBodyAcrossManyFeedsIsNeverCopied) {
  const size_t n = 1u << 20;
  std::string body = ember::test::random_bytes(n, 7);
  std::string wire =
      "PUT /blob HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n" + body;
  Bytes input = Bytes::copy(wire);
  for (size_t piece : {size_t{1000}, size_t{4096}, size_t{65536}, size_t{1} << 20}) {
    SCOPED_TRACE(piece);
    std::vector<Bytes> chunks;
    for (size_t off = 0; off < input.size(); off += piece)
      chunks.push_back(input.slice(off, std::min(piece, input.size() - off)));
    Outcome o = run_requests(chunks, Limits{.max_body = n});
    ASSERT_EQ(o.requests.size(), 1u) << o.reason;
    EXPECT_TRUE(o.requests[0].body == body);
    EXPECT_TRUE(o.requests[0].complete);
    EXPECT_EQ(o.body_outside_input, 0u);
    EXPECT_GE(o.body_pieces, n / piece);
  }
}

TEST(RequestParser, BodyPiecesAreSlicesAtTheExactInputOffsets) {
  struct H : RequestHandler {
    std::vector<Bytes> pieces;
    Action on_head(const RequestHead&) override { return Action::proceed; }
    Action on_body(const Bytes& b) override {
      pieces.push_back(b);
      return Action::proceed;
    }
    Action on_complete() override { return Action::proceed; }
  } h;
  RequestParser p({}, h);
  std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string wire = head + "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
  Bytes in = Bytes::copy(wire);
  FeedResult r = p.feed(in);
  ASSERT_EQ(r.status, ParseStatus::need_more);
  ASSERT_EQ(h.pieces.size(), 2u);
  EXPECT_EQ(h.pieces[0].data(), in.data() + head.size() + 3);
  EXPECT_EQ(h.pieces[1].data(), in.data() + head.size() + 11);
  EXPECT_EQ(h.pieces[0].storage(), in.storage());
  EXPECT_EQ(h.pieces[1].view(), "defg");
}

TEST(RequestParser, LargeChunkedBodyAcrossFeeds) {
  std::string wire = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string body;
  for (int i = 0; i < 64; ++i) {
    std::string piece = ember::test::random_bytes(1000 + i * 37, i);
    char size[16];
    snprintf(size, sizeof(size), "%zx", piece.size());
    wire += std::string(size) + "\r\n" + piece + "\r\n";
    body += piece;
  }
  wire += "0\r\n\r\n";
  Bytes input = Bytes::copy(wire);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{1500}, wire.size()}) {
    std::vector<Bytes> chunks;
    for (size_t off = 0; off < input.size(); off += piece)
      chunks.push_back(input.slice(off, std::min(piece, input.size() - off)));
    Outcome o = run_requests(chunks);
    ASSERT_EQ(o.requests.size(), 1u) << o.reason;
    EXPECT_TRUE(o.requests[0].body == body);
    EXPECT_EQ(o.body_outside_input, 0u);
  }
}

TEST(RequestParser, PauseAtEachCompleteWithPipelining) {
  std::string a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string b = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz";
  std::string c =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\n\r\n";
  // Replayed at every split: the pauses fall at the same stream offsets.
  Outcome o = replay_requests(a + b + c, {}, PauseOn::complete);
  ASSERT_EQ(o.requests.size(), 3u) << o.reason;
  EXPECT_EQ(o.complete_pauses,
            (std::vector<size_t>{a.size(), a.size() + b.size(), a.size() + b.size() + c.size()}));
}

TEST(RequestParser, PausedParserConsumesNothingUntilResumed) {
  struct H : RequestHandler {
    int completes = 0;
    Action on_head(const RequestHead&) override { return Action::proceed; }
    Action on_body(const Bytes&) override { return Action::proceed; }
    Action on_complete() override {
      ++completes;
      return Action::pause;
    }
  } h;
  RequestParser p({}, h);
  std::string one = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string two = "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  Bytes in = Bytes::copy(one + two);
  FeedResult r = p.feed(in);
  EXPECT_EQ(r.status, ParseStatus::paused);
  EXPECT_EQ(r.consumed, one.size());
  EXPECT_EQ(h.completes, 1);
  EXPECT_TRUE(p.paused());
  Bytes rest = in.slice(r.consumed, in.size() - r.consumed);
  r = p.feed(rest);
  EXPECT_EQ(r.status, ParseStatus::paused);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(h.completes, 1);
  p.resume();
  r = p.feed(rest);
  EXPECT_EQ(r.status, ParseStatus::paused);
  EXPECT_EQ(r.consumed, two.size());
  EXPECT_EQ(h.completes, 2);
  p.resume();
  r = p.feed(Bytes());
  EXPECT_EQ(r.status, ParseStatus::need_more);
  EXPECT_EQ(r.consumed, 0u);
}

TEST(RequestParser, PauseFromEveryEventGivesTheSameRequests) {
  std::string wire =
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nqr\r\n1\r\ns\r\n0\r\nT: 1\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  Outcome plain = replay_requests(wire);
  Outcome paused = replay_requests(wire, {}, PauseOn::every_event);
  ASSERT_FALSE(paused.failed) << paused.reason;
  EXPECT_EQ(paused.requests, plain.requests);
}

TEST(RequestParser, PauseFromABodyPieceThatEndsTheMessageStillCompletes) {
  struct H : RequestHandler {
    std::vector<std::string> events;
    Action on_head(const RequestHead&) override {
      events.push_back("head");
      return Action::proceed;
    }
    Action on_body(const Bytes& b) override {
      events.push_back("body " + b.to_string());
      return Action::pause;
    }
    Action on_complete() override {
      events.push_back("complete");
      return Action::proceed;
    }
  } h;
  RequestParser p({}, h);
  std::string one = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab";
  FeedResult r = p.feed(Bytes::copy(one + "GET / HTTP/1.1\r\n"));
  EXPECT_EQ(r.status, ParseStatus::paused);
  EXPECT_EQ(r.consumed, one.size());
  EXPECT_EQ(h.events, (std::vector<std::string>{"head", "body ab", "complete"}));
}

TEST(RequestParser, IdleOnlyBetweenRequests) {
  struct H : RequestHandler {
    Action on_head(const RequestHead&) override { return Action::proceed; }
    Action on_body(const Bytes&) override { return Action::proceed; }
    Action on_complete() override { return Action::proceed; }
  } h;
  RequestParser p({}, h);
  EXPECT_TRUE(p.idle());
  (void)p.feed(Bytes::copy("\r\n"));
  EXPECT_TRUE(p.idle());
  (void)p.feed(Bytes::copy("\r"));
  EXPECT_FALSE(p.idle());
  (void)p.feed(Bytes::copy("\nGET / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n"));
  EXPECT_FALSE(p.idle());
  (void)p.feed(Bytes::copy("ab"));
  EXPECT_TRUE(p.idle());
}

TEST(RequestParser, ErrorIsStickyUntilReset) {
  struct H : RequestHandler {
    int heads = 0;
    Action on_head(const RequestHead&) override {
      ++heads;
      return Action::proceed;
    }
    Action on_body(const Bytes&) override { return Action::proceed; }
    Action on_complete() override { return Action::proceed; }
  } h;
  RequestParser p({}, h);
  FeedResult r = p.feed(Bytes::copy("GET / HTTP/1.1\r\nHost : h\r\n\r\n"));
  EXPECT_EQ(r.status, ParseStatus::error);
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(p.error().status, 400);
  Bytes good = Bytes::copy("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  r = p.feed(good);
  EXPECT_EQ(r.status, ParseStatus::error);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(h.heads, 0);
  p.reset();
  EXPECT_FALSE(p.failed());
  r = p.feed(good);
  EXPECT_EQ(r.status, ParseStatus::need_more);
  EXPECT_EQ(h.heads, 1);
}

TEST(RequestParser, HeadGatheredAcrossFeedsKeepsTheBodyZeroCopy) {
  // The head arrives in pieces; the body bytes that follow it in the last
  // piece are still a slice of that piece.
  std::string head = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
  Bytes in = Bytes::copy(head + "hello");
  Outcome o = run_requests({in.slice(0, 7), in.slice(7, 20), in.slice(27, in.size() - 27)});
  ASSERT_EQ(o.requests.size(), 1u) << o.reason;
  EXPECT_EQ(o.requests[0].body, "hello");
  EXPECT_EQ(o.body_outside_input, 0u);
  EXPECT_EQ(o.heads_in_place, 0u);
}

}  // namespace
}  // namespace ember::http1
