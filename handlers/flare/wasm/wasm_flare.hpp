// Wasm flares: a flaron/v1 module served like any native flare. Routes with
// `wasm: FILE` in `ember serve`'s config get one; it runs on the same code
// path as native flares (LoopEdge::invoke, the per-invocation arena, the
// Request/Response API), with a per-loop pool of reused instances.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

// What the Wasm flares of one server share: the engine's options, the
// config's secrets and the stores (spark and plasma: one LMDB environment
// per process, opened with the first flare). Thread-safe.
class WasmHost {
 public:
  explicit WasmHost(const ServerConfig& config);
  const EngineOptions& options() const noexcept { return options_; }
  // `secrets:` defines `name` for `host`'s site or for "*".
  bool secret_defined(const std::string& host, const std::string& name) const;
  // What a route on `host` grants its flare (capabilities: writes_spark_kv,
  // writes_plasma_kv, beam). Opens the stores on first use.
  Result<FlarePolicy> policy(const std::string& host,
                             const std::vector<std::string>& allowed_secrets,
                             const std::vector<std::string>& capabilities);

 private:
  EngineOptions options_;
  SparkSettings spark_settings_;
  PlasmaSettings plasma_settings_;
  std::map<std::string, std::map<std::string, std::string>> secrets_;
  std::string origin_;
  std::mutex mutex_;
  std::shared_ptr<SparkStore> spark_;
  std::shared_ptr<PlasmaStore> plasma_;
};

// For every route with `wasm: FILE`: loads the module (once per file) and
// registers a flare for it: "wasm:FILE", or "wasm:FILE@HOST/PATH" when the
// route grants secrets. Done at deploy time, so a bad module fails start-up
// with a message naming the import or export.
Result<void> add_wasm_flares(ServerConfig& config, Registry& registry, WasmHost& host);

}  // namespace ember::flare::wasm
