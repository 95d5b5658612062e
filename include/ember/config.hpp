// Small parsers for configuration values (environment variables, CLI flags),
// and reading the files they name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ember/error.hpp"

namespace ember::config {

// "65536", "64k", "64KiB", "16m", "1g": binary multiples (k = 1024).
std::optional<uint64_t> parse_byte_size(std::string_view text) noexcept;
// "250", "250ms", "30s", "2m": milliseconds when no unit is given.
std::optional<uint64_t> parse_duration_ms(std::string_view text) noexcept;
// The variable's value, or nullopt when unset or empty.
std::optional<std::string> env(const char* name);
// The whole file, bytes as they are; the error names the path and the reason.
Result<std::string> read_file(const std::string& path);

}  // namespace ember::config
