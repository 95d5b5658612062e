#include "handlers/flare/wasm/wasm_flare.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <stdexcept>

#include "ember/config.hpp"
#include "ember/log.hpp"
#include "handlers/flare/wasm/host.hpp"

namespace ember::flare::wasm {
namespace {

constexpr size_t kMaxLoops = 1025;  // ServerConfig.loops is at most 1024

class WasmFlare final : public Flare {
 public:
  WasmFlare(std::string name, std::shared_ptr<Module> module, FlarePolicy policy)
      : name_(std::move(name)),
        module_(std::move(module)),
        policy_(std::move(policy)),
        pools_(kMaxLoops) {
    const auto& imports = module_->info().imports;
    may_wait_ =
        policy_.beam && std::find(imports.begin(), imports.end(), "beam_fetch") != imports.end();
    idle_limit_ =
        may_wait_ ? module_->options().idle_waiting_instances : module_->options().idle_instances;
  }

  Action handle_request(Context& ctx) override {
    if (!module_->info().handle_request) {
      ctx.response.set_status(426);
      ctx.response.set_header("upgrade", "websocket");
      ctx.response.set_body(std::string_view("this flare speaks WebSocket\n"));
      return Action::respond;
    }
    uint64_t ret =
        invoke(ctx.loop_index(), Module::handle_request, [&ctx](Env& env) { env.bind(ctx); });
    switch (ret >> 32) {
      case 1:
        return Action::respond;
      case 2:
        return Action::transform;
      case 3:
        return Action::passthrough;
      default:
        throw std::runtime_error("wasm flare '" + name_ + "' returned action " +
                                 std::to_string(ret >> 32) +
                                 " (flaron/v1 knows 1 respond, 2 transform, 3 passthrough)");
    }
  }

  bool accepts_websocket() const noexcept override { return module_->info().websocket; }
  // A module that imports beam_fetch on a route granting `beam` runs on a
  // fiber, so that its fetches wait without holding up the loop.
  bool may_wait() const noexcept override { return may_wait_; }
  void ws_open(WsContext& ws) override { ws_event(ws, Module::ws_open); }
  void ws_message(WsContext& ws) override { ws_event(ws, Module::ws_message); }
  void ws_close(WsContext& ws) override { ws_event(ws, Module::ws_close); }

 private:
  // A non-zero answer is undefined by flaron/v1: like a trap, it closes the
  // connection with 1011 (the WebSocket connection does that for exceptions).
  void ws_event(WsContext& ws, Module::Entry entry) {
    uint64_t ret = invoke(ws.loop_index(), entry, [&ws](Env& env) { env.bind(ws); });
    if (static_cast<uint32_t>(ret) != 0)
      throw std::runtime_error("wasm flare '" + name_ + "' answered " +
                               std::to_string(static_cast<int32_t>(ret)) +
                               " to a WebSocket event (0 expected)");
  }

  // Runs `entry` on an instance of this loop's pool (each loop touches only
  // its own: no locking). A trap throws, and the instance is thrown away.
  template <class Bind>
  uint64_t invoke(unsigned loop_index, Module::Entry entry, Bind bind) {
    auto& pool = pools_[loop_index % kMaxLoops];
    std::unique_ptr<Env> env;
    if (!pool.empty()) {
      env = std::move(pool.back());
      pool.pop_back();
    } else {
      env = std::make_unique<Env>(*module_, name_, policy_);
      if (auto created = env->create(); !created)
        throw std::runtime_error("wasm flare '" + name_ + "': " + created.error().message);
    }
    bind(*env);
    uint64_t ret = 0;
    int trap = guarded_call(*module_, env->instance, env.get(), entry, 0, &ret);
    env->unbind();
    if (trap) {
      if (module_->fuel(env->instance, 0, 0) < 0) trap = trap_fuel;
      std::exception_ptr ex = env->exception;
      std::string detail = env->error;
      env.reset();  // guest state may be half-updated: never reuse it
      EMBER_WARN("ember.flare", "wasm flare trapped; instance discarded", {"flare", name_},
                 {"trap", describe_trap(trap)}, {"detail", detail});
      if (ex && trap == trap_host_error) std::rethrow_exception(ex);
      std::string what = "wasm flare '" + name_ + "' trapped: ";
      what += describe_trap(trap);
      if (!detail.empty()) what.append(": ").append(detail);
      throw std::runtime_error(what);
    }
    bool bad_status = env->bad_status;
    std::string detail = env->error;
    if (pool.size() < idle_limit_) pool.push_back(std::move(env));
    if (bad_status) throw std::runtime_error("wasm flare '" + name_ + "': " + detail);
    return ret;
  }

  std::string name_;
  std::shared_ptr<Module> module_;
  FlarePolicy policy_;
  std::vector<std::vector<std::unique_ptr<Env>>> pools_;
  bool may_wait_ = false;
  size_t idle_limit_ = 4;  // idle instances kept per loop
};

}  // namespace

EngineOptions engine_options(const WasmSettings& s) {
  EngineOptions o;
  o.cache_dir = s.cache_dir;
  o.max_pages = static_cast<uint32_t>(s.max_memory / 65536);
  o.fuel = s.fuel;
  o.timeout_ms = s.timeout_ms;
  o.idle_instances = s.idle_instances;
  o.idle_waiting_instances = s.idle_waiting_instances;
  return o;
}

Result<std::shared_ptr<Module>> load_module(const std::string& path, const EngineOptions& options) {
  auto read = config::read_file(path);
  if (!read) return Error("Wasm module: " + read.error().message);
  const std::string& bytes = *read;
  auto module = compile({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, path,
                        options, host_call);
  if (!module) return module.error();
  EMBER_INFO("ember.flare", "wasm module deployed", {"module", path},
             {"cache_key", (*module)->hash()}, {"cached", (*module)->from_cache()});
  return module;
}

std::shared_ptr<Flare> make_flare(std::string name, std::shared_ptr<Module> module,
                                  FlarePolicy policy) {
  return std::make_shared<WasmFlare>(std::move(name), std::move(module), std::move(policy));
}

// spark.dir, or $HOME/.ember/spark, or $TMPDIR/ember-spark-<uid>.
std::string spark_dir(const SparkSettings& s) {
  if (!s.dir.empty()) return s.dir;
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.ember/spark";
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/ember-spark-" + std::to_string(getuid());
}

// plasma.node_id, or a hash of the host name (FNV-1a; never 0).
uint64_t plasma_node_id(const PlasmaSettings& s) {
  if (s.node_id) return s.node_id;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  uint64_t h = 1469598103934665603ull;
  for (const char* p = host; *p; ++p)
    h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
  return h ? h : 1;
}

WasmHost::WasmHost(const ServerConfig& config)
    : options_(engine_options(config.wasm)),
      spark_settings_(config.spark),
      plasma_settings_(config.plasma),
      secrets_(config.secrets),
      origin_(config.origin) {}

bool WasmHost::secret_defined(const std::string& host, const std::string& name) const {
  for (const std::string& site : {host, std::string("*")}) {
    auto s = secrets_.find(site);
    if (s != secrets_.end() && s->second.count(name)) return true;
  }
  return false;
}

Result<FlarePolicy> WasmHost::policy(const std::string& host,
                                     const std::vector<std::string>& allowed_secrets,
                                     const std::vector<std::string>& capabilities) {
  std::lock_guard lock(mutex_);
  if (!spark_) {
    SparkOptions so;
    so.dir = spark_dir(spark_settings_);
    so.max_size = spark_settings_.max_size;
    so.max_value = spark_settings_.max_value;
    so.max_keys_per_site = spark_settings_.max_keys_per_site;
    auto opened = SparkStore::open(std::move(so));
    if (!opened) return Error(origin_ + ": " + opened.error().message);
    spark_ = std::move(*opened);
    plasma_ = std::make_shared<PlasmaStore>(*spark_, plasma_node_id(plasma_settings_), 512,
                                            plasma_settings_.max_value);
  }
  FlarePolicy policy;
  policy.site = host;
  policy.spark = spark_;
  policy.spark_reads = spark_settings_.reads_per_invocation;
  policy.spark_writes = spark_settings_.writes_per_invocation;
  policy.plasma = plasma_;
  policy.plasma_writes = plasma_settings_.writes_per_invocation;
  for (const std::string& cap : capabilities) {
    if (cap == "writes_spark_kv") policy.writes_spark = true;
    if (cap == "writes_plasma_kv") policy.writes_plasma = true;
    if (cap == "beam") policy.beam = true;
  }
  for (const std::string& name : allowed_secrets) {
    for (const std::string& site : {host, std::string("*")}) {  // the site's own wins
      auto s = secrets_.find(site);
      if (s == secrets_.end()) continue;
      if (auto v = s->second.find(name); v != s->second.end()) {
        policy.secrets.emplace(name, v->second);
        break;
      }
    }
  }
  return policy;
}

Result<void> add_wasm_flares(ServerConfig& config, Registry& registry, WasmHost& host) {
  std::map<std::string, std::shared_ptr<Module>> modules;  // by file: compiled once
  for (RouteConfig& r : config.routes) {
    if (r.wasm.empty()) continue;
    auto policy = host.policy(r.host, r.allowed_secrets, r.capabilities);
    if (!policy) return policy.error();
    auto& module = modules[r.wasm];
    if (!module) {
      auto loaded = load_module(r.wasm, host.options());
      if (!loaded)
        return Error(config.origin + ": route " + r.host + r.path + ": " + loaded.error().message);
      module = std::move(*loaded);
    }
    // Flares share a name (and instance pools) only when they are granted the same.
    std::string name = "wasm:" + r.wasm;
    if (!r.allowed_secrets.empty() || !r.capabilities.empty() || r.host != "*")
      name += "@" + r.host + r.path;
    if (!registry.find(name)) registry.add(name, make_flare(name, module, std::move(*policy)));
    r.flare = name;
  }
  return {};
}

}  // namespace ember::flare::wasm
