// gRPC status helpers: grpc-message percent encoding and grpc-timeout.
#include "protocols/grpc/status.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace ember::grpc {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(PercentEncoding, EveryByteValueRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b)
    all.push_back(static_cast<char>(b));
  std::string encoded = percent_encode(all);
  for (unsigned char c : encoded)
    EXPECT_TRUE(c >= 0x20 && c <= 0x7E) << "unencoded byte " << int(c);
  EXPECT_EQ(percent_decode(encoded), all);
  for (int b = 0; b < 256; ++b) {
    std::string one(1, static_cast<char>(b));
    EXPECT_EQ(percent_decode(percent_encode(one)), one) << b;
  }
}

TEST(PercentEncoding, PrintableAsciiExceptPercentIsKept) {
  EXPECT_EQ(percent_encode("Hello, world! ~{}"), "Hello, world! ~{}");
  EXPECT_EQ(percent_encode("100%"), "100%25");
  EXPECT_EQ(percent_encode("a\nb"), "a%0Ab");
  EXPECT_EQ(percent_encode("\x7f"), "%7F");
  EXPECT_EQ(percent_encode("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(percent_encode(""), "");
}

TEST(PercentEncoding, DecodeAcceptsBothHexCases) {
  EXPECT_EQ(percent_decode("%c3%A9"), "\xc3\xa9");
  EXPECT_EQ(percent_decode("a%20b"), "a b");
}

TEST(PercentEncoding, MalformedEscapesAreKeptAsIs) {
  EXPECT_EQ(percent_decode("%"), "%");
  EXPECT_EQ(percent_decode("abc%"), "abc%");
  EXPECT_EQ(percent_decode("%4"), "%4");
  EXPECT_EQ(percent_decode("x%4"), "x%4");
  EXPECT_EQ(percent_decode("%G1"), "%G1");
  EXPECT_EQ(percent_decode("%4G"), "%4G");
  EXPECT_EQ(percent_decode("%%41"), "%A");
  EXPECT_EQ(percent_decode("100% sure"), "100% sure");
}

TEST(GrpcTimeout, EveryUnitWithOneDigit) {
  EXPECT_EQ(parse_timeout("1n"), 1u);
  EXPECT_EQ(parse_timeout("1u"), 1'000u);
  EXPECT_EQ(parse_timeout("1m"), 1'000'000u);
  EXPECT_EQ(parse_timeout("1S"), 1'000'000'000u);
  EXPECT_EQ(parse_timeout("1M"), 60'000'000'000u);
  EXPECT_EQ(parse_timeout("1H"), 3'600'000'000'000u);
  EXPECT_EQ(parse_timeout("0n"), 0u);
}

TEST(GrpcTimeout, EightDigitsAccepted) {
  EXPECT_EQ(parse_timeout("99999999n"), 99'999'999u);
  EXPECT_EQ(parse_timeout("99999999u"), 99'999'999'000u);
  EXPECT_EQ(parse_timeout("99999999m"), 99'999'999'000'000u);
  EXPECT_EQ(parse_timeout("99999999S"), 99'999'999'000'000'000u);
  EXPECT_EQ(parse_timeout("99999999M"), 5'999'999'940'000'000'000u);
  EXPECT_EQ(parse_timeout("00000001S"), 1'000'000'000u);
}

TEST(GrpcTimeout, NineDigitsRejected) {
  EXPECT_EQ(parse_timeout("100000000n"), std::nullopt);
  EXPECT_EQ(parse_timeout("000000001S"), std::nullopt);
}

TEST(GrpcTimeout, EmptyOrBadUnitRejected) {
  EXPECT_EQ(parse_timeout(""), std::nullopt);
  EXPECT_EQ(parse_timeout("S"), std::nullopt);
  EXPECT_EQ(parse_timeout("5"), std::nullopt);
  EXPECT_EQ(parse_timeout("10"), std::nullopt);
  EXPECT_EQ(parse_timeout("1s"), std::nullopt);  // units are case-sensitive
  EXPECT_EQ(parse_timeout("1h"), std::nullopt);
  EXPECT_EQ(parse_timeout("1x"), std::nullopt);
  EXPECT_EQ(parse_timeout("-1S"), std::nullopt);
  EXPECT_EQ(parse_timeout("+1S"), std::nullopt);
  EXPECT_EQ(parse_timeout(" 1S"), std::nullopt);
  EXPECT_EQ(parse_timeout("1 S"), std::nullopt);
  EXPECT_EQ(parse_timeout("1.5S"), std::nullopt);
  EXPECT_EQ(parse_timeout("1SS"), std::nullopt);
}

TEST(GrpcTimeout, OverflowSaturates) {
  // 99,999,999 hours is about 3.6e20 ns, beyond 64 bits.
  EXPECT_EQ(parse_timeout("99999999H"), kMax);
  EXPECT_EQ(parse_timeout("5124096H"), kMax);
  // The largest whole number of hours that fits is exact.
  EXPECT_EQ(parse_timeout("5124095H"), 5'124'095ull * 3'600'000'000'000ull);
}

TEST(GrpcTimeout, FormatPicksTheShortestUnitRoundingUp) {
  EXPECT_EQ(format_timeout(0), "0n");
  EXPECT_EQ(format_timeout(1), "1n");
  EXPECT_EQ(format_timeout(99'999'999), "99999999n");
  EXPECT_EQ(format_timeout(100'000'000), "100000u");
  EXPECT_EQ(format_timeout(100'000'001), "100001u");
  EXPECT_EQ(format_timeout(30'000'000'000ull), "30000000u");
  EXPECT_EQ(format_timeout(kMax), "5124096H");
}

TEST(GrpcTimeout, FormatRoundTripsThroughParse) {
  uint64_t values[] = {0,
                       1,
                       999,
                       1'000,
                       1'001,
                       99'999'999,
                       100'000'000,
                       123'456'789'012ull,
                       60'000'000'000ull,
                       3'600'000'000'000ull * 7,
                       kMax / 3,
                       kMax};
  for (uint64_t v : values) {
    std::string text = format_timeout(v);
    SCOPED_TRACE(text);
    ASSERT_LE(text.size(), 9u);
    auto back = parse_timeout(text);
    ASSERT_TRUE(back.has_value());
    // Never shorter than asked, and longer by less than one unit.
    EXPECT_GE(*back, v);
    uint64_t unit = *parse_timeout(std::string("1") + text.back());
    if (*back != kMax) {
      EXPECT_LT(*back - v, unit);
    }
  }
}

TEST(GrpcStatus, HttpStatusMapping) {
  EXPECT_EQ(status_from_http(400), StatusCode::internal);
  EXPECT_EQ(status_from_http(401), StatusCode::unauthenticated);
  EXPECT_EQ(status_from_http(403), StatusCode::permission_denied);
  EXPECT_EQ(status_from_http(404), StatusCode::unimplemented);
  EXPECT_EQ(status_from_http(429), StatusCode::unavailable);
  EXPECT_EQ(status_from_http(502), StatusCode::unavailable);
  EXPECT_EQ(status_from_http(503), StatusCode::unavailable);
  EXPECT_EQ(status_from_http(504), StatusCode::unavailable);
  EXPECT_EQ(status_from_http(500), StatusCode::unknown);
}

TEST(GrpcStatus, Names) {
  EXPECT_EQ(status_name(StatusCode::ok), "OK");
  EXPECT_EQ(status_name(StatusCode::resource_exhausted), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(status_name(StatusCode::unauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(status_name(static_cast<StatusCode>(17)), "UNKNOWN");
  EXPECT_EQ(status_name(static_cast<StatusCode>(-1)), "UNKNOWN");
}

}  // namespace
}  // namespace ember::grpc
