// libFuzzer target: grpc::ServerSession fed arbitrary bytes after a valid
// HTTP/2 connection preface. Errors are fine; crashes, leaks and broken
// call bookkeeping are not.
//
// Input: byte 0 picks the read size (how the stream is chunked), the rest
// is everything the client sends after "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
// Paths: /a/Echo answers inline, /a/Fail fails, /a/Defer parks the call
// until a later read (or the end of the connection).
// libfuzzer-options: -max_len=16384 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocols/grpc/server.hpp"

using namespace ember;
using namespace ember::grpc;

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Service : ServerHandler {
  int resolve_method(std::string_view path) override {
    if (path == "/a/Echo") return 0;
    if (path == "/a/Fail") return 1;
    if (path == "/a/Defer") return 2;
    return -1;
  }
  void on_call(ServerCall& call) override {
    ++dispatched;
    switch (call.method()) {
      case 0:
        session->respond(call, {}, call.request());
        break;
      case 1:
        session->fail(call, StatusCode::not_found, "not here: 100%");
        break;
      default:
        parked.push_back(&call);
    }
  }
  void on_call_end(ServerCall& call, bool) override {
    ++ended;
    for (auto& p : parked)
      if (p == &call) p = nullptr;
  }
  void answer_parked() {
    for (ServerCall* c : parked)
      if (c) session->respond(*c, {}, Bytes::copy(std::string_view("late")));
    parked.clear();
  }

  ServerSession* session = nullptr;
  std::vector<ServerCall*> parked;
  size_t dispatched = 0, ended = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t read_size = size_t{1} << (data[0] % 15);  // 1 B .. 16 KiB
  std::string wire(kPreface);
  wire.append(reinterpret_cast<const char*>(data + 1), size - 1);
  Bytes input = Bytes::copy(wire);

  SlabAllocator slab;
  BufferPool pool;
  Service service;
  ServerOptions options;
  options.max_receive_message_size = 1024;  // small, so the limit is reachable
  options.max_header_list_size = 1024;
  {
    ServerSession session(service, options, slab, &pool);
    service.session = &session;
    IoChain out;
    for (size_t at = 0; at < input.size(); at += read_size) {
      bool ok =
          static_cast<bool>(session.feed(input.slice(at, std::min(read_size, input.size() - at))));
      if (at / read_size % 3 == 2) service.answer_parked();
      out.clear();
      if (!session.produce(out) || !ok || !session.alive()) break;
    }
    // The connection ends here; parked calls end with it.
  }
  if (service.ended != service.dispatched) std::abort();
  return 0;
}
