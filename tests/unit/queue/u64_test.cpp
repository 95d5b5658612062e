// The u64 body parser: valid and invalid bodies, each replayed split at every
// boundary and chunk size with the same result.
#include <gtest/gtest.h>

#include <string>

#include "handlers/queue/u64.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::queue {
namespace {

U64Result feed_chunks(const test::Split& split) {
  U64Reader r;
  for (const Bytes& b : split.chunks)
    r.feed(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  return r.finish();
}

// Whole-body parse, then every split of the body through the reader: all
// must agree field by field.
void expect_everywhere(std::string_view body, const U64Result& want) {
  auto check = [&](const U64Result& got, const std::string& how) {
    EXPECT_EQ(got.error, want.error) << how << " body=" << testing::PrintToString(body);
    EXPECT_EQ(got.value, want.value) << how;
    EXPECT_EQ(got.offset, want.offset) << how;
    EXPECT_EQ(got.byte, want.byte) << how;
  };
  check(parse_u64(body), "parse_u64");
  if (body.size() > 64) return;  // the splits are quadratic; long bodies are checked whole
  for (const auto& split : test::all_splits(Bytes::copy(body)))
    check(feed_chunks(split), split.name);
}

U64Result ok(std::uint64_t v) {
  U64Result r;
  r.value = v;
  return r;
}

U64Result bad(U64Error e, std::size_t offset, std::uint8_t byte = 0) {
  U64Result r;
  r.error = e;
  r.offset = offset;
  r.byte = byte;
  return r;
}

TEST(U64, ValidBodies) {
  expect_everywhere("0", ok(0));
  expect_everywhere("7", ok(7));
  expect_everywhere("007", ok(7));
  expect_everywhere("42", ok(42));
  expect_everywhere(" 42 ", ok(42));
  expect_everywhere("\t\r\n\v\f 123 \n\r\t\v\f", ok(123));
  expect_everywhere("18446744073709551615", ok(18446744073709551615ull));
  expect_everywhere("  18446744073709551615\n", ok(18446744073709551615ull));
  expect_everywhere("00000000000000000001", ok(1));  // 20 digits
  expect_everywhere("10000000000000000000", ok(10000000000000000000ull));
  expect_everywhere("1844674407370955161", ok(1844674407370955161ull));
}

TEST(U64, InvalidBodiesNameTheFirstOffendingByte) {
  expect_everywhere("", bad(U64Error::Empty, 0));
  expect_everywhere("   ", bad(U64Error::Empty, 3));
  expect_everywhere("\n", bad(U64Error::Empty, 1));
  expect_everywhere("-1", bad(U64Error::NotDigit, 0, '-'));
  expect_everywhere("+1", bad(U64Error::NotDigit, 0, '+'));
  expect_everywhere(" -0", bad(U64Error::NotDigit, 1, '-'));
  expect_everywhere("1_000", bad(U64Error::NotDigit, 1, '_'));
  expect_everywhere("1,000", bad(U64Error::NotDigit, 1, ','));
  expect_everywhere("1.0", bad(U64Error::NotDigit, 1, '.'));
  expect_everywhere("1e3", bad(U64Error::NotDigit, 1, 'e'));
  expect_everywhere("0x10", bad(U64Error::NotDigit, 1, 'x'));
  expect_everywhere("12 34", bad(U64Error::NotDigit, 3, '3'));
  expect_everywhere("12\n\n4", bad(U64Error::NotDigit, 4, '4'));
  expect_everywhere("\"1\"", bad(U64Error::NotDigit, 0, '"'));
  expect_everywhere("abc", bad(U64Error::NotDigit, 0, 'a'));
  expect_everywhere(std::string_view("1\0", 2), bad(U64Error::NotDigit, 1, 0));
  expect_everywhere(
      "\xc2\xa0"
      "1",
      bad(U64Error::NotDigit, 0, 0xc2));                                // NBSP is not ASCII space
  expect_everywhere("\xef\xbc\x91", bad(U64Error::NotDigit, 0, 0xef));  // fullwidth 1
  expect_everywhere("18446744073709551616", bad(U64Error::Overflow, 19, '6'));
  expect_everywhere("99999999999999999999", bad(U64Error::Overflow, 19, '9'));
  expect_everywhere("184467440737095516150", bad(U64Error::TooManyDigits, 20, '0'));
  expect_everywhere("000000000000000000000", bad(U64Error::TooManyDigits, 20, '0'));
  expect_everywhere(" 000000000000000000007", bad(U64Error::TooManyDigits, 21, '7'));
}

TEST(U64, BodySizeLimitAtAndPastTheLimit) {
  std::string at_limit(kMaxBodySize - 1, ' ');
  at_limit += '5';
  ASSERT_EQ(at_limit.size(), kMaxBodySize);
  expect_everywhere(at_limit, ok(5));
  std::string spaces_at_limit = "5" + std::string(kMaxBodySize - 1, '\n');
  expect_everywhere(spaces_at_limit, ok(5));

  std::string past = at_limit + " ";
  expect_everywhere(past, bad(U64Error::TooLong, kMaxBodySize));
  // An earlier error wins over the size.
  std::string early = "x" + std::string(kMaxBodySize, ' ');
  expect_everywhere(early, bad(U64Error::NotDigit, 0, 'x'));
}

TEST(U64, TwentyMegabytesAreRejectedAfterReadingOnlyTheLimit) {
  std::string spaces(20u << 20, ' ');
  EXPECT_EQ(parse_u64(spaces).error, U64Error::TooLong);
  std::string digits(20u << 20, '1');
  auto r = parse_u64(digits);
  EXPECT_EQ(r.error, U64Error::TooManyDigits);
  EXPECT_EQ(r.offset, 20u);

  // Fed in 1 MiB pieces: the reader stops caring after the limit.
  U64Reader reader;
  std::string_view all(spaces);
  bool more = true;
  for (std::size_t off = 0; off < all.size(); off += 1u << 20)
    more = reader.feed(all.substr(off, 1u << 20)) && more;
  EXPECT_FALSE(more);
  EXPECT_EQ(reader.finish().error, U64Error::TooLong);
}

TEST(U64, ReasonsAreHumanAndPrecise) {
  EXPECT_EQ(parse_u64("-1").reason(), "byte 0x2d '-' at offset 0 is not a decimal digit");
  EXPECT_EQ(parse_u64("1 2").reason(), "byte 0x32 '2' at offset 2 is not a decimal digit");
  EXPECT_EQ(parse_u64("1\x01").reason(), "byte 0x01 at offset 1 is not a decimal digit");
  EXPECT_EQ(parse_u64("18446744073709551616").reason(),
            "number above 18446744073709551615 (at offset 19)");
  EXPECT_EQ(parse_u64("000000000000000000000").reason(), "more than 20 digits (21st at offset 20)");
  EXPECT_EQ(parse_u64(" ").reason(), "no digits (empty or only whitespace)");
  EXPECT_EQ(parse_u64(std::string(5000, ' ')).reason(), "body longer than 4096 bytes");
  EXPECT_EQ(parse_u64("1").reason(), "");
}

TEST(U64, FeedReportsFailureAndIgnoresLaterPieces) {
  U64Reader r;
  EXPECT_TRUE(r.feed(" 1"));
  EXPECT_FALSE(r.feed("x"));
  EXPECT_FALSE(r.feed("2"));
  EXPECT_EQ(r.finish().error, U64Error::NotDigit);
  EXPECT_EQ(r.finish().offset, 2u);
  r.reset();
  EXPECT_TRUE(r.feed("12"));
  EXPECT_TRUE(r.feed(""));
  EXPECT_TRUE(r.feed("3 "));
  EXPECT_EQ(r.finish().value, 123u);
}

TEST(U64, EveryValidValueRoundTrips) {
  for (std::uint64_t v :
       {0ull, 1ull, 9ull, 10ull, 4294967295ull, 4294967296ull, 9223372036854775807ull,
        9223372036854775808ull, 18446744073709551614ull, 18446744073709551615ull}) {
    auto r = parse_u64(std::to_string(v));
    ASSERT_TRUE(r.ok()) << v;
    EXPECT_EQ(r.value, v);
  }
}

}  // namespace
}  // namespace ember::queue
