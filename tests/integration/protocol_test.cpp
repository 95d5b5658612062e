// Per-call protocol errors: each gets the gRPC status the spec names and the
// connection keeps working afterwards.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/integration/harness.hpp"
#include "tests/integration/patterns.hpp"
#include "tests/integration/raw_h2.hpp"

namespace ember_it {
namespace {

constexpr size_t kMiB = 1u << 20;
const std::string kInvoke = "/flame.v1.Instance/OnTaskInvoke";

std::string task_bytes(const std::string& input) {
  return task("t", "s", input).SerializeAsString();
}

// The same channel answers a correct call, through both stubs.
void expect_channel_works(const std::shared_ptr<grpc::Channel>& ch) {
  RawCall raw = raw_call(ch, kInvoke, task_bytes("raw ok"));
  ASSERT_TRUE(raw.status.ok()) << status_text(raw.status);
  flame::v1::TaskResult r;
  ASSERT_TRUE(r.ParseFromString(raw.response));
  EXPECT_EQ(r.output(), "raw ok");
  auto stub = flame::v1::Instance::NewStub(ch);
  TaskCall typed = invoke(*stub, std::string("typed ok"));
  ASSERT_TRUE(typed.status.ok()) << status_text(typed.status);
  EXPECT_EQ(typed.result.output(), "typed ok");
}

TEST(Protocol, UnknownMethodOrServiceIsUnimplemented) {
  auto svc = Service::echo();
  auto ch = channel(svc->socket_path());
  for (const char* path :
       {"/flame.v1.Instance/OnTaskCancel", "/flame.v1.Instance/ontaskinvoke",
        "/flame.v2.Instance/OnTaskInvoke", "/flame.v1.Frontend/CreateSession", "/foo.Bar/Baz"}) {
    RawCall c = raw_call(ch, path, task_bytes("x"));
    EXPECT_EQ(c.status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
        << path << ": " << status_text(c.status);
  }
  expect_channel_works(ch);
  EXPECT_EQ(svc->terminate(), 0);
}

TEST(Protocol, OversizedRequestIsResourceExhausted) {
  auto svc = Service::echo({{"EMBER_MAX_MESSAGE_BYTES", "1MiB"}});
  auto ch = channel(svc->socket_path());
  auto stub = flame::v1::Instance::NewStub(ch);

  // Exactly at the limit is accepted; one byte more is not.
  flame::v1::TaskContext at_limit = task("t", "s", std::string(kMiB, 'a'));
  while (at_limit.ByteSizeLong() > kMiB)
    at_limit.mutable_input()->pop_back();
  ASSERT_EQ(at_limit.ByteSizeLong(), kMiB);
  TaskCall fits = invoke(*stub, at_limit);
  ASSERT_TRUE(fits.status.ok()) << status_text(fits.status);
  EXPECT_EQ(fits.result.output(), at_limit.input());

  flame::v1::TaskContext over = at_limit;
  over.mutable_input()->push_back('b');
  ASSERT_EQ(over.ByteSizeLong(), kMiB + 1);
  TaskCall c1 = invoke(*stub, over);
  EXPECT_EQ(c1.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status_text(c1.status);

  TaskCall c2 = invoke(*stub, pattern_bytes(2 * kMiB, 5));
  EXPECT_EQ(c2.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status_text(c2.status);
  EXPECT_NE(c2.status.error_message().find(std::to_string(kMiB)), std::string::npos)
      << "the message should name the limit: " << c2.status.error_message();

  // The next call on the same channel is served.
  TaskCall next = invoke(*stub, std::string("next"));
  ASSERT_TRUE(next.status.ok()) << status_text(next.status);
  EXPECT_EQ(next.result.output(), "next");
  expect_channel_works(ch);
  EXPECT_EQ(svc->terminate(), 0);
}

TEST(Protocol, MalformedProtobufIsInternal) {
  auto svc = Service::test_service(false);
  auto ch = channel(svc->socket_path());
  const std::map<std::string, std::string> bad_tasks = {
      {"length runs past the end", std::string("\x0a\xff", 2)},
      {"task_id as fixed32", std::string("\x0d\x01\x02\x03\x04", 5)},
      {"input as varint", std::string("\x20\x05", 2)},
      {"truncated input", std::string("\x22\x05"
                                      "ab",
                                      4)},
      {"wire type 7", std::string("\x0f", 1)},
      {"field number 0", std::string("\x02\x00", 2)},
      {"task_id not UTF-8", std::string("\x0a\x02\xc3\x28", 4)},
      {"unknown field, truncated varint", std::string("\x18\xff\xff", 3)},
  };
  for (const auto& [what, bytes] : bad_tasks) {
    RawCall c = raw_call(ch, kInvoke, bytes);
    EXPECT_EQ(c.status.error_code(), grpc::StatusCode::INTERNAL)
        << what << ": " << status_text(c.status);
  }
  RawCall enter_bad = raw_call(ch, "/flame.v1.Instance/OnSessionEnter", std::string("\x12\x05", 2));
  EXPECT_EQ(enter_bad.status.error_code(), grpc::StatusCode::INTERNAL)
      << status_text(enter_bad.status);
  RawCall leave_bad = raw_call(ch, "/flame.v1.Instance/OnSessionLeave", std::string("\x0a\xff", 2));
  EXPECT_EQ(leave_bad.status.error_code(), grpc::StatusCode::INTERNAL)
      << status_text(leave_bad.status);
  // None of them reached the service.
  EXPECT_EQ(svc->events(), std::vector<std::string>{});

  // Fields this version does not know (3, 99) are skipped, as protobuf does.
  std::string with_unknown = task_bytes("known") + std::string(
                                                       "\x1a\x03"
                                                       "abc"
                                                       "\x98\x06\x07",
                                                       8);
  RawCall fwd = raw_call(ch, kInvoke, with_unknown);
  ASSERT_TRUE(fwd.status.ok()) << status_text(fwd.status);
  flame::v1::TaskResult r;
  ASSERT_TRUE(r.ParseFromString(fwd.response));
  EXPECT_EQ(r.output(), "known");
  expect_channel_works(ch);
  EXPECT_EQ(svc->terminate(), 0);
}

TEST(Protocol, CompressedRequestIsUnimplemented) {
  auto svc = Service::echo();
  TempDir dir;
  const std::string proxy_path = dir.file("proxy.sock");
  RecordingProxy proxy(proxy_path, svc->socket_path());
  auto ch = channel(proxy_path);
  auto stub = flame::v1::Instance::NewStub(ch);
  const std::string input(64 * 1024, 'z');  // compresses to almost nothing

  grpc::ClientContext zctx;
  zctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  flame::v1::TaskResult zres;
  grpc::Status zst = stub->OnTaskInvoke(&zctx, task("gz", "s", input), &zres);
  EXPECT_EQ(zst.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status_text(zst);
  EXPECT_NE(zst.error_message().find("compress"), std::string::npos) << zst.error_message();

  // Same channel, no compression: served.
  TaskCall plain = invoke(*stub, input);
  ASSERT_TRUE(plain.status.ok()) << status_text(plain.status);
  EXPECT_TRUE(plain.result.output() == input);

  // What grpc++ really sent: the first call's message had the compressed
  // flag and was far smaller than the input; the second had neither.
  std::map<int32_t, std::string> first_data;  // stream -> first DATA payload
  for (const Frame& f : parse_client_frames(proxy.client_bytes(0))) {
    if (f.type != 0 || first_data.count(f.stream_id)) continue;
    std::string payload = f.payload;
    if (f.flags & 0x8) {  // PADDED
      size_t pad = static_cast<uint8_t>(payload[0]);
      payload = payload.substr(1, payload.size() - 1 - pad);
    }
    first_data[f.stream_id] = payload;
  }
  ASSERT_EQ(first_data.size(), 2u) << "expected two request streams";
  const std::string& compressed = first_data.begin()->second;
  const std::string& identity = first_data.rbegin()->second;
  ASSERT_GE(compressed.size(), 5u);
  ASSERT_GE(identity.size(), 5u);
  auto announced = [](const std::string& p) {
    return (uint32_t{static_cast<uint8_t>(p[1])} << 24) |
           (uint32_t{static_cast<uint8_t>(p[2])} << 16) |
           (uint32_t{static_cast<uint8_t>(p[3])} << 8) | static_cast<uint8_t>(p[4]);
  };
  EXPECT_EQ(compressed[0], 1) << "the first request was not sent compressed";
  EXPECT_LT(announced(compressed), input.size() / 10);
  EXPECT_EQ(identity[0], 0);
  EXPECT_GT(announced(identity), input.size());
  EXPECT_EQ(svc->terminate(), 0);
}

// A raw client writes the preface, SETTINGS, an OnTaskInvoke HEADERS and part
// of a message, makes sure the server has read it all (PING round trip), then
// vanishes. The instance must not care.
TEST(Protocol, ClientGoneMidMessage) {
  auto svc = Service::echo();
  struct Case {
    const char* what;
    uint32_t announced;
    size_t sent;
    bool wait_for_ping;
  };
  for (const Case& k : {Case{"prefix says 1000, 100 sent", 1000, 100, true},
                        Case{"prefix says 64 MiB, 20000 sent", 64u << 20, 20000, true},
                        Case{"prefix cut after 3 bytes", 1000, 0, true},
                        Case{"whole message, stream never ended", 11, 11, true},
                        Case{"gone without waiting", 5000, 4000, false}}) {
    SCOPED_TRACE(k.what);
    H2Client raw(svc->socket_path());
    ASSERT_TRUE(raw.connected());
    std::string body = grpc_frame(pattern_bytes(k.sent, 6), k.announced);
    if (k.sent == 0) body.resize(3);
    raw.start_call(kInvoke, body, /*end_stream=*/false);
    if (k.wait_for_ping) {
      raw.ping();
      ASSERT_TRUE(raw.pump_until([&] { return raw.ping_acked(); }, scaled(10s)));
    } else {
      ASSERT_FALSE(raw.pump_until([] { return false; }, 0ms));  // just send
    }
    raw.close();
    ASSERT_TRUE(serves(svc->socket_path()));
  }
  EXPECT_TRUE(svc->alive());
  EXPECT_EQ(svc->terminate(), 0);
}

}  // namespace
}  // namespace ember_it
