// http1::RequestParser on hostile and malformed input, and at its limits:
// each case asserts the exact status and reason, replayed at every split
// (the error must not depend on how the bytes arrive).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocols/http1/request_parser.hpp"
#include "tests/unit/http1/http1_test_util.hpp"

namespace ember::http1 {
namespace {

using test::Outcome;
using test::replay_requests;

struct Bad {
  const char* name;
  std::string wire;
  int status;
  std::string reason;
};

const std::string kGet = "GET / HTTP/1.1\r\nHost: h\r\n";
const std::string kPost = "POST / HTTP/1.1\r\nHost: h\r\n";
const std::string kChunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

std::string S(const char* s, size_t n) {
  return std::string(s, n);
}

const std::vector<Bad>& bad_requests() {
  static const std::vector<Bad> cases = {
      // Framing conflicts (request smuggling).
      {"cl_and_te", kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "Content-Length with Transfer-Encoding"},
      {"te_and_cl", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400,
       "Content-Length with Transfer-Encoding"},
      {"te_and_cl_zero", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400,
       "Content-Length with Transfer-Encoding"},
      {"cl_differing_lines", kPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
       "conflicting Content-Length values"},
      {"cl_differing_list", kPost + "Content-Length: 5, 6\r\n\r\n", 400,
       "conflicting Content-Length values"},
      {"cl_letter", kPost + "Content-Length: 5a\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_negative", kPost + "Content-Length: -5\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_plus", kPost + "Content-Length: +5\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_empty", kPost + "Content-Length:\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_hex", kPost + "Content-Length: 0x5\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_trailing_comma", kPost + "Content-Length: 5,\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_inner_space", kPost + "Content-Length: 1 2\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_overflow", kPost + "Content-Length: 18446744073709551616\r\n\r\n", 400,
       "Content-Length overflows"},
      {"cl_overflow_long", kPost + "Content-Length: 99999999999999999999999\r\n\r\n", 400,
       "Content-Length overflows"},
      {"te_gzip", kPost + "Transfer-Encoding: gzip\r\n\r\n", 400,
       "Transfer-Encoding does not end in chunked"},
      {"te_chunked_gzip", kPost + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400,
       "Transfer-Encoding does not end in chunked"},
      {"te_identity", kPost + "Transfer-Encoding: identity\r\n\r\n", 400,
       "Transfer-Encoding does not end in chunked"},
      {"te_chunked_param", kPost + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400,
       "Transfer-Encoding does not end in chunked"},
      {"te_gzip_chunked", kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501,
       "unsupported transfer coding"},
      {"te_two_lines_gzip_chunked",
       kPost + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501,
       "unsupported transfer coding"},
      {"te_chunked_twice", kPost + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400,
       "chunked applied more than once"},
      {"te_chunked_two_lines",
       kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "chunked applied more than once"},
      {"te_empty_element", kPost + "Transfer-Encoding: , chunked\r\n\r\n", 400,
       "invalid Transfer-Encoding"},
      {"te_empty", kPost + "Transfer-Encoding:\r\n\r\n", 400, "invalid Transfer-Encoding"},
      {"te_garbage", kPost + "Transfer-Encoding: \"chunked\"\r\n\r\n", 400,
       "invalid Transfer-Encoding"},
      {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       "Transfer-Encoding in HTTP/1.0"},
      // Field syntax.
      {"obs_fold", kGet + "X-A: one\r\n two\r\n\r\n", 400,
       "obsolete line folding or leading whitespace"},
      {"obs_fold_tab", kGet + "X-A: one\r\n\ttwo\r\n\r\n", 400,
       "obsolete line folding or leading whitespace"},
      {"space_before_first_field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400,
       "obsolete line folding or leading whitespace"},
      {"whitespace_only_line", kGet + "   \r\n\r\n", 400,
       "obsolete line folding or leading whitespace"},
      {"space_before_colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400,
       "whitespace between field name and colon"},
      {"tab_before_colon", kGet + "X-A\t: 1\r\n\r\n", 400,
       "whitespace between field name and colon"},
      {"name_paren", kGet + "X(A): 1\r\n\r\n", 400, "invalid character in field name"},
      {"name_slash", kGet + "X/A: 1\r\n\r\n", 400, "invalid character in field name"},
      {"name_nul", kGet + S("X\0A: 1\r\n\r\n", 9), 400, "invalid character in field name"},
      {"name_high", kGet + "X\xc3\xa9: 1\r\n\r\n", 400, "invalid character in field name"},
      {"empty_name", kGet + ": 1\r\n\r\n", 400, "empty field name"},
      {"no_colon", kGet + "JustAName\r\n\r\n", 400, "field line without colon"},
      {"value_nul", kGet + S("X-A: a\0b\r\n\r\n", 12), 400, "invalid character in field value"},
      {"value_del", kGet + "X-A: a\x7f\r\n\r\n", 400, "invalid character in field value"},
      {"value_esc", kGet + "X-A: \x1b[31m\r\n\r\n", 400, "invalid character in field value"},
      {"value_bare_cr", kGet + "X-A: a\rb\r\n\r\n", 400, "invalid character in field value"},
      {"value_cr_cr_lf", kGet + "X-A: a\r\r\n\r\n", 400, "invalid character in field value"},
      {"bare_lf_field", "GET / HTTP/1.1\r\nHost: h\n\r\n", 400, "bare LF"},
      {"bare_lf_request_line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bare LF"},
      {"bare_lf_end_of_head", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400, "bare LF"},
      {"bare_lf_before_request", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bare LF"},
      {"bare_cr_before_request", "\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bare CR"},
      {"bare_cr_in_request_line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid character in request-target"},
      // Request line.
      {"method_paren", "GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "invalid character in method"},
      {"method_nul", S("\0GET / HTTP/1.1\r\n\r\n", 19), 400, "invalid character in method"},
      {"tls_client_hello", S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400,
       "invalid character in method"},
      {"http2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "unsupported HTTP version"},
      {"leading_space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "malformed request line"},
      {"double_space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "malformed request line"},
      {"no_version", "GET /\r\nHost: h\r\n\r\n", 400, "malformed request line"},
      {"method_only", "GET\r\n\r\n", 400, "malformed request line"},
      {"trailing_space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400, "malformed HTTP version"},
      {"version_lowercase", "GET / http/1.1\r\nHost: h\r\n\r\n", 400, "malformed HTTP version"},
      {"version_two_digit_minor", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400,
       "malformed HTTP version"},
      {"version_no_dot", "GET / HTTP/11\r\nHost: h\r\n\r\n", 400, "malformed HTTP version"},
      {"version_2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "unsupported HTTP version"},
      {"version_09", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505, "unsupported HTTP version"},
      {"version_3", "GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505, "unsupported HTTP version"},
      {"target_ctl", "GET /a\x01z HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid character in request-target"},
      {"target_tab", "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid character in request-target"},
      {"target_fragment", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid character in request-target"},
      {"target_utf8", "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid character in request-target"},
      {"target_del", "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid character in request-target"},
      {"target_relative", "GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid request-target"},
      {"target_no_scheme_slashes", "GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid request-target"},
      {"absolute_userinfo", "GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid authority in request-target"},
      {"absolute_empty_host", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid authority in request-target"},
      {"asterisk_with_get", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "asterisk-form target outside OPTIONS"},
      {"connect_origin_form", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid CONNECT target"},
      {"connect_no_port", "CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid CONNECT target"},
      {"connect_bad_port", "CONNECT example.com:44x HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid CONNECT target"},
      {"connect_empty_port", "CONNECT example.com: HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid CONNECT target"},
      // Host.
      {"missing_host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing Host"},
      {"missing_host_absolute", "GET http://h/ HTTP/1.1\r\n\r\n", 400, "missing Host"},
      {"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "multiple Host fields"},
      {"two_hosts_http10", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400,
       "multiple Host fields"},
      {"host_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"},
      {"host_slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"},
      {"host_userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "invalid Host"},
      {"host_port_letters", "GET / HTTP/1.1\r\nHost: api.example.com:abc\r\n\r\n", 400,
       "invalid Host"},
      {"host_port_huge", "GET / HTTP/1.1\r\nHost: t:99999999999\r\n\r\n", 400, "invalid Host"},
      {"host_port_65536", "GET / HTTP/1.1\r\nHost: t:65536\r\n\r\n", 400, "invalid Host"},
      {"host_two_ports", "GET / HTTP/1.1\r\nHost: a:80:90\r\n\r\n", 400, "invalid Host"},
      {"host_port_only", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400, "invalid Host"},
      {"host_bad_ipv6", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400, "invalid Host"},
      {"host_unclosed_ipv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "invalid Host"},
      {"host_bracket_in_name", "GET / HTTP/1.1\r\nHost: a[b]\r\n\r\n", 400, "invalid Host"},
      {"host_bad_escape", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400, "invalid Host"},
      // Chunked framing.
      {"chunk_size_not_hex", kChunked + "zz\r\n", 400, "invalid chunk size"},
      {"chunk_size_empty", kChunked + "\r\n", 400, "invalid chunk size"},
      {"chunk_size_negative", kChunked + "-5\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk size"},
      {"chunk_size_0x", kChunked + "0x5\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk size"},
      {"chunk_size_trailing_space", kChunked + "5 \r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk size"},
      {"chunk_size_two_numbers", kChunked + "5 6\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk size"},
      {"chunk_size_leading_space", kChunked + " 5\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk size"},
      {"chunk_size_overflow", kChunked + "10000000000000000\r\n", 400, "chunk size overflows"},
      {"chunk_ext_empty", kChunked + "5;\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk extension"},
      {"chunk_ext_no_name", kChunked + "5;=x\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"chunk_ext_no_value", kChunked + "5;a=\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"chunk_ext_two_words", kChunked + "5;a=b c\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"chunk_ext_trailing_ws", kChunked + "5;a \r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"chunk_ext_unterminated_quote", kChunked + "5;a=\"x\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"chunk_ext_ctl_in_quote", kChunked + "5;a=\"x\x01\"\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"chunk_ext_bad_char", kChunked + "5;a@b\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"chunk_data_no_crlf", kChunked + "5\r\nhelloX\r\n0\r\n\r\n", 400,
       "missing CRLF after chunk data"},
      {"chunk_data_lf_only", kChunked + "5\r\nhello\n0\r\n\r\n", 400,
       "missing CRLF after chunk data"},
      {"chunk_data_cr_only", kChunked + "5\r\nhello\r0\r\n\r\n", 400,
       "missing CRLF after chunk data"},
      {"chunk_data_too_long", kChunked + "3\r\nhello\r\n0\r\n\r\n", 400,
       "missing CRLF after chunk data"},
      {"chunk_line_bare_lf", kChunked + "5\nhello\r\n0\r\n\r\n", 400, "bare LF in chunk line"},
      {"chunk_line_bare_cr", kChunked + "5\rhello\r\n0\r\n\r\n", 400, "bare CR in chunk line"},
      {"last_chunk_bare_lf", kChunked + "0\n\r\n", 400, "bare LF in chunk line"},
      {"trailer_obs_fold", kChunked + "0\r\nX: a\r\n b\r\n\r\n", 400,
       "obsolete line folding or leading whitespace"},
      {"trailer_bad_name", kChunked + "0\r\nX Y: a\r\n\r\n", 400,
       "whitespace between field name and colon"},
      {"trailer_bare_lf", kChunked + "0\r\nX: a\n\r\n", 400, "bare LF"},
      {"trailer_value_ctl", kChunked + "0\r\nX: a\x02\r\n\r\n", 400,
       "invalid character in field value"},
      // Size limits at their defaults.
      {"cl_over_max_body", kPost + "Content-Length: 8388609\r\n\r\n", 413, "body too large"},
      {"chunk_over_max_body", kChunked + "800001\r\n", 413, "body too large"},
      {"target_too_long", "GET /" + std::string(8200, 'a') + " HTTP/1.1\r\n", 414,
       "request-target too long"},
      {"method_too_long", std::string(8200, 'G'), 501, "method too long"},
      {"head_too_large", kGet + "X: " + std::string(33000, 'v') + "\r\n\r\n", 431,
       "header section too large"},
      // Errors after a valid request: the first one is still delivered.
      {"second_request_bad", kGet + "\r\n" + "GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", 400,
       "multiple Host fields"},
  };
  return cases;
}

TEST(RequestParserMalformed, EachCaseFailsWithItsStatusAtEverySplit) {
  EXPECT_GE(bad_requests().size(), 50u);
  for (const Bad& c : bad_requests()) {
    SCOPED_TRACE(c.name);
    Outcome o = replay_requests(c.wire);
    EXPECT_TRUE(o.failed);
    EXPECT_EQ(o.status, c.status);
    EXPECT_EQ(o.reason, c.reason);
  }
}

TEST(RequestParserMalformed, FirstRequestOfABadPipelineIsDelivered) {
  Outcome o = replay_requests(kGet + "\r\n" + "GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 1u);
  EXPECT_TRUE(o.requests[0].complete);
  EXPECT_EQ(o.status, 400);
}

TEST(RequestParserMalformed, StrayProtocolIsRefusedWithoutALineEnd) {
  // A TLS ClientHello on the plain port fails on its first byte.
  struct H : RequestHandler {
    Action on_head(const RequestHead&) override { return Action::proceed; }
    Action on_body(const Bytes&) override { return Action::proceed; }
    Action on_complete() override { return Action::proceed; }
  } h;
  RequestParser p({}, h);
  FeedResult r = p.feed(Bytes::copy(std::string("\x16\x03\x01", 3)));
  EXPECT_EQ(r.status, ParseStatus::error);
  EXPECT_EQ(p.error().status, 400);
}

// ---- limits: at the limit passes, one past fails ----------------------------

TEST(RequestParserLimits, RequestLine) {
  Limits l{.max_request_line = 40};
  std::string base = "GET / HTTP/1.1";  // 14 bytes
  auto line = [&](size_t len) {
    return "GET /" + std::string(len - base.size(), 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  };
  Outcome ok = replay_requests(line(40), l);
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  Outcome over = replay_requests(line(41), l);
  EXPECT_EQ(over.status, 414);
  EXPECT_EQ(over.reason, "request-target too long");

  Outcome method_ok =
      replay_requests(std::string(40 - 11, 'M') + " / HTTP/1.1\r\nHost: h\r\n\r\n", l);
  ASSERT_EQ(method_ok.requests.size(), 1u) << method_ok.reason;
  Outcome method_over = replay_requests(std::string(41, 'M') + " / HTTP/1.1\r\n", l);
  EXPECT_EQ(method_over.status, 501);
  EXPECT_EQ(method_over.reason, "method too long");

  Outcome junk = replay_requests("GET / HTTP/1.1" + std::string(30, 'x') + "\r\n", l);
  EXPECT_EQ(junk.status, 400);
  EXPECT_EQ(junk.reason, "request line too long");
}

TEST(RequestParserLimits, RequestLineAtDefault8KiB) {
  auto line = [&](size_t len) {
    return "GET /" + std::string(len - 14, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  };
  Outcome ok = replay_requests(line(8192));
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  Outcome over = replay_requests(line(8193));
  EXPECT_EQ(over.status, 414);
}

TEST(RequestParserLimits, HeaderBytes) {
  Limits l{.max_header_bytes = 64};
  auto head = [&](size_t total) {
    std::string start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    return start + std::string(total - start.size() - 4, 'v') + "\r\n\r\n";
  };
  ASSERT_EQ(head(64).size(), 64u);
  Outcome ok = replay_requests(head(64), l);
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  Outcome over = replay_requests(head(65), l);
  EXPECT_EQ(over.status, 431);
  EXPECT_EQ(over.reason, "header section too large");
  // The start line is capped by the head size (64 - 4), whatever
  // max_request_line says.
  Outcome line = replay_requests("GET /" + std::string(60, 'a') + " HTTP/1.1\r\n\r\n", l);
  EXPECT_EQ(line.status, 414);
}

TEST(RequestParserLimits, HeaderBytesAtDefault32KiB) {
  auto head = [&](size_t total) {
    std::string start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    return start + std::string(total - start.size() - 4, 'v') + "\r\n\r\n";
  };
  Outcome ok = replay_requests(head(32768));
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  Outcome over = replay_requests(head(32769));
  EXPECT_EQ(over.status, 431);
}

TEST(RequestParserLimits, FieldCount) {
  Limits l{.max_headers = 3};
  Outcome ok = replay_requests("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", l);
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  Outcome over = replay_requests("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", l);
  EXPECT_EQ(over.status, 431);
  EXPECT_EQ(over.reason, "too many header fields");
}

TEST(RequestParserLimits, FieldCountAtDefault100) {
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 1; i < 100; ++i)
    head += "X-" + std::to_string(i) + ": v\r\n";
  Outcome ok = replay_requests(head + "\r\n");
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  EXPECT_EQ(ok.requests[0].fields.size(), 100u);
  Outcome over = replay_requests(head + "X-100: v\r\n\r\n");
  EXPECT_EQ(over.status, 431);
}

TEST(RequestParserLimits, ContentLengthBody) {
  Limits l{.max_body = 10};
  Outcome ok = replay_requests(kPost + "Content-Length: 10\r\n\r\n0123456789", l);
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  EXPECT_EQ(ok.requests[0].body, "0123456789");
  Outcome over = replay_requests(kPost + "Content-Length: 11\r\n\r\n0123456789a", l);
  EXPECT_EQ(over.status, 413);
  EXPECT_TRUE(over.requests.empty());  // refused from the head alone
}

TEST(RequestParserLimits, ChunkedBody) {
  Limits l{.max_body = 10};
  Outcome ok = replay_requests(kChunked + "4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n", l);
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  EXPECT_EQ(ok.requests[0].body, "0123456789");
  Outcome over = replay_requests(kChunked + "4\r\n0123\r\n7\r\n456789a\r\n0\r\n\r\n", l);
  EXPECT_EQ(over.status, 413);
  ASSERT_EQ(over.requests.size(), 1u);
  EXPECT_EQ(over.requests[0].body, "0123");  // refused at the size line
}

TEST(RequestParserLimits, ChunkLine) {
  Limits l{.max_chunk_line = 16};
  std::string at = "5;" + std::string(14, 'e');  // 16 bytes
  Outcome ok = replay_requests(kChunked + at + "\r\nhello\r\n0\r\n\r\n", l);
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  Outcome over = replay_requests(kChunked + at + "e\r\nhello\r\n0\r\n\r\n", l);
  EXPECT_EQ(over.status, 400);
  EXPECT_EQ(over.reason, "chunk line too long");
}

TEST(RequestParserLimits, TrailerSection) {
  Limits l{.max_header_bytes = 64};
  auto trailers = [&](size_t total) { return "X: " + std::string(total - 7, 't') + "\r\n\r\n"; };
  ASSERT_EQ(trailers(64).size(), 64u);
  Outcome ok = replay_requests(kChunked + "0\r\n" + trailers(64), l);
  ASSERT_EQ(ok.requests.size(), 1u) << ok.reason;
  Outcome over = replay_requests(kChunked + "0\r\n" + trailers(65), l);
  EXPECT_EQ(over.status, 431);
  EXPECT_EQ(over.reason, "trailer section too large");

  Limits n{.max_headers = 2};
  Outcome count_ok = replay_requests(kChunked + "0\r\nA: 1\r\nB: 2\r\n\r\n", n);
  ASSERT_EQ(count_ok.requests.size(), 1u) << count_ok.reason;
  EXPECT_EQ(count_ok.requests[0].trailers.size(), 2u);
  Outcome count_over = replay_requests(kChunked + "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", n);
  EXPECT_EQ(count_over.status, 431);
  EXPECT_EQ(count_over.reason, "too many trailer fields");
}

}  // namespace
}  // namespace ember::http1
