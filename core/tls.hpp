// TLS: a sans-I/O engine over OpenSSL 3 that any connection can layer on.
//
// Ciphertext goes in with Engine::feed(); plaintext comes out through a Sink
// as Bytes in BufferPool buffers. Plaintext goes in with Engine::encrypt();
// records are appended to an IoChain. Handshake messages, alerts, session
// tickets and close_notify come out of produce(). No sockets, no loop.
//
// Contexts (ServerContext, ClientContext) hold certificates, keys, ALPN lists
// and session caches. They are shared by every loop: create them once, hand
// a reference to each Engine. An Engine belongs to one connection and one
// thread.
//
// Copies: OpenSSL reads ciphertext from the Bytes given to feed() into its
// record buffer, decrypts there and copies the plaintext into our pool
// buffer (one copy each, unavoidable through OpenSSL's API). Records leave
// OpenSSL through a custom BIO straight into pool buffers that become the
// output Bytes; consecutive records share one buffer and one iovec.
//
// Memory: between calls an engine holds no pool buffer. OpenSSL keeps its
// two record buffers per connection (about 35 KiB), so steady traffic
// allocates no buffers; OpenSSL 3.0 still mallocs small bookkeeping (40 B)
// a few times per record. Renegotiation is disabled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/io_chain.hpp"

struct ssl_st;
struct ssl_ctx_st;
struct ssl_session_st;
struct bio_st;

namespace ember::detail {
// Lets connections use TLS (core/connection_tls.cpp); every context's
// create() calls it, so a program that makes no context loads no OpenSSL.
void enable_connection_tls() noexcept;
}  // namespace ember::detail

namespace ember::tls {

// Protocol versions are named as OpenSSL prints them: "TLSv1.2", "TLSv1.3"
// ("TLSv1" and "TLSv1.1" are accepted but not recommended). An empty
// max_version means the newest the library supports.

struct ServerConfig {
  struct Certificate {
    // PEM: the leaf certificate first, then any intermediates (the chain sent).
    std::string cert_file;
    // PEM private key matching the leaf.
    std::string key_file;
    // SNI names served by this certificate, exact ("www.example.com") or one
    // wildcard label ("*.example.com" matches "a.example.com", not
    // "example.com" nor "a.b.example.com"). Case-insensitive. Empty: this is
    // the default certificate.
    std::vector<std::string> hosts;
  };
  // At least one. A ClientHello whose SNI matches no name (or that has no
  // SNI) gets the first certificate with empty `hosts`, or, when there is
  // none, the first certificate.
  std::vector<Certificate> certificates;
  // Server preference order, e.g. {"h2", "http/1.1"}. When the client offers
  // ALPN and none of its protocols is here, the handshake fails with the
  // fatal no_application_protocol alert (RFC 7301 §3.2). A client that
  // offers no ALPN gets none (alpn() is empty; HTTP/1.1 by convention).
  // Empty: the server ignores ALPN.
  std::vector<std::string> alpn;
  // Stateless resumption tickets (TLS 1.2 and 1.3). Without them TLS 1.3
  // resumes from the session cache (stateful tickets), TLS 1.2 by session id.
  bool session_tickets = true;
  // Server-side session cache entries, shared by all loops. 0 disables it.
  size_t session_cache_size = 20480;
  std::string min_version = "TLSv1.2";
  std::string max_version;
  // TLS 1.2 cipher list (OpenSSL syntax); empty = OpenSSL default.
  std::string ciphers;
  // TLS 1.3 cipher suites (OpenSSL syntax); empty = OpenSSL default.
  std::string ciphersuites;
};

struct ClientConfig {
  // PEM bundle of trusted CAs. Empty: the system's default paths.
  std::string ca_file;
  // Verify the server's chain and that it is valid for the host given to
  // Engine::client(). Off only for tests and trusted networks.
  bool verify_peer = true;
  // Offered in this order, e.g. {"h2", "http/1.1"}. Empty: no ALPN.
  std::vector<std::string> alpn;
  // Optional client certificate (PEM, leaf first) and its key.
  std::string cert_file, key_file;
  std::string min_version = "TLSv1.2";
  std::string max_version;
  std::string ciphers;
  std::string ciphersuites;
  // Sessions kept for resumption, one per host:port (the latest ticket).
  size_t session_cache_size = 1024;
};

// Server certificates, ALPN preference and session state shared by every
// connection. Thread-safe: handshakes on any number of loops, reload() from
// any thread.
class ServerContext : public std::enable_shared_from_this<ServerContext> {
 public:
  // Reads every certificate and key. Errors name the file and the reason
  // ("TLS: private key /etc/x.key does not match certificate /etc/x.pem").
  static Result<std::shared_ptr<ServerContext>> create(ServerConfig config);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // Re-reads every cert/key file of the config and swaps the whole set in at
  // once: handshakes that start afterwards use the new certificates, live
  // connections (and resumption of their sessions) are untouched. When any
  // file fails, nothing changes and the error names that file.
  Result<void> reload();

  const ServerConfig& config() const noexcept { return config_; }
  ssl_ctx_st* native_handle() const noexcept { return ctx_; }

  struct CertSet;  // one generation of loaded certificates (tls.cpp)

 private:
  explicit ServerContext(ServerConfig config);
  static int on_servername(ssl_st* ssl, int* alert, void* self);
  static int on_alpn(ssl_st* ssl, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void* self);

  ServerConfig config_;
  ssl_ctx_st* ctx_ = nullptr;
  std::string alpn_wire_;  // length-prefixed, server order
  std::mutex reload_mu_;   // one reload at a time
  // A mutex rather than std::atomic<shared_ptr>: libstdc++ 12 unlocks that
  // with a relaxed store, which ThreadSanitizer reports as a race. Taken once
  // per handshake, uncontended.
  mutable std::mutex certs_mu_;
  std::shared_ptr<const CertSet> certs_;
  std::shared_ptr<const CertSet> current_certs() const;
};

// Trust anchors, client certificate, ALPN offer and a session cache keyed by
// host:port so that reconnects resume. Thread-safe.
class ClientContext : public std::enable_shared_from_this<ClientContext> {
 public:
  static Result<std::shared_ptr<ClientContext>> create(ClientConfig config);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  const ClientConfig& config() const noexcept { return config_; }
  ssl_ctx_st* native_handle() const noexcept { return ctx_; }
  // Forgets every cached session.
  void clear_sessions();
  size_t cached_sessions() const;

 private:
  friend class Engine;
  explicit ClientContext(ClientConfig config) : config_(std::move(config)) {}
  static int on_new_session(ssl_st* ssl, ssl_session_st* session);
  // A reference the caller frees, or null.
  ssl_session_st* find_session(const std::string& key) const;
  void store_session(const std::string& key, ssl_session_st* session);

  ClientConfig config_;
  ssl_ctx_st* ctx_ = nullptr;
  mutable std::mutex mu_;
  std::unordered_map<std::string, ssl_session_st*> sessions_;
};

// Receives what feed() decrypts. Called on the feeding thread, from inside
// feed(). A callback may call encrypt(), produce() and shutdown() on the
// engine, but not feed(), and must not destroy it (close after feed()
// returns).
class Sink {
 public:
  virtual ~Sink() = default;
  // Once, when the handshake completes, before any plaintext.
  virtual void on_handshake_done() {}
  // Decrypted application data: one or more whole records in a pool buffer
  // (a 16 KiB record is never split across calls). Share it (copy the Bytes)
  // to keep it past the call.
  virtual void on_plaintext(const Bytes& data) = 0;
  // The peer sent close_notify: it will send nothing more. Input after it is
  // ignored. Reply with shutdown() when done writing. (EOF without
  // close_notify is truncation; the transport glue decides.)
  virtual void on_close_notify() {}
};

// One TLS connection, server or client side. Not thread-safe: one thread
// (the connection's loop) calls everything.
//
// Errors: an Error whose message says what failed for a human and ends with
// OpenSSL's reason, e.g. "TLS handshake failed: certificate verify failed
// (unable to get local issuer certificate) for host 127.0.0.1" or "TLS: peer
// sent a record larger than allowed (packet length too long)". After an
// error the connection is dead: every later call returns the same error;
// send what produce() still yields (usually an alert) and close. OpenSSL's
// thread-local error queue is left empty.
class Engine {
 public:
  // Null only when OpenSSL cannot allocate. The engine shares ownership of
  // the context; the pool must outlive the engine (Bytes it handed out may
  // outlive both).
  static std::unique_ptr<Engine> server(ServerContext& ctx, BufferPool& pool);
  // `host`: a DNS name or an IP literal (IPv6 without brackets).
  // Sends SNI `host` (unless it is an IP literal) and, when the context
  // verifies peers, checks the certificate against it (DNS name or IP
  // address; an empty host checks the chain only). Resumes a session
  // cached under host:port when there is one.
  static std::unique_ptr<Engine> client(ClientContext& ctx, std::string_view host, BufferPool& pool,
                                        uint16_t port = 443);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Consumes all of `ciphertext` (a partial record is kept inside OpenSSL
  // until the next feed). Drives the handshake; decrypted bytes go to `sink`.
  // Anything the engine must send in reply (handshake flights, tickets,
  // alerts) waits for produce(): check wants_write() after feed(). (The
  // reply to a TLS 1.3 KeyUpdate leaves with the next encrypt().)
  Result<void> feed(const Bytes& ciphertext, Sink& sink);

  // Encrypts all of `plaintext_in` into full-size records appended to
  // `ciphertext_out` (after any pending handshake output), then clears
  // `plaintext_in`. Small iovecs are gathered into one record; an iovec with
  // a whole record's worth left is encrypted from its own memory. Before the
  // handshake completes nothing is taken: the plaintext stays in
  // `plaintext_in` for a call after on_handshake_done(). Fails after
  // shutdown(). On failure, records already made and the alert are still
  // appended to `ciphertext_out`.
  Result<void> encrypt(IoChain& plaintext_in, IoChain& ciphertext_out);

  // Appends pending handshake messages, alerts, tickets and close_notify.
  // On a client, the first call starts the handshake (ClientHello).
  Result<void> produce(IoChain& ciphertext_out);
  bool wants_write() const noexcept;

  // Queues close_notify (sent by produce()); no plaintext may follow, input
  // is still decrypted until the peer's close_notify. Before the handshake
  // completes nothing more is sent (a client that has not produced its
  // ClientHello never will): just close.
  void shutdown();

  bool handshake_done() const noexcept { return handshake_done_; }
  // The peer's close_notify arrived.
  bool peer_closed() const noexcept { return peer_closed_; }
  bool failed() const noexcept { return failed_; }
  // The negotiated protocol ("h2", "http/1.1"), empty without ALPN.
  // Valid for the engine's lifetime.
  std::string_view alpn() const noexcept;
  // Server: the SNI the client sent (empty without one). Client: the host.
  std::string_view server_name() const noexcept;
  bool resumed() const noexcept;
  // "TLSv1.3", "TLSv1.2"; empty before the handshake completes.
  std::string_view version() const noexcept;
  // The peer certificate's subject, RFC 2253 ("CN=a.example.com,O=Ember");
  // empty when the peer sent none. For logs and tests.
  std::string peer_subject() const;
  ssl_st* native_handle() const noexcept { return ssl_; }

 private:
  friend class ClientContext;
  enum class Role { server, client };
  Engine(Role role, BufferPool& pool) : role_(role), pool_(pool) {}
  bool init(ssl_ctx_st* ctx);

  // The custom BIO (see tls.cpp).
  static int bio_write(bio_st* bio, const char* data, size_t n, size_t* written);
  static int bio_read(bio_st* bio, char* data, size_t n, size_t* read);
  void write_out(const uint8_t* data, size_t n);
  void close_segment();
  void flush_pending(IoChain& out);
  void release_out_buffer() noexcept;

  Result<void> read_all(Sink& sink);
  Error fail(int ssl_error, bool in_handshake);
  Result<void> write_record(const uint8_t* data, size_t n);

  Role role_;
  BufferPool& pool_;
  ssl_st* ssl_ = nullptr;
  std::shared_ptr<void> ctx_ref_;  // keeps the context alive
  ClientContext* client_ctx_ = nullptr;
  std::string host_;         // client: what we verify and send
  std::string session_key_;  // client: host:port

  // Input being fed (read by the BIO).
  const Bytes* in_ = nullptr;
  size_t in_off_ = 0;

  // Output: records are written into out_buf_ from out_fill_; the open
  // segment [seg_start_, out_fill_) becomes one Bytes when closed.
  BufferStorage* out_buf_ = nullptr;
  size_t out_fill_ = 0;
  size_t seg_start_ = 0;
  size_t out_hint_ = 16 * 1024;  // size of the next buffer to take
  std::vector<Bytes> pending_;   // closed segments not yet produced

  bool started_ = false;  // client: ClientHello written
  bool handshake_done_ = false;
  bool shutdown_ = false;
  bool peer_closed_ = false;
  bool failed_ = false;
  Error error_;
};

}  // namespace ember::tls
