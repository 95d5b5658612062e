// wabt's IR reader asserts on some malformed code (an unbalanced `end`, found
// by fuzz_wasm_module) instead of failing, which would take the server down at
// deploy time. Its interpreter reader validates as it reads, so modules go
// through it first. Compiled as C++17: the interpreter's headers use a
// destructor form that C++20 rejects.
#include "handlers/flare/wasm/interp_check.hpp"

#include "wabt/binary-reader.h"
#include "wabt/interp/binary-reader-interp.h"

namespace ember::flare::wasm::detail {

bool interp_accepts(const uint8_t* data, size_t size, const wabt::Features& features,
                    const std::string& origin, std::string* errors) {
  wabt::Errors errs;
  wabt::ReadBinaryOptions opts(features, nullptr, false, true, false);
  wabt::interp::ModuleDesc desc;
  if (wabt::Succeeded(wabt::interp::ReadBinaryInterp(origin, data, size, opts, &errs, &desc)))
    return true;
  errors->clear();
  for (const wabt::Error& e : errs) {
    if (!errors->empty()) errors->append("; ");
    errors->append(e.message);
  }
  if (errors->empty()) *errors = "malformed module";
  return false;
}

}  // namespace ember::flare::wasm::detail
