// SigV4: AWS's published values (the S3 header-auth examples and the SigV4
// test suite), the S3 encoding rules, the key cache and file hashing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "handlers/queue/sigv4.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::queue::sigv4 {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

// 2013-05-24T00:00:00Z, the S3 examples' time.
const system_clock::time_point kMay24 = system_clock::time_point(seconds(1369353600));
// 2015-08-30T12:36:00Z, the test suite's time.
const system_clock::time_point kAug30 = system_clock::time_point(seconds(1440938160));

constexpr const char* kS3Access = "AKIAIOSFODNN7EXAMPLE";
constexpr const char* kS3Secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr const char* kS3Host = "examplebucket.s3.amazonaws.com";

Signer s3_example_signer() {
  return Signer(kS3Access, kS3Secret, "us-east-1", "s3");
}
Signer suite_signer() {
  return Signer("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service",
                Options{.content_sha256_header = false});
}

std::string hex(const std::array<std::uint8_t, 32>& k) {
  std::string s;
  char b[3];
  for (auto c : k) {
    std::snprintf(b, sizeof b, "%02x", c);
    s += b;
  }
  return s;
}

// ---- AWS S3 "Signature Calculations for the Authorization Header" ----------

TEST(SigV4S3Examples, GetObjectWithRange) {
  auto signer = s3_example_signer();
  Header range[] = {{"Range", "bytes=0-9"}};
  Request r{.method = "GET",
            .host = kS3Host,
            .path = "/test.txt",
            .headers = range,
            .payload_sha256 = kEmptySha256,
            .time = kMay24};
  auto s = signer.sign(r);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(
      s->canonical_request,
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s->signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s->authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s->amz_date, "20130524T000000Z");
  EXPECT_EQ(s->content_sha256, kEmptySha256);
}

TEST(SigV4S3Examples, PutObjectEncodesTheKeyOnce) {
  auto signer = s3_example_signer();
  std::string body = "Welcome to Amazon S3.";
  std::string hash = sha256_hex(body);
  ASSERT_EQ(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  Header extra[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                    {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  Request r{.method = "PUT",
            .host = kS3Host,
            .path = "/test$file.text",
            .headers = extra,
            .payload_sha256 = hash,
            .time = kMay24};
  auto s = signer.sign(r);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->canonical_uri, "/test%24file.text");
  EXPECT_EQ(
      s->canonical_request,
      "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
      "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(s->string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(s->signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4S3Examples, GetBucketLifecycleBareQueryParameter) {
  auto signer = s3_example_signer();
  QueryParam q[] = {{"lifecycle", ""}};
  Request r{.method = "GET",
            .host = kS3Host,
            .path = "/",
            .query = q,
            .payload_sha256 = kEmptySha256,
            .time = kMay24};
  auto s = signer.sign(r);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->canonical_query, "lifecycle=");
  EXPECT_EQ(s->string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  EXPECT_EQ(s->signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4S3Examples, ListObjectsSortsTheQuery) {
  auto signer = s3_example_signer();
  QueryParam q[] = {{"prefix", "J"}, {"max-keys", "2"}};
  Request r{.method = "GET",
            .host = kS3Host,
            .path = "/",
            .query = q,
            .payload_sha256 = kEmptySha256,
            .time = kMay24};
  auto s = signer.sign(r);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->canonical_query, "max-keys=2&prefix=J");
  EXPECT_EQ(s->signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

// ---- AWS SigV4 test suite (service "service", no x-amz-content-sha256) ----

TEST(SigV4Suite, GetVanilla) {
  auto signer = suite_signer();
  EXPECT_EQ(hex(signer.signing_key("20150830")),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
  Request r{.method = "GET",
            .host = "example.amazonaws.com",
            .path = "/",
            .payload_sha256 = kEmptySha256,
            .time = kAug30};
  auto s = signer.sign(r);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s->string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(s->authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(s->content_sha256, "");
}

TEST(SigV4Suite, GetVanillaQueryOrderKeyCase) {
  auto signer = suite_signer();
  QueryParam q[] = {{"Param2", "value2"}, {"Param1", "value1"}};
  Request r{.method = "GET",
            .host = "example.amazonaws.com",
            .path = "/",
            .query = q,
            .payload_sha256 = kEmptySha256,
            .time = kAug30};
  auto s = signer.sign(r);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->canonical_query, "Param1=value1&Param2=value2");
  EXPECT_EQ(s->signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4Suite, PostVanilla) {
  auto signer = suite_signer();
  Request r{.method = "POST",
            .host = "example.amazonaws.com",
            .path = "/",
            .payload_sha256 = kEmptySha256,
            .time = kAug30};
  auto s = signer.sign(r);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->signature, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4Suite, GetUtf8PathIsEncodedFromTheDecodedForm) {
  auto signer = suite_signer();
  Request r{.method = "GET",
            .host = "example.amazonaws.com",
            .path = "/\xe1\x88\xb4",
            .payload_sha256 = kEmptySha256,
            .time = kAug30};
  auto s = signer.sign(r);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->canonical_uri, "/%E1%88%B4");
  EXPECT_EQ(s->signature, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

// ---- encoding and canonical form ---------------------------------------------

TEST(SigV4Encoding, PathIsNotNormalised) {
  auto signer = Signer("AK", "SK");
  Request r{.method = "GET", .host = "h", .path = "/b/./x/../y//z", .time = kMay24};
  auto s = signer.sign(r);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->canonical_uri, "/b/./x/../y//z");
}

TEST(SigV4Encoding, QueryValuesAreEncodedAndSortedByEncodedName) {
  auto signer = Signer("AK", "SK");
  QueryParam q[] = {{"b", "2"}, {"a", "x y"}, {"a", "+"}, {"c", ""}, {"prefix", "dir/"}};
  Request r{.method = "GET", .host = "h", .path = "/", .query = q, .time = kMay24};
  auto s = signer.sign(r);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->canonical_query, "a=%2B&a=x%20y&b=2&c=&prefix=dir%2F");
}

TEST(SigV4Encoding, HeadersAreLowercasedTrimmedCollapsedAndMerged) {
  auto signer = Signer("AK", "SK");
  Header h[] = {{"X-Amz-Meta-B", "  two   words  "},
                {"x-amz-meta-a", "1"},
                {"X-AMZ-META-A", "2"},
                {"Content-Type", "text/plain"}};
  Request r{.method = "PUT",
            .host = "h:9000",
            .path = "/b/k",
            .headers = h,
            .payload_sha256 = kUnsignedPayload,
            .time = kMay24};
  auto s = signer.sign(r);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->signed_headers,
            "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b");
  EXPECT_NE(s->canonical_request.find("\nhost:h:9000\n"), std::string::npos);
  EXPECT_NE(s->canonical_request.find("\nx-amz-meta-a:1,2\n"), std::string::npos);
  EXPECT_NE(s->canonical_request.find("\nx-amz-meta-b:two words\n"), std::string::npos);
  EXPECT_TRUE(s->canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
  EXPECT_EQ(s->content_sha256, "UNSIGNED-PAYLOAD");
}

TEST(SigV4Errors, RefusesWhatCannotBeSignedSafely) {
  auto signer = Signer("AK", "SK");
  auto err = [&](Request r) {
    auto s = signer.sign(r);
    EXPECT_FALSE(s);
    return s ? std::string() : s.error().message;
  };
  Request ok{.method = "GET", .host = "h", .path = "/", .time = kMay24};
  ASSERT_TRUE(signer.sign(ok));
  Request r = ok;
  r.method = "";
  EXPECT_EQ(err(r), "sigv4: the method must be a non-empty HTTP token");
  r = ok;
  r.method = "GE T";
  EXPECT_EQ(err(r), "sigv4: the method must be a non-empty HTTP token");
  r = ok;
  r.host = "";
  EXPECT_EQ(err(r), "sigv4: empty host");
  r = ok;
  r.host = "h\r\nx: y";
  EXPECT_EQ(err(r), "sigv4: the host has a space or control character");
  r = ok;
  r.path = "b/k";
  EXPECT_EQ(err(r), "sigv4: the path must start with '/'");
  r = ok;
  r.payload_sha256 = "abc";
  EXPECT_EQ(err(r), "sigv4: the payload hash must be 64 hex digits or UNSIGNED-PAYLOAD");
  r = ok;
  r.payload_sha256 =
      std::string_view("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(err(r), "sigv4: the payload hash must be 64 hex digits or UNSIGNED-PAYLOAD");
  r = ok;
  r.payload_sha256 = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
  EXPECT_FALSE(signer.sign(r));
  Header bad_name[] = {{"Bad Name", "v"}};
  r = ok;
  r.headers = bad_name;
  EXPECT_EQ(err(r), "sigv4: header name \"Bad Name\" is not an HTTP token");
  Header injected[] = {{"x-amz-meta", "v\r\nAuthorization: x"}};
  r = ok;
  r.headers = injected;
  EXPECT_EQ(err(r), "sigv4: header x-amz-meta has CR, LF or NUL in its value");
  Header own[] = {{"X-Amz-Date", "20000101T000000Z"}};
  r = ok;
  r.headers = own;
  EXPECT_EQ(err(r), "sigv4: header x-amz-date is set by the signer");
  Header host[] = {{"Host", "other"}};
  r = ok;
  r.headers = host;
  EXPECT_EQ(err(r), "sigv4: header host is set by the signer");
  r = ok;
  r.time = system_clock::time_point(seconds(-1));
  EXPECT_EQ(err(r), "sigv4: the time is outside 1970-9999");
  // The latest time the clock can hold (year 2262) still signs.
  r = ok;
  r.time = system_clock::time_point::max();
  auto last = signer.sign(r);
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_EQ(last->amz_date, "22620411T234716Z");
}

// ---- key cache -----------------------------------------------------------------

TEST(SigV4KeyCache, OneDerivationPerDay) {
  auto signer = suite_signer();
  Request r{.method = "GET",
            .host = "example.amazonaws.com",
            .path = "/",
            .payload_sha256 = kEmptySha256,
            .time = kAug30};
  ASSERT_TRUE(signer.sign(r));
  ASSERT_TRUE(signer.sign(r));
  r.time += std::chrono::hours(11);  // 23:36 the same day
  ASSERT_TRUE(signer.sign(r));
  EXPECT_EQ(signer.key_derivations(), 1u);
  r.time += std::chrono::hours(1);  // the next day
  auto next = signer.sign(r);
  ASSERT_TRUE(next);
  EXPECT_EQ(signer.key_derivations(), 2u);
  EXPECT_TRUE(next->string_to_sign.find("\n20150831/us-east-1/service/aws4_request\n") !=
              std::string::npos);
  // Back to the first day: a fresh derivation, the published key again.
  EXPECT_EQ(hex(signer.signing_key("20150830")),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
  EXPECT_EQ(signer.key_derivations(), 3u);
  r.time = kAug30;
  EXPECT_EQ(signer.sign(r)->signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(signer.key_derivations(), 3u);
}

// ---- hashing -----------------------------------------------------------------

TEST(SigV4Hash, KnownDigests) {
  EXPECT_EQ(sha256_hex(""), kEmptySha256);
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.update("a");
  h.update("");
  h.update("bc");
  EXPECT_EQ(h.hex_final(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  h.update("abc");  // reset after hex_final
  EXPECT_EQ(h.hex_final(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/ember-sigv4-XXXXXX";
    int fd = ::mkstemp(tmpl);
    path_ = tmpl;
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(SigV4Hash, FileHashStreamsInChunks) {
  std::string content = test::random_bytes((1u << 20) + 3, 7);
  TempFile f(content);
  std::string want = sha256_hex(content);
  // 0 means the default chunk size.
  for (std::size_t chunk :
       {std::size_t{1} << 16, std::size_t{4096}, std::size_t{1000}, std::size_t{0}}) {
    auto d = sha256_file(f.path(), chunk);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->sha256, want) << chunk;
    EXPECT_EQ(d->size, content.size());
  }
  TempFile empty("");
  EXPECT_EQ(sha256_file(empty.path())->sha256, kEmptySha256);
  EXPECT_EQ(sha256_file(empty.path())->size, 0u);
  auto missing = sha256_file("/nonexistent/ember/file");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "open /nonexistent/ember/file: No such file or directory");
}

TEST(SigV4S3, FileUploadSignsTheStreamedHash) {
  std::string content = "Welcome to Amazon S3.";
  TempFile f(content);
  auto signer = s3_example_signer();
  S3Target target{.host = kS3Host, .base_path = "", .bucket = "examplebucket", .key = "12345"};
  auto up = sign_file_upload(signer, target, f.path(), kMay24);
  ASSERT_TRUE(up) << up.error().message;
  EXPECT_EQ(up->size, content.size());
  EXPECT_EQ(up->request.content_sha256,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(up->request.canonical_uri, "/examplebucket/12345");
  // Same as signing the in-memory body.
  auto direct = sign_object_request(signer, "PUT", target, sha256_hex(content), kMay24);
  ASSERT_TRUE(direct);
  EXPECT_EQ(direct->signature, up->request.signature);
  EXPECT_FALSE(sign_file_upload(signer, target, "/nonexistent/x", kMay24));
}

TEST(SigV4S3, ObjectRequestPathStyleAndHead) {
  auto signer = Signer("AK", "SK");  // region garage
  S3Target target{.host = "127.0.0.1:9000", .base_path = "/s3", .bucket = "in", .key = "42"};
  auto s = sign_object_request(signer, "GET", target, kEmptySha256, kMay24);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->canonical_uri, "/s3/in/42");
  EXPECT_NE(s->authorization.find("/20130524/garage/s3/aws4_request, "), std::string::npos);
  std::string head = http1_request_head("GET", "127.0.0.1:9000", *s, -1);
  EXPECT_EQ(head,
            "GET /s3/in/42 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nx-amz-date: 20130524T000000Z\r\n"
            "x-amz-content-sha256: " +
                std::string(kEmptySha256) + "\r\nAuthorization: " + s->authorization + "\r\n\r\n");
  std::string put = http1_request_head("PUT", "127.0.0.1:9000", *s, 21);
  EXPECT_NE(put.find("\r\nContent-Length: 21\r\n\r\n"), std::string::npos);
  EXPECT_FALSE(sign_object_request(signer, "GET", {.host = "h", .bucket = "", .key = "1"},
                                   kEmptySha256, kMay24));
  EXPECT_FALSE(sign_object_request(signer, "GET", {.host = "h", .bucket = "b", .key = ""},
                                   kEmptySha256, kMay24));
}

}  // namespace
}  // namespace ember::queue::sigv4
