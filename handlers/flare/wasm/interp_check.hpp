// A first, validating read of a module with wabt's interpreter reader (see
// interp_check.cpp). C++17-clean: interp_check.cpp compiles as C++17.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace wabt {
class Features;
}

namespace ember::flare::wasm::detail {

// True when wabt's interpreter reader accepts the module (it type-checks
// and checks nesting as it reads); otherwise the reasons in *errors.
bool interp_accepts(const uint8_t* data, size_t size, const wabt::Features& features,
                    const std::string& origin, std::string* errors);

}  // namespace ember::flare::wasm::detail
