// http2::RequestCheck: RFC 9113 §8 request rules, one call per field.
#include "protocols/http2/request_check.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace ember::http2 {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

const Fields kGet = {{":method", "GET"},
                     {":scheme", "https"},
                     {":authority", "example.com:8443"},
                     {":path", "/a?b=c"}};

// Feeds a whole header block; the first reason, or "" when accepted.
std::string check_block(const Fields& fields, RequestCheck* out = nullptr) {
  RequestCheck c;
  for (const auto& [n, v] : fields)
    if (const char* why = c.header(n, v)) return why;
  if (const char* why = c.end_headers()) return why;
  if (out) *out = c;
  return "";
}

Fields with(Fields base, std::initializer_list<std::pair<std::string, std::string>> more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

Fields without(const std::string& name) {
  Fields f;
  for (const auto& kv : kGet)
    if (kv.first != name) f.push_back(kv);
  return f;
}

TEST(RequestCheck, AcceptsOrdinaryRequests) {
  EXPECT_EQ(check_block(kGet), "");
  EXPECT_EQ(check_block(with(kGet, {{"accept-encoding", "gzip, deflate"},
                                    {"user-agent", "curl/7.88.1"},
                                    {"te", "Trailers"},
                                    {"x-tab", "a\tb"},
                                    {"x-obs-text", "caf\xc3\xa9"},
                                    {"x-empty", ""},
                                    {"host", "example.com"},
                                    {"content-length", "0"}})),
            "");
  EXPECT_EQ(
      check_block({{":method", "OPTIONS"}, {":scheme", "http"}, {":path", "*"}, {"host", "a"}}),
      "");
  EXPECT_EQ(check_block({{":method", "CONNECT"}, {":authority", "example.com:443"}}), "");
  EXPECT_EQ(check_block(with(without(":authority"), {{"host", "example.com"}})), "")
      << "host may stand for :authority";
  RequestCheck head;
  EXPECT_EQ(
      check_block({{":method", "HEAD"}, {":scheme", "http"}, {":path", "/"}, {"host", "a"}}, &head),
      "");
  EXPECT_TRUE(head.is_head());
}

TEST(RequestCheck, RefusesBrokenPseudoHeaders) {
  EXPECT_EQ(check_block(without(":method")), "missing :method");
  EXPECT_EQ(check_block(without(":scheme")), "missing :scheme");
  EXPECT_EQ(check_block(without(":path")), "missing :path");
  EXPECT_EQ(check_block(with(kGet, {{":method", "GET"}})), "duplicate pseudo-header");
  EXPECT_EQ(check_block(with(kGet, {{":authority", "x"}})), "duplicate pseudo-header");
  for (const char* name : {":status", ":protocol", ":foo", ":", ":m", ":pathx"})
    EXPECT_EQ(check_block(with(kGet, {{name, "x"}})), "unknown pseudo-header") << name;
  EXPECT_EQ(check_block({{"x-a", "1"}, {":method", "GET"}}),
            "a pseudo-header follows a regular field");
  EXPECT_EQ(check_block({{":method", ""}}), "invalid :method");
  EXPECT_EQ(check_block({{":method", "G T"}}), "invalid :method");
  EXPECT_EQ(check_block({{":path", ""}}), "invalid :path");
  EXPECT_EQ(check_block({{":path", "foo"}}), ":path is neither absolute nor *");
  EXPECT_EQ(check_block({{":path", "/a b"}}), "invalid :path");
  EXPECT_EQ(check_block({{":scheme", "ht tp"}}), "invalid :scheme");
  EXPECT_EQ(check_block({{":authority", "a/b"}}), "invalid :authority");
  // RFC 9113 §8.3.1: no userinfo; RFC 9110 §7.2: a port is digits up to 65535.
  for (const char* bad :
       {"u@a", "u:p@a:443", "api.example.com:abc", "t:99999999999", "a:80:90", "[::1"})
    EXPECT_EQ(check_block({{":authority", bad}}), "invalid :authority") << bad;
  EXPECT_EQ(check_block(with(kGet, {{"host", "a:80:90"}})), "invalid host");
  EXPECT_EQ(
      check_block(
          {{":method", "GET"}, {":scheme", "http"}, {":authority", "[::1]:8080"}, {":path", "/"}}),
      "");
  EXPECT_EQ(check_block({{":method", "GET"}, {":scheme", "http"}, {":path", "*"}, {"host", "a"}}),
            ":path * on a method but OPTIONS");
  EXPECT_EQ(check_block({{":method", "CONNECT"}}), "CONNECT without :authority");
  EXPECT_EQ(check_block({{":method", "CONNECT"}, {":authority", "a:1"}, {":path", "/"}}),
            "CONNECT with :scheme or :path");
}

TEST(RequestCheck, RefusesBadNamesValuesAndConnectionFields) {
  EXPECT_EQ(check_block(with(kGet, {{"X-Upper", "1"}})), "invalid field name");
  EXPECT_EQ(check_block(with(kGet, {{"", "1"}})), "invalid field name");
  EXPECT_EQ(check_block(with(kGet, {{"a b", "1"}})), "invalid field name");
  EXPECT_EQ(check_block(with(kGet, {{"a:b", "1"}})), "invalid field name");
  for (const std::string& bad : std::vector<std::string>{"a\nb", "a\rb", std::string("a\0b", 3),
                                                         "a\x01", "a\x7f", " a", "a\t"})
    EXPECT_EQ(check_block(with(kGet, {{"x-a", bad}})), "invalid field value");
  for (const char* name :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
    EXPECT_EQ(check_block(with(kGet, {{name, "x"}})), "connection-specific field") << name;
  EXPECT_EQ(check_block(with(kGet, {{"te", "gzip"}})), "te other than trailers");
  EXPECT_EQ(check_block(with(kGet, {{"te", "trailers, gzip"}})), "te other than trailers");
  EXPECT_EQ(check_block(with(kGet, {{"host", "a b"}})), "invalid host");
  EXPECT_EQ(check_block(with(kGet, {{"host", ""}})), "invalid host");
  EXPECT_EQ(check_block(with(kGet, {{"host", "a"}, {"host", "a"}})), "duplicate host");
  EXPECT_EQ(check_block(without(":authority")), "neither :authority nor host");
  EXPECT_EQ(check_block(with(without(":authority"), {{":authority", ""}})), "invalid :authority");
}

// Values and paths long enough for the eight-byte fast path, with the bad
// byte at every position.
TEST(RequestCheck, ControlBytesAreFoundAtEveryOffset) {
  for (size_t len : {1u, 7u, 8u, 9u, 16u, 23u})
    for (size_t at = 0; at < len; ++at) {
      for (char bad : {'\x00', '\x01', '\x1f', '\x7f', '\n'}) {
        std::string v(len, 'v');
        v[at] = bad;
        EXPECT_FALSE(valid_field_value(v)) << len << " " << at << " " << int(bad);
        std::string path = "/" + v;
        EXPECT_EQ(check_block({{":path", path}}), "invalid :path") << len << " " << at;
      }
      std::string sp(len, 'v');
      sp[at] = ' ';
      EXPECT_EQ(valid_field_value(sp), at != 0 && at != len - 1) << len << " " << at;
      EXPECT_EQ(check_block({{":path", "/" + sp}}), "invalid :path");
      std::string high(len, 'v');
      high[at] = '\xff';
      EXPECT_TRUE(valid_field_value(high));
    }
}

// :path takes the bytes an HTTP/1.1 request-target does (VCHAR but '#'), at
// every offset of the eight-byte fast path.
TEST(RequestCheck, PathFollowsTheHttp1TargetCharacters) {
  EXPECT_EQ(check_block(with(without(":path"),
                             {{":path", "/a-b_c.d~e/%41!$&'()*+,;=:@?q=/?[]{}|\\^`\"<>"}})),
            "");
  for (size_t len : {1u, 7u, 8u, 9u, 16u, 23u})
    for (size_t at = 0; at < len; ++at)
      for (char bad : {'#', '\x80', '\xc3', '\xff'}) {
        std::string path = "/" + std::string(len, 'p');
        path[1 + at] = bad;
        EXPECT_EQ(check_block({{":path", path}}), "invalid :path")
            << len << " " << at << " " << int(bad);
      }
  EXPECT_EQ(check_block({{":path", "/echo/a#b"}}), "invalid :path");
  EXPECT_EQ(check_block({{":path", "/caf\xc3\xa9"}}), "invalid :path");
}

TEST(RequestCheck, ContentLengthMustBeOneNumberAndMatchTheData) {
  for (const char* bad : {"", "+1", "-1", "1a", " 1", "0x10", "99999999999999999999"})
    EXPECT_NE(check_block(with(kGet, {{"content-length", bad}})), "") << bad;
  EXPECT_EQ(check_block(with(kGet, {{"content-length", "1"}, {"content-length", "1"}})),
            "duplicate content-length");

  RequestCheck c;
  ASSERT_EQ(check_block(with(kGet, {{"content-length", "10"}}), &c), "");
  EXPECT_EQ(c.content_length(), 10);
  EXPECT_EQ(c.data(4), nullptr);
  EXPECT_STREQ(c.end_stream(), "less DATA than content-length");
  EXPECT_EQ(c.data(6), nullptr);
  EXPECT_EQ(c.end_stream(), nullptr);
  EXPECT_STREQ(c.data(1), "more DATA than content-length");

  RequestCheck none;
  ASSERT_EQ(check_block(kGet, &none), "");
  EXPECT_EQ(none.content_length(), -1);
  EXPECT_EQ(none.data(1u << 20), nullptr);
  EXPECT_EQ(none.end_stream(), nullptr);
}

TEST(RequestCheck, TrailersCarryNoPseudoHeadersOrConnectionFields) {
  RequestCheck c;
  ASSERT_EQ(check_block(kGet, &c), "");
  EXPECT_EQ(c.trailer("x-checksum", "abc"), nullptr);
  EXPECT_STREQ(c.trailer(":path", "/x"), "pseudo-header in trailers");
  EXPECT_STREQ(c.trailer("Upper", "1"), "invalid field name");
  EXPECT_STREQ(c.trailer("x-a", "a\nb"), "invalid field value");
  EXPECT_STREQ(c.trailer("transfer-encoding", "chunked"), "connection-specific field");
  c.reset();
  EXPECT_STREQ(c.end_headers(), "missing :method");
}

}  // namespace
}  // namespace ember::http2
