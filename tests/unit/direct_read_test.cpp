// Large messages read in place: the connection asks the session where the
// next read should land (ReadTarget) and the kernel writes the payload into
// the buffer it is gathered in. Here a "kernel" copies from the peer's bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "protocols/grpc/client.hpp"
#include "protocols/grpc/server.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::grpc {
namespace {

constexpr std::string_view kEcho = "/test.Echo/Echo";

struct EchoService : ServerHandler {
  int resolve_method(std::string_view path) override { return path == kEcho ? 0 : -1; }
  void on_call(ServerCall& call) override {
    request = call.request();
    session->respond(call, {}, call.request());
  }
  void on_call_end(ServerCall&, bool) override {}
  ServerSession* session = nullptr;
  Bytes request;
};

struct Responses : ClientHandler {
  void on_response(uint64_t, Status s, std::optional<Bytes> m) override {
    status = std::move(s);
    message = std::move(m);
    ++count;
  }
  Status status;
  std::optional<Bytes> message;
  int count = 0;
};

// Delivers `wire` to `session` the way ConnectionImpl does: each read goes
// to the session's read target when it offers one, else to a scratch buffer.
// `read_size` caps a read, as the socket buffer does. Returns the bytes that
// landed in place.
template <class Session>
size_t deliver(Session& session, const std::string& wire, std::mt19937& rng, size_t read_size,
               std::vector<Bytes>* kept) {
  size_t pos = 0, direct = 0;
  std::uniform_int_distribution<size_t> jitter(1, read_size);
  while (pos < wire.size()) {
    size_t want = std::min(jitter(rng), wire.size() - pos);
    ReadTarget t;
    Bytes chunk;
    if (session.read_target(t)) {
      EXPECT_GT(t.size, 0u);
      size_t n = std::min(want, t.size);
      std::memcpy(t.data, wire.data() + pos, n);
      chunk = Bytes::share(t.storage, t.data, n);
      direct += n;
      pos += n;
    } else {
      chunk = Bytes::copy(std::string_view(wire).substr(pos, want));
      pos += want;
    }
    kept->push_back(chunk);
    EXPECT_TRUE(session.feed(chunk));
  }
  return direct;
}

class DirectRead : public ::testing::TestWithParam<size_t> {};

TEST_P(DirectRead, LargeRequestAndResponseLandInPlace) {
  const size_t read_size = GetParam();
  SlabAllocator server_slab, client_slab;
  BufferPool server_pool, client_pool;
  EchoService service;
  ServerSession server(service, {}, server_slab, &server_pool);
  service.session = &server;
  Responses responses;
  ClientOptions co;
  co.max_receive_message_size = 8u << 20;
  ClientSession client(responses, co, client_slab, &client_pool);
  std::mt19937 rng(static_cast<uint32_t>(read_size));
  std::string payload = test::random_bytes(3u << 20, 7);
  ASSERT_TRUE(client.start_unary(kEcho, {}, Bytes::copy(payload), 1));

  std::vector<Bytes> kept;
  size_t to_server = 0, to_client = 0, request_bytes = 0, response_bytes = 0;
  for (int round = 0; round < 200 && responses.count == 0; ++round) {
    IoChain out;
    ASSERT_TRUE(client.produce(out));
    std::string wire = test::flatten(out);
    request_bytes += wire.size();
    to_server += deliver(server, wire, rng, read_size, &kept);
    out.clear();
    ASSERT_TRUE(server.produce(out));
    wire = test::flatten(out);
    response_bytes += wire.size();
    to_client += deliver(client, wire, rng, read_size, &kept);
  }
  ASSERT_EQ(responses.count, 1);
  ASSERT_TRUE(responses.status.ok()) << responses.status.message;
  ASSERT_TRUE(responses.message.has_value());
  EXPECT_TRUE(responses.message->view() == payload);
  EXPECT_TRUE(service.request.view() == payload);
  // Most of both payloads skipped the user-space gather copy. What is
  // copied is what a read brought in with a frame header (before the frame's
  // size was known) and frame tails under kMinDirectRead: a few reads' worth
  // per DATA frame (frames here are up to 1 MiB).
  size_t tenths = read_size >= (1u << 20) ? 5 : 8;
  EXPECT_GE(to_server * 10, payload.size() * tenths) << request_bytes;
  EXPECT_GE(to_client * 10, payload.size() * tenths) << response_bytes;
}

INSTANTIATE_TEST_SUITE_P(ReadSizes, DirectRead,
                         ::testing::Values(size_t{16 * 1024}, size_t{64 * 1024}, size_t{212 * 1024},
                                           size_t{1 << 20}));

TEST(DirectRead, SmallMessagesNeverAskForATarget) {
  SlabAllocator slab;
  BufferPool pool;
  EchoService service;
  ServerSession server(service, {}, slab, &pool);
  service.session = &server;
  Responses responses;
  SlabAllocator cslab;
  BufferPool cpool;
  ClientSession client(responses, {}, cslab, &cpool);
  ASSERT_TRUE(client.start_unary(kEcho, {}, Bytes::copy(std::string(8000, 'x')), 1));
  IoChain out;
  ASSERT_TRUE(client.produce(out));
  std::string wire = test::flatten(out);
  // Feed everything but the last 100 bytes: the message is mid-gather, yet
  // too little is missing for an in-place read to pay off.
  ASSERT_TRUE(server.feed(Bytes::copy(std::string_view(wire).substr(0, wire.size() - 100))));
  ReadTarget t;
  EXPECT_FALSE(server.read_target(t));
}

}  // namespace
}  // namespace ember::grpc
