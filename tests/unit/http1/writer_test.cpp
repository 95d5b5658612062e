// HTTP/1.1 writers: exact bytes, bodies referenced (the iovec points at the
// caller's Bytes), refusal of values that would break framing, and round
// trips through the parsers.
#include "protocols/http1/writer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocols/http1/request_parser.hpp"
#include "tests/unit/http1/http1_test_util.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::http1 {
namespace {

using ember::test::flatten;

constexpr int64_t kDate = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
const std::string kDateLine = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

// The iovec whose base is `p`, or -1.
int iov_at(const IoChain& c, const void* p) {
  for (size_t i = 0; i < c.iov_count(); ++i)
    if (c.iov()[i].iov_base == p) return static_cast<int>(i);
  return -1;
}

TEST(HttpDate, FormatsImfFixdate) {
  EXPECT_EQ(http_date(kDate), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(http_date(4102444799), "Thu, 31 Dec 2099 23:59:59 GMT");
  std::string_view now = http_date_now();
  EXPECT_EQ(now.size(), 29u);
  EXPECT_EQ(now.substr(25), " GMT");
}

TEST(HttpDate, CachedPerSecond) {
  std::string_view a = http_date(1000);
  std::string_view b = http_date(1000);
  EXPECT_EQ(a.data(), b.data());
  EXPECT_EQ(http_date(1001), "Thu, 01 Jan 1970 00:16:41 GMT");
}

TEST(ReasonPhrase, Table) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(101), "Switching Protocols");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(299), "");
}

TEST(ResponseWriter, ContentLengthBodyByReference) {
  IoChain out;
  ResponseWriter w(out);
  std::string text(ResponseWriter::kCopyBelow + 1, 'b');
  Bytes body = Bytes::copy(text);
  Field fields[] = {{"Content-Type", "text/plain"}, {"X-Trace", "a\tb"}};
  ASSERT_TRUE(w.write({.status = 200, .fields = fields, .date = kDate}, body));
  EXPECT_EQ(flatten(out), "HTTP/1.1 200 OK\r\n" + kDateLine +
                              "Content-Type: text/plain\r\nX-Trace: a\tb\r\n"
                              "Content-Length: 257\r\n\r\n" +
                              text);
  // Head in one cork iovec, the body as its own iovec pointing at the Bytes.
  ASSERT_EQ(out.iov_count(), 2u);
  EXPECT_EQ(out.iov()[1].iov_base, body.data());
  EXPECT_EQ(out.iov()[1].iov_len, body.size());
  EXPECT_FALSE(w.closing());
}

TEST(ResponseWriter, SmallBodyIsCopiedBesideTheHead) {
  IoChain out;
  ResponseWriter w(out);
  std::string text = "hello world";
  Bytes body = Bytes::copy(text);
  ASSERT_TRUE(w.write({.status = 200, .date = kDate}, body));
  // One iovec: the caller may reuse the body's memory once write() returns.
  ASSERT_EQ(out.iov_count(), 1u);
  body = Bytes();
  EXPECT_EQ(flatten(out),
            "HTTP/1.1 200 OK\r\n" + kDateLine + "Content-Length: 11\r\n\r\nhello world");
}

TEST(ResponseWriter, EmptyBodySaysContentLengthZero) {
  IoChain out;
  ResponseWriter w(out);
  ASSERT_TRUE(w.write({.status = 404, .date = kDate}, Bytes()));
  EXPECT_EQ(flatten(out), "HTTP/1.1 404 Not Found\r\n" + kDateLine + "Content-Length: 0\r\n\r\n");
}

TEST(ResponseWriter, ConnectionHeaders) {
  IoChain out;
  ResponseWriter w(out);
  ASSERT_TRUE(w.write({.status = 200, .keep_alive = false, .date = kDate}, Bytes()));
  EXPECT_EQ(flatten(out),
            "HTTP/1.1 200 OK\r\n" + kDateLine + "Content-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(w.closing());
  out.clear();
  ASSERT_TRUE(
      w.write({.status = 200, .request_version = Version::http1_0, .date = kDate}, Bytes()));
  EXPECT_EQ(flatten(out), "HTTP/1.1 200 OK\r\n" + kDateLine +
                              "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_FALSE(w.closing());
}

TEST(ResponseWriter, HeadRequestGetsFramingButNoBody) {
  IoChain out;
  ResponseWriter w(out);
  Bytes body = Bytes::copy("12345");
  ASSERT_TRUE(w.write({.status = 200, .head_request = true, .date = kDate}, body));
  EXPECT_EQ(flatten(out), "HTTP/1.1 200 OK\r\n" + kDateLine + "Content-Length: 5\r\n\r\n");
  EXPECT_EQ(iov_at(out, body.data()), -1);
}

TEST(ResponseWriter, NoContentStatusesGetNoFramingNorBody) {
  for (int status : {204, 304}) {
    SCOPED_TRACE(status);
    IoChain out;
    ResponseWriter w(out);
    ASSERT_TRUE(w.write({.status = status, .date = kDate}, Bytes::copy("ignored")));
    EXPECT_EQ(flatten(out), "HTTP/1.1 " + std::to_string(status) + " " +
                                std::string(reason_phrase(status)) + "\r\n" + kDateLine + "\r\n");
  }
}

TEST(ResponseWriter, SwitchingProtocols) {
  IoChain out;
  ResponseWriter w(out);
  Field f[] = {{"Upgrade", "websocket"},
               {"Connection", "Upgrade"},
               {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}};
  ASSERT_TRUE(w.begin({.status = 101, .fields = f}, std::nullopt));
  ASSERT_TRUE(w.end());
  EXPECT_EQ(flatten(out),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
}

TEST(ResponseWriter, DropsTheFieldsItWritesItself) {
  IoChain out;
  ResponseWriter w(out);
  Field f[] = {{"content-length", "3"},
               {"Transfer-Encoding", "chunked"},
               {"DATE", "Mon, 01 Jan 1990 00:00:00 GMT"},
               {"Connection", "close"},
               {"keep-alive", "timeout=1"},
               {"X-Kept", "yes"},
               {"Content-Type", "text/plain"}};
  ASSERT_TRUE(w.write({.status = 200, .fields = f, .date = kDate}, Bytes::copy("hello")));
  EXPECT_EQ(flatten(out), "HTTP/1.1 200 OK\r\n" + kDateLine +
                              "X-Kept: yes\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 5\r\n\r\nhello");
  EXPECT_FALSE(w.closing());  // the caller's "Connection: close" did not end the connection
}

TEST(ResponseWriter, AFinalAnswerWithUpgradeSaysSoInItsConnectionField) {
  IoChain out;
  ResponseWriter w(out);
  Field f[] = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
  ASSERT_TRUE(w.write({.status = 426, .fields = f, .date = kDate}, Bytes()));
  EXPECT_EQ(flatten(out), "HTTP/1.1 426 Upgrade Required\r\n" + kDateLine +
                              "Upgrade: websocket\r\nContent-Length: 0\r\n"
                              "Connection: upgrade\r\n\r\n");
  out.clear();
  ASSERT_TRUE(w.write({.status = 426, .fields = f, .keep_alive = false, .date = kDate}, Bytes()));
  EXPECT_EQ(flatten(out), "HTTP/1.1 426 Upgrade Required\r\n" + kDateLine +
                              "Upgrade: websocket\r\nContent-Length: 0\r\n"
                              "Connection: close, upgrade\r\n\r\n");
}

TEST(ResponseWriter, CustomReasonAndUnknownStatus) {
  IoChain out;
  ResponseWriter w(out);
  ASSERT_TRUE(w.write({.status = 299, .date = kDate}, Bytes()));
  ASSERT_TRUE(w.write({.status = 200, .reason = "Fine", .date = kDate}, Bytes()));
  EXPECT_EQ(flatten(out), "HTTP/1.1 299 \r\n" + kDateLine + "Content-Length: 0\r\n\r\n" +
                              "HTTP/1.1 200 Fine\r\n" + kDateLine + "Content-Length: 0\r\n\r\n");
}

TEST(ResponseWriter, ChunkedBodyPiecesByReference) {
  IoChain out;
  ResponseWriter w(out);
  Bytes a = Bytes::copy("hello");
  Bytes b = Bytes::copy(std::string(300, 'x'));
  ASSERT_TRUE(w.begin({.status = 200, .date = kDate}, std::nullopt));
  ASSERT_TRUE(w.body(a));
  ASSERT_TRUE(w.body(Bytes()));  // skipped: an empty chunk would end the body
  ASSERT_TRUE(w.body(b));
  Field trailers[] = {{"X-Checksum", "42"}};
  ASSERT_TRUE(w.end(trailers));
  EXPECT_EQ(flatten(out), "HTTP/1.1 200 OK\r\n" + kDateLine +
                              "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n12c\r\n" +
                              std::string(300, 'x') + "\r\n0\r\nX-Checksum: 42\r\n\r\n");
  EXPECT_NE(iov_at(out, a.data()), -1);
  EXPECT_NE(iov_at(out, b.data()), -1);
}

TEST(ResponseWriter, ChunkedForHttp10PeerIsUnframedThenClose) {
  IoChain out;
  ResponseWriter w(out);
  ASSERT_TRUE(
      w.begin({.status = 200, .request_version = Version::http1_0, .date = kDate}, std::nullopt));
  EXPECT_TRUE(w.closing());
  ASSERT_TRUE(w.body(Bytes::copy("raw")));
  ASSERT_TRUE(w.end());
  EXPECT_EQ(flatten(out), "HTTP/1.1 200 OK\r\n" + kDateLine + "Connection: close\r\n\r\nraw");
}

TEST(ResponseWriter, StreamedContentLengthIsEnforced) {
  IoChain out;
  ResponseWriter w(out);
  ASSERT_TRUE(w.begin({.status = 200, .date = kDate}, 5));
  EXPECT_TRUE(w.body(Bytes::copy("abc")));
  EXPECT_FALSE(w.body(Bytes::copy("def")));  // 6 > 5: refused, nothing written
  EXPECT_FALSE(w.end());                     // 3 of 5 written
  EXPECT_EQ(flatten(out), "HTTP/1.1 200 OK\r\n" + kDateLine + "Content-Length: 5\r\n\r\nabc");
  out.clear();
  ASSERT_TRUE(w.begin({.status = 200, .date = kDate}, 5));
  EXPECT_TRUE(w.body(Bytes::copy("abc")));
  EXPECT_TRUE(w.body(Bytes::copy("de")));
  EXPECT_TRUE(w.end());
}

TEST(ResponseWriter, RefusesValuesThatWouldSplitTheResponse) {
  IoChain out;
  ResponseWriter w(out);
  Field crlf[] = {{"Location", "/x\r\nSet-Cookie: evil=1"}};
  Field lf[] = {{"Location", "/x\nSet-Cookie: evil=1"}};
  Field nul[] = {{"X", std::string_view("a\0b", 3)}};
  Field bad_name[] = {{"X Y", "1"}};
  Field empty_name[] = {{"", "1"}};
  EXPECT_FALSE(w.write({.status = 302, .fields = crlf, .date = kDate}, Bytes()));
  EXPECT_FALSE(w.write({.status = 302, .fields = lf, .date = kDate}, Bytes()));
  EXPECT_FALSE(w.write({.status = 200, .fields = nul, .date = kDate}, Bytes()));
  EXPECT_FALSE(w.write({.status = 200, .fields = bad_name, .date = kDate}, Bytes()));
  EXPECT_FALSE(w.write({.status = 200, .fields = empty_name, .date = kDate}, Bytes()));
  EXPECT_FALSE(w.write({.status = 200, .reason = "O\r\nK", .date = kDate}, Bytes()));
  EXPECT_FALSE(w.write({.status = 99, .date = kDate}, Bytes()));
  EXPECT_FALSE(w.write({.status = 600, .date = kDate}, Bytes()));
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(w.begin({.status = 200, .date = kDate}, std::nullopt));
  size_t before = out.size();
  Field bad_trailer[] = {{"T", "1\r\n2"}};
  EXPECT_FALSE(w.end(bad_trailer));
  EXPECT_EQ(out.size(), before);
}

TEST(WriteError, CannedResponse) {
  IoChain out;
  write_error(out, 400, "bare LF", kDate);
  EXPECT_EQ(flatten(out), "HTTP/1.1 400 Bad Request\r\n" + kDateLine +
                              "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n"
                              "Connection: close\r\n\r\n400 Bad Request: bare LF\n");
  out.clear();
  write_error(out, 431, "", kDate);
  std::string body = "431 Request Header Fields Too Large\n";
  EXPECT_EQ(flatten(out), "HTTP/1.1 431 Request Header Fields Too Large\r\n" + kDateLine +
                              "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

TEST(WriteError, ParsesBackWithItsStatus) {
  for (int status : {400, 413, 414, 431, 501, 505}) {
    IoChain out;
    write_error(out, status, "why");
    test::Outcome o = test::run_responses({Bytes::copy(flatten(out))});
    ASSERT_EQ(o.responses.size(), 1u) << o.reason;
    EXPECT_EQ(o.responses[0].status, status);
    EXPECT_FALSE(o.responses[0].keep_alive);
    EXPECT_EQ(o.responses[0].body,
              std::to_string(status) + " " + std::string(reason_phrase(status)) + ": why\n");
  }
}

TEST(WriteContinue, ExactBytes) {
  IoChain out;
  write_continue(out);
  EXPECT_EQ(flatten(out), "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(WriteRequest, GetWithoutBody) {
  IoChain out;
  Field f[] = {{"Accept", "*/*"}, {"User-Agent", "ember"}};
  ASSERT_TRUE(
      write_request(out, "GET", "/config?v=2", "cfg.internal:8080", f, BodyFraming::no_body()));
  EXPECT_EQ(flatten(out),
            "GET /config?v=2 HTTP/1.1\r\nHost: cfg.internal:8080\r\nAccept: */*\r\n"
            "User-Agent: ember\r\n\r\n");
}

TEST(WriteRequest, ContentLengthBodyByReference) {
  IoChain out;
  Bytes body = Bytes::copy(std::string(1000, 'b'));
  ASSERT_TRUE(write_request(out, "PUT", "/bucket/key", "s3.example", {},
                            BodyFraming::content_length(body.size()), /*keep_alive=*/false));
  out.append(body);
  EXPECT_EQ(flatten(out),
            "PUT /bucket/key HTTP/1.1\r\nHost: s3.example\r\nContent-Length: 1000\r\n"
            "Connection: close\r\n\r\n" +
                std::string(1000, 'b'));
  EXPECT_EQ(iov_at(out, body.data()), 1);
}

TEST(WriteRequest, ChunkedUploadRoundTripsThroughTheRequestParser) {
  IoChain out;
  ASSERT_TRUE(write_request(out, "POST", "/upload", "h", {}, BodyFraming::chunked()));
  std::vector<Bytes> pieces = {Bytes::copy("first "), Bytes::copy(std::string(5000, 's')),
                               Bytes::copy(" last")};
  for (const Bytes& p : pieces)
    write_chunk(out, p);
  write_chunk(out, Bytes());
  Field t[] = {{"X-Sum", "7"}};
  ASSERT_TRUE(write_last_chunk(out, t));
  for (const Bytes& p : pieces)
    EXPECT_NE(iov_at(out, p.data()), -1);
  test::Outcome o = test::run_requests({Bytes::copy(flatten(out))});
  ASSERT_EQ(o.requests.size(), 1u) << o.reason;
  EXPECT_EQ(o.requests[0].body, "first " + std::string(5000, 's') + " last");
  EXPECT_EQ(o.requests[0].trailers, (test::Fields{{"X-Sum", "7"}}));
  EXPECT_TRUE(o.requests[0].complete);
}

TEST(WriteRequest, RefusesInvalidParts) {
  IoChain out;
  Field bad[] = {{"X", "a\r\nb"}};
  EXPECT_FALSE(write_request(out, "G T", "/", "h", {}, BodyFraming::no_body()));
  EXPECT_FALSE(write_request(out, "", "/", "h", {}, BodyFraming::no_body()));
  EXPECT_FALSE(write_request(out, "GET", "/a b", "h", {}, BodyFraming::no_body()));
  EXPECT_FALSE(write_request(out, "GET", "", "h", {}, BodyFraming::no_body()));
  EXPECT_FALSE(write_request(out, "GET", "/\r\n", "h", {}, BodyFraming::no_body()));
  EXPECT_FALSE(write_request(out, "GET", "/", "h\r\nX: y", {}, BodyFraming::no_body()));
  EXPECT_FALSE(write_request(out, "GET", "/", "h", bad, BodyFraming::no_body()));
  EXPECT_TRUE(out.empty());
}

TEST(ResponseWriter, RoundTripsThroughTheResponseParser) {
  IoChain out;
  ResponseWriter w(out);
  Field f[] = {{"ETag", "\"v1\""}};
  ASSERT_TRUE(w.write({.status = 200, .fields = f}, Bytes::copy("one")));
  ASSERT_TRUE(w.begin({.status = 200}, std::nullopt));
  ASSERT_TRUE(w.body(Bytes::copy("tw")));
  ASSERT_TRUE(w.body(Bytes::copy("o")));
  ASSERT_TRUE(w.end());
  ASSERT_TRUE(w.write({.status = 204}, Bytes()));
  ASSERT_TRUE(w.write({.status = 200, .head_request = true}, Bytes::copy("four")));
  ASSERT_TRUE(w.write({.status = 200, .keep_alive = false}, Bytes::copy("five")));
  test::Outcome o = test::replay_responses(
      flatten(out), {}, {Method::get, Method::get, Method::get, Method::head, Method::get});
  ASSERT_EQ(o.responses.size(), 5u) << o.reason;
  EXPECT_EQ(o.responses[0].body, "one");
  EXPECT_EQ(o.responses[1].body, "two");
  EXPECT_TRUE(o.responses[1].chunked);
  EXPECT_EQ(o.responses[2].status, 204);
  EXPECT_EQ(o.responses[3].content_length, 4u);
  EXPECT_EQ(o.responses[3].body, "");
  EXPECT_EQ(o.responses[4].body, "five");
  EXPECT_FALSE(o.responses[4].keep_alive);
}

}  // namespace
}  // namespace ember::http1
