#include "ember/log.hpp"

#include <unistd.h>

#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ember::log {

std::atomic<uint8_t> g_max_level{static_cast<uint8_t>(Level::trace)};  // until init

namespace {

struct Directive {
  std::string target;  // empty: default
  Level level;
};

struct Config {
  std::vector<Directive> directives;
  bool json = false;
};

std::mutex g_mu;
// Replaced whole by configure(); old configs are kept (configure is rare) so a
// concurrent reader never sees freed memory.
std::atomic<Config*> g_config{nullptr};
std::once_flag g_init;

bool parse_spec(std::string_view spec, std::vector<Directive>* out) {
  std::vector<Directive> d;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view item = spec.substr(pos, comma - pos);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())))
      item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back())))
      item.remove_suffix(1);
    pos = comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    Level level;
    if (eq == std::string_view::npos) {
      if (!parse_level(item, &level)) {
        // RUST_LOG allows a bare target meaning "all levels for it"; only ours matter.
        std::string_view t = item;
        if (t.starts_with("ember")) d.push_back({std::string(t), Level::trace});
        continue;
      }
      d.push_back({"", level});
    } else {
      std::string_view target = item.substr(0, eq);
      if (!parse_level(item.substr(eq + 1), &level)) return false;
      d.push_back({std::string(target), level});
    }
  }
  *out = std::move(d);
  return true;
}

// Does the directive target cover this log target? "ember" covers
// "ember.flame"; Rust-style "::" separators are accepted for ours.
bool covers(std::string_view directive, std::string_view target) {
  if (!target.starts_with(directive)) return false;
  if (target.size() == directive.size()) return true;
  char next = target[directive.size()];
  return next == '.' || next == ':';
}

// The longest matching target directive wins; else the last bare level; else info.
Level level_for(const Config& c, std::string_view target) {
  Level level = Level::info;
  size_t best = 0;
  bool matched = false;
  for (const Directive& d : c.directives) {
    if (d.target.empty()) {
      if (!matched) level = d.level;
    } else if (covers(d.target, target) && (!matched || d.target.size() >= best)) {
      matched = true;
      best = d.target.size();
      level = d.level;
    }
  }
  return level;
}

void install(Config* c) {
  uint8_t max = static_cast<uint8_t>(Level::off);
  bool has_default = false;
  for (const Directive& d : c->directives) {
    max = std::min<uint8_t>(max, static_cast<uint8_t>(d.level));
    if (d.target.empty()) has_default = true;
  }
  if (!has_default) max = std::min<uint8_t>(max, static_cast<uint8_t>(Level::info));
  static std::vector<std::unique_ptr<Config>> retired;  // under g_mu
  if (Config* old = g_config.exchange(c, std::memory_order_acq_rel)) retired.emplace_back(old);
  g_max_level.store(max, std::memory_order_relaxed);
}

void ensure_init() {
  std::call_once(g_init, [] { init_from_env(); });
}

void append_escaped(std::string& out, std::string_view s, bool json) {
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(ch));
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, json ? "\\u%04x" : "\\x%02x", ch);
      out += buf;
    } else {
      out.push_back(static_cast<char>(ch));
    }
  }
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (unsigned char ch : s)
    if (ch <= ' ' || ch == '"' || ch == '=' || ch == '\\' || ch == 0x7f) return true;
  return false;
}

void append_value(std::string& out, const Field& f, bool json) {
  char buf[32];
  switch (f.kind) {
    case Field::Kind::str:
      if (json || needs_quotes(f.s)) {
        out.push_back('"');
        append_escaped(out, f.s, json);
        out.push_back('"');
      } else {
        out += f.s;
      }
      return;
    case Field::Kind::i64:
      std::snprintf(buf, sizeof buf, "%" PRId64, f.i);
      break;
    case Field::Kind::u64:
      std::snprintf(buf, sizeof buf, "%" PRIu64, f.u);
      break;
    case Field::Kind::f64:
      std::snprintf(buf, sizeof buf, "%.6g", f.d);
      break;
    case Field::Kind::boolean:
      out += f.b ? "true" : "false";
      return;
  }
  out += buf;
}

}  // namespace

bool parse_level(std::string_view text, Level* out) noexcept {
  std::string lower;
  for (char ch : text)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  static constexpr std::pair<std::string_view, Level> kNames[] = {
      {"trace", Level::trace}, {"debug", Level::debug},  {"info", Level::info},
      {"warn", Level::warn},   {"warning", Level::warn}, {"error", Level::error},
      {"off", Level::off}};
  for (auto& [name, level] : kNames) {
    if (lower == name) {
      *out = level;
      return true;
    }
  }
  return false;
}

std::string_view level_name(Level level) noexcept {
  switch (level) {
    case Level::trace:
      return "TRACE";
    case Level::debug:
      return "DEBUG";
    case Level::info:
      return "INFO";
    case Level::warn:
      return "WARN";
    case Level::error:
      return "ERROR";
    case Level::off:
      return "OFF";
  }
  return "?";
}

void init_from_env() {
  const char* spec = nullptr;
  for (const char* name : {"EMBER_LOG", "FLAME_LOG", "RUST_LOG"}) {
    const char* v = std::getenv(name);
    if (v && *v) {
      spec = v;
      break;
    }
  }
  auto* c = new Config;
  if (spec && !parse_spec(spec, &c->directives)) {
    std::fprintf(stderr,
                 "ember: ignoring log spec \"%s\": expected a comma list of LEVEL or "
                 "TARGET=LEVEL (levels: trace debug info warn error off)\n",
                 spec);
    c->directives.clear();
  }
  const char* fmt = std::getenv("EMBER_LOG_FORMAT");
  c->json = fmt && std::string_view(fmt) == "json";
  std::lock_guard lock(g_mu);
  install(c);
}

bool configure(std::string_view spec) {
  ensure_init();
  auto* c = new Config;
  if (!parse_spec(spec, &c->directives)) {
    delete c;
    return false;
  }
  std::lock_guard lock(g_mu);
  Config* old = g_config.load(std::memory_order_acquire);
  c->json = old ? old->json : false;
  install(c);
  return true;
}

bool enabled(Level level, std::string_view target) noexcept {
  ensure_init();
  if (level == Level::off) return false;
  const Config* c = g_config.load(std::memory_order_acquire);
  return static_cast<uint8_t>(level) >= static_cast<uint8_t>(level_for(*c, target));
}

void write(Level level, std::string_view target, std::string_view message,
           std::initializer_list<Field> fields) noexcept {
  try {
    ensure_init();
    bool json = g_config.load(std::memory_order_acquire)->json;
    thread_local std::string line;
    line.clear();
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc;
    gmtime_r(&ts.tv_sec, &utc);
    char stamp[96];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  ts.tv_nsec / 1000);
    if (json) {
      line += "{\"ts\":\"";
      line += stamp;
      line += "\",\"level\":\"";
      line += level_name(level);
      line += "\",\"target\":\"";
      append_escaped(line, target, true);
      line += "\",\"msg\":\"";
      append_escaped(line, message, true);
      line += '"';
      for (const Field& f : fields) {
        line += ",\"";
        append_escaped(line, f.key, true);
        line += "\":";
        append_value(line, f, true);
      }
      line += "}\n";
    } else {
      line += stamp;
      line += ' ';
      line += level_name(level);
      line += ' ';
      line += target;
      line += ": ";
      append_escaped(line, message, false);
      for (const Field& f : fields) {
        line += ' ';
        line += f.key;
        line += '=';
        append_value(line, f, false);
      }
      line += '\n';
    }
    // One write per line keeps lines whole across threads and processes.
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(STDERR_FILENO, p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
  } catch (...) {
    // Logging must never take the process down.
  }
}

}  // namespace ember::log
