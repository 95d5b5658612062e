/* Spark get/set for the benchmark: GET answers the value of key "k"
 * (404 when missing), any other method stores the body under "k" without
 * expiry and answers 204. Its route needs `capabilities: [writes_spark_kv]`. */
#define EMBER_FLARE_MAIN
#include <ember/flare_guest.h>

EMBER_HTTP_FLARE(spark) {
  ember_bytes method = ember_unpack(flaron_req_method());
  if (ember_equals(method, "GET")) {
    ember_bytes v = ember_unpack(flaron_spark_get("k", 1));
    if (v.len < 4) { /* a value starts with its 4-byte TTL */
      ember_respond(404, "", 0);
      return EMBER_RESPOND;
    }
    ember_respond(200, v.ptr + 4, v.len - 4);
    return EMBER_RESPOND;
  }
  ember_bytes body = ember_unpack(flaron_req_body());
  int32_t rc = flaron_spark_set("k", 1, body.ptr, body.len, 0);
  ember_respond(rc == 0 ? 204 : 500, "", 0);
  return EMBER_RESPOND;
}
