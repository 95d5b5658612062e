// Structured logs with levels, one line per event on stderr.
//
//   EMBER_INFO("ember.flame", "session entered", {"session_id", id}, {"app", name});
//   -> 2026-11-23T19:40:01.123456Z INFO ember.flame: session entered session_id=s1 app=echo
//
// The level comes from EMBER_LOG, else FLAME_LOG, else RUST_LOG (the Flame
// executor sets the last two): a comma list of `level` and `target=level`
// directives, as in RUST_LOG. A target directive applies to targets it
// prefixes ("ember" covers "ember.flame"). EMBER_LOG_FORMAT=json switches to
// one JSON object per line. Levels: trace debug info warn error off.
//
// Thread-safe; a disabled level costs one relaxed load and a compare.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace ember::log {

enum class Level : uint8_t { trace = 0, debug = 1, info = 2, warn = 3, error = 4, off = 5 };

struct Field {
  enum class Kind : uint8_t { str, i64, u64, f64, boolean };
  std::string_view key;
  Kind kind;
  union {
    std::string_view s;
    int64_t i;
    uint64_t u;
    double d;
    bool b;
  };
  Field(std::string_view k, std::string_view v) : key(k), kind(Kind::str), s(v) {}
  Field(std::string_view k, const std::string& v) : key(k), kind(Kind::str), s(v) {}
  Field(std::string_view k, const char* v) : key(k), kind(Kind::str), s(v ? v : "") {}
  Field(std::string_view k, bool v) : key(k), kind(Kind::boolean), b(v) {}
  Field(std::string_view k, double v) : key(k), kind(Kind::f64), d(v) {}
  Field(std::string_view k, int v) : key(k), kind(Kind::i64), i(v) {}
  Field(std::string_view k, long v) : key(k), kind(Kind::i64), i(v) {}
  Field(std::string_view k, long long v) : key(k), kind(Kind::i64), i(v) {}
  Field(std::string_view k, unsigned v) : key(k), kind(Kind::u64), u(v) {}
  Field(std::string_view k, unsigned long v) : key(k), kind(Kind::u64), u(v) {}
  Field(std::string_view k, unsigned long long v) : key(k), kind(Kind::u64), u(v) {}
};

// Most verbose level any directive enables; the macro's fast path.
extern std::atomic<uint8_t> g_max_level;

bool enabled(Level level, std::string_view target) noexcept;
void write(Level level, std::string_view target, std::string_view message,
           std::initializer_list<Field> fields = {}) noexcept;

// Re-reads EMBER_LOG / FLAME_LOG / RUST_LOG / EMBER_LOG_FORMAT. Called on first use.
void init_from_env();
// Replaces the directives (same syntax as EMBER_LOG). Returns false, keeping
// the old ones, when `spec` does not parse.
bool configure(std::string_view spec);
bool parse_level(std::string_view text, Level* out) noexcept;
std::string_view level_name(Level level) noexcept;

}  // namespace ember::log

#define EMBER_LOG(level, target, message, ...)                           \
  do {                                                                   \
    if (static_cast<uint8_t>(level) >=                                   \
            ::ember::log::g_max_level.load(std::memory_order_relaxed) && \
        ::ember::log::enabled(level, target))                            \
      ::ember::log::write(level, target, message, {__VA_ARGS__});        \
  } while (0)

#define EMBER_TRACE(target, message, ...) \
  EMBER_LOG(::ember::log::Level::trace, target, message, __VA_ARGS__)
#define EMBER_DEBUG(target, message, ...) \
  EMBER_LOG(::ember::log::Level::debug, target, message, __VA_ARGS__)
#define EMBER_INFO(target, message, ...) \
  EMBER_LOG(::ember::log::Level::info, target, message, __VA_ARGS__)
#define EMBER_WARN(target, message, ...) \
  EMBER_LOG(::ember::log::Level::warn, target, message, __VA_ARGS__)
#define EMBER_ERROR(target, message, ...) \
  EMBER_LOG(::ember::log::Level::error, target, message, __VA_ARGS__)
