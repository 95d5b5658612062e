/* Trap guards for Wasm flares: a trap raised anywhere in guest code (or by a
 * host import's plain-C wrapper) longjmps to the innermost guard of the
 * calling thread. Only C frames (guest code, the shim) lie between a guard
 * and a raise: host imports written in C++ return a trap code instead. */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*ember_wasm_entry)(void* inst, void* env, int what, uint32_t arg, uint64_t* result);

static __thread jmp_buf* t_current;
static __thread int t_code;

__attribute__((noreturn)) void ember_wasm_raise(int code) {
  if (!t_current) {
    fprintf(stderr, "ember: a WebAssembly trap (%d) outside any guard; aborting\n", code);
    abort();
  }
  t_code = code ? code : -1;
  longjmp(*t_current, 1);
}

/* The innermost guard is per stack: a guest that waits on a fiber takes its
 * guard chain away (exchange with NULL) and puts it back when it resumes. */
void* ember_wasm_guard_exchange(void* next) {
  jmp_buf* prev = t_current;
  t_current = (jmp_buf*)next;
  return prev;
}

int ember_wasm_guarded(ember_wasm_entry fn, void* inst, void* env, int what, uint32_t arg,
                       uint64_t* result) {
  jmp_buf buf;
  jmp_buf* volatile prev = t_current;
  t_current = &buf;
  if (setjmp(buf)) {
    t_current = prev;
    return t_code;
  }
  fn(inst, env, what, arg, result);
  t_current = prev;
  return 0;
}
