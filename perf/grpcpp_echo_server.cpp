// The rival: flame.v1.Instance echo served by Debian's grpc++ (callback API),
// on the Unix socket named by FLAME_INSTANCE_ENDPOINT, exactly as Flame's
// executor launches an instance. Configured for its best showing: callback
// (reactor) API with inline completion, 16 MiB message limits, and the echoed
// bytes moved from request to response instead of copied.
//
// Built with its own protoc output and never linked with libember: two
// copies of flame.pb.cc in one binary register the descriptors twice.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "flame.grpc.pb.h"

namespace {

constexpr int kMaxMessage = 16 << 20;

class EchoInstance final : public flame::v1::Instance::CallbackService {
  grpc::ServerUnaryReactor* OnSessionEnter(grpc::CallbackServerContext* ctx,
                                           const flame::v1::SessionContext* req,
                                           flame::v1::Result* res) override {
    if (!req->has_application()) {
      res->set_return_code(-1);
      res->set_message("session context without application");
    } else {
      res->set_return_code(0);
    }
    return finish(ctx);
  }

  grpc::ServerUnaryReactor* OnTaskInvoke(grpc::CallbackServerContext* ctx,
                                         const flame::v1::TaskContext* req,
                                         flame::v1::TaskResult* res) override {
    res->set_return_code(0);
    if (req->has_input()) {
      // The request is ours until Finish(); swapping its buffer into the
      // response spares grpc++ a copy of the payload (a 1 MiB memcpy).
      res->mutable_output()->swap(*const_cast<flame::v1::TaskContext*>(req)->mutable_input());
    }
    return finish(ctx);
  }

  grpc::ServerUnaryReactor* OnSessionLeave(grpc::CallbackServerContext* ctx,
                                           const flame::v1::EmptyRequest*,
                                           flame::v1::Result* res) override {
    res->set_return_code(0);
    return finish(ctx);
  }

  static grpc::ServerUnaryReactor* finish(grpc::CallbackServerContext* ctx) {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
};

std::unique_ptr<grpc::Server> g_server;

}  // namespace

int main() {
  const char* endpoint = std::getenv("FLAME_INSTANCE_ENDPOINT");
  if (!endpoint || !*endpoint) {
    std::fprintf(stderr, "grpcpp-echo: FLAME_INSTANCE_ENDPOINT is not set\n");
    return 2;
  }
  // Replace a stale socket file, as a Flame instance must.
  struct stat st;
  if (::lstat(endpoint, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(endpoint);

  // SIGTERM (the executor releasing the instance) is taken by sigwait below:
  // block it before grpc++ starts its threads so they all inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  EchoInstance service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(std::string("unix:") + endpoint, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(kMaxMessage);
  builder.SetMaxSendMessageSize(kMaxMessage);
  builder.AddChannelArgument(GRPC_ARG_OPTIMIZATION_TARGET, "latency");
  g_server = builder.BuildAndStart();
  if (!g_server) {
    std::fprintf(stderr, "grpcpp-echo: cannot serve on unix:%s\n", endpoint);
    return 2;
  }
  std::fprintf(stderr, "grpcpp-echo: serving on unix:%s (pid %d)\n", endpoint, ::getpid());

  int sig = 0;
  sigwait(&set, &sig);
  g_server->Shutdown();
  g_server.reset();
  return 0;
}
