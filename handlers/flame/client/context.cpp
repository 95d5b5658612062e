// FlameContext (flame.yaml + env) and ResourceRequirement text, as Flame's
// Rust SDK reads them.
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ember/flame_client.hpp"

namespace ember::flame::client {
namespace {

Error config_error(std::string message) {
  return Error(std::move(message), static_cast<int>(ErrorCode::invalid_config));
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::optional<std::string> opt_string(const YAML::Node& n, const char* key) {
  YAML::Node v = n[key];
  if (!v || v.IsNull()) return std::nullopt;
  return v.as<std::string>();
}

std::optional<ClientTls> parse_tls(const YAML::Node& n) {
  if (!n || n.IsNull()) return std::nullopt;
  ClientTls tls;
  tls.ca_file = opt_string(n, "ca_file");
  tls.cert_file = opt_string(n, "cert_file");
  tls.key_file = opt_string(n, "key_file");
  return tls;
}

void merge_tls(std::optional<ClientTls>& target, const ClientTls& source) {
  if (!target) target.emplace();
  if (!target->ca_file) target->ca_file = source.ca_file;
  if (!target->cert_file) target->cert_file = source.cert_file;
  if (!target->key_file) target->key_file = source.key_file;
}

ClientTls env_tls() {
  return {env("FLAME_CA_FILE"), env("FLAME_CERT_FILE"), env("FLAME_KEY_FILE")};
}

bool any(const ClientTls& t) {
  return t.ca_file || t.cert_file || t.key_file;
}

std::string default_path() {
  const char* home = std::getenv("HOME");
  std::filesystem::path p = home && *home ? home : ".";
  return (p / ".flame" / "flame.yaml").string();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

Result<uint64_t> parse_memory(std::string_view value) {
  static constexpr struct {
    const char* suffix;
    int shift;
  } kSuffixes[] = {{"pib", 50}, {"pi", 50}, {"pb", 50},  {"p", 50},  {"tib", 40}, {"ti", 40},
                   {"tb", 40},  {"t", 40},  {"gib", 30}, {"gi", 30}, {"gb", 30},  {"g", 30},
                   {"mib", 20}, {"mi", 20}, {"mb", 20},  {"m", 20},  {"kib", 10}, {"ki", 10},
                   {"kb", 10},  {"k", 10},  {"b", 0}};
  std::string text = lower(value);
  std::string_view number = text;
  int shift = 0;
  for (const auto& s : kSuffixes) {
    if (number.ends_with(s.suffix)) {
      number.remove_suffix(std::char_traits<char>::length(s.suffix));
      shift = s.shift;
      break;
    }
  }
  uint64_t n = 0;
  std::string msg = "invalid memory size '";
  msg.append(value).append("': ");
  if (!parse_number(trim(number), n)) {
    msg.append("expected a whole number with an optional k/m/g/t/p suffix, e.g. 16g");
    return config_error(std::move(msg));
  }
  if (shift && n > (UINT64_MAX >> shift)) {
    msg.append("too large");
    return config_error(std::move(msg));
  }
  return n << shift;
}

}  // namespace

// ---- ResourceRequirement ----------------------------------------------------

Result<ResourceRequirement> ResourceRequirement::parse(std::string_view text) {
  std::string_view s = trim(text);
  if (s.empty())
    return config_error("resource requirement cannot be empty: use e.g. 'cpu=1,mem=2g'");
  ResourceRequirement r;
  while (true) {
    size_t comma = s.find(',');
    std::string_view part = trim(s.substr(0, comma));
    std::string msg;
    if (part.empty()) {
      msg = "invalid empty resource requirement entry in '";
      msg.append(trim(text)).append("'");
      return config_error(std::move(msg));
    }
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      msg = "invalid resource requirement entry '";
      msg.append(part).append("', expected key=value (e.g. cpu=1)");
      return config_error(std::move(msg));
    }
    std::string_view value = trim(part.substr(eq + 1));
    if (value.find('=') != std::string_view::npos) {
      msg = "invalid resource requirement entry '";
      msg.append(part).append("', expected one '='");
      return config_error(std::move(msg));
    }
    std::string key = lower(trim(part.substr(0, eq)));
    if (value.empty()) {
      msg = "missing value for resource requirement key '";
      msg.append(key).append("'");
      return config_error(std::move(msg));
    }
    if (key == "cpu") {
      if (!parse_number(value, r.cpu)) {
        msg = "invalid cpu resource value '";
        msg.append(value).append("': expected a whole number of CPUs");
        return config_error(std::move(msg));
      }
    } else if (key == "mem" || key == "memory") {
      auto m = parse_memory(value);
      if (!m) return std::move(m).error();
      r.memory = *m;
    } else if (key == "gpu") {
      if (!parse_number(value, r.gpu)) {
        msg = "invalid gpu resource value '";
        msg.append(value).append("': expected a whole number of GPUs");
        return config_error(std::move(msg));
      }
    } else {
      msg = "unknown resource requirement key '";
      msg.append(key).append("': use cpu, mem (or memory) and gpu");
      return config_error(std::move(msg));
    }
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return r;
}

std::string ResourceRequirement::to_string() const {
  std::string out = "cpu=";
  out.append(std::to_string(cpu)).append(",mem=").append(std::to_string(memory));
  out.append(",gpu=").append(std::to_string(gpu));
  return out;
}

// ---- FlameContext -------------------------------------------------------------

Result<FlameContext> FlameContext::parse(std::string_view yaml, std::string_view origin) {
  std::string where(origin);
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap())
      return config_error(where + ": expected a mapping with current-context and contexts");
    FlameContext ctx;
    if (auto cur = opt_string(root, "current-context")) ctx.current_context = *cur;
    YAML::Node list = root["contexts"];
    if (list && !list.IsNull() && !list.IsSequence())
      return config_error(where + ": contexts must be a list of {name, cluster: {endpoint}}");
    size_t i = 0;
    for (const auto& n : list) {
      std::string at = where;
      at.append(": contexts[").append(std::to_string(i++)).append("]");
      if (!n.IsMap()) return config_error(at + ": expected a mapping");
      ContextEntry e;
      auto name = opt_string(n, "name");
      if (!name) return config_error(at + ": name is missing");
      e.name = *name;
      if (auto ws = opt_string(n, "workspace")) e.workspace = *ws;
      YAML::Node cluster = n["cluster"];
      if (!cluster || !cluster.IsMap())
        return config_error(at + " (" + e.name + "): cluster is missing");
      auto endpoint = opt_string(cluster, "endpoint");
      if (!endpoint)
        return config_error(at + " (" + e.name +
                            "): cluster.endpoint is missing (e.g. \"http://127.0.0.1:8080\")");
      e.cluster.endpoint = *endpoint;
      e.cluster.tls = parse_tls(cluster["tls"]);
      YAML::Node cache = n["cache"];
      if (cache && cache.IsMap()) {
        CacheConfig c;
        c.endpoint = opt_string(cache, "endpoint");
        c.tls = parse_tls(cache["tls"]);
        c.storage = opt_string(cache, "storage");
        e.cache = std::move(c);
      }
      ctx.contexts.push_back(std::move(e));
    }
    return ctx;
  } catch (const YAML::Exception& e) {
    return config_error(where + ": " + e.what());
  }
}

Result<FlameContext> FlameContext::from_file(const std::string& path) {
  std::string p = path.empty() ? default_path() : path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec))
    return config_error("Flame client configuration <" + p +
                        "> is not a file: create it (current-context, contexts) or set "
                        "FLAME_ENDPOINT");
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return config_error("cannot read <" + p + ">");
  return parse(text.str(), p);
}

Result<FlameContext> FlameContext::from_env() {
  auto endpoint = env("FLAME_ENDPOINT");
  if (!endpoint)
    return config_error("FLAME_ENDPOINT environment variable not set (e.g. http://127.0.0.1:8080)");
  ContextEntry e;
  e.name = "env";
  if (auto ws = env("FLAME_WORKSPACE")) e.workspace = *ws;
  e.cluster.endpoint = *endpoint;
  ClientTls tls = env_tls();
  if (any(tls)) e.cluster.tls = tls;
  if (auto cache = env("FLAME_CACHE_ENDPOINT")) {
    CacheConfig c;
    c.endpoint = cache;
    c.tls = e.cluster.tls;
    e.cache = std::move(c);
  }
  FlameContext ctx;
  ctx.current_context = "env";
  ctx.contexts.push_back(std::move(e));
  return ctx;
}

Result<FlameContext> FlameContext::from_file_with_env(const std::string& path) {
  std::string p = path.empty() ? default_path() : path;
  std::error_code ec;
  if (!std::filesystem::exists(p, ec) && env("FLAME_ENDPOINT")) return from_env();
  auto ctx = from_file(p);
  if (!ctx) return ctx;
  ctx->apply_env_overrides();
  return ctx;
}

void FlameContext::apply_env_overrides() {
  ContextEntry* cur = nullptr;
  for (auto& c : contexts)
    if (c.name == current_context) cur = &c;
  if (!cur) return;
  if (auto ws = env("FLAME_WORKSPACE")) cur->workspace = *ws;
  if (auto ep = env("FLAME_ENDPOINT")) cur->cluster.endpoint = *ep;
  ClientTls tls = env_tls();
  if (any(tls)) {
    merge_tls(cur->cluster.tls, tls);
    if (cur->cache) merge_tls(cur->cache->tls, tls);
  }
  if (auto cache = env("FLAME_CACHE_ENDPOINT")) {
    if (cur->cache) {
      cur->cache->endpoint = cache;
    } else {
      CacheConfig c;
      c.endpoint = cache;
      c.tls = cur->cluster.tls;
      cur->cache = std::move(c);
    }
  }
}

Result<ContextEntry> FlameContext::current() const {
  for (const auto& c : contexts)
    if (c.name == current_context) return c;
  std::string msg = "context <";
  msg.append(current_context).append("> not found (contexts:");
  for (const auto& c : contexts)
    msg.append(" ").append(c.name);
  msg.append("): set current-context to one of them");
  return config_error(std::move(msg));
}

}  // namespace ember::flame::client
