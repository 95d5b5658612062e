/* Forwards every request to its route's origin unchanged (passthrough):
 * with the server's own native hello as the origin, what a proxied request
 * costs over HTTP/1.1 against HTTP/2 (origin_protocol). */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(proxy) {
  return EMBER_PASSTHROUGH;
}
