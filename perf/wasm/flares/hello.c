/* The benchmark's hello as a Wasm flare: 200 "hello", as the native
 * `hello` flare answers. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(hello) {
  ember_header("content-type", "text/plain");
  ember_respond(200, "hello", 5);
  return EMBER_RESPOND;
}
