// `ember serve`'s YAML configuration.
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>

#include "ember/config.hpp"
#include "ember/flare_server.hpp"
#include "handlers/flare/edge.hpp"

namespace ember::flare {
namespace {

struct ConfigError {
  std::string message;
};

[[noreturn]] void fail(const std::string& origin, const YAML::Node& node, const std::string& what) {
  std::string where = origin;
  if (node.IsDefined() && node.Mark().line >= 0)
    where += ":" + std::to_string(node.Mark().line + 1);
  throw ConfigError{where + ": " + what};
}

std::string scalar(const std::string& origin, const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) fail(origin, node, "'" + key + "' must be a single value");
  return node.as<std::string>();
}

uint64_t duration_ms(const std::string& origin, const YAML::Node& node, const std::string& key) {
  auto v = config::parse_duration_ms(scalar(origin, node, key));
  if (!v) fail(origin, node, "'" + key + "' must be a duration like 250ms, 30s or 2m");
  return *v;
}

uint64_t byte_size(const std::string& origin, const YAML::Node& node, const std::string& key) {
  auto v = config::parse_byte_size(scalar(origin, node, key));
  if (!v) fail(origin, node, "'" + key + "' must be a size like 65536, 64k or 8m");
  return *v;
}

uint64_t number(const std::string& origin, const YAML::Node& node, const std::string& key,
                uint64_t max) {
  std::string s = scalar(origin, node, key);
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || s[0] == '-' || v > max)
    fail(origin, node, "'" + key + "' must be a whole number from 0 to " + std::to_string(max));
  return v;
}

HttpProtocol http_protocol(const std::string& origin, const YAML::Node& node,
                           const std::string& key) {
  std::string s = scalar(origin, node, key);
  if (s == "auto") return HttpProtocol::automatic;
  if (s == "http1") return HttpProtocol::http1;
  if (s == "h2") return HttpProtocol::h2;
  fail(origin, node, "'" + key + "' must be auto, http1 or h2");
}

bool boolean(const std::string& origin, const YAML::Node& node, const std::string& key) {
  std::string s = scalar(origin, node, key);
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  fail(origin, node, "'" + key + "' must be true or false");
}

void check_keys(const std::string& origin, const YAML::Node& map,
                std::initializer_list<std::string_view> known, const std::string& section) {
  if (!map.IsMap()) fail(origin, map, "'" + section + "' must be a mapping");
  for (const auto& kv : map) {
    std::string k = kv.first.as<std::string>();
    bool ok = false;
    for (std::string_view n : known)
      ok = ok || n == k;
    if (!ok) {
      std::string list;
      for (std::string_view n : known)
        list += (list.empty() ? "" : ", ") + std::string(n);
      fail(origin, kv.first, "unknown key '" + k + "' in " + section + " (known: " + list + ")");
    }
  }
}

// "127.0.0.1:8080", "[::1]:8443", ":8080".
void parse_listen(const std::string& origin, const YAML::Node& node, ListenerConfig* l) {
  std::string s = scalar(origin, node, "listen");
  size_t colon = s.rfind(':');
  if (colon == std::string::npos)
    fail(origin, node, "'listen' must be host:port, e.g. 127.0.0.1:8080");
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  l->host = host.empty() ? "0.0.0.0" : host;
  YAML::Node port_node(s.substr(colon + 1));
  l->port = static_cast<uint16_t>(number(origin, port_node, "listen port", 65535));
}

void parse_limits(const std::string& o, const YAML::Node& n, Limits* l) {
  check_keys(o, n,
             {"arena_size", "max_connections", "header_timeout", "body_timeout", "idle_timeout",
              "ws_idle_timeout", "max_request_line", "max_header_bytes", "max_headers", "max_body",
              "ws_max_frame", "ws_max_message", "h2_max_concurrent_streams", "drain_timeout",
              "origin_timeout", "max_origin_body"},
             "limits");
  if (n["arena_size"]) l->arena_size = byte_size(o, n["arena_size"], "arena_size");
  if (n["max_connections"])
    l->max_connections = number(o, n["max_connections"], "max_connections", 10'000'000);
  if (n["header_timeout"])
    l->header_timeout_ms = duration_ms(o, n["header_timeout"], "header_timeout");
  if (n["body_timeout"]) l->body_timeout_ms = duration_ms(o, n["body_timeout"], "body_timeout");
  if (n["idle_timeout"]) l->idle_timeout_ms = duration_ms(o, n["idle_timeout"], "idle_timeout");
  if (n["ws_idle_timeout"])
    l->ws_idle_timeout_ms = duration_ms(o, n["ws_idle_timeout"], "ws_idle_timeout");
  if (n["max_request_line"])
    l->max_request_line = byte_size(o, n["max_request_line"], "max_request_line");
  if (n["max_header_bytes"])
    l->max_header_bytes = byte_size(o, n["max_header_bytes"], "max_header_bytes");
  if (n["max_headers"]) l->max_headers = number(o, n["max_headers"], "max_headers", 100'000);
  if (n["max_body"]) l->max_body = byte_size(o, n["max_body"], "max_body");
  if (n["ws_max_frame"]) l->ws_max_frame = byte_size(o, n["ws_max_frame"], "ws_max_frame");
  if (n["ws_max_message"]) l->ws_max_message = byte_size(o, n["ws_max_message"], "ws_max_message");
  if (n["h2_max_concurrent_streams"])
    l->h2_max_concurrent_streams = static_cast<uint32_t>(
        number(o, n["h2_max_concurrent_streams"], "h2_max_concurrent_streams", 1u << 20));
  if (n["drain_timeout"]) l->drain_timeout_ms = duration_ms(o, n["drain_timeout"], "drain_timeout");
  if (n["origin_timeout"])
    l->origin_timeout_ms = duration_ms(o, n["origin_timeout"], "origin_timeout");
  if (n["max_origin_body"])
    l->max_origin_body = byte_size(o, n["max_origin_body"], "max_origin_body");
  if (l->arena_size < 1024) fail(o, n["arena_size"], "'arena_size' must be at least 1k");
}

// A secret is given inline, as {env: NAME} or as {file: PATH} (one trailing
// newline dropped). Errors name the secret, never its value.
std::string secret_value(const std::string& o, const YAML::Node& n, const std::string& what) {
  if (n.IsScalar()) return n.as<std::string>();
  if (!n.IsMap() || n.size() != 1 || !(n["env"] || n["file"]))
    fail(o, n, "secret '" + what + "' must be a value, {env: NAME} or {file: PATH}");
  if (n["env"]) {
    std::string var = scalar(o, n["env"], "env");
    const char* v = std::getenv(var.c_str());
    if (!v) fail(o, n, "secret '" + what + "' comes from $" + var + ", which is not set");
    return v;
  }
  auto text = config::read_file(scalar(o, n["file"], "file"));
  if (!text) fail(o, n, "secret '" + what + "': " + text.error().message);
  std::string v = std::move(*text);
  if (!v.empty() && v.back() == '\n') v.pop_back();
  if (!v.empty() && v.back() == '\r') v.pop_back();
  return v;
}

// A beam.allow entry that can match a URL's host: "*", "*.domain", "host",
// "host:port", "[v6]" or "[v6]:port" (no trailing dot, no port on a wildcard).
bool valid_allow_entry(std::string_view e) {
  if (e == "*") return true;
  bool wildcard = e.starts_with("*.");
  if (wildcard) e.remove_prefix(2);
  std::string_view host = e, port;
  if (e.starts_with('[')) {
    size_t close = e.find(']');
    if (close == std::string_view::npos || wildcard) return false;
    host = e.substr(1, close - 1);
    if (close + 1 < e.size()) {
      if (e[close + 1] != ':') return false;
      port = e.substr(close + 2);
      if (port.empty()) return false;
    }
    if (host.empty()) return false;
    for (char c : host)
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  } else {
    size_t colon = e.find(':');
    if (colon != std::string_view::npos) {
      if (wildcard) return false;
      host = e.substr(0, colon);
      port = e.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host.empty() || host.back() == '.' || host.front() == '.') return false;
    for (char c : host)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  if (port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return port.empty() || std::stoul(std::string(port)) - 1 < 65535;
}

ServerConfig parse(const YAML::Node& root, const std::string& o) {
  ServerConfig c;
  c.origin = o;
  if (!root.IsDefined() || root.IsNull()) return c;
  check_keys(o, root,
             {"loops", "pin_loops", "log", "limits", "listeners", "routes", "wasm", "secrets",
              "spark", "plasma", "admin", "beam"},
             "the file");
  if (root["loops"]) c.loops = static_cast<unsigned>(number(o, root["loops"], "loops", 1024));
  if (root["pin_loops"]) c.pin_loops = boolean(o, root["pin_loops"], "pin_loops");
  if (root["log"]) c.log = scalar(o, root["log"], "log");
  if (root["limits"]) parse_limits(o, root["limits"], &c.limits);
  if (const YAML::Node& w = root["wasm"]) {
    check_keys(
        o, w,
        {"cache_dir", "max_memory", "fuel", "timeout", "idle_instances", "idle_waiting_instances"},
        "wasm");
    if (w["idle_instances"])
      c.wasm.idle_instances =
          static_cast<uint32_t>(number(o, w["idle_instances"], "idle_instances", 100'000));
    if (w["idle_waiting_instances"])
      c.wasm.idle_waiting_instances = static_cast<uint32_t>(
          number(o, w["idle_waiting_instances"], "idle_waiting_instances", 100'000));
    if (w["cache_dir"]) c.wasm.cache_dir = scalar(o, w["cache_dir"], "cache_dir");
    if (w["max_memory"]) c.wasm.max_memory = byte_size(o, w["max_memory"], "max_memory");
    if (w["fuel"]) c.wasm.fuel = number(o, w["fuel"], "fuel", uint64_t(1) << 62);
    if (w["timeout"]) c.wasm.timeout_ms = duration_ms(o, w["timeout"], "timeout");
    if (c.wasm.max_memory < 65536 || c.wasm.max_memory > (uint64_t(1) << 32) - 65536)
      fail(o, w["max_memory"], "'max_memory' must be from 64k to 4095m");
  }
  if (const YAML::Node& sp = root["spark"]) {
    check_keys(o, sp,
               {"dir", "max_size", "max_value", "max_keys_per_site", "reads_per_invocation",
                "writes_per_invocation"},
               "spark");
    SparkSettings& k = c.spark;
    if (sp["dir"]) k.dir = scalar(o, sp["dir"], "dir");
    if (sp["max_size"]) k.max_size = byte_size(o, sp["max_size"], "max_size");
    if (sp["max_value"]) k.max_value = byte_size(o, sp["max_value"], "max_value");
    if (sp["max_keys_per_site"])
      k.max_keys_per_site = number(o, sp["max_keys_per_site"], "max_keys_per_site", 1u << 30);
    if (sp["reads_per_invocation"])
      k.reads_per_invocation = static_cast<uint32_t>(
          number(o, sp["reads_per_invocation"], "reads_per_invocation", 1'000'000));
    if (sp["writes_per_invocation"])
      k.writes_per_invocation = static_cast<uint32_t>(
          number(o, sp["writes_per_invocation"], "writes_per_invocation", 1'000'000));
    if (k.max_size < (1u << 20)) fail(o, sp["max_size"], "'max_size' must be at least 1m");
    if (k.max_value > (16u << 20)) fail(o, sp["max_value"], "'max_value' must be at most 16m");
  }
  if (const YAML::Node& pl = root["plasma"]) {
    check_keys(o, pl, {"node_id", "max_value", "writes_per_invocation"}, "plasma");
    if (pl["node_id"]) c.plasma.node_id = number(o, pl["node_id"], "node_id", UINT64_MAX);
    if (pl["max_value"]) c.plasma.max_value = byte_size(o, pl["max_value"], "max_value");
    if (pl["writes_per_invocation"])
      c.plasma.writes_per_invocation = static_cast<uint32_t>(
          number(o, pl["writes_per_invocation"], "writes_per_invocation", 1'000'000));
    if (c.plasma.max_value > (16u << 20))
      fail(o, pl["max_value"], "'max_value' must be at most 16m");
  }
  if (const YAML::Node& ad = root["admin"]) {
    check_keys(o, ad, {"token", "path", "state_dir"}, "admin");
    if (!ad["token"]) fail(o, ad, "'admin' needs a 'token' (a value, {env: NAME} or {file: PATH})");
    c.admin.token = secret_value(o, ad["token"], "admin.token");
    if (c.admin.token.size() < 16)
      fail(o, ad["token"],
           "'admin.token' must be at least 16 characters (e.g. openssl rand -hex 32)");
    for (char ch : c.admin.token)
      if (ch <= ' ' || ch > '~')
        fail(o, ad["token"], "'admin.token' must be printable ASCII without spaces");
    if (ad["path"]) c.admin.path = scalar(o, ad["path"], "path");
    if (c.admin.path.size() < 2 || c.admin.path[0] != '/' || c.admin.path.back() == '/')
      fail(o, ad["path"], "'admin.path' must start with / and not end with one, e.g. /_ember");
    if (ad["state_dir"]) c.admin.state_dir = scalar(o, ad["state_dir"], "state_dir");
  }
  if (const YAML::Node& bm = root["beam"]) {
    check_keys(o, bm,
               {"allow", "connect_timeout", "timeout", "max_response", "max_request",
                "fetches_per_invocation", "max_connections_per_origin", "max_waiting", "ca_file",
                "protocol"},
               "beam");
    BeamSettings& b = c.beam;
    if (const YAML::Node& allow = bm["allow"]) {
      if (!allow.IsSequence())
        fail(o, allow, "'beam.allow' must be a list of hosts (api.example.com, *.example.com, *)");
      for (const YAML::Node& h : allow) {
        std::string host = scalar(o, h, "allow");
        for (char& ch : host)
          if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
        if (!valid_allow_entry(host))
          fail(o, h,
               "'beam.allow' entries are HOST, HOST:PORT, [IPV6], [IPV6]:PORT, *.DOMAIN or *; "
               "got '" +
                   host + "'");
        b.allow.push_back(host);
      }
    }
    if (bm["protocol"]) b.protocol = http_protocol(o, bm["protocol"], "protocol");
    if (bm["connect_timeout"])
      b.connect_timeout_ms = duration_ms(o, bm["connect_timeout"], "connect_timeout");
    if (bm["timeout"]) b.timeout_ms = duration_ms(o, bm["timeout"], "timeout");
    if (bm["max_response"]) b.max_response = byte_size(o, bm["max_response"], "max_response");
    if (bm["max_request"]) b.max_request = byte_size(o, bm["max_request"], "max_request");
    if (bm["max_waiting"]) b.max_waiting = number(o, bm["max_waiting"], "max_waiting", 1'000'000);
    if (bm["fetches_per_invocation"])
      b.fetches_per_invocation = static_cast<uint32_t>(
          number(o, bm["fetches_per_invocation"], "fetches_per_invocation", 10'000));
    if (bm["max_connections_per_origin"])
      b.max_connections_per_origin =
          number(o, bm["max_connections_per_origin"], "max_connections_per_origin", 10'000);
    if (bm["ca_file"]) {
      b.ca_file = scalar(o, bm["ca_file"], "ca_file");
      if (!std::ifstream(b.ca_file))
        fail(o, bm["ca_file"],
             "cannot read 'beam.ca_file' " + b.ca_file + ": " + describe_errno(-errno));
    }
    if (b.timeout_ms == 0 || b.connect_timeout_ms == 0)
      fail(o, bm, "'beam' timeouts must be above 0");
    if (b.max_response > (64u << 20))
      fail(o, bm["max_response"], "'beam.max_response' must be at most 64m");
  }
  if (const YAML::Node& sec = root["secrets"]) {
    if (!sec.IsMap())
      fail(o, sec, "'secrets' must map a site (a route's host or \"*\") to secrets");
    for (const auto& site : sec) {
      std::string host = scalar(o, site.first, "secrets");
      for (char& ch : host)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
      if (!site.second.IsMap())
        fail(o, site.second, "'secrets." + host + "' must map secret names to values");
      for (const auto& entry : site.second) {
        std::string name = scalar(o, entry.first, "secret name");
        c.secrets[host][name] = secret_value(o, entry.second, host + "." + name);
      }
    }
  }
  if (root["listeners"]) {
    if (!root["listeners"].IsSequence()) fail(o, root["listeners"], "'listeners' must be a list");
    for (const YAML::Node& n : root["listeners"]) {
      check_keys(o, n, {"listen", "tls"}, "a listener");
      ListenerConfig l;
      if (!n["listen"]) fail(o, n, "a listener needs 'listen: host:port'");
      parse_listen(o, n["listen"], &l);
      if (const YAML::Node& t = n["tls"]) {
        check_keys(o, t, {"certificates", "alpn"}, "tls");
        if (!t["certificates"] || !t["certificates"].IsSequence() || t["certificates"].size() == 0)
          fail(o, t, "'tls' needs a 'certificates' list of {cert, key, hosts}");
        for (const YAML::Node& cn : t["certificates"]) {
          check_keys(o, cn, {"cert", "key", "hosts"}, "a certificate");
          Certificate cert;
          if (!cn["cert"] || !cn["key"]) fail(o, cn, "a certificate needs 'cert' and 'key' files");
          cert.cert_file = scalar(o, cn["cert"], "cert");
          cert.key_file = scalar(o, cn["key"], "key");
          if (cn["hosts"])
            for (const YAML::Node& h : cn["hosts"])
              cert.hosts.push_back(scalar(o, h, "hosts"));
          l.certificates.push_back(std::move(cert));
        }
        if (t["alpn"]) {
          l.alpn.clear();
          for (const YAML::Node& a : t["alpn"]) {
            std::string p = scalar(o, a, "alpn");
            if (p != "h2" && p != "http/1.1") fail(o, a, "'alpn' entries must be h2 or http/1.1");
            l.alpn.push_back(p);
          }
        }
      }
      c.listeners.push_back(std::move(l));
    }
  }
  if (root["routes"]) {
    if (!root["routes"].IsSequence()) fail(o, root["routes"], "'routes' must be a list");
    for (const YAML::Node& n : root["routes"]) {
      check_keys(o, n,
                 {"host", "path", "flare", "wasm", "allowed_secrets", "capabilities", "origin",
                  "origin_protocol"},
                 "a route");
      RouteConfig r;
      if (n["host"]) r.host = scalar(o, n["host"], "host");
      if (n["path"]) r.path = scalar(o, n["path"], "path");
      if (!n["flare"] == !n["wasm"])
        fail(o, n, "a route needs either 'flare: NAME' or 'wasm: FILE.wasm'");
      if (n["flare"]) r.flare = scalar(o, n["flare"], "flare");
      if (n["wasm"]) r.wasm = scalar(o, n["wasm"], "wasm");
      if (r.path.empty() || r.path[0] != '/')
        fail(o, n["path"], "a route's 'path' must start with /");
      if (n["origin"]) {
        r.origin = scalar(o, n["origin"], "origin");
        while (r.origin.size() > 1 && r.origin.back() == '/')
          r.origin.pop_back();
        std::string host;
        uint16_t port = 0;
        bool https = false;
        size_t scheme = r.origin.find("://");
        if (!detail::beam_origin(r.origin, &host, &port, &https) ||
            r.origin.find_first_of("/?#", scheme == std::string::npos ? 0 : scheme + 3) !=
                std::string::npos)
          fail(o, n["origin"],
               "a route's 'origin' is http://HOST[:PORT] or https://HOST[:PORT], without a path");
      }
      if (n["origin_protocol"]) {
        if (!n["origin"]) fail(o, n["origin_protocol"], "'origin_protocol' needs an 'origin'");
        r.origin_protocol = http_protocol(o, n["origin_protocol"], "origin_protocol");
      }
      for (char& ch : r.host)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
      if (const YAML::Node& a = n["allowed_secrets"]) {
        if (!n["wasm"]) fail(o, a, "'allowed_secrets' applies to Wasm flares ('wasm: FILE')");
        if (!a.IsSequence()) fail(o, a, "'allowed_secrets' must be a list of secret names");
        for (const YAML::Node& name : a) {
          std::string s = scalar(o, name, "allowed_secrets");
          auto defined = [&](const std::string& site) {
            auto it = c.secrets.find(site);
            return it != c.secrets.end() && it->second.count(s);
          };
          if (!defined(r.host) && !defined("*"))
            fail(o, name,
                 "route " + r.host + r.path + " allows secret '" + s +
                     "', which 'secrets' defines neither for " + r.host + " nor for *");
          r.allowed_secrets.push_back(s);
        }
      }
      if (const YAML::Node& caps = n["capabilities"]) {
        if (!n["wasm"]) fail(o, caps, "'capabilities' applies to Wasm flares ('wasm: FILE')");
        if (!caps.IsSequence()) fail(o, caps, "'capabilities' must be a list");
        for (const YAML::Node& cap : caps) {
          std::string s = scalar(o, cap, "capabilities");
          if (s != "writes_spark_kv" && s != "writes_plasma_kv" && s != "beam")
            fail(o, cap,
                 "unknown capability '" + s + "' (known: writes_spark_kv, writes_plasma_kv, beam)");
          r.capabilities.push_back(s);
        }
      }
      c.routes.push_back(std::move(r));
    }
  }
  return c;
}

}  // namespace

Result<ServerConfig> parse_config(std::string_view yaml, std::string_view origin) {
  std::string o(origin);
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    ServerConfig c = parse(root, o);
    if (c.listeners.empty()) c.listeners = default_config().listeners;
    if (c.routes.empty()) return Error(o + ": no 'routes': nothing would be served");
    return c;
  } catch (const ConfigError& e) {
    return Error(e.message);
  } catch (const YAML::Exception& e) {
    return Error(o + ": not valid YAML: " + e.what());
  }
}

Result<ServerConfig> load_config(const std::string& path) {
  auto text = config::read_file(path);
  if (!text) return Error("config file: " + text.error().message);
  return parse_config(*text, path);
}

ServerConfig default_config() {
  ServerConfig c;
  c.origin = "built-in defaults";
  c.listeners.push_back(ListenerConfig{});
  c.routes = {{"*", "/ws", "ws-echo", ""},
              {"*", "/chat", "chat", ""},
              {"*", "/echo", "echo", ""},
              {"*", "/", "hello", ""}};
  return c;
}

}  // namespace ember::flare
