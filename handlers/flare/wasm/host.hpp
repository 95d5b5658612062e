// The host side of one Wasm flare instance: the flaron/v1 imports, mapped
// onto the native flare API (Request, Response, the invocation's arena).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "ember/flare.hpp"
#include "handlers/flare/wasm/engine.hpp"
#include "handlers/flare/wasm/plasma.hpp"
#include "handlers/flare/wasm/spark.hpp"

namespace ember::flare::wasm {

// What a route grants its Wasm flare.
struct FlarePolicy {
  std::string site;  // the route's host: the scope of its spark keys and secrets
  // The secrets it may read: its site's and the "*" site's, filtered by the
  // route's allowed_secrets.
  std::map<std::string, std::string, std::less<>> secrets;
  std::shared_ptr<SparkStore> spark;                 // null: spark answers "not available"
  uint32_t spark_reads = 1'000, spark_writes = 100;  // per invocation
  bool writes_spark = false;
  std::shared_ptr<PlasmaStore> plasma;  // null: plasma answers "not available"
  uint32_t plasma_writes = 100;         // per invocation
  bool writes_plasma = false;
  bool beam = false;  // beam_fetch (through the server's `beam:` settings)
};

class Env {
 public:
  Env(const Module& module, std::string_view flare, const FlarePolicy& policy) noexcept
      : module(module), flare(flare), policy(policy) {}
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // Allocates and instantiates the guest (data segments, start function)
  // inside a guard.
  Result<void> create();

  // Binds an HTTP invocation or a WebSocket event; unbind() forgets it.
  void bind(Context& ctx) noexcept;
  void bind(WsContext& ws) noexcept;
  void unbind() noexcept {
    ctx_ = nullptr;
    ws_ = nullptr;
  }

  // The dispatcher behind every import (never throws, never longjmps).
  int dispatch(int import, const uint64_t* args, uint64_t* result) noexcept;

  const Module& module;
  std::string_view flare;
  const FlarePolicy& policy;
  void* instance = nullptr;
  // What went wrong in a host call that raised trap_host_error.
  std::exception_ptr exception;
  std::string error;
  bool bad_status = false;

 private:
  int call(int import, const uint64_t* a, uint64_t* r);
  int keyed_crypto(int import, const std::string& arg, uint64_t* r);
  int beam(const uint64_t* a, uint64_t* r);
  uint32_t spark_set_status(std::string_view key, std::string_view value, int32_t ttl);
  uint32_t plasma_write_status();
  // (ptr, len) as bytes of guest memory; ptr 0 is empty. trap_host_bounds
  // when out of range. The view dies at the next alloc.
  int view(uint64_t ptr, uint64_t len, std::string_view* out);
  int view_string(uint64_t ptr, uint64_t len, std::string* out);
  // Copies `data` into the guest through its alloc: the packed result.
  int give(std::string_view data, uint64_t* result);
  int fail(std::string message);

  void begin() noexcept;  // what every invocation starts with

  Context* ctx_ = nullptr;
  WsContext* ws_ = nullptr;
  std::chrono::steady_clock::time_point deadline_{};
  uint32_t calls_ = 0;
  uint32_t logs_ = 0;
  uint32_t ids_ = 0;
  uint32_t headers_set_ = 0;
  uint32_t spark_reads_ = 0, spark_writes_ = 0, plasma_writes_ = 0;
};

// The HostCall given to compile(): forwards to Env::dispatch.
int host_call(void* env, int import, const uint64_t* args, uint64_t* result);

}  // namespace ember::flare::wasm
