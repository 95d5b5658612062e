// The HTTP client (protocols/http/client.hpp) and its HTTP/2 half against
// nginx, an independent server: HTTP/2 over TLS chosen with ALPN, the
// fallback to HTTP/1.1 for a TLS server without h2, h2c with prior
// knowledge, many requests multiplexed on one connection, GOAWAY after
// keepalive_requests (refused streams go again on a new connection), PUT
// bodies in memory and streamed (nginx's DAV module writes them to disk),
// limits, timeouts, cancel, pause and resume. Raw sockets stand in for
// servers that misbehave. Skipped when nginx or openssl is missing.
#include <set>

#include "core/tls.hpp"
#include "protocols/http/client.hpp"
#include "tests/unit/http_client/harness.hpp"

namespace ember::http::test {
namespace {

using http1::test::Child;
using http1::test::TempDir;

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

// The protocol nginx answered with, from its $server_protocol.
std::string proto(const Outcome& o) {
  return o.header("x-proto");
}

class NginxH2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (access("/usr/sbin/nginx", X_OK) != 0 || http1::test::run_command("openssl version") != 0)
      return;
    dir_ = new TempDir;
    TempDir& d = *dir_;
    std::filesystem::create_directories(d / "www");
    std::filesystem::create_directories(d / "up");
    std::filesystem::create_directories(d / "tmp");
    http1::test::write_file(d / "www/small.txt", "hello over h2\n");
    big_ = new std::string(pattern(3 << 20, 11));
    http1::test::write_file(d / "www/big.bin", *big_);
    if (!http1::test::make_test_pki(d)) return;
    h2_port_ = http1::test::free_port();
    h1_port_ = http1::test::free_port();
    h2c_port_ = http1::test::free_port();
    auto server = [&](uint16_t port, std::string_view how, std::string_view extra) {
      return "  server {\n    listen 127.0.0.1:" + std::to_string(port) + std::string(how) +
             ";\n    ssl_certificate " + (d / "srv.pem") + ";\n    ssl_certificate_key " +
             (d / "srv.key") + ";\n    root " + (d / "www") + ";\n    location /up/ { root " +
             d.path.string() + "; dav_methods PUT; create_full_put_path on; }\n" +
             std::string(extra) + "  }\n";
    };
    std::string tmp = (d / "tmp");
    std::string conf = "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log " +
                       (d / "error.log") + " info;\npid " + (d / "nginx.pid") +
                       ";\nevents { worker_connections 256; }\nhttp {\n  access_log off;\n" +
                       "  client_body_temp_path " + tmp + ";\n  proxy_temp_path " + tmp +
                       ";\n  fastcgi_temp_path " + tmp + ";\n  uwsgi_temp_path " + tmp +
                       ";\n  scgi_temp_path " + tmp +
                       ";\n  client_max_body_size 0;\n"
                       "  add_header X-Proto $server_protocol always;\n"
                       "  add_header X-Conn $connection always;\n" +
                       server(h2_port_, " ssl http2", "") + server(h1_port_, " ssl", "") +
                       // Five requests per connection, then GOAWAY.
                       server(h2c_port_, " http2", "    keepalive_requests 5;\n") + "}\n";
    http1::test::write_file(d / "nginx.conf", conf);
    nginx_ = new Child({"/usr/sbin/nginx", "-p", d.path.string(), "-c", d / "nginx.conf"});
    if (!http1::test::wait_listening(h2_port_) || !http1::test::wait_listening(h1_port_) ||
        !http1::test::wait_listening(h2c_port_)) {
      std::fprintf(stderr, "nginx did not start:\n%s\n",
                   http1::test::read_file(d / "error.log").c_str());
      return;
    }
    ready_ = true;
  }
  static void TearDownTestSuite() {
    delete nginx_;
    delete big_;
    delete dir_;
    nginx_ = nullptr;
    big_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!ready_) GTEST_SKIP() << "nginx or openssl not available";
  }

  static std::string url(uint16_t port, std::string_view path, bool tls = true) {
    return std::string(tls ? "https" : "http") + "://localhost:" + std::to_string(port) +
           std::string(path);
  }
  static ClientOptions trusting(Protocol p = Protocol::automatic) {
    ClientOptions o;
    o.protocol = p;
    o.http1.max_response_body_bytes = 64u << 20;
    tls::ClientConfig cfg;
    cfg.ca_file = *dir_ / "ca.pem";
    o.http1.tls = *tls::ClientContext::create(cfg);
    cfg.alpn = {"h2", "http/1.1"};
    o.h2_tls = *tls::ClientContext::create(cfg);
    return o;
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string* big_ = nullptr;
  static inline Child* nginx_ = nullptr;
  static inline uint16_t h2_port_ = 0, h1_port_ = 0, h2c_port_ = 0;
  static inline bool ready_ = false;
};

TEST_F(NginxH2, AlpnChoosesHttp2AndOneConnectionCarriesEveryRequest) {
  Harness h(trusting());
  Outcome small = h.fetch({.url = url(h2_port_, "/small.txt")});
  ASSERT_TRUE(small.ok) << small.error;
  EXPECT_EQ(small.status, 200);
  EXPECT_EQ(proto(small), "HTTP/2.0");
  EXPECT_EQ(small.body, "hello over h2\n");
  Outcome big = h.fetch({.url = url(h2_port_, "/big.bin")});
  ASSERT_TRUE(big.ok) << big.error;
  EXPECT_EQ(big.body, *big_);
  EXPECT_GT(big.chunks, 1u);  // slices of the reads, not gathered
  Outcome missing = h.fetch({.url = url(h2_port_, "/nope")});
  EXPECT_EQ(missing.status, 404);

  // 200 at once: nginx takes 128 streams at a time; the rest wait their turn.
  std::vector<std::unique_ptr<Collector>> cs;
  std::vector<Result<RequestHandle>> hs;
  for (int i = 0; i < 200; ++i) {
    cs.push_back(std::make_unique<Collector>());
    hs.push_back(h.start({.url = url(h2_port_, i % 10 ? "/small.txt" : "/big.bin")}, *cs.back()));
  }
  std::string conn = small.header("x-conn");
  for (int i = 0; i < 200; ++i) {
    Outcome o = h.wait(std::move(hs[i]), *cs[i]);
    ASSERT_TRUE(o.ok) << i << ": " << o.error;
    EXPECT_EQ(o.body.size(), i % 10 ? 14u : big_->size());
    EXPECT_EQ(o.header("x-conn"), conn) << "every request on the first connection";
  }
  EXPECT_EQ(h.on_loop([&] { return h.client().connections(); }), 1u);
}

TEST_F(NginxH2, ServerWithoutH2GetsHttp11FromTheFirstRequestOn) {
  Harness h(trusting());
  // The first requests find out (and are sent again over HTTP/1.1).
  std::vector<std::unique_ptr<Collector>> cs;
  std::vector<Result<RequestHandle>> hs;
  for (int i = 0; i < 3; ++i) {
    cs.push_back(std::make_unique<Collector>());
    hs.push_back(h.start({.url = url(h1_port_, "/small.txt")}, *cs.back()));
  }
  for (int i = 0; i < 3; ++i) {
    Outcome o = h.wait(std::move(hs[i]), *cs[i]);
    ASSERT_TRUE(o.ok) << o.error;
    EXPECT_EQ(proto(o), "HTTP/1.1");
    EXPECT_EQ(o.body, "hello over h2\n");
  }
  // A PUT with a body too (replayed from the kept request).
  std::string data = pattern(100'000, 3);
  Outcome put = h.fetch({.method = "PUT",
                         .url = url(h1_port_, "/up/one.bin"),
                         .body = Bytes::copy(std::string_view(data))});
  ASSERT_TRUE(put.ok) << put.error;
  EXPECT_EQ(put.status, 201);
  EXPECT_EQ(http1::test::read_file(*dir_ / "up/one.bin"), data);
  // Remembered: no more HTTP/2 attempts.
  Outcome again = h.fetch({.url = url(h1_port_, "/small.txt")});
  EXPECT_EQ(proto(again), "HTTP/1.1");
  EXPECT_EQ(h.on_loop([&] { return h.client().connections(); }), 3u);
}

TEST_F(NginxH2, OnlyHttp1NeverOffersH2) {
  Harness h(trusting(Protocol::http1));
  Outcome o = h.fetch({.url = url(h2_port_, "/small.txt")});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(proto(o), "HTTP/1.1");
}

TEST_F(NginxH2, PutBodiesInMemoryAndStreamed) {
  Harness h(trusting());
  std::string data = pattern(2'500'000, 5);
  Outcome put = h.fetch({.method = "PUT",
                         .url = url(h2_port_, "/up/mem.bin"),
                         .body = Bytes::copy(std::string_view(data))});
  ASSERT_TRUE(put.ok) << put.error;
  EXPECT_EQ(put.status, 201);
  EXPECT_EQ(proto(put), "HTTP/2.0");
  EXPECT_EQ(http1::test::read_file(*dir_ / "up/mem.bin"), data);

  // Streamed in 64 KiB pieces, with a pause in the middle (wait, then
  // resume_upload from a timer).
  size_t off = 0;
  bool waited = false;
  RequestHandle handle;
  Harness* hp = &h;
  http1::BodySource src;
  src.length = data.size();
  src.pull = [&]() -> http1::BodyChunk {
    if (off >= data.size()) return http1::BodyChunk::end();
    if (off >= data.size() / 2 && !waited) {
      waited = true;
      std::thread([hp, &handle] {
        std::this_thread::sleep_for(50ms);
        hp->on_loop([&] { handle.resume_upload(); });
      }).detach();
      return http1::BodyChunk::wait();
    }
    size_t n = std::min<size_t>(65536, data.size() - off);
    auto b = Bytes::copy(std::string_view(data).substr(off, n));
    off += n;
    return http1::BodyChunk::data(std::move(b));
  };
  Collector c;
  auto started = h.on_loop([&] {
    auto r = h.client().request(
        {.method = "PUT", .url = url(h2_port_, "/up/streamed.bin"), .source = std::move(src)}, c);
    if (r) handle = *r;
    return r;
  });
  Outcome o = h.wait(std::move(started), c);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.status, 201);
  EXPECT_TRUE(waited);
  EXPECT_EQ(http1::test::read_file(*dir_ / "up/streamed.bin"), data);
}

TEST_F(NginxH2, PriorKnowledgeAndGoawayAfterFiveRequests) {
  Harness h(trusting(Protocol::h2));
  for (int i = 0; i < 7; ++i) {  // the sixth goes to a second connection
    Outcome o = h.fetch({.url = url(h2c_port_, "/small.txt", false)});
    ASSERT_TRUE(o.ok) << i << ": " << o.error;
    EXPECT_EQ(proto(o), "HTTP/2.0");
  }
  // Twenty at once: nginx answers five per connection and refuses the rest,
  // which go again until every one is answered.
  std::vector<std::unique_ptr<Collector>> cs;
  std::vector<Result<RequestHandle>> hs;
  for (int i = 0; i < 20; ++i) {
    cs.push_back(std::make_unique<Collector>());
    hs.push_back(h.start({.url = url(h2c_port_, "/small.txt", false)}, *cs.back()));
  }
  std::set<std::string> conns;
  for (int i = 0; i < 20; ++i) {
    Outcome o = h.wait(std::move(hs[i]), *cs[i]);
    ASSERT_TRUE(o.ok) << i << ": " << o.error;
    conns.insert(o.header("x-conn"));
  }
  EXPECT_GE(conns.size(), 4u);
}

TEST_F(NginxH2, LimitsCancelPauseAndResume) {
  ClientOptions small = trusting();
  small.http1.max_response_body_bytes = 1 << 20;
  Harness h(small);
  ASSERT_TRUE(h.fetch({.url = url(h2_port_, "/small.txt")}).ok);  // now known as h2
  Outcome over = h.fetch({.url = url(h2_port_, "/big.bin")});
  EXPECT_FALSE(over.ok);
  EXPECT_EQ(over.code, -EMSGSIZE) << over.error;
  EXPECT_NE(over.error.find("GET https://localhost:"), std::string::npos) << over.error;

  // A cancelled request gets no callback; the connection goes on.
  Collector cancelled;
  bool active = h.on_loop([&] {  // in one turn: before any answer can come
    auto hc = h.client().request({.url = url(h2_port_, "/small.txt")}, cancelled);
    if (!hc) return true;
    hc->cancel();
    return hc->active();
  });
  EXPECT_FALSE(active);
  Outcome after = h.fetch({.url = url(h2_port_, "/small.txt")});
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_FALSE(cancelled.out.done);

  // Pause at the first chunk, resume 100 ms later: every byte, in order.
  Harness big(trusting());
  Collector c;
  Harness* bp = &big;
  RequestHandle handle;
  c.body_hook = [&](Collector& self, const Bytes&) {
    if (self.out.chunks != 1) return http1::Action::proceed;
    std::thread([bp, &handle] {
      std::this_thread::sleep_for(100ms);
      bp->on_loop([&] { handle.resume_response(); });
    }).detach();
    return http1::Action::pause;
  };
  auto started = big.on_loop([&] {
    auto r = big.client().request({.url = url(h2_port_, "/big.bin")}, c);
    if (r) handle = *r;
    return r;
  });
  Outcome o = big.wait(std::move(started), c);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body, *big_);
}

// A consumer that cancels its request from on_body, starts another there
// (which gets the same recycled record) and returns pause: the pause was
// the cancelled request's, and the new one runs to its end.
TEST_F(NginxH2, APauseReturnedAfterCancelIsNotTheNextRequests) {
  Harness h(trusting());
  Collector a, b;
  RequestHandle ha;
  std::promise<Result<RequestHandle>> started_b;
  bool once = false;
  a.body_hook = [&](Collector&, const Bytes&) {
    if (once) return http1::Action::proceed;
    once = true;
    ha.cancel();
    // 127.0.0.1: an origin this client has not met (the first was localhost).
    started_b.set_value(h.client().request(
        {.url = "https://127.0.0.1:" + std::to_string(h1_port_) + "/small.txt"}, b));
    return http1::Action::pause;
  };
  ASSERT_TRUE(h.on_loop([&] {
    auto r = h.client().request({.url = url(h2_port_, "/big.bin")}, a);
    if (r) ha = *r;
    return r.has_value();
  }));
  Outcome o = h.wait(started_b.get_future().get(), b, 20s);
  EXPECT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body, "hello over h2\n");
  EXPECT_FALSE(a.out.done);  // cancelled: no callback
}

// A body source whose rewind() (called to send the request again over
// HTTP/1.1) cancels the request: nothing more is sent and no callback follows.
TEST_F(NginxH2, ARewindThatCancelsEndsTheRequestThere) {
  Harness h(trusting());
  Collector c;
  RequestHandle handle;
  bool pulled = false;
  http1::BodySource src;
  src.length = 5;
  src.pull = [&]() -> http1::BodyChunk {
    if (pulled) return http1::BodyChunk::end();
    pulled = true;
    return http1::BodyChunk::data(Bytes::copy(std::string_view("hello")));
  };
  src.rewind = [&] {
    pulled = false;
    handle.cancel();
    return true;
  };
  ASSERT_TRUE(h.on_loop([&] {
    auto r = h.client().request(
        {.method = "PUT", .url = url(h1_port_, "/up/rewound.bin"), .source = std::move(src)}, c);
    if (r) handle = *r;
    return r.has_value();
  }));
  // The origin's refusal of h2 comes back; a request after it shows the
  // client went on (and that HTTP/1.1 is remembered).
  Outcome after = h.fetch({.url = url(h1_port_, "/small.txt")});
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_EQ(proto(after), "HTTP/1.1");
  EXPECT_FALSE(c.out.done);
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "up/rewound.bin"));
}

// An origin that chose HTTP/1.1 is offered h2 again once http1_memory has
// passed (servers get upgraded); it chooses HTTP/1.1 again and is remembered
// again.
TEST_F(NginxH2, AnOriginThatChoseHttp1IsAskedAgainLater) {
  ClientOptions options = trusting();
  options.http1_memory = 2000ms;  // longer than the first fetch takes, even under ASan
  Harness h(std::move(options));
  std::string origin = "localhost:" + std::to_string(h1_port_);
  auto remembered = [&] { return h.on_loop([&] { return h.client().remembers_http1(origin); }); };
  EXPECT_FALSE(remembered());
  Outcome first = h.fetch({.url = url(h1_port_, "/small.txt")});
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(proto(first), "HTTP/1.1");
  EXPECT_TRUE(remembered());
  std::this_thread::sleep_for(2100ms);
  EXPECT_FALSE(remembered());
  Outcome second = h.fetch({.url = url(h1_port_, "/small.txt")});
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_EQ(proto(second), "HTTP/1.1");
  EXPECT_TRUE(remembered());
}

// ---- servers that misbehave (raw sockets, prior knowledge) ---------------------

TEST(H2ClientRaw, ConnectionRefusedNamesTheUrl) {
  uint16_t port = http1::test::free_port();
  Harness h(h2c());
  Outcome o = h.fetch({.url = "http://127.0.0.1:" + std::to_string(port) + "/x"});
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.code, -ECONNREFUSED) << o.error;
  EXPECT_NE(o.error.find("GET http://127.0.0.1:"), std::string::npos) << o.error;
}

TEST(H2ClientRaw, SilentServerTimesOutWaitingForTheHead) {
  RawServer srv([](int fd, int) { http1::test::wait_eof(fd); });
  Harness h(h2c(300ms));
  Outcome o = h.fetch({.url = srv.url("/x")});
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.code, -ETIMEDOUT) << o.error;
  EXPECT_NE(o.error.find("waiting for the response head"), std::string::npos) << o.error;
}

TEST(H2ClientRaw, GarbageIsAProtocolErrorAndAClosedServerIsConnectionLost) {
  RawServer garbage([](int fd, int) {
    http1::test::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    http1::test::wait_eof(fd);
  });
  Harness h(h2c());
  Outcome o = h.fetch({.url = garbage.url("/x")});
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.code, -EPROTO) << o.error;

  RawServer closer([](int fd, int) {
    char buf[256];
    (void)::read(fd, buf, sizeof buf);  // the preface, then hang up
  });
  Outcome c = h.fetch({.url = closer.url("/x")});
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.error.find("connection lost"), std::string::npos) << c.error;
}

}  // namespace
}  // namespace ember::http::test
