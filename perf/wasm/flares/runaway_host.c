/* A runaway that calls the host on every turn (reads the clock): the
 * wall-clock guard (`wasm.timeout`) stops it, unless fuel runs out first. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(runaway_host) {
  for (;;)
    (void)flaron_timestamp("{}", 2);
  return EMBER_RESPOND;
}
