/* beam_fetch of the server's own native hello (http://HOST/hello-native,
 * HOST from the request): every request waits on a fiber for one outbound
 * request over the loop's kept-alive HTTP/1.1 connections. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(beam) {
  static char url[256];
  const char prefix[] = "http://";
  const char path[] = "/hello-native";
  ember_bytes host = ember_request_header("host");
  uint32_t n = 0;
  for (uint32_t i = 0; i < sizeof prefix - 1; ++i)
    url[n++] = prefix[i];
  for (uint32_t i = 0; i < host.len && n < 200; ++i)
    url[n++] = host.ptr[i];
  for (uint32_t i = 0; i < sizeof path - 1; ++i)
    url[n++] = path[i];
  ember_bytes got = ember_unpack(flaron_beam_fetch(url, n, 0, 0));
  if (!got.len) {
    ember_respond(502, "no response", 11);
    return EMBER_RESPOND;
  }
  ember_header("content-type", "application/json");
  ember_respond(200, got.ptr, got.len);
  return EMBER_RESPOND;
}
