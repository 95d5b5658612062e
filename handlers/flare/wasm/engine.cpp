// Validation, fuel instrumentation (libwabt IR), wasm2c + cc, the module
// cache and loading.
#include "handlers/flare/wasm/engine.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/fiber.hpp"
#include "handlers/flare/wasm/interp_check.hpp"
#include "wabt/binary-reader-ir.h"
#include "wabt/binary-reader.h"
#include "wabt/binary-writer.h"
#include "wabt/ir.h"
#include "wabt/stream.h"
#include "wabt/validator.h"

extern "C" {
typedef void (*ember_wasm_entry)(void*, void*, int, uint32_t, uint64_t*);
[[noreturn]] void ember_wasm_raise(int code);
int ember_wasm_guarded(ember_wasm_entry fn, void* inst, void* env, int what, uint32_t arg,
                       uint64_t* result);
}

namespace ember::flare::wasm {
namespace {

constexpr ImportSig kImports[] = {
    {"req_method", "", 'I'},
    {"req_url", "", 'I'},
    {"req_header_get", "ii", 'I'},
    {"req_body", "", 'I'},
    {"resp_set_status", "i", 'v'},
    {"resp_header_set", "iiii", 'v'},
    {"resp_body_set", "ii", 'v'},
    {"beam_fetch", "iiii", 'I'},
    {"log_info", "ii", 'v'},
    {"log_warn", "ii", 'v'},
    {"log_error", "ii", 'v'},
    {"crypto_hash", "ii", 'I'},
    {"crypto_hmac", "ii", 'I'},
    {"crypto_sign_jwt", "ii", 'I'},
    {"crypto_encrypt_aes", "ii", 'I'},
    {"crypto_decrypt_aes", "ii", 'I'},
    {"crypto_random_bytes", "i", 'I'},
    {"encoding_base64_encode", "ii", 'I'},
    {"encoding_base64_decode", "ii", 'I'},
    {"encoding_hex_encode", "ii", 'I'},
    {"encoding_hex_decode", "ii", 'I'},
    {"encoding_url_encode", "ii", 'I'},
    {"encoding_url_decode", "ii", 'I'},
    {"id_uuid", "ii", 'I'},
    {"id_ulid", "", 'I'},
    {"id_nanoid", "i", 'I'},
    {"id_ksuid", "", 'I'},
    {"id_snowflake", "", 'I'},
    {"snowflake_id", "", 'I'},
    {"timestamp", "ii", 'I'},
    {"spark_get", "ii", 'I'},
    {"spark_set", "iiiii", 'i'},
    {"spark_delete", "ii", 'v'},
    {"spark_list", "", 'I'},
    {"spark_pull", "iiii", 'i'},
    {"plasma_get", "ii", 'I'},
    {"plasma_set", "iiii", 'i'},
    {"plasma_delete", "ii", 'i'},
    {"plasma_increment", "iiI", 'I'},
    {"plasma_decrement", "iiI", 'I'},
    {"plasma_list", "", 'I'},
    {"secret_get", "ii", 'I'},
    {"ws_send", "ii", 'i'},
    {"ws_close_conn", "i", 'v'},
    {"ws_conn_id", "", 'I'},
    {"ws_event_type", "", 'I'},
    {"ws_event_data", "", 'I'},
    {"ws_close_code", "", 'i'},
};
static_assert(std::size(kImports) == 48, "flaron/v1 has 48 imports");

constexpr const char* kFuelExport = "__ember_fuel";
constexpr const char* kEngineSalt = "ember-wasm-engine-2;wasm2c-1.0.32;";

char letter(wabt::Type t) {
  if (t == wabt::Type::I32) return 'i';
  if (t == wabt::Type::I64) return 'I';
  if (t == wabt::Type::F32) return 'f';
  if (t == wabt::Type::F64) return 'F';
  return '?';
}

std::string wasm_type(char c) {
  switch (c) {
    case 'i':
      return "i32";
    case 'I':
      return "i64";
    case 'f':
      return "f32";
    case 'F':
      return "f64";
    default:
      return "?";
  }
}

std::string describe_sig(std::string_view params, std::string_view results) {
  std::string s = "(";
  for (size_t i = 0; i < params.size(); ++i) {
    if (i) s += ' ';
    s += wasm_type(params[i]);
  }
  s += ") -> ";
  if (results.empty()) return s + "()";
  for (size_t i = 0; i < results.size(); ++i) {
    if (i) s += ' ';
    s += wasm_type(results[i]);
  }
  return s;
}

void sig_letters(const wabt::FuncSignature& sig, std::string* params, std::string* results) {
  for (wabt::Type t : sig.param_types)
    params->push_back(letter(t));
  for (wabt::Type t : sig.result_types)
    results->push_back(letter(t));
}

wabt::Features features() {
  wabt::Features f;  // 1.0.32 defaults: MVP + mutable globals, sign-ext,
                     // sat float-to-int, multi-value, bulk memory, reference types
  f.disable_exceptions();
  f.disable_threads();
  f.disable_simd();
  f.disable_memory64();
  f.disable_multi_memory();
  f.disable_tail_call();
  return f;
}

std::string error_text(const wabt::Errors& errors) {
  std::string s;
  for (const wabt::Error& e : errors) {
    if (!s.empty()) s += "; ";
    s += e.message;
  }
  return s.empty() ? "malformed module" : s;
}

Result<void> read_module(std::span<const uint8_t> wasm, std::string_view origin,
                         wabt::Module* module) {
  wabt::Errors errors;
  wabt::ReadBinaryOptions opts(features(), nullptr, false, true, false);
  // The interpreter's reader validates as it reads (types, nesting); the IR
  // reader asserts on some malformed code (an unbalanced `end`), so it only
  // sees modules the first one accepted.
  if (std::string why;
      !detail::interp_accepts(wasm.data(), wasm.size(), features(), std::string(origin), &why))
    return Error(std::string(origin) + ": not a valid WebAssembly module: " + why);
  if (wabt::Failed(wabt::ReadBinaryIr(std::string(origin).c_str(), wasm.data(), wasm.size(), opts,
                                      &errors, module)))
    return Error(std::string(origin) + ": not a valid WebAssembly module: " + error_text(errors));
  wabt::ValidateOptions vopts(features());
  if (wabt::Failed(wabt::ValidateModule(module, &errors, vopts)))
    return Error(std::string(origin) + ": invalid WebAssembly: " + error_text(errors));
  return {};
}

// Per function, as engines commonly cap them: at most 800 KiB of frame (v128),
// within the 1 MiB kept below a guest's stack floor.
constexpr size_t kMaxFunctionLocals = 50'000;

Result<ModuleInfo> check(const wabt::Module& m, std::string_view origin, uint32_t max_pages) {
  std::string o(origin);
  ModuleInfo info;
  for (const wabt::Import* imp : m.imports) {
    std::string what = "'" + imp->module_name + "'.'" + imp->field_name + "'";
    if (imp->module_name != "flaron/v1")
      return Error(o + ": imports " + what +
                   ": a flare may import only from module 'flaron/v1' (no WASI, no 'env')");
    if (imp->kind() != wabt::ExternalKind::Func)
      return Error(o + ": imports " + what +
                   " as a non-function: flaron/v1 provides functions only");
    int idx = import_index(imp->field_name);
    if (idx < 0)
      return Error(o + ": imports " + what +
                   ", which flaron/v1 does not have (see the 48 names of the flaron/v1 spec)");
    auto* fi = static_cast<const wabt::FuncImport*>(imp);
    std::string p, r;
    sig_letters(fi->func.decl.sig, &p, &r);
    const ImportSig& want = kImports[idx];
    std::string wr = want.result == 'v' ? "" : std::string(1, want.result);
    if (p != want.params || r != wr)
      return Error(o + ": imports " + what + " with signature " + describe_sig(p, r) +
                   ", but flaron/v1 defines it as " + describe_sig(want.params, wr));
    info.imports.push_back(imp->field_name);
  }
  // One frame must fit in the stack kept below the floor (kHostStackReserve):
  // the floor check runs once the frame is already allocated.
  for (const wabt::Func* f : m.funcs) {
    size_t locals = f->GetNumParamsAndLocals();
    if (locals > kMaxFunctionLocals)
      return Error(o + ": function " + (f->name.empty() ? "(unnamed)" : f->name) + " has " +
                   std::to_string(locals) + " parameters and locals; at most " +
                   std::to_string(kMaxFunctionLocals) + " are allowed");
  }
  if (m.memories.size() != 1)
    return Error(o + ": declares " + std::to_string(m.memories.size()) +
                 " memories; a flare needs exactly one, exported as 'memory'");
  const wabt::Memory* mem = m.memories[0];
  if (mem->page_limits.is_64 || mem->page_limits.is_shared)
    return Error(o + ": its memory is 64-bit or shared; flaron/v1 wants one plain 32-bit memory");
  if (mem->page_limits.initial > max_pages)
    return Error(o + ": its memory starts at " + std::to_string(mem->page_limits.initial) +
                 " pages, above the cap of " + std::to_string(max_pages) +
                 " pages (raise wasm.max_memory in the config or shrink the module)");
  info.initial_pages = static_cast<uint32_t>(mem->page_limits.initial);

  auto func_export = [&](const char* name, const char* params,
                         const char* results) -> Result<bool> {
    const wabt::Export* e = m.GetExport(name);
    if (!e) return false;
    if (e->kind != wabt::ExternalKind::Func)
      return Error(o + ": exports '" + name + "' as a non-function; it must be a function " +
                   describe_sig(params, results));
    const wabt::Func* f = m.GetFunc(e->var);
    std::string p, r;
    sig_letters(f->decl.sig, &p, &r);
    if (p != params || r != results)
      return Error(o + ": exports '" + name + "' with signature " + describe_sig(p, r) +
                   ", but flaron/v1 requires " + describe_sig(params, results));
    return true;
  };
  const wabt::Export* memory = m.GetExport("memory");
  if (!memory || memory->kind != wabt::ExternalKind::Memory)
    return Error(o + ": does not export its memory as 'memory' (required by flaron/v1)");
  auto alloc = func_export("alloc", "i", "i");
  if (!alloc) return alloc.error();
  if (!*alloc) return Error(o + ": does not export 'alloc' (i32) -> i32 (required by flaron/v1)");
  auto hr = func_export("handle_request", "", "I");
  if (!hr) return hr.error();
  info.handle_request = *hr;
  int ws = 0;
  for (const char* n : {"ws_open", "ws_message", "ws_close"}) {
    auto w = func_export(n, "", "i");
    if (!w) return w.error();
    ws += *w ? 1 : 0;
  }
  if (ws != 0 && ws != 3)
    return Error(o + ": exports only some of ws_open, ws_message and ws_close; a WebSocket " +
                 "flare exports all three () -> i32");
  info.websocket = ws == 3;
  if (!info.handle_request && !info.websocket)
    return Error(o + ": exports neither 'handle_request' () -> i64 nor ws_open/ws_message/" +
                 "ws_close: nothing to run");
  if (m.GetExport(kFuelExport))
    return Error(o + ": exports '" + kFuelExport + "', a name Ember reserves for fuel metering");
  return info;
}

// ---- fuel ----------------------------------------------------------------

void charge(wabt::ExprList* list, wabt::Index fuel) {
  int64_t cost = 1;
  for (const wabt::Expr& e : *list) {
    (void)e;
    ++cost;
  }
  // fuel -= cost; if (fuel < 0) unreachable
  wabt::ExprList code;
  code.push_back(std::make_unique<wabt::GlobalGetExpr>(wabt::Var(fuel, wabt::Location())));
  code.push_back(std::make_unique<wabt::ConstExpr>(wabt::Const::I64(static_cast<uint64_t>(cost))));
  code.push_back(std::make_unique<wabt::BinaryExpr>(wabt::Opcode::I64Sub));
  code.push_back(std::make_unique<wabt::GlobalSetExpr>(wabt::Var(fuel, wabt::Location())));
  code.push_back(std::make_unique<wabt::GlobalGetExpr>(wabt::Var(fuel, wabt::Location())));
  code.push_back(std::make_unique<wabt::ConstExpr>(wabt::Const::I64(0)));
  code.push_back(std::make_unique<wabt::CompareExpr>(wabt::Opcode::I64LtS));
  auto trap = std::make_unique<wabt::IfExpr>();
  trap->true_.exprs.push_back(std::make_unique<wabt::UnreachableExpr>());
  code.push_back(std::move(trap));
  list->splice(list->begin(), code);
}

void instrument_list(wabt::ExprList* list, wabt::Index fuel) {
  for (wabt::Expr& e : *list) {
    switch (e.type()) {
      case wabt::ExprType::Block:
        instrument_list(&static_cast<wabt::BlockExpr&>(e).block.exprs, fuel);
        break;
      case wabt::ExprType::Loop: {
        auto& block = static_cast<wabt::LoopExpr&>(e).block.exprs;
        instrument_list(&block, fuel);
        charge(&block, fuel);
        break;
      }
      case wabt::ExprType::If: {
        auto& i = static_cast<wabt::IfExpr&>(e);
        instrument_list(&i.true_.exprs, fuel);
        instrument_list(&i.false_, fuel);
        break;
      }
      default:
        break;
    }
  }
}

Result<std::vector<uint8_t>> instrument(wabt::Module* m, std::string_view origin) {
  wabt::Index fuel = static_cast<wabt::Index>(m->globals.size());
  auto g = std::make_unique<wabt::GlobalModuleField>();
  g->global.type = wabt::Type::I64;
  g->global.mutable_ = true;
  g->global.init_expr.push_back(std::make_unique<wabt::ConstExpr>(wabt::Const::I64(0)));
  m->AppendField(std::move(g));
  auto e = std::make_unique<wabt::ExportModuleField>();
  e->export_.name = kFuelExport;
  e->export_.kind = wabt::ExternalKind::Global;
  e->export_.var = wabt::Var(fuel, wabt::Location());
  m->AppendField(std::move(e));
  for (size_t i = m->num_func_imports; i < m->funcs.size(); ++i) {
    wabt::Func* f = m->funcs[i];
    instrument_list(&f->exprs, fuel);
    charge(&f->exprs, fuel);
  }
  wabt::MemoryStream stream;
  wabt::WriteBinaryOptions wo(features(), true, false, false);
  if (wabt::Failed(wabt::WriteBinaryModule(&stream, m, wo)))
    return Error(std::string(origin) + ": could not write the fuel-metered module (libwabt)");
  std::vector<uint8_t> out = stream.output_buffer().data;
  return out;
}

// ---- tools ----------------------------------------------------------------

Result<void> run(const std::vector<std::string>& argv, const std::string& log_path,
                 const std::string& what) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return Error(what + ": cannot run '" + argv[0] + "': " + std::strerror(rc) +
                 " (install Debian's wabt and gcc: scripts/setup.sh)");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::ifstream in(log_path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string log = ss.str();
  if (log.size() > 2000) log.resize(2000);
  return Error(what + ": '" + argv[0] + "' failed: " + log);
}

Result<void> write_file(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) return Error("cannot write " + path + ": " + std::strerror(errno));
  return {};
}

Result<std::string> cache_dir(const EngineOptions& o) {
  std::string dir = o.cache_dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/ember-wasm-" + std::to_string(getuid());
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error("cannot create the Wasm cache directory " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || st.st_uid != getuid() || (st.st_mode & 022) != 0)
    return Error("the Wasm cache directory " + dir +
                 " must be owned by this user and not writable by others (it holds code that "
                 "gets loaded)");
  return dir;
}

std::string shim_source() {
  std::string s = detail::kShimSource;
  int idx = 0;
  for (const ImportSig& sig : kImports) {
    auto ctype = [](char c) { return c == 'I' ? "u64" : c == 'i' ? "u32" : "void"; };
    s += ctype(sig.result);
    s += " Z_flaronZ2Fv1Z_";
    s += sig.name;
    s += "(struct Z_flaronZ2Fv1_instance_t* env";
    std::string args;
    size_t n = std::strlen(sig.params);
    for (size_t i = 0; i < n; ++i) {
      s += ", ";
      s += ctype(sig.params[i]);
      s += " a" + std::to_string(i);
      args += (i ? ", " : "") + std::string("(uint64_t)a") + std::to_string(i);
    }
    s += ") {\n  uint64_t args[6] = {" + (args.empty() ? std::string("0") : args) +
         "};\n  uint64_t r = 0;\n  int t = H->call(env, " + std::to_string(idx++) +
         ", args, &r);\n  if (t) H->raise(t);\n";
    if (sig.result == 'I') s += "  return (u64)r;\n";
    if (sig.result == 'i') s += "  return (u32)r;\n";
    s += "}\n";
  }
  return s;
}

struct HostTable {
  void (*raise)(int);
  HostCall call;
  uint32_t max_pages;
  uint32_t max_table;
};

std::mutex& load_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

std::span<const ImportSig> imports() {
  return kImports;
}

int import_index(std::string_view name) {
  for (size_t i = 0; i < std::size(kImports); ++i)
    if (name == kImports[i].name) return static_cast<int>(i);
  return -1;
}

const char* describe_trap(int code) {
  switch (code) {
    case trap_oob:
      return "out-of-bounds memory or table access";
    case trap_int_overflow:
      return "integer overflow";
    case trap_div_by_zero:
      return "integer division by zero";
    case trap_invalid_conversion:
      return "invalid float-to-integer conversion";
    case trap_unreachable:
      return "'unreachable' executed";
    case trap_call_indirect:
      return "bad indirect call";
    case trap_uncaught_exception:
      return "uncaught exception";
    case trap_exhaustion:
      return "call stack exhausted (recursion too deep, or frames too large for the stack)";
    case trap_host_bounds:
      return "a host call got a pointer/length outside the guest's memory";
    case trap_bad_alloc:
      return "the guest's alloc returned a range outside its memory";
    case trap_host_error:
      return "a host call failed";
    case trap_timeout:
      return "wall-clock budget exceeded";
    case trap_fuel:
      return "fuel budget exhausted (runaway loop?)";
    default:
      return "trap";
  }
}

std::string sha256_hex(std::span<const uint8_t> data) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static const char hex[] = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s.push_back(hex[md[i] >> 4]);
    s.push_back(hex[md[i] & 15]);
  }
  return s;
}

Result<ModuleInfo> validate(std::span<const uint8_t> wasm, std::string_view origin,
                            uint32_t max_pages) {
  wabt::Module m;
  if (auto r = read_module(wasm, origin, &m); !r) return r.error();
  return check(m, origin, max_pages);
}

Module::Module(ModuleInfo info, std::string hash, EngineOptions options)
    : info_(std::move(info)), hash_(std::move(hash)), options_(std::move(options)) {}

Module::~Module() {
  // The shared object stays mapped: instances may be destroyed late and
  // dlclose of code that ran is not worth the risk.
}

Result<std::shared_ptr<Module>> compile(std::span<const uint8_t> wasm, std::string_view origin,
                                        const EngineOptions& options, HostCall host) {
  std::string o(origin);
  wabt::Module m;
  if (auto r = read_module(wasm, origin, &m); !r) return r.error();
  auto info = check(m, origin, options.max_pages);
  if (!info) return info.error();

  std::string key = kEngineSalt;
  key += "depth=" + std::to_string(options.max_call_depth) + ";";
  key.append(reinterpret_cast<const char*>(wasm.data()), wasm.size());
  std::string hash = sha256_hex({reinterpret_cast<const uint8_t*>(key.data()), key.size()});
  auto dir = cache_dir(options);
  if (!dir) return dir.error();
  std::string so = *dir + "/" + hash + ".so";
  auto module = std::make_shared<Module>(std::move(*info), hash, options);

  std::lock_guard lock(load_mutex());
  struct stat st {};
  module->from_cache_ = ::stat(so.c_str(), &st) == 0;
  if (!module->from_cache_) {
    auto metered = instrument(&m, origin);
    if (!metered) return metered.error();
    std::string work = *dir + "/build-" + hash + "-" + std::to_string(getpid());
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
    std::filesystem::create_directories(work, ec);
    if (ec) return Error("cannot create " + work + ": " + ec.message());
    auto cleanup = [&] { std::filesystem::remove_all(work, ec); };
    std::string_view bytes(reinterpret_cast<const char*>(metered->data()), metered->size());
    Result<void> r = write_file(work + "/mod.wasm", bytes);
    if (r) r = write_file(work + "/wasm-rt.h", detail::kRuntimeHeader);
    if (r) r = write_file(work + "/shim.c", shim_source());
    if (r)
      r = run({options.wasm2c, work + "/mod.wasm", "-n", "mod", "-o", work + "/mod.c"},
              work + "/log", o + ": wasm2c");
    if (r) {
      std::vector<std::string> cc = {options.cc,
                                     "-O2",
                                     "-shared",
                                     "-fPIC",
                                     "-std=gnu11",
                                     "-fvisibility=hidden",
                                     "-fno-strict-aliasing",
                                     "-w",
                                     "-I" + work,
                                     "-DEMBER_MAX_DEPTH=" + std::to_string(options.max_call_depth)};
      if (!module->info().imports.empty()) cc.push_back("-DEMBER_HAS_IMPORTS");
      if (module->info().handle_request) cc.push_back("-DEMBER_HAS_HANDLE_REQUEST");
      if (module->info().websocket) cc.push_back("-DEMBER_HAS_WS");
      for (const char* f : {"/mod.c", "/shim.c"})
        cc.push_back(work + f);
      cc.push_back("-o");
      cc.push_back(work + "/mod.so");
      r = run(cc, work + "/log", o + ": compiling the translated module");
    }
    if (r && ::rename((work + "/mod.so").c_str(), so.c_str()) != 0)
      r = Error("cannot move the compiled module to " + so + ": " + std::strerror(errno));
    cleanup();
    if (!r) return r.error();
  }

  void* h = ::dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) return Error(o + ": cannot load " + so + ": " + ::dlerror());
  module->handle_ = h;
  auto sym = [&](const char* name) { return ::dlsym(h, name); };
  auto version = reinterpret_cast<int (*)()>(sym("ember_abi_version"));
  auto load = reinterpret_cast<void (*)(const HostTable*)>(sym("ember_load"));
  module->new_instance = reinterpret_cast<void* (*)()>(sym("ember_new"));
  module->call = reinterpret_cast<Module::CallFn>(sym("ember_call"));
  module->free_instance = reinterpret_cast<void (*)(void*)>(sym("ember_free"));
  module->fuel = reinterpret_cast<int64_t (*)(void*, int, int64_t)>(sym("ember_fuel"));
  module->memory = reinterpret_cast<void (*)(void*, uint8_t**, uint32_t*)>(sym("ember_memory"));
  if (!version || version() != 2 || !load || !module->new_instance || !module->call ||
      !module->free_instance || !module->fuel || !module->memory)
    return Error(o + ": " + so + " is not an Ember module of this version; delete it");
  // One table per loaded object, made when it is first loaded; it lives as
  // long as the process. dlopen of an object already loaded (the same module
  // deployed again) returns the same handle, already initialised; its
  // max_pages is the first load's (one server per process in practice).
  static std::map<void*, HostTable*> tables;  // under load_mutex()
  if (!tables.count(h)) {
    auto* table = new HostTable{ember_wasm_raise, host, options.max_pages, 100'000};
    load(table);
    tables.emplace(h, table);
  }
  return module;
}

namespace {

// Stack kept below the guest's floor: the host functions its imports run,
// the trap path, and the one frame allocated before its check runs.
constexpr uintptr_t kHostStackReserve = 1u << 20;

// KiB of stack guest code may use below this point: what is left of the
// thread's or fiber's stack, less the host's reserve.
uint32_t guest_stack_budget_kib() noexcept {
  uintptr_t here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  uintptr_t low = Fiber::stack_low();
  if (low == 0) return 1024;  // bounds unknown: 1 MiB, well within any thread's
  if (here <= low + kHostStackReserve) return 0;
  return static_cast<uint32_t>(
      std::min<uintptr_t>((here - low - kHostStackReserve) >> 10, UINT32_MAX));
}

}  // namespace

int guarded_call(const Module& m, void* inst, void* env, int what, uint32_t arg, uint64_t* result) {
  // Outermost entries take the stack budget as their argument; alloc runs
  // nested in an import and keeps its caller's floor.
  if (what != Module::alloc) arg = guest_stack_budget_kib();
  return ember_wasm_guarded(m.call, inst, env, what, arg, result);
}

}  // namespace ember::flare::wasm
