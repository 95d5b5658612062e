// http1::ResponseParser (client role): body framing by request method and
// status, interim responses, upgrades and tunnels, finish(), malformed input
// and limits. Every vector is replayed at every split.
#include "protocols/http1/response_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/http1/http1_test_util.hpp"

namespace ember::http1 {
namespace {

using test::Fields;
using test::Outcome;
using test::PauseOn;
using test::replay_responses;

TEST(ResponseParser, ContentLengthBody) {
  Outcome o = replay_responses(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_FALSE(o.failed) << o.reason;
  ASSERT_EQ(o.responses.size(), 1u);
  const test::Response& r = o.responses[0];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reason, "OK");
  EXPECT_EQ(r.version, Version::http1_1);
  EXPECT_EQ(r.fields, (Fields{{"Content-Type", "text/plain"}, {"Content-Length", "5"}}));
  EXPECT_EQ(r.content_length, 5u);
  EXPECT_TRUE(r.has_body);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(o.finished_clean);
}

TEST(ResponseParser, ChunkedBodyWithTrailers) {
  Outcome o = replay_responses(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;x=1\r\nWiki\r\n5\r\npedia\r\n0\r\nETag: \"abc\"\r\n\r\n");
  ASSERT_EQ(o.responses.size(), 1u) << o.reason;
  EXPECT_TRUE(o.responses[0].chunked);
  EXPECT_EQ(o.responses[0].body, "Wikipedia");
  EXPECT_EQ(o.responses[0].trailers, (Fields{{"ETag", "\"abc\""}}));
}

TEST(ResponseParser, BodyUntilClose) {
  Outcome o = replay_responses("HTTP/1.1 200 OK\r\nServer: old\r\n\r\nall of this is body\r\n");
  ASSERT_EQ(o.responses.size(), 1u) << o.reason;
  EXPECT_TRUE(o.responses[0].until_close);
  EXPECT_FALSE(o.responses[0].keep_alive);
  EXPECT_EQ(o.responses[0].body, "all of this is body\r\n");
  EXPECT_TRUE(o.responses[0].complete);  // by finish()
  EXPECT_TRUE(o.finished_clean);

  Outcome open = replay_responses("HTTP/1.1 200 OK\r\n\r\npartial", {}, {}, PauseOn::nothing,
                                  /*finish=*/false);
  ASSERT_EQ(open.responses.size(), 1u);
  EXPECT_FALSE(open.responses[0].complete);
}

TEST(ResponseParser, NoBodyForHead204And304) {
  Outcome o = replay_responses(
      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
      "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      {}, {Method::head, Method::get, Method::get, Method::get});
  // The 304 carries both framing fields: refused even though it has no body.
  EXPECT_EQ(o.reason, "Content-Length with Transfer-Encoding");
  ASSERT_EQ(o.responses.size(), 2u);
  Outcome ok = replay_responses(
      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
      "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      {}, {Method::head, Method::get, Method::get, Method::get});
  ASSERT_EQ(ok.responses.size(), 4u) << ok.reason;
  EXPECT_FALSE(ok.responses[0].has_body);
  EXPECT_EQ(ok.responses[0].content_length, 1000u);
  EXPECT_EQ(ok.responses[0].body, "");
  EXPECT_FALSE(ok.responses[1].has_body);
  EXPECT_FALSE(ok.responses[2].has_body);
  EXPECT_EQ(ok.responses[3].body, "ok");
  for (const auto& r : ok.responses)
    EXPECT_TRUE(r.complete);
}

TEST(ResponseParser, InterimResponsesComeBeforeTheFinalOne) {
  Outcome o = replay_responses(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(o.responses.size(), 1u) << o.reason;
  EXPECT_EQ(o.responses[0].interim, (std::vector<int>{100, 103}));
  EXPECT_EQ(o.responses[0].status, 201);
  EXPECT_TRUE(o.responses[0].complete);
}

TEST(ResponseParser, SwitchingProtocolsStopsAtTheHead) {
  std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  std::string frames("\x81\x05hello\x88\x00", 9);
  Outcome o = replay_responses(head + frames);
  ASSERT_EQ(o.responses.size(), 1u) << o.reason;
  EXPECT_EQ(o.responses[0].status, 101);
  EXPECT_EQ(o.responses[0].upgrade, "websocket");
  ASSERT_TRUE(o.upgraded_at);
  EXPECT_EQ(*o.upgraded_at, head.size());
  EXPECT_EQ(o.rest, frames);
}

TEST(ResponseParser, ConnectSuccessStartsATunnel) {
  std::string head = "HTTP/1.1 200 Connection Established\r\n\r\n";
  Outcome o = replay_responses(head + "\x16\x03\x01 tls bytes", {}, {Method::connect});
  ASSERT_EQ(o.responses.size(), 1u) << o.reason;
  ASSERT_TRUE(o.upgraded_at);
  EXPECT_EQ(*o.upgraded_at, head.size());
  EXPECT_EQ(o.rest, "\x16\x03\x01 tls bytes");

  Outcome denied =
      replay_responses("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\nno!",
                       {}, {Method::connect});
  ASSERT_EQ(denied.responses.size(), 1u) << denied.reason;
  EXPECT_FALSE(denied.upgraded_at);
  EXPECT_EQ(denied.responses[0].body, "no!");
}

TEST(ResponseParser, KeepAliveRules) {
  Outcome o = replay_responses(
      "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na"
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nb"
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nc"
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd");
  ASSERT_EQ(o.responses.size(), 4u) << o.reason;
  EXPECT_FALSE(o.responses[0].keep_alive);
  EXPECT_EQ(o.responses[0].version, Version::http1_0);
  EXPECT_TRUE(o.responses[1].keep_alive);
  EXPECT_FALSE(o.responses[2].keep_alive);
  EXPECT_TRUE(o.responses[3].keep_alive);
}

TEST(ResponseParser, StatusLineForms) {
  Outcome o = replay_responses(
      "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"
      "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"
      "HTTP/1.1 599 Some  Reason\twith tab \xe9\r\nContent-Length: 0\r\n\r\n"
      "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(o.responses.size(), 4u) << o.reason;
  EXPECT_EQ(o.responses[0].reason, "");
  EXPECT_EQ(o.responses[1].status, 404);
  EXPECT_EQ(o.responses[1].reason, "");
  EXPECT_EQ(o.responses[2].status, 599);
  EXPECT_EQ(o.responses[2].reason, "Some  Reason\twith tab \xe9");
  EXPECT_EQ(o.responses[3].version, Version::http1_1);
}

TEST(ResponseParser, PipelinedResponsesPauseAtEachComplete) {
  std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab";
  std::string b = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n";
  std::string c = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  Outcome o = replay_responses(a + b + c, {}, {}, PauseOn::complete);
  ASSERT_EQ(o.responses.size(), 3u) << o.reason;
  EXPECT_EQ(o.complete_pauses,
            (std::vector<size_t>{a.size(), a.size() + b.size(), a.size() + b.size() + c.size()}));
  Outcome every = replay_responses(a + b + c, {}, {}, PauseOn::every_event);
  EXPECT_EQ(every.responses, o.responses);
}

TEST(ResponseParser, HostAndExpectRulesAreForRequestsOnly) {
  Outcome o = replay_responses(
      "HTTP/1.1 200 OK\r\nHost: not a host\r\nHost: twice\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(o.responses.size(), 1u) << o.reason;
}

TEST(ResponseParser, LargeBodyIsNeverCopied) {
  std::string body(300000, 'z');
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + body;
  Bytes in = Bytes::copy(wire);
  std::vector<Bytes> chunks;
  for (size_t off = 0; off < in.size(); off += 1460)
    chunks.push_back(in.slice(off, std::min<size_t>(1460, in.size() - off)));
  Outcome o = test::run_responses(chunks);
  ASSERT_EQ(o.responses.size(), 1u) << o.reason;
  EXPECT_TRUE(o.responses[0].body == body);
  EXPECT_EQ(o.body_outside_input, 0u);
}

TEST(ResponseParser, MethodFallsBackToGetAfterEachResponse) {
  struct H : ResponseHandler {
    int bodies = 0;
    Action on_head(const ResponseHead&) override { return Action::proceed; }
    Action on_body(const Bytes&) override {
      ++bodies;
      return Action::proceed;
    }
    Action on_complete() override { return Action::proceed; }
  } h;
  ResponseParser p({}, h);
  p.set_request_method(Method::head);
  std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  FeedResult r = p.feed(Bytes::copy(wire));
  EXPECT_EQ(r.status, ParseStatus::need_more);
  EXPECT_EQ(h.bodies, 1);
  EXPECT_TRUE(p.idle());
}

// ---- malformed responses ----------------------------------------------------

struct BadResponse {
  const char* name;
  std::string wire;
  std::string reason;
  Limits limits = {};
};

TEST(ResponseParserMalformed, EachCaseFailsWith502AtEverySplit) {
  const std::string ok = "HTTP/1.1 200 OK\r\n";
  const std::string chunked = ok + "Transfer-Encoding: chunked\r\n\r\n";
  const std::vector<BadResponse> cases = {
      {"cl_and_te", ok + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       "Content-Length with Transfer-Encoding"},
      {"te_gzip", ok + "Transfer-Encoding: gzip\r\n\r\n", "unsupported transfer coding"},
      {"te_gzip_chunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n",
       "unsupported transfer coding"},
      {"te_chunked_twice", ok + "Transfer-Encoding: chunked, chunked\r\n\r\n",
       "unsupported transfer coding"},
      {"te_http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       "Transfer-Encoding in HTTP/1.0"},
      {"te_empty_element", ok + "Transfer-Encoding: ,chunked\r\n\r\n", "invalid Transfer-Encoding"},
      {"cl_conflict", ok + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
       "conflicting Content-Length values"},
      {"cl_invalid", ok + "Content-Length: 1.5\r\n\r\n", "invalid Content-Length"},
      {"status_two_digits", "HTTP/1.1 20 OK\r\n\r\n", "malformed status line"},
      {"status_four_digits", "HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"},
      {"status_letters", "HTTP/1.1 2OO OK\r\n\r\n", "malformed status line"},
      {"status_099", "HTTP/1.1 099 Low\r\n\r\n", "invalid status code"},
      {"status_600", "HTTP/1.1 600 High\r\n\r\n", "invalid status code"},
      {"version_short", "HTTP/2 200 OK\r\n\r\n", "malformed status line"},
      {"version_2", "HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version"},
      {"version_lowercase", "http/1.1 200 OK\r\n\r\n", "malformed status line"},
      {"no_sp_before_reason", "HTTP/1.1 200OK\r\n\r\n", "malformed status line"},
      {"double_sp", "HTTP/1.1  200 OK\r\n\r\n", "malformed status line"},
      {"not_http", "SSH-2.0-OpenSSH_9.2\r\n", "malformed status line"},
      {"reason_ctl", "HTTP/1.1 200 O\x01K\r\n\r\n", "invalid character in reason phrase"},
      {"obs_fold", ok + "X: a\r\n b\r\n\r\n", "obsolete line folding or leading whitespace"},
      {"space_before_colon", ok + "Content-Length : 0\r\n\r\n",
       "whitespace between field name and colon"},
      {"value_nul", ok + std::string("X: \0\r\n\r\n", 7), "invalid character in field value"},
      {"bare_lf", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare LF"},
      {"bare_cr_in_value", ok + "X: a\rb\r\n\r\n", "invalid character in field value"},
      {"chunk_size", chunked + "g\r\n", "invalid chunk size"},
      {"chunk_overflow", chunked + "fffffffffffffffff\r\n", "chunk size overflows"},
      {"chunk_no_crlf", chunked + "1\r\nab\r\n", "missing CRLF after chunk data"},
      {"chunk_ext", chunked + "1;;\r\na\r\n0\r\n\r\n", "invalid chunk extension"},
      {"cl_body_too_large", ok + "Content-Length: 8388609\r\n\r\n", "body too large"},
      {"chunked_too_large", chunked + "5\r\nhello\r\n6\r\n", "body too large",
       Limits{.max_body = 10}},
      {"until_close_too_large", ok + "\r\n" + std::string(11, 'x'), "body too large",
       Limits{.max_body = 10}},
      {"truncated_cl_body", ok + "Content-Length: 10\r\n\r\nshort",
       "connection closed before the message ended"},
      {"truncated_chunked", chunked + "5\r\nhel", "connection closed before the message ended"},
      {"truncated_trailers", chunked + "0\r\nX: 1\r\n",
       "connection closed before the message ended"},
      {"truncated_head", "HTTP/1.1 200 OK\r\nContent-Le",
       "connection closed before the message ended"},
      {"status_line_too_long", "HTTP/1.1 200 " + std::string(100, 'r') + "\r\n\r\n",
       "status line too long", Limits{.max_request_line = 50}},
      {"head_too_large", ok + "X: " + std::string(100, 'v') + "\r\n\r\n",
       "header section too large", Limits{.max_header_bytes = 100}},
      {"too_many_fields", ok + "A: 1\r\nB: 2\r\n\r\n", "too many header fields",
       Limits{.max_headers = 1}},
  };
  EXPECT_GE(cases.size(), 30u);
  for (const BadResponse& c : cases) {
    SCOPED_TRACE(c.name);
    Outcome o = replay_responses(c.wire, c.limits);
    EXPECT_TRUE(o.failed);
    EXPECT_EQ(o.status, 502);
    EXPECT_EQ(o.reason, c.reason);
  }
}

TEST(ResponseParserLimits, AtTheLimitPassesOnePastFails) {
  Limits l{.max_request_line = 20, .max_header_bytes = 64, .max_headers = 2, .max_body = 4};
  // Status line of exactly 20 bytes.
  Outcome line = replay_responses("HTTP/1.1 200 OKOKOKO\r\nContent-Length: 0\r\n\r\n", l);
  ASSERT_EQ(line.responses.size(), 1u) << line.reason;
  Outcome line_over = replay_responses("HTTP/1.1 200 OKOKOKOK\r\nContent-Length: 0\r\n\r\n", l);
  EXPECT_EQ(line_over.reason, "status line too long");
  // Body of exactly max_body, by each framing.
  Outcome body = replay_responses(
      "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
      "HTTP/1.1 200 OK\r\n\r\nabcd",
      l);
  ASSERT_EQ(body.responses.size(), 3u) << body.reason;
  Outcome body_over = replay_responses("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde", l);
  EXPECT_EQ(body_over.reason, "body too large");
  // Head of exactly 64 bytes, then 65.
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: ";
  std::string at = head + std::string(64 - head.size() - 4, 'v') + "\r\n\r\n";
  ASSERT_EQ(at.size(), 64u);
  Outcome h = replay_responses(at, l);
  ASSERT_EQ(h.responses.size(), 1u) << h.reason;
  Outcome h_over = replay_responses(head + std::string(64 - head.size() - 3, 'v') + "\r\n\r\n", l);
  EXPECT_EQ(h_over.reason, "header section too large");
}

}  // namespace
}  // namespace ember::http1
