// Internal: the concrete Loop, Connection and listener types.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "ember/reactor.hpp"
#include "ember/slab.hpp"

namespace ember {

struct Mailbox::State {
  std::atomic<MailboxItem*> head{nullptr};
  std::atomic<bool> closed{false};
  std::atomic<int> senders{0};
  uv_async_t* async = nullptr;  // valid while !closed
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
  void pause_reading() noexcept;
  void resume_reading() noexcept;
  bool closing() const noexcept { return closing_ || closed_; }

  void flush() noexcept;  // flush phase
  void drain() noexcept;  // reactor drain notice
  void fail(int error) noexcept;

  LoopImpl& loop_;
  uint64_t id_;
  bool is_unix_;
  bool in_dirty_ = false;
  ConnectionImpl* prev_ = nullptr;
  ConnectionImpl* next_ = nullptr;

 private:
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_closed(uv_handle_t* h);
  void write_out() noexcept;
  void do_close() noexcept;

  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h_;
  uv_write_t wreq_;
  std::unique_ptr<ConnectionHandler> handler_;
  IoChain out_;
  BufferStorage* rbuf_ = nullptr;  // current read buffer (one reference held)
  ReadTarget direct_;              // set between on_alloc and on_read for an in-place read
  size_t roff_ = 0;                // fill level of rbuf_
  int close_error_ = 0;
  bool writing_ = false;
  bool closing_ = false;  // close() requested: flush, then close
  bool closed_ = false;   // uv_close issued
  bool reading_ = false;
  bool paused_ = false;
};

struct Listener {
  LoopImpl* loop = nullptr;
  bool is_unix = false;
  std::shared_ptr<HandlerFactory> factory;
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

  void add_connection(ConnectionImpl* c) noexcept;
  void remove_connection(ConnectionImpl* c) noexcept;
  void mark_dirty(ConnectionImpl* c) noexcept;
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
  std::shared_ptr<Mailbox> mailbox_;
  std::thread::id thread_id_;
  bool draining_ = false;
  bool forced_ = false;
  size_t connection_count_ = 0;
  uint64_t next_connection_id_ = 1;
  const ReactorOptions& options_;
  Reactor::Impl& reactor_;

  // Timers.
  void arm(TimerEntry& t, uint64_t delay_ms) noexcept;
  void cancel(TimerEntry& t) noexcept;

  MailboxItem drain_item_;  // reactor stop → begin_drain, without allocation
  MailboxItem force_item_;

 private:
  static void on_async(uv_async_t* a);
  static void on_check(uv_check_t* c);
  static void on_prepare(uv_prepare_t* p);
  static void on_spin(uv_idle_t* i);
  static void on_timer(uv_timer_t* t);
  static void on_drain_timeout(uv_timer_t* t);
  void flush_dirty() noexcept;
  void close_handles() noexcept;
  void heap_remove(size_t i) noexcept;
  void heap_up(size_t i) noexcept;
  void heap_down(size_t i) noexcept;
  void reschedule() noexcept;

  uv_loop_t uv_;
  uv_async_t async_;
  uv_check_t check_;
  uv_prepare_t prepare_;
  uv_idle_t spin_;  // active while busy-polling: libuv then polls without blocking
  bool spinning_ = false;
  uint64_t busy_poll_ns_ = 0;
  uv_timer_t timer_;
  uv_timer_t drain_timer_;
  bool finished_ = false;
  std::vector<TimerEntry*> heap_;
  std::vector<ConnectionImpl*> dirty_;
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
