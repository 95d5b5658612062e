// libFuzzer target: deploy-time validation of Wasm flare modules (libwabt's
// binary reader and validator, then Ember's flaron/v1 checks). Any bytes must
// give a module description or an error naming the module, never a crash, and
// an accepted module must keep the promises the engine relies on.
// libfuzzer-options: -max_len=16384 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <span>

#include "handlers/flare/wasm/engine.hpp"

namespace wasm = ember::flare::wasm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint32_t kMaxPages = 16;
  auto info = wasm::validate(std::span<const uint8_t>(data, size), "fuzz.wasm", kMaxPages);
  if (!info) {
    if (info.error().message.rfind("fuzz.wasm: ", 0) != 0) std::abort();
    return 0;
  }
  if (info->initial_pages > kMaxPages) std::abort();
  if (!info->handle_request && !info->websocket) std::abort();
  for (const auto& name : info->imports)
    if (wasm::import_index(name) < 0) std::abort();
  return 0;
}
