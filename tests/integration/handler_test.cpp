// What a service's answers look like on the wire: success with or without
// output, failures, thrown exceptions, NotFound formatting, and the session
// calls. Each test runs against the synchronous and the asynchronous form.
#include <gtest/gtest.h>

#include <string>

#include "tests/integration/harness.hpp"
#include "tests/integration/patterns.hpp"

namespace ember_it {
namespace {

class Handler : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    svc_ = Service::test_service(GetParam());
    stub_ = flame::v1::Instance::NewStub(channel(svc_->socket_path()));
  }
  void TearDown() override {
    stub_.reset();
    if (svc_) {
      EXPECT_EQ(svc_->terminate(), 0);
    }
  }
  // The events minus task lines.
  std::vector<std::string> session_events() const {
    std::vector<std::string> out;
    for (auto& e : svc_->events())
      if (!e.starts_with("task-")) out.push_back(e);
    return out;
  }

  std::unique_ptr<Service> svc_;
  std::unique_ptr<flame::v1::Instance::Stub> stub_;
};

std::string mode_name(const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "Async" : "Sync";
}

TEST_P(Handler, OutputAbsentEmptyAndBig) {
  TaskCall none = invoke(*stub_, std::string("none"));
  ASSERT_TRUE(none.status.ok()) << status_text(none.status);
  EXPECT_EQ(none.result.return_code(), 0);
  EXPECT_FALSE(none.result.has_output());
  EXPECT_FALSE(none.result.has_message());

  TaskCall empty = invoke(*stub_, std::string("empty"));
  ASSERT_TRUE(empty.status.ok()) << status_text(empty.status);
  EXPECT_EQ(empty.result.return_code(), 0);
  EXPECT_TRUE(empty.result.has_output());
  EXPECT_EQ(empty.result.output(), "");

  TaskCall absent_in = invoke(*stub_, std::nullopt);
  ASSERT_TRUE(absent_in.status.ok()) << status_text(absent_in.status);
  EXPECT_EQ(absent_in.result.return_code(), 0);
  EXPECT_FALSE(absent_in.result.has_output());

  for (size_t n : {size_t{1}, size_t{100'000}, size_t{3u << 20}}) {
    TaskCall big = invoke(*stub_, "big:" + std::to_string(n));
    ASSERT_TRUE(big.status.ok()) << status_text(big.status);
    EXPECT_EQ(big.result.return_code(), 0) << big.result.message();
    EXPECT_TRUE(big.result.output() == pattern_bytes(n, 0)) << n;
  }
}

TEST_P(Handler, FailureIsReturnCodeMinusOneWithTheMessage) {
  TaskCall c = invoke(*stub_, std::string("fail:disk on fire"));
  ASSERT_TRUE(c.status.ok()) << status_text(c.status);  // a failed task is not a failed call
  EXPECT_EQ(c.result.return_code(), -1);
  EXPECT_EQ(c.result.message(), "disk on fire");
  EXPECT_FALSE(c.result.has_output());

  // Non-ASCII text survives the trip.
  TaskCall utf8 = invoke(*stub_, std::string("fail:na\xc3\xafve \xe2\x9c\x93"));
  ASSERT_TRUE(utf8.status.ok()) << status_text(utf8.status);
  EXPECT_EQ(utf8.result.message(), "na\xc3\xafve \xe2\x9c\x93");
}

TEST_P(Handler, NotFoundIsFormattedAsTheReferenceSdk) {
  TaskCall c = invoke(*stub_, std::string("notfound:model.bin"));
  ASSERT_TRUE(c.status.ok()) << status_text(c.status);
  EXPECT_EQ(c.result.return_code(), -1);
  EXPECT_EQ(c.result.message(), "'model.bin' not found");
  EXPECT_FALSE(c.result.has_output());
}

TEST_P(Handler, ThrownExceptionFailsTheTaskWithItsText) {
  TaskCall c = invoke(*stub_, std::string("throw:bad input row 7"));
  ASSERT_TRUE(c.status.ok()) << status_text(c.status);
  EXPECT_EQ(c.result.return_code(), -1);
  EXPECT_NE(c.result.message().find("bad input row 7"), std::string::npos) << c.result.message();
  EXPECT_FALSE(c.result.has_output());
  // The instance carries on.
  TaskCall next = invoke(*stub_, std::string("still here"));
  ASSERT_TRUE(next.status.ok()) << status_text(next.status);
  EXPECT_EQ(next.result.output(), "still here");
}

TEST_P(Handler, SessionsReachTheServiceInOrder) {
  const std::string common("\x00\x01 common\xff", 10);
  ResultCall e1 = enter(*stub_, "sess-1", "app-one", common);
  ASSERT_TRUE(e1.status.ok()) << status_text(e1.status);
  EXPECT_EQ(e1.result.return_code(), 0);
  EXPECT_FALSE(e1.result.has_message());
  EXPECT_EQ(invoke(*stub_, std::string("x"), "t1", "sess-1").result.output(), "x");
  ResultCall l1 = leave(*stub_);
  ASSERT_TRUE(l1.status.ok()) << status_text(l1.status);
  EXPECT_EQ(l1.result.return_code(), 0);

  ResultCall e2 = enter(*stub_, "sess-2", "app-two");  // no common data
  ASSERT_TRUE(e2.status.ok()) << status_text(e2.status);
  EXPECT_EQ(e2.result.return_code(), 0);
  ResultCall e3 = enter(*stub_, "sess-3", "app-two", std::string());  // empty common data
  ASSERT_TRUE(e3.status.ok()) << status_text(e3.status);
  ASSERT_TRUE(leave(*stub_).status.ok());

  std::vector<std::string> want = {"enter\tsess-1\tapp-one\t000120636f6d6d6f6eff", "leave",
                                   "enter\tsess-2\tapp-two\t-", "enter\tsess-3\tapp-two\t",
                                   "leave"};
  EXPECT_EQ(session_events(), want);
}

TEST_P(Handler, RefusedSessionIsReturnCodeMinusOne) {
  ResultCall r = enter(*stub_, "sess-r", "refuse");
  ASSERT_TRUE(r.status.ok()) << status_text(r.status);
  EXPECT_EQ(r.result.return_code(), -1);
  EXPECT_NE(r.result.message().find("refused"), std::string::npos) << r.result.message();
  // A later session is accepted.
  ResultCall ok = enter(*stub_, "sess-ok", "fine");
  ASSERT_TRUE(ok.status.ok()) << status_text(ok.status);
  EXPECT_EQ(ok.result.return_code(), 0);
}

TEST_P(Handler, SessionWithoutApplicationIsReturnCodeMinusOne) {
  flame::v1::SessionContext req;
  req.set_session_id("no-app");
  req.set_common_data("data");
  grpc::ClientContext ctx;
  flame::v1::Result res;
  grpc::Status st = stub_->OnSessionEnter(&ctx, req, &res);
  ASSERT_TRUE(st.ok()) << status_text(st);  // gRPC OK: the error is in the Result
  EXPECT_EQ(res.return_code(), -1);
  EXPECT_NE(res.message().find("application"), std::string::npos) << res.message();
  // Rejected before the service saw it.
  EXPECT_EQ(session_events(), std::vector<std::string>{});
  // An application with an empty name is still an application.
  flame::v1::SessionContext named = req;
  named.mutable_application();
  grpc::ClientContext ctx2;
  st = stub_->OnSessionEnter(&ctx2, named, &res);
  ASSERT_TRUE(st.ok()) << status_text(st);
  EXPECT_EQ(res.return_code(), 0) << res.message();
}

INSTANTIATE_TEST_SUITE_P(Modes, Handler, ::testing::Values(false, true), mode_name);

}  // namespace
}  // namespace ember_it
