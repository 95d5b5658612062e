// Steady-state heap allocations of the AMQP codec, counted: a relay loop
// (deliveries in, publishes and acks out, confirms in) must allocate nothing
// once its buffers are warm.
//
// Counted by tests/unit/support/allocation_counter.hpp (per thread, while
// armed; malloc inside Ember's static libraries included).
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "protocols/amqp/client.hpp"
#include "tests/unit/amqp/amqp_test_util.hpp"
#include "tests/unit/support/allocation_counter.hpp"

namespace ember::amqp {
namespace {

using test::content_frames;
using test::method_frame;

// Relays every delivery (publish onward, ack) from inside the callback.
class Relay final : public ClientHandler {
 public:
  void on_ready() override { ready = true; }
  void on_delivery(const Delivery& d) override {
    auto seq = client->publish(1, "", "out", d.body);
    if (!seq) failures++;
    if (!client->ack(1, d.delivery_tag)) failures++;
    delivered++;
  }
  void on_confirm(uint16_t, uint64_t, bool, bool) override { confirms++; }

  Client* client = nullptr;
  bool ready = false;
  int delivered = 0;
  int confirms = 0;
  int failures = 0;
};

void handshake(Client& c, IoChain& out) {
  out.clear();
  ASSERT_TRUE(c.produce(out));
  static const std::string props = test::hex_bytes("07 'product' 'S' 00 00 00 08 'RabbitMQ'");
  ASSERT_TRUE(c.feed(Bytes::copy(method_frame(
      0, ConnectionStart{0, 9,
                         TableView::trusted(std::span(
                             reinterpret_cast<const uint8_t*>(props.data()), props.size())),
                         "PLAIN", "en_US"}))));
  ASSERT_TRUE(c.feed(Bytes::copy(method_frame(0, ConnectionTune{2047, 131072, 60}))));
  ASSERT_TRUE(c.feed(Bytes::copy(method_frame(0, ConnectionOpenOk{}))));
  ASSERT_TRUE(c.open_channel(1));
  ASSERT_TRUE(c.confirm_select(1));
  ASSERT_TRUE(
      c.feed(Bytes::copy(method_frame(1, ChannelOpenOk{}) + method_frame(1, ConfirmSelectOk{}))));
  out.clear();
  ASSERT_TRUE(c.produce(out));
}

// One "read": 32 deliveries (small bodies) and a multiple confirm.
std::string relay_chunk(size_t body_size, uint32_t frame_max) {
  std::string wire;
  BasicProperties p;
  p.set_delivery_mode(2).set_message_id("id");
  for (uint64_t tag = 1; tag <= 32; ++tag)
    wire += content_frames(1, BasicDeliver{"svc-consumer", tag, false, "", "in"},
                           std::string(body_size, 'b'), p, frame_max);
  wire += method_frame(1, BasicAck{32, true});
  return wire;
}

void run_relay(size_t body_size, uint32_t frame_max, BufferPool* pool) {
  Relay relay;
  ClientOptions o;
  o.pool = pool;
  o.frame_max = frame_max;
  Client client(relay, o);
  relay.client = &client;
  IoChain out;
  handshake(client, out);
  ASSERT_TRUE(relay.ready);
  Bytes chunk = Bytes::copy(relay_chunk(body_size, frame_max));
  // Warm up: buffers reach their steady capacity.
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(client.feed(chunk));
    out.clear();
    ASSERT_TRUE(client.produce(out));
  }
  uint64_t allocations = 0;
  {
    ember::test::CountingAllocations armed;
    for (int i = 0; i < 1000; ++i) {
      (void)client.feed(chunk);
      out.clear();
      (void)client.produce(out);
      (void)client.on_timer(static_cast<uint64_t>(i));
    }
    allocations = armed.stop();
  }
  EXPECT_EQ(relay.failures, 0);
  EXPECT_EQ(relay.delivered, 1050 * 32);
  EXPECT_EQ(relay.confirms, 1050);
  EXPECT_EQ(allocations, 0u) << "heap allocations in 32000 relayed messages";
}

TEST(AmqpAlloc, TheCounterCounts) {
  ember::test::CountingAllocations armed;
  std::vector<int> v(3);
  Bytes b = Bytes::copy("x");
  EXPECT_EQ(armed.stop(), 2u);
}

TEST(AmqpAlloc, RelaySmallBodiesAllocatesNothing) {
  run_relay(20, 131072, nullptr);
}

TEST(AmqpAlloc, RelayReferencedBodiesAllocatesNothing) {
  run_relay(2000, 131072, nullptr);  // above the copy threshold: sent by reference
}

TEST(AmqpAlloc, GatheredBodiesFromThePoolAllocateNothing) {
  BufferPool pool;
  run_relay(10000, 4096, &pool);  // three body frames each: gathered into pool buffers
}

TEST(AmqpAlloc, DecodingTablesAndMethodsAllocatesNothing) {
  std::string wire = method_frame(0, ConnectionClose{406, "PRECONDITION_FAILED - x", 50, 10});
  std::vector<uint8_t> scratch;
  scratch.reserve(1024);
  ember::test::CountingAllocations armed;
  for (int i = 0; i < 1000; ++i) {
    Method m;
    auto r = decode_method(
        std::span(reinterpret_cast<const uint8_t*>(wire.data()) + 7, wire.size() - 8), m);
    ASSERT_TRUE(r.ok());
    scratch.clear();
    ASSERT_TRUE(encode_method(m, scratch));
  }
  EXPECT_EQ(armed.stop(), 0u);
}

}  // namespace
}  // namespace ember::amqp
