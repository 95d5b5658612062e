#include "handlers/queue/sigv4.hpp"
#include "protocols/http1/http1.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>
#include <vector>

namespace ember::queue::sigv4 {

namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(const std::uint8_t* p, std::size_t n) {
  std::string out(n * 2, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

void hmac(const void* key, std::size_t key_len, std::string_view data, std::uint8_t out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Trimmed, each run of spaces/tabs made one space (SigV4 canonical value).
std::string canonical_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

bool valid_payload_hash(std::string_view h) {
  if (h == kUnsignedPayload) return true;
  return h.size() == 64 && std::all_of(h.begin(), h.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  std::uint8_t md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return to_hex(md, 32);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256::update(std::string_view piece) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), piece.data(), piece.size());
}

std::string Sha256::hex_final() {
  std::uint8_t md[32];
  unsigned int len = 0;
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  return to_hex(md, 32);
}

Result<FileDigest> sha256_file(const std::string& path, std::size_t chunk) {
  if (chunk == 0) chunk = 64 * 1024;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("open " + path + ": " + std::strerror(errno), -errno);
  std::vector<char> buf(chunk);
  Sha256 hash;
  FileDigest out;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Error("read " + path + ": " + std::strerror(e), -e);
    }
    if (n == 0) break;
    hash.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    out.size += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  out.sha256 = hash.hex_final();
  return out;
}

Signer::Signer(std::string access_key, std::string secret_key, std::string region,
               std::string service, Options options)
    : access_key_(std::move(access_key)),
      secret_key_(std::move(secret_key)),
      region_(std::move(region)),
      service_(std::move(service)),
      options_(options) {}

Signer::~Signer() {
  OPENSSL_cleanse(secret_key_.data(), secret_key_.size());
  OPENSSL_cleanse(cached_key_.data(), cached_key_.size());
}

const std::array<std::uint8_t, 32>& Signer::signing_key(std::string_view yyyymmdd) const {
  if (cached_date_ == yyyymmdd && derivations_ > 0) return cached_key_;
  std::string k0 = "AWS4" + secret_key_;
  std::uint8_t a[32], b[32];
  hmac(k0.data(), k0.size(), yyyymmdd, a);
  OPENSSL_cleanse(k0.data(), k0.size());
  hmac(a, 32, region_, b);
  hmac(b, 32, service_, a);
  hmac(a, 32, "aws4_request", cached_key_.data());
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
  cached_date_ = std::string(yyyymmdd);
  ++derivations_;
  return cached_key_;
}

Result<Signed> Signer::sign(const Request& r) const {
  if (r.method.empty() || !std::all_of(r.method.begin(), r.method.end(), is_tchar))
    return Error("sigv4: the method must be a non-empty HTTP token");
  if (r.host.empty()) return Error("sigv4: empty host");
  if (r.path.empty() || r.path[0] != '/') return Error("sigv4: the path must start with '/'");
  if (!valid_payload_hash(r.payload_sha256))
    return Error("sigv4: the payload hash must be 64 hex digits or UNSIGNED-PAYLOAD");
  for (char c : r.host)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return Error("sigv4: the host has a space or control character");

  using namespace std::chrono;
  auto secs = duration_cast<seconds>(r.time.time_since_epoch()).count();
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  if (secs < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
    return Error("sigv4: the time is outside 1970-9999");
  char amz_date[20];
  std::strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
  std::string_view date(amz_date, 8);

  Signed s;
  s.amz_date = amz_date;
  s.content_sha256 = options_.content_sha256_header ? std::string(r.payload_sha256) : "";
  s.canonical_uri = http1::percent_encode(r.path, true);

  std::vector<std::pair<std::string, std::string>> query;
  query.reserve(r.query.size());
  for (const QueryParam& q : r.query)
    query.emplace_back(http1::percent_encode(q.name, false), http1::percent_encode(q.value, false));
  std::sort(query.begin(), query.end());
  for (std::size_t i = 0; i < query.size(); ++i) {
    if (i) s.canonical_query += '&';
    s.canonical_query += query[i].first;
    s.canonical_query += '=';
    s.canonical_query += query[i].second;
  }

  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(r.headers.size() + 3);
  for (const Header& h : r.headers) {
    if (h.name.empty() || !std::all_of(h.name.begin(), h.name.end(), is_tchar))
      return Error("sigv4: header name \"" + std::string(h.name) + "\" is not an HTTP token");
    if (h.value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
      return Error("sigv4: header " + std::string(h.name) + " has CR, LF or NUL in its value");
    std::string name = lower(h.name);
    if (name == "host" || name == "x-amz-date" || name == "x-amz-content-sha256" ||
        name == "authorization")
      return Error("sigv4: header " + name + " is set by the signer");
    headers.emplace_back(std::move(name), canonical_value(h.value));
  }
  headers.emplace_back("host", canonical_value(r.host));
  headers.emplace_back("x-amz-date", s.amz_date);
  if (options_.content_sha256_header)
    headers.emplace_back("x-amz-content-sha256", s.content_sha256);
  // Stable: repeated headers keep their order and are joined with ','.
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string canonical_headers;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      canonical_headers.back() = ',';  // replace the previous '\n'
      canonical_headers += headers[i].second;
      canonical_headers += '\n';
      continue;
    }
    if (!s.signed_headers.empty()) s.signed_headers += ';';
    s.signed_headers += headers[i].first;
    canonical_headers += headers[i].first;
    canonical_headers += ':';
    canonical_headers += headers[i].second;
    canonical_headers += '\n';
  }

  s.canonical_request.reserve(256 + canonical_headers.size());
  s.canonical_request.append(r.method).append("\n");
  s.canonical_request.append(s.canonical_uri).append("\n");
  s.canonical_request.append(s.canonical_query).append("\n");
  s.canonical_request.append(canonical_headers).append("\n");
  s.canonical_request.append(s.signed_headers).append("\n");
  s.canonical_request.append(r.payload_sha256);

  std::string scope = std::string(date) + "/" + region_ + "/" + service_ + "/aws4_request";
  s.string_to_sign = std::string(kAlgorithm) + "\n" + s.amz_date + "\n" + scope + "\n" +
                     sha256_hex(s.canonical_request);

  std::uint8_t sig[32];
  const auto& key = signing_key(date);
  hmac(key.data(), key.size(), s.string_to_sign, sig);
  s.signature = to_hex(sig, 32);
  s.authorization = std::string(kAlgorithm) + " Credential=" + access_key_ + "/" + scope +
                    ", SignedHeaders=" + s.signed_headers + ", Signature=" + s.signature;
  return s;
}

Result<Signed> sign_object_request(const Signer& signer, std::string_view method,
                                   const S3Target& target, std::string_view payload_sha256,
                                   std::chrono::system_clock::time_point time,
                                   std::span<const Header> extra) {
  if (target.bucket.empty()) return Error("s3: empty bucket name");
  if (target.key.empty()) return Error("s3: empty object key");
  std::string path;
  path.reserve(target.base_path.size() + target.bucket.size() + target.key.size() + 2);
  path.append(target.base_path).append("/").append(target.bucket).append("/").append(target.key);
  Request r;
  r.method = method;
  r.host = target.host;
  r.path = path;
  r.headers = extra;
  r.payload_sha256 = payload_sha256;
  r.time = time;
  return signer.sign(r);
}

Result<SignedUpload> sign_file_upload(const Signer& signer, const S3Target& target,
                                      const std::string& file_path,
                                      std::chrono::system_clock::time_point time) {
  auto digest = sha256_file(file_path);
  if (!digest) return std::move(digest).error();
  auto s = sign_object_request(signer, "PUT", target, digest->sha256, time);
  if (!s) return std::move(s).error();
  return SignedUpload{std::move(*s), digest->size};
}

std::string http1_request_head(std::string_view method, std::string_view host, const Signed& s,
                               std::int64_t content_length, std::span<const Header> extra) {
  std::string head;
  head.reserve(512);
  head.append(method).append(" ").append(s.canonical_uri);
  if (!s.canonical_query.empty()) head.append("?").append(s.canonical_query);
  head.append(" HTTP/1.1\r\nHost: ").append(host).append("\r\n");
  head.append("x-amz-date: ").append(s.amz_date).append("\r\n");
  if (!s.content_sha256.empty())
    head.append("x-amz-content-sha256: ").append(s.content_sha256).append("\r\n");
  head.append("Authorization: ").append(s.authorization).append("\r\n");
  if (content_length >= 0)
    head.append("Content-Length: ").append(std::to_string(content_length)).append("\r\n");
  for (const Header& h : extra)
    head.append(h.name).append(": ").append(h.value).append("\r\n");
  head.append("\r\n");
  return head;
}

}  // namespace ember::queue::sigv4
