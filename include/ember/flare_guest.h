/* Writing Ember flares in C or C++, compiled to WebAssembly (flaron/v1).
 *
 * The 48 host imports of flaron/v1 as C functions (flaron_<name>), the
 * guest's allocator (a 256 KiB bump arena, reset before every invocation)
 * and helpers for the packed (pointer, length) results. Freestanding: no
 * libc. Build with Debian's clang-14 and wasm-ld-14:
 *
 *   clang-14 --target=wasm32 -O2 -nostdlib -ffreestanding -I include \
 *            -Wl,--no-entry -Wl,--strip-all -o hello.wasm hello.c
 *
 * In exactly one source file, define EMBER_FLARE_MAIN before including this
 * header: it defines the allocator, memcpy/memset, and the exports that
 * EMBER_HTTP_FLARE and EMBER_WS_FLARE name. Then serve the module from
 * `ember serve` with a route `{path: /x, wasm: hello.wasm}` (docs/serve.md).
 *
 *   #define EMBER_FLARE_MAIN
 *   #include <ember/flare_guest.h>
 *   EMBER_HTTP_FLARE(hello) {
 *     ember_respond(200, "hello\n", 6);
 *     return EMBER_RESPOND;
 *   }
 */
#ifndef EMBER_FLARE_GUEST_H
#define EMBER_FLARE_GUEST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_FLARON(name) __attribute__((import_module("flaron/v1"), import_name(#name)))

EMBER_FLARON(req_method) int64_t flaron_req_method(void);
EMBER_FLARON(req_url) int64_t flaron_req_url(void);
EMBER_FLARON(req_header_get) int64_t flaron_req_header_get(const char* name, uint32_t name_len);
EMBER_FLARON(req_body) int64_t flaron_req_body(void);
EMBER_FLARON(resp_set_status) void flaron_resp_set_status(int32_t status);
EMBER_FLARON(resp_header_set)
void flaron_resp_header_set(const char* name, uint32_t name_len, const char* value,
                            uint32_t value_len);
EMBER_FLARON(resp_body_set) void flaron_resp_body_set(const void* body, uint32_t len);
EMBER_FLARON(beam_fetch)
int64_t flaron_beam_fetch(const char* url, uint32_t url_len, const char* opts, uint32_t opts_len);
EMBER_FLARON(log_info) void flaron_log_info(const char* msg, uint32_t len);
EMBER_FLARON(log_warn) void flaron_log_warn(const char* msg, uint32_t len);
EMBER_FLARON(log_error) void flaron_log_error(const char* msg, uint32_t len);
EMBER_FLARON(crypto_hash) int64_t flaron_crypto_hash(const char* json, uint32_t len);
EMBER_FLARON(crypto_hmac) int64_t flaron_crypto_hmac(const char* json, uint32_t len);
EMBER_FLARON(crypto_sign_jwt) int64_t flaron_crypto_sign_jwt(const char* json, uint32_t len);
EMBER_FLARON(crypto_encrypt_aes) int64_t flaron_crypto_encrypt_aes(const char* json, uint32_t len);
EMBER_FLARON(crypto_decrypt_aes) int64_t flaron_crypto_decrypt_aes(const char* json, uint32_t len);
EMBER_FLARON(crypto_random_bytes) int64_t flaron_crypto_random_bytes(int32_t count);
EMBER_FLARON(encoding_base64_encode)
int64_t flaron_encoding_base64_encode(const void* data, uint32_t len);
EMBER_FLARON(encoding_base64_decode)
int64_t flaron_encoding_base64_decode(const void* data, uint32_t len);
EMBER_FLARON(encoding_hex_encode)
int64_t flaron_encoding_hex_encode(const void* data, uint32_t len);
EMBER_FLARON(encoding_hex_decode)
int64_t flaron_encoding_hex_decode(const void* data, uint32_t len);
EMBER_FLARON(encoding_url_encode)
int64_t flaron_encoding_url_encode(const void* data, uint32_t len);
EMBER_FLARON(encoding_url_decode)
int64_t flaron_encoding_url_decode(const void* data, uint32_t len);
EMBER_FLARON(id_uuid) int64_t flaron_id_uuid(const char* json, uint32_t len);
EMBER_FLARON(id_ulid) int64_t flaron_id_ulid(void);
EMBER_FLARON(id_nanoid) int64_t flaron_id_nanoid(int32_t length);
EMBER_FLARON(id_ksuid) int64_t flaron_id_ksuid(void);
EMBER_FLARON(id_snowflake) int64_t flaron_id_snowflake(void);
EMBER_FLARON(snowflake_id) int64_t flaron_snowflake_id(void);
EMBER_FLARON(timestamp) int64_t flaron_timestamp(const char* json, uint32_t len);
EMBER_FLARON(spark_get) int64_t flaron_spark_get(const char* key, uint32_t key_len);
EMBER_FLARON(spark_set)
int32_t flaron_spark_set(const char* key, uint32_t key_len, const void* value, uint32_t value_len,
                         int32_t ttl_seconds);
EMBER_FLARON(spark_delete) void flaron_spark_delete(const char* key, uint32_t key_len);
EMBER_FLARON(spark_list) int64_t flaron_spark_list(void);
EMBER_FLARON(spark_pull)
int32_t flaron_spark_pull(const char* origin, uint32_t origin_len, const char* keys_json,
                          uint32_t keys_len);
EMBER_FLARON(plasma_get) int64_t flaron_plasma_get(const char* key, uint32_t key_len);
EMBER_FLARON(plasma_set)
int32_t flaron_plasma_set(const char* key, uint32_t key_len, const void* value, uint32_t value_len);
EMBER_FLARON(plasma_delete) int32_t flaron_plasma_delete(const char* key, uint32_t key_len);
EMBER_FLARON(plasma_increment)
int64_t flaron_plasma_increment(const char* key, uint32_t key_len, int64_t delta);
EMBER_FLARON(plasma_decrement)
int64_t flaron_plasma_decrement(const char* key, uint32_t key_len, int64_t delta);
EMBER_FLARON(plasma_list) int64_t flaron_plasma_list(void);
EMBER_FLARON(secret_get) int64_t flaron_secret_get(const char* name, uint32_t len);
EMBER_FLARON(ws_send) int32_t flaron_ws_send(const void* data, uint32_t len);
EMBER_FLARON(ws_close_conn) void flaron_ws_close_conn(int32_t code);
EMBER_FLARON(ws_conn_id) int64_t flaron_ws_conn_id(void);
EMBER_FLARON(ws_event_type) int64_t flaron_ws_event_type(void);
EMBER_FLARON(ws_event_data) int64_t flaron_ws_event_data(void);
EMBER_FLARON(ws_close_code) int32_t flaron_ws_close_code(void);

/* A host result: bytes in the arena, valid until the invocation returns.
 * ptr is NULL when the host answered nothing (missing, failed, empty). */
typedef struct {
  const char* ptr;
  uint32_t len;
} ember_bytes;

static inline ember_bytes ember_unpack(int64_t packed) {
  ember_bytes b;
  b.ptr = (const char*)(uintptr_t)((uint64_t)packed >> 32);
  b.len = (uint32_t)packed;
  if (!b.ptr) b.len = 0;
  return b;
}

static inline uint32_t ember_strlen(const char* s) {
  uint32_t n = 0;
  while (s[n])
    ++n;
  return n;
}

static inline int ember_equals(ember_bytes b, const char* s) {
  uint32_t n = ember_strlen(s);
  if (b.len != n) return 0;
  for (uint32_t i = 0; i < n; ++i)
    if (b.ptr[i] != s[i]) return 0;
  return 1;
}

/* Actions a handler returns (flaron/v1 §4). */
#define EMBER_RESPOND ((int64_t)1 << 32)
#define EMBER_TRANSFORM ((int64_t)2 << 32)
#define EMBER_PASSTHROUGH ((int64_t)3 << 32)

static inline void ember_respond(int32_t status, const void* body, uint32_t len) {
  flaron_resp_set_status(status);
  flaron_resp_body_set(body, len);
}

static inline void ember_header(const char* name, const char* value) {
  flaron_resp_header_set(name, ember_strlen(name), value, ember_strlen(value));
}

static inline void ember_log(const char* msg) {
  flaron_log_info(msg, ember_strlen(msg));
}

static inline ember_bytes ember_request_header(const char* name) {
  return ember_unpack(flaron_req_header_get(name, ember_strlen(name)));
}

/* Arena allocation for the guest's own use (0 when the arena is full). */
void* ember_alloc(uint32_t size);
void ember_arena_reset(void);

#define EMBER_HTTP_FLARE(fn)                                                                 \
  static int64_t fn(void);                                                                   \
  __attribute__((export_name("handle_request"))) int64_t ember_export_handle_request(void) { \
    ember_arena_reset();                                                                     \
    return fn();                                                                             \
  }                                                                                          \
  static int64_t fn(void)

/* A WebSocket flare: one function for the three events; event is "open",
 * "message" or "close" (see flaron_ws_event_type). */
#define EMBER_WS_FLARE(fn)                                                           \
  static void fn(ember_bytes event);                                                 \
  static int32_t ember_ws_event(void) {                                              \
    ember_arena_reset();                                                             \
    fn(ember_unpack(flaron_ws_event_type()));                                        \
    return 0;                                                                        \
  }                                                                                  \
  __attribute__((export_name("ws_open"))) int32_t ember_export_ws_open(void) {       \
    return ember_ws_event();                                                         \
  }                                                                                  \
  __attribute__((export_name("ws_message"))) int32_t ember_export_ws_message(void) { \
    return ember_ws_event();                                                         \
  }                                                                                  \
  __attribute__((export_name("ws_close"))) int32_t ember_export_ws_close(void) {     \
    return ember_ws_event();                                                         \
  }                                                                                  \
  static void fn(ember_bytes event)

#ifdef EMBER_FLARE_MAIN

#define EMBER_ARENA_SIZE (256u * 1024u)
static unsigned char ember_arena[EMBER_ARENA_SIZE] __attribute__((aligned(16)));
static uint32_t ember_arena_used;

void ember_arena_reset(void) {
  ember_arena_used = 0;
}

void* ember_alloc(uint32_t size) {
  uint32_t at = (ember_arena_used + 7u) & ~7u;
  if (size == 0 || size > EMBER_ARENA_SIZE - at) return 0;
  ember_arena_used = at + size;
  return ember_arena + at;
}

/* The host copies results into the guest through this export. */
__attribute__((export_name("alloc"))) uint32_t ember_export_alloc(uint32_t size) {
  return (uint32_t)(uintptr_t)ember_alloc(size);
}

/* What the compiler may call on its own in freestanding code. The volatile
 * stores keep it from turning these loops back into calls to themselves. */
void* memcpy(void* dst, const void* src, size_t n) {
  volatile unsigned char* d = (volatile unsigned char*)dst;
  const unsigned char* s = (const unsigned char*)src;
  while (n--)
    *d++ = *s++;
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  volatile unsigned char* d = (volatile unsigned char*)dst;
  while (n--)
    *d++ = (unsigned char)c;
  return dst;
}

#endif /* EMBER_FLARE_MAIN */

#ifdef __cplusplus
}
#endif

#endif /* EMBER_FLARE_GUEST_H */
