// Tasks that outlive something: the process (SIGTERM), the client's
// deadline (grpc-timeout), or the client itself.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <future>
#include <string>

#include "tests/integration/harness.hpp"
#include "tests/integration/raw_h2.hpp"

namespace ember_it {
namespace {

const std::string kInvoke = "/flame.v1.Instance/OnTaskInvoke";

class Lifecycle : public ::testing::TestWithParam<bool> {};

std::string mode_name(const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "Async" : "Sync";
}

// The executor releases an instance with SIGTERM to its process group; the
// task in flight finishes, its answer is delivered, and the exit status is 0.
TEST_P(Lifecycle, SigtermMidTaskAnswersThenExitsZero) {
  auto svc = Service::test_service(GetParam());
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path()));
  const std::string input = "sleep:1500:last words";
  auto call = std::async(std::launch::async, [&] { return invoke(*stub, input, "t-term"); });
  ASSERT_TRUE(svc->wait_for_event("task-begin\tt-term", scaled(10s)));
  auto signalled = std::chrono::steady_clock::now();
  svc->signal_group(SIGTERM);

  TaskCall c = call.get();
  ASSERT_TRUE(c.status.ok()) << status_text(c.status);
  EXPECT_EQ(c.result.return_code(), 0) << c.result.message();
  EXPECT_EQ(c.result.output(), input);
  std::optional<int> status = svc->wait_exit(scaled(15s));
  ASSERT_TRUE(status.has_value()) << "still running after SIGTERM and its last task";
  EXPECT_EQ(*status, 0);
  // It waited for the task rather than being killed early.
  EXPECT_GE(std::chrono::steady_clock::now() - signalled, 500ms);
  std::vector<std::string> events = svc->events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "task-end\tt-term");
}

INSTANTIATE_TEST_SUITE_P(Modes, Lifecycle, ::testing::Values(false, true), mode_name);

// While draining, a new connection is not served.
TEST(Lifecycle, DrainingRefusesNewCalls) {
  auto svc = Service::test_service(true);
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path()));
  auto call =
      std::async(std::launch::async, [&] { return invoke(*stub, std::string("sleep:1500"), "t"); });
  ASSERT_TRUE(svc->wait_for_event("task-begin\tt", scaled(10s)));
  svc->signal_group(SIGTERM);
  ASSERT_TRUE(
      wait_until([&] { return svc->log().find("draining") != std::string::npos; }, scaled(10s)));
  auto late = flame::v1::Instance::NewStub(channel(svc->socket_path()));
  TaskCall refused = invoke(*late, task("late", "s", std::string("hello")), scaled(5s));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status_text(refused.status);
  TaskCall c = call.get();
  ASSERT_TRUE(c.status.ok()) << status_text(c.status);
  EXPECT_EQ(c.result.output(), "sleep:1500");
  EXPECT_EQ(svc->wait_exit(scaled(15s)), std::optional<int>(0));
}

// grpc-timeout: the client gives up at its deadline; the late answer from the
// service's thread is dropped safely and the instance keeps serving.
TEST(Lifecycle, DeadlineExceededThenStillServing) {
  auto svc = Service::test_service(true);
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path()));
  auto start = std::chrono::steady_clock::now();
  TaskCall c = invoke(*stub, task("slow", "s", std::string("sleep:3000")), 200ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(c.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status_text(c.status);
  EXPECT_LT(took, 2000ms);

  // Served while the slow task is still running, on the same channel.
  TaskCall during = invoke(*stub, std::string("during"), "t2");
  ASSERT_TRUE(during.status.ok()) << status_text(during.status);
  EXPECT_EQ(during.result.output(), "during");

  // The server enforces grpc-timeout itself (grpc++ cancels on its own, so
  // this needs a client that does not): DEADLINE_EXCEEDED arrives in time.
  H2Client raw(svc->socket_path());
  int32_t id =
      raw.start_call(kInvoke, grpc_frame(task("raw-slow", "s", "sleep:3000").SerializeAsString()),
                     true, {{"grpc-timeout", "200m"}});
  auto raw_start = std::chrono::steady_clock::now();
  ASSERT_TRUE(raw.pump_until([&] { return raw.stream(id).closed; }, scaled(10s)));
  EXPECT_LT(std::chrono::steady_clock::now() - raw_start, 2000ms);
  EXPECT_EQ(raw.stream(id).header("grpc-status"), "4");
  EXPECT_EQ(raw.stream(id).data, "");

  // Both late answers come and are dropped; the instance still serves.
  ASSERT_TRUE(svc->wait_for_event("task-end\tslow", scaled(10s)));
  ASSERT_TRUE(svc->wait_for_event("task-end\traw-slow", scaled(10s)));
  TaskCall after = invoke(*stub, std::string("after"), "t3");
  ASSERT_TRUE(after.status.ok()) << status_text(after.status);
  EXPECT_EQ(after.result.output(), "after");
  EXPECT_EQ(svc->terminate(), 0);
}

// The client disconnects while its task runs on the service's thread; the
// answer has nowhere to go and must be dropped without harm.
TEST(Lifecycle, ClientGoneMidTask) {
  auto svc = Service::test_service(true);
  {
    H2Client raw(svc->socket_path());
    raw.start_call(kInvoke, grpc_frame(task("orphan", "s", "sleep:300").SerializeAsString()), true);
    ASSERT_FALSE(raw.pump_until([] { return false; }, 0ms));
    ASSERT_TRUE(svc->wait_for_event("task-begin\torphan", scaled(10s)));
    raw.close();
  }
  ASSERT_TRUE(svc->wait_for_event("task-end\torphan", scaled(10s)));
  EXPECT_TRUE(serves(svc->socket_path()));
  EXPECT_EQ(svc->terminate(), 0);
}

}  // namespace
}  // namespace ember_it
