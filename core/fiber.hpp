// A stack of its own for work that waits without blocking its loop: an edge
// flare that fetches from an origin runs on a Fiber, suspends while the
// request is in flight, and is resumed on the same thread when the answer
// arrives. Loop thread only; a Fiber runs one task after another.
//
// The stack is mapped lazily (untouched pages cost no memory) behind a guard
// page, and the switches are announced to AddressSanitizer and
// ThreadSanitizer, so sanitizer builds follow the code across stacks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember {

class Fiber {
 public:
  static constexpr size_t kDefaultStackSize = 8u << 20;  // like a thread's

  // Throws std::system_error when the stack cannot be mapped.
  explicit Fiber(size_t stack_size = kDefaultStackSize);
  ~Fiber();  // the fiber must not be suspended in a task
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // Runs fn(arg) on this fiber until it returns (true) or suspends (false).
  bool run(void (*fn)(void*), void* arg);
  // Continues the suspended task: true when it has returned.
  bool resume();
  // From inside the task: back to the caller of run() or resume().
  void suspend();

  bool suspended() const noexcept { return state_ == State::suspended; }
  // The fiber whose task runs on this thread now, or null.
  static Fiber* current() noexcept;
  // The lowest usable address of the stack running now: the current fiber's,
  // or the thread's (0 when the thread's cannot be learned).
  static uintptr_t stack_low() noexcept;

  struct Context;

 private:
  enum class State { idle, running, suspended };
  static void entry();
  void switch_in();
  void switch_out();

  Context* ctx_;
  void* stack_ = nullptr;  // the mapping, guard page first
  size_t mapped_ = 0;
  size_t stack_size_;
  State state_ = State::idle;
  void (*fn_)(void*) = nullptr;
  void* arg_ = nullptr;
  Fiber* outer_ = nullptr;  // the fiber that was current before switch_in
  // Sanitizer bookkeeping (unused in plain builds).
  void* fake_stack_ = nullptr;
  const void* caller_bottom_ = nullptr;
  size_t caller_size_ = 0;
  void* tsan_fiber_ = nullptr;
  void* tsan_caller_ = nullptr;
};

}  // namespace ember
