#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <cassert>

#include "core/loop_impl.hpp"
#include "core/reactor_impl.hpp"
#include "ember/log.hpp"

namespace ember {

// ---- Mailbox ---------------------------------------------------------------

Mailbox::~Mailbox() {
  // Anything still queued belongs to a loop that is gone.
  state_->closed.store(true, std::memory_order_seq_cst);
  state_->drain(nullptr);
  delete state_;
}

void Mailbox::post(MailboxItem* item) noexcept {
  State* s = state_;
  // `senders` keeps the async handle alive between the closed check and the
  // send; the loop waits for it to reach zero before closing the handle.
  s->senders.fetch_add(1, std::memory_order_seq_cst);
  MailboxItem* head = s->head.load(std::memory_order_relaxed);
  do {
    item->next = head;
  } while (!s->head.compare_exchange_weak(head, item, std::memory_order_release,
                                          std::memory_order_relaxed));
  if (!s->closed.load(std::memory_order_seq_cst)) {
    // One write per wake-up: later posts see `signalled` and ride along.
    if (!s->signalled.exchange(true, std::memory_order_seq_cst)) {
      uint64_t one = 1;
      while (::write(s->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
      }
    }
  } else {
    s->drain(nullptr);
  }
  s->senders.fetch_sub(1, std::memory_order_seq_cst);
}

void Mailbox::State::drain(Loop* target) noexcept {
  MailboxItem* list = head.exchange(nullptr, std::memory_order_acquire);
  // The stack is LIFO; reverse it for FIFO delivery.
  MailboxItem* fifo = nullptr;
  while (list) {
    MailboxItem* next = list->next;
    list->next = fifo;
    fifo = list;
    list = next;
  }
  while (fifo) {
    MailboxItem* next = fifo->next;
    fifo->run(fifo, target);
    fifo = next;
  }
}

namespace detail {

// ---- LoopImpl --------------------------------------------------------------

LoopImpl::LoopImpl(Reactor::Impl& reactor, unsigned index, const ReactorOptions& options)
    : index_(index),
      pool_(options.buffers),
      next_connection_id_((uint64_t{index} << 48) + 1),
      options_(options),
      reactor_(reactor) {
  uv_loop_init(&uv_);
  uv_.data = this;
  auto* state = new Mailbox::State;
  state->loop = this;
  state->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (state->wake_fd < 0) {
    EMBER_ERROR("ember.reactor", "eventfd failed: the loop cannot be woken from other threads",
                {"errno", static_cast<long long>(errno)});
    std::abort();
  }
  mailbox_ = std::make_shared<Mailbox>(state);
  uv_poll_init(&uv_, &wake_, state->wake_fd);
  wake_.data = this;
  uv_poll_start(&wake_, UV_READABLE, &LoopImpl::on_wake);
  uv_check_init(&uv_, &check_);
  check_.data = this;
  uv_check_start(&check_, &LoopImpl::on_check);
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  // Output produced before the poll (write completions, timers) is flushed
  // in the prepare phase; otherwise it would wait for the next I/O event.
  uv_prepare_init(&uv_, &prepare_);
  prepare_.data = this;
  uv_prepare_start(&prepare_, &LoopImpl::on_prepare);
  uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));
  uv_idle_init(&uv_, &spin_);
  spin_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&spin_));
  busy_poll_ns_ = static_cast<uint64_t>(options.busy_poll.count()) * 1000;
  uv_timer_init(&uv_, &timer_);
  timer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
  uv_timer_init(&uv_, &drain_timer_);
  drain_timer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&drain_timer_));
  uv_timer_init(&uv_, &decay_timer_);
  decay_timer_.data = this;
  if (auto period = static_cast<uint64_t>(options.buffers.decay_interval.count()); period > 0)
    uv_timer_start(&decay_timer_, &LoopImpl::on_decay, period, period);
  uv_unref(reinterpret_cast<uv_handle_t*>(&decay_timer_));

  drain_item_.run = [](MailboxItem* self, Loop* loop) {
    (void)self;
    if (loop) impl(*loop).begin_drain();
  };
  force_item_.run = [](MailboxItem*, Loop* loop) {
    if (loop) impl(*loop).force_close();
  };
}

LoopImpl::~LoopImpl() {
  if (!finished_) {
    // Never ran (or run() was not called): close handles and spin once.
    close_handles();
    uv_run(&uv_, UV_RUN_DEFAULT);
  }
  run_deferred(nullptr);  // like posts after the end: run without a loop
  int rc = uv_loop_close(&uv_);
  // No post writes it any more: `closed` was set and the senders waited for.
  ::close(mailbox_->state()->wake_fd);
  mailbox_->state()->wake_fd = -1;
  if (rc != 0) {
    EMBER_WARN("ember.reactor", "loop closed with live handles", {"loop", index_},
               {"error", uv_strerror(rc)});
  }
}

void LoopImpl::run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  if (options_.pin_threads) {
    std::vector<unsigned> cpus = Reactor::allowed_cpus();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[index_ % cpus.size()], &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
      EMBER_WARN("ember.reactor", "cannot pin loop to its CPU; running unpinned", {"loop", index_},
                 {"cpu", cpus[index_ % cpus.size()]}, {"error", describe_errno(rc)});
  }
  pool_.bind_to_current_thread();
  uv_run(&uv_, UV_RUN_DEFAULT);
}

Result<void> LoopImpl::add_listener(std::unique_ptr<Listener> l, int fd, size_t backlog) {
  l->loop = this;
  int rc;
  if (l->is_unix) {
    rc = uv_pipe_init(&uv_, &l->h.pipe, 0);
    if (rc == 0) rc = uv_pipe_open(&l->h.pipe, fd);
  } else {
    rc = uv_tcp_init(&uv_, &l->h.tcp);
    if (rc == 0) rc = uv_tcp_open(&l->h.tcp, fd);
  }
  if (rc != 0)
    return Error("cannot watch the listening socket: " + std::string(uv_strerror(rc)), rc);
  l->h.handle.data = l.get();
  rc = uv_listen(&l->h.stream, static_cast<int>(backlog), [](uv_stream_t* server, int status) {
    auto* listener = static_cast<Listener*>(server->data);
    LoopImpl& loop = *listener->loop;
    if (status < 0) {
      EMBER_WARN("ember.reactor", "accept failed", {"error", uv_strerror(status)});
      return;
    }
    auto* c = new ConnectionImpl(loop, listener->is_unix, loop.next_connection_id_++);
    if (c->init_handle() != 0 || uv_accept(server, c->stream()) != 0) {
      c->fail(UV_ECONNABORTED);  // EAGAIN race with another loop: nothing to accept
      return;
    }
    if (loop.connection_count_ >= loop.options_.max_connections || loop.draining_) {
      EMBER_WARN("ember.reactor", "connection refused: limit reached", {"loop", loop.index_},
                 {"max_connections", loop.options_.max_connections});
      c->fail(UV_ECONNREFUSED);
      return;
    }
    if (listener->tls) c->use_tls_server(listener->tls);
    c->start((*listener->factory)(loop));
  });
  if (rc != 0) {
    uv_close(&l->h.handle, nullptr);
    return Error("cannot listen: " + std::string(uv_strerror(rc)), rc);
  }
  listeners_.push_back(std::move(l));
  return {};
}

IoChain* LoopImpl::take_chain() {
  if (spare_chains_.empty()) {
    auto chain = std::make_unique<IoChain>();
    chain->use_pool(pool_);
    return chain.release();
  }
  IoChain* chain = spare_chains_.back().release();
  spare_chains_.pop_back();
  return chain;
}

void LoopImpl::give_chain(IoChain* chain) noexcept {
  chain->clear();
  // As many as were ever writing at once, up to a bound: a burst of slow
  // readers should not pin its chains for good.
  constexpr size_t kMaxSpareChains = 1024;
  if (spare_chains_.size() >= kMaxSpareChains) {
    delete chain;
    return;
  }
  spare_chains_.emplace_back(chain);
}

void LoopImpl::add_connection(ConnectionImpl* c) noexcept {
  c->next_ = conns_;
  if (conns_) conns_->prev_ = c;
  conns_ = c;
  ++connection_count_;
}

void LoopImpl::remove_connection(ConnectionImpl* c) noexcept {
  if (c->prev_)
    c->prev_->next_ = c->next_;
  else
    conns_ = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --connection_count_;
}

void LoopImpl::mark_dirty(ConnectionImpl* c) noexcept {
  if (c->in_dirty_) return;
  c->in_dirty_ = true;
  dirty_.push_back(c);
}

void LoopImpl::forget_dirty(ConnectionImpl* c) noexcept {
  for (auto* list : {&dirty_, &flushing_})
    for (ConnectionImpl*& p : *list)
      if (p == c) p = nullptr;
}

void LoopImpl::on_check(uv_check_t* h) {
  static_cast<LoopImpl*>(h->data)->flush_dirty();
}

void LoopImpl::on_prepare(uv_prepare_t* h) {
  auto* self = static_cast<LoopImpl*>(h->data);
  self->flush_dirty();
  if (!self->busy_poll_ns_ || self->finished_) return;
  bool recent = uv_hrtime() - self->last_activity_ns_ < self->busy_poll_ns_;
  if (recent && !self->spinning_) {
    uv_idle_start(&self->spin_, &LoopImpl::on_spin);
    self->spinning_ = true;
  } else if (!recent && self->spinning_) {
    uv_idle_stop(&self->spin_);
    self->spinning_ = false;
  }
}

void LoopImpl::on_spin(uv_idle_t*) {}

void LoopImpl::defer(MailboxItem* item) noexcept {
  item->next = nullptr;
  if (deferred_tail_)
    deferred_tail_->next = item;
  else
    deferred_ = item;
  deferred_tail_ = item;
}

void LoopImpl::flush_dirty() noexcept {
  // Deferred items first (in order): what they do may give connections
  // output. Items deferred or connections marked dirty meanwhile (also from
  // on_writable) go next round within this same call, so that nothing waits
  // for another loop turn.
  while (deferred_ || !dirty_.empty()) {
    run_deferred(this);
    flushing_.swap(dirty_);
    for (ConnectionImpl* c : flushing_) {
      if (!c) continue;
      c->in_dirty_ = false;
      c->flush();
    }
    flushing_.clear();
  }
}

void LoopImpl::run_deferred(Loop* loop) noexcept {
  while (MailboxItem* item = deferred_) {
    deferred_ = item->next;
    if (!deferred_) deferred_tail_ = nullptr;
    item->next = nullptr;
    item->run(item, loop);
  }
}

void LoopImpl::on_wake(uv_poll_t* p, int, int) {
  auto* self = static_cast<LoopImpl*>(p->data);
  Mailbox::State* s = self->mailbox_->state();
  uint64_t count;
  while (::read(s->wake_fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
  // Cleared before draining: a post after this point writes again.
  s->signalled.store(false, std::memory_order_seq_cst);
  s->drain(self);
}

void LoopImpl::begin_drain() noexcept {
  if (draining_) return;
  draining_ = true;
  EMBER_DEBUG("ember.reactor", "loop draining", {"loop", index_},
              {"connections", connection_count_});
  for (auto& l : listeners_)
    uv_close(&l->h.handle, nullptr);
  if (options_.drain_timeout.count() > 0) {
    uv_timer_start(&drain_timer_, &LoopImpl::on_drain_timeout,
                   static_cast<uint64_t>(options_.drain_timeout.count()), 0);
  }
  for (ConnectionImpl* c = conns_; c;) {
    ConnectionImpl* next = c->next_;
    c->drain();
    c = next;
  }
  maybe_finish();
}

void LoopImpl::on_decay(uv_timer_t* t) {
  static_cast<LoopImpl*>(t->data)->pool_.decay();
}

void LoopImpl::on_drain_timeout(uv_timer_t* t) {
  auto* self = static_cast<LoopImpl*>(t->data);
  EMBER_WARN("ember.reactor", "drain timed out; closing connections with work in flight",
             {"loop", self->index_}, {"connections", self->connection_count_},
             {"timeout_ms", static_cast<long long>(self->options_.drain_timeout.count())});
  self->force_close();
}

void LoopImpl::force_close() noexcept {
  if (!draining_) begin_drain();
  if (finished_) return;
  forced_ = true;
  for (ConnectionImpl* c = conns_; c;) {
    ConnectionImpl* next = c->next_;
    c->abort();
    c = next;
  }
  maybe_finish();
}

void LoopImpl::maybe_finish() noexcept {
  if (!draining_ || finished_ || connection_count_ != 0) return;
  finished_ = true;
  close_handles();
}

void LoopImpl::close_handles() noexcept {
  // Hooks first: the loop still runs timers' cancels and connects' cleanups.
  std::vector<std::function<void()>> hooks = std::move(stop_hooks_);
  for (auto& hook : hooks)
    hook();
  Mailbox::State* s = mailbox_->state();
  s->closed.store(true, std::memory_order_seq_cst);
  while (s->senders.load(std::memory_order_seq_cst) != 0)
    std::this_thread::yield();
  s->drain(this);  // items that raced with closing still run here, on the loop
  run_deferred(this);
  auto close = [](auto* h) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(h)))
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
  };
  close(&wake_);
  close(&check_);
  close(&prepare_);
  close(&spin_);
  close(&timer_);
  close(&drain_timer_);
  close(&decay_timer_);
  for (auto& l : listeners_)
    close(&l->h.handle);
  reactor_.on_loop_finished(*this);
}

// ---- timers: a binary min-heap of intrusive entries on one uv_timer --------

// The uv timer may be due before the heap's front (never after it): a
// deadline that moves later, the common case (activity pushes an idle
// timeout on), only sifts down, and the timer fires early once and is set
// again in on_timer, instead of being restarted on every message.
void LoopImpl::arm(TimerEntry& t, uint64_t delay_ms) noexcept {
  uint64_t due = uv_now(&uv_) + delay_ms;
  if (t.armed()) {
    uint64_t was = t.deadline_ms;
    t.deadline_ms = due;
    if (due >= was) {
      heap_down(t.heap_index);
      return;
    }
    heap_up(t.heap_index);
  } else {
    t.deadline_ms = due;
    t.heap_index = heap_.size();
    heap_.push_back(&t);
    heap_up(t.heap_index);
  }
  // Only a front due before timer_ fires moves it: firing early is harmless
  // (on_timer sets it again), and each request of a connection pulls its
  // deadline in (header timeout) without restarting the libuv timer.
  if (heap_.front() == &t && due < scheduled_due_) reschedule();
}

void LoopImpl::cancel(TimerEntry& t) noexcept {
  if (!t.armed()) return;
  heap_remove(t.heap_index);
  // A later front is left to on_timer; an idle timer must not keep the loop alive.
  if (heap_.empty()) reschedule();
}

void LoopImpl::heap_remove(size_t i) noexcept {
  TimerEntry* t = heap_[i];
  TimerEntry* last = heap_.back();
  heap_.pop_back();
  t->heap_index = SIZE_MAX;
  if (i < heap_.size()) {
    heap_[i] = last;
    last->heap_index = i;
    heap_up(i);
    heap_down(last->heap_index);
  }
}

void LoopImpl::heap_up(size_t i) noexcept {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap_[parent]->deadline_ms <= heap_[i]->deadline_ms) break;
    std::swap(heap_[parent], heap_[i]);
    heap_[parent]->heap_index = parent;
    heap_[i]->heap_index = i;
    i = parent;
  }
}

void LoopImpl::heap_down(size_t i) noexcept {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_.size() && heap_[l]->deadline_ms < heap_[m]->deadline_ms) m = l;
    if (r < heap_.size() && heap_[r]->deadline_ms < heap_[m]->deadline_ms) m = r;
    if (m == i) return;
    std::swap(heap_[m], heap_[i]);
    heap_[m]->heap_index = m;
    heap_[i]->heap_index = i;
    i = m;
  }
}

void LoopImpl::reschedule() noexcept {
  if (finished_) return;
  if (heap_.empty()) {
    uv_timer_stop(&timer_);
    scheduled_due_ = UINT64_MAX;
    return;
  }
  uint64_t now = uv_now(&uv_);
  uint64_t due = heap_.front()->deadline_ms;
  uv_timer_start(&timer_, &LoopImpl::on_timer, due > now ? due - now : 0, 0);
  scheduled_due_ = std::max(due, now);
}

void LoopImpl::on_timer(uv_timer_t* h) {
  auto* self = static_cast<LoopImpl*>(h->data);
  self->scheduled_due_ = UINT64_MAX;  // one-shot: spent
  uint64_t now = uv_now(&self->uv_);
  while (!self->heap_.empty() && self->heap_.front()->deadline_ms <= now) {
    TimerEntry* t = self->heap_.front();
    self->heap_remove(0);
    t->fire(t);  // may arm or cancel other timers
  }
  self->reschedule();
}

}  // namespace detail

// ---- Loop public surface ---------------------------------------------------

using detail::impl;

uv_loop_s* Loop::uv() noexcept {
  return impl(*this).uv_loop();
}
unsigned Loop::index() const noexcept {
  return impl(*this).index_;
}
BufferPool& Loop::buffers() noexcept {
  return impl(*this).pool_;
}
SlabAllocator& Loop::slab() noexcept {
  return impl(*this).slab_;
}
bool Loop::on_loop_thread() const noexcept {
  return std::this_thread::get_id() == impl(*this).thread_id_.load(std::memory_order_relaxed);
}
bool Loop::draining() const noexcept {
  return impl(*this).draining_;
}
void Loop::post(MailboxItem* item) noexcept {
  impl(*this).mailbox_->post(item);
}
void Loop::defer(MailboxItem* item) noexcept {
  impl(*this).defer(item);
}
const std::shared_ptr<Mailbox>& Loop::mailbox() const noexcept {
  return impl(*this).mailbox_;
}

void Loop::post(std::function<void(Loop&)> fn) {
  struct Item : MailboxItem {
    std::function<void(Loop&)> fn;
  };
  auto* item = new Item;
  item->fn = std::move(fn);
  item->run = [](MailboxItem* self, Loop* loop) {
    std::unique_ptr<Item> it(static_cast<Item*>(self));
    if (loop) it->fn(*loop);
  };
  post(item);
}

void Loop::at_stop(std::function<void()> fn) {
  impl(*this).stop_hooks_.push_back(std::move(fn));
}

uint64_t Loop::now_ms() const noexcept {
  return uv_now(const_cast<detail::LoopImpl&>(impl(*this)).uv_loop());
}
void Loop::arm(TimerEntry& timer, uint64_t delay_ms) noexcept {
  impl(*this).arm(timer, delay_ms);
}
void Loop::cancel(TimerEntry& timer) noexcept {
  impl(*this).cancel(timer);
}
size_t Loop::connections() const noexcept {
  return impl(*this).connection_count_;
}

}  // namespace ember
