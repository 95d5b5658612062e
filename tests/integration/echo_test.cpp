// The echo example driven like Flame's executor drives an instance: sessions
// in a row on one connection, thousands of tasks one at a time, every output
// checked byte for byte; and the response size limit the executor imposes.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "tests/integration/harness.hpp"
#include "tests/integration/patterns.hpp"

namespace ember_it {
namespace {

constexpr size_t kMiB = 1u << 20;

// The input of task `i` in a session: mostly absent, empty, 64 B and 4 KiB,
// with a handful of 1 MiB and 8 MiB ones spread through the run.
std::optional<std::string> input_for(int i, int big_every) {
  if (big_every > 0 && i % big_every == big_every / 2)
    return pattern_bytes((i / big_every) % 3 == 2 ? 8 * kMiB : kMiB, i);
  switch (i % 4) {
    case 0:
      return std::nullopt;
    case 1:
      return std::string();
    case 2:
      return pattern_bytes(64, i);
    default:
      return pattern_bytes(4096, i);
  }
}

// Runs `count` tasks in session `sid` and checks each answer exactly.
void run_session(flame::v1::Instance::Stub& stub, const std::string& sid, int count,
                 int big_every) {
  ResultCall in = enter(stub, sid, "echo");
  ASSERT_TRUE(in.status.ok()) << status_text(in.status);
  ASSERT_EQ(in.result.return_code(), 0) << in.result.message();
  int absent = 0, empty = 0, big = 0;
  for (int i = 0; i < count; ++i) {
    std::optional<std::string> input = input_for(i, big_every);
    TaskCall c = invoke(stub, task(std::to_string(i), sid, input));
    ASSERT_TRUE(c.status.ok()) << "task " << i << ": " << status_text(c.status);
    ASSERT_EQ(c.result.return_code(), 0) << "task " << i << ": " << c.result.message();
    ASSERT_FALSE(c.result.has_message()) << "task " << i;
    // Absent stays absent; empty stays present and empty.
    ASSERT_EQ(c.result.has_output(), input.has_value()) << "task " << i;
    if (input) {
      ASSERT_EQ(c.result.output().size(), input->size()) << "task " << i;
      ASSERT_TRUE(c.result.output() == *input) << "task " << i << ": output differs from input";
    }
    absent += !input;
    empty += input && input->empty();
    big += input && input->size() >= kMiB;
  }
  ResultCall out = leave(stub);
  ASSERT_TRUE(out.status.ok()) << status_text(out.status);
  ASSERT_EQ(out.result.return_code(), 0) << out.result.message();
  // The mix really was mixed.
  if (count >= 1000) {
    EXPECT_GT(absent, count / 5);
    EXPECT_GT(empty, count / 5);
  }
  if (big_every > 0) {
    EXPECT_GE(big, count / big_every);
  }
}

// Largest output whose TaskResult encoding (tag, length varint, bytes; the
// return_code 0 is not sent) fits in `limit` bytes.
size_t largest_output_within(size_t limit) {
  auto encoded = [](size_t n) {
    size_t varint = 1;
    for (size_t v = n; v >= 0x80; v >>= 7)
      ++varint;
    return 1 + varint + n;
  };
  size_t n = limit;
  while (encoded(n) > limit)
    --n;
  return n;
}

TEST(EchoExample, TenThousandTasksThenMoreSessionsOnOneInstance) {
  // 8 MiB echoes need a raised output limit on both sides.
  auto svc = Service::echo({{"EMBER_FLAME_MAX_OUTPUT_BYTES", "16MiB"}});
  ChannelOptions co;
  co.max_receive = 16 * kMiB;
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path(), co));
  // 10,000 tasks with 9 big ones (6 x 1 MiB, 3 x 8 MiB), then two more
  // sessions, all on the same connection.
  ASSERT_NO_FATAL_FAILURE(run_session(*stub, "session-1", 10'000, 1111));
  ASSERT_NO_FATAL_FAILURE(run_session(*stub, "session-2", 500, 0));
  ASSERT_NO_FATAL_FAILURE(run_session(*stub, "session-3", 200, 97));
  EXPECT_EQ(svc->terminate(), 0);
}

TEST(EchoExample, DefaultOutputLimitIsTheExecutors4MiB) {
  auto svc = Service::echo();
  // grpc++'s default receive limit is 4 MiB, like the executor's (tonic).
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path()));
  const size_t fits = largest_output_within(4 * kMiB);

  std::string input = pattern_bytes(fits, 1);
  TaskCall ok = invoke(*stub, input);
  ASSERT_TRUE(ok.status.ok()) << status_text(ok.status);
  EXPECT_EQ(ok.result.return_code(), 0) << ok.result.message();
  EXPECT_TRUE(ok.result.output() == input);
  EXPECT_EQ(ok.result.ByteSizeLong(), 4 * kMiB);

  for (size_t size : {fits + 1, 8 * kMiB}) {
    TaskCall over = invoke(*stub, pattern_bytes(size, 2));
    ASSERT_TRUE(over.status.ok()) << size << ": " << status_text(over.status);
    EXPECT_EQ(over.result.return_code(), -1) << size;
    EXPECT_FALSE(over.result.has_output()) << size;
    EXPECT_NE(over.result.message().find("EMBER_FLAME_MAX_OUTPUT_BYTES"), std::string::npos)
        << over.result.message();
  }
  // The connection and the instance carry on.
  TaskCall after = invoke(*stub, std::string("after"));
  ASSERT_TRUE(after.status.ok()) << status_text(after.status);
  EXPECT_EQ(after.result.output(), "after");
  EXPECT_EQ(svc->terminate(), 0);
}

TEST(EchoExample, RaisedOutputLimitEchoes8MiB) {
  auto svc = Service::echo({{"EMBER_FLAME_MAX_OUTPUT_BYTES", "16MiB"}});
  ChannelOptions co;
  co.max_receive = 32 * kMiB;
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path(), co));
  std::string input = pattern_bytes(8 * kMiB, 3);
  TaskCall c = invoke(*stub, input);
  ASSERT_TRUE(c.status.ok()) << status_text(c.status);
  EXPECT_EQ(c.result.return_code(), 0) << c.result.message();
  EXPECT_TRUE(c.result.output() == input);

  // The raised limit is a limit too.
  TaskCall over = invoke(*stub, pattern_bytes(largest_output_within(16 * kMiB) + 1, 4));
  ASSERT_TRUE(over.status.ok()) << status_text(over.status);
  EXPECT_EQ(over.result.return_code(), -1);
  EXPECT_NE(over.result.message().find("EMBER_FLAME_MAX_OUTPUT_BYTES"), std::string::npos);
  EXPECT_EQ(svc->terminate(), 0);
}

}  // namespace
}  // namespace ember_it
