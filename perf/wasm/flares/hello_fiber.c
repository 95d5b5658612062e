/* hello on a fiber: the same answer as hello.c, but the module imports
 * beam_fetch (never called unless x-fetch is sent), so on a route granting
 * `beam` every request runs on a fiber. Measures what the fiber costs. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(hello_fiber) {
  ember_bytes never = ember_request_header("x-fetch");
  if (never.len) flaron_beam_fetch(never.ptr, never.len, 0, 0);
  ember_header("content-type", "text/plain");
  ember_respond(200, "hello", 5);
  return EMBER_RESPOND;
}
