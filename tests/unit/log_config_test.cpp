// Log directives (EMBER_LOG / FLAME_LOG / RUST_LOG syntax) and the small
// configuration value parsers.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "ember/config.hpp"
#include "ember/log.hpp"

namespace ember {
namespace {

using log::Level;

// Restores the suite's quiet setting and the log environment afterwards.
class LogSpec : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"EMBER_LOG", "FLAME_LOG", "RUST_LOG", "EMBER_LOG_FORMAT"})
      ::unsetenv(v);
    log::init_from_env();
    log::configure("error");
  }
};

TEST_F(LogSpec, ParseLevelNamesAnyCase) {
  struct {
    const char* text;
    Level level;
  } cases[] = {{"trace", Level::trace}, {"DEBUG", Level::debug},  {"Info", Level::info},
               {"warn", Level::warn},   {"warning", Level::warn}, {"ERROR", Level::error},
               {"off", Level::off}};
  for (auto& c : cases) {
    Level l = Level::info;
    EXPECT_TRUE(log::parse_level(c.text, &l)) << c.text;
    EXPECT_EQ(l, c.level) << c.text;
  }
  Level l;
  EXPECT_FALSE(log::parse_level("", &l));
  EXPECT_FALSE(log::parse_level("verbose", &l));
  EXPECT_FALSE(log::parse_level("info ", &l));
  EXPECT_EQ(log::level_name(Level::warn), "WARN");
}

TEST_F(LogSpec, BareLevelAppliesEverywhere) {
  ASSERT_TRUE(log::configure("warn"));
  EXPECT_FALSE(log::enabled(Level::info, "ember.grpc"));
  EXPECT_TRUE(log::enabled(Level::warn, "ember.grpc"));
  EXPECT_TRUE(log::enabled(Level::error, "anything"));
  EXPECT_EQ(log::g_max_level.load(), static_cast<uint8_t>(Level::warn));
}

TEST_F(LogSpec, TargetDirectiveCoversItsChildrenOnly) {
  ASSERT_TRUE(log::configure("info,ember.grpc=debug"));
  EXPECT_TRUE(log::enabled(Level::debug, "ember.grpc"));
  EXPECT_TRUE(log::enabled(Level::debug, "ember.grpc.server"));
  EXPECT_TRUE(log::enabled(Level::debug, "ember.grpc::server"));
  EXPECT_FALSE(log::enabled(Level::debug, "ember.grpcx"));  // a prefix, not a parent
  EXPECT_FALSE(log::enabled(Level::debug, "ember.flame"));
  EXPECT_FALSE(log::enabled(Level::debug, "ember"));
  EXPECT_TRUE(log::enabled(Level::info, "ember.flame"));
  // The fast-path gate opens down to the most verbose directive.
  EXPECT_EQ(log::g_max_level.load(), static_cast<uint8_t>(Level::debug));
}

TEST_F(LogSpec, LongestMatchingTargetWins) {
  ASSERT_TRUE(log::configure("ember.grpc=trace,ember=error"));
  EXPECT_TRUE(log::enabled(Level::trace, "ember.grpc"));
  EXPECT_FALSE(log::enabled(Level::warn, "ember.flame"));
  EXPECT_TRUE(log::enabled(Level::error, "ember.flame"));
  EXPECT_TRUE(log::enabled(Level::info, "other"));  // no default given: info
  EXPECT_FALSE(log::enabled(Level::debug, "other"));
}

TEST_F(LogSpec, TargetDirectiveBeatsBareLevelInAnyOrder) {
  ASSERT_TRUE(log::configure("ember.flame=debug,error"));
  EXPECT_TRUE(log::enabled(Level::debug, "ember.flame"));
  EXPECT_FALSE(log::enabled(Level::warn, "ember.reactor"));
}

TEST_F(LogSpec, BareTargetMeansEverythingForIt) {
  // RUST_LOG style: "ember.flame" alone enables all its levels; foreign
  // targets such as "hyper" are accepted and ignored.
  ASSERT_TRUE(log::configure("warn,ember.flame,hyper"));
  EXPECT_TRUE(log::enabled(Level::trace, "ember.flame"));
  EXPECT_FALSE(log::enabled(Level::info, "ember.reactor"));
  EXPECT_FALSE(log::enabled(Level::info, "hyper"));
}

TEST_F(LogSpec, OffSilencesEvenErrors) {
  ASSERT_TRUE(log::configure("off"));
  EXPECT_FALSE(log::enabled(Level::error, "ember"));
  EXPECT_FALSE(log::enabled(Level::off, "ember"));
}

TEST_F(LogSpec, WhitespaceAndEmptyItemsAreTolerated) {
  ASSERT_TRUE(log::configure("  warn , , ember.grpc=debug "));
  EXPECT_FALSE(log::enabled(Level::info, "ember.flame"));
  ASSERT_TRUE(log::configure(""));
  EXPECT_TRUE(log::enabled(Level::info, "ember"));  // the default is info
  EXPECT_FALSE(log::enabled(Level::debug, "ember"));
}

TEST_F(LogSpec, InvalidSpecIsRejectedAndTheOldOneKept) {
  ASSERT_TRUE(log::configure("warn"));
  EXPECT_FALSE(log::configure("ember=loud"));
  EXPECT_FALSE(log::enabled(Level::info, "ember"));
  EXPECT_TRUE(log::enabled(Level::warn, "ember"));
}

TEST_F(LogSpec, EnvironmentPrecedence) {
  ::setenv("RUST_LOG", "error", 1);
  ::setenv("FLAME_LOG", "debug", 1);
  log::init_from_env();
  EXPECT_TRUE(log::enabled(Level::debug, "ember"));  // FLAME_LOG over RUST_LOG
  ::setenv("EMBER_LOG", "warn", 1);
  log::init_from_env();
  EXPECT_FALSE(log::enabled(Level::info, "ember"));  // EMBER_LOG over both
  ::unsetenv("EMBER_LOG");
  ::unsetenv("FLAME_LOG");
  log::init_from_env();
  EXPECT_FALSE(log::enabled(Level::warn, "ember"));
  EXPECT_TRUE(log::enabled(Level::error, "ember"));
}

// Runs `fn` with stderr redirected to a temporary file; returns what it wrote.
template <class Fn>
std::string capture_stderr(Fn fn) {
  std::FILE* tmp = std::tmpfile();
  int saved = ::dup(STDERR_FILENO);
  ::dup2(::fileno(tmp), STDERR_FILENO);
  fn();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string out;
  std::rewind(tmp);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0)
    out.append(buf, n);
  std::fclose(tmp);
  return out;
}

TEST_F(LogSpec, TextLinesCarryLevelTargetAndFields) {
  ASSERT_TRUE(log::configure("info"));
  std::string out = capture_stderr([] {
    EMBER_INFO("ember.test", "hello", {"n", 42}, {"name", "two words"}, {"ok", true}, {"u", 7u});
    EMBER_DEBUG("ember.test", "hidden");
  });
  EXPECT_NE(out.find(" INFO ember.test: hello n=42 name=\"two words\" ok=true u=7\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);  // exactly one line
}

TEST_F(LogSpec, JsonLinesEscapeStrings) {
  ::setenv("EMBER_LOG_FORMAT", "json", 1);
  ::setenv("EMBER_LOG", "info", 1);
  log::init_from_env();
  std::string out = capture_stderr([] {
    EMBER_WARN("ember.test", "say \"hi\"\n", {"path", "a\\b"}, {"ctl", "\x01"}, {"d", 1.5});
  });
  EXPECT_EQ(out.rfind("{\"ts\":\"", 0), 0u) << out;
  EXPECT_NE(out.find("\"level\":\"WARN\",\"target\":\"ember.test\",\"msg\":\"say \\\"hi\\\"\\n\""),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\"path\":\"a\\\\b\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"ctl\":\"\\u0001\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"d\":1.5}"), std::string::npos) << out;
}

// ---- config values ------------------------------------------------------------

using config::parse_byte_size;
using config::parse_duration_ms;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(ConfigByteSize, UnitsAreBinaryMultiples) {
  EXPECT_EQ(parse_byte_size("65536"), 65536u);
  EXPECT_EQ(parse_byte_size("0"), 0u);
  EXPECT_EQ(parse_byte_size("12b"), 12u);
  for (const char* k : {"64k", "64K", "64kb", "64KB", "64ki", "64KiB", "64 KiB", " 64k "})
    EXPECT_EQ(parse_byte_size(k), 64u << 10) << k;
  EXPECT_EQ(parse_byte_size("16m"), 16u << 20);
  EXPECT_EQ(parse_byte_size("16MiB"), 16u << 20);
  EXPECT_EQ(parse_byte_size("1g"), 1u << 30);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
}

TEST(ConfigByteSize, JunkIsRejected) {
  for (const char* bad :
       {"", " ", "k", "-1", "+1", "1.5m", "12x", "64 k b", "1kk", "0x10", "1e3", "1t", "abc"})
    EXPECT_EQ(parse_byte_size(bad), std::nullopt) << bad;
}

TEST(ConfigByteSize, OverflowIsRejectedNotWrapped) {
  EXPECT_EQ(parse_byte_size("18446744073709551615"), kMax);
  EXPECT_EQ(parse_byte_size("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_byte_size("99999999999999999999999"), std::nullopt);
  // 2^34 GiB is 2^64 bytes: one past the largest value.
  EXPECT_EQ(parse_byte_size("17179869183g"), kMax - (1ull << 30) + 1);
  EXPECT_EQ(parse_byte_size("17179869184g"), std::nullopt);
  EXPECT_EQ(parse_byte_size("17592186044416m"), std::nullopt);
}

TEST(ConfigDuration, Units) {
  EXPECT_EQ(parse_duration_ms("250"), 250u);
  EXPECT_EQ(parse_duration_ms("250ms"), 250u);
  EXPECT_EQ(parse_duration_ms("30s"), 30'000u);
  EXPECT_EQ(parse_duration_ms("30S"), 30'000u);
  EXPECT_EQ(parse_duration_ms("2m"), 120'000u);
  EXPECT_EQ(parse_duration_ms("2min"), 120'000u);
  EXPECT_EQ(parse_duration_ms("1h"), 3'600'000u);
  EXPECT_EQ(parse_duration_ms(" 5 s "), 5'000u);
  EXPECT_EQ(parse_duration_ms("0s"), 0u);
}

TEST(ConfigDuration, JunkAndOverflowAreRejected) {
  for (const char* bad : {"", "s", "1d", "1.5s", "-1s", "10 seconds", "1sec", "ms5"})
    EXPECT_EQ(parse_duration_ms(bad), std::nullopt) << bad;
  EXPECT_EQ(parse_duration_ms("18446744073709551s"), 18'446'744'073'709'551'000u);
  EXPECT_EQ(parse_duration_ms("18446744073709552s"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("5124095576030432h"), std::nullopt);
}

TEST(ConfigEnv, UnsetAndEmptyAreAbsent) {
  ::unsetenv("EMBER_UNIT_TEST_VAR");
  EXPECT_EQ(config::env("EMBER_UNIT_TEST_VAR"), std::nullopt);
  ::setenv("EMBER_UNIT_TEST_VAR", "", 1);
  EXPECT_EQ(config::env("EMBER_UNIT_TEST_VAR"), std::nullopt);
  ::setenv("EMBER_UNIT_TEST_VAR", "value", 1);
  EXPECT_EQ(config::env("EMBER_UNIT_TEST_VAR"), "value");
  ::unsetenv("EMBER_UNIT_TEST_VAR");
}

}  // namespace
}  // namespace ember
