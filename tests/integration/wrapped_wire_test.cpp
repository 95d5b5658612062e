// Flame main's instance wire, judged by grpc++ stubs generated from
// proto/flame-main/flame.proto: wrapped replies when the executor's requests
// show that edition (tokens, a workspace) or when EMBER_FLAME_WIRE says so,
// and executor attributes drained by the replies that may carry them.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

namespace ember_it {
namespace {

namespace pb = flame::v1;

std::vector<std::string> attrs_of(const pb::ExecutorAttributes& a) {
  std::vector<std::string> v(a.attr().begin(), a.attr().end());
  std::sort(v.begin(), v.end());
  return v;
}

class WrappedWire : public ::testing::TestWithParam<bool> {
 protected:
  void start(Env env = {}) {
    svc_ = Service::test_service(GetParam(), std::move(env));
    stub_ = pb::Instance::NewStub(channel(svc_->socket_path()));
  }
  void TearDown() override {
    stub_.reset();
    if (svc_) {
      EXPECT_EQ(svc_->terminate(), 0) << svc_->log();
    }
  }

  struct Enter {
    grpc::Status status;
    pb::OnSessionEnterResponse reply;
  };
  Enter enter(const pb::SessionContext& ctx) {
    grpc::ClientContext c;
    Enter e;
    e.status = stub_->OnSessionEnter(&c, ctx, &e.reply);
    return e;
  }
  struct Invoke {
    grpc::Status status;
    pb::OnTaskInvokeResponse reply;
  };
  Invoke invoke(const std::string& id, const std::string& input,
                const std::string& workspace = "") {
    pb::TaskContext t;
    t.set_task(id);
    t.set_session("s");
    t.set_input(input);
    t.set_workspace(workspace);
    grpc::ClientContext c;
    Invoke i;
    i.status = stub_->OnTaskInvoke(&c, t, &i.reply);
    return i;
  }
  static pb::SessionContext session(const std::string& app, const std::string& common = "") {
    pb::SessionContext s;
    s.set_session("s");
    s.mutable_application()->set_name(app);
    if (!common.empty()) s.set_common_data(common);
    return s;
  }

  std::unique_ptr<Service> svc_;
  std::unique_ptr<pb::Instance::Stub> stub_;
};

TEST_P(WrappedWire, TokensAndWorkspaceSwitchTheReplies) {
  start();
  pb::SessionContext s = session("pi", "publish:warm");
  (*s.mutable_tokens())["storage"] = "t1";
  (*s.mutable_tokens())["cache"] = "t2";
  s.set_workspace("default");
  s.mutable_application()->set_workspace("team");
  Enter e = enter(s);
  ASSERT_TRUE(e.status.ok()) << status_text(e.status);
  ASSERT_TRUE(e.reply.has_result());
  EXPECT_EQ(e.reply.result().return_code(), 0) << e.reply.result().message();
  EXPECT_EQ(attrs_of(e.reply.attributes()), std::vector<std::string>{"warm"});
  auto events = svc_->events();
  EXPECT_NE(std::find(events.begin(), events.end(), "wire\tdefault\tteam\tcache=t2,storage=t1"),
            events.end());

  Invoke a = invoke("1", "publish:k1,k2", "default");
  ASSERT_TRUE(a.status.ok()) << status_text(a.status);
  EXPECT_EQ(a.reply.task_result().return_code(), 0);
  EXPECT_EQ(a.reply.task_result().output(), "publish:k1,k2");
  EXPECT_EQ(attrs_of(a.reply.attributes()), (std::vector<std::string>{"k1", "k2"}));
  EXPECT_TRUE(svc_->wait_for_event("task-begin\t1\tdefault", scaled(5s)));

  // Taken by the reply: the next one carries none.
  Invoke b = invoke("2", "plain");
  ASSERT_TRUE(b.status.ok()) << status_text(b.status);
  EXPECT_EQ(b.reply.task_result().output(), "plain");
  EXPECT_FALSE(b.reply.has_attributes());

  Invoke none = invoke("3", "none");
  ASSERT_TRUE(none.status.ok());
  EXPECT_TRUE(none.reply.has_task_result());
  EXPECT_FALSE(none.reply.task_result().has_output());

  Invoke failed = invoke("4", "fail:broken");
  ASSERT_TRUE(failed.status.ok());
  EXPECT_EQ(failed.reply.task_result().return_code(), -1);
  EXPECT_EQ(failed.reply.task_result().message(), "broken");

  grpc::ClientContext c;
  pb::Result left;
  ASSERT_TRUE(stub_->OnSessionLeave(&c, pb::EmptyRequest(), &left).ok());
  EXPECT_EQ(left.return_code(), 0);
  EXPECT_NE(svc_->log().find("replies are wrapped"), std::string::npos) << svc_->log();
}

TEST_P(WrappedWire, ConfiguredWithoutNewerFields) {
  start({{"EMBER_FLAME_WIRE", "wrapped"}});
  Enter e = enter(session("echo"));
  ASSERT_TRUE(e.status.ok()) << status_text(e.status);
  ASSERT_TRUE(e.reply.has_result());
  EXPECT_EQ(e.reply.result().return_code(), 0);
  Invoke a = invoke("1", std::string(100000, 'z'));
  ASSERT_TRUE(a.status.ok()) << status_text(a.status);
  EXPECT_EQ(a.reply.task_result().output(), std::string(100000, 'z'));
}

TEST_P(WrappedWire, FailedEnterLeavesTheAttributesForTheNextReply) {
  start({{"EMBER_FLAME_WIRE", "wrapped"}});
  Enter refused = enter(session("refuse", "publish:a"));
  ASSERT_TRUE(refused.status.ok()) << status_text(refused.status);
  EXPECT_EQ(refused.reply.result().return_code(), -1);
  EXPECT_FALSE(refused.reply.has_attributes());
  Enter ok = enter(session("echo"));
  ASSERT_TRUE(ok.status.ok());
  EXPECT_EQ(ok.reply.result().return_code(), 0);
  EXPECT_EQ(attrs_of(ok.reply.attributes()), std::vector<std::string>{"a"});
}

TEST_P(WrappedWire, AttributeOverTheLimitFailsTheTaskWithTheReason) {
  start({{"EMBER_FLAME_WIRE", "wrapped"}});
  ASSERT_TRUE(enter(session("echo")).status.ok());
  Invoke a = invoke("1", "publish:ok," + std::string(300, 'x'));
  ASSERT_TRUE(a.status.ok());
  EXPECT_EQ(a.reply.task_result().return_code(), -1);
  EXPECT_NE(a.reply.task_result().message().find("limited to 256 bytes"), std::string::npos)
      << a.reply.task_result().message();
  EXPECT_FALSE(a.reply.has_attributes());  // all or nothing: "ok" was not added
}

TEST_P(WrappedWire, ForcedV060AnswersPlainEvenWithTokens) {
  start({{"EMBER_FLAME_WIRE", "v0.6.0"}});
  pb::SessionContext s = session("echo", "publish:kept");
  (*s.mutable_tokens())["storage"] = "t1";
  RawCall r = raw_call(channel(svc_->socket_path()), "/flame.v1.Instance/OnSessionEnter",
                       s.SerializeAsString());
  ASSERT_TRUE(r.status.ok()) << status_text(r.status);
  EXPECT_EQ(r.response, "");             // v0.6.0's Result{return_code 0}
  EXPECT_EQ(svc_->events().size(), 2u);  // the service still saw the tokens
}

TEST(WrappedWireOptions, UnknownEditionIsAConfigurationError) {
  Service::Options o;
  o.program = test_service_bin();
  o.env = {{"EMBER_FLAME_WIRE", "v2"}};
  o.wait_for_socket = false;
  auto svc = Service::start(o);
  auto status = svc->wait_exit(scaled(10s));
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 2);
  EXPECT_NE(svc->log().find("is not a wire edition"), std::string::npos) << svc->log();
}

INSTANTIATE_TEST_SUITE_P(Modes, WrappedWire, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Async" : "Sync";
                         });

}  // namespace
}  // namespace ember_it
