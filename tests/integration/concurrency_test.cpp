// 100 calls in flight at once on one channel (grpc++'s async API). The
// executor sends one task at a time, but other clients may not; every call
// must get its own answer.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"
#include "tests/integration/patterns.hpp"

namespace ember_it {
namespace {

constexpr int kCalls = 100;

struct PendingCall {
  grpc::ClientContext ctx;
  std::string input;
  flame::v1::TaskResult result;
  grpc::Status status;
  bool done = false;
  std::unique_ptr<grpc::ClientAsyncResponseReader<flame::v1::TaskResult>> reader;
};

// Starts every call before collecting any answer; checks each output.
void run_concurrently(flame::v1::Instance::Stub& stub, const std::vector<std::string>& inputs,
                      std::chrono::milliseconds timeout) {
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<PendingCall>> calls;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto c = std::make_unique<PendingCall>();
    c->input = inputs[i];
    c->reader = stub.PrepareAsyncOnTaskInvoke(&c->ctx, task(std::to_string(i), "s", c->input), &cq);
    c->reader->StartCall();
    c->reader->Finish(&c->result, &c->status, c.get());
    calls.push_back(std::move(c));
  }
  auto deadline = std::chrono::system_clock::now() + timeout;
  for (size_t n = 0; n < calls.size(); ++n) {
    void* tag = nullptr;
    bool ok = false;
    auto r = cq.AsyncNext(&tag, &ok, deadline);
    if (r != grpc::CompletionQueue::GOT_EVENT) {
      // Cancel the stragglers so the queue can be drained and torn down.
      for (auto& c : calls)
        if (!c->done) c->ctx.TryCancel();
      ADD_FAILURE() << "only " << n << " of " << calls.size() << " calls completed in time";
      while (n < calls.size() && cq.Next(&tag, &ok))
        ++n;
      break;
    }
    ASSERT_TRUE(ok);
    static_cast<PendingCall*>(tag)->done = true;
  }
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const PendingCall& c = *calls[i];
    ASSERT_TRUE(c.status.ok()) << "call " << i << ": " << status_text(c.status);
    ASSERT_EQ(c.result.return_code(), 0) << "call " << i << ": " << c.result.message();
    ASSERT_TRUE(c.result.output() == c.input) << "call " << i << " got another call's output";
  }
}

// Most tasks in flight at once, from the service's begin/end events.
int max_in_flight(const std::vector<std::string>& events) {
  int now = 0, most = 0;
  for (const auto& e : events) {
    if (e.starts_with("task-begin")) most = std::max(most, ++now);
    if (e.starts_with("task-end")) --now;
  }
  return most;
}

TEST(Concurrency, HundredCallsOnOneChannelAsyncService) {
  auto svc = Service::test_service(true);
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path()));
  std::vector<std::string> inputs;
  for (int i = 0; i < kCalls; ++i)
    inputs.push_back("sleep:300:" + std::to_string(i));
  auto start = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(run_concurrently(*stub, inputs, scaled(30s)));
  auto took = std::chrono::steady_clock::now() - start;
  // The sleeps overlapped: one after another they would take 30 s.
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, scaled(5s));
  EXPECT_GT(max_in_flight(svc->events()), 10);
  EXPECT_EQ(svc->terminate(), 0);
}

TEST(Concurrency, HundredCallsOnOneChannelSyncService) {
  auto svc = Service::test_service(false);
  auto stub = flame::v1::Instance::NewStub(channel(svc->socket_path()));
  std::vector<std::string> inputs;
  for (int i = 0; i < kCalls; ++i) {
    if (i % 10 == 0)
      inputs.push_back("sleep:5:" + std::to_string(i));
    else
      inputs.push_back(pattern_bytes(1 + (static_cast<size_t>(i) * 7919) % (256 * 1024), i));
  }
  ASSERT_NO_FATAL_FAILURE(run_concurrently(*stub, inputs, scaled(60s)));
  // A synchronous service sees its calls strictly one at a time.
  EXPECT_EQ(max_in_flight(svc->events()), 1);
  EXPECT_EQ(svc->terminate(), 0);
}

}  // namespace
}  // namespace ember_it
