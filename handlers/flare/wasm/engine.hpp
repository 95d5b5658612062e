// The WebAssembly engine behind Wasm flares: flaron/v1 modules are validated,
// rewritten to charge fuel, translated by wasm2c and compiled by the C
// compiler into a shared object when a flare is deployed, cached by the
// module's SHA-256, and loaded with dlopen(RTLD_LOCAL).
//
// Safety model (bounds-check mode, no guard pages, no signal handlers):
//  * every guest memory access is range-checked by the generated code, and
//    every (ptr, len) a host import receives is checked with 64-bit math;
//  * guest calls nest at most `max_call_depth` deep (counted per instance);
//  * memory grows at most to `max_pages`;
//  * fuel is charged at every function entry and loop header, so a runaway
//    loop traps once the per-invocation budget is spent; a wall-clock
//    deadline is checked whenever the guest calls the host;
//  * a trap is a longjmp to the innermost guard (guard.c), never across C++
//    frames; the instance that trapped is thrown away.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/error.hpp"

namespace ember::flare::wasm {

struct EngineOptions {
  std::string cache_dir;                 // empty: $TMPDIR/ember-wasm-<uid>
  uint32_t max_pages = 256;              // memory cap (16 MiB)
  uint32_t max_call_depth = 2000;        // guest call nesting
  uint64_t fuel = 200'000'000;           // per invocation (~0.1-0.5 s of guest code)
  uint64_t timeout_ms = 1'000;           // wall clock per invocation
  uint32_t idle_instances = 4;           // kept per flare and loop
  uint32_t idle_waiting_instances = 64;  // the same for flares that wait
  std::string wasm2c = "wasm2c";
  std::string cc = "cc";
};

// The 48 imports of flaron/v1 (spec §6.12), in a fixed order: the index is
// what the shim passes to the host's dispatcher.
struct ImportSig {
  const char* name;
  const char* params;  // one letter per parameter: i = i32, I = i64
  char result;         // 'v' none, 'i' i32, 'I' i64
};
std::span<const ImportSig> imports();
int import_index(std::string_view name);  // -1 when unknown

// What deploy-time validation found.
struct ModuleInfo {
  std::vector<std::string> imports;  // names, in the module's order
  bool handle_request = false;
  bool websocket = false;  // ws_open, ws_message and ws_close
  uint32_t initial_pages = 0;
};

// Validates a module against flaron/v1 (imports ⊆ the 48 with exact
// signatures, memory/alloc/handle_request or ws_* exports with their types,
// one memory within `max_pages`). The error names the module (`origin`) and
// the offending import or export.
Result<ModuleInfo> validate(std::span<const uint8_t> wasm, std::string_view origin,
                            uint32_t max_pages);

// Lowercase hex SHA-256.
std::string sha256_hex(std::span<const uint8_t> data);

// Trap codes: wasm2c's (1..8) and the host's own.
enum Trap : int {
  trap_oob = 1,
  trap_int_overflow = 2,
  trap_div_by_zero = 3,
  trap_invalid_conversion = 4,
  trap_unreachable = 5,
  trap_call_indirect = 6,
  trap_uncaught_exception = 7,
  trap_exhaustion = 8,
  trap_host_bounds = 100,  // an import got a (ptr, len) outside memory
  trap_bad_alloc = 101,    // alloc returned a range outside memory
  trap_host_error = 102,   // a host import failed (see the invocation's error)
  trap_timeout = 103,      // wall-clock deadline passed
  trap_fuel = 104,         // fuel exhausted (reported, never raised)
};
const char* describe_trap(int code);

// The host's side of the import dispatcher: `env` is what the instance was
// created with. Returns 0, or a trap code to raise in the guest.
using HostCall = int (*)(void* env, int import, const uint64_t* args, uint64_t* result);

// A compiled, loaded module (one per distinct module; shared by all loops).
class Module {
 public:
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const ModuleInfo& info() const noexcept { return info_; }
  const std::string& hash() const noexcept { return hash_; }
  bool from_cache() const noexcept { return from_cache_; }
  const EngineOptions& options() const noexcept { return options_; }

  // Entry points of the shim (see runtime_c.cpp).
  enum Entry : int {
    init = 0,
    handle_request = 1,
    alloc = 2,
    ws_open = 3,
    ws_message = 4,
    ws_close = 5
  };
  using CallFn = void (*)(void* inst, void* env, int what, uint32_t arg, uint64_t* result);
  void* (*new_instance)(void) = nullptr;
  CallFn call = nullptr;
  void (*free_instance)(void*) = nullptr;
  int64_t (*fuel)(void* inst, int set, int64_t value) = nullptr;
  void (*memory)(void* inst, uint8_t** data, uint32_t* size) = nullptr;

  struct Private;
  Module(ModuleInfo info, std::string hash, EngineOptions options);

 private:
  friend Result<std::shared_ptr<Module>> compile(std::span<const uint8_t>, std::string_view,
                                                 const EngineOptions&, HostCall);
  ModuleInfo info_;
  std::string hash_;
  EngineOptions options_;
  void* handle_ = nullptr;
  bool from_cache_ = false;
};

// Validates, instruments, translates, compiles (or finds in the cache) and
// loads a module. Thread-safe (modules are loaded one at a time).
Result<std::shared_ptr<Module>> compile(std::span<const uint8_t> wasm, std::string_view origin,
                                        const EngineOptions& options, HostCall host);

// Runs `what` on an instance inside a guard: 0, or the trap code. Nests (a
// host import may call the guest's alloc through it).
int guarded_call(const Module& m, void* inst, void* env, int what, uint32_t arg, uint64_t* result);

namespace detail {
extern const char kRuntimeHeader[];
extern const char kShimSource[];
}  // namespace detail

}  // namespace ember::flare::wasm
