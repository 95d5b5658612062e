// The C that is compiled into every module's shared object next to the
// wasm2c output: Ember's own wasm2c runtime (wasm-rt.h for wasm2c 1.0.32, in
// bounds-check mode) and the shim that exports fixed entry points.
//
// Thread safety. The runtime keeps no mutable global state while guest code
// runs: the call depth lives in the instance (wasm2c's FUNC_PROLOGUE counts
// `wasm_rt_call_stack_depth`, which is defined here as a word just past the
// generated instance struct), and a trap is raised through the host's
// `raise`, which longjmps to the thread's innermost guard (guard.c). The
// function-type table is written only while the module is loaded, under the
// loader's lock.
#include "handlers/flare/wasm/engine.hpp"

namespace ember::flare::wasm::detail {

const char kRuntimeHeader[] = R"C(/* Ember's wasm2c runtime header (for wasm2c 1.0.32 output). */
#ifndef WASM_RT_H_
#define WASM_RT_H_
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define wasm_rt_memcpy __builtin_memcpy
#define wasm_rt_unreachable __builtin_unreachable
#define WASM_RT_MEMCHECK_SIGNAL_HANDLER 0
#define WASM_RT_USE_STACK_DEPTH_COUNT 1
#define WASM_RT_MERGED_OOB_AND_EXHAUSTION_TRAPS 0
#define WASM_RT_NO_RETURN __attribute__((noreturn))
/* Per instance: the first word after the generated instance struct. */
#define wasm_rt_call_stack_depth (*(uint32_t*)(instance + 1))
/* Every function's prologue also traps when the stack pointer is below the
   instance's floor (the third word of its tail, set at each entry): a few
   deep calls with large frames would otherwise overflow the thread's stack
   within the call-depth limit (EMBER_MAX_DEPTH). */
static inline __attribute__((always_inline)) uintptr_t ember_sp(void) {
  uintptr_t sp;
#if defined(__x86_64__)
  __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
  __asm__ volatile("mov %0, sp" : "=r"(sp));
#else
  sp = (uintptr_t)__builtin_frame_address(0);
#endif
  return sp;
}
#define EMBER_STACK_FLOOR (((const uintptr_t*)(instance + 1))[2])
#define WASM_RT_MAX_CALL_STACK_DEPTH (ember_sp() < EMBER_STACK_FLOOR ? 0u : (uint32_t)EMBER_MAX_DEPTH)
typedef enum {
  WASM_RT_TRAP_NONE, WASM_RT_TRAP_OOB, WASM_RT_TRAP_INT_OVERFLOW, WASM_RT_TRAP_DIV_BY_ZERO,
  WASM_RT_TRAP_INVALID_CONVERSION, WASM_RT_TRAP_UNREACHABLE, WASM_RT_TRAP_CALL_INDIRECT,
  WASM_RT_TRAP_UNCAUGHT_EXCEPTION, WASM_RT_TRAP_EXHAUSTION,
} wasm_rt_trap_t;
typedef enum { WASM_RT_I32, WASM_RT_I64, WASM_RT_F32, WASM_RT_F64, WASM_RT_FUNCREF,
               WASM_RT_EXTERNREF } wasm_rt_type_t;
typedef void (*wasm_rt_function_ptr_t)(void);
typedef struct { uint32_t func_type; wasm_rt_function_ptr_t func; void* module_instance; }
    wasm_rt_funcref_t;
static const wasm_rt_funcref_t wasm_rt_funcref_null_value = {0, NULL, NULL};
typedef void* wasm_rt_externref_t;
static const wasm_rt_externref_t wasm_rt_externref_null_value = NULL;
typedef struct { uint8_t* data; uint32_t pages, max_pages; uint32_t size; } wasm_rt_memory_t;
typedef struct { wasm_rt_funcref_t* data; uint32_t max_size; uint32_t size; }
    wasm_rt_funcref_table_t;
typedef struct { wasm_rt_externref_t* data; uint32_t max_size; uint32_t size; }
    wasm_rt_externref_table_t;
bool wasm_rt_is_initialized(void);
WASM_RT_NO_RETURN void wasm_rt_trap(wasm_rt_trap_t);
uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...);
void wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t initial_pages, uint32_t max_pages);
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t pages);
void wasm_rt_free_memory(wasm_rt_memory_t*);
void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t*, uint32_t, uint32_t);
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t*);
void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t*, uint32_t, uint32_t);
void wasm_rt_free_externref_table(wasm_rt_externref_table_t*);
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t*, uint32_t, wasm_rt_funcref_t);
uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t*, uint32_t, wasm_rt_externref_t);
#endif
)C";

// Runtime and entry points. EMBER_HAS_IMPORTS, EMBER_HAS_HANDLE_REQUEST,
// EMBER_HAS_WS come from the compiler's command line; the import wrappers are
// appended by the engine.
const char kShimSource[] = R"C(/* Ember's runtime and entry points for one wasm2c module. */
#include <stdarg.h>
#include <stdlib.h>
#include "mod.h"
#define EXPORT __attribute__((visibility("default")))

typedef void (*ember_raise_fn)(int) __attribute__((noreturn));
struct ember_host {
  ember_raise_fn raise;
  int (*call)(void* env, int import, const uint64_t* args, uint64_t* result);
  uint32_t max_pages;   /* memory cap */
  uint32_t max_table;   /* table growth cap */
};
static const struct ember_host* H;

/* Lives right after the generated struct; `depth` first, `floor` third
   (wasm-rt.h reads them there). */
struct ember_tail { uint32_t depth; uint32_t pad; u64* fuel; uintptr_t floor; };
struct ember_instance { Z_mod_instance_t m; struct ember_tail t; };
_Static_assert(offsetof(struct ember_tail, floor) == 2 * sizeof(uintptr_t), "tail layout");
_Static_assert(offsetof(struct ember_instance, t) == sizeof(Z_mod_instance_t), "tail placement");

/* An outermost entry: guest code may use `budget_kib` KiB of stack below here. */
static void ember_enter(struct ember_instance* e, uint32_t budget_kib) {
  uintptr_t sp = ember_sp();
  uintptr_t budget = (uintptr_t)budget_kib << 10;
  e->t.depth = 0;
  e->t.floor = sp > budget ? sp - budget : 0;
}

/* ---- runtime ---- */
static bool s_initialized;
bool wasm_rt_is_initialized(void) { return s_initialized; }
void wasm_rt_trap(wasm_rt_trap_t code) { H->raise((int)code); }

#define EMBER_MAX_TYPES 4096
struct ember_type { uint32_t params, results; uint8_t types[32]; };
static struct ember_type s_types[EMBER_MAX_TYPES];
static uint32_t s_ntypes;
uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
  struct ember_type t;
  memset(&t, 0, sizeof t);
  t.params = params;
  t.results = results;
  va_list ap;
  va_start(ap, results);
  for (uint32_t i = 0; i < params + results; ++i) {
    int v = va_arg(ap, int);
    if (i < sizeof t.types) t.types[i] = (uint8_t)v;
  }
  va_end(ap);
  if (params + results > sizeof t.types) return 0x80000000u + s_ntypes++; /* unique */
  for (uint32_t i = 0; i < s_ntypes && i < EMBER_MAX_TYPES; ++i)
    if (!memcmp(&s_types[i], &t, sizeof t)) return i;
  if (s_ntypes >= EMBER_MAX_TYPES) return 0x80000000u + s_ntypes++;
  s_types[s_ntypes] = t;
  return s_ntypes++;
}

void wasm_rt_allocate_memory(wasm_rt_memory_t* m, uint32_t initial, uint32_t max) {
  if (max > H->max_pages) max = H->max_pages;
  m->data = NULL;
  m->pages = m->size = 0;
  m->max_pages = max;
  if (initial > max) wasm_rt_trap(WASM_RT_TRAP_OOB);
  m->data = (uint8_t*)calloc((size_t)initial * 65536u + 1, 1);
  if (!m->data) wasm_rt_trap(WASM_RT_TRAP_OOB);
  m->pages = initial;
  m->size = initial * 65536u;
}
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t* m, uint32_t delta) {
  uint32_t old = m->pages;
  if (delta == 0) return old;
  if ((uint64_t)old + delta > m->max_pages) return (uint32_t)-1;
  uint32_t pages = old + delta;
  uint8_t* p = (uint8_t*)realloc(m->data, (size_t)pages * 65536u + 1);
  if (!p) return (uint32_t)-1;
  memset(p + (size_t)old * 65536u, 0, (size_t)delta * 65536u);
  m->data = p;
  m->pages = pages;
  m->size = pages * 65536u;
  return old;
}
void wasm_rt_free_memory(wasm_rt_memory_t* m) { free(m->data); m->data = NULL; }

#define EMBER_TABLE(kind, elem, nullv)                                                  \
  void wasm_rt_allocate_##kind##_table(wasm_rt_##kind##_table_t* t, uint32_t n, uint32_t max) { \
    if (max > H->max_table) max = H->max_table;                                          \
    t->data = NULL; t->size = 0; t->max_size = max;                                      \
    if (n > max) wasm_rt_trap(WASM_RT_TRAP_OOB);                                         \
    t->data = (elem*)calloc((size_t)n + 1, sizeof(elem));                               \
    if (!t->data) wasm_rt_trap(WASM_RT_TRAP_OOB);                                        \
    t->size = n;                                                                         \
  }                                                                                      \
  void wasm_rt_free_##kind##_table(wasm_rt_##kind##_table_t* t) { free(t->data); t->data = NULL; } \
  uint32_t wasm_rt_grow_##kind##_table(wasm_rt_##kind##_table_t* t, uint32_t delta, elem init) { \
    uint32_t old = t->size;                                                              \
    if ((uint64_t)old + delta > t->max_size) return (uint32_t)-1;                        \
    if (delta == 0) return old;                                                          \
    elem* p = (elem*)realloc(t->data, ((size_t)old + delta + 1) * sizeof(elem));         \
    if (!p) return (uint32_t)-1;                                                         \
    for (uint32_t i = old; i < old + delta; ++i) p[i] = init;                            \
    t->data = p; t->size = old + delta;                                                  \
    return old;                                                                          \
  }
EMBER_TABLE(funcref, wasm_rt_funcref_t, wasm_rt_funcref_null_value)
EMBER_TABLE(externref, wasm_rt_externref_t, NULL)

/* ---- entry points (called by the host inside its guard) ---- */
EXPORT int ember_abi_version(void) { return 2; }
EXPORT void ember_load(const struct ember_host* host) {
  H = host;
  s_initialized = true;
  Z_mod_init_module();
}
EXPORT void* ember_new(void) {
  return calloc(1, sizeof(struct ember_instance));
}
enum { EMBER_INIT = 0, EMBER_HANDLE_REQUEST = 1, EMBER_ALLOC = 2, EMBER_WS_OPEN = 3,
       EMBER_WS_MESSAGE = 4, EMBER_WS_CLOSE = 5 };
EXPORT void ember_call(void* p, void* env, int what, uint32_t arg, uint64_t* result) {
  struct ember_instance* e = (struct ember_instance*)p;
  (void)env;
  switch (what) {
    case EMBER_INIT:
      ember_enter(e, arg);
      e->t.fuel = Z_modZ___ember_fuel(&e->m);
#ifdef EMBER_HAS_IMPORTS
      Z_mod_instantiate(&e->m, (struct Z_flaronZ2Fv1_instance_t*)env);
#else
      Z_mod_instantiate(&e->m);
#endif
      e->t.fuel = Z_modZ___ember_fuel(&e->m);
      break;
    case EMBER_ALLOC:
      *result = Z_modZ_alloc(&e->m, arg);
      break;
#ifdef EMBER_HAS_HANDLE_REQUEST
    case EMBER_HANDLE_REQUEST:
      ember_enter(e, arg);
      *result = Z_modZ_handle_request(&e->m);
      break;
#endif
#ifdef EMBER_HAS_WS
    case EMBER_WS_OPEN: ember_enter(e, arg); *result = Z_modZ_ws_open(&e->m); break;
    case EMBER_WS_MESSAGE: ember_enter(e, arg); *result = Z_modZ_ws_message(&e->m); break;
    case EMBER_WS_CLOSE: ember_enter(e, arg); *result = Z_modZ_ws_close(&e->m); break;
#endif
    default:
      wasm_rt_trap(WASM_RT_TRAP_UNREACHABLE);
  }
}
EXPORT void ember_free(void* p) {
  struct ember_instance* e = (struct ember_instance*)p;
  if (!e) return;
  Z_mod_free(&e->m);
  free(e);
}
EXPORT int64_t ember_fuel(void* p, int set, int64_t value) {
  struct ember_instance* e = (struct ember_instance*)p;
  if (!e->t.fuel) return 0;
  if (set) *e->t.fuel = (u64)value;
  return (int64_t)*e->t.fuel;
}
EXPORT void ember_memory(void* p, uint8_t** data, uint32_t* size) {
  struct ember_instance* e = (struct ember_instance*)p;
  wasm_rt_memory_t* m = Z_modZ_memory(&e->m);
  *data = m->data;
  *size = m->size;
}

/* ---- flaron/v1 imports: each forwards to the host's dispatcher ---- */
)C";

}  // namespace ember::flare::wasm::detail
