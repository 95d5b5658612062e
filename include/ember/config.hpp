// Small parsers for configuration values (environment variables, CLI flags).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ember::config {

// "65536", "64k", "64KiB", "16m", "1g": binary multiples (k = 1024).
std::optional<uint64_t> parse_byte_size(std::string_view text) noexcept;
// "250", "250ms", "30s", "2m": milliseconds when no unit is given.
std::optional<uint64_t> parse_duration_ms(std::string_view text) noexcept;
// The variable's value, or nullopt when unset or empty.
std::optional<std::string> env(const char* name);

}  // namespace ember::config
