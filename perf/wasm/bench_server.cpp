// ember-wasm-bench-server: `ember serve` plus the native twins of the
// benchmark's Wasm flares, so both run in one server, on one loop, through
// one code path (perf/wasm/bench_wasm.py writes the config).
//
//   ember-wasm-bench-server CONFIG.yaml
//
// Native flares: `hello` (the bundled one: 200 "hello") and `fnv` (FNV-1a
// 64 over the request body, 16 hex digits, like flares/fnv.c).
#include <cstdint>
#include <cstdio>

#include "ember/flare_server.hpp"
#include "handlers/flare/wasm/wasm_flare.hpp"

namespace flare = ember::flare;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ember-wasm-bench-server CONFIG.yaml\n");
    return 2;
  }
  flare::Registry flares;
  flare::add_example_flares(flares);
  flares.add("fnv", [](flare::Context& ctx) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint8_t b : ctx.request.body().span()) {
      h ^= b;
      h *= 0x100000001b3ull;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    char out[16];
    for (int i = 15; i >= 0; --i, h >>= 4)
      out[i] = kHex[h & 15];
    ctx.response.set_body(std::string_view(out, 16));  // copied into the arena
    return flare::Action::respond;
  });
  auto config = flare::load_config(argv[1]);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return 2;
  }
  flare::wasm::WasmHost wasm_host(*config);
  if (auto added = flare::wasm::add_wasm_flares(*config, flares, wasm_host); !added) {
    std::fprintf(stderr, "%s\n", added.error().message.c_str());
    return 2;
  }
  flare::Server server(*config, flares);
  if (auto bound = server.bind(); !bound) {
    std::fprintf(stderr, "%s\n", bound.error().message.c_str());
    return 3;
  }
  std::fputs(server.describe().c_str(), stdout);
  std::fflush(stdout);
  return server.run();
}
