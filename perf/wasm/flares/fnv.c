/* CPU-bound: FNV-1a (64-bit) over the request body, answered as 16 hex
 * digits; the native twin is perf/wasm/bench_server.cpp's `fnv`. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(fnv) {
  ember_bytes body = ember_unpack(flaron_req_body());
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint32_t i = 0; i < body.len; ++i) {
    h ^= (unsigned char)body.ptr[i];
    h *= 0x100000001b3ull;
  }
  static const char kHex[] = "0123456789abcdef";
  char* out = (char*)ember_alloc(16);
  if (!out) return EMBER_RESPOND;
  for (int i = 15; i >= 0; --i, h >>= 4)
    out[i] = kHex[h & 15];
  ember_respond(200, out, 16);
  return EMBER_RESPOND;
}
