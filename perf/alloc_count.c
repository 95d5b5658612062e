// LD_PRELOAD shim counting heap calls, for "heap allocations per task".
//
//   LD_PRELOAD=libember_alloc_count.so EMBER_ALLOC_COUNT_FILE=/tmp/counts server
//   kill -USR2 <pid>   # writes the counters (atomically, via rename) to the file
//   EMBER_ALLOC_COUNT_AT_EXIT=1   # ... and once more at exit
//
// Every call is forwarded to the next definition (dlsym RTLD_NEXT): glibc's
// malloc, or mimalloc's where the program links it. mimalloc also defines the
// C++ operator new/delete symbols (which then never reach malloc), so they are
// interposed and counted too; when they forward to libstdc++'s operators,
// which call malloc/free, a per-thread depth keeps one call counted once.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

enum {
  C_MALLOC,
  C_CALLOC,
  C_REALLOC,
  C_FREE,
  C_POSIX_MEMALIGN,
  C_ALIGNED_ALLOC,
  C_MEMALIGN,
  C_VALLOC,
  C_PVALLOC,
  C_REALLOCARRAY,
  C_NEW,
  C_DELETE,
  C_COUNT
};
static const char* const kNames[C_COUNT] = {
    "malloc", "calloc",  "realloc",      "free", "posix_memalign", "aligned_alloc", "memalign",
    "valloc", "pvalloc", "reallocarray", "new",  "delete"};

static _Atomic uint64_t counts[C_COUNT];
static _Atomic uint64_t dumps;
// Inside a forwarded operator new/delete: the malloc/free it makes is the
// same allocation, already counted.
static __thread int cxx_depth __attribute__((tls_model("initial-exec")));

static inline void bump(int which) {
  if (cxx_depth == 0) atomic_fetch_add_explicit(&counts[which], 1, memory_order_relaxed);
}

// ---- the next allocator -------------------------------------------------------

static void* (*real_malloc)(size_t);
static void* (*real_calloc)(size_t, size_t);
static void* (*real_realloc)(void*, size_t);
static void (*real_free)(void*);
static int (*real_posix_memalign)(void**, size_t, size_t);
static void* (*real_aligned_alloc)(size_t, size_t);
static void* (*real_memalign)(size_t, size_t);
static void* (*real_valloc)(size_t);
static void* (*real_pvalloc)(size_t);
static void* (*real_reallocarray)(void*, size_t, size_t);

// dlsym itself may calloc (its error buffer) before real_calloc is known:
// those few early blocks come from here and are never freed.
static _Alignas(64) char boot_heap[64 * 1024];
static _Atomic size_t boot_used;
static int resolving;

static void* boot_alloc(size_t n) {
  size_t need = (n + 63) & ~(size_t)63;
  size_t at = atomic_fetch_add(&boot_used, need);
  if (at + need > sizeof boot_heap) return NULL;
  return boot_heap + at;
}
static int is_boot(const void* p) {
  return (const char*)p >= boot_heap && (const char*)p < boot_heap + sizeof boot_heap;
}

static void resolve(void) {
  if (real_malloc || resolving) return;
  resolving = 1;
  real_calloc = (void* (*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
  real_realloc = (void* (*)(void*, size_t))dlsym(RTLD_NEXT, "realloc");
  real_free = (void (*)(void*))dlsym(RTLD_NEXT, "free");
  real_posix_memalign = (int (*)(void**, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
  real_aligned_alloc = (void* (*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
  real_memalign = (void* (*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
  real_valloc = (void* (*)(size_t))dlsym(RTLD_NEXT, "valloc");
  real_pvalloc = (void* (*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
  real_reallocarray = (void* (*)(void*, size_t, size_t))dlsym(RTLD_NEXT, "reallocarray");
  // Last: its being set means all the others are.
  real_malloc = (void* (*)(size_t))dlsym(RTLD_NEXT, "malloc");
  resolving = 0;
}

// ---- C allocation API -----------------------------------------------------------

EXPORT void* malloc(size_t n) {
  if (!real_malloc) {
    if (resolving) return boot_alloc(n);
    resolve();
  }
  bump(C_MALLOC);
  return real_malloc(n);
}

EXPORT void* calloc(size_t n, size_t size) {
  if (!real_malloc) {
    if (resolving) return boot_alloc(n * size);  // static memory is zeroed
    resolve();
  }
  bump(C_CALLOC);
  return real_calloc(n, size);
}

EXPORT void* realloc(void* p, size_t n) {
  if (!real_malloc) resolve();
  bump(C_REALLOC);
  if (is_boot(p)) {
    // Size unknown: copy what the boot heap holds past p (n at most).
    void* q = real_malloc(n);
    size_t avail = (size_t)(boot_heap + sizeof boot_heap - (char*)p);
    if (q) memcpy(q, p, n < avail ? n : avail);
    return q;
  }
  return real_realloc(p, n);
}

EXPORT void free(void* p) {
  if (!p || is_boot(p)) return;
  if (!real_malloc) resolve();
  bump(C_FREE);
  real_free(p);
}

EXPORT int posix_memalign(void** out, size_t align, size_t n) {
  if (!real_malloc) resolve();
  bump(C_POSIX_MEMALIGN);
  return real_posix_memalign(out, align, n);
}

EXPORT void* aligned_alloc(size_t align, size_t n) {
  if (!real_malloc) resolve();
  bump(C_ALIGNED_ALLOC);
  return real_aligned_alloc(align, n);
}

EXPORT void* memalign(size_t align, size_t n) {
  if (!real_malloc) resolve();
  bump(C_MEMALIGN);
  return real_memalign(align, n);
}

EXPORT void* valloc(size_t n) {
  if (!real_malloc) resolve();
  bump(C_VALLOC);
  return real_valloc(n);
}

EXPORT void* pvalloc(size_t n) {
  if (!real_malloc) resolve();
  bump(C_PVALLOC);
  return real_pvalloc(n);
}

EXPORT void* reallocarray(void* p, size_t n, size_t size) {
  if (!real_malloc) resolve();
  bump(C_REALLOCARRAY);
  return real_reallocarray(p, n, size);
}

// ---- C++ operators (mangled names; forwarded to the next definition) -------------

#define FORWARD_NEW(sym, params, args)                        \
  EXPORT void* sym params {                                   \
    static void*(*next)params;                                \
    if (!next) next = (void*(*)params)dlsym(RTLD_NEXT, #sym); \
    bump(C_NEW);                                              \
    ++cxx_depth;                                              \
    void* p = next args;                                      \
    --cxx_depth;                                              \
    return p;                                                 \
  }
#define FORWARD_DELETE(sym, params, args)                     \
  EXPORT void sym params {                                    \
    static void(*next) params;                                \
    if (!next) next = (void(*) params)dlsym(RTLD_NEXT, #sym); \
    if (!p) return;                                           \
    bump(C_DELETE);                                           \
    ++cxx_depth;                                              \
    next args;                                                \
    --cxx_depth;                                              \
  }

typedef struct nothrow_tag nothrow_tag;  // std::nothrow_t, by reference only

FORWARD_NEW(_Znwm, (size_t n), (n))
FORWARD_NEW(_Znam, (size_t n), (n))
FORWARD_NEW(_ZnwmRKSt9nothrow_t, (size_t n, const nothrow_tag* t), (n, t))
FORWARD_NEW(_ZnamRKSt9nothrow_t, (size_t n, const nothrow_tag* t), (n, t))
FORWARD_NEW(_ZnwmSt11align_val_t, (size_t n, size_t a), (n, a))
FORWARD_NEW(_ZnamSt11align_val_t, (size_t n, size_t a), (n, a))
FORWARD_NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, (size_t n, size_t a, const nothrow_tag* t),
            (n, a, t))
FORWARD_NEW(_ZnamSt11align_val_tRKSt9nothrow_t, (size_t n, size_t a, const nothrow_tag* t),
            (n, a, t))
FORWARD_DELETE(_ZdlPv, (void* p), (p))
FORWARD_DELETE(_ZdaPv, (void* p), (p))
FORWARD_DELETE(_ZdlPvm, (void* p, size_t n), (p, n))
FORWARD_DELETE(_ZdaPvm, (void* p, size_t n), (p, n))
FORWARD_DELETE(_ZdlPvSt11align_val_t, (void* p, size_t a), (p, a))
FORWARD_DELETE(_ZdaPvSt11align_val_t, (void* p, size_t a), (p, a))
FORWARD_DELETE(_ZdlPvmSt11align_val_t, (void* p, size_t n, size_t a), (p, n, a))
FORWARD_DELETE(_ZdaPvmSt11align_val_t, (void* p, size_t n, size_t a), (p, n, a))
FORWARD_DELETE(_ZdlPvRKSt9nothrow_t, (void* p, const nothrow_tag* t), (p, t))
FORWARD_DELETE(_ZdaPvRKSt9nothrow_t, (void* p, const nothrow_tag* t), (p, t))
FORWARD_DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, (void* p, size_t a, const nothrow_tag* t),
               (p, a, t))
FORWARD_DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, (void* p, size_t a, const nothrow_tag* t),
               (p, a, t))

// ---- SIGUSR2: write the counters ---------------------------------------------------

// Paths prepared in the constructor: the handler may not allocate.
static char out_path[4096];
static char tmp_path[4096 + 8];

static size_t put_str(char* buf, size_t at, size_t cap, const char* s) {
  while (*s && at < cap)
    buf[at++] = *s++;
  return at;
}

static size_t put_u64(char* buf, size_t at, size_t cap, uint64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n > 0 && at < cap)
    buf[at++] = digits[--n];
  return at;
}

// Async-signal-safe only: open, write, close, rename, getpid.
static void on_usr2(int sig) {
  (void)sig;
  int saved = errno;
  char buf[1024];
  size_t n = 0, cap = sizeof buf;
  uint64_t seq = atomic_fetch_add(&dumps, 1) + 1;
  n = put_str(buf, n, cap, "seq ");
  n = put_u64(buf, n, cap, seq);
  n = put_str(buf, n, cap, "\npid ");
  n = put_u64(buf, n, cap, (uint64_t)getpid());
  n = put_str(buf, n, cap, "\n");
  for (int i = 0; i < C_COUNT; ++i) {
    n = put_str(buf, n, cap, kNames[i]);
    n = put_str(buf, n, cap, " ");
    n = put_u64(buf, n, cap, atomic_load_explicit(&counts[i], memory_order_relaxed));
    n = put_str(buf, n, cap, "\n");
  }
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    size_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, buf + off, n - off);
      if (w <= 0) break;
      off += (size_t)w;
    }
    close(fd);
    // Readers see the old file or the whole new one, never a partial one.
    rename(tmp_path, out_path);
  }
  errno = saved;
}

// EMBER_ALLOC_COUNT_AT_EXIT=1: also write them when the process exits (for
// programs that stop on their own, counted over their whole run).
static int dump_at_exit;
__attribute__((destructor)) static void alloc_count_fini(void) {
  if (dump_at_exit && out_path[0]) on_usr2(0);
}

__attribute__((constructor)) static void alloc_count_init(void) {
  resolve();
  const char* path = getenv("EMBER_ALLOC_COUNT_FILE");
  if (!path || !*path || strlen(path) >= sizeof out_path) return;
  memcpy(out_path, path, strlen(path) + 1);
  memcpy(tmp_path, path, strlen(path));
  memcpy(tmp_path + strlen(path), ".tmp", 5);
  const char* at_exit = getenv("EMBER_ALLOC_COUNT_AT_EXIT");
  dump_at_exit = at_exit && at_exit[0] == '1';
  // The counted process is the first that loaded us; exec keeps its pid
  // (wrappers such as ember-sched), children (pass, gpg) have their own and
  // must not write their counts over its.
  char self[24];
  size_t n = put_u64(self, 0, sizeof self - 1, (uint64_t)getpid());
  self[n] = 0;
  const char* first = getenv("EMBER_ALLOC_COUNT_PID");
  if (first && strcmp(first, self) != 0) {
    out_path[0] = 0;
    dump_at_exit = 0;
    return;
  }
  setenv("EMBER_ALLOC_COUNT_PID", self, 1);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, NULL);
}
