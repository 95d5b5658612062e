// tls::Engine driven in memory: a client engine against a server engine,
// bytes shuttled through IoChains, certificates made at test time.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <random>
#include <thread>

#include "tests/unit/test_util.hpp"
#include "tests/unit/tls/harness.hpp"
#include "tests/unit/tls/pki.hpp"

namespace ember::test {
namespace {

using tls::ClientConfig;
using tls::ClientContext;
using tls::Engine;
using tls::ServerConfig;
using tls::ServerContext;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = new pki::TempDir;
    ca = new pki::Authority(*dir, "ca");
    other_ca = new pki::Authority(*dir, "other-ca");
    ca->issue(*dir, "a", "a.example.com", "DNS:a.example.com");
    ca->issue(*dir, "wild", "*.example.com", "DNS:*.example.com");
    ca->issue(*dir, "default", "default.test", "DNS:localhost,IP:127.0.0.1");
    ca->issue(*dir, "expired", "localhost", "DNS:localhost", -1);
    ca->issue(*dir, "rsa", "rsa.test", "DNS:localhost,IP:127.0.0.1", 30, true);
    other_ca->issue(*dir, "foreign", "foreign.test", "DNS:localhost,IP:127.0.0.1");
  }
  static void TearDownTestSuite() {
    delete other_ca;
    delete ca;
    delete dir;
  }

  static ServerConfig::Certificate cert(const std::string& name,
                                        std::vector<std::string> hosts = {}) {
    return {dir->file(name + ".pem"), dir->file(name + ".key"), std::move(hosts)};
  }

  // a.example.com, *.example.com, and the default (listed last on purpose).
  static ServerConfig server_config() {
    ServerConfig c;
    c.certificates = {cert("a", {"a.example.com"}), cert("wild", {"*.example.com"}),
                      cert("default")};
    c.alpn = {"h2", "http/1.1"};
    return c;
  }

  static ClientConfig client_config() {
    ClientConfig c;
    c.ca_file = ca->cert_file;
    c.alpn = {"h2", "http/1.1"};
    return c;
  }

  static std::shared_ptr<ServerContext> server(ServerConfig c = server_config()) {
    auto r = ServerContext::create(std::move(c));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }

  static std::shared_ptr<ClientContext> client(ClientConfig c = client_config()) {
    auto r = ClientContext::create(std::move(c));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }

  static ClientConfig unverified() {
    ClientConfig c = client_config();
    c.verify_peer = false;
    return c;
  }

  static inline pki::TempDir* dir = nullptr;
  static inline pki::Authority* ca = nullptr;
  static inline pki::Authority* other_ca = nullptr;
};

// ---- handshakes --------------------------------------------------------------

TEST_F(TlsTest, Tls13HandshakeAlpnSniAndData) {
  auto sctx = server();
  auto cctx = client();
  Pair p(*cctx, *sctx, "a.example.com");
  ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
  for (Side* s : {&p.client, &p.server}) {
    EXPECT_EQ(s->engine->version(), "TLSv1.3");
    EXPECT_EQ(s->engine->alpn(), "h2");
    EXPECT_FALSE(s->engine->resumed());
    EXPECT_EQ(s->sink.handshakes, 1);
    EXPECT_FALSE(s->engine->wants_write());
  }
  EXPECT_EQ(p.server.engine->server_name(), "a.example.com");
  EXPECT_EQ(p.client.engine->server_name(), "a.example.com");
  EXPECT_EQ(p.client.engine->peer_subject(), "CN=a.example.com,O=Ember Test");
  EXPECT_EQ(p.server.engine->peer_subject(), "");  // no client certificate

  p.send(p.client, p.server, "GET / HTTP/1.1\r\n\r\n");
  p.send(p.server, p.client, "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(p.server.sink.data, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(p.client.sink.data, "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_TRUE(p.server.sink.all_pooled);
  EXPECT_TRUE(p.client.error.empty() && p.server.error.empty());
}

TEST_F(TlsTest, Tls12Handshake) {
  for (bool cap_client : {true, false}) {
    SCOPED_TRACE(cap_client ? "client max TLSv1.2" : "server max TLSv1.2");
    ServerConfig sc = server_config();
    ClientConfig cc = client_config();
    (cap_client ? cc.max_version : sc.max_version) = "TLSv1.2";
    auto sctx = server(sc);
    auto cctx = client(cc);
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
    EXPECT_EQ(p.client.engine->version(), "TLSv1.2");
    EXPECT_EQ(p.server.engine->version(), "TLSv1.2");
    EXPECT_EQ(p.client.engine->alpn(), "h2");
    EXPECT_EQ(p.server.engine->server_name(), "a.example.com");
    p.send(p.client, p.server, "ping");
    p.send(p.server, p.client, "pong");
    EXPECT_EQ(p.server.sink.data, "ping");
    EXPECT_EQ(p.client.sink.data, "pong");
  }
}

TEST_F(TlsTest, RsaCertificate) {
  ServerConfig sc;
  sc.certificates = {cert("rsa")};
  auto sctx = server(sc);
  auto cctx = client();
  for (const char* v : {"TLSv1.2", "TLSv1.3"}) {
    ClientConfig cc = client_config();
    cc.max_version = v;
    auto c = client(cc);
    Pair p(*c, *sctx, "localhost");
    ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
    EXPECT_EQ(p.client.engine->version(), v);
    EXPECT_EQ(p.client.engine->peer_subject(), "CN=rsa.test,O=Ember Test");
  }
}

TEST_F(TlsTest, NoCommonVersion) {
  ServerConfig sc = server_config();
  sc.min_version = "TLSv1.3";
  ClientConfig cc = client_config();
  cc.max_version = "TLSv1.2";
  auto sctx = server(sc);
  auto cctx = client(cc);
  Pair p(*cctx, *sctx, "a.example.com");
  EXPECT_FALSE(p.handshake());
  EXPECT_EQ(p.server.error,
            "TLS handshake failed: no TLS version in common (unsupported protocol)");
  EXPECT_EQ(p.client.error,
            "TLS handshake failed: peer sent a fatal alert (tlsv1 alert protocol version) for "
            "host a.example.com");
}

// ---- ALPN ----------------------------------------------------------------------

struct AlpnCase {
  std::vector<std::string> server, client;
  std::string expected;  // negotiated protocol
};

TEST_F(TlsTest, AlpnServerPreference) {
  const AlpnCase cases[] = {
      {{"h2", "http/1.1"}, {"h2", "http/1.1"}, "h2"},
      {{"h2", "http/1.1"}, {"http/1.1", "h2"}, "h2"},  // the server's order wins
      {{"http/1.1", "h2"}, {"h2", "http/1.1"}, "http/1.1"},
      {{"h2", "http/1.1"}, {"http/1.1"}, "http/1.1"},
      {{"h2", "http/1.1"}, {"spdy/3", "h2"}, "h2"},
      {{"h2", "http/1.1"}, {}, ""},  // client offers none: no ALPN
      {{}, {"h2", "http/1.1"}, ""},  // server ignores ALPN
  };
  for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
    for (const AlpnCase& c : cases) {
      SCOPED_TRACE(std::string(version) + " client offers " + std::to_string(c.client.size()) +
                   ", expect " + c.expected);
      ServerConfig sc = server_config();
      sc.alpn = c.server;
      ClientConfig cc = client_config();
      cc.alpn = c.client;
      cc.max_version = version;
      auto sctx = server(sc);
      auto cctx = client(cc);
      Pair p(*cctx, *sctx, "a.example.com");
      ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
      EXPECT_EQ(p.client.engine->alpn(), c.expected);
      EXPECT_EQ(p.server.engine->alpn(), c.expected);
    }
  }
}

TEST_F(TlsTest, AlpnNoOverlapIsFatal) {
  for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
    SCOPED_TRACE(version);
    ClientConfig cc = client_config();
    cc.alpn = {"spdy/3", "acme-tls/1"};
    cc.max_version = version;
    auto sctx = server();
    auto cctx = client(cc);
    Pair p(*cctx, *sctx, "a.example.com");
    EXPECT_FALSE(p.handshake());
    EXPECT_EQ(p.server.error,
              "TLS handshake failed: no ALPN protocol in common (no application protocol)");
    EXPECT_EQ(p.client.error,
              "TLS handshake failed: peer sent a fatal alert (tlsv1 alert no application "
              "protocol) for host a.example.com");
  }
}

TEST_F(TlsTest, BadAlpnConfig) {
  ServerConfig sc = server_config();
  sc.alpn = {"h2", ""};
  auto r = ServerContext::create(sc);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "TLS: ALPN protocol names must be 1..255 bytes, got \"\"");
  ClientConfig cc = client_config();
  cc.alpn = {std::string(256, 'x')};
  auto c = ClientContext::create(cc);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message.substr(0, 47), "TLS: ALPN protocol names must be 1..255 bytes, ");
  cc.alpn = {std::string(255, 'x')};  // at the limit
  EXPECT_TRUE(ClientContext::create(cc));
}

// ---- SNI ----------------------------------------------------------------------

TEST_F(TlsTest, SniPicksCertificate) {
  auto sctx = server();
  auto cctx = client(unverified());
  const std::pair<const char*, const char*> cases[] = {
      {"a.example.com", "CN=a.example.com,O=Ember Test"},
      {"A.Example.COM", "CN=a.example.com,O=Ember Test"},   // case-insensitive
      {"a.example.com.", "CN=a.example.com,O=Ember Test"},  // trailing dot
      {"b.example.com", "CN=*.example.com,O=Ember Test"},   // wildcard
      {"x.y.example.com", "CN=default.test,O=Ember Test"},  // wildcard covers one label
      {"example.com", "CN=default.test,O=Ember Test"},
      {"other.org", "CN=default.test,O=Ember Test"},
      {"127.0.0.1", "CN=default.test,O=Ember Test"},  // no SNI for an IP
  };
  for (auto [host, subject] : cases) {
    SCOPED_TRACE(host);
    Pair p(*cctx, *sctx, host);
    ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
    EXPECT_EQ(p.client.engine->peer_subject(), subject);
    if (std::string_view(host) == "127.0.0.1")
      EXPECT_EQ(p.server.engine->server_name(), "");
    else
      EXPECT_EQ(p.server.engine->server_name(), host);
  }
}

TEST_F(TlsTest, SniVerifiedWildcardAndIp) {
  auto sctx = server();
  auto cctx = client();
  for (const char* host : {"b.example.com", "127.0.0.1", "localhost", "a.example.com"}) {
    SCOPED_TRACE(host);
    Pair p(*cctx, *sctx, host);
    EXPECT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
  }
}

TEST_F(TlsTest, NoDefaultCertificateFallsBackToFirst) {
  ServerConfig sc = server_config();
  sc.certificates.pop_back();  // only a.example.com and *.example.com
  auto sctx = server(sc);
  auto cctx = client(unverified());
  Pair p(*cctx, *sctx, "other.org");
  ASSERT_TRUE(p.handshake());
  EXPECT_EQ(p.client.engine->peer_subject(), "CN=a.example.com,O=Ember Test");
}

TEST_F(TlsTest, DuplicateHostGoesToFirstCertificate) {
  ServerConfig sc = server_config();
  sc.certificates.insert(sc.certificates.begin(), cert("rsa", {"B.example.com"}));
  sc.certificates.push_back(cert("foreign", {"b.example.com"}));
  auto sctx = server(sc);
  auto cctx = client(unverified());
  Pair p(*cctx, *sctx, "b.example.com");
  ASSERT_TRUE(p.handshake());
  EXPECT_EQ(p.client.engine->peer_subject(), "CN=rsa.test,O=Ember Test");
}

TEST_F(TlsTest, BadHostPatterns) {
  for (const char* h :
       {"", "*", "*.", "a.*.com", "foo*.example.com", ".example.com", "**.example.com"}) {
    SCOPED_TRACE(h);
    ServerConfig sc;
    sc.certificates = {cert("a", {h})};
    auto r = ServerContext::create(sc);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "TLS: bad host name \"" + std::string(h) + "\" for certificate " +
                                     dir->file("a.pem") +
                                     " (exact name or \"*.\" followed by a name)");
  }
}

// ---- resumption ------------------------------------------------------------------

// Full handshake, then a second connection through the same client context.
void expect_resumes(ClientContext& cctx, ServerContext& sctx, const std::string& version) {
  {
    Pair p(cctx, sctx, "a.example.com", 8443);
    ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
    EXPECT_EQ(p.client.engine->version(), version);
    EXPECT_FALSE(p.client.engine->resumed());
    EXPECT_FALSE(p.server.engine->resumed());
  }
  EXPECT_EQ(cctx.cached_sessions(), 1u);
  Pair p(cctx, sctx, "a.example.com", 8443);
  ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
  EXPECT_TRUE(p.client.engine->resumed());
  EXPECT_TRUE(p.server.engine->resumed());
  EXPECT_EQ(p.client.engine->alpn(), "h2");
  EXPECT_EQ(p.server.engine->server_name(), "a.example.com");
  p.send(p.client, p.server, "resumed");
  EXPECT_EQ(p.server.sink.data, "resumed");
}

TEST_F(TlsTest, ResumptionTls13Ticket) {
  auto sctx = server();
  auto cctx = client();
  expect_resumes(*cctx, *sctx, "TLSv1.3");
}

TEST_F(TlsTest, ResumptionTls12Ticket) {
  ClientConfig cc = client_config();
  cc.max_version = "TLSv1.2";
  auto sctx = server();
  auto cctx = client(cc);
  expect_resumes(*cctx, *sctx, "TLSv1.2");
}

TEST_F(TlsTest, ResumptionFromServerCacheWithoutTickets) {
  for (const char* version : {"TLSv1.2", "TLSv1.3"}) {
    SCOPED_TRACE(version);
    ServerConfig sc = server_config();
    sc.session_tickets = false;
    ClientConfig cc = client_config();
    cc.max_version = version;
    auto sctx = server(sc);
    auto cctx = client(cc);
    expect_resumes(*cctx, *sctx, version);
  }
}

TEST_F(TlsTest, NoResumptionWithoutTicketsOrCache) {
  ServerConfig sc = server_config();
  sc.session_tickets = false;
  sc.session_cache_size = 0;
  auto sctx = server(sc);
  auto cctx = client();
  for (int i = 0; i < 2; ++i) {
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake());
    EXPECT_FALSE(p.server.engine->resumed());
    EXPECT_FALSE(p.client.engine->resumed());
  }
}

TEST_F(TlsTest, SessionCacheIsKeyedByHostAndPort) {
  auto sctx = server();
  auto cctx = client(unverified());
  {
    Pair p(*cctx, *sctx, "a.example.com", 443);
    ASSERT_TRUE(p.handshake());
  }
  for (auto [host, port, resumes] :
       {std::tuple{"a.example.com", 444, false}, std::tuple{"b.example.com", 443, false},
        std::tuple{"a.example.com", 443, true}}) {
    SCOPED_TRACE(std::string(host) + ":" + std::to_string(port));
    Pair p(*cctx, *sctx, host, static_cast<uint16_t>(port));
    ASSERT_TRUE(p.handshake());
    EXPECT_EQ(p.client.engine->resumed(), resumes);
  }
  cctx->clear_sessions();
  EXPECT_EQ(cctx->cached_sessions(), 0u);
  Pair p(*cctx, *sctx, "a.example.com", 443);
  ASSERT_TRUE(p.handshake());
  EXPECT_FALSE(p.client.engine->resumed());
}

TEST_F(TlsTest, ClientSessionCacheIsBounded) {
  ClientConfig cc = unverified();
  cc.session_cache_size = 2;
  auto sctx = server();
  auto cctx = client(cc);
  for (uint16_t port = 1; port <= 5; ++port) {
    Pair p(*cctx, *sctx, "a.example.com", port);
    ASSERT_TRUE(p.handshake());
    EXPECT_LE(cctx->cached_sessions(), 2u);
  }
  EXPECT_EQ(cctx->cached_sessions(), 2u);
}

TEST_F(TlsTest, TicketFromAnotherServerFallsBackToFullHandshake) {
  auto first = server();
  auto second = server();  // its own ticket keys
  auto cctx = client();
  {
    Pair p(*cctx, *first, "a.example.com");
    ASSERT_TRUE(p.handshake());
  }
  Pair p(*cctx, *second, "a.example.com");
  ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
  EXPECT_FALSE(p.client.engine->resumed());
}

// ---- reload -------------------------------------------------------------------

TEST_F(TlsTest, ReloadSwapsCertificatesForNewHandshakes) {
  pki::TempDir rdir;
  std::string cert_file = rdir.file("live.pem"), key_file = rdir.file("live.key");
  ca->issue(rdir, "live", "first", "DNS:localhost");
  ca->issue(rdir, "next", "second", "DNS:localhost");
  ServerConfig sc;
  sc.certificates = {{cert_file, key_file, {}}};
  auto sctx = server(sc);
  auto cctx = client();

  Pair old(*cctx, *sctx, "localhost");
  ASSERT_TRUE(old.handshake());
  EXPECT_EQ(old.client.engine->peer_subject(), "CN=first,O=Ember Test");

  std::filesystem::copy_file(rdir.file("next.pem"), cert_file,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(rdir.file("next.key"), key_file,
                             std::filesystem::copy_options::overwrite_existing);
  auto r = sctx->reload();
  ASSERT_TRUE(r) << r.error().message;

  cctx->clear_sessions();  // a resumed session shows no certificate
  Pair fresh(*cctx, *sctx, "localhost");
  ASSERT_TRUE(fresh.handshake());
  EXPECT_EQ(fresh.client.engine->peer_subject(), "CN=second,O=Ember Test");

  // The old connection is untouched.
  old.send(old.client, old.server, "still here");
  old.send(old.server, old.client, "me too");
  EXPECT_EQ(old.server.sink.data, "still here");
  EXPECT_EQ(old.client.sink.data, "me too");
  EXPECT_EQ(old.client.engine->peer_subject(), "CN=first,O=Ember Test");

  // Broken files: an error naming the file, and the current set keeps serving.
  struct Breakage {
    std::function<void()> apply;
    std::string error;
  };
  pki::Key stranger = pki::ec_key();
  const Breakage breakages[] = {
      {[&] { pki::write_text(key_file, "not a key\n"); },
       "TLS: no usable PEM private key in " + key_file + ": unsupported"},
      {[&] { pki::write_key(key_file, stranger); },
       "TLS: private key " + key_file + " does not match certificate " + cert_file},
      {[&] { pki::write_text(cert_file, ""); },
       "TLS: no PEM certificate in " + cert_file + ": no start line"},
      {[&] { std::filesystem::remove(cert_file); },
       "TLS: cannot open certificate file " + cert_file + ": No such file or directory"},
  };
  for (const Breakage& b : breakages) {
    SCOPED_TRACE(b.error);
    std::filesystem::copy_file(rdir.file("next.pem"), cert_file,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(rdir.file("next.key"), key_file,
                               std::filesystem::copy_options::overwrite_existing);
    b.apply();
    auto bad = sctx->reload();
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message, b.error);
    EXPECT_EQ(ERR_peek_error(), 0u);
    cctx->clear_sessions();
    Pair p(*cctx, *sctx, "localhost");
    ASSERT_TRUE(p.handshake()) << p.client.error;
    EXPECT_EQ(p.client.engine->peer_subject(), "CN=second,O=Ember Test");
  }
}

TEST_F(TlsTest, ReloadWhileHandshaking) {
  auto sctx = server();
  auto cctx = client();
  std::atomic<bool> stop{false};
  std::atomic<int> reloads{0}, failures{0};
  std::thread reloader([&] {
    while (!stop.load()) {
      if (!sctx->reload()) failures.fetch_add(1);
      reloads.fetch_add(1);
    }
  });
  for (int i = 0; i < 40 || reloads.load() < 5; ++i) {
    cctx->clear_sessions();
    Pair p(*cctx, *sctx, i % 2 ? "a.example.com" : "b.example.com");
    ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
  }
  stop.store(true);
  reloader.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(TlsTest, CreateErrorsNameTheFile) {
  ServerConfig sc;
  auto none = ServerContext::create(sc);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "TLS: a server needs at least one certificate");

  sc.certificates = {cert("a"), {dir->file("missing.pem"), dir->file("a.key"), {}}};
  auto missing = ServerContext::create(sc);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "TLS: cannot open certificate file " +
                                         dir->file("missing.pem") + ": No such file or directory");

  sc.certificates = {{dir->file("a.pem"), dir->file("wild.key"), {}}};
  auto mismatch = ServerContext::create(sc);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().message, "TLS: private key " + dir->file("wild.key") +
                                          " does not match certificate " + dir->file("a.pem"));

  sc = server_config();
  sc.min_version = "SSLv3";
  auto version = ServerContext::create(sc);
  ASSERT_FALSE(version);
  EXPECT_EQ(version.error().message,
            "TLS: unknown min_version \"SSLv3\" (expected TLSv1.2 or TLSv1.3)");

  sc = server_config();
  sc.min_version = "TLSv1.3";
  sc.max_version = "TLSv1.2";
  auto inverted = ServerContext::create(sc);
  ASSERT_FALSE(inverted);
  EXPECT_EQ(inverted.error().message, "TLS: min_version TLSv1.3 is above max_version TLSv1.2");

  sc = server_config();
  sc.ciphers = "NO-SUCH-CIPHER";
  auto ciphers = ServerContext::create(sc);
  ASSERT_FALSE(ciphers);
  EXPECT_EQ(ciphers.error().message, "TLS: bad cipher list \"NO-SUCH-CIPHER\": no cipher match");

  ClientConfig cc;
  cc.ca_file = dir->file("nope.pem");
  auto ca_missing = ClientContext::create(cc);
  ASSERT_FALSE(ca_missing);
  EXPECT_EQ(ca_missing.error().message,
            "TLS: cannot open CA file " + dir->file("nope.pem") + ": No such file or directory");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// ---- verification ---------------------------------------------------------------

TEST_F(TlsTest, VerifyFailuresAreClear) {
  struct Case {
    std::string name, host, client_error, server_error;
    ClientConfig config;
    std::string cert;  // server's only certificate
  };
  ClientConfig other = client_config();
  other.ca_file = other_ca->cert_file;
  const Case cases[] = {
      {"wrong CA", "a.example.com",
       "TLS handshake failed: certificate verify failed (unable to get local issuer "
       "certificate) for host a.example.com",
       "TLS handshake failed: peer sent a fatal alert (tlsv1 alert unknown ca)", other, ""},
      {"wrong host name", "wrong.example.net",
       "TLS handshake failed: certificate verify failed (hostname mismatch) for host "
       "wrong.example.net",
       "TLS handshake failed: peer sent a fatal alert (sslv3 alert bad certificate)",
       client_config(), ""},
      {"wrong IP", "127.0.0.2",
       "TLS handshake failed: certificate verify failed (IP address mismatch) for host "
       "127.0.0.2",
       "TLS handshake failed: peer sent a fatal alert (sslv3 alert bad certificate)",
       client_config(), ""},
      {"expired", "localhost",
       "TLS handshake failed: certificate verify failed (certificate has expired) for host "
       "localhost",
       "TLS handshake failed: peer sent a fatal alert (sslv3 alert certificate expired)",
       client_config(), "expired"},
      {"foreign CA", "127.0.0.1",
       "TLS handshake failed: certificate verify failed (unable to get local issuer "
       "certificate) for host 127.0.0.1",
       "TLS handshake failed: peer sent a fatal alert (tlsv1 alert unknown ca)", client_config(),
       "foreign"},
  };
  for (const Case& c : cases) {
    for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
      SCOPED_TRACE(c.name + " " + version);
      ServerConfig sc = server_config();
      if (!c.cert.empty()) sc.certificates = {cert(c.cert)};
      ClientConfig cc = c.config;
      cc.max_version = version;
      auto sctx = server(sc);
      auto cctx = client(cc);
      Pair p(*cctx, *sctx, c.host);
      EXPECT_FALSE(p.handshake());
      EXPECT_EQ(p.client.error, c.client_error);
      EXPECT_EQ(p.server.error, c.server_error);
      EXPECT_TRUE(p.client.engine->failed());
      EXPECT_EQ(ERR_peek_error(), 0u);
      // A dead engine keeps answering with its error.
      auto again = p.client.engine->feed(Bytes::copy(std::string_view("x")), p.client.sink);
      ASSERT_FALSE(again);
      EXPECT_EQ(again.error().message, c.client_error);
    }
  }
}

// The intermediate in the certificate file is sent: a client that trusts
// only the root verifies the leaf.
TEST_F(TlsTest, ChainFromTheCertificateFileIsSent) {
  pki::TempDir cdir;
  pki::Authority intermediate(cdir, "intermediate", ca);
  intermediate.issue(cdir, "leaf", "chained.test", "DNS:chained.test");
  ServerConfig sc;
  sc.certificates = {{cdir.file("leaf.pem"), cdir.file("leaf.key"), {}}};
  auto sctx = server(sc);
  auto cctx = client();
  for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
    SCOPED_TRACE(version);
    cctx->clear_sessions();
    Pair p(*cctx, *sctx, "chained.test");
    SSL_set_max_proto_version(p.client.engine->native_handle(),
                              std::string_view(version) == "TLSv1.2" ? TLS1_2_VERSION : 0);
    ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(p.client.engine->native_handle());
    ASSERT_NE(chain, nullptr);
    EXPECT_EQ(sk_X509_num(chain), 2);
  }
  // Without the intermediate the same client cannot verify.
  pki::write_cert(cdir.file("leaf.pem"), [&] {
    BIO* b = BIO_new_file(cdir.file("leaf.pem").c_str(), "r");
    pki::Cert leaf(PEM_read_bio_X509(b, nullptr, nullptr, nullptr));
    BIO_free(b);
    return leaf;
  }());
  ASSERT_TRUE(sctx->reload());
  cctx->clear_sessions();
  Pair p(*cctx, *sctx, "chained.test");
  EXPECT_FALSE(p.handshake());
  EXPECT_EQ(p.client.error,
            "TLS handshake failed: certificate verify failed (unable to get local issuer "
            "certificate) for host chained.test");
}

TEST_F(TlsTest, UnverifiedClientAcceptsAnything) {
  ServerConfig sc;
  sc.certificates = {cert("foreign")};
  auto sctx = server(sc);
  auto cctx = client(unverified());
  Pair p(*cctx, *sctx, "wrong.example.net");
  EXPECT_TRUE(p.handshake()) << p.client.error;
}

// ---- bulk data and chunking ---------------------------------------------------------

TEST_F(TlsTest, MiBEachWayAtRandomSplits) {
  for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
    SCOPED_TRACE(version);
    ClientConfig cc = client_config();
    cc.max_version = version;
    auto sctx = server();
    auto cctx = client(cc);
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake());
    std::mt19937 rng(7);
    Chunker random_split = [&rng](size_t, size_t) {
      return std::uniform_int_distribution<size_t>(1, 40000)(rng);
    };
    const std::string up = random_bytes(1 << 20, 1), down = random_bytes(1 << 20, 2);
    for (auto [from, to, plain] :
         {std::tuple{&p.client, &p.server, &up}, std::tuple{&p.server, &p.client, &down}}) {
      IoChain in, out;
      in.append(Bytes::copy(*plain));
      ASSERT_TRUE(from->engine->encrypt(in, out));
      EXPECT_TRUE(in.empty());
      // Records land back to back in a few large pool buffers.
      EXPECT_LE(out.iov_count(), 6u);
      deliver(flat(out), *to, random_split);
      ASSERT_EQ(to->error, "");
      EXPECT_TRUE(to->sink.data == *plain);
      // Whole 16 KiB records, never split across calls.
      for (size_t n : to->sink.sizes)
        EXPECT_EQ(n % 16384, 0u) << n;
      EXPECT_TRUE(to->sink.all_pooled);
    }
  }
}

// Small iovecs are gathered into full records; big ones encrypt in place.
TEST_F(TlsTest, RecordsAreFull) {
  auto sctx = server();
  auto cctx = client();
  Pair p(*cctx, *sctx, "a.example.com");
  ASSERT_TRUE(p.handshake());
  ASSERT_EQ(p.client.engine->version(), "TLSv1.3");
  // HTTP/2-like: a 9-byte frame header before each 16 KiB payload, plus
  // many tiny pieces.
  std::string expected;
  IoChain in, out;
  const std::string payload = random_bytes(16384, 3);
  for (int i = 0; i < 20; ++i) {
    in.append_copy(std::string(9, static_cast<char>('a' + i)));
    in.append(Bytes::unowned(std::string_view(payload)));
    expected += std::string(9, static_cast<char>('a' + i)) + payload;
  }
  for (int i = 0; i < 1000; ++i) {
    in.append(Bytes::copy(std::string_view("xyz")));
    expected += "xyz";
  }
  ASSERT_TRUE(p.client.engine->encrypt(in, out));
  size_t records = (expected.size() + 16383) / 16384;
  // TLS 1.3 with AES-GCM or ChaCha20-Poly1305: 5 header + 1 type + 16 tag.
  EXPECT_EQ(out.size(), expected.size() + records * 22);
  deliver(flat(out), p.server);
  EXPECT_EQ(p.server.sink.data, expected);

  // A lone full-size iovec: exactly one full record per 16 KiB.
  IoChain big, big_out;
  big.append(Bytes::copy(random_bytes(3 * 16384, 4)));
  ASSERT_TRUE(p.client.engine->encrypt(big, big_out));
  EXPECT_EQ(big_out.size(), 3 * (16384 + 22));
}

TEST_F(TlsTest, HandshakeAtEverySplitSize) {
  ServerConfig sc = server_config();
  auto sctx = server(sc);
  ClientConfig cc = client_config();
  cc.session_cache_size = 0;  // every run is a full handshake
  auto cctx = client(cc);
  size_t largest = 0;
  {
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake());
    for (Side* s : {&p.client, &p.server})
      for (const std::string& f : s->flights)
        largest = std::max(largest, f.size());
  }
  ASSERT_GT(largest, 200u);
  RecordProperty("largest_flight", std::to_string(largest));
  for (size_t k = 1; k <= largest; ++k) {
    SCOPED_TRACE("chunks of " + std::to_string(k));
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake(chunks_of(k))) << p.client.error << " / " << p.server.error;
    p.send(p.client, p.server, "after the handshake", chunks_of(k));
    ASSERT_EQ(p.server.sink.data, "after the handshake");
    ASSERT_EQ(p.server.sink.handshakes, 1);
  }
}

TEST_F(TlsTest, ResumedHandshakeAtEverySplitSize) {
  auto sctx = server();
  auto cctx = client();
  {
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake());
  }
  size_t largest = 0;
  {
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake());
    ASSERT_TRUE(p.server.engine->resumed());
    for (Side* s : {&p.client, &p.server})
      for (const std::string& f : s->flights)
        largest = std::max(largest, f.size());
  }
  RecordProperty("largest_flight", std::to_string(largest));
  for (size_t k = 1; k <= largest; ++k) {
    SCOPED_TRACE("chunks of " + std::to_string(k));
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake(chunks_of(k))) << p.client.error << " / " << p.server.error;
    ASSERT_TRUE(p.server.engine->resumed());
  }
}

// The handshake's first flight and application data in one read.
TEST_F(TlsTest, ClientFinishedAndDataInOneRead) {
  auto sctx = server();
  auto cctx = client();
  Pair p(*cctx, *sctx, "a.example.com");
  ASSERT_TRUE(transfer(p.client, p.server));  // ClientHello
  ASSERT_TRUE(transfer(p.server, p.client));  // ServerHello .. Finished
  ASSERT_TRUE(p.client.engine->handshake_done());
  // The client's Finished and its first request leave together.
  IoChain in, out;
  in.append(Bytes::copy(std::string_view("early request")));
  ASSERT_TRUE(p.client.engine->encrypt(in, out));
  deliver(flat(out), p.server, nullptr);
  EXPECT_EQ(p.server.error, "");
  EXPECT_EQ(p.server.sink.handshakes, 1);
  EXPECT_FALSE(p.server.sink.early_plaintext);
  EXPECT_EQ(p.server.sink.data, "early request");
}

// A TLS 1.3 KeyUpdate asking for one back: OpenSSL sends the reply ahead of
// the next record it writes (RFC 8446 §4.6.3 asks no sooner), so nothing is
// left waiting for produce().
TEST_F(TlsTest, KeyUpdateIsAnsweredWithTheNextWrite) {
  auto sctx = server();
  auto cctx = client();
  Pair p(*cctx, *sctx, "a.example.com");
  ASSERT_TRUE(p.handshake());
  SSL* server_ssl = p.server.engine->native_handle();
  ASSERT_EQ(SSL_key_update(p.client.engine->native_handle(), SSL_KEY_UPDATE_REQUESTED), 1);
  p.send(p.client, p.server, "rekeyed");  // the KeyUpdate goes out ahead of the data
  EXPECT_EQ(p.server.sink.data, "rekeyed");
  EXPECT_FALSE(p.server.engine->wants_write());
  EXPECT_EQ(SSL_get_key_update_type(server_ssl), SSL_KEY_UPDATE_NOT_REQUESTED);
  p.send(p.server, p.client, "b");
  EXPECT_EQ(SSL_get_key_update_type(server_ssl), SSL_KEY_UPDATE_NONE);
  for (int i = 0; i < 3; ++i) {
    p.send(p.client, p.server, "a");
    p.send(p.server, p.client, "b");
  }
  EXPECT_EQ(p.server.sink.data, "rekeyedaaa");
  EXPECT_EQ(p.client.sink.data, "bbbb");
  EXPECT_EQ(p.client.error + p.server.error, "");
}

// The client context's certificate reaches a server that asks for one.
TEST_F(TlsTest, ClientCertificateIsSent) {
  ClientConfig cc = client_config();
  cc.cert_file = dir->file("default.pem");
  cc.key_file = dir->file("default.key");
  auto sctx = server();
  auto cctx = client(cc);
  for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
    SCOPED_TRACE(version);
    cctx->clear_sessions();
    Pair p(*cctx, *sctx, "a.example.com");
    SSL_set_max_proto_version(p.client.engine->native_handle(),
                              std::string_view(version) == "TLSv1.2" ? TLS1_2_VERSION : 0);
    // Asking is not part of ServerConfig yet; use the handle.
    SSL_set_verify(p.server.engine->native_handle(), SSL_VERIFY_PEER,
                   [](int, X509_STORE_CTX*) { return 1; });
    ASSERT_TRUE(p.handshake()) << p.client.error << " / " << p.server.error;
    EXPECT_EQ(p.server.engine->peer_subject(), "CN=default.test,O=Ember Test");
  }
  cc.key_file = dir->file("a.key");
  auto bad = ClientContext::create(cc);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "TLS: private key " + dir->file("a.key") +
                                     " does not match certificate " + dir->file("default.pem"));
}

TEST_F(TlsTest, EncryptBeforeHandshakeKeepsPlaintext) {
  auto sctx = server();
  auto cctx = client();
  Pair p(*cctx, *sctx, "a.example.com");
  IoChain in, out;
  in.append(Bytes::copy(std::string_view("queued")));
  ASSERT_TRUE(p.client.engine->encrypt(in, out));
  EXPECT_EQ(in.size(), 6u);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(p.client.engine->wants_write());  // the ClientHello
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.client.engine->encrypt(in, out));
  EXPECT_TRUE(in.empty());
  deliver(flat(out), p.server, nullptr);
  EXPECT_EQ(p.server.sink.data, "queued");
}

// ---- malformed input -----------------------------------------------------------------

Bytes bytes_of(std::initializer_list<uint8_t> b) {
  return Bytes::copy(std::span<const uint8_t>(b.begin(), b.size()));
}

TEST_F(TlsTest, GarbageBeforeHandshake) {
  auto sctx = server();
  struct Case {
    const char* name;
    Bytes input;
    std::string error;
  };
  const Case cases[] = {
      {"plain HTTP", Bytes::copy(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
       "TLS handshake failed: peer sent plain HTTP to a TLS port (http request)"},
      {"proxy CONNECT", Bytes::copy(std::string_view("CONNECT x:443 HTTP/1.1\r\n\r\n")),
       "TLS handshake failed: peer sent plain HTTP to a TLS port (https proxy request)"},
      {"oversized record", bytes_of({0x16, 0x03, 0x01, 0x48, 0x01}),
       "TLS handshake failed: peer sent a record larger than allowed (packet length too long)"},
      // SSLv2-format ClientHello (still parsed for compatibility) offering
      // only an RSA key exchange suite, which the EC certificates cannot do.
      {"SSLv2-style hello",
       bytes_of(
           {0x80, 0x0c, 0x01, 0x03, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2f}),
       "TLS handshake failed: no cipher suite in common (no shared cipher)"},
      {"application data first", bytes_of({0x17, 0x03, 0x03, 0x00, 0x01, 0x00}),
       "TLS handshake failed: peer sent a message out of order (unexpected message)"},
      {"empty handshake records, over and over",
       [] {
         std::string r;
         for (int i = 0; i < 40; ++i)
           r += std::string("\x16\x03\x01\x00\x00", 5);
         return Bytes::copy(r);
       }(),
       "TLS handshake failed: peer sent a malformed message (record too small)"},
      {"truncated ClientHello body",
       bytes_of({0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x02, 0x03, 0x03}),
       "TLS handshake failed: peer sent a malformed message (length mismatch)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    BufferPool pool;
    auto e = Engine::server(*sctx, pool);
    Collect sink;
    auto r = e->feed(c.input, sink);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, c.error);
    EXPECT_EQ(ERR_peek_error(), 0u);
    EXPECT_EQ(sink.handshakes, 0);
    // An alert is queued for a TLS peer; a plain HTTP client gets none.
    IoChain out;
    EXPECT_FALSE(e->produce(out));
    EXPECT_EQ(out.size() > 0, c.error.find("plain HTTP") == std::string::npos);
  }
}

TEST_F(TlsTest, RandomGarbageNeverCrashes) {
  auto sctx = server();
  std::mt19937 rng(11);
  for (int i = 0; i < 500; ++i) {
    BufferPool pool;
    auto e = Engine::server(*sctx, pool);
    Collect sink;
    std::string input = random_bytes(rng() % 3000 + 1, rng());
    if (i % 2) {  // make it look like a handshake record to get deeper
      input[0] = 0x16;
      if (input.size() > 2) input[1] = 0x03, input[2] = 0x01;
    }
    Bytes all = Bytes::copy(input);
    size_t off = 0;
    while (off < all.size()) {
      size_t n = std::min<size_t>(rng() % 64 + 1, all.size() - off);
      auto r = e->feed(all.slice(off, n), sink);
      off += n;
      if (!r) {
        EXPECT_EQ(r.error().message.rfind("TLS handshake failed: ", 0), 0u) << r.error().message;
        break;
      }
    }
    IoChain out;
    (void)e->produce(out);
    EXPECT_EQ(ERR_peek_error(), 0u);
  }
}

TEST_F(TlsTest, GarbageAfterHandshake) {
  auto sctx = server();
  auto cctx = client();
  struct Case {
    const char* name;
    std::function<std::string(std::string)> mangle;  // of a valid record
    std::string error;
  };
  const Case cases[] = {
      {"flipped byte",
       [](std::string r) {
         r[r.size() / 2] ^= 1;
         return r;
       },
       "TLS: a record failed authentication (corrupt or forged) (decryption failed or bad "
       "record mac)"},
      {"record longer than allowed",
       [](std::string) { return std::string("\x17\x03\x03\x48\x01", 5); },
       "TLS: peer sent a record larger than allowed (packet length too long)"},
      {"record at the limit, not decryptable",
       [](std::string) {
         return std::string("\x17\x03\x03\x41\x00", 5) + std::string(0x4100, 'x');
       },
       "TLS: a record failed authentication (corrupt or forged) (decryption failed or bad "
       "record mac)"},
      {"one past the limit",
       [](std::string) {
         return std::string("\x17\x03\x03\x41\x01", 5) + std::string(0x4101, 'x');
       },
       "TLS: peer sent a record larger than allowed (encrypted length too long)"},
      {"plaintext handshake record",
       [](std::string) { return std::string("\x16\x03\x03\x00\x04\x01\x00\x00\x00", 9); },
       "TLS: peer sent a record of the wrong type (bad record type)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake());
    IoChain in, out;
    in.append(Bytes::copy(std::string_view("hello")));
    ASSERT_TRUE(p.client.engine->encrypt(in, out));
    deliver(c.mangle(flat(out)), p.server, nullptr);
    EXPECT_EQ(p.server.error, c.error);
    EXPECT_EQ(p.server.sink.data, "");
    EXPECT_EQ(ERR_peek_error(), 0u);
    // The server's alert reaches the client as an error.
    transfer(p.server, p.client);
    EXPECT_EQ(p.client.error.rfind("TLS: peer sent a fatal alert (", 0), 0u) << p.client.error;
  }
}

// ---- close_notify --------------------------------------------------------------------

TEST_F(TlsTest, CloseNotifyBothWays) {
  for (bool client_first : {true, false}) {
    SCOPED_TRACE(client_first ? "client closes first" : "server closes first");
    auto sctx = server();
    auto cctx = client();
    Pair p(*cctx, *sctx, "a.example.com");
    ASSERT_TRUE(p.handshake());
    Side& first = client_first ? p.client : p.server;
    Side& second = client_first ? p.server : p.client;
    first.engine->shutdown();
    EXPECT_TRUE(first.engine->wants_write());
    ASSERT_TRUE(transfer(first, second));
    EXPECT_TRUE(second.sink.closed);
    EXPECT_TRUE(second.engine->peer_closed());
    EXPECT_FALSE(first.engine->peer_closed());
    // Input after close_notify is ignored.
    EXPECT_TRUE(second.engine->feed(Bytes::copy(std::string_view("junk")), second.sink));
    // The side that closed may not write; the other replies with its own.
    IoChain in, out;
    in.append(Bytes::copy(std::string_view("late")));
    auto late = first.engine->encrypt(in, out);
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().message, "TLS: encrypt() after shutdown()");
    second.engine->shutdown();
    ASSERT_TRUE(transfer(second, first));
    EXPECT_TRUE(first.sink.closed);
    EXPECT_TRUE(first.engine->peer_closed());
    EXPECT_FALSE(p.client.engine->wants_write());
    EXPECT_FALSE(p.server.engine->wants_write());
    EXPECT_EQ(p.client.error + p.server.error, "");
  }
}

TEST_F(TlsTest, HalfCloseStillDeliversData) {
  auto sctx = server();
  auto cctx = client();
  Pair p(*cctx, *sctx, "a.example.com");
  ASSERT_TRUE(p.handshake());
  p.client.engine->shutdown();
  ASSERT_TRUE(transfer(p.client, p.server));
  ASSERT_TRUE(p.server.sink.closed);
  // The server finishes its answer after the client's close_notify.
  p.send(p.server, p.client, "last words");
  EXPECT_EQ(p.server.error, "");
  EXPECT_EQ(p.client.sink.data, "last words");
}

TEST_F(TlsTest, ShutdownBeforeHandshakeSendsNothing) {
  auto sctx = server();
  auto cctx = client();
  {
    // A client shut down before its first produce() never says hello.
    Pair p(*cctx, *sctx, "a.example.com");
    p.client.engine->shutdown();
    EXPECT_FALSE(p.client.engine->wants_write());
    IoChain out;
    ASSERT_TRUE(p.client.engine->produce(out));
    EXPECT_TRUE(out.empty());
  }
  // A server shut down mid-handshake sends the flight it already wrote and
  // no close_notify after it.
  Pair p(*cctx, *sctx, "a.example.com");
  ASSERT_TRUE(transfer(p.client, p.server));
  ASSERT_TRUE(p.server.engine->wants_write());
  p.server.engine->shutdown();
  ASSERT_TRUE(transfer(p.server, p.client));
  EXPECT_TRUE(p.client.engine->handshake_done());
  EXPECT_FALSE(p.client.engine->peer_closed());
  EXPECT_EQ(p.client.error, "");
}

// A sink that answers from inside on_plaintext (the glue's inline reply).
TEST_F(TlsTest, SinkMayEncryptAndShutdownFromCallback) {
  auto sctx = server();
  auto cctx = client();
  Pair p(*cctx, *sctx, "a.example.com");
  ASSERT_TRUE(p.handshake());
  struct Echo : tls::Sink {
    Engine* engine = nullptr;
    IoChain out;
    void on_plaintext(const Bytes& b) override {
      IoChain in;
      in.append(b);
      ASSERT_TRUE(engine->encrypt(in, out));
      engine->shutdown();
    }
  } echo;
  echo.engine = p.server.engine.get();
  IoChain in, out;
  in.append(Bytes::copy(std::string_view("echo me")));
  ASSERT_TRUE(p.client.engine->encrypt(in, out));
  ASSERT_TRUE(p.server.engine->feed(Bytes::copy(flat(out)), echo));
  ASSERT_TRUE(p.server.engine->produce(echo.out));  // close_notify after the echo
  deliver(flat(echo.out), p.client, nullptr);
  EXPECT_EQ(p.client.sink.data, "echo me");
  EXPECT_TRUE(p.client.sink.closed);
}

}  // namespace
}  // namespace ember::test
