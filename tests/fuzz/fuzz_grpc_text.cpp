// libFuzzer target: the text codecs of gRPC's HTTP/2 mapping and Ember's
// configuration values, with their round-trip properties.
// libfuzzer-options: -max_len=256 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "ember/config.hpp"
#include "protocols/grpc/status.hpp"

using namespace ember;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  std::string decoded = grpc::percent_decode(text);
  if (decoded.size() > text.size()) std::abort();
  std::string encoded = grpc::percent_encode(text);
  for (unsigned char c : encoded)
    if (c < 0x20 || c > 0x7E) std::abort();
  if (grpc::percent_decode(encoded) != text) std::abort();

  if (auto ns = grpc::parse_timeout(text)) {
    if (size < 2 || size > 9) std::abort();
    std::string again = grpc::format_timeout(*ns);
    auto back = grpc::parse_timeout(again);
    if (!back || *back < *ns) std::abort();  // never shorter than asked
  }

  (void)config::parse_byte_size(text);
  (void)config::parse_duration_ms(text);
  return 0;
}
