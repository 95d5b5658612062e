// The HTTP/1.1 client against nginx (an independent server): static files,
// keep-alive reuse, HTTPS with a test CA made by the openssl CLI, and
// streamed PUT uploads (nginx's DAV module writes them to disk, where the
// test checks every byte). Skipped when nginx or openssl is missing.
#include <openssl/evp.h>

#include "core/tls.hpp"
#include "tests/unit/http1_client/client_harness.hpp"

namespace ember::http1::test {
namespace {

std::string sha256(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

// Deterministic pseudo-random bytes.
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

class Nginx : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (access("/usr/sbin/nginx", X_OK) != 0 || run_command("openssl version") != 0) return;
    dir_ = new TempDir;
    TempDir& d = *dir_;
    std::filesystem::create_directories(d / "www");
    std::filesystem::create_directories(d / "up");
    std::filesystem::create_directories(d / "tmp");
    write_file(d / "www/small.txt", "hello from nginx\n");
    big_ = new std::string(pattern(5 << 20, 7));
    write_file(d / "www/big.bin", *big_);

    // A test CA, a server certificate for localhost and 127.0.0.1, and a
    // second CA that signed nothing here.
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
    bool ok = make_test_pki(d) &&
              run_command("openssl req -x509" + ec + "-keyout " + (d / "other.key") + " -out " +
                          (d / "other.pem") + " -days 2 -subj /CN=Other-CA") == 0;
    if (!ok) return;

    port_ = free_port();
    tls_port_ = free_port();
    std::string conf =
        "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        "error_log " +
        (d / "error.log") + " info;\npid " + (d / "nginx.pid") +
        ";\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "  access_log off;\n"
        "  client_body_temp_path " +
        (d / "tmp") +
        ";\n"
        "  proxy_temp_path " +
        (d / "tmp") +
        ";\n"
        "  fastcgi_temp_path " +
        (d / "tmp") +
        ";\n"
        "  uwsgi_temp_path " +
        (d / "tmp") +
        ";\n"
        "  scgi_temp_path " +
        (d / "tmp") +
        ";\n"
        "  keepalive_timeout 60s;\n  keepalive_requests 10000;\n"
        "  client_max_body_size 0;\n"
        "  add_header X-Conn $connection always;\n"
        "  add_header X-Conn-Requests $connection_requests always;\n"
        "  server {\n"
        "    listen 127.0.0.1:" +
        std::to_string(port_) +
        ";\n"
        "    root " +
        (d / "www") +
        ";\n"
        "    location /up/ { root " +
        d.path.string() +
        "; dav_methods PUT DELETE;"
        " create_full_put_path on; }\n"
        "  }\n"
        "  server {\n"
        "    listen 127.0.0.1:" +
        std::to_string(tls_port_) +
        " ssl;\n"
        "    ssl_certificate " +
        (d / "srv.pem") +
        ";\n"
        "    ssl_certificate_key " +
        (d / "srv.key") +
        ";\n"
        "    root " +
        (d / "www") +
        ";\n"
        "  }\n"
        "}\n";
    write_file(d / "nginx.conf", conf);
    nginx_ = new Child({"/usr/sbin/nginx", "-p", d.path.string(), "-c", d / "nginx.conf"});
    if (!wait_listening(port_) || !wait_listening(tls_port_)) {
      std::fprintf(stderr, "nginx did not start:\n%s\n", read_file(d / "error.log").c_str());
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

  static std::string url(std::string_view path) {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  static std::string tls_url(std::string_view host, std::string_view path) {
    return "https://" + std::string(host) + ":" + std::to_string(tls_port_) + std::string(path);
  }
  static std::shared_ptr<tls::ClientContext> trust(const std::string& ca) {
    tls::ClientConfig cfg;
    cfg.ca_file = ca;
    auto ctx = tls::ClientContext::create(cfg);
    EXPECT_TRUE(ctx) << ctx.error().message;
    return ctx ? *ctx : nullptr;
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string* big_ = nullptr;
  static inline Child* nginx_ = nullptr;
  static inline uint16_t port_ = 0, tls_port_ = 0;
  static inline bool ready_ = false;
};

ClientOptions big_bodies() {
  ClientOptions o;
  o.max_response_body_bytes = 64u << 20;
  return o;
}

TEST_F(Nginx, SmallAndLargeFiles) {
  Harness h(big_bodies());
  Outcome small = h.fetch({.url = url("/small.txt")});
  ASSERT_TRUE(small.ok) << small.error;
  EXPECT_EQ(small.status, 200);
  EXPECT_EQ(small.body, "hello from nginx\n");
  Outcome big = h.fetch({.url = url("/big.bin")});
  ASSERT_TRUE(big.ok) << big.error;
  EXPECT_EQ(big.body.size(), big_->size());
  EXPECT_EQ(sha256(big.body), sha256(*big_));
  EXPECT_GT(big.chunks, 1u);  // delivered as read slices, not gathered
  Outcome missing = h.fetch({.url = url("/nope")});
  ASSERT_TRUE(missing.ok) << missing.error;
  EXPECT_EQ(missing.status, 404);
}

TEST_F(Nginx, KeepAliveReusesOneConnection) {
  Harness h(big_bodies());
  std::string conn;
  for (int i = 1; i <= 5; ++i) {
    Outcome o = h.fetch({.url = url(i % 2 ? "/small.txt" : "/big.bin")});
    ASSERT_TRUE(o.ok) << o.error;
    if (i == 1) conn = o.header("X-Conn");
    EXPECT_EQ(o.header("X-Conn"), conn);
    EXPECT_EQ(o.header("X-Conn-Requests"), std::to_string(i));
  }
  EXPECT_EQ(h.on_loop([&] { return h.client().connections(); }), 1u);
}

TEST_F(Nginx, HeadHasNoBodyAndKeepsTheConnection) {
  Harness h;
  Outcome a = h.fetch({.method = "HEAD", .url = url("/big.bin")});
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.header("Content-Length"), std::to_string(big_->size()));
  EXPECT_EQ(a.body, "");
  Outcome b = h.fetch({.url = url("/small.txt")});
  ASSERT_TRUE(b.ok) << b.error;
  EXPECT_EQ(b.header("X-Conn"), a.header("X-Conn"));
}

TEST_F(Nginx, ConcurrentRequestsQueueOnOneConnection) {
  ClientOptions o = big_bodies();
  o.max_connections_per_origin = 1;
  Harness h(o);
  Collector c[3];
  std::vector<Result<RequestHandle>> hs;
  for (auto& col : c)
    hs.push_back(h.start({.url = url("/big.bin")}, col));
  std::string conn;
  for (int i = 0; i < 3; ++i) {
    Outcome r = h.wait(std::move(hs[i]), c[i]);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.body.size(), big_->size());
    if (i == 0) conn = r.header("X-Conn");
    EXPECT_EQ(r.header("X-Conn"), conn);
  }
}

TEST_F(Nginx, HttpsWithTestCa) {
  ClientOptions o = big_bodies();
  o.tls = trust(dir_->operator/("ca.pem"));
  Harness h(o);
  for (std::string_view host : {"127.0.0.1", "localhost"}) {
    Outcome r = h.fetch({.url = tls_url(host, "/big.bin")});
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(sha256(r.body), sha256(*big_));
  }
  // Kept alive over TLS too.
  Outcome a = h.fetch({.url = tls_url("localhost", "/small.txt")});
  Outcome b = h.fetch({.url = tls_url("localhost", "/small.txt")});
  ASSERT_TRUE(a.ok && b.ok) << a.error << b.error;
  EXPECT_EQ(a.header("X-Conn"), b.header("X-Conn"));
}

TEST_F(Nginx, HttpsWithWrongCaFails) {
  ClientOptions o;
  o.tls = trust(dir_->operator/("other.pem"));
  Harness h(o);
  std::string u = tls_url("localhost", "/small.txt");
  Outcome r = h.fetch({.url = u});
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.error.starts_with("GET " + u + ": TLS handshake failed: certificate verify failed"))
      << r.error;
}

// Streams `total` bytes of `data` (repeated) in 256 KiB slices; every
// `wait_every`-th pull says "not ready" and resumes from a later loop turn.
struct Upload {
  Bytes data;
  uint64_t total = 0;
  uint64_t pulled = 0;
  int pulls = 0;
  int wait_every = 0;
  Loop* loop = nullptr;
  RequestHandle* handle = nullptr;

  BodySource source(bool known_length) {
    BodySource s;
    s.pull = [this] { return pull(); };
    if (known_length) s.length = total;
    s.rewind = [this] {
      pulled = 0;
      return true;
    };
    return s;
  }
  BodyChunk pull() {
    if (pulled == total) return BodyChunk::end();
    if (wait_every && ++pulls % wait_every == 0) {
      loop->post([this](Loop&) { handle->resume_upload(); });
      return BodyChunk::wait();
    }
    size_t off = static_cast<size_t>(pulled % data.size());
    size_t n =
        static_cast<size_t>(std::min<uint64_t>({256 * 1024, total - pulled, data.size() - off}));
    pulled += n;
    return BodyChunk::data(data.slice(off, n));
  }
};

void put_and_check(Harness& h, Upload& up, bool known_length, const std::string& path,
                   const std::string& file) {
  Collector c;
  RequestHandle handle;
  up.loop = &h.loop();
  up.handle = &handle;
  auto r = h.on_loop([&]() -> Result<RequestHandle> {
    auto started =
        h.client().request({.method = "PUT", .url = path, .source = up.source(known_length)}, c);
    if (started) handle = *started;
    return started;
  });
  Outcome o = h.wait(std::move(r), c, 120s);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_TRUE(o.status == 201 || o.status == 204) << o.status;
  EXPECT_EQ(up.pulled, up.total);
  std::string got = read_file(file);
  ASSERT_EQ(got.size(), up.total);
  std::string expect;
  expect.reserve(static_cast<size_t>(up.total));
  while (expect.size() < up.total)
    expect.append(up.data.view().substr(
        0, std::min<size_t>(up.data.size(), static_cast<size_t>(up.total) - expect.size())));
  EXPECT_EQ(sha256(got), sha256(expect));
}

TEST_F(Nginx, StreamedPutWithContentLength) {
  Harness h;
  Upload up;
  up.data = Bytes::from(pattern(1 << 20, 11));
  up.total = 64ull << 20;
  up.wait_every = 37;
  put_and_check(h, up, true, url("/up/big-cl.bin"), dir_->operator/("up/big-cl.bin"));
}

TEST_F(Nginx, StreamedPutChunked) {
  Harness h;
  Upload up;
  up.data = Bytes::from(pattern((1 << 20) + 13, 5));
  up.total = (8ull << 20) + 7;
  put_and_check(h, up, false, url("/up/big-chunked.bin"), dir_->operator/("up/big-chunked.bin"));
}

TEST_F(Nginx, SourceShorterThanContentLength) {
  Harness h;
  Upload up;
  up.data = Bytes::from(pattern(1000, 3));
  up.total = 1000;
  Collector c;
  BodySource s = up.source(false);
  s.length = 2000;
  std::string u = url("/up/short.bin");
  Outcome o = h.fetch({.method = "PUT", .url = u, .source = std::move(s)});
  EXPECT_EQ(o.error, "PUT " + u + ": body source ended after 1000 of 2000 bytes");
}

}  // namespace
}  // namespace ember::http1::test
