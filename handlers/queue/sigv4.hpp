// AWS Signature Version 4 for S3 requests (header-based), path-style.
//
// Sans-I/O: given a request's parts and a time, produces the headers to send
// (Authorization, x-amz-date, x-amz-content-sha256) and the exact encoded
// path and query to put on the request line, so what is signed is what is
// sent. The signer URI-encodes the path once (S3 rules: unreserved bytes
// A-Z a-z 0-9 - . _ ~ kept, '/' kept, every other byte %XX; no dot-segment
// normalisation), so callers pass the decoded path ("/bucket/my key").
// Query names and values are passed decoded too; the signer encodes and
// sorts them.
//
// Thread: a Signer caches the signing key of the last day it signed for, so
// one Signer must not be used by two threads at once (one per loop).
// Secrets: the secret key and derived keys are wiped when the Signer goes.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ember/error.hpp"

namespace ember::queue::sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kDefaultRegion = "garage";

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// Incremental SHA-256 for payloads that arrive or are read in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view piece);
  // Lower-case hex digest; the object is then reset for a new message.
  std::string hex_final();

 private:
  void* ctx_;  // EVP_MD_CTX
};

struct FileDigest {
  std::string sha256;  // lower-case hex
  std::uint64_t size = 0;
};
// Hashes a file by reading it in `chunk`-byte pieces: memory use does not
// grow with the file. Errors name the path and the errno text.
Result<FileDigest> sha256_file(const std::string& path, std::size_t chunk = 64 * 1024);

struct Header {
  std::string_view name;   // any case; signed lower-cased
  std::string_view value;  // signed trimmed, inner runs of spaces collapsed
};

struct QueryParam {
  std::string_view name;   // decoded
  std::string_view value;  // decoded; "" for a bare "?acl"
};

struct Request {
  std::string_view method = {};                    // "GET", "PUT", ...
  std::string_view host = {};                      // Host header value (HttpEndpoint::authority())
  std::string_view path = "/";                     // decoded, starts with '/'
  std::span<const QueryParam> query = {};          // any order
  std::span<const Header> headers = {};            // others to sign (content-type, range, ...)
  std::string_view payload_sha256 = kEmptySha256;  // 64 hex digits or UNSIGNED-PAYLOAD
  std::chrono::system_clock::time_point time = {};
};

struct Signed {
  // Send these three headers (and Host) with the request.
  std::string authorization;
  std::string amz_date;        // x-amz-date: 20130524T000000Z
  std::string content_sha256;  // x-amz-content-sha256
  // Request line: method + " " + canonical_uri + ("?" + canonical_query if non-empty).
  std::string canonical_uri;
  std::string canonical_query;
  // The intermediate values, for diagnostics and tests.
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;
  std::string signature;
};

struct Options {
  // S3 requires x-amz-content-sha256 and signs it; off only to check the
  // generic test-suite vectors, which do not carry it.
  bool content_sha256_header = true;
};

class Signer {
 public:
  Signer(std::string access_key, std::string secret_key,
         std::string region = std::string(kDefaultRegion), std::string service = "s3",
         Options options = {});
  ~Signer();
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;

  // Errors (nothing is signed): empty method or host, a path not starting
  // with '/', a payload hash that is neither 64 hex digits nor
  // UNSIGNED-PAYLOAD, a header name that is not an HTTP token, a header
  // value with CR, LF or NUL, a header the signer sets itself, a time
  // before 1970 or after 9999.
  Result<Signed> sign(const Request& request) const;

  // The day's signing key (HMAC chain over "AWS4"+secret, date, region,
  // service, "aws4_request"). Cached for the last date asked for.
  const std::array<std::uint8_t, 32>& signing_key(std::string_view yyyymmdd) const;

  const std::string& access_key() const noexcept { return access_key_; }
  const std::string& region() const noexcept { return region_; }
  // How many times a signing key was derived (tests check the cache).
  std::uint64_t key_derivations() const noexcept { return derivations_; }

 private:
  std::string access_key_;
  std::string secret_key_;
  std::string region_;
  std::string service_;
  Options options_;
  mutable std::string cached_date_;
  mutable std::array<std::uint8_t, 32> cached_key_{};
  mutable std::uint64_t derivations_ = 0;
};

// ---- S3 requests -----------------------------------------------------------

struct S3Target {
  std::string_view host = {};       // Host header value
  std::string_view base_path = {};  // "" or "/prefix" of the endpoint
  std::string_view bucket = {};     // real bucket name
  std::string_view key = {};        // object key, e.g. "12345"
};

// Signs `method` on /{base}/{bucket}/{key} (path-style).
Result<Signed> sign_object_request(const Signer& signer, std::string_view method,
                                   const S3Target& target, std::string_view payload_sha256,
                                   std::chrono::system_clock::time_point time,
                                   std::span<const Header> extra = {});

// A PUT whose body is a local file: hashed by streaming the file, never
// held in memory. The caller sends `size` bytes of the file as the body.
struct SignedUpload {
  Signed request;
  std::uint64_t size = 0;
};
Result<SignedUpload> sign_file_upload(const Signer& signer, const S3Target& target,
                                      const std::string& file_path,
                                      std::chrono::system_clock::time_point time);

// The HTTP/1.1 request head for a signed request: request line, Host, the
// three signed headers, Content-Length when `content_length` >= 0, any
// `extra` headers (the ones that were signed too), and the blank line.
std::string http1_request_head(std::string_view method, std::string_view host, const Signed& s,
                               std::int64_t content_length, std::span<const Header> extra = {});

}  // namespace ember::queue::sigv4
