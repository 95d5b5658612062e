// libFuzzer target: the queue face's text parsers. The config documents and
// endpoint strings must never crash and must keep their invariants; the u64
// body parser must give the same answer whole and fed in random pieces.
// libfuzzer-options: -max_len=8192 -timeout=10 -rss_limit_mb=2048
//
// Input: byte 0 seeds the piece sizes, the rest is the text.
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>

#include "handlers/queue/config.hpp"
#include "handlers/queue/sigv4.hpp"
#include "handlers/queue/u64.hpp"
#include "protocols/http1/http1.hpp"

using namespace ember::queue;

namespace {

void check_u64(std::string_view text, uint8_t seed) {
  U64Result whole = parse_u64(text);
  U64Reader reader;
  std::minstd_rand rng(seed + 1u);
  for (size_t off = 0; off < text.size();) {
    size_t n = std::min<size_t>(text.size() - off, 1 + rng() % 16);
    reader.feed(text.substr(off, n));
    off += n;
  }
  U64Result pieces = reader.finish();
  if (whole.error != pieces.error || whole.value != pieces.value || whole.offset != pieces.offset ||
      whole.byte != pieces.byte)
    std::abort();
  if (whole.ok() && parse_u64(std::to_string(whole.value)).value != whole.value) std::abort();
}

void check_service(std::string_view text) {
  auto cfg = parse_service_config(text, "fuzz");
  if (!cfg) {
    if (cfg.error().message.rfind("fuzz: ", 0) != 0) std::abort();
    return;
  }
  for (const Route& r : cfg->out()) {
    const auto* qs = cfg->queues_for(r.when);
    if (!qs || *qs != r.queues) std::abort();
  }
  auto all = cfg->outbound_queues();
  std::unordered_set<std::string> seen(all.begin(), all.end());
  if (seen.size() != all.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  check_u64(text, data[0]);
  check_service(text);
  (void)parse_rabbitmq_config(text, "fuzz");
  (void)parse_db_config(text, "fuzz");
  (void)parse_object_storage_config(text, "fuzz");
  if (auto b = parse_bucket_name(text, "fuzz"); b && b->empty()) std::abort();
  if (auto ep = parse_endpoint(text)) {
    // What the parser accepts must come back out as a URL it accepts again.
    auto again = parse_endpoint(ep->url(""));
    if (!again || again->host != ep->host || again->port != ep->port || again->tls != ep->tls)
      std::abort();
  }
  std::string enc = ember::http1::percent_encode(text, true);
  for (char c : enc)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      std::abort();
  return 0;
}
