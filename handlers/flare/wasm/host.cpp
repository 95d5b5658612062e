// flaron/v1 imports for Wasm flares. Every import validates guest pointers,
// copies what it keeps, and reports failures as trap codes: no exception and
// no longjmp ever crosses these frames.
#include "handlers/flare/wasm/host.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstring>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "ember/log.hpp"
#include "protocols/http1/http1.hpp"
#include "protocols/http1/writer.hpp"
#include "protocols/websocket/frame.hpp"
#include "protocols/websocket/utf8.hpp"

extern "C" void* ember_wasm_guard_exchange(void* next);  // guard.c

namespace ember::flare::wasm {
namespace {

using json = nlohmann::json;

constexpr uint32_t kMaxLogLines = 100;    // per invocation
constexpr size_t kMaxLogBytes = 4096;     // per line
constexpr uint32_t kMaxIds = 10'000;      // ID and random calls per invocation
constexpr uint32_t kMaxHeadersSet = 100;  // response headers per invocation
constexpr size_t kMaxListed = 1'000;      // keys in a spark_list answer

enum Import : int {
  req_method,
  req_url,
  req_header_get,
  req_body,
  resp_set_status,
  resp_header_set,
  resp_body_set,
  beam_fetch,
  log_info,
  log_warn,
  log_error,
  crypto_hash,
  crypto_hmac,
  crypto_sign_jwt,
  crypto_encrypt_aes,
  crypto_decrypt_aes,
  crypto_random_bytes,
  encoding_base64_encode,
  encoding_base64_decode,
  encoding_hex_encode,
  encoding_hex_decode,
  encoding_url_encode,
  encoding_url_decode,
  id_uuid,
  id_ulid,
  id_nanoid,
  id_ksuid,
  id_snowflake,
  snowflake_id,
  timestamp,
  spark_get,
  spark_set,
  spark_delete,
  spark_list,
  spark_pull,
  plasma_get,
  plasma_set,
  plasma_delete,
  plasma_increment,
  plasma_decrement,
  plasma_list,
  secret_get,
  ws_send,
  ws_close_conn,
  ws_conn_id,
  ws_event_type,
  ws_event_data,
  ws_close_code,
};

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

const char kHex[] = "0123456789abcdef";

std::string hex(const uint8_t* p, size_t n) {
  std::string s;
  s.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}

int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Standard base64 with padding, or base64url without (JWT's).
std::string base64(std::string_view in, bool url = false) {
  const char* alphabet = url ? kB64Url : kB64;
  std::string out;
  size_t i = 0;
  auto b = [&](size_t k) { return static_cast<uint8_t>(in[k]); };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = b(i) << 16 | b(i + 1) << 8 | b(i + 2);
    for (int s = 18; s >= 0; s -= 6)
      out.push_back(alphabet[(v >> s) & 63]);
  }
  if (size_t rest = in.size() - i) {
    uint32_t v = b(i) << 16 | (rest == 2 ? b(i + 1) << 8 : 0);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (rest == 2) out.push_back(alphabet[(v >> 6) & 63]);
    if (!url) {
      if (rest == 1) out.push_back('=');
      out.push_back('=');
    }
  }
  return out;
}

bool unbase64(std::string_view in, std::string* out) {
  if (in.size() % 4) return false;
  uint32_t v = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    int d;
    if (c == '=') {
      if (i + 2 < in.size()) return false;
      ++pad;
      continue;
    }
    if (pad) return false;
    const char* at = std::strchr(kB64, c);
    if (!at || !c) return false;
    d = static_cast<int>(at - kB64);
    v = v << 6 | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((v >> bits) & 0xff));
    }
  }
  return true;
}

// HMAC of `data` keyed by `key`, raw bytes; empty on failure.
std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(md, key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &n))
    return {};
  return std::string(reinterpret_cast<const char*>(out), n);
}

constexpr size_t kGcmNonce = 12, kGcmTag = 16;

// AES-256-GCM under SHA-256(secret) (a secret of any length makes one key):
// encrypting gives nonce | ciphertext | tag with a random nonce; decrypting
// takes that layout and fails unless the tag verifies.
bool aes_gcm(bool encrypt, std::string_view secret, std::string_view in, std::string* out) {
  unsigned char key[32];
  if (EVP_Digest(secret.data(), secret.size(), key, nullptr, EVP_sha256(), nullptr) != 1)
    return false;
  std::unique_ptr<EVP_CIPHER_CTX, void (*)(EVP_CIPHER_CTX*)> ctx(EVP_CIPHER_CTX_new(),
                                                                 EVP_CIPHER_CTX_free);
  if (!ctx) return false;
  unsigned char nonce[kGcmNonce];
  std::string_view body = in;
  if (encrypt) {
    if (RAND_bytes(nonce, sizeof nonce) != 1) return false;
  } else {
    if (in.size() < kGcmNonce + kGcmTag) return false;
    std::memcpy(nonce, in.data(), kGcmNonce);
    body = in.substr(kGcmNonce, in.size() - kGcmNonce - kGcmTag);
  }
  if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key, nonce, encrypt ? 1 : 0) != 1)
    return false;
  std::string result(encrypt ? kGcmNonce : 0, '\0');
  if (encrypt) std::memcpy(result.data(), nonce, kGcmNonce);
  size_t at = result.size();
  result.resize(at + body.size() + kGcmTag);
  int n = 0, m = 0;
  auto* dst = reinterpret_cast<unsigned char*>(result.data() + at);
  if (EVP_CipherUpdate(ctx.get(), dst, &n, reinterpret_cast<const unsigned char*>(body.data()),
                       static_cast<int>(body.size())) != 1)
    return false;
  if (!encrypt) {
    auto* tag = const_cast<char*>(in.data() + in.size() - kGcmTag);
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTag, tag) != 1) return false;
  }
  if (EVP_CipherFinal_ex(ctx.get(), dst + n, &m) != 1) return false;  // a bad tag fails here
  size_t len = at + static_cast<size_t>(n + m);
  if (encrypt) {
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTag, result.data() + len) != 1)
      return false;
    len += kGcmTag;
  }
  result.resize(len);
  *out = std::move(result);
  return true;
}

void random(uint8_t* p, size_t n) {
  if (RAND_bytes(p, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
}

uint64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

std::string uuid(bool v7) {
  uint8_t b[16];
  random(b, sizeof b);
  if (v7) {
    uint64_t ms = now_ms();
    for (int i = 0; i < 6; ++i)
      b[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
    b[6] = static_cast<uint8_t>(0x70 | (b[6] & 0x0f));
  } else {
    b[6] = static_cast<uint8_t>(0x40 | (b[6] & 0x0f));
  }
  b[8] = static_cast<uint8_t>(0x80 | (b[8] & 0x3f));
  std::string h = hex(b, 16);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string ulid() {
  static const char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  uint8_t b[16];
  uint64_t ms = now_ms();
  for (int i = 0; i < 6; ++i)
    b[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  random(b + 6, 10);
  // 128 bits as 26 base32 digits (the first carries 3 bits).
  std::string out(26, '0');
  unsigned __int128 v = 0;
  for (uint8_t x : b)
    v = v << 8 | x;
  for (int i = 25; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kCrockford[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  return out;
}

std::string nanoid(int32_t len) {
  static const char kAlphabet[] =
      "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";
  if (len == 0) len = 21;
  if (len < 0 || len > 256) return {};
  std::string out(static_cast<size_t>(len), '0');
  uint8_t b[256];
  random(b, static_cast<size_t>(len));
  for (int32_t i = 0; i < len; ++i)
    out[static_cast<size_t>(i)] = kAlphabet[b[i] & 63];
  return out;
}

std::string ksuid() {
  static const char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t b[20];
  uint32_t t = static_cast<uint32_t>(now_ms() / 1000 - 1'400'000'000u);
  for (int i = 0; i < 4; ++i)
    b[i] = static_cast<uint8_t>(t >> (24 - 8 * i));
  random(b + 4, 16);
  // Base62 of a 160-bit big-endian number, 27 digits, by long division.
  std::string out(27, '0');
  uint8_t n[20];
  std::memcpy(n, b, 20);
  for (int pos = 26; pos >= 0; --pos) {
    uint32_t rem = 0;
    for (uint8_t& d : n) {
      uint32_t acc = rem << 8 | d;
      d = static_cast<uint8_t>(acc / 62);
      rem = acc % 62;
    }
    out[static_cast<size_t>(pos)] = kBase62[rem];
  }
  return out;
}

// Snowflake: 41 bits of ms since 2010-11-04 (Twitter's epoch), 10 bits of
// node id (0 until nodes are configured), 12 bits of sequence.
std::string snowflake() {
  static std::atomic<uint64_t> last{0};
  constexpr uint64_t kEpoch = 1288834974657ull;
  uint64_t next = (now_ms() - kEpoch) << 22;
  uint64_t prev = last.load();
  uint64_t id;
  do {
    id = next > prev ? next : prev + 1;
  } while (!last.compare_exchange_weak(prev, id));
  return std::to_string(id);
}

std::string format_time(std::string_view format) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  if (format == "unix") return std::to_string(ts.tv_sec);
  if (format == "ms")
    return std::to_string(static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000);
  if (format == "ns")
    return std::to_string(static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull +
                          static_cast<uint64_t>(ts.tv_nsec));
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  if (format == "http") {
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &t);
    return buf;
  }
  if (format == "rfc3339" || format == "iso8601") {
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
    std::string s = buf;
    if (format == "iso8601") {
      char ms[24];
      std::snprintf(ms, sizeof ms, ".%03ld", ts.tv_nsec / 1'000'000);
      s += ms;
    }
    return s + "Z";
  }
  return {};
}

const char* import_name(int import) {
  auto all = imports();
  return import >= 0 && static_cast<size_t>(import) < all.size() ? all[import].name : "an import";
}

}  // namespace

int host_call(void* env, int import, const uint64_t* args, uint64_t* result) {
  return static_cast<Env*>(env)->dispatch(import, args, result);
}

Env::~Env() {
  if (instance) module.free_instance(instance);
}

Result<void> Env::create() {
  instance = module.new_instance();
  if (!instance) return Error("out of memory creating a Wasm instance");
  uint64_t unused = 0;
  int trap = guarded_call(module, instance, this, Module::init, 0, &unused);
  if (trap) {
    module.free_instance(instance);
    instance = nullptr;
    return Error("instantiating the module trapped: " + std::string(describe_trap(trap)));
  }
  return {};
}

void Env::bind(Context& ctx) noexcept {
  ctx_ = &ctx;
  begin();
}

void Env::bind(WsContext& ws) noexcept {
  ws_ = &ws;
  begin();
}

void Env::begin() noexcept {
  calls_ = logs_ = ids_ = headers_set_ = spark_reads_ = spark_writes_ = plasma_writes_ = 0;
  exception = nullptr;
  error.clear();
  bad_status = false;
  deadline_ =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(module.options().timeout_ms);
  module.fuel(instance, 1, static_cast<int64_t>(module.options().fuel));
}

int Env::fail(std::string message) {
  error = std::move(message);
  return trap_host_error;
}

int Env::view(uint64_t ptr, uint64_t len, std::string_view* out) {
  if (ptr == 0) {
    *out = {};
    return 0;
  }
  uint8_t* data = nullptr;
  uint32_t size = 0;
  module.memory(instance, &data, &size);
  if (ptr + len > size) {
    error = "pointer " + std::to_string(ptr) + " + length " + std::to_string(len) +
            " is past the end of memory (" + std::to_string(size) + " bytes)";
    return trap_host_bounds;
  }
  *out = {reinterpret_cast<const char*>(data + ptr), static_cast<size_t>(len)};
  return 0;
}

int Env::view_string(uint64_t ptr, uint64_t len, std::string* out) {
  std::string_view v;
  if (int t = view(ptr, len, &v)) return t;
  out->assign(v);
  return 0;
}

int Env::give(std::string_view data, uint64_t* result) {
  *result = 0;
  if (data.empty()) return 0;
  if (data.size() >= (1u << 31)) return 0;
  uint32_t len = static_cast<uint32_t>(data.size());
  uint64_t ptr = 0;
  if (int t = guarded_call(module, instance, this, Module::alloc, len, &ptr)) return t;
  ptr &= 0xffffffffu;
  if (ptr == 0) return 0;  // the guest cannot take it
  uint8_t* mem = nullptr;  // re-read: alloc may have grown (moved) memory
  uint32_t size = 0;
  module.memory(instance, &mem, &size);
  if (ptr + len > size) {
    error = "alloc(" + std::to_string(len) + ") returned " + std::to_string(ptr) +
            ", past the end of memory (" + std::to_string(size) + " bytes)";
    return trap_bad_alloc;
  }
  std::memcpy(mem + ptr, data.data(), len);
  *result = ptr << 32 | len;
  return 0;
}

int Env::dispatch(int import, const uint64_t* args, uint64_t* result) noexcept {
  // The wall-clock guard: checked on every 16th host call.
  if ((++calls_ & 15) == 0 && std::chrono::steady_clock::now() > deadline_) return trap_timeout;
  try {
    return call(import, args, result);
  } catch (const json::exception& e) {
    // Its own message says only "[json.exception...]": name the import.
    error = std::string(import_name(import)) + ": " + e.what();
    exception = std::make_exception_ptr(std::runtime_error(error));
    return trap_host_error;
  } catch (const std::exception& e) {
    exception = std::current_exception();
    error = std::string(import_name(import)) + ": " + e.what();
    return trap_host_error;
  } catch (...) {
    error = std::string(import_name(import)) + ": unknown failure";
    return trap_host_error;
  }
}

// 0 when this invocation may write to plasma now, else the status to answer.
uint32_t Env::plasma_write_status() {
  if (!policy.plasma) return plasma_unavailable;
  if (!policy.writes_plasma) return plasma_no_capability;
  if (++plasma_writes_ > policy.plasma_writes) return plasma_write_limit;
  return 0;
}

uint32_t Env::spark_set_status(std::string_view key, std::string_view value, int32_t ttl) {
  if (!policy.spark) return spark_unavailable;
  if (!policy.writes_spark) return spark_no_capability;
  if (++spark_writes_ > policy.spark_writes) return spark_write_limit;
  return policy.spark->set(policy.site, key, value, ttl, wall_clock_ms());
}

// The crypto imports keyed by a secret's name (spec 6.5): JSON in, a string
// out, 0 for any failure (bad JSON, a secret the route does not allow, a
// ciphertext that does not verify).
int Env::keyed_crypto(int import, const std::string& arg, uint64_t* r) {
  json args = json::parse(arg, nullptr, false);
  if (!args.is_object() || !args["secret_key"].is_string()) return 0;
  auto key = policy.secrets.find(args["secret_key"].get<std::string>());
  if (key == policy.secrets.end()) return 0;
  switch (import) {
    case crypto_hmac: {
      if (!args["input"].is_string()) return 0;
      std::string mac = hmac(EVP_sha256(), key->second, args["input"].get<std::string>());
      return mac.empty() ? 0
                         : give(hex(reinterpret_cast<const uint8_t*>(mac.data()), mac.size()), r);
    }
    case crypto_sign_jwt: {
      if (!args["algorithm"].is_string() || !args["claims"].is_object()) return 0;
      // Scalar claim values only: dump() recurses once per nesting level, so
      // a deeply nested guest document would overflow the stack.
      for (const json& value : args["claims"])
        if (value.is_structured()) return 0;
      std::string alg = args["algorithm"];
      const EVP_MD* md = alg == "HS256"   ? EVP_sha256()
                         : alg == "HS384" ? EVP_sha384()
                         : alg == "HS512" ? EVP_sha512()
                                          : nullptr;
      if (!md) return 0;
      std::string header = R"({"alg":")" + alg + R"(","typ":"JWT"})";
      std::string signing = base64(header, true) + "." + base64(args["claims"].dump(), true);
      std::string sig = hmac(md, key->second, signing);
      return sig.empty() ? 0 : give(signing + "." + base64(sig, true), r);
    }
    case crypto_encrypt_aes: {
      if (!args["input"].is_string()) return 0;
      std::string sealed;
      if (!aes_gcm(true, key->second, args["input"].get<std::string>(), &sealed)) return 0;
      return give(base64(sealed), r);
    }
    default: {  // crypto_decrypt_aes
      std::string sealed, plain;
      if (!args["input"].is_string() || !unbase64(args["input"].get<std::string>(), &sealed))
        return 0;
      return aes_gcm(false, key->second, sealed, &plain) ? give(plain, r) : 0;
    }
  }
}

int Env::call(int import, const uint64_t* a, uint64_t* r) {
  auto u32 = [&](int i) { return a[i] & 0xffffffffu; };
  auto i32 = [&](int i) { return static_cast<int32_t>(static_cast<uint32_t>(a[i])); };
  std::string s;
  std::string_view v;
  int t = 0;
  switch (import) {
    case req_method:
      return ctx_ ? give(ctx_->request.method(), r) : 0;
    case req_url:
      return ctx_ ? give(ctx_->request.url(), r) : 0;
    case req_header_get: {
      if ((t = view_string(u32(0), u32(1), &s)) || !ctx_) return t;
      std::string joined;
      bool found = false;
      for (const HeaderField& f : ctx_->request.headers()) {
        if (!ieq(f.name, s)) continue;
        if (found) joined += ", ";
        joined.append(f.value);
        found = true;
      }
      return give(joined, r);
    }
    case req_body:
      return ctx_ ? give(ctx_->request.body().view(), r) : 0;
    case resp_set_status:
      if (!ctx_) return 0;
      if (i32(0) < 100 || i32(0) > 599) {
        bad_status = true;
        error = "status " + std::to_string(i32(0)) + " is outside 100..599";
        return 0;
      }
      ctx_->response.set_status(i32(0));
      return 0;
    case resp_header_set: {
      std::string_view name, value;
      if ((t = view(u32(0), u32(1), &name)) || (t = view(u32(2), u32(3), &value)) || !ctx_)
        return t;
      // HTTP/1.1's rules (a token name, no controls but HTAB in the value):
      // its writer would refuse the whole answer over such a field.
      if (!http1::valid_field_name(name) || !http1::valid_field_value(value)) {
        EMBER_WARN("ember.flare", "wasm flare set a malformed response header; dropped",
                   {"flare", flare}, {"name", std::string(name.substr(0, 64))});
        return 0;
      }
      if (++headers_set_ > kMaxHeadersSet) return fail("more than 100 response headers");
      ctx_->response.set_header(name, value);
      return 0;
    }
    case resp_body_set:
      if ((t = view(u32(0), u32(1), &v)) || !ctx_) return t;
      ctx_->response.set_body(v);
      return 0;
    case log_info:
    case log_warn:
    case log_error: {
      if ((t = view(u32(0), u32(1), &v))) return t;
      if (++logs_ > kMaxLogLines) return 0;  // dropped: per-invocation cap
      std::string msg(v.substr(0, kMaxLogBytes));
      if (logs_ == kMaxLogLines) msg += " (log cap reached: further lines dropped)";
      if (import == log_info)
        EMBER_INFO("ember.flare.log", "flare log", {"flare", flare}, {"message", msg});
      else if (import == log_warn)
        EMBER_WARN("ember.flare.log", "flare log", {"flare", flare}, {"message", msg});
      else
        EMBER_ERROR("ember.flare.log", "flare log", {"flare", flare}, {"message", msg});
      return 0;
    }
    case crypto_hash: {
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      json args = json::parse(s, nullptr, false);
      if (!args.is_object() || !args["algorithm"].is_string() || !args["input"].is_string())
        return 0;
      std::string alg = args["algorithm"], input = args["input"];
      const EVP_MD* md = alg == "sha256"   ? EVP_sha256()
                         : alg == "sha1"   ? EVP_sha1()
                         : alg == "sha384" ? EVP_sha384()
                         : alg == "sha512" ? EVP_sha512()
                         : alg == "md5"    ? EVP_md5()
                                           : nullptr;
      if (!md) return 0;
      unsigned char out[EVP_MAX_MD_SIZE];
      unsigned int n = 0;
      if (EVP_Digest(input.data(), input.size(), out, &n, md, nullptr) != 1) return 0;
      return give(hex(out, n), r);
    }
    case crypto_hmac:
    case crypto_sign_jwt:
    case crypto_encrypt_aes:
    case crypto_decrypt_aes:
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      return keyed_crypto(import, s, r);
    case secret_get: {
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      auto it = policy.secrets.find(s);  // missing and not allowed look the same
      return it == policy.secrets.end() ? 0 : give(it->second, r);
    }
    case crypto_random_bytes: {
      int32_t n = i32(0);
      if (n < 1 || n > 256 || ++ids_ > kMaxIds) return 0;
      uint8_t b[256];
      random(b, static_cast<size_t>(n));
      return give(hex(b, static_cast<size_t>(n)), r);
    }
    case encoding_base64_encode:
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      return give(base64(s), r);
    case encoding_base64_decode: {
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      std::string out;
      return unbase64(s, &out) ? give(out, r) : 0;
    }
    case encoding_hex_encode:
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      return give(hex(reinterpret_cast<const uint8_t*>(s.data()), s.size()), r);
    case encoding_hex_decode: {
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      if (s.size() % 2) return 0;
      std::string out;
      for (size_t i = 0; i < s.size(); i += 2) {
        int h = unhex(s[i]), l = unhex(s[i + 1]);
        if (h < 0 || l < 0) return 0;
        out.push_back(static_cast<char>(h << 4 | l));
      }
      return give(out, r);
    }
    case encoding_url_encode:
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      return give(http1::percent_encode(s), r);
    case encoding_url_decode: {
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      std::string out;
      return http1::form_decode(s, &out) ? give(out, r) : 0;
    }
    case id_uuid: {
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      if (++ids_ > kMaxIds) return 0;
      std::string version = "v4";
      if (!s.empty()) {
        json args = json::parse(s, nullptr, false);
        if (!args.is_object()) return 0;
        if (args.contains("version")) {
          if (!args["version"].is_string()) return 0;
          version = args["version"];
        }
      }
      if (version != "v4" && version != "v7") return 0;
      return give(uuid(version == "v7"), r);
    }
    case id_ulid:
      return ++ids_ > kMaxIds ? 0 : give(ulid(), r);
    case id_nanoid:
      return ++ids_ > kMaxIds ? 0 : give(nanoid(i32(0)), r);
    case id_ksuid:
      return ++ids_ > kMaxIds ? 0 : give(ksuid(), r);
    case id_snowflake:
    case snowflake_id:
      return ++ids_ > kMaxIds ? 0 : give(snowflake(), r);
    case timestamp: {
      if ((t = view_string(u32(0), u32(1), &s))) return t;
      std::string format = "unix";
      if (!s.empty()) {
        json args = json::parse(s, nullptr, false);
        if (!args.is_object() || !args["format"].is_string()) return 0;
        format = args["format"];
      }
      return give(format_time(format), r);
    }
    case spark_get: {
      if ((t = view(u32(0), u32(1), &v))) return t;
      if (!policy.spark || ++spark_reads_ > policy.spark_reads) return 0;
      auto got = policy.spark->get(policy.site, v, wall_clock_ms());
      if (!got) return 0;
      std::string payload(4, '\0');  // u32 LE seconds left (0: no expiry), then the value
      for (int i = 0; i < 4; ++i)
        payload[i] = static_cast<char>((got->ttl_left >> (8 * i)) & 0xff);
      payload += got->data;
      return give(payload, r);
    }
    case spark_set: {
      std::string_view value;
      if ((t = view(u32(0), u32(1), &v)) || (t = view(u32(2), u32(3), &value))) return t;
      *r = spark_set_status(v, value, i32(4));
      return 0;
    }
    case spark_delete:
      if ((t = view(u32(0), u32(1), &v))) return t;
      if (policy.spark && policy.writes_spark && ++spark_writes_ <= policy.spark_writes)
        policy.spark->remove(policy.site, v);
      return 0;
    case spark_list: {
      if (!policy.spark || ++spark_reads_ > policy.spark_reads) return 0;
      return give(json(policy.spark->list(policy.site, wall_clock_ms(), kMaxListed))
                      .dump(-1, ' ', false, json::error_handler_t::replace),
                  r);
    }
    case spark_pull: {  // one node: there is no other node to pull from
      std::string_view keys;
      if ((t = view(u32(0), u32(1), &v)) || (t = view(u32(2), u32(3), &keys))) return t;
      *r = static_cast<uint32_t>(-spark_unavailable);
      return 0;
    }
    case plasma_get: {
      if ((t = view(u32(0), u32(1), &v))) return t;
      if (!policy.plasma) return 0;
      auto got = policy.plasma->get(policy.site, v);
      return got ? give(*got, r) : 0;
    }
    case plasma_set: {
      std::string_view value;
      if ((t = view(u32(0), u32(1), &v)) || (t = view(u32(2), u32(3), &value))) return t;
      uint32_t st = plasma_write_status();
      *r = st ? st : static_cast<uint32_t>(policy.plasma->set(policy.site, v, value));
      return 0;
    }
    case plasma_delete: {
      if ((t = view(u32(0), u32(1), &v))) return t;
      uint32_t st = plasma_write_status();
      *r = st ? st : static_cast<uint32_t>(policy.plasma->remove(policy.site, v));
      return 0;
    }
    case plasma_increment:
    case plasma_decrement: {
      if ((t = view(u32(0), u32(1), &v))) return t;
      auto delta = static_cast<int64_t>(a[2]);
      if (plasma_write_status() != 0) return 0;
      if (import == plasma_decrement) {
        if (delta == INT64_MIN) return 0;
        delta = -delta;
      }
      auto value = policy.plasma->add(policy.site, v, delta);
      if (!value) return 0;
      std::string le(8, '\0');  // the new value, i64 little-endian
      for (int i = 0; i < 8; ++i)
        le[i] = static_cast<char>((static_cast<uint64_t>(*value) >> (8 * i)) & 0xff);
      return give(le, r);
    }
    case plasma_list:
      if (!policy.plasma) return 0;
      return give(json(policy.plasma->list(policy.site, kMaxListed))
                      .dump(-1, ' ', false, json::error_handler_t::replace),
                  r);
    case ws_send: {
      if ((t = view(u32(0), u32(1), &v))) return t;
      // No text/binary flag in flaron/v1: valid UTF-8 goes as text, the rest
      // as binary. Sends fail outside a WebSocket event and during close.
      bool ok = ws_ && ws_->event() != WsEventType::close &&
                ws_->channel().send(Bytes::copy(v), websocket::valid_utf8(v));
      *r = ok ? 0 : 1;
      return 0;
    }
    case ws_close_conn:
      if (ws_) {
        auto code = static_cast<uint16_t>(i32(0));
        ws_->close(i32(0) >= 1000 && i32(0) <= 4999 && websocket::valid_close_code(code)
                       ? code
                       : websocket::close_code::normal);
      }
      return 0;
    case ws_conn_id:
      return ws_ ? give(std::to_string(ws_->connection_id()), r) : 0;
    case ws_event_type:
      if (!ws_) return 0;
      return give(ws_->event() == WsEventType::open      ? "open"
                  : ws_->event() == WsEventType::message ? "message"
                                                         : "close",
                  r);
    case ws_event_data:
      return ws_ && ws_->event() == WsEventType::message ? give(ws_->data().view(), r) : 0;
    case ws_close_code:
      *r = ws_ && ws_->event() == WsEventType::close ? ws_->close_code() : 0;
      return 0;
    case beam_fetch:
      return beam(a, r);
    default:
      return 0;
  }
}

// beam_fetch(url, opts): opts is {"method", "body", "headers": {name: value}}
// or (0, 0). Answers the envelope {"status", "headers", "body"}, or nothing
// (0) when the route lacks `beam`, the host is not in beam.allow, a limit is
// hit or the origin fails; the log says which. The guest waits on its fiber;
// the time it waits is not counted against wasm.timeout.
int Env::beam(const uint64_t* a, uint64_t* r) {
  *r = 0;
  if (!ctx_) {
    EMBER_INFO("ember.flare", "beam_fetch refused: not available in WebSocket events",
               {"flare", flare});
    return 0;
  }
  if (!policy.beam) {
    EMBER_INFO("ember.flare", "beam_fetch refused: the route does not grant the beam capability",
               {"flare", flare});
    return 0;
  }
  std::string url, opts_text;
  if (int t = view_string(a[0] & 0xffffffffu, a[1] & 0xffffffffu, &url)) return t;
  if (int t = view_string(a[2] & 0xffffffffu, a[3] & 0xffffffffu, &opts_text)) return t;
  std::string method = "GET", body;
  std::vector<std::pair<std::string, std::string>> fields;
  if (!opts_text.empty()) {
    json opts = json::parse(opts_text, nullptr, false);
    bool ok = opts.is_object();
    if (ok && opts.contains("method")) {
      ok = opts["method"].is_string();
      if (ok) method = opts["method"].get<std::string>();
    }
    if (ok && opts.contains("body")) {
      ok = opts["body"].is_string();
      if (ok) body = opts["body"].get<std::string>();
    }
    if (ok && opts.contains("headers")) {
      ok = opts["headers"].is_object();
      for (auto it = opts["headers"].begin(); ok && it != opts["headers"].end(); ++it) {
        ok = it.value().is_string();
        if (ok) fields.emplace_back(it.key(), it.value().get<std::string>());
      }
    }
    if (!ok) {
      EMBER_INFO("ember.flare",
                 "beam_fetch refused: options must be a JSON object with string method and body "
                 "and a headers object of strings",
                 {"flare", flare});
      return 0;
    }
  }
  std::vector<HeaderField> headers;
  headers.reserve(fields.size());
  for (const auto& [n, v] : fields)
    headers.push_back({n, v});
  FetchRequest request;
  request.method = method;
  request.url = url;
  request.headers = headers;
  request.body = body;

  // The guest's trap guard belongs to this fiber's stack: the loop runs
  // other guests while this one waits.
  struct Waiting {  // puts the guard back and stops the clock, even on a throw
    Env& env;
    void* guard = ember_wasm_guard_exchange(nullptr);
    std::chrono::steady_clock::time_point asked = std::chrono::steady_clock::now();
    ~Waiting() {
      ember_wasm_guard_exchange(guard);
      env.deadline_ += std::chrono::steady_clock::now() - asked;
    }
  };
  Result<FetchResponse> got = Error("not fetched");
  {
    Waiting waiting{*this};
    got = ctx_->fetch(request);
  }
  if (!got) {
    EMBER_INFO("ember.flare", "beam_fetch failed", {"flare", flare},
               {"error", got.error().message});
    return 0;
  }
  json headers_out = json::object();
  for (auto& [n, v] : got->headers) {
    auto& slot = headers_out[n];
    slot = slot.is_string() ? slot.get<std::string>() + ", " + v : v;  // repeated: joined
  }
  json envelope = {
      {"status", got->status}, {"headers", std::move(headers_out)}, {"body", std::move(got->body)}};
  return give(envelope.dump(-1, ' ', false, json::error_handler_t::replace), r);
}

}  // namespace ember::flare::wasm
