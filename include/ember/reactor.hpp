// The reactor: N libuv loops on N threads, shared-nothing.
//
// Each loop owns its listeners (its own SO_REUSEPORT TCP socket, its own
// watcher on a shared Unix listening socket), its connections, a buffer pool,
// a timer queue and a mailbox. Work crosses loops only through the mailbox.
//
// Thread contract: everything on Loop and Connection runs on the loop's thread
// unless marked thread-safe. Reactor::stop() and Loop::post() are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/io_chain.hpp"

struct uv_loop_s;

namespace ember {

class Loop;
class Connection;
class SlabAllocator;

// An intrusive mailbox message. It must stay alive until `run` is called;
// `run` may free it. `loop` is the target loop, on its thread; it is nullptr
// when the loop has already stopped, and `run` is then called on the posting
// thread to release whatever the item holds.
struct MailboxItem {
  MailboxItem* next = nullptr;
  void (*run)(MailboxItem* self, Loop* loop) = nullptr;
};

// A loop's inbox. Thread-safe; the shared_ptr keeps it usable after the loop
// has stopped. Wake-ups coalesce: one eventfd wake drains every item.
class Mailbox {
 public:
  void post(MailboxItem* item) noexcept;

  struct State;
  explicit Mailbox(State* state) noexcept : state_(state) {}
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;
  State* state() const noexcept { return state_; }

 private:
  State* state_;
};

// An intrusive timer. Arm it on the loop that owns it; it fires once.
struct TimerEntry {
  void (*fire)(TimerEntry* self) = nullptr;
  void* context = nullptr;  // for `fire`
  uint64_t deadline_ms = 0;
  size_t heap_index = SIZE_MAX;  // SIZE_MAX: not armed
  bool armed() const noexcept { return heap_index != SIZE_MAX; }
};

// A peer's address in 20 bytes, for a connection to keep (a formatted one
// would cost a 32-byte string in every idle connection).
struct PeerAddress {
  enum class Family : uint8_t { unknown, ipv4, ipv6, unix_socket };
  uint8_t address[16] = {};  // network order; IPv4 in the first four
  uint16_t port = 0;
  Family family = Family::unknown;
  // "1.2.3.4:80", "[::1]:80", "unix" or "?"; replaces `out`'s contents
  // (reusing its capacity).
  void format(std::string& out) const;
};

// What a protocol implements to own a connection's bytes.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  virtual void on_open(Connection&) {}
  // Asked before each read. A protocol that knows the next bytes are the
  // middle of a large payload returns where that payload is being gathered,
  // so the kernel writes it in place and no user-space copy follows.
  virtual bool read_target(ReadTarget&) { return false; }
  // Bytes arrived. `data` shares the loop's read buffer; keep any part of it
  // by copying the Bytes (a reference, not a byte copy).
  virtual void on_data(Connection& conn, const Bytes& data) = 0;
  // Flush phase (once per loop turn, no write in flight): append output.
  virtual void on_writable(Connection& conn, IoChain& out) = 0;
  // The peer closed (error 0) or the connection failed (negative libuv code).
  // Called once, before the handler is destroyed.
  virtual void on_close(Connection&, int /*error*/) {}
  // The reactor is draining: finish in-flight work, then close().
  virtual void on_drain(Connection& conn) = 0;
  // The deadline set with Connection::set_deadline() passed. The default
  // closes the connection at once.
  virtual void on_timeout(Connection& conn);
};

class Connection {
 public:
  Loop& loop() const noexcept;
  // Unique among the reactor's connections (loop index in the high 16 bits).
  uint64_t id() const noexcept;
  // Schedules on_writable in this loop turn's flush phase.
  void want_write() noexcept;
  // Closes after pending output is written.
  void close() noexcept;
  // Closes now, dropping pending output.
  void abort() noexcept;
  // Stops reading until resume_reading(). Protocols call it when input they
  // have not delivered yet passes their bound. The core also stops reading
  // on its own while more than ReactorOptions::output_high_water bytes wait
  // for the socket; the two reasons are independent.
  void pause_reading() noexcept;
  void resume_reading() noexcept;
  bool closing() const noexcept;
  // Bytes handed to the socket that it has not taken yet: when it shrinks
  // between two looks, the peer is reading.
  size_t pending_output() const noexcept;

  // One deadline per connection on the loop's timer heap: on_timeout() runs
  // when it passes. Setting it again moves it; clear_deadline() disarms it.
  void set_deadline(uint64_t delay_ms) noexcept;
  void clear_deadline() noexcept;

  // Hands the connection to another protocol (HTTP/1.1 Upgrade to WebSocket
  // or h2c, a sniffer choosing HTTP/2). Call it from one of the current
  // handler's callbacks; that handler stays alive until the callback returns,
  // writes what it still holds in the next flush (ahead of its successor's
  // output), and is then destroyed on the loop. `next` gets on_open() at once, then
  // `unread` (bytes the old handler read but did not use) through on_data().
  void switch_handler(std::unique_ptr<ConnectionHandler> next, Bytes unread = {});

  // TLS: whether the connection is encrypted, the protocol ALPN chose ("h2",
  // "http/1.1"; empty when none) and the host name the client sent (SNI).
  bool secure() const noexcept;
  std::string_view alpn() const noexcept;
  std::string_view server_name() const noexcept;
  // The peer's address as "ip:port" ("unix" for Unix sockets).
  std::string peer_address() const;
  // The same in binary: for keeping per connection and formatting per use.
  PeerAddress peer() const noexcept;
  // Why the connection failed, for messages (connect, resolve, TLS,
  // timeouts); empty when it closed normally.
  const std::string& error_text() const noexcept;

 protected:
  Connection() = default;
  ~Connection() = default;
};

using HandlerFactory = std::function<std::unique_ptr<ConnectionHandler>(Loop&)>;

namespace tls {
class ServerContext;
class ClientContext;
}  // namespace tls

// Outbound connections (Loop::connect). The handler sees the same seam as an
// accepted connection: on_open() once connected (and, with TLS, once the
// handshake is done), on_close() when it ends. A connection that never opens
// gets on_close() with a negative libuv code and error_text() says why
// ("resolve db.internal: unknown node or service", "connect 127.0.0.1:5672:
// connection refused", "connect …: timed out after 10000 ms", TLS errors).
struct ConnectOptions {
  std::chrono::milliseconds timeout{10'000};  // resolve + connect + TLS handshake
  std::shared_ptr<tls::ClientContext> tls;    // nullptr: plain TCP
  // SNI and certificate host name; the connect host when empty.
  std::string server_name;
  size_t socket_send_buffer = 0;  // SO_SNDBUF (0: the kernel's default)
};

// Exponential backoff with full jitter, for reconnect loops: each delay is
// drawn uniformly from [base/2, base] where base doubles from `initial` up to
// `max`. reset() after a success.
class Backoff {
 public:
  explicit Backoff(std::chrono::milliseconds initial = std::chrono::milliseconds(100),
                   std::chrono::milliseconds max = std::chrono::milliseconds(30'000)) noexcept;
  std::chrono::milliseconds next() noexcept;
  void reset() noexcept { attempt_ = 0; }
  unsigned attempts() const noexcept { return attempt_; }

 private:
  std::chrono::milliseconds initial_, max_;
  unsigned attempt_ = 0;
  uint64_t rng_;
};

struct ReactorOptions {
  // Loops (threads). 0: EMBER_THREADS when set, else one per CPU this
  // process may run on (its affinity mask, capped by a cgroup CPU quota).
  unsigned threads = 0;
  // Pin loop i to the i-th CPU of the affinity mask.
  bool pin_threads = false;
  // Stop reading a connection while more than this many output bytes wait
  // for its socket (a peer that does not read its answers stops being read).
  size_t output_high_water = 1u << 20;
  // A TLS handshake on an accepted connection must finish within this.
  std::chrono::milliseconds tls_handshake_timeout{10'000};
  // In-flight work gets this long after SIGTERM/stop() before connections are cut.
  std::chrono::milliseconds drain_timeout{30'000};
  // Install SIGTERM/SIGINT handlers that drain (a second signal cuts at once).
  bool handle_signals = true;
  // Per loop; a connection over the limit is accepted and closed at once.
  size_t max_connections = 10'000;
  size_t listen_backlog = 1024;
  // Read buffers are taken from the pool in this size.
  size_t read_buffer_size = 64 * 1024;
  // After any input, keep polling without sleeping for this long before
  // blocking in epoll again. Trades CPU for latency: a request arriving
  // within the window does not pay for waking a sleeping thread (tens of
  // microseconds on a VM). 0 (default): always sleep.
  std::chrono::microseconds busy_poll{0};
  // SO_SNDBUF for accepted connections (0: the kernel's default). A MiB
  // response then leaves in one write instead of waking the peer per 200 KiB.
  size_t socket_send_buffer = 0;
  BufferPoolOptions buffers;
};

class Loop {
 public:
  uv_loop_s* uv() noexcept;
  unsigned index() const noexcept;
  BufferPool& buffers() noexcept;
  SlabAllocator& slab() noexcept;
  bool on_loop_thread() const noexcept;
  bool draining() const noexcept;

  // Thread-safe. Runs item->run on this loop's thread, in order per producer.
  void post(MailboxItem* item) noexcept;
  // Thread-safe convenience for cold paths (allocates). Dropped if the loop
  // has stopped.
  void post(std::function<void(Loop&)> fn);
  // Loop thread only. Runs item->run once at the end of this loop turn (the
  // flush phase, after the I/O callbacks and before the loop polls again),
  // ahead of the connections' output: to do once per turn what the turn's
  // events asked for many times (wake a worker once for a batch of jobs).
  // An item waits in one queue at a time: not deferred twice, not posted
  // while deferred; one that defers itself from run() every time keeps the
  // loop from polling. run() gets this loop, or nullptr when the loop ended
  // before the turn did.
  void defer(MailboxItem* item) noexcept;
  // Before run(), or on the loop thread. Runs `fn` on this loop's thread once
  // it has drained (no connection left), before its handles close: for
  // per-loop clients and state that must go while the loop still exists.
  void at_stop(std::function<void()> fn);
  // For producers that may outlive the loop (async completions).
  const std::shared_ptr<Mailbox>& mailbox() const noexcept;

  // Timers: monotonic milliseconds (libuv's cached loop time).
  uint64_t now_ms() const noexcept;
  void arm(TimerEntry& timer, uint64_t delay_ms) noexcept;
  void cancel(TimerEntry& timer) noexcept;

  // Connections: count on this loop.
  size_t connections() const noexcept;

  // Loop thread. Connects to host:port (the name resolved off the loop
  // thread) and hands the connection to `handler`; see ConnectOptions.
  void connect(const std::string& host, uint16_t port, std::unique_ptr<ConnectionHandler> handler,
               ConnectOptions options = {});
  // Loop thread. Connects to a Unix socket.
  void connect_unix(const std::string& path, std::unique_ptr<ConnectionHandler> handler,
                    ConnectOptions options = {});

 protected:
  Loop() = default;
  ~Loop() = default;
};

class Reactor {
 public:
  explicit Reactor(ReactorOptions options = {});
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  size_t size() const noexcept;
  Loop& loop(size_t i) noexcept;
  const ReactorOptions& options() const noexcept;

  // Each loop binds its own SO_REUSEPORT socket; returns the bound port
  // (useful with port 0). Call before run().
  // With `tls`, every connection is TLS; the handler sees plaintext and
  // gets on_open() after the handshake.
  Result<uint16_t> listen_tcp(const std::string& host, uint16_t port, HandlerFactory factory,
                              std::shared_ptr<tls::ServerContext> tls = nullptr);
  // Binds a Unix socket at `path` and every loop watches it. A stale socket
  // file (nobody listening) is replaced; a live one or a non-socket is an error.
  // The file is removed when the reactor stops.
  Result<void> listen_unix(const std::string& path, HandlerFactory factory);

  // Runs loop 0 on the calling thread and the others on their own threads,
  // until stop() (or a signal) and the drain finish. Returns 0 after a clean
  // drain, 1 when the drain timed out or a second signal cut it short.
  int run();
  // Thread-safe: stop accepting, let in-flight work finish, then return from run().
  void stop() noexcept;
  // Called on loop 0 when a drain begins (signal or stop()).
  void on_drain_start(std::function<void()> fn);
  // Called on loop 0 on SIGHUP (with handle_signals): reload certificates,
  // configuration. Without a hook SIGHUP is ignored.
  void on_reload(std::function<void()> fn);

  // The CPUs this process may run on (affinity mask), in order.
  static std::vector<unsigned> allowed_cpus();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember
