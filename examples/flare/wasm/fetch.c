/* A Wasm flare in C that fetches the URL given as its query string
 * (GET /fetch?http://host/path) with beam_fetch and answers the envelope
 * {"status", "headers", "body"}. Its route needs `capabilities: [beam]` and
 * the host must be in the config's `beam.allow`. While it waits, its loop
 * serves other requests. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(fetch) {
  ember_bytes url = ember_unpack(flaron_req_url());
  uint32_t q = 0;
  while (q < url.len && url.ptr[q] != '?')
    ++q;
  if (q + 1 >= url.len) {
    ember_respond(400, "usage: /fetch?http://host/path\n", 31);
    return EMBER_RESPOND;
  }
  const char opts[] = "{\"method\":\"GET\",\"headers\":{\"x-fetched-by\":\"ember-c-example\"}}";
  ember_bytes got =
      ember_unpack(flaron_beam_fetch(url.ptr + q + 1, url.len - q - 1, opts, sizeof opts - 1));
  if (!got.len) {
    ember_respond(502, "no response (see the server log)\n", 33);
    return EMBER_RESPOND;
  }
  ember_header("content-type", "application/json");
  ember_respond(200, got.ptr, got.len);
  return EMBER_RESPOND;
}
