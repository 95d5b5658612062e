/* A Wasm flare in C that counts its visits in plasma (a CRDT counter per
 * site) and remembers the last visitor's User-Agent in spark for an hour.
 * Its route needs `capabilities: [writes_plasma_kv, writes_spark_kv]`. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

/* Decimal text of v at the end of buf[21]; returns its start. */
static char* decimal(int64_t v, char* buf) {
  char* p = buf + 21;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--p = '-';
  return p;
}

EMBER_HTTP_FLARE(visits) {
  ember_bytes count = ember_unpack(flaron_plasma_increment("visits", 6, 1));
  if (count.len != 8) {
    ember_respond(503, "plasma is not available\n", 24);
    return EMBER_RESPOND;
  }
  int64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | (unsigned char)count.ptr[i];

  ember_bytes last = ember_unpack(flaron_spark_get("last-agent", 10));
  ember_bytes agent = ember_request_header("user-agent");
  flaron_spark_set("last-agent", 10, agent.ptr, agent.len, 3600);

  char* body = (char*)ember_alloc(128 + last.len);
  if (!body) return EMBER_RESPOND;
  char num[21];
  char* digits = decimal(n, num);
  char* out = body;
  const char* head = "visit #";
  while (*head)
    *out++ = *head++;
  while (digits < num + 21)
    *out++ = *digits++;
  if (last.len > 4) { /* spark values start with a 4-byte TTL */
    const char* prev = "; previous visitor: ";
    while (*prev)
      *out++ = *prev++;
    for (uint32_t i = 4; i < last.len; ++i)
      *out++ = last.ptr[i];
  }
  *out++ = '\n';
  ember_respond(200, body, (uint32_t)(out - body));
  return EMBER_RESPOND;
}
