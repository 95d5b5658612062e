// grpc::ServerSession and grpc::ClientSession back to back in memory, plus a
// raw HTTP/2 client for requests a gRPC client would never send.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "protocols/grpc/client.hpp"
#include "protocols/grpc/server.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::grpc {
namespace {

using test::flatten;

constexpr std::string_view kEcho = "/test.Echo/Echo";
constexpr std::string_view kFail = "/test.Echo/Fail";
constexpr std::string_view kDefer = "/test.Echo/Defer";

std::string frame(std::string_view body, uint8_t flags = 0) {
  uint8_t prefix[5];
  write_message_prefix(prefix, static_cast<uint32_t>(body.size()));
  prefix[0] = flags;
  return std::string(reinterpret_cast<char*>(prefix), 5) + std::string(body);
}

// Echo answers inline, Fail fails with `fail_message`, Defer parks the call.
struct TestService : ServerHandler {
  int resolve_method(std::string_view path) override {
    if (path == kEcho) return 0;
    if (path == kFail) return 1;
    if (path == kDefer) return 2;
    return -1;
  }
  void on_call(ServerCall& call) override {
    ++calls;
    requests.push_back(call.request().to_string());
    request_data.push_back(call.request().data());
    had_deadline.push_back(call.has_deadline());
    if (call.has_deadline()) deadlines.push_back(call.deadline());
    switch (call.method()) {
      case 0:
        session->respond(call, {}, call.request());
        break;
      case 1:
        session->fail(call, StatusCode::not_found, fail_message);
        break;
      default:
        deferred.push_back(&call);
    }
  }
  void on_call_end(ServerCall& call, bool responded) override {
    ends.push_back(responded);
    deferred.erase(std::remove(deferred.begin(), deferred.end(), &call), deferred.end());
  }

  ServerSession* session = nullptr;
  int calls = 0;
  std::vector<std::string> requests;
  std::vector<const uint8_t*> request_data;
  std::vector<bool> had_deadline;
  std::vector<std::chrono::steady_clock::time_point> deadlines;
  std::vector<ServerCall*> deferred;
  std::vector<bool> ends;
  std::string fail_message = "no such thing";
};

struct Server {
  explicit Server(ServerOptions options = {}) : session(service, options, slab, &pool) {
    service.session = &session;
  }
  Result<void> feed(const Bytes& b) { return session.feed(b); }
  Result<void> produce(IoChain& out) { return session.produce(out); }
  bool wants_write() const { return session.wants_write(); }

  SlabAllocator slab;
  BufferPool pool;
  TestService service;
  ServerSession session;
};

struct Response {
  Status status;
  std::optional<Bytes> message;
  int count = 0;
};

struct Client : ClientHandler {
  explicit Client(ClientOptions options = {}) : session(*this, options, slab, &pool) {}
  void on_response(uint64_t tag, Status status, std::optional<Bytes> message) override {
    Response& r = responses[tag];
    r.status = std::move(status);
    r.message = std::move(message);
    ++r.count;
  }
  Result<void> call(std::string_view path, std::string_view message, uint64_t tag,
                    uint64_t timeout_ns = 0) {
    return session.start_unary(path, {}, Bytes::copy(message), tag, timeout_ns);
  }
  Result<void> feed(const Bytes& b) { return session.feed(b); }
  Result<void> produce(IoChain& out) { return session.produce(out); }
  bool wants_write() const { return session.wants_write(); }

  SlabAllocator slab;
  BufferPool pool;
  std::map<uint64_t, Response> responses;
  ClientSession session;
};

// ---- gRPC client <-> server --------------------------------------------------

TEST(GrpcSession, UnaryCallEchoesTheRequest) {
  Server server;
  Client client;
  ASSERT_TRUE(client.call(kEcho, "ping", 1));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_EQ(client.responses.count(1), 1u);
  const Response& r = client.responses[1];
  EXPECT_EQ(r.count, 1);
  EXPECT_TRUE(r.status.ok()) << r.status.message;
  ASSERT_TRUE(r.message);
  EXPECT_EQ(r.message->view(), "ping");
  EXPECT_EQ(server.service.ends, std::vector<bool>{true});
  EXPECT_TRUE(server.session.idle());
  EXPECT_EQ(client.session.calls_in_flight(), 0u);
}

TEST(GrpcSession, EmptyMessagesAreMessagesToo) {
  Server server;
  Client client;
  ASSERT_TRUE(client.call(kEcho, "", 7));
  ASSERT_GE(test::pump(client, server), 0);
  const Response& r = client.responses[7];
  EXPECT_TRUE(r.status.ok()) << r.status.message;
  ASSERT_TRUE(r.message);
  EXPECT_TRUE(r.message->empty());
}

TEST(GrpcSession, RequestAndResponseShareTheReceiveBuffer) {
  Server server;
  Client client;
  ASSERT_TRUE(client.call(kEcho, std::string(4096, 'z'), 1));
  IoChain out;
  bool referenced = false;
  std::vector<Bytes> fed;
  for (int round = 0; round < 10; ++round) {
    out.clear();
    ASSERT_TRUE(client.produce(out));
    if (!out.empty()) {
      fed.push_back(Bytes::copy(flatten(out)));
      ASSERT_TRUE(server.feed(fed.back()));
    }
    out.clear();
    ASSERT_TRUE(server.produce(out));
    for (size_t i = 0; i < out.iov_count(); ++i)
      for (const uint8_t* p : server.service.request_data)
        referenced |= out.iov()[i].iov_base == p && out.iov()[i].iov_len == 4096;
    if (!out.empty()) {
      ASSERT_TRUE(client.feed(Bytes::copy(flatten(out))));
    }
  }
  ASSERT_EQ(server.service.request_data.size(), 1u);
  // The request is a slice of what the server was fed, and the echo is
  // sent from that same memory.
  bool sliced = false;
  for (const Bytes& b : fed)
    sliced |= test::points_into(b, server.service.request_data[0], 4096);
  EXPECT_TRUE(sliced);
  EXPECT_TRUE(referenced);
  EXPECT_TRUE(client.responses[1].status.ok());
  EXPECT_EQ(client.responses[1].message->view(), std::string(4096, 'z'));
}

TEST(GrpcSession, LargeMessagesSpanFramesAndAreGathered) {
  Server server;
  Client client;
  std::string big = test::random_bytes(3u << 20, 11);
  ASSERT_TRUE(client.call(kEcho, big, 1));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_TRUE(client.responses[1].status.ok()) << client.responses[1].status.message;
  EXPECT_TRUE(client.responses[1].message->view() == big);
}

TEST(GrpcSession, UnknownMethodIsUnimplemented) {
  Server server;
  Client client;
  ASSERT_TRUE(client.call("/test.Echo/Nope", "x", 1));
  ASSERT_GE(test::pump(client, server), 0);
  const Response& r = client.responses[1];
  EXPECT_EQ(r.status.code, StatusCode::unimplemented);
  EXPECT_NE(r.status.message.find("/test.Echo/Nope"), std::string::npos) << r.status.message;
  EXPECT_FALSE(r.message);
  EXPECT_EQ(server.service.calls, 0);
  EXPECT_TRUE(server.service.ends.empty());  // never dispatched, so never ended
  EXPECT_TRUE(server.session.idle());
}

TEST(GrpcSession, OversizeIsResourceExhaustedAndTheSessionCarriesOn) {
  ServerOptions opts;
  opts.max_receive_message_size = 1024;
  Server server(opts);
  Client client;
  ASSERT_TRUE(client.call(kEcho, std::string(1025, 'o'), 1));
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_EQ(client.responses[1].status.code, StatusCode::resource_exhausted);
  EXPECT_NE(client.responses[1].status.message.find("1024"), std::string::npos);
  ASSERT_TRUE(client.call(kEcho, std::string(1024, 'k'), 2));
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_TRUE(client.responses[2].status.ok()) << client.responses[2].status.message;
  EXPECT_EQ(client.responses[2].message->size(), 1024u);
  // Far over the limit, across several DATA frames.
  ASSERT_TRUE(client.call(kEcho, std::string(300'000, 'o'), 3));
  ASSERT_TRUE(client.call(kEcho, "after", 4));
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_EQ(client.responses[3].status.code, StatusCode::resource_exhausted);
  EXPECT_TRUE(client.responses[4].status.ok());
  EXPECT_TRUE(server.session.idle());
}

TEST(GrpcSession, HandlerFailureReachesTheClientWithItsMessage) {
  Server server;
  Client client;
  server.service.fail_message = "100% broken\nline two caf\xc3\xa9";
  ASSERT_TRUE(client.call(kFail, "x", 1));
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_EQ(client.responses[1].status.code, StatusCode::not_found);
  EXPECT_EQ(client.responses[1].status.message, server.service.fail_message);
  // fail() after dispatch sends a status, which on_call_end reports as
  // responded (the Flame server relies on this to tell deadlines from resets).
  EXPECT_EQ(server.service.ends, std::vector<bool>{true});
}

TEST(GrpcSession, DeferredAnswersInAnyOrder) {
  Server server;
  Client client;
  for (uint64_t tag = 1; tag <= 10; ++tag)
    ASSERT_TRUE(client.call(kDefer, "m" + std::to_string(tag), tag));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_EQ(server.service.deferred.size(), 10u);
  EXPECT_TRUE(client.responses.empty());
  EXPECT_EQ(server.session.calls(), 10u);
  // Answer newest first; each response must reach its own call.
  std::vector<ServerCall*> calls(server.service.deferred.rbegin(), server.service.deferred.rend());
  for (ServerCall* c : calls)
    server.session.respond(*c, {}, Bytes::copy("re:" + c->request().to_string()));
  ASSERT_GE(test::pump(client, server), 0);
  for (uint64_t tag = 1; tag <= 10; ++tag) {
    ASSERT_TRUE(client.responses[tag].status.ok());
    EXPECT_EQ(client.responses[tag].message->view(), "re:m" + std::to_string(tag));
  }
  EXPECT_TRUE(server.session.idle());
}

TEST(GrpcSession, ResponseHeadBytesPrecedeTheBody) {
  Server server;
  Client client;
  ASSERT_TRUE(client.call(kDefer, "x", 1));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_EQ(server.service.deferred.size(), 1u);
  const uint8_t head[] = {'H', 'E', 'A', 'D', ':'};
  server.session.respond(*server.service.deferred[0], head, Bytes::copy(std::string_view("body")));
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_EQ(client.responses[1].message->view(), "HEAD:body");
}

TEST(GrpcSession, TimeoutBecomesADeadline) {
  Server server;
  Client client;
  auto before = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.call(kEcho, "t", 1, 30'000'000'000ull));
  ASSERT_TRUE(client.call(kEcho, "t", 2));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_EQ(server.service.had_deadline.size(), 2u);
  EXPECT_TRUE(server.service.had_deadline[0]);
  EXPECT_FALSE(server.service.had_deadline[1]);
  ASSERT_EQ(server.service.deadlines.size(), 1u);
  EXPECT_GE(server.service.deadlines[0], before + std::chrono::seconds(30));
}

TEST(GrpcSession, DestroyingTheSessionEndsParkedCalls) {
  SlabAllocator slab;
  BufferPool pool;
  TestService service;
  auto session = std::make_unique<ServerSession>(service, ServerOptions{}, slab, &pool);
  service.session = session.get();
  Client client;
  ASSERT_TRUE(client.call(kDefer, "a", 1));
  ASSERT_TRUE(client.call(kDefer, "b", 2));
  ASSERT_GE(test::pump(client, *session), 0);
  ASSERT_EQ(service.deferred.size(), 2u);
  session.reset();
  EXPECT_EQ(service.ends, (std::vector<bool>{false, false}));
  EXPECT_TRUE(service.deferred.empty());
}

TEST(GrpcSession, ManyCallsWithMixedOutcomesOnOneSession) {
  ServerOptions opts;
  opts.max_receive_message_size = 100;
  Server server(opts);
  Client client;
  for (uint64_t i = 0; i < 200; ++i) {
    switch (i % 4) {
      case 0:
        ASSERT_TRUE(client.call(kEcho, std::to_string(i), i));
        break;
      case 1:
        ASSERT_TRUE(client.call("/unknown", "x", i));
        break;
      case 2:
        ASSERT_TRUE(client.call(kEcho, std::string(101, 'x'), i));
        break;
      case 3:
        ASSERT_TRUE(client.call(kFail, "x", i));
        break;
    }
    if (i % 7 == 0) {
      ASSERT_GE(test::pump(client, server), 0);
    }
  }
  ASSERT_GE(test::pump(client, server), 0);
  const StatusCode expected[] = {StatusCode::ok, StatusCode::unimplemented,
                                 StatusCode::resource_exhausted, StatusCode::not_found};
  for (uint64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(client.responses[i].status.code, expected[i % 4]) << i;
    EXPECT_EQ(client.responses[i].count, 1) << i;
    if (i % 4 == 0) {
      EXPECT_EQ(client.responses[i].message->view(), std::to_string(i));
    }
  }
  EXPECT_TRUE(server.session.idle());
}

TEST(GrpcSession, RequestSplitAtEveryByteBoundary) {
  // The client's whole first flight: preface, SETTINGS, HEADERS, DATA.
  auto first_flight = [] {
    auto client = std::make_unique<Client>();
    EXPECT_TRUE(client->call(kEcho, "split me", 1, 5'000'000'000ull));
    IoChain out;
    EXPECT_TRUE(client->produce(out));
    return std::make_pair(std::move(client), flatten(out));
  };
  std::string reference = first_flight().second;
  ASSERT_GT(reference.size(), 24u + 9u);
  for (const test::Split& split : test::all_splits(Bytes::copy(reference))) {
    SCOPED_TRACE(split.name);
    auto [client, wire] = first_flight();
    ASSERT_EQ(wire, reference);  // the client is deterministic
    Server server;
    for (const Bytes& chunk : split.chunks)
      ASSERT_TRUE(server.feed(Bytes::copy(chunk.view())));
    ASSERT_EQ(server.service.requests, std::vector<std::string>{"split me"});
    ASSERT_GE(test::pump(*client, server), 0);
    EXPECT_TRUE(client->responses[1].status.ok());
    EXPECT_EQ(client->responses[1].message->view(), "split me");
  }
}

// ---- requests only a raw HTTP/2 client sends --------------------------------

struct RawClient : http2::SessionHandler {
  struct Stream {
    std::map<std::string, std::string> fields;  // response headers and trailers
    std::string data;                           // the DATA payloads
    bool closed = false;
    uint32_t close_code = 0;
  };
  RawClient() : session(http2::Role::client, *this, http2::Settings{}, slab) {}

  void on_headers_begin(int32_t) override {}
  void on_header(int32_t id, std::string_view n, std::string_view v) override {
    streams[id].fields[std::string(n)] = std::string(v);
  }
  void on_headers_end(int32_t) override {}
  void on_data(int32_t id, const Bytes& chunk) override { streams[id].data += chunk.to_string(); }
  void on_remote_end(int32_t) override {}
  void on_stream_close(int32_t id, uint32_t code) override {
    streams[id].closed = true;
    streams[id].close_code = code;
  }
  void on_body_end(int32_t) override {}

  Result<void> feed(const Bytes& b) { return session.feed(b); }
  Result<void> produce(IoChain& out) { return session.produce(out); }
  bool wants_write() const { return session.wants_write(); }

  using Fields = std::vector<std::pair<std::string, std::string>>;
  // nullopt body: END_STREAM on the HEADERS frame.
  int32_t request(const Fields& fields, std::optional<std::string> body) {
    std::vector<http2::Header> h;
    for (auto& [n, v] : fields)
      h.push_back({n, v});
    http2::Body* b = nullptr;
    if (body) {
      bodies.emplace_back();
      b = &bodies.back();
      b->reset({}, Bytes::copy(*body));
    }
    return session.submit_request(h, b);
  }

  SlabAllocator slab;
  std::deque<http2::Body> bodies;  // stable addresses until the streams close
  std::map<int32_t, Stream> streams;
  http2::Session session;
};

RawClient::Fields grpc_fields(std::string_view path = kEcho) {
  return {{":method", "POST"},
          {":scheme", "http"},
          {":path", std::string(path)},
          {":authority", "test"},
          {"content-type", "application/grpc"},
          {"te", "trailers"}};
}

RawClient::Fields without(RawClient::Fields f, std::string_view name) {
  f.erase(std::remove_if(f.begin(), f.end(), [&](auto& p) { return p.first == name; }), f.end());
  return f;
}

// Replaces the field in place (pseudo-headers must stay first), or appends it.
RawClient::Fields with(RawClient::Fields f, std::string_view name, std::string_view value) {
  for (auto& [n, v] : f)
    if (n == name) {
      v = value;
      return f;
    }
  f.emplace_back(name, value);
  return f;
}

struct RawOutcome {
  std::string http_status, grpc_status, grpc_message;
  int calls = 0;
  uint32_t reset_code = 0;  // the stream's HTTP/2 close code
};

RawOutcome raw_call(const RawClient::Fields& fields, std::optional<std::string> body,
                    ServerOptions options = {}) {
  Server server(options);
  RawClient client;
  int32_t id = client.request(fields, std::move(body));
  EXPECT_GT(id, 0);
  EXPECT_GE(test::pump(client, server), 0);
  auto& s = client.streams[id];
  EXPECT_TRUE(s.closed);
  EXPECT_TRUE(server.session.idle());
  return {s.fields[":status"], s.fields["grpc-status"], percent_decode(s.fields["grpc-message"]),
          server.service.calls, s.close_code};
}

TEST(GrpcServerChecks, WellFormedRawRequestIsAnswered) {
  RawOutcome o = raw_call(grpc_fields(), frame("raw"));
  EXPECT_EQ(o.http_status, "200");
  EXPECT_EQ(o.grpc_status, "0");
  EXPECT_EQ(o.calls, 1);
}

TEST(GrpcServerChecks, MissingTeIsInternal) {
  RawOutcome o = raw_call(without(grpc_fields(), "te"), frame("x"));
  EXPECT_EQ(o.http_status, "200");
  EXPECT_EQ(o.grpc_status, "13");
  EXPECT_NE(o.grpc_message.find("te: trailers"), std::string::npos) << o.grpc_message;
  EXPECT_EQ(o.calls, 0);
  // Any other te value gets the same answer: the session checks te itself
  // (nghttp2's HTTP messaging checks are off for gRPC).
  RawOutcome gzip = raw_call(with(grpc_fields(), "te", "gzip"), frame("x"));
  EXPECT_EQ(gzip.grpc_status, "13");
  EXPECT_NE(gzip.grpc_message.find("te: trailers"), std::string::npos) << gzip.grpc_message;
  EXPECT_EQ(gzip.calls, 0);
}

TEST(GrpcServerChecks, NonPostIs405Internal) {
  for (const char* method : {"GET", "PUT"}) {
    RawOutcome o = raw_call(with(grpc_fields(), ":method", method), frame("x"));
    EXPECT_EQ(o.http_status, "405") << method;
    EXPECT_EQ(o.grpc_status, "13") << method;
    EXPECT_NE(o.grpc_message.find(method), std::string::npos) << o.grpc_message;
  }
  // GET without a body, as a browser would send it.
  EXPECT_EQ(raw_call(with(grpc_fields(), ":method", "GET"), std::nullopt).http_status, "405");
}

TEST(GrpcServerChecks, BadContentTypeIs415Internal) {
  for (const char* type : {"application/json", "application/grpcx", "text/plain", ""}) {
    RawOutcome o = raw_call(with(grpc_fields(), "content-type", type), frame("x"));
    EXPECT_EQ(o.http_status, "415") << type;
    EXPECT_EQ(o.grpc_status, "13") << type;
  }
  EXPECT_EQ(raw_call(without(grpc_fields(), "content-type"), frame("x")).http_status, "415");
  for (const char* type :
       {"application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8"})
    EXPECT_EQ(raw_call(with(grpc_fields(), "content-type", type), frame("x")).grpc_status, "0")
        << type;
}

TEST(GrpcServerChecks, BadGrpcTimeoutIsInternal) {
  for (const char* t : {"1x", "123456789S", "", "S", "-5S"}) {
    RawOutcome o = raw_call(with(grpc_fields(), "grpc-timeout", t), frame("x"));
    EXPECT_EQ(o.http_status, "200") << t;
    EXPECT_EQ(o.grpc_status, "13") << t;
    EXPECT_NE(o.grpc_message.find("grpc-timeout"), std::string::npos) << o.grpc_message;
  }
  EXPECT_EQ(raw_call(with(grpc_fields(), "grpc-timeout", "12345678n"), frame("x")).grpc_status,
            "0");
}

TEST(GrpcServerChecks, HeaderListAtAndPastTheLimit) {
  // Sum of name + value + 32 per field (RFC 9113 §6.5.2).
  RawClient::Fields base = grpc_fields();
  size_t base_size = 0;
  for (auto& [n, v] : base)
    base_size += n.size() + v.size() + 32;
  ServerOptions opts;
  opts.max_header_list_size = base_size + 32 + 1 + 100;  // room for x-pad: 100 bytes
  std::string pad(100, 'p');
  EXPECT_EQ(raw_call(with(base, "x", pad), frame("x"), opts).grpc_status, "0");
  RawOutcome o = raw_call(with(base, "x", pad + "p"), frame("x"), opts);
  EXPECT_EQ(o.grpc_status, "8");
  EXPECT_EQ(o.calls, 0);
}

// When the HTTP/2 layer's own header limit stops the block first, the call
// still gets RESOURCE_EXHAUSTED (not a bare RST_STREAM) and the session goes on.
TEST(GrpcServerChecks, Http2HeaderLimitIsResourceExhausted) {
  RawClient::Fields base = grpc_fields();
  size_t base_size = 0;
  for (auto& [n, v] : base)
    base_size += n.size() + v.size() + 32;
  ServerOptions opts;
  opts.http2.max_header_list_size = static_cast<uint32_t>(base_size + 32 + 1 + 50);
  RawOutcome o = raw_call(with(base, "x", std::string(100, 'p')), frame("x"), opts);
  EXPECT_EQ(o.grpc_status, "8");
  EXPECT_EQ(o.calls, 0);
  EXPECT_EQ(raw_call(base, frame("x"), opts).grpc_status, "0");
}

TEST(GrpcServerChecks, OverlongPathIsUnimplemented) {
  RawOutcome o = raw_call(grpc_fields("/" + std::string(300, 'a')), frame("x"));
  EXPECT_EQ(o.grpc_status, "12");
}

TEST(GrpcServerChecks, NoMessageIsInternal) {
  RawOutcome o = raw_call(grpc_fields(), std::nullopt);
  EXPECT_EQ(o.grpc_status, "13");
  EXPECT_NE(o.grpc_message.find("without a message"), std::string::npos) << o.grpc_message;
  EXPECT_EQ(raw_call(grpc_fields(), "").grpc_status, "13");  // empty body: no message either
}

TEST(GrpcServerChecks, TwoMessagesOnAUnaryMethodIsInternal) {
  RawOutcome o = raw_call(grpc_fields(), frame("one") + frame("two"));
  EXPECT_EQ(o.grpc_status, "13");
  EXPECT_NE(o.grpc_message.find("more than one"), std::string::npos) << o.grpc_message;
  EXPECT_EQ(o.calls, 0);
}

TEST(GrpcServerChecks, StreamEndingInsideAMessageIsInternal) {
  RawOutcome o = raw_call(grpc_fields(), frame("complete").substr(0, 9));
  EXPECT_EQ(o.grpc_status, "13");
  EXPECT_NE(o.grpc_message.find("9 of 13"), std::string::npos) << o.grpc_message;
  EXPECT_EQ(raw_call(grpc_fields(), std::string("\0\0", 2)).grpc_status, "13");
}

TEST(GrpcServerChecks, CompressedMessageIsUnimplemented) {
  RawOutcome o = raw_call(grpc_fields(), frame("zip", 1));
  EXPECT_EQ(o.grpc_status, "12");
  EXPECT_NE(o.grpc_message.find("compress"), std::string::npos) << o.grpc_message;
  EXPECT_EQ(raw_call(grpc_fields(), frame("bad", 2)).grpc_status, "13");
}

TEST(GrpcServerChecks, ClientResetEndsAParkedCallUnanswered) {
  Server server;
  RawClient client;
  int32_t id = client.request(grpc_fields(kDefer), frame("wait"));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_EQ(server.service.deferred.size(), 1u);
  client.session.submit_rst_stream(id, NGHTTP2_CANCEL);
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_TRUE(server.service.deferred.empty());
  EXPECT_EQ(server.service.ends, std::vector<bool>{false});
  EXPECT_TRUE(server.session.idle());
}

// ---- the gRPC client against a raw HTTP/2 server -----------------------------

struct RawServer : http2::SessionHandler {
  RawServer() : session(http2::Role::server, *this, http2::Settings{}, slab) {}
  void on_headers_begin(int32_t) override {}
  void on_header(int32_t, std::string_view, std::string_view) override {}
  void on_headers_end(int32_t) override {}
  void on_data(int32_t, const Bytes&) override {}
  void on_remote_end(int32_t id) override { answer(id); }
  void on_stream_close(int32_t, uint32_t) override {}
  void on_body_end(int32_t id) override {
    std::vector<http2::Header> h;
    for (auto& [n, v] : trailers)
      h.push_back({n, v});
    session.submit_trailers(id, h);
  }
  void answer(int32_t id) {
    std::vector<http2::Header> h;
    for (auto& [n, v] : headers)
      h.push_back({n, v});
    if (body) {
      b.reset({}, Bytes::copy(*body));
      b.trailers = !trailers.empty();
      session.submit_response(id, h, &b);
    } else {
      session.submit_response(id, h, nullptr);
    }
  }
  Result<void> feed(const Bytes& in) { return session.feed(in); }
  Result<void> produce(IoChain& out) { return session.produce(out); }
  bool wants_write() const { return session.wants_write(); }

  RawClient::Fields headers, trailers;
  std::optional<std::string> body;
  http2::Body b;
  SlabAllocator slab;
  http2::Session session;
};

Response client_against(RawClient::Fields headers, std::optional<std::string> body,
                        RawClient::Fields trailers, ClientOptions options = {}) {
  RawServer server;
  server.headers = std::move(headers);
  server.body = std::move(body);
  server.trailers = std::move(trailers);
  Client client(options);
  EXPECT_TRUE(client.call(kEcho, "x", 1));
  EXPECT_GE(test::pump(client, server), 0);
  EXPECT_EQ(client.responses.count(1), 1u);
  return client.responses[1];
}

TEST(GrpcClient, MapsResponsesWithoutAProperStatus) {
  // No grpc-status at all.
  EXPECT_EQ(client_against({{":status", "200"}}, frame("m"), {{"x", "y"}}).status.code,
            StatusCode::internal);
  // HTTP errors without grpc-status map per the spec's table.
  EXPECT_EQ(client_against({{":status", "503"}}, std::nullopt, {}).status.code,
            StatusCode::unavailable);
  EXPECT_EQ(client_against({{":status", "404"}}, std::nullopt, {}).status.code,
            StatusCode::unimplemented);
  // An out-of-range grpc-status is UNKNOWN.
  EXPECT_EQ(
      client_against({{":status", "200"}, {"grpc-status", "99"}}, std::nullopt, {}).status.code,
      StatusCode::unknown);
}

TEST(GrpcClient, ChecksTheResponseMessage) {
  RawClient::Fields ok = {{"grpc-status", "0"}};
  Response r = client_against({{":status", "200"}}, frame("hi"), ok);
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.message->view(), "hi");
  EXPECT_EQ(client_against({{":status", "200"}}, frame("a") + frame("b"), ok).status.code,
            StatusCode::internal);
  EXPECT_EQ(client_against({{":status", "200"}}, frame("abc").substr(0, 6), ok).status.code,
            StatusCode::internal);
  ClientOptions small;
  small.max_receive_message_size = 3;
  EXPECT_EQ(client_against({{":status", "200"}}, frame("four"), ok, small).status.code,
            StatusCode::resource_exhausted);
  EXPECT_TRUE(client_against({{":status", "200"}}, frame("abc"), ok, small).status.ok());
}

TEST(GrpcClient, TrailersOnlyErrorCarriesTheDecodedMessage) {
  Response r =
      client_against({{":status", "200"}, {"grpc-status", "5"}, {"grpc-message", "gone%20away%"}},
                     std::nullopt, {});
  EXPECT_EQ(r.status.code, StatusCode::not_found);
  EXPECT_EQ(r.status.message, "gone away%");
  EXPECT_FALSE(r.message);
}

// ---- server streaming -------------------------------------------------------

constexpr std::string_view kStream = "/test.Echo/Stream";

// Splits gRPC-framed bytes into messages; nullopt when they do not frame.
std::optional<std::vector<std::string>> unframe(std::string_view d) {
  std::vector<std::string> out;
  while (!d.empty()) {
    if (d.size() < 5 || d[0] != 0) return std::nullopt;
    auto u = [&](size_t i) { return uint32_t(uint8_t(d[i])); };
    uint32_t n = (u(1) << 24) | (u(2) << 16) | (u(3) << 8) | u(4);
    if (d.size() - 5 < n) return std::nullopt;
    out.emplace_back(d.substr(5, n));
    d.remove_prefix(5 + n);
  }
  return out;
}

// Stream parks every call; the test writes and finishes them.
struct StreamService : ServerHandler {
  int resolve_method(std::string_view path) override { return path == kStream ? 0 : -1; }
  void on_call(ServerCall& call) override { parked.push_back(&call); }
  void on_call_end(ServerCall& call, bool responded) override {
    ends.push_back(responded);
    parked.erase(std::remove(parked.begin(), parked.end(), &call), parked.end());
  }
  std::vector<ServerCall*> parked;
  std::vector<bool> ends;
};

struct StreamServer {
  explicit StreamServer(ServerOptions options = {}) : session(service, options, slab, &pool) {}
  Result<void> feed(const Bytes& b) { return session.feed(b); }
  Result<void> produce(IoChain& out) { return session.produce(out); }
  bool wants_write() const { return session.wants_write(); }
  SlabAllocator slab;
  BufferPool pool;
  StreamService service;
  ServerSession session;
};

std::string numbered(int i) {
  return "message " + std::to_string(i);
}

TEST(GrpcStreaming, ManyMessagesThenTrailers) {
  StreamServer server;
  RawClient client;
  int32_t id = client.request(grpc_fields(kStream), frame("go"));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_EQ(server.service.parked.size(), 1u);
  ServerCall& call = *server.service.parked[0];
  EXPECT_EQ(call.request().view(), "go");
  // The head bytes precede the body, as in respond().
  const uint8_t head[] = {'m', ':'};
  for (int i = 0; i < 1000; ++i)
    server.session.write(call, head, Bytes::copy(numbered(i)));
  EXPECT_EQ(call.queued(), 999u);  // the first went straight to HTTP/2
  server.session.finish(call);
  EXPECT_TRUE(call.responded());
  server.session.write(call, {}, Bytes::copy("late"));  // ignored after finish
  ASSERT_GE(test::pump(client, server), 0);
  auto& s = client.streams[id];
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.close_code, 0u);
  EXPECT_EQ(s.fields[":status"], "200");
  EXPECT_EQ(s.fields["grpc-status"], "0");
  EXPECT_EQ(s.fields.count("grpc-message"), 0u);
  auto messages = unframe(s.data);
  ASSERT_TRUE(messages);
  ASSERT_EQ(messages->size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ((*messages)[i], "m:" + numbered(i));
  EXPECT_EQ(server.service.ends, std::vector<bool>{true});
  EXPECT_TRUE(server.session.idle());
}

TEST(GrpcStreaming, WritesAfterTheQueueRanDryResumeTheStream) {
  StreamServer server;
  RawClient client;
  int32_t id = client.request(grpc_fields(kStream), frame(""));
  ASSERT_GE(test::pump(client, server), 0);
  ServerCall& call = *server.service.parked.at(0);
  std::string expected;
  for (int i = 0; i < 5; ++i) {
    server.session.write(call, {}, Bytes::copy(numbered(i)));
    ASSERT_GE(test::pump(client, server), 0);
    expected += frame(numbered(i));
    // Each message is out before the next is written: the stream waited.
    EXPECT_EQ(client.streams[id].data, expected);
    EXPECT_FALSE(client.streams[id].closed);
  }
  server.session.finish(call);
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_TRUE(client.streams[id].closed);
  EXPECT_EQ(client.streams[id].fields["grpc-status"], "0");
  EXPECT_EQ(client.streams[id].data, expected);
}

TEST(GrpcStreaming, ErrorStatusFollowsTheMessagesWritten) {
  StreamServer server;
  RawClient client;
  int32_t id = client.request(grpc_fields(kStream), frame(""));
  ASSERT_GE(test::pump(client, server), 0);
  ServerCall& call = *server.service.parked.at(0);
  server.session.write(call, {}, Bytes::copy("one"));
  server.session.write(call, {}, Bytes::copy("two"));
  // fail() on a streaming call is finish() with that status.
  server.session.fail(call, StatusCode::not_found, "ran out of 100% things");
  ASSERT_GE(test::pump(client, server), 0);
  auto& s = client.streams[id];
  EXPECT_EQ(s.fields["grpc-status"], "5");
  EXPECT_EQ(percent_decode(s.fields["grpc-message"]), "ran out of 100% things");
  EXPECT_EQ(unframe(s.data), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(server.service.ends, std::vector<bool>{true});
}

TEST(GrpcStreaming, FinishWithoutMessagesIsTrailersOnly) {
  for (StatusCode code : {StatusCode::ok, StatusCode::unavailable}) {
    StreamServer server;
    RawClient client;
    int32_t id = client.request(grpc_fields(kStream), frame(""));
    ASSERT_GE(test::pump(client, server), 0);
    server.session.finish(*server.service.parked.at(0), code);
    ASSERT_GE(test::pump(client, server), 0);
    auto& s = client.streams[id];
    EXPECT_EQ(s.fields["grpc-status"], std::to_string(static_cast<int>(code)));
    EXPECT_EQ(s.fields.count("grpc-message"), 0u);
    EXPECT_EQ(s.data, "");
  }
}

TEST(GrpcStreaming, FlowControlHoldsMessagesUntilTheClientReads) {
  StreamServer server;
  RawClient client;
  int32_t id = client.request(grpc_fields(kStream), frame(""));
  ASSERT_GE(test::pump(client, server), 0);
  ServerCall& call = *server.service.parked.at(0);
  // 64 messages of 1 MiB: four times the client's 16 MiB stream window, so
  // the stream stalls and resumes on WINDOW_UPDATEs; bodies go by reference.
  Bytes mib = Bytes::copy(std::string(1u << 20, 'x'));
  for (int i = 0; i < 64; ++i)
    server.session.write(call, {}, mib);
  server.session.finish(call);
  ASSERT_GE(test::pump(client, server), 0);
  auto messages = unframe(client.streams[id].data);
  ASSERT_TRUE(messages);
  EXPECT_EQ(messages->size(), 64u);
  EXPECT_EQ(client.streams[id].fields["grpc-status"], "0");
}

TEST(GrpcStreaming, ClientResetEndsTheStreamUnanswered) {
  StreamServer server;
  RawClient client;
  int32_t id = client.request(grpc_fields(kStream), frame(""));
  ASSERT_GE(test::pump(client, server), 0);
  server.session.write(*server.service.parked.at(0), {}, Bytes::copy("one"));
  ASSERT_GE(test::pump(client, server), 0);
  client.session.submit_rst_stream(id, NGHTTP2_CANCEL);
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_EQ(server.service.ends, std::vector<bool>{false});
  EXPECT_TRUE(server.service.parked.empty());
  EXPECT_TRUE(server.session.idle());
}

TEST(GrpcStreaming, EndCallsCallsBackOnceAndAbandonNever) {
  StreamServer server;
  RawClient client;
  client.request(grpc_fields(kStream), frame(""));
  client.request(grpc_fields(kStream), frame(""));
  ASSERT_GE(test::pump(client, server), 0);
  ASSERT_EQ(server.service.parked.size(), 2u);
  server.session.write(*server.service.parked[0], {}, Bytes::copy("one"));
  server.session.end_calls();
  EXPECT_EQ(server.service.ends, (std::vector<bool>{false, false}));
  EXPECT_TRUE(server.session.idle());

  StreamServer other;
  RawClient c2;
  c2.request(grpc_fields(kStream), frame(""));
  ASSERT_GE(test::pump(c2, other), 0);
  other.session.abandon_calls();
  EXPECT_TRUE(other.service.ends.empty());
  EXPECT_TRUE(other.session.idle());
}

// ---- the gRPC client's streaming calls against the streaming server ---------

struct StreamClient : ClientHandler {
  StreamClient() : session(*this, ClientOptions{}, slab, &pool) {}
  void on_response(uint64_t tag, Status status, std::optional<Bytes> message) override {
    Response& r = responses[tag];
    r.status = std::move(status);
    r.message = std::move(message);
    ++r.count;
  }
  void on_message(uint64_t tag, Bytes message) override {
    messages[tag].push_back(message.to_string());
    if (cancel_at_first && messages[tag].size() == 1) session.cancel(tag);
  }
  Result<void> feed(const Bytes& b) { return session.feed(b); }
  Result<void> produce(IoChain& out) { return session.produce(out); }
  bool wants_write() const { return session.wants_write(); }

  SlabAllocator slab;
  BufferPool pool;
  std::map<uint64_t, Response> responses;
  std::map<uint64_t, std::vector<std::string>> messages;
  bool cancel_at_first = false;
  ClientSession session;
};

TEST(GrpcStreaming, ClientSessionReceivesEveryMessageThenTheStatus) {
  StreamServer server;
  StreamClient client;
  ASSERT_TRUE(client.session.start_server_streaming(kStream, {}, Bytes::copy("go"), 7));
  ASSERT_GE(test::pump(client, server), 0);
  ServerCall& call = *server.service.parked.at(0);
  std::vector<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    expected.push_back(numbered(i));
    server.session.write(call, {}, Bytes::copy(numbered(i)));
    if (i % 100 == 0) {
      ASSERT_GE(test::pump(client, server), 0);  // some while the stream waits
    }
  }
  server.session.finish(call, StatusCode::data_loss, "cut short");
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_EQ(client.messages[7], expected);
  ASSERT_EQ(client.responses[7].count, 1);
  EXPECT_EQ(client.responses[7].status.code, StatusCode::data_loss);
  EXPECT_EQ(client.responses[7].status.message, "cut short");
  EXPECT_FALSE(client.responses[7].message);
  EXPECT_EQ(client.session.calls_in_flight(), 0u);
}

TEST(GrpcStreaming, ClientCancelFromTheMessageCallbackResetsTheStream) {
  StreamServer server;
  StreamClient client;
  client.cancel_at_first = true;
  ASSERT_TRUE(client.session.start_server_streaming(kStream, {}, Bytes::copy(""), 1));
  ASSERT_GE(test::pump(client, server), 0);
  ServerCall& call = *server.service.parked.at(0);
  server.session.write(call, {}, Bytes::copy("a"));
  server.session.write(call, {}, Bytes::copy("b"));  // same flush: dropped after the cancel
  ASSERT_GE(test::pump(client, server), 0);
  EXPECT_EQ(client.messages[1], std::vector<std::string>{"a"});
  ASSERT_EQ(client.responses[1].count, 1);
  EXPECT_EQ(client.responses[1].status.code, StatusCode::cancelled);
  EXPECT_FALSE(client.session.cancel(1));  // already over
  EXPECT_EQ(server.service.ends, std::vector<bool>{false});
  EXPECT_TRUE(server.session.idle());
}

}  // namespace
}  // namespace ember::grpc
