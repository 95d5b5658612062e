// The v0.6.0 instance calls the integration tests make through grpc++
// (their stubs come from proto/flame.proto; the wrapped-edition tests, built
// from proto/flame-main, make their own).
#include <atomic>

#include "tests/integration/harness.hpp"

namespace ember_it {

flame::v1::TaskContext task(const std::string& task_id, const std::string& session_id,
                            const std::optional<std::string>& input) {
  flame::v1::TaskContext t;
  t.set_task_id(task_id);
  t.set_session_id(session_id);
  if (input) t.set_input(*input);
  return t;
}

TaskCall invoke(flame::v1::Instance::Stub& stub, const flame::v1::TaskContext& request,
                std::chrono::milliseconds deadline) {
  grpc::ClientContext ctx;
  if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  TaskCall c;
  c.status = stub.OnTaskInvoke(&ctx, request, &c.result);
  return c;
}

TaskCall invoke(flame::v1::Instance::Stub& stub, const std::optional<std::string>& input,
                const std::string& task_id, const std::string& session_id) {
  return invoke(stub, task(task_id, session_id, input));
}

ResultCall enter(flame::v1::Instance::Stub& stub, const std::string& session_id,
                 const std::string& app, const std::optional<std::string>& common_data) {
  flame::v1::SessionContext req;
  req.set_session_id(session_id);
  req.mutable_application()->set_name(app);
  if (common_data) req.set_common_data(*common_data);
  grpc::ClientContext ctx;
  ResultCall c;
  c.status = stub.OnSessionEnter(&ctx, req, &c.result);
  return c;
}

ResultCall leave(flame::v1::Instance::Stub& stub) {
  grpc::ClientContext ctx;
  ResultCall c;
  c.status = stub.OnSessionLeave(&ctx, flame::v1::EmptyRequest(), &c.result);
  return c;
}

::testing::AssertionResult serves(const std::string& socket_path) {
  static std::atomic<int> n{0};
  auto stub = flame::v1::Instance::NewStub(channel(socket_path));
  std::string input = "are you there? " + std::to_string(++n);
  TaskCall c = invoke(*stub, input, "probe");
  if (!c.status.ok())
    return ::testing::AssertionFailure() << "call failed: " << status_text(c.status);
  if (c.result.return_code() != 0 || c.result.output() != input)
    return ::testing::AssertionFailure()
           << "wrong answer: return_code " << c.result.return_code() << ", output \""
           << c.result.output() << "\", message \"" << c.result.message() << "\"";
  return ::testing::AssertionSuccess();
}

}  // namespace ember_it
