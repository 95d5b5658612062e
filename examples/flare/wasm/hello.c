/* A Wasm flare in C: answers "hello from C" with the request's method and
 * URL, and a header naming the language. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

static char* append(char* out, const char* s, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    *out++ = s[i];
  return out;
}

EMBER_HTTP_FLARE(hello) {
  ember_bytes method = ember_unpack(flaron_req_method());
  ember_bytes url = ember_unpack(flaron_req_url());
  char* body = (char*)ember_alloc(64 + method.len + url.len);
  if (!body) {
    ember_respond(500, "arena full\n", 11);
    return EMBER_RESPOND;
  }
  char* end = append(body, "hello from C: ", 14);
  end = append(end, method.ptr, method.len);
  end = append(end, " ", 1);
  end = append(end, url.ptr, url.len);
  end = append(end, "\n", 1);
  ember_header("x-flare-language", "c");
  ember_respond(200, body, (uint32_t)(end - body));
  return EMBER_RESPOND;
}
