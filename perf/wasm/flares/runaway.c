/* A runaway: loops forever without calling the host. Only the fuel budget
 * stops it (the wall-clock guard is checked at host calls). */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(runaway) {
  volatile uint32_t n = 0;
  for (;;)
    n = n + 1;
  return EMBER_RESPOND;
}
