#include "core/tls.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace ember::tls {
namespace {

constexpr size_t kMaxPlain = 16384;  // largest record plaintext (RFC 8446 §5.1)
constexpr size_t kSmallBuffer = 16 * 1024;
constexpr size_t kPlainBuffer = 64 * 1024;  // room for four records of plaintext
constexpr size_t kLargeBuffer = 256 * 1024;
constexpr size_t kRecordOverhead = 64;  // per record on the wire, for sizing only

// Small iovecs are gathered here into one record. Shared by every engine of
// the thread: encrypt() empties it before returning.
thread_local uint8_t t_stage[kMaxPlain];

// SSL_get_error() reads the thread's error queue, so it must start empty;
// something else on the thread may have left entries. Peeking is much
// cheaper than clearing (which walks all 16 slots), and the queue is almost
// always empty: this runs on every feed() and encrypt().
inline void clear_stale_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

Error ssl_error(std::string what) {
  unsigned long e = ERR_peek_error();
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    what += ": ";
    if (reason) {
      what += reason;
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "error %08lX", e);
      what += buf;
    }
  }
  ERR_clear_error();
  return Error(std::move(what));
}

Result<int> parse_version(const std::string& name, const char* which) {
  if (name.empty()) return 0;
  if (name == "TLSv1") return TLS1_VERSION;
  if (name == "TLSv1.1") return TLS1_1_VERSION;
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return Error("TLS: unknown " + std::string(which) + " \"" + name +
               "\" (expected TLSv1.2 or TLSv1.3)");
}

// Version bounds and cipher lists, common to both sides.
Result<void> configure_common(SSL_CTX* ctx, const std::string& min_version,
                              const std::string& max_version, const std::string& ciphers,
                              const std::string& ciphersuites) {
  auto lo = parse_version(min_version, "min_version");
  if (!lo) return lo.error();
  auto hi = parse_version(max_version, "max_version");
  if (!hi) return hi.error();
  if (*lo && *hi && *lo > *hi)
    return Error("TLS: min_version " + min_version + " is above max_version " + max_version);
  if (!SSL_CTX_set_min_proto_version(ctx, *lo) || !SSL_CTX_set_max_proto_version(ctx, *hi))
    return ssl_error("TLS: cannot set protocol versions");
  if (!ciphers.empty() && !SSL_CTX_set_cipher_list(ctx, ciphers.c_str()))
    return ssl_error("TLS: bad cipher list \"" + ciphers + "\"");
  if (!ciphersuites.empty() && !SSL_CTX_set_ciphersuites(ctx, ciphersuites.c_str()))
    return ssl_error("TLS: bad TLS 1.3 cipher suites \"" + ciphersuites + "\"");
  // No renegotiation (a DoS vector, and TLS 1.3 has none); keep OpenSSL's
  // record buffers between records (no malloc per record).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_clear_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
  // Let the record layer pull as much input as its buffer holds: one BIO
  // read per feed instead of two per record.
  SSL_CTX_set_read_ahead(ctx, 1);
  return {};
}

// Length-prefixed ALPN list (RFC 7301 §3.1). (Result<std::string> would be
// ambiguous: an Error is constructible from a string.)
Result<std::vector<char>> alpn_wire(const std::vector<std::string>& protocols) {
  std::vector<char> wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255)
      return Error("TLS: ALPN protocol names must be 1..255 bytes, got \"" + p + "\"");
    wire.push_back(static_cast<char>(p.size()));
    wire.insert(wire.end(), p.begin(), p.end());
  }
  if (wire.size() > 65535) return Error("TLS: ALPN list too long");
  return wire;
}

Result<std::vector<char>> read_file(const std::string& path, const char* what) {
  if (path.empty()) return Error(std::string("TLS: no ") + what + " file given");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    int err = errno;
    return Error(
        "TLS: cannot open " + std::string(what) + " file " + path + ": " + std::strerror(err),
        -err);
  }
  std::vector<char> data;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    data.insert(data.end(), buf, buf + n);
  int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err)
    return Error(
        "TLS: cannot read " + std::string(what) + " file " + path + ": " + std::strerror(err),
        -err);
  return data;
}

// Never prompts on a terminal for an encrypted key's passphrase.
int no_password(char*, int, int, void*) {
  return 0;
}

struct KeyPair {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  STACK_OF(X509) * chain = nullptr;  // intermediates after the leaf

  KeyPair() = default;
  KeyPair(KeyPair&& o) noexcept : cert(o.cert), key(o.key), chain(o.chain) {
    o.cert = nullptr;
    o.key = nullptr;
    o.chain = nullptr;
  }
  KeyPair& operator=(KeyPair&&) = delete;
  ~KeyPair() {
    X509_free(cert);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
  }
};

Result<KeyPair> load_key_pair(const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  auto pem = read_file(cert_file, "certificate");
  if (!pem) return pem.error();
  KeyPair kp;
  {
    // (An empty vector's data() may be null, which BIO_new_mem_buf refuses.)
    BIO* bio = BIO_new_mem_buf(pem->empty() ? "" : pem->data(), static_cast<int>(pem->size()));
    if (!bio) return ssl_error("TLS: out of memory reading " + cert_file);
    kp.cert = PEM_read_bio_X509(bio, nullptr, no_password, nullptr);
    if (!kp.cert) {
      BIO_free(bio);
      return ssl_error("TLS: no PEM certificate in " + cert_file);
    }
    kp.chain = sk_X509_new_null();
    while (X509* c = PEM_read_bio_X509(bio, nullptr, no_password, nullptr)) {
      if (!sk_X509_push(kp.chain, c)) {
        X509_free(c);
        BIO_free(bio);
        return ssl_error("TLS: out of memory reading " + cert_file);
      }
    }
    BIO_free(bio);
    // The loop ends on "no start line" at the end of the file; anything
    // else is a broken certificate in the chain.
    unsigned long e = ERR_peek_last_error();
    if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
      return ssl_error("TLS: bad certificate in the chain of " + cert_file);
    ERR_clear_error();
  }
  auto key_pem = read_file(key_file, "private key");
  if (!key_pem) return key_pem.error();
  BIO* bio =
      BIO_new_mem_buf(key_pem->empty() ? "" : key_pem->data(), static_cast<int>(key_pem->size()));
  if (!bio) return ssl_error("TLS: out of memory reading " + key_file);
  kp.key = PEM_read_bio_PrivateKey(bio, nullptr, no_password, nullptr);
  BIO_free(bio);
  if (!kp.key) return ssl_error("TLS: no usable PEM private key in " + key_file);
  if (X509_check_private_key(kp.cert, kp.key) != 1) {
    ERR_clear_error();
    return Error("TLS: private key " + key_file + " does not match certificate " + cert_file);
  }
  return kp;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool valid_host_pattern(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  if (h.substr(0, 2) == "*.") h.remove_prefix(2);
  if (h.empty() || h.front() == '.' || h.back() == '.') return false;
  return h.find('*') == std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

using NameIndex = std::vector<std::pair<std::string, uint32_t>>;

const uint32_t* find_name(const NameIndex& index, std::string_view name) {
  auto it = std::lower_bound(index.begin(), index.end(), name,
                             [](const auto& e, std::string_view n) { return e.first < n; });
  return it != index.end() && it->first == name ? &it->second : nullptr;
}

}  // namespace

// ---- ServerContext ------------------------------------------------------------

// One generation of certificates; immutable once built. A handshake takes a
// snapshot, so reload() never changes what a running handshake sees.
struct ServerContext::CertSet {
  std::vector<KeyPair> pairs;
  NameIndex exact;     // lowercase names, sorted
  NameIndex wildcard;  // "*.example.com" stored as "example.com", sorted
  uint32_t fallback = 0;

  const KeyPair& pick(std::string_view host) const {
    char buf[256];
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (host.empty() || host.size() >= sizeof buf) return pairs[fallback];
    for (size_t i = 0; i < host.size(); ++i) {
      char c = host[i];
      buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    std::string_view name(buf, host.size());
    if (const uint32_t* i = find_name(exact, name)) return pairs[*i];
    size_t dot = name.find('.');
    if (dot != std::string_view::npos && dot > 0)
      if (const uint32_t* i = find_name(wildcard, name.substr(dot + 1))) return pairs[*i];
    return pairs[fallback];
  }
};

namespace {

Result<std::shared_ptr<const ServerContext::CertSet>> load_cert_set(const ServerConfig& config,
                                                                    SSL_CTX* ctx) {
  auto set = std::make_shared<ServerContext::CertSet>();
  bool have_default = false;
  for (size_t i = 0; i < config.certificates.size(); ++i) {
    const auto& c = config.certificates[i];
    auto kp = load_key_pair(c.cert_file, c.key_file);
    if (!kp) return kp.error();
    set->pairs.push_back(std::move(*kp));
    if (c.hosts.empty() && !have_default) {
      set->fallback = static_cast<uint32_t>(i);
      have_default = true;
    }
    for (const std::string& h : c.hosts) {
      if (!valid_host_pattern(h))
        return Error("TLS: bad host name \"" + h + "\" for certificate " + c.cert_file +
                     " (exact name or \"*.\" followed by a name)");
      std::string name = lower(h);
      if (name.substr(0, 2) == "*.")
        set->wildcard.emplace_back(name.substr(2), static_cast<uint32_t>(i));
      else
        set->exact.emplace_back(std::move(name), static_cast<uint32_t>(i));
    }
  }
  // A name listed twice goes to the first certificate that lists it.
  for (NameIndex* index : {&set->exact, &set->wildcard}) {
    std::stable_sort(index->begin(), index->end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    index->erase(std::unique(index->begin(), index->end(),
                             [](const auto& a, const auto& b) { return a.first == b.first; }),
                 index->end());
  }
  // Try each pair on a scratch connection now, so that a certificate the
  // library refuses (key too small for the security level) fails here and
  // not in every handshake.
  SSL* probe = SSL_new(ctx);
  if (!probe) return ssl_error("TLS: cannot create a connection to check certificates");
  for (size_t i = 0; i < set->pairs.size(); ++i) {
    const KeyPair& kp = set->pairs[i];
    if (SSL_use_cert_and_key(probe, kp.cert, kp.key, kp.chain, 1) != 1) {
      SSL_free(probe);
      return ssl_error("TLS: certificate " + config.certificates[i].cert_file + " rejected");
    }
  }
  SSL_free(probe);
  return std::shared_ptr<const ServerContext::CertSet>(std::move(set));
}

}  // namespace

ServerContext::ServerContext(ServerConfig config) : config_(std::move(config)) {}

ServerContext::~ServerContext() {
  SSL_CTX_free(ctx_);
}

Result<std::shared_ptr<ServerContext>> ServerContext::create(ServerConfig config) {
  detail::enable_connection_tls();
  if (config.certificates.empty()) return Error("TLS: a server needs at least one certificate");
  auto wire = alpn_wire(config.alpn);
  if (!wire) return wire.error();
  std::shared_ptr<ServerContext> self(new ServerContext(std::move(config)));
  self->alpn_wire_.assign(wire->begin(), wire->end());
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return ssl_error("TLS: cannot create a server context");
  self->ctx_ = ctx;
  const ServerConfig& c = self->config_;
  auto common = configure_common(ctx, c.min_version, c.max_version, c.ciphers, c.ciphersuites);
  if (!common) return common.error();
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Send the chain from the certificate file as is; never build one from a
  // store during the handshake.
  SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
  if (!c.session_tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  // One TLS 1.3 ticket per handshake (OpenSSL sends two): each costs a
  // session encryption, and the client cache keeps only the newest.
  SSL_CTX_set_num_tickets(ctx, 1);
  if (c.session_cache_size > 0) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, static_cast<long>(c.session_cache_size));
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  static const unsigned char kSessionContext[] = "ember";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_tlsext_servername_callback(ctx, &ServerContext::on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx, self.get());
  if (!self->alpn_wire_.empty())
    SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::on_alpn, self.get());

  auto set = load_cert_set(self->config_, ctx);
  if (!set) return set.error();
  self->certs_ = std::move(*set);
  return self;
}

Result<void> ServerContext::reload() {
  std::lock_guard lock(reload_mu_);
  ERR_clear_error();
  auto set = load_cert_set(config_, ctx_);
  if (!set) return set.error();
  std::shared_ptr<const CertSet> old;  // freed outside the lock
  {
    std::lock_guard certs_lock(certs_mu_);
    old = std::exchange(certs_, std::move(*set));
  }
  return {};
}

std::shared_ptr<const ServerContext::CertSet> ServerContext::current_certs() const {
  std::lock_guard lock(certs_mu_);
  return certs_;
}

int ServerContext::on_servername(SSL* ssl, int* alert, void* arg) {
  auto* self = static_cast<ServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::shared_ptr<const CertSet> set = self->current_certs();
  const KeyPair& kp = set->pick(name ? std::string_view(name) : std::string_view());
  // The connection takes its own references: a later reload cannot free them.
  if (SSL_use_cert_and_key(ssl, kp.cert, kp.key, kp.chain, 1) != 1) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::on_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void* arg) {
  const std::string& ours = static_cast<ServerContext*>(arg)->alpn_wire_;
  for (size_t i = 0; i < ours.size(); i += 1 + static_cast<uint8_t>(ours[i])) {
    size_t len = static_cast<uint8_t>(ours[i]);
    const char* proto = ours.data() + i + 1;
    for (size_t j = 0; j < inlen;) {
      size_t theirs = in[j];
      if (j + 1 + theirs > inlen) break;  // OpenSSL validated the list; be safe anyway
      if (theirs == len && std::memcmp(in + j + 1, proto, len) == 0) {
        *out = in + j + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      j += 1 + theirs;
    }
  }
  // RFC 7301 §3.2: no overlap is a fatal no_application_protocol alert.
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// ---- ClientContext ------------------------------------------------------------

ClientContext::~ClientContext() {
  clear_sessions();
  SSL_CTX_free(ctx_);
}

Result<std::shared_ptr<ClientContext>> ClientContext::create(ClientConfig config) {
  detail::enable_connection_tls();
  auto wire = alpn_wire(config.alpn);
  if (!wire) return wire.error();
  std::shared_ptr<ClientContext> self(new ClientContext(std::move(config)));
  const ClientConfig& c = self->config_;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return ssl_error("TLS: cannot create a client context");
  self->ctx_ = ctx;
  auto common = configure_common(ctx, c.min_version, c.max_version, c.ciphers, c.ciphersuites);
  if (!common) return common.error();
  if (c.verify_peer) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (c.ca_file.empty()) {
      if (!SSL_CTX_set_default_verify_paths(ctx))
        return ssl_error("TLS: cannot load the system's CA certificates");
    } else {
      auto pem = read_file(c.ca_file, "CA");  // for a clear error when it is missing
      if (!pem) return pem.error();
      if (!SSL_CTX_load_verify_locations(ctx, c.ca_file.c_str(), nullptr))
        return ssl_error("TLS: no usable CA certificate in " + c.ca_file);
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!c.cert_file.empty() || !c.key_file.empty()) {
    auto kp = load_key_pair(c.cert_file, c.key_file);
    if (!kp) return kp.error();
    if (SSL_CTX_use_cert_and_key(ctx, kp->cert, kp->key, kp->chain, 1) != 1)
      return ssl_error("TLS: certificate " + c.cert_file + " rejected");
  }
  if (!wire->empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire->data()),
                              static_cast<unsigned int>(wire->size())) != 0)
    return ssl_error("TLS: cannot set ALPN");
  if (c.session_cache_size > 0) {
    // Sessions live in our host:port map, not OpenSSL's (which is keyed by
    // session id and useless to a client).
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &ClientContext::on_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  return self;
}

int ClientContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* engine = static_cast<Engine*>(SSL_get_app_data(ssl));
  if (!engine || !engine->client_ctx_ || !SSL_SESSION_is_resumable(session)) return 0;
  engine->client_ctx_->store_session(engine->session_key_, session);
  return 1;  // we keep OpenSSL's reference
}

void ClientContext::store_session(const std::string& key, SSL_SESSION* session) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    SSL_SESSION_free(it->second);
    it->second = session;
    return;
  }
  if (sessions_.size() >= config_.session_cache_size) {
    // Any entry will do: the cache is a hint, a miss costs a full handshake.
    auto victim = sessions_.begin();
    SSL_SESSION_free(victim->second);
    sessions_.erase(victim);
  }
  sessions_.emplace(key, session);
}

SSL_SESSION* ClientContext::find_session(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  SSL_SESSION_up_ref(it->second);
  return it->second;
}

void ClientContext::clear_sessions() {
  std::lock_guard lock(mu_);
  for (auto& [key, session] : sessions_)
    SSL_SESSION_free(session);
  sessions_.clear();
}

size_t ClientContext::cached_sessions() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

// ---- Engine: the BIO ------------------------------------------------------------

int Engine::bio_write(BIO* bio, const char* data, size_t n, size_t* written) {
  BIO_clear_retry_flags(bio);
  static_cast<Engine*>(BIO_get_data(bio))->write_out(reinterpret_cast<const uint8_t*>(data), n);
  *written = n;
  return 1;
}

int Engine::bio_read(BIO* bio, char* data, size_t n, size_t* read) {
  BIO_clear_retry_flags(bio);
  auto* self = static_cast<Engine*>(BIO_get_data(bio));
  size_t left = self->in_ ? self->in_->size() - self->in_off_ : 0;
  if (left == 0) {
    BIO_set_retry_read(bio);
    *read = 0;
    return 0;
  }
  size_t k = std::min(n, left);
  std::memcpy(data, self->in_->data() + self->in_off_, k);
  self->in_off_ += k;
  *read = k;
  return 1;
}

namespace {

long bio_ctrl(BIO*, int cmd, long, void*) {
  // Only flush matters to the SSL layer; everything else is unsupported.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

}  // namespace

void Engine::write_out(const uint8_t* data, size_t n) {
  if (!out_buf_ || out_buf_->capacity() - out_fill_ < n) {
    close_segment();
    release_out_buffer();
    out_buf_ = pool_.take(std::max(n, out_hint_)).release();
  }
  std::memcpy(out_buf_->data() + out_fill_, data, n);
  out_fill_ += n;
}

void Engine::close_segment() {
  if (out_buf_ && out_fill_ > seg_start_) {
    pending_.push_back(
        Bytes::share(out_buf_, out_buf_->data() + seg_start_, out_fill_ - seg_start_));
    seg_start_ = out_fill_;
  }
}

void Engine::release_out_buffer() noexcept {
  if (out_buf_) out_buf_->release();
  out_buf_ = nullptr;
  out_fill_ = seg_start_ = 0;
}

void Engine::flush_pending(IoChain& out) {
  close_segment();
  // Holding no buffer between calls: an idle connection costs no pool memory.
  release_out_buffer();
  for (Bytes& b : pending_)
    out.append(std::move(b));
  pending_.clear();
}

// ---- Engine -------------------------------------------------------------------

bool Engine::init(SSL_CTX* ctx) {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ember-tls");
    if (m) {
      BIO_meth_set_write_ex(m, &Engine::bio_write);
      BIO_meth_set_read_ex(m, &Engine::bio_read);
      BIO_meth_set_ctrl(m, &bio_ctrl);
      BIO_meth_set_create(m, &bio_create);
    }
    return m;
  }();
  ERR_clear_error();
  if (!method) return false;
  ssl_ = SSL_new(ctx);
  if (!ssl_) {
    ERR_clear_error();
    return false;
  }
  BIO* bio = BIO_new(method);
  if (!bio) {
    ERR_clear_error();
    return false;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one reference, for both directions
  SSL_set_app_data(ssl_, this);
  return true;
}

std::unique_ptr<Engine> Engine::server(ServerContext& ctx, BufferPool& pool) {
  std::unique_ptr<Engine> e(new Engine(Role::server, pool));
  e->ctx_ref_ = ctx.shared_from_this();
  if (!e->init(ctx.native_handle())) return nullptr;
  SSL_set_accept_state(e->ssl_);
  return e;
}

std::unique_ptr<Engine> Engine::client(ClientContext& ctx, std::string_view host, BufferPool& pool,
                                       uint16_t port) {
  std::unique_ptr<Engine> e(new Engine(Role::client, pool));
  e->ctx_ref_ = ctx.shared_from_this();
  e->client_ctx_ = &ctx;
  e->host_ = host;
  e->session_key_ = e->host_ + ":" + std::to_string(port);
  if (!e->init(ctx.native_handle())) return nullptr;
  SSL* ssl = e->ssl_;
  bool ip = is_ip_literal(e->host_);
  // RFC 6066 §3: SNI carries DNS names only.
  if (!ip && !e->host_.empty() && !SSL_set_tlsext_host_name(ssl, e->host_.c_str())) {
    ERR_clear_error();
    return nullptr;
  }
  if (ctx.config().verify_peer && !e->host_.empty()) {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), e->host_.c_str())
                : SSL_set1_host(ssl, e->host_.c_str());
    if (ok != 1) {
      ERR_clear_error();
      return nullptr;
    }
  }
  if (SSL_SESSION* s = ctx.find_session(e->session_key_)) {
    SSL_set_session(ssl, s);
    SSL_SESSION_free(s);
  }
  SSL_set_connect_state(ssl);
  return e;
}

Engine::~Engine() {
  // OpenSSL invalidates the session of a connection freed without
  // close_notify. Since TLS 1.1 an unclean close need not prevent
  // resumption (RFC 5246 §7.2.1), and TCP resets are common: keep it,
  // unless the connection failed.
  if (handshake_done_ && !failed_)
    SSL_set_shutdown(ssl_, SSL_get_shutdown(ssl_) | SSL_SENT_SHUTDOWN);
  SSL_free(ssl_);  // frees the BIO
  release_out_buffer();
}

Error Engine::fail(int ssl_err, bool in_handshake) {
  failed_ = true;
  std::string msg = in_handshake ? "TLS handshake failed: " : "TLS: ";
  unsigned long e = ERR_peek_error();
  int lib = ERR_GET_LIB(e);
  int reason = ERR_GET_REASON(e);
  const char* text = e ? ERR_reason_error_string(e) : nullptr;
  char code[48];
  if (e && !text) {
    std::snprintf(code, sizeof code, "error %08lX", e);
    text = code;
  }
  const char* human = nullptr;
  if (lib == ERR_LIB_SSL) {
    if (reason >= SSL_AD_REASON_OFFSET) {
      human = "peer sent a fatal alert";
    } else {
      switch (reason) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
          text = X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
          human = "certificate verify failed";
          break;
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_ENCRYPTED_LENGTH_TOO_LONG:
        case SSL_R_DATA_LENGTH_TOO_LONG:
          human = "peer sent a record larger than allowed";
          break;
        case SSL_R_EXCESSIVE_MESSAGE_SIZE:
          human = "peer sent a handshake message larger than allowed";
          break;
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
          human = "peer sent plain HTTP to a TLS port";
          break;
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_UNKNOWN_PROTOCOL:
          human = "peer did not send TLS records";
          break;
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
          human = "no TLS version in common";
          break;
        case SSL_R_NO_SHARED_CIPHER:
          human = "no cipher suite in common";
          break;
        case SSL_R_NO_APPLICATION_PROTOCOL:
          human = "no ALPN protocol in common";
          break;
        case SSL_R_BAD_RECORD_TYPE:
        case SSL_R_UNEXPECTED_RECORD:
          human = "peer sent a record of the wrong type";
          break;
        case SSL_R_UNEXPECTED_MESSAGE:
          human = "peer sent a message out of order";
          break;
        case SSL_R_LENGTH_MISMATCH:
        case SSL_R_RECORD_LENGTH_MISMATCH:
        case SSL_R_LENGTH_TOO_SHORT:
        case SSL_R_BAD_LENGTH:
        case SSL_R_BAD_PACKET:
        case SSL_R_BAD_PACKET_LENGTH:
        case SSL_R_BAD_EXTENSION:
        case SSL_R_RECORD_TOO_SMALL:  // too many empty records
          human = "peer sent a malformed message";
          break;
        case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
        case SSL_R_DECRYPTION_FAILED:
          human = "a record failed authentication (corrupt or forged)";
          break;
        default:
          break;
      }
    }
  }
  if (human) {
    msg += human;
    if (text) {
      msg += " (";
      msg += text;
      msg += ")";
    }
  } else if (text) {
    msg += text;
  } else if (ssl_err == SSL_ERROR_ZERO_RETURN) {
    msg += "peer sent close_notify during the handshake";
  } else {
    msg += "OpenSSL gave no reason (SSL_get_error " + std::to_string(ssl_err) + ")";
  }
  if (role_ == Role::client && !host_.empty()) msg += " for host " + host_;
  ERR_clear_error();  // the queue is per thread: leave it clean for the next connection
  error_ = Error(std::move(msg));
  return error_;
}

Result<void> Engine::feed(const Bytes& ciphertext, Sink& sink) {
  if (failed_) return error_;
  if (peer_closed_) return {};  // nothing counts after close_notify
  clear_stale_errors();
  in_ = &ciphertext;
  in_off_ = 0;
  Result<void> result;
  if (!handshake_done_) {
    started_ = true;
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int err = SSL_get_error(ssl_, r);
      if (err != SSL_ERROR_WANT_READ) result = fail(err, true);
    } else {
      handshake_done_ = true;
      sink.on_handshake_done();
      if (failed_) result = error_;
    }
  }
  if (result && handshake_done_) result = read_all(sink);
  in_ = nullptr;
  close_segment();
  release_out_buffer();
  return result;
}

// Decrypts until OpenSSL needs more input, into pool buffers. Records that
// land back to back in one buffer reach the sink as one Bytes.
Result<void> Engine::read_all(Sink& sink) {
  MutableBuffer buf;
  size_t start = 0, fill = 0;
  auto deliver = [&] {
    if (fill > start) {
      Bytes data = Bytes::share(buf.storage(), buf.data() + start, fill - start);
      start = fill;
      sink.on_plaintext(data);
    }
  };
  size_t size = in_->size() > kMaxPlain ? kPlainBuffer : kSmallBuffer;
  while (!failed_ && !peer_closed_) {
    if (buf.capacity() - fill < kMaxPlain) {
      deliver();
      if (failed_) break;
      buf = pool_.take(size);
      start = fill = 0;
      size = kPlainBuffer;
    }
    size_t n = 0;
    if (SSL_read_ex(ssl_, buf.data() + fill, buf.capacity() - fill, &n) == 1) {
      fill += n;
      continue;
    }
    int err = SSL_get_error(ssl_, 0);
    deliver();
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      ERR_clear_error();
      sink.on_close_notify();
      break;
    }
    if (!failed_) return fail(err, false);
  }
  if (failed_) return error_;
  return {};
}

Result<void> Engine::write_record(const uint8_t* data, size_t n) {
  size_t written = 0;
  if (SSL_write_ex(ssl_, data, n, &written) == 1) return {};
  return fail(SSL_get_error(ssl_, 0), false);
}

Result<void> Engine::encrypt(IoChain& plaintext_in, IoChain& ciphertext_out) {
  if (failed_) return error_;
  if (shutdown_) return Error("TLS: encrypt() after shutdown()");
  if (!handshake_done_) {
    flush_pending(ciphertext_out);
    return {};
  }
  clear_stale_errors();
  size_t total = plaintext_in.size();
  out_hint_ =
      std::clamp(total + (total / kMaxPlain + 1) * kRecordOverhead, kSmallBuffer, kLargeBuffer);
  uint8_t* stage = t_stage;
  size_t staged = 0;
  Result<void> result;
  for (size_t i = 0; result && i < plaintext_in.iov_count(); ++i) {
    const iovec& v = plaintext_in.iov()[i];
    auto* p = static_cast<const uint8_t*>(v.iov_base);
    size_t len = v.iov_len;
    while (result && len > 0) {
      if (staged == 0 && len >= kMaxPlain) {
        // A whole record's worth: encrypt from the caller's memory.
        result = write_record(p, kMaxPlain);
        p += kMaxPlain;
        len -= kMaxPlain;
        continue;
      }
      size_t k = std::min(len, kMaxPlain - staged);
      std::memcpy(stage + staged, p, k);
      staged += k;
      p += k;
      len -= k;
      if (staged == kMaxPlain) {
        result = write_record(stage, kMaxPlain);
        staged = 0;
      }
    }
  }
  if (result && staged > 0) result = write_record(stage, staged);
  out_hint_ = kSmallBuffer;
  flush_pending(ciphertext_out);
  if (!result) return result;
  plaintext_in.clear();
  return {};
}

Result<void> Engine::produce(IoChain& ciphertext_out) {
  if (!failed_ && !shutdown_ && role_ == Role::client && !started_) {
    started_ = true;
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);  // writes the ClientHello
    if (r != 1) {
      int err = SSL_get_error(ssl_, r);
      if (err != SSL_ERROR_WANT_READ) fail(err, true);
    }
  }
  flush_pending(ciphertext_out);
  if (failed_) return error_;
  return {};
}

bool Engine::wants_write() const noexcept {
  return !pending_.empty() || (out_buf_ && out_fill_ > seg_start_) ||
         (role_ == Role::client && !started_ && !failed_ && !shutdown_);
}

void Engine::shutdown() {
  if (shutdown_ || failed_) return;
  shutdown_ = true;
  if (!handshake_done_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // close_notify goes through the BIO into pending_
  ERR_clear_error();
  close_segment();
  release_out_buffer();
}

std::string_view Engine::alpn() const noexcept {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string_view(reinterpret_cast<const char*>(p), len) : std::string_view();
}

std::string_view Engine::server_name() const noexcept {
  if (role_ == Role::client) return host_;
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? std::string_view(name) : std::string_view();
}

bool Engine::resumed() const noexcept {
  return SSL_session_reused(ssl_) == 1;
}

std::string_view Engine::version() const noexcept {
  return handshake_done_ ? std::string_view(SSL_get_version(ssl_)) : std::string_view();
}

std::string Engine::peer_subject() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n > 0 ? static_cast<size_t>(n) : 0);
  BIO_free(bio);
  return out;
}

}  // namespace ember::tls
