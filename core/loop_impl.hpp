// Internal: the concrete Loop, Connection and listener types.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "core/tls.hpp"
#include "ember/reactor.hpp"
#include "ember/slab.hpp"

namespace ember {

struct Mailbox::State {
  std::atomic<MailboxItem*> head{nullptr};
  std::atomic<bool> closed{false};
  std::atomic<int> senders{0};
  // Wakes the loop: an eventfd the loop polls, written only by the post that
  // finds `signalled` clear. Not uv_async_t: its receiver spins (pause, then
  // sched_yield) until the sender's write returns, ~8% of a thread-hopping
  // queue relay's CPU on a 2-core guest.
  std::atomic<bool> signalled{false};
  int wake_fd = -1;  // written while !closed; closed with the loop
  Loop* loop = nullptr;

  // Loop thread: runs every queued item in FIFO order.
  void drain(Loop* target) noexcept;
};

namespace detail {

class LoopImpl;

class ConnectionImpl final : public Connection {
 public:
  ConnectionImpl(LoopImpl& loop, bool is_unix, uint64_t id);
  ~ConnectionImpl();

  int init_handle();  // uv_*_init on the loop
  uv_stream_t* stream() noexcept { return &h_.stream; }
  void start(std::unique_ptr<ConnectionHandler> handler);

  void want_write() noexcept;
  void close() noexcept;
  void abort() noexcept { fail(0); }
  // Reasons to stop reading; reading runs while none is set.
  enum PauseReason : uint8_t { kPauseUser = 1, kPauseOutput = 2 };
  void pause(uint8_t reason) noexcept;
  void resume(uint8_t reason) noexcept;
  bool closing() const noexcept { return closing_ || closed_ || write_failed_; }
  void set_deadline(uint64_t delay_ms) noexcept;
  void clear_deadline() noexcept;
  void switch_handler(std::unique_ptr<ConnectionHandler> next, Bytes unread);
  void set_handler(std::unique_ptr<ConnectionHandler> h) noexcept { handler_ = std::move(h); }
  // libuv's count, which shrinks as the socket takes a queued write's bytes.
  size_t pending_output() const noexcept {
    return writing_ ? uv_stream_get_write_queue_size(&h_.stream) : 0;
  }
  const uv_handle_t* handle() const noexcept { return &h_.handle; }
  // TLS (core/tls.hpp): the handler sees plaintext and gets on_open() once
  // the handshake is done. Call before start().
  void use_tls_server(std::shared_ptr<tls::ServerContext> ctx);
  bool secure() const noexcept { return tls() != nullptr; }
  std::string_view alpn() const noexcept;
  std::string_view server_name() const noexcept;
  const std::string& error_text() const noexcept;

  void flush() noexcept;  // flush phase
  void drain() noexcept;  // reactor drain notice
  void fail(int error, std::string text = {}) noexcept;
  void write_failed(int error) noexcept;

  // Outbound: resolve (when `host` is a name), connect, then start().
  void connect_tcp(const std::string& host, uint16_t port, ConnectOptions options);
  void connect_unix(const std::string& path, ConnectOptions options);

  LoopImpl& loop_;
  uint64_t id_;
  ConnectionImpl* prev_ = nullptr;
  ConnectionImpl* next_ = nullptr;

 private:
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_closed(uv_handle_t* h);
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res);
  static void on_connected(uv_connect_t* req, int status);
  static void on_deadline(TimerEntry* t);
  void write_out() noexcept;
  void release_write_request() noexcept;
  // The output chain, borrowed from the loop while this connection has
  // output (see LoopImpl::take_chain).
  IoChain& output();
  void return_output() noexcept;
  void do_close() noexcept;
  void maybe_delete() noexcept;
  void open_handler() noexcept;
  void start_tls() noexcept;
  void feed_tls(const Bytes& data) noexcept;
  void flush_tls() noexcept;
  void drop_read_buffer_if_unused() noexcept;

 public:
  // Everything TLS needs, allocated only for a TLS connection (an idle
  // plaintext connection should cost as little memory as possible).
  struct TlsLayer;
  struct TlsLayerDelete {
    void operator()(TlsLayer* layer) const noexcept;
  };
  // The TLS half of a connection (connection_tls.cpp), reached only through
  // this table, which the first TLS context installs (tls::ServerContext or
  // ClientContext::create). A program that makes none, such as a Flame
  // instance server on its Unix socket, links and loads no OpenSSL at all.
  struct TlsHooks {
    void (*use_server)(ConnectionImpl&, std::shared_ptr<tls::ServerContext>);
    void (*destroy)(TlsLayer*) noexcept;
    void (*start)(ConnectionImpl&) noexcept;
    void (*feed)(ConnectionImpl&, const Bytes&) noexcept;
    void (*flush)(ConnectionImpl&) noexcept;
    std::string_view (*alpn)(const tls::Engine&) noexcept;
    std::string_view (*server_name)(const tls::Engine&) noexcept;
  };
  static void install_tls(const TlsHooks* hooks) noexcept;
  static const TlsHooks& openssl_hooks() noexcept;  // connection_tls.cpp

 private:
  static const TlsHooks& tls_hooks() noexcept;
  // Outbound connections only.
  struct Outbound {
    uv_getaddrinfo_t resolve;
    uv_connect_t connect;
    std::string target;  // "host:port" or the path, for messages
    ConnectOptions options;
    uint16_t port = 0;
    bool resolving = false;
    bool connecting = false;
  };
  // What only some connections need (TLS, connecting out, a switched
  // handler, an error text): allocated on first use, so that an idle
  // plaintext connection pays one pointer for all of it. Every byte here
  // counts 10,000 times over (RSS per idle connection is a target).
  struct Extra {
    std::unique_ptr<TlsLayer, TlsLayerDelete> tls_layer;
    tls::Engine* tls = nullptr;  // tls_layer's engine, once the handshake started
    std::unique_ptr<Outbound> outbound;
    std::vector<std::unique_ptr<ConnectionHandler>> retired;  // switched away from; freed in flush
    std::string error_text;
    ~Extra();
  };
  Extra& extra();
  tls::Engine* tls() const noexcept { return extra_ ? extra_->tls : nullptr; }
  Outbound* outbound() const noexcept { return extra_ ? extra_->outbound.get() : nullptr; }
  TlsLayer* tls_layer() const noexcept { return extra_ ? extra_->tls_layer.get() : nullptr; }

  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h_;
  uv_write_t* wreq_ = nullptr;  // from the loop's slab while a write is queued
  std::unique_ptr<ConnectionHandler> handler_;
  TimerEntry deadline_;
  std::unique_ptr<Extra> extra_;
  IoChain* out_ = nullptr;         // borrowed from the loop while there is output
  BufferStorage* rbuf_ = nullptr;  // current read buffer (one reference held)
  uint32_t roff_ = 0;              // fill level of rbuf_
  int close_error_ = 0;
  // Flags as bits: with them the object fits mimalloc's 384-byte class.
  bool handle_closed_ : 1 = false;  // on_closed ran; waiting for a resolve callback
  bool writing_ : 1 = false;
  bool closing_ : 1 = false;  // close() requested: flush, then close
  bool closed_ : 1 = false;   // uv_close issued
  bool reading_ : 1 = false;
  bool opened_ : 1 = false;        // handler got on_open
  bool started_ : 1 = false;       // socket connected and set up
  uint8_t paused_ : 2 = 0;         // PauseReason bits
  bool write_failed_ : 1 = false;  // a client's peer reset: output dropped, input read to its end
  static_assert((kPauseUser | kPauseOutput) < 4, "a new PauseReason needs a wider paused_");

 public:
  bool is_unix_ : 1;
  bool in_dirty_ : 1 = false;
};

struct Listener {
  LoopImpl* loop = nullptr;
  bool is_unix = false;
  std::shared_ptr<HandlerFactory> factory;
  std::shared_ptr<tls::ServerContext> tls;  // TLS on every accepted connection
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
};

class LoopImpl final : public Loop {
 public:
  LoopImpl(Reactor::Impl& reactor, unsigned index, const ReactorOptions& options);
  ~LoopImpl();

  // Runs the loop on the calling thread until it has drained and closed.
  void run();
  // Loop thread: stop accepting, ask connections to finish.
  void begin_drain() noexcept;
  // Loop thread: cut every connection now.
  void force_close() noexcept;
  Result<void> add_listener(std::unique_ptr<Listener> listener, int fd, size_t backlog);

  // Output chains lent to connections while they have output: an idle
  // connection holds none, and a returned chain keeps its capacity for the
  // next writer, so steady state allocates nothing.
  IoChain* take_chain();
  void give_chain(IoChain* chain) noexcept;

  void add_connection(ConnectionImpl* c) noexcept;
  void remove_connection(ConnectionImpl* c) noexcept;
  void mark_dirty(ConnectionImpl* c) noexcept;
  void defer(MailboxItem* item) noexcept;
  void run_deferred(Loop* loop) noexcept;
  void forget_dirty(ConnectionImpl* c) noexcept;
  void maybe_finish() noexcept;
  // Input arrived: restart the busy-poll window.
  void note_activity() noexcept {
    if (busy_poll_ns_) last_activity_ns_ = uv_hrtime();
  }
  uint64_t last_activity_ns_ = 0;

  // Public Loop surface.
  uv_loop_t* uv_loop() noexcept { return &uv_; }
  unsigned index_;
  BufferPool pool_;
  SlabAllocator slab_;
  // An in-place read's target, set between a connection's on_alloc and its
  // on_read (libuv runs the two back to back, one read at a time per loop).
  ReadTarget direct_read_;
  std::shared_ptr<Mailbox> mailbox_;
  std::vector<std::function<void()>> stop_hooks_;  // Loop::at_stop
  // Written by the loop thread as it starts; read from any thread (on_loop_thread).
  std::atomic<std::thread::id> thread_id_{};
  bool draining_ = false;
  bool forced_ = false;
  size_t connection_count_ = 0;
  uint64_t next_connection_id_;  // the loop index in the high 16 bits: unique per reactor
  const ReactorOptions& options_;
  Reactor::Impl& reactor_;

  // Timers.
  void arm(TimerEntry& t, uint64_t delay_ms) noexcept;
  void cancel(TimerEntry& t) noexcept;

  MailboxItem drain_item_;  // reactor stop → begin_drain, without allocation
  MailboxItem force_item_;

 private:
  static void on_wake(uv_poll_t* p, int status, int events);
  static void on_check(uv_check_t* c);
  static void on_prepare(uv_prepare_t* p);
  static void on_spin(uv_idle_t* i);
  static void on_timer(uv_timer_t* t);
  static void on_drain_timeout(uv_timer_t* t);
  static void on_decay(uv_timer_t* t);
  void flush_dirty() noexcept;
  void close_handles() noexcept;
  void heap_remove(size_t i) noexcept;
  void heap_up(size_t i) noexcept;
  void heap_down(size_t i) noexcept;
  void reschedule() noexcept;

  uv_loop_t uv_;
  uv_poll_t wake_;
  uv_check_t check_;
  uv_prepare_t prepare_;
  uv_idle_t spin_;  // active while busy-polling: libuv then polls without blocking
  bool spinning_ = false;
  uint64_t busy_poll_ns_ = 0;
  uv_timer_t timer_;
  // When timer_ fires (UINT64_MAX: stopped). It may fire before the heap's
  // front is due (fronts that moved later), never after.
  uint64_t scheduled_due_ = UINT64_MAX;
  uv_timer_t drain_timer_;
  uv_timer_t decay_timer_;  // returns idle pool buffers (BufferPool::decay)
  bool finished_ = false;
  std::vector<TimerEntry*> heap_;
  std::vector<std::unique_ptr<IoChain>> spare_chains_;
  std::vector<ConnectionImpl*> dirty_;
  MailboxItem* deferred_ = nullptr;  // Loop::defer: run in the flush phase, in order
  MailboxItem* deferred_tail_ = nullptr;
  std::vector<ConnectionImpl*> flushing_;
  ConnectionImpl* conns_ = nullptr;  // intrusive list
  std::vector<std::unique_ptr<Listener>> listeners_;
};

inline LoopImpl& impl(Loop& l) {
  return static_cast<LoopImpl&>(l);
}
inline const LoopImpl& impl(const Loop& l) {
  return static_cast<const LoopImpl&>(l);
}
inline ConnectionImpl& impl(Connection& c) {
  return static_cast<ConnectionImpl&>(c);
}
inline const ConnectionImpl& impl(const Connection& c) {
  return static_cast<const ConnectionImpl&>(c);
}

}  // namespace detail
}  // namespace ember
