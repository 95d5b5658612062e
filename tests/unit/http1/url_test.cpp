// Percent-encoding (S3 signing, the admin CLI, flaron's encoding_url_*).
#include <gtest/gtest.h>

#include <string>

#include "protocols/http1/http1.hpp"

namespace ember::http1 {
namespace {

TEST(Authority, HostAndOptionalPort) {
  for (const char* good :
       {"t", "api.example.com", "api.example.com:8080", "t:65535", "t:0", "t:", "127.0.0.1:80",
        "[::1]", "[::1]:443", "[2001:db8::7]", "a-b_c~d.e", "%41b", "x!$&'()*+,;="})
    EXPECT_TRUE(valid_authority(good)) << good;
  for (const char* bad : {"",
                          "api.example.com:abc",
                          "t:99999999999",
                          "t:65536",
                          "a:80:90",
                          ":80",
                          "u@a",
                          "u:p@a:80",
                          "a b",
                          "a/b",
                          "[::1",
                          "[::g]",
                          "[]",
                          "[::1]x",
                          "[::1]:8x",
                          "a[b]",
                          "a%zz",
                          "a%4",
                          "t:-1",
                          "t:+80"})
    EXPECT_FALSE(valid_authority(bad)) << bad;
}

TEST(PercentEncoding, EncodesAllButUnreserved) {
  EXPECT_EQ(percent_encode("a b", false), "a%20b");
  EXPECT_EQ(percent_encode("a+b", false), "a%2Bb");
  EXPECT_EQ(percent_encode("100%", false), "100%25");
  EXPECT_EQ(percent_encode("%2F", true), "%252F");  // a literal percent is data, not an escape
  EXPECT_EQ(percent_encode("a/b", true), "a/b");
  EXPECT_EQ(percent_encode("a/b", false), "a%2Fb");
  EXPECT_EQ(percent_encode("A-z_0.9~", false), "A-z_0.9~");
  EXPECT_EQ(percent_encode("=&?#*!'()$", false), "%3D%26%3F%23%2A%21%27%28%29%24");
  EXPECT_EQ(percent_encode("\xd0\xba", false), "%D0%BA");
  EXPECT_EQ(percent_encode(std::string_view("\0", 1), false), "%00");
}

TEST(PercentEncoding, FormDecodeTakesEscapesAndPlus) {
  std::string out;
  EXPECT_TRUE(form_decode("a%20b+c%2Fd%2f", &out));
  EXPECT_EQ(out, "a b c/d/");
  out.clear();
  EXPECT_TRUE(form_decode("", &out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(form_decode("%00", &out));
  EXPECT_EQ(out, std::string("\0", 1));
}

TEST(PercentEncoding, FormDecodeRefusesBrokenEscapes) {
  for (std::string_view bad : {"%", "%4", "a%", "%zz", "%4g", "x%%41"}) {
    std::string out;
    EXPECT_FALSE(form_decode(bad, &out)) << bad;
  }
}

TEST(PercentEncoding, RoundTrips) {
  std::string all;
  for (int c = 0; c < 256; ++c)
    all.push_back(static_cast<char>(c));
  std::string back;
  ASSERT_TRUE(form_decode(percent_encode(all), &back));
  EXPECT_EQ(back, all);
}

}  // namespace
}  // namespace ember::http1
