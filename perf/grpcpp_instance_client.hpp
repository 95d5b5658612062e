// A flame.v1.Instance client built on grpc++ (Debian's libgrpc++ 1.51, gRPC
// core's HTTP/2), for ember-bench-flame: the load generator nobody here
// wrote. It advertises what Flame's executor (tonic over hyper) does: 16 KiB
// frames, a 2 MiB stream window, no BDP probing, no retries. Messages are
// raw bytes through grpc::GenericStub (Ember's wire encoder builds the
// TaskContext, its decoder checks the TaskResult), so no second copy of the
// flame.v1 descriptors enters the bench.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ember::perf {

class GrpcppInstanceClient {
 public:
  // One connection of its own (local subchannel pool) to `socket_path`.
  static std::unique_ptr<GrpcppInstanceClient> connect(const std::string& socket_path);
  virtual ~GrpcppInstanceClient() = default;

  // Unary call, blocking; the response message or the status text.
  struct Reply {
    bool ok = false;
    std::string message;  // the response when ok, else "CODE: details"
  };
  virtual Reply call(std::string_view path, std::string_view request) = 0;

  // Pipelined OnTaskInvoke: the request is `head` then `body`; `body` must
  // stay valid until the call completes (it is sent by reference).
  virtual void start_task(uint64_t tag, std::span<const uint8_t> head,
                          std::span<const uint8_t> body) = 0;
  struct Completion {
    uint64_t tag = 0;
    bool ok = false;
    std::string message;  // the TaskResult bytes when ok, else the status text
  };
  enum class Wait { got, timeout };
  // Next completion; `spin` polls the completion queue instead of sleeping.
  virtual Wait next(Completion& out, int timeout_ms, bool spin) = 0;
};

}  // namespace ember::perf
