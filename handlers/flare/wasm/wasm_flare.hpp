// Wasm flares: a flaron/v1 module served like any native flare. Routes with
// `wasm: FILE` in `ember serve`'s config get one; it runs on the same code
// path as native flares (LoopEdge::invoke, the per-invocation arena, the
// Request/Response API), with a per-loop pool of reused instances.
#pragma once

#include <memory>
#include <string>

#include "ember/error.hpp"
#include "ember/flare.hpp"
#include "ember/flare_server.hpp"
#include "handlers/flare/wasm/engine.hpp"
#include "handlers/flare/wasm/host.hpp"

namespace ember::flare::wasm {

EngineOptions engine_options(const WasmSettings& settings);

// Reads, validates and compiles (or loads from the cache) one module file.
Result<std::shared_ptr<Module>> load_module(const std::string& path, const EngineOptions& options);

// A flare running `module` with what its route grants.
std::shared_ptr<Flare> make_flare(std::string name, std::shared_ptr<Module> module,
                                  FlarePolicy policy);

// For every route with `wasm: FILE`: loads the module (once per file) and
// registers a flare for it: "wasm:FILE", or "wasm:FILE@HOST/PATH" when the
// route grants secrets. Done at deploy time, so a bad module fails start-up
// with a message naming the import or export.
Result<void> add_wasm_flares(ServerConfig& config, Registry& registry);

}  // namespace ember::flare::wasm
