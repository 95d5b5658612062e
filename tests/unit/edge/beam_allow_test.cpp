// beam.allow: which URLs a flare may fetch (handlers/flare/waiting.cpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "handlers/flare/edge.hpp"

namespace ember::flare::detail {
namespace {

struct Origin {
  bool ok;
  std::string host;
  uint16_t port;
  bool https;
};

Origin origin(std::string_view url) {
  Origin o{false, "", 0, false};
  o.ok = beam_origin(url, &o.host, &o.port, &o.https);
  return o;
}

TEST(BeamOrigin, ReadsHostAndPort) {
  Origin a = origin("http://API.Example.com/x?y#z");
  EXPECT_TRUE(a.ok);
  EXPECT_EQ(a.host, "api.example.com");
  EXPECT_EQ(a.port, 80);
  EXPECT_FALSE(a.https);
  Origin b = origin("https://example.com:8443");
  EXPECT_TRUE(b.ok && b.https);
  EXPECT_EQ(b.port, 8443);
  Origin c = origin("http://[::1]:9000/p");
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.host, "[::1]");
  EXPECT_EQ(c.port, 9000);
}

TEST(BeamOrigin, RefusesWhatIsNotAPlainHttpUrl) {
  for (std::string_view bad : {"ftp://x/", "//x/", "http://", "http:///p", "http://user@host/",
                               "http://a:b@host/", "http://host:0/", "http://host:65536/",
                               "http://host:8x/", "http://[::1/", "http://[::1]x/", "x"})
    EXPECT_FALSE(origin(bad).ok) << bad;
}

TEST(BeamAllowed, MatchesHostsPortsAndWildcards) {
  std::vector<std::string> allow = {"api.example.com", "db.internal:5984", "*.example.org",
                                    "[::1]:9000"};
  EXPECT_TRUE(beam_allowed(allow, "api.example.com", 80));
  EXPECT_TRUE(beam_allowed(allow, "api.example.com", 8443));  // a bare host: any port
  EXPECT_TRUE(beam_allowed(allow, "db.internal", 5984));
  EXPECT_FALSE(beam_allowed(allow, "db.internal", 5985));
  EXPECT_TRUE(beam_allowed(allow, "a.example.org", 443));
  EXPECT_TRUE(beam_allowed(allow, "a.b.example.org", 443));
  EXPECT_FALSE(beam_allowed(allow, "example.org", 443));  // not the apex
  EXPECT_FALSE(beam_allowed(allow, "evilexample.org", 443));
  EXPECT_FALSE(beam_allowed(allow, "api.example.com.evil.net", 80));
  EXPECT_TRUE(beam_allowed(allow, "[::1]", 9000));
  EXPECT_FALSE(beam_allowed(allow, "[::1]", 9001));
  EXPECT_FALSE(beam_allowed({}, "api.example.com", 80));
  EXPECT_TRUE(beam_allowed({"*"}, "anything", 1));
}

}  // namespace
}  // namespace ember::flare::detail
