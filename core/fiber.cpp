#include "core/fiber.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMBER_FIBER_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define EMBER_FIBER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(EMBER_FIBER_ASAN)
#define EMBER_FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(EMBER_FIBER_TSAN)
#define EMBER_FIBER_TSAN 1
#endif
#ifdef EMBER_FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef EMBER_FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace ember {

struct Fiber::Context {
  ucontext_t caller;
  ucontext_t fiber;
  bool made = false;
};

namespace {
thread_local Fiber* t_current = nullptr;
thread_local Fiber* t_starting = nullptr;
}  // namespace

Fiber::Fiber(size_t stack_size) : ctx_(new Context), stack_size_(stack_size) {
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  stack_size_ = (stack_size + page - 1) / page * page;
  mapped_ = stack_size_ + page;
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) {
    delete ctx_;
    throw std::system_error(errno, std::generic_category(), "mapping a fiber stack");
  }
  stack_ = p;
  ::mprotect(stack_, page, PROT_NONE);  // an overflow faults instead of corrupting memory
#ifdef EMBER_FIBER_TSAN
  tsan_fiber_ = __tsan_create_fiber(0);
#endif
}

Fiber::~Fiber() {
#ifdef EMBER_FIBER_TSAN
  __tsan_destroy_fiber(tsan_fiber_);
#endif
  ::munmap(stack_, mapped_);
  delete ctx_;
}

Fiber* Fiber::current() noexcept {
  return t_current;
}

uintptr_t Fiber::stack_low() noexcept {
  if (const Fiber* f = t_current)
    return reinterpret_cast<uintptr_t>(f->stack_) + (f->mapped_ - f->stack_size_);
  thread_local uintptr_t thread_low = [] {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return uintptr_t{0};
    void* addr = nullptr;
    size_t size = 0;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    return rc == 0 ? reinterpret_cast<uintptr_t>(addr) : uintptr_t{0};
  }();
  return thread_low;
}

void Fiber::entry() {
  Fiber* self = t_starting;
#ifdef EMBER_FIBER_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &self->caller_bottom_, &self->caller_size_);
#endif
  for (;;) {
    self->fn_(self->arg_);
    self->state_ = State::idle;
    self->switch_out();  // parked here until the next run()
  }
}

void Fiber::switch_in() {
  outer_ = t_current;
  t_current = this;
#ifdef EMBER_FIBER_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, static_cast<char*>(stack_) + (mapped_ - stack_size_),
                                 stack_size_);
#endif
#ifdef EMBER_FIBER_TSAN
  tsan_caller_ = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(tsan_fiber_, 0);
#endif
  ::swapcontext(&ctx_->caller, &ctx_->fiber);
#ifdef EMBER_FIBER_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  t_current = outer_;
}

void Fiber::switch_out() {
#ifdef EMBER_FIBER_ASAN
  __sanitizer_start_switch_fiber(&fake_stack_, caller_bottom_, caller_size_);
#endif
#ifdef EMBER_FIBER_TSAN
  __tsan_switch_to_fiber(tsan_caller_, 0);
#endif
  ::swapcontext(&ctx_->fiber, &ctx_->caller);
#ifdef EMBER_FIBER_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_, &caller_bottom_, &caller_size_);
#endif
}

bool Fiber::run(void (*fn)(void*), void* arg) {
  fn_ = fn;
  arg_ = arg;
  state_ = State::running;
  if (!ctx_->made) {
    ::getcontext(&ctx_->fiber);
    ctx_->fiber.uc_stack.ss_sp = static_cast<char*>(stack_) + (mapped_ - stack_size_);
    ctx_->fiber.uc_stack.ss_size = stack_size_;
    ctx_->fiber.uc_link = nullptr;  // entry() never returns
    ::makecontext(&ctx_->fiber, &Fiber::entry, 0);
    ctx_->made = true;
    t_starting = this;
  }
  switch_in();
  return state_ == State::idle;
}

bool Fiber::resume() {
  state_ = State::running;
  switch_in();
  return state_ == State::idle;
}

void Fiber::suspend() {
  state_ = State::suspended;
  switch_out();
}

}  // namespace ember
