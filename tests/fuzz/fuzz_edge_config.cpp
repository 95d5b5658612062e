// libFuzzer target: the edge face's text parsers. `ember serve`'s YAML config
// (listeners, routes with origins, limits, wasm, beam, admin, secrets), the
// beam URL and allowlist checks, and the admin API's query decoding must
// never crash and must keep their invariants.
// libfuzzer-options: -max_len=4096 -timeout=10 -rss_limit_mb=2048
//
// Input: the text, parsed as a config, a URL and a query string at once.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ember/flare_server.hpp"
#include "handlers/flare/edge.hpp"
#include "protocols/http1/http1.hpp"

namespace flare = ember::flare;

namespace {

void check_url(std::string_view url) {
  std::string host;
  uint16_t port = 0;
  bool https = false;
  if (!flare::detail::beam_origin(url, &host, &port, &https)) return;
  if (host.empty() || port == 0) std::abort();
  for (char c : host)
    if (c >= 'A' && c <= 'Z') std::abort();  // compared lower case
  // An allowlist naming exactly this host and port lets it through; one
  // naming another port does not.
  std::string exact = host + ":" + std::to_string(port);
  if (!flare::detail::beam_allowed({exact}, host, port)) std::abort();
  if (flare::detail::beam_allowed({host + ":" + std::to_string(port == 1 ? 2 : 1)}, host, port))
    std::abort();
  if (!flare::detail::beam_allowed({"*"}, host, port)) std::abort();
}

void check_form(std::string_view text) {
  std::string decoded;
  (void)ember::http1::form_decode(text, &decoded);
  std::string again;
  if (!ember::http1::form_decode(ember::http1::percent_encode(text), &again) || again != text)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = flare::parse_config(text, "fuzz");
  if (config) {
    for (const flare::RouteConfig& r : config->routes) {
      if (r.path.empty() || r.path[0] != '/') std::abort();
      if (!r.origin.empty()) {
        std::string host;
        uint16_t port = 0;
        bool https = false;
        if (!flare::detail::beam_origin(r.origin, &host, &port, &https)) std::abort();
      }
    }
    if (config->admin.enabled() && config->admin.token.size() < 16) std::abort();
  } else if (config.error().message.empty()) {
    std::abort();  // every refusal says why
  }
  check_url(text);
  check_form(text);
  return 0;
}
