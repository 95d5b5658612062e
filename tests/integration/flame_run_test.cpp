// `ember flame-run`, the executor stand-in, end to end on both examples and
// on the test service.
#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"
#include "tests/integration/patterns.hpp"

namespace ember_it {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    out.push_back(line);
  return out;
}

std::optional<uint64_t> number(const std::string& s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

ProgramRun flame_run(std::vector<std::string> args, const Env& env = {}) {
  args.insert(args.begin(), {ember_cli_bin(), "flame-run"});
  return run_program(args, env);
}

// flame-run's binary framing: 4-byte big-endian length, 0xFFFFFFFF = absent.
std::string framed(const std::optional<std::string>& input) {
  uint32_t n = input ? static_cast<uint32_t>(input->size()) : 0xFFFFFFFFu;
  std::string out{static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                  static_cast<char>(n)};
  return input ? out + *input : out;
}

TEST(FlameRun, EchoTextInputs) {
  ProgramRun r =
      flame_run({"-i", "hello", "-i", "two words", "-i", "", "-i", "last", "--", echo_bin()});
  ASSERT_EQ(r.status, std::optional<int>(0)) << r.err;
  EXPECT_EQ(r.out, "hello\ntwo words\n\nlast\n");
  EXPECT_NE(r.err.find("4 task(s), 0 failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("service exited with status 0"), std::string::npos) << r.err;
}

// Binary inputs (newlines, NULs, absent, empty, 1 MiB) come back identical,
// over two sessions with the list repeated: the output is the input file
// four times over.
TEST(FlameRun, EchoBinaryRoundTrip) {
  TempDir dir;
  std::string file;
  for (int i = 0; i < 40; ++i) {
    std::optional<std::string> in;
    if (i % 7 == 1)
      in = std::string();
    else if (i % 7 == 2)
      in = std::string("line\nbreak\0nul\r\n", 16);
    else if (i == 20)
      in = pattern_bytes(1u << 20, i);
    else if (i % 7 != 0)
      in = pattern_bytes(static_cast<size_t>(i) * 97, i);
    file += framed(in);
  }
  write_file(dir.file("inputs"), file);
  ProgramRun r = flame_run({"--format", "binary", "--output", "binary", "-f", dir.file("inputs"),
                            "--sessions", "2", "-n", "2", "--", echo_bin()});
  ASSERT_EQ(r.status, std::optional<int>(0)) << r.err;
  EXPECT_EQ(r.out.size(), file.size() * 4);
  EXPECT_TRUE(r.out == file + file + file + file) << "outputs differ from inputs";
  EXPECT_NE(r.err.find("160 task(s), 0 failed, 2 session(s)"), std::string::npos) << r.err;
}

TEST(FlameRun, PiEstimatesPi) {
  ProgramRun r = flame_run({"-i", "1000000", "-i", " 1000000\n", "-i", "7", "--", pi_bin()});
  ASSERT_EQ(r.status, std::optional<int>(0)) << r.err;
  std::vector<std::string> out = lines(r.out);
  ASSERT_EQ(out.size(), 3u) << r.out;
  auto a = number(out[0]), b = number(out[1]), c = number(out[2]);
  ASSERT_TRUE(a && b && c) << r.out;
  EXPECT_LE(*c, 7u);
  EXPECT_LE(*a, 1'000'000u);
  EXPECT_LE(*b, 1'000'000u);
  // Two million samples: the estimate is within 0.01 of pi with
  // overwhelming probability (sigma ~ 0.0012); seeds are fixed anyway.
  double estimate = 4.0 * static_cast<double>(*a + *b) / 2e6;
  EXPECT_NEAR(estimate, std::numbers::pi, 0.01) << r.out;
}

TEST(FlameRun, PiBadInputFailsThatTaskAndExitsOne) {
  ProgramRun r = flame_run({"-i", "1000", "-i", "banana", "-i", "1000", "--", pi_bin()});
  ASSERT_EQ(r.status, std::optional<int>(1)) << r.err;
  std::vector<std::string> out = lines(r.out);
  ASSERT_EQ(out.size(), 3u) << r.out;
  EXPECT_TRUE(number(out[0]).has_value()) << out[0];
  EXPECT_EQ(out[1], "");  // the failed task's line
  EXPECT_TRUE(number(out[2]).has_value()) << out[2];
  EXPECT_NE(r.err.find("task 2 failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("banana"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 task(s), 1 failed"), std::string::npos) << r.err;
}

TEST(FlameRun, SessionsAndCommonDataReachTheService) {
  TempDir dir;
  const std::string events = dir.file("events");
  ProgramRun r =
      flame_run({"--sessions", "2", "--app", "my-app", "--session-id", "sid", "--common-data", "cd",
                 "-i", "x", "-i", "none", "--", test_service_bin()},
                {{"EMBER_TEST_EVENTS", events}});
  ASSERT_EQ(r.status, std::optional<int>(0)) << r.err;
  EXPECT_EQ(r.out, "x\n\nx\n\n");
  std::vector<std::string> want;
  for (const char* sid : {"sid-1", "sid-2"}) {
    want.push_back(std::string("enter\t") + sid + "\tmy-app\t6364");
    for (const char* id : {"1", "2"}) {
      want.push_back(std::string("task-begin\t") + id);
      want.push_back(std::string("task-end\t") + id);
    }
    want.push_back("leave");
  }
  EXPECT_EQ(lines(read_file(events)), want);
}

TEST(FlameRun, RefusedSessionExitsOne) {
  ProgramRun r = flame_run({"--app", "refuse", "-i", "x", "--", test_service_bin()});
  ASSERT_EQ(r.status, std::optional<int>(1)) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("refused"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ember_it
