// gRPC client session (sans-I/O): unary and server-streaming calls over an
// HTTP/2 client session.
//
// start_unary() / start_server_streaming() queue a request; feed() server
// bytes; produce() bytes to send; ClientHandler::on_message() delivers a
// streaming call's messages and on_response() each call's status (and a
// unary call's message). A grpc::Channel runs this session on a Loop.
// Request bodies are sent by reference, response messages arrive as slices of
// the fed buffers when they fit in one chunk.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/io_chain.hpp"
#include "ember/slab.hpp"
#include "protocols/grpc/message_reader.hpp"
#include "protocols/grpc/status.hpp"
#include "protocols/http2/session.hpp"

namespace ember::grpc {

struct ClientOptions {
  http2::Settings http2;
  size_t max_receive_message_size = 4u << 20;  // grpc and tonic's default
  std::string authority = "localhost";
  std::string scheme = "http";  // "https" over TLS
  std::string user_agent = "ember-grpc/0.1";
};

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // Exactly once per started call. `message` is the response message when
  // the status is OK (absent if the server sent none).
  virtual void on_response(uint64_t tag, Status status, std::optional<Bytes> message) = 0;
  // Server-streaming calls: each response message in order, before
  // on_response() (whose `message` is then always absent). The slice shares
  // the fed buffer (or a gathered one); keep it by copying the Bytes.
  virtual void on_message(uint64_t /*tag*/, Bytes /*message*/) {}
};

class ClientSession final : private http2::SessionHandler {
 public:
  ClientSession(ClientHandler& handler, const ClientOptions& options, SlabAllocator& slab,
                BufferPool* pool);
  ~ClientSession();

  // Queues a unary call: request message = `head` (at most 59 bytes) then
  // `body`. `timeout_ns` > 0 sends grpc-timeout. Returns an error when the
  // session cannot take more streams.
  Result<void> start_unary(std::string_view path, std::span<const uint8_t> head, Bytes body,
                           uint64_t tag, uint64_t timeout_ns = 0);
  // The same for a server-streaming method: any number of response messages.
  Result<void> start_server_streaming(std::string_view path, std::span<const uint8_t> head,
                                      Bytes body, uint64_t tag, uint64_t timeout_ns = 0);
  // Ends a call in flight at once: on_response(tag, status) now, RST_STREAM
  // CANCEL to the server. False when no such call is waiting for its status.
  bool cancel(uint64_t tag, Status status = {StatusCode::cancelled, "cancelled by the client"});

  Result<void> feed(const Bytes& input);
  Result<void> produce(IoChain& out) { return h2_.produce(out); }
  bool wants_write() const noexcept { return h2_.wants_write(); }
  size_t calls_in_flight() const noexcept { return in_flight_; }
  // Where the next read should go when it is the middle of a large response
  // message: the kernel then writes it in place.
  bool read_target(ReadTarget& target) noexcept;
  // Fails every call still in flight (the connection is gone).
  void fail_all(StatusCode code, std::string_view message);

 private:
  struct Call;
  Result<void> start(std::string_view path, std::span<const uint8_t> head, Bytes body, uint64_t tag,
                     uint64_t timeout_ns, bool streaming);
  void on_headers_begin(int32_t id) override;
  void on_header(int32_t id, std::string_view name, std::string_view value) override;
  void on_headers_end(int32_t id) override;
  void on_data(int32_t id, const Bytes& chunk) override;
  void on_remote_end(int32_t id) override;
  void on_stream_close(int32_t id, uint32_t error_code) override;
  void on_body_end(int32_t id) override;
  static void on_message(void* ctx, Bytes message);
  void finish(Call* call, Status status);

  ClientHandler& handler_;
  ClientOptions options_;
  SlabAllocator& slab_;
  BufferPool* pool_;
  Call* live_ = nullptr;
  size_t in_flight_ = 0;
  http2::Session h2_;
};

}  // namespace ember::grpc
