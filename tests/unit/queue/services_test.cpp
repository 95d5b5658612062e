// Needs the real services: scripts/services.sh start s3 config pass, then
// `source` its env file. Skips when CONFIG_HOST / S3_ENDPOINT are not set.
// Drives the queue pieces end to end: config documents from the config
// service, secrets from pass, requests signed here and sent over a plain
// blocking socket to the S3 server, which verifies SigV4.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "handlers/queue/config.hpp"
#include "handlers/queue/pass.hpp"
#include "handlers/queue/sigv4.hpp"

namespace ember::queue {
namespace {

struct Response {
  int status = 0;
  std::string body;
};

// One HTTP/1.1 exchange with Connection: close; the body is read to EOF.
// Test-only code: blocking, IPv4 loopback endpoints.
Response http_exchange(const HttpEndpoint& ep, const std::string& head, std::string_view body = {},
                       const std::string& file = {}) {
  Response r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(ep.port);
  if (::inet_pton(AF_INET, ep.host.c_str(), &a.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return r;
  }
  auto send_all = [&](std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  };
  std::string h = head;
  h.insert(h.size() - 2, "Connection: close\r\n");
  send_all(h);
  send_all(body);
  if (!file.empty()) {
    // The file body goes out in chunks, as the runtime will send it.
    std::ifstream in(file, std::ios::binary);
    char buf[16384];
    while (in.read(buf, sizeof buf) || in.gcount() > 0)
      if (!send_all(std::string_view(buf, static_cast<size_t>(in.gcount())))) break;
  }
  std::string raw;
  char buf[16384];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (raw.size() > 12 && raw.starts_with("HTTP/1.1 ")) r.status = std::atoi(raw.c_str() + 9);
  auto end = raw.find("\r\n\r\n");
  if (end != std::string::npos) r.body = raw.substr(end + 4);
  // Chunked answers (s3rver errors) are left encoded: tests only search them.
  return r;
}

Response get(const HttpEndpoint& ep, const std::string& path) {
  return http_exchange(
      ep, "GET " + ep.base_path + path + " HTTP/1.1\r\nHost: " + ep.authority() + "\r\n\r\n");
}

class Services : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* host = std::getenv("CONFIG_HOST");
    if (!host || !std::getenv("S3_ENDPOINT") || !std::getenv("PASSWORD_STORE_DIR")) {
      // The suite sets EMBER_REQUIRE_SERVICES: there a missing service fails.
      if (std::getenv("EMBER_REQUIRE_SERVICES"))
        FAIL() << "EMBER_REQUIRE_SERVICES is set but CONFIG_HOST, S3_ENDPOINT or "
                  "PASSWORD_STORE_DIR is not: source the file `scripts/services.sh env` names";
      GTEST_SKIP() << "no services: run scripts/services.sh start s3 config pass and source "
                      "its env file";
    }
    auto ep = parse_endpoint(host);
    ASSERT_TRUE(ep) << ep.error().message;
    config_ = *ep;
    auto doc = get(config_, std::string(kObjectStorageConfigPath));
    ASSERT_EQ(doc.status, 200);
    auto os = parse_object_storage_config(doc.body, config_.url(kObjectStorageConfigPath));
    ASSERT_TRUE(os) << os.error().message;
    storage_ = *os;
    authority_ = storage_.endpoint.authority();
    auto access = pass_show(storage_.access_key_entry);
    ASSERT_TRUE(access) << access.error().message;
    auto secret = pass_show(storage_.secret_key_entry);
    ASSERT_TRUE(secret) << secret.error().message;
    access_ = *access;
    secret_ = *secret;
    const char* example = std::getenv("EXAMPLE_SERVICE");
    ASSERT_NE(example, nullptr);
    auto b = get(config_, bucket_config_path(example, "out"));
    ASSERT_EQ(b.status, 200);
    auto bucket = parse_bucket_name(b.body, config_.url(bucket_config_path(example, "out")));
    ASSERT_TRUE(bucket) << bucket.error().message;
    bucket_ = *bucket;
  }

  sigv4::S3Target target(std::string_view key) const {
    return {.host = authority_,
            .base_path = storage_.endpoint.base_path,
            .bucket = bucket_,
            .key = key};
  }

  Response put(const sigv4::Signer& signer, std::string_view key, std::string_view body,
               std::string_view signed_hash = {}) {
    std::string hash = signed_hash.empty() ? sigv4::sha256_hex(body) : std::string(signed_hash);
    auto s = sigv4::sign_object_request(signer, "PUT", target(key), hash,
                                        std::chrono::system_clock::now());
    EXPECT_TRUE(s);
    return http_exchange(
        storage_.endpoint,
        sigv4::http1_request_head("PUT", authority_, *s, static_cast<std::int64_t>(body.size())),
        body);
  }

  Response fetch(const sigv4::Signer& signer, std::string_view key) {
    auto s = sigv4::sign_object_request(signer, "GET", target(key), sigv4::kEmptySha256,
                                        std::chrono::system_clock::now());
    EXPECT_TRUE(s);
    return http_exchange(storage_.endpoint, sigv4::http1_request_head("GET", authority_, *s, -1));
  }

  HttpEndpoint config_;
  ObjectStorageConfig storage_;
  std::string access_, secret_, bucket_;
  std::string authority_;
};

TEST_F(Services, ConnectionDocumentsParse) {
  auto rabbit = get(config_, std::string(kRabbitMqConfigPath));
  if (rabbit.status == 200) {
    auto r = parse_rabbitmq_config(rabbit.body, config_.url(kRabbitMqConfigPath));
    ASSERT_TRUE(r) << r.error().message;
    auto pw = pass_show(r->pass_entry);
    ASSERT_TRUE(pw) << pw.error().message;
    if (const char* want = std::getenv("RABBITMQ_PASSWORD")) {
      EXPECT_EQ(*pw, want);
    }
  }
  auto db = get(config_, std::string(kDbConfigPath));
  if (db.status == 200) {
    auto d = parse_db_config(db.body, config_.url(kDbConfigPath));
    ASSERT_TRUE(d) << d.error().message;
    auto pw = pass_show(d->pass_entry);
    ASSERT_TRUE(pw) << pw.error().message;
    if (const char* want = std::getenv("PGPASSWORD")) {
      EXPECT_EQ(*pw, want);
    }
  }
  auto svc = get(config_, service_config_path(std::getenv("EXAMPLE_SERVICE")));
  ASSERT_EQ(svc.status, 200);
  auto s = parse_service_config(svc.body, "example");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_NE(s->queues_for(Case(true)), nullptr);
  EXPECT_NE(s->queues_for(Case(1)), nullptr);
  EXPECT_NE(s->queues_for(Case("1")), nullptr);
  EXPECT_NE(*s->queues_for(Case(1)), *s->queues_for(Case("1")));
}

TEST_F(Services, SignedPutAndGetAreAccepted) {
  sigv4::Signer signer(access_, secret_);  // region garage
  std::string body = "result 18446744073709551615\n";
  auto p = put(signer, "18446744073709551615", body);
  ASSERT_EQ(p.status, 200) << p.body;
  auto g = fetch(signer, "18446744073709551615");
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_EQ(g.body, body);
}

TEST_F(Services, StreamedFileUploadIsAccepted) {
  char tmpl[] = "/tmp/ember-upload-XXXXXX";
  int fd = ::mkstemp(tmpl);
  std::string content;
  for (int i = 0; i < 100000; ++i)
    content += std::to_string(i) + ",";
  ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::close(fd);
  sigv4::Signer signer(access_, secret_);
  auto up =
      sigv4::sign_file_upload(signer, target("424242"), tmpl, std::chrono::system_clock::now());
  ASSERT_TRUE(up) << up.error().message;
  auto r = http_exchange(storage_.endpoint,
                         sigv4::http1_request_head("PUT", authority_, up->request,
                                                   static_cast<std::int64_t>(up->size)),
                         {}, tmpl);
  ::unlink(tmpl);
  ASSERT_EQ(r.status, 200) << r.body;
  auto g = fetch(signer, "424242");
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(g.body, content);
}

TEST_F(Services, WrongSecretIsRefused) {
  sigv4::Signer wrong(access_, secret_ + "x");
  auto p = put(wrong, "7", "x");
  EXPECT_EQ(p.status, 403);
  EXPECT_NE(p.body.find("SignatureDoesNotMatch"), std::string::npos) << p.body;
  auto g = fetch(wrong, "7");
  EXPECT_EQ(g.status, 403);
}

TEST_F(Services, WrongRegionIsRefused) {
  sigv4::Signer other(access_, secret_, "us-east-1");
  auto p = put(other, "8", "x");
  EXPECT_EQ(p.status, 400);
  EXPECT_NE(p.body.find("AuthorizationHeaderMalformed"), std::string::npos) << p.body;
}

TEST_F(Services, BodyMustMatchTheSignedHash) {
  sigv4::Signer signer(access_, secret_);
  auto p = put(signer, "9", "what was sent", sigv4::sha256_hex("what was signed"));
  EXPECT_EQ(p.status, 400);
  EXPECT_NE(p.body.find("XAmzContentSHA256Mismatch"), std::string::npos) << p.body;
}

TEST_F(Services, UnsignedRequestIsRefused) {
  auto r = http_exchange(
      storage_.endpoint,
      "PUT /" + bucket_ + "/10 HTTP/1.1\r\nHost: " + authority_ + "\r\nContent-Length: 1\r\n\r\n",
      "x");
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("AccessDenied"), std::string::npos);
}

}  // namespace
}  // namespace ember::queue
