// The UTF-8 validator: boundary code points, every kind of invalid sequence,
// every cut of each (the incremental path), fail-fast, and random input
// against a slow decoder written from RFC 3629's definition.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "protocols/websocket/utf8.hpp"

namespace ember::websocket {
namespace {

const uint8_t* u8(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

// Reference: decode each code point and check its range and form.
bool reference_valid(const std::string& s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    uint8_t b = static_cast<uint8_t>(s[i]);
    size_t len;
    uint32_t cp;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      uint8_t c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Every cut in two and every chunk size must give the whole-buffer answer.
void expect_incremental(const std::string& s, bool valid) {
  EXPECT_EQ(valid_utf8(u8(s), s.size()), valid) << testing::PrintToString(s);
  for (size_t at = 0; at <= s.size(); ++at) {
    Utf8Validator v;
    bool ok = v.feed(u8(s), at) && v.feed(u8(s) + at, s.size() - at) && v.complete();
    ASSERT_EQ(ok, valid) << testing::PrintToString(s) << " cut at " << at;
  }
  for (size_t size = 1; size < s.size(); ++size) {
    Utf8Validator v;
    bool ok = true;
    for (size_t off = 0; off < s.size() && ok; off += size)
      ok = v.feed(u8(s) + off, std::min(size, s.size() - off));
    ASSERT_EQ(ok && v.complete(), valid) << testing::PrintToString(s) << " chunks of " << size;
  }
}

TEST(WsUtf8, BoundaryCodePointsAreValid) {
  for (const char* s : {"", "a", "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
                        "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
                        "\xf3\xbf\xbf\xbf", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                        "plain ascii that is longer than sixteen bytes"}) {
    expect_incremental(s, true);
    EXPECT_TRUE(reference_valid(s));
  }
  expect_incremental(std::string("nul\0inside", 10), true);
}

TEST(WsUtf8, TrickySequencesAreInvalid) {
  for (const char* s : {
           "\x80",              // lone continuation
           "\xbf",              // lone continuation
           "\xc0\x80",          // overlong NUL
           "\xc1\xbf",          // overlong
           "\xe0\x80\x80",      // overlong 3-byte
           "\xe0\x9f\xbf",      // overlong 3-byte, top
           "\xf0\x80\x80\x80",  // overlong 4-byte
           "\xf0\x8f\xbf\xbf",  // overlong 4-byte, top
           "\xed\xa0\x80",      // surrogate D800
           "\xed\xaf\xbf",      // surrogate DBFF
           "\xed\xb0\x80",      // surrogate DC00
           "\xed\xbf\xbf",      // surrogate DFFF
           "\xf4\x90\x80\x80",  // U+110000
           "\xf5\x80\x80\x80",  // lead above F4
           "\xf7\xbf\xbf\xbf",  // U+1FFFFF
           "\xf8\x88\x80\x80\x80",
           "\xfc\x84\x80\x80\x80\x80",
           "\xfe",
           "\xff",
           "\xc2",              // truncated
           "\xe1\x80",          // truncated
           "\xf0\x9f\x98",      // truncated
           "\xc2\x41",          // bad continuation
           "\xe1\x80\x41",      // bad continuation
           "\xf0\x9f\x41\x80",  // bad continuation
           "a\xc3\x28z",
           "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
           "edited",
       }) {
    expect_incremental(s, false);
    EXPECT_FALSE(reference_valid(s)) << testing::PrintToString(std::string(s));
  }
}

TEST(WsUtf8, FailsFastAtTheFirstImpossibleByte) {
  // Autobahn 6.4.1: κόσμε then F4 90: no continuation can make it valid.
  std::string head = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4";
  Utf8Validator v;
  EXPECT_TRUE(v.feed(u8(head), head.size()));
  EXPECT_FALSE(v.complete());
  std::string next = "\x90";
  EXPECT_FALSE(v.feed(u8(next), 1));
  EXPECT_TRUE(v.failed());
  // Sticky until reset.
  std::string fine = "ok";
  EXPECT_FALSE(v.feed(u8(fine), 2));
  v.reset();
  EXPECT_TRUE(v.feed(u8(fine), 2));
  EXPECT_TRUE(v.complete());
}

TEST(WsUtf8, BadByteAtEveryPositionOfAsciiRuns) {
  // Exercises the 8-at-a-time ASCII path at every alignment.
  for (size_t len = 1; len < 40; ++len) {
    for (size_t bad = 0; bad < len; ++bad) {
      std::string s(len, 'x');
      s[bad] = '\x80';
      ASSERT_FALSE(valid_utf8(u8(s), s.size())) << len << " " << bad;
      s = std::string(bad, 'x') + "\xc3\xa9" + std::string(len - bad - 1, 'x');  // é: valid
      ASSERT_TRUE(valid_utf8(u8(s), s.size())) << len << " " << bad;
    }
  }
}

TEST(WsUtf8, RandomInputAgreesWithReference) {
  std::mt19937 rng(12345);
  // Biased toward lead and continuation bytes so multi-byte forms are common.
  const uint8_t pool[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                          0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                          0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
  int valid = 0;
  for (int iter = 0; iter < 200000; ++iter) {
    size_t n = rng() % 12;
    std::string s;
    for (size_t i = 0; i < n; ++i)
      s.push_back(static_cast<char>(pool[rng() % sizeof pool]));
    bool ref = reference_valid(s);
    valid += ref;
    ASSERT_EQ(valid_utf8(u8(s), s.size()), ref) << testing::PrintToString(s);
    size_t at = n ? rng() % (n + 1) : 0;
    Utf8Validator v;
    bool inc = v.feed(u8(s), at) && v.feed(u8(s) + at, n - at) && v.complete();
    ASSERT_EQ(inc, ref) << testing::PrintToString(s) << " cut at " << at;
  }
  EXPECT_GT(valid, 1000);  // the generator does produce valid input
}

}  // namespace
}  // namespace ember::websocket
