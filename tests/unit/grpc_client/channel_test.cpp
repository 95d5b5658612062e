// grpc::Channel on a real loop against grpcio's server (grpc_peer.py): unary
// and server-streaming calls, statuses with messages, deadlines,
// cancellation, a peer killed mid-stream, refused connections, and TLS with a
// CA made by the openssl CLI at test time.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "core/tls.hpp"
#include "tests/unit/grpc_client/harness.hpp"

namespace ember::grpc {
namespace {

using namespace std::chrono_literals;
using namespace test;

TEST(GrpcChannel, UnaryEchoSmallAndLarge) {
  REQUIRE_PEER();
  Peer peer;
  ASSERT_NE(peer.port(), 0);
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  Outcome o = h.unary("/test.Peer/Echo", "hello");
  ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
  EXPECT_EQ(o.unary_message, "hello");
  // 3 MiB: spread over many frames and reads, gathered once.
  std::string big(3u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 131 + 7);
  o = h.unary("/test.Peer/Echo", big);
  ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
  EXPECT_TRUE(o.unary_message == big);
  EXPECT_EQ(h.in_flight(), 0u);
}

TEST(GrpcChannel, UnaryErrorCarriesTheStatusAndMessage) {
  REQUIRE_PEER();
  Peer peer;
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  Outcome o = h.unary("/test.Peer/Fail", "the key");
  ASSERT_TRUE(o.status);
  EXPECT_EQ(o.status->code, StatusCode::not_found);
  EXPECT_EQ(o.status->message, "no such thing: the key");
  EXPECT_FALSE(o.unary_message);
  o = h.unary("/test.Peer/NoSuchMethod", "");
  EXPECT_EQ(o.status->code, StatusCode::unimplemented);
}

// flame-run ends its session from a call's callback: the channel (and its
// session) must survive being destroyed mid-feed.
TEST(GrpcChannel, DestroyedFromItsOwnCallbackMidFeed) {
  REQUIRE_PEER();
  Peer peer;
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  Outcome warm = h.unary("/test.Peer/Echo", "connect first");
  ASSERT_TRUE(warm.status && warm.status->ok());
  EXPECT_EQ(h.destroy_from_callback("/test.Peer/Echo"), 1);
  h.reopen(Channel::tcp("127.0.0.1", peer.port()));
  h.destroy_from_stream_message("/test.Peer/Count", "1000");
  h.reopen(Channel::tcp("127.0.0.1", peer.port()));
  Outcome o = h.unary("/test.Peer/Echo", "still serving");
  ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
  EXPECT_EQ(o.unary_message, "still serving");
}

TEST(GrpcChannel, StreamsAThousandMessagesInOrder) {
  REQUIRE_PEER();
  Peer peer;
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  Outcome o = h.stream("/test.Peer/Count", "1000");
  ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
  ASSERT_EQ(o.messages.size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(o.messages[i], numbered(i));
  // An empty stream is a status alone.
  o = h.stream("/test.Peer/Count", "0");
  EXPECT_TRUE(o.status && o.status->ok());
  EXPECT_TRUE(o.messages.empty());
}

TEST(GrpcChannel, StreamErrorFollowsItsMessages) {
  REQUIRE_PEER();
  Peer peer;
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  Outcome o = h.stream("/test.Peer/CountThenFail", "3");
  ASSERT_TRUE(o.status);
  EXPECT_EQ(o.status->code, StatusCode::resource_exhausted);
  EXPECT_EQ(o.status->message, "quota used up after 3");
  EXPECT_EQ(o.messages, (std::vector<std::string>{numbered(0), numbered(1), numbered(2)}));
}

TEST(GrpcChannel, DeadlinesAreSentAndEnforced) {
  REQUIRE_PEER();
  Peer peer;
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  EXPECT_EQ(h.unary("/test.Peer/Metadata", "", {.timeout = 10s}).unary_message, "timeout");
  EXPECT_EQ(h.unary("/test.Peer/Metadata", "").unary_message, "none");
  auto t0 = std::chrono::steady_clock::now();
  Outcome o = h.unary("/test.Peer/Sleep", "5", {.timeout = 300ms});
  ASSERT_TRUE(o.status);
  EXPECT_EQ(o.status->code, StatusCode::deadline_exceeded) << o.status->message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  // A stream that hangs after its first message ends at the deadline too.
  o = h.stream("/test.Peer/Hang", "", {.timeout = 300ms});
  EXPECT_EQ(o.status->code, StatusCode::deadline_exceeded) << o.status->message;
  EXPECT_EQ(o.messages, std::vector<std::string>{"first"});
  // The connection carries on.
  EXPECT_EQ(h.unary("/test.Peer/Echo", "after").unary_message, "after");
}

TEST(GrpcChannel, CancelEndsTheCallAndTheConnectionCarriesOn) {
  REQUIRE_PEER();
  Peer peer;
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  Outcome o = h.stream("/test.Peer/Hang", "", {},
                       [](Channel& ch, uint64_t id) { EXPECT_TRUE(ch.cancel(id)); });
  ASSERT_TRUE(o.status);
  EXPECT_EQ(o.status->code, StatusCode::cancelled);
  EXPECT_EQ(o.messages, std::vector<std::string>{"first"});
  EXPECT_EQ(h.in_flight(), 0u);
  EXPECT_EQ(h.unary("/test.Peer/Echo", "still here").unary_message, "still here");
}

TEST(GrpcChannel, PeerKilledMidStreamIsUnavailableNotAHang) {
  REQUIRE_PEER();
  Peer peer;
  Harness h(Channel::tcp("127.0.0.1", peer.port()));
  Outcome o;
  std::promise<void> done, first;
  h.start_stream("/test.Peer/Hang", "", o, done, {},
                 [&](Channel&, uint64_t) { first.set_value(); });
  ASSERT_EQ(first.get_future().wait_for(30s), std::future_status::ready);
  peer.kill();
  h.wait(done);
  ASSERT_TRUE(o.status);
  EXPECT_EQ(o.status->code, StatusCode::unavailable);
  EXPECT_NE(o.status->message.find("connection lost"), std::string::npos) << o.status->message;
  EXPECT_EQ(o.messages, std::vector<std::string>{"first"});
  // With the server gone, the next call fails to connect, with the reason.
  o = h.unary("/test.Peer/Echo", "x");
  EXPECT_EQ(o.status->code, StatusCode::unavailable);
  EXPECT_NE(o.status->message.find("refused"), std::string::npos) << o.status->message;
}

TEST(GrpcChannel, UnixSocketAndReconnectAfterTheServerRestarts) {
  REQUIRE_PEER();
  char tmpl[] = "/tmp/ember-grpc-unix-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string path = std::string(tmpl) + "/peer.sock";
  auto peer = std::make_unique<Peer>(std::vector<std::string>{"--unix", path});
  ASSERT_NE(peer->port(), 0);
  {  // the harness (and its loop thread) ends before the directory is read and removed:
     // otherwise TSan sees the loop's late close of the socket as racing opendir's fd
    Harness h(Channel::unix_socket(path));
    EXPECT_EQ(h.unary("/test.Peer/Echo", "one").unary_message, "one");
    peer->kill();
    // The connection is gone (lost, or refused if the loop noticed first).
    Outcome o = h.unary("/test.Peer/Echo", "two");
    EXPECT_EQ(o.status->code, StatusCode::unavailable) << o.status->message;
    // A new server on the same path: the next call opens a new connection.
    peer = std::make_unique<Peer>(std::vector<std::string>{"--unix", path});
    ASSERT_NE(peer->port(), 0);
    o = h.unary("/test.Peer/Echo", "three");
    ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
    EXPECT_EQ(o.unary_message, "three");
    peer.reset();
  }
  std::filesystem::remove_all(tmpl);
}

uint16_t closed_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

TEST(GrpcChannel, RefusedConnectionFailsEveryCallWithTheReason) {
  Harness h(Channel::tcp("127.0.0.1", closed_port()));
  Outcome a = h.unary("/test.Peer/Echo", "x");
  ASSERT_TRUE(a.status);
  EXPECT_EQ(a.status->code, StatusCode::unavailable);
  EXPECT_NE(a.status->message.find("refused"), std::string::npos) << a.status->message;
  Outcome b = h.stream("/test.Peer/Count", "3");
  EXPECT_EQ(b.status->code, StatusCode::unavailable);
  EXPECT_EQ(h.in_flight(), 0u);
}

// ---- TLS ---------------------------------------------------------------------

struct Pki {
  std::filesystem::path dir;
  bool ok = false;
  Pki() {
    char tmpl[] = "/tmp/ember-grpc-pki-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir = tmpl;
    auto p = [&](const char* f) { return (dir / f).string(); };
    FILE* ext = std::fopen(p("ext.cnf").c_str(), "w");
    if (!ext) return;
    std::fputs("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n", ext);
    std::fclose(ext);
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
    ok = run_command("openssl req -x509" + ec + "-keyout " + p("ca.key") + " -out " + p("ca.pem") +
                     " -days 2 -subj /CN=Ember-gRPC-Test-CA") == 0 &&
         run_command("openssl req -x509" + ec + "-keyout " + p("other.key") + " -out " +
                     p("other.pem") + " -days 2 -subj /CN=Other-CA") == 0 &&
         run_command("openssl req" + ec + "-keyout " + p("srv.key") + " -out " + p("srv.csr") +
                     " -subj /CN=localhost") == 0 &&
         run_command("openssl x509 -req -in " + p("srv.csr") + " -CA " + p("ca.pem") + " -CAkey " +
                     p("ca.key") + " -CAcreateserial -days 2 -out " + p("srv.pem") + " -extfile " +
                     p("ext.cnf")) == 0;
  }
  ~Pki() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::string file(const char* f) const { return (dir / f).string(); }
};

Channel::Options tls_options(const std::string& ca, std::vector<std::string> alpn = {"h2"}) {
  tls::ClientConfig cfg;
  cfg.ca_file = ca;
  cfg.alpn = std::move(alpn);
  auto ctx = tls::ClientContext::create(cfg);
  EXPECT_TRUE(ctx) << ctx.error().message;
  Channel::Options o;
  o.connect.tls = *ctx;
  return o;
}

TEST(GrpcChannelTls, UnaryAndStreamingOverTls) {
  REQUIRE_PEER();
  Pki pki;
  ASSERT_TRUE(pki.ok)
      << "the openssl CLI could not make the test PKI (scripts/setup.sh installs openssl)";
  Peer peer({"--tls", pki.file("srv.pem"), pki.file("srv.key")});
  ASSERT_NE(peer.port(), 0);
  Harness h(Channel::tcp("127.0.0.1", peer.port()), tls_options(pki.file("ca.pem")));
  Outcome o = h.unary("/test.Peer/Echo", "secret");
  ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
  EXPECT_EQ(o.unary_message, "secret");
  o = h.stream("/test.Peer/Count", "1000");
  ASSERT_TRUE(o.status && o.status->ok()) << o.status->message;
  ASSERT_EQ(o.messages.size(), 1000u);
  EXPECT_EQ(o.messages.back(), numbered(999));
  o = h.stream("/test.Peer/CountThenFail", "2");
  EXPECT_EQ(o.status->code, StatusCode::resource_exhausted);
  EXPECT_EQ(o.messages.size(), 2u);
}

TEST(GrpcChannelTls, UntrustedServerIsUnavailableWithTheReason) {
  REQUIRE_PEER();
  Pki pki;
  ASSERT_TRUE(pki.ok)
      << "the openssl CLI could not make the test PKI (scripts/setup.sh installs openssl)";
  Peer peer({"--tls", pki.file("srv.pem"), pki.file("srv.key")});
  Harness h(Channel::tcp("127.0.0.1", peer.port()), tls_options(pki.file("other.pem")));
  Outcome o = h.unary("/test.Peer/Echo", "secret");
  ASSERT_TRUE(o.status);
  EXPECT_EQ(o.status->code, StatusCode::unavailable);
  EXPECT_NE(o.status->message.find("certificate verify failed"), std::string::npos)
      << o.status->message;
}

TEST(GrpcChannelTls, ServerThatDoesNotChooseH2IsRefused) {
  REQUIRE_PEER();
  Pki pki;
  ASSERT_TRUE(pki.ok)
      << "the openssl CLI could not make the test PKI (scripts/setup.sh installs openssl)";
  Peer peer({"--tls", pki.file("srv.pem"), pki.file("srv.key")});
  // Offering only http/1.1: grpcio selects nothing (or refuses the handshake).
  Harness h(Channel::tcp("127.0.0.1", peer.port()), tls_options(pki.file("ca.pem"), {"http/1.1"}));
  Outcome o = h.unary("/test.Peer/Echo", "x");
  ASSERT_TRUE(o.status);
  EXPECT_EQ(o.status->code, StatusCode::unavailable) << o.status->message;
}

}  // namespace
}  // namespace ember::grpc
