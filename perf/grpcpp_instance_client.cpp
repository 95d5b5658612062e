#include "perf/grpcpp_instance_client.hpp"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <vector>

namespace ember::perf {
namespace {

std::string status_text(const grpc::Status& s) {
  return std::to_string(static_cast<int>(s.error_code())) + ": " + s.error_message();
}

std::string flatten(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!b.Dump(&slices).ok()) return out;
  out.reserve(b.Length());
  for (const auto& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

class Client final : public GrpcppInstanceClient {
 public:
  explicit Client(const std::string& socket_path) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // Flame's executor: 16 KiB frames, 2 MiB stream window, fixed windows.
    args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 16 * 1024);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 2 << 20);
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetMaxReceiveMessageSize(4 << 20);  // tonic's decode limit
    channel_ =
        grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
  }
  ~Client() override {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok))
      delete static_cast<Call*>(tag);
  }

  Reply call(std::string_view path, std::string_view request) override {
    grpc::ClientContext ctx;
    grpc::Slice slice(request.data(), request.size());
    grpc::ByteBuffer req(&slice, 1), resp;
    grpc::CompletionQueue cq;
    grpc::Status status;
    auto rpc = stub_->PrepareUnaryCall(&ctx, std::string(path), req, &cq);
    rpc->StartCall();
    int tag = 0;
    rpc->Finish(&resp, &status, &tag);
    void* got;
    bool ok;
    cq.Next(&got, &ok);
    cq.Shutdown();
    while (cq.Next(&got, &ok)) {
    }
    if (!status.ok()) return {false, status_text(status)};
    return {true, flatten(resp)};
  }

  void start_task(uint64_t tag, std::span<const uint8_t> head,
                  std::span<const uint8_t> body) override {
    auto* c = new Call;
    c->tag = tag;
    grpc::Slice parts[2] = {
        grpc::Slice(head.data(), head.size()),
        grpc::Slice(const_cast<uint8_t*>(body.data()), body.size(), grpc::Slice::STATIC_SLICE)};
    grpc::ByteBuffer req(parts, body.empty() ? 1 : 2);
    c->rpc = stub_->PrepareUnaryCall(&c->ctx, "/flame.v1.Instance/OnTaskInvoke", req, &cq_);
    c->rpc->StartCall();
    c->rpc->Finish(&c->resp, &c->status, c);
  }

  Wait next(Completion& out, int timeout_ms, bool spin) override {
    void* tag = nullptr;
    bool ok = false;
    auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      grpc::CompletionQueue::NextStatus r =
          spin ? cq_.AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC))
               : cq_.AsyncNext(&tag, &ok, deadline);
      if (r == grpc::CompletionQueue::GOT_EVENT) break;
      if (r == grpc::CompletionQueue::SHUTDOWN || std::chrono::system_clock::now() >= deadline)
        return Wait::timeout;
    }
    std::unique_ptr<Call> c(static_cast<Call*>(tag));
    out.tag = c->tag;
    out.ok = ok && c->status.ok();
    out.message = out.ok ? flatten(c->resp) : status_text(c->status);
    return Wait::got;
  }

 private:
  struct Call {
    uint64_t tag = 0;
    grpc::ClientContext ctx;
    grpc::ByteBuffer resp;
    grpc::Status status;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> rpc;
  };

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  grpc::CompletionQueue cq_;
};

}  // namespace

std::unique_ptr<GrpcppInstanceClient> GrpcppInstanceClient::connect(const std::string& path) {
  return std::make_unique<Client>(path);
}

}  // namespace ember::perf
