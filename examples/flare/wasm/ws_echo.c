/* A WebSocket flare in C: greets each connection and echoes its messages. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_WS_FLARE(echo) {
  if (ember_equals(event, "open")) {
    flaron_ws_send("welcome", 7);
  } else if (ember_equals(event, "message")) {
    ember_bytes data = ember_unpack(flaron_ws_event_data());
    flaron_ws_send(data.ptr, data.len);
  }
}
