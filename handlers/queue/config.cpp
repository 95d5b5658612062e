#include "handlers/queue/config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>
#include <unordered_set>

#include "handlers/queue/sigv4.hpp"
#include "protocols/http1/http1.hpp"

namespace ember::queue {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxDocument = 1 << 20;
constexpr std::size_t kMaxName = 255;

Error fail(std::string_view url, const std::string& what) {
  return Error(std::string(url) + ": " + what);
}

std::string kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "non-integer number";
    case json::value_t::boolean:
      return "bool";
    default:
      return v.type_name();
  }
}

// "integer 5672", "string \"x\"", "list of 2 values": what was found.
std::string found(const json& v) {
  if (v.is_array()) return "a list of " + std::to_string(v.size()) + " values";
  if (v.is_object()) return "an object";
  if (v.is_null()) return "null";
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return kind_of(v) + " " + text;
}

std::string field_name(std::string_view field) {
  return "field \"" + std::string(field) + "\"";
}

// nlohmann::json converts to anything, so it cannot travel in a Result.
std::optional<Error> parse_object(std::string_view body, std::string_view url, json& doc) {
  if (body.size() > kMaxDocument)
    return fail(url, "document larger than " + std::to_string(kMaxDocument) + " bytes");
  try {
    doc = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for numbers past what a double holds.
    return fail(url, std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) return fail(url, "expected a JSON object, got " + found(doc));
  return std::nullopt;
}

// Control characters or nothing at all make a name unusable on the wire.
bool printable_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxName) return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

Result<std::string> name_value(const json& v, std::string_view field, std::string_view url) {
  if (!v.is_string()) return fail(url, field_name(field) + ": expected a string, got " + found(v));
  const auto& s = v.get_ref<const std::string&>();
  if (!printable_name(s))
    return fail(url, field_name(field) +
                         ": expected 1 to 255 bytes without control characters, got " + found(v));
  return s;
}

// The value of a field that must be a list holding exactly one value.
Result<const json*> single(const json& doc, std::string_view field, std::string_view url) {
  auto it = doc.find(field);
  if (it == doc.end()) return fail(url, "missing " + field_name(field));
  if (!it->is_array() || it->size() != 1)
    return fail(url,
                field_name(field) + ": expected a list with exactly one value, got " + found(*it));
  return &(*it)[0];
}

Result<std::string> single_string(const json& doc, std::string_view field, std::string_view url) {
  auto v = single(doc, field, url);
  if (!v) return std::move(v).error();
  return name_value(**v, field, url);
}

Result<std::uint16_t> single_port(const json& doc, std::string_view field, std::string_view url) {
  auto v = single(doc, field, url);
  if (!v) return std::move(v).error();
  const json& p = **v;
  if (p.is_number_unsigned() || p.is_number_integer()) {
    // Signed read of an unsigned above INT64_MAX wraps negative: also refused.
    auto n =
        p.is_number_unsigned()
            ? static_cast<std::int64_t>(std::min<std::uint64_t>(p.get<std::uint64_t>(), 1u << 20))
            : p.get<std::int64_t>();
    if (n >= 1 && n <= 65535) return static_cast<std::uint16_t>(n);
  }
  return fail(url, field_name(field) + ": expected an integer port 1-65535, got " + found(p));
}

Result<Case> case_value(const json& v, std::string_view field, std::string_view url) {
  switch (v.type()) {
    case json::value_t::boolean:
      return Case(v.get<bool>());
    case json::value_t::number_integer:
      return Case(v.get<std::int64_t>());
    case json::value_t::number_unsigned: {
      auto u = v.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return Case(static_cast<std::int64_t>(u));
      return fail(url, field_name(field) + ": integer case above 9223372036854775807: " + found(v));
    }
    case json::value_t::string:
      return Case(v.get<std::string>());
    default:
      return fail(url,
                  field_name(field) + ": expected a bool, an integer or a string, got " + found(v));
  }
}

}  // namespace

// ---- endpoints -------------------------------------------------------------

// Built with append(): GCC 12 at -O3 warns falsely (-Wrestrict) on
// "literal" + std::string.
std::string HttpEndpoint::authority() const {
  std::string out;
  bool v6 = host.find(':') != std::string::npos;
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  if (port != (tls ? 443 : 80)) out.append(":").append(std::to_string(port));
  return out;
}

std::string HttpEndpoint::url(std::string_view path) const {
  return std::string(tls ? "https://" : "http://") + authority() + base_path + std::string(path);
}

Result<HttpEndpoint> parse_endpoint(std::string_view spec) {
  auto bad = [&](const std::string& why) {
    return Error("host \"" + std::string(spec) + "\": " + why);
  };
  HttpEndpoint ep;
  std::string_view rest = spec;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    ep.tls = false;
    ep.port = 80;
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return bad("only http:// and https:// are supported");
  }
  auto slash = rest.find('/');
  std::string_view auth = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/')
    path.remove_suffix(1);
  if (path.find_first_of("?#") != std::string_view::npos)
    return bad("a query or fragment is not allowed");
  if (auth.find('@') != std::string_view::npos)
    return bad("credentials in the URL are not allowed");
  std::string_view port_text;
  if (auth.starts_with("[")) {
    auto close = auth.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 literal");
    ep.host = std::string(auth.substr(1, close - 1));
    std::string_view after = auth.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("unexpected text after the IPv6 literal");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    auto colon = auth.find(':');
    ep.host = std::string(auth.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = auth.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (ep.host.empty()) return bad("no host name");
  bool bracketed = auth.starts_with("[");
  for (char c : ep.host) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    bool ok = alnum || c == '-' || c == '.' || c == '_' || c == '~' || c == '%' ||
              (bracketed && c == ':');
    if (!ok) return bad("invalid host name");
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535)
      return bad("port must be 1-65535");
    ep.port = static_cast<std::uint16_t>(port);
  }
  ep.base_path = std::string(path);
  return ep;
}

std::string service_config_path(std::string_view service_name) {
  std::string out("/");
  out += http1::percent_encode(service_name, false);
  return out;
}

std::string bucket_config_path(std::string_view service_name, std::string_view key) {
  std::string out = service_config_path(service_name);
  out += '/';
  out += http1::percent_encode(key, false);
  return out;
}

// ---- service document ------------------------------------------------------

const std::vector<std::string>* ServiceConfig::queues_for(const Case& c) const {
  auto it = index_.find(c);
  return it == index_.end() ? nullptr : &out_[it->second].queues;
}

std::vector<std::string> ServiceConfig::outbound_queues() const {
  std::vector<std::string> all;
  std::unordered_set<std::string_view> seen;
  for (const Route& r : out_)
    for (const std::string& q : r.queues)
      if (seen.insert(q).second) all.push_back(q);
  return all;
}

Result<ServiceConfig> ServiceConfig::make(std::string in, std::vector<Route> out) {
  if (!printable_name(in))
    return Error("inbound queue name must be 1 to 255 bytes without control characters");
  ServiceConfig cfg;
  cfg.in_ = std::move(in);
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (const std::string& q : out[i].queues)
      if (!printable_name(q))
        return Error("out[" + std::to_string(i) +
                     "]: queue names must be 1 to 255 bytes without control characters");
    auto [it, fresh] = cfg.index_.emplace(out[i].when, i);
    if (!fresh)
      return Error("out[" + std::to_string(i) + "].case " + out[i].when.to_json() +
                   " repeats out[" + std::to_string(it->second) + "].case");
  }
  cfg.out_ = std::move(out);
  return cfg;
}

Result<ServiceConfig> parse_service_config(std::string_view body, std::string_view url) {
  json doc_value;
  if (auto err = parse_object(body, url, doc_value)) return std::move(*err);
  const json* doc = &doc_value;
  auto in_it = doc->find("in");
  if (in_it == doc->end()) return fail(url, "missing " + field_name("in"));
  auto in = name_value(*in_it, "in", url);
  if (!in) return std::move(in).error();

  auto out_it = doc->find("out");
  if (out_it == doc->end()) return fail(url, "missing " + field_name("out"));
  if (!out_it->is_array())
    return fail(url, field_name("out") + ": expected a list, got " + found(*out_it));
  std::vector<Route> routes;
  routes.reserve(out_it->size());
  std::unordered_map<Case, std::size_t> first;
  for (std::size_t i = 0; i < out_it->size(); ++i) {
    const json& entry = (*out_it)[i];
    std::string at = "out[" + std::to_string(i) + "]";
    if (!entry.is_object())
      return fail(url, field_name(at) + ": expected an object, got " + found(entry));
    auto c = entry.find("case");
    if (c == entry.end()) return fail(url, "missing " + field_name(at + ".case"));
    auto when = case_value(*c, at + ".case", url);
    if (!when) return std::move(when).error();
    auto [dup, fresh] = first.emplace(*when, i);
    if (!fresh)
      return fail(url, field_name(at + ".case") + ": case " + when->to_json() + " repeats out[" +
                           std::to_string(dup->second) + "].case");
    auto qs = entry.find("queues");
    if (qs == entry.end()) return fail(url, "missing " + field_name(at + ".queues"));
    if (!qs->is_array())
      return fail(
          url, field_name(at + ".queues") + ": expected a list of queue names, got " + found(*qs));
    Route route{std::move(*when), {}};
    route.queues.reserve(qs->size());
    for (std::size_t j = 0; j < qs->size(); ++j) {
      auto q = name_value((*qs)[j], at + ".queues[" + std::to_string(j) + "]", url);
      if (!q) return std::move(q).error();
      route.queues.push_back(std::move(*q));
    }
    routes.push_back(std::move(route));
  }
  auto cfg = ServiceConfig::make(std::move(*in), std::move(routes));
  if (!cfg) return fail(url, cfg.error().message);
  return cfg;
}

// ---- connection documents --------------------------------------------------

Result<RabbitMqConfig> parse_rabbitmq_config(std::string_view body, std::string_view url) {
  json doc_value;
  if (auto err = parse_object(body, url, doc_value)) return std::move(*err);
  const json* doc = &doc_value;
  RabbitMqConfig cfg;
  auto host = single_string(*doc, "host", url);
  if (!host) return std::move(host).error();
  auto port = single_port(*doc, "port", url);
  if (!port) return std::move(port).error();
  auto user = single_string(*doc, "username", url);
  if (!user) return std::move(user).error();
  auto pass = single_string(*doc, "pass", url);
  if (!pass) return std::move(pass).error();
  cfg.host = std::move(*host);
  cfg.port = *port;
  cfg.username = std::move(*user);
  cfg.pass_entry = std::move(*pass);
  return cfg;
}

Result<DbConfig> parse_db_config(std::string_view body, std::string_view url) {
  json doc_value;
  if (auto err = parse_object(body, url, doc_value)) return std::move(*err);
  const json* doc = &doc_value;
  DbConfig cfg;
  auto host = single_string(*doc, "host", url);
  if (!host) return std::move(host).error();
  auto port = single_port(*doc, "port", url);
  if (!port) return std::move(port).error();
  auto user = single_string(*doc, "username", url);
  if (!user) return std::move(user).error();
  auto db = single_string(*doc, "database", url);
  if (!db) return std::move(db).error();
  auto pass = single_string(*doc, "pass", url);
  if (!pass) return std::move(pass).error();
  cfg.host = std::move(*host);
  cfg.port = *port;
  cfg.username = std::move(*user);
  cfg.database = std::move(*db);
  cfg.pass_entry = std::move(*pass);
  return cfg;
}

Result<ObjectStorageConfig> parse_object_storage_config(std::string_view body,
                                                        std::string_view url) {
  json doc_value;
  if (auto err = parse_object(body, url, doc_value)) return std::move(*err);
  const json* doc = &doc_value;
  ObjectStorageConfig cfg;
  auto host = single_string(*doc, "host", url);
  if (!host) return std::move(host).error();
  auto ep = parse_endpoint(*host);
  if (!ep) return fail(url, field_name("host") + ": " + ep.error().message);
  auto access = single_string(*doc, "pass:access-key", url);
  if (!access) return std::move(access).error();
  auto secret = single_string(*doc, "pass:secret-key", url);
  if (!secret) return std::move(secret).error();
  cfg.host = std::move(*host);
  cfg.endpoint = std::move(*ep);
  cfg.access_key_entry = std::move(*access);
  cfg.secret_key_entry = std::move(*secret);
  return cfg;
}

Result<std::string> parse_bucket_name(std::string_view body, std::string_view url) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!body.empty() && space(body.front()))
    body.remove_prefix(1);
  while (!body.empty() && space(body.back()))
    body.remove_suffix(1);
  if (body.empty()) return fail(url, "empty bucket name");
  if (body.size() > kMaxName)
    return fail(url, "bucket name longer than " + std::to_string(kMaxName) + " bytes");
  for (std::size_t i = 0; i < body.size(); ++i) {
    auto u = static_cast<unsigned char>(body[i]);
    if (u <= 0x20 || u == 0x7f || u == '/')
      return fail(
          url, "bucket name has a forbidden byte (0x" + std::string(1, "0123456789abcdef"[u >> 4]) +
                   std::string(1, "0123456789abcdef"[u & 15]) + ") at offset " + std::to_string(i));
  }
  return std::string(body);
}

}  // namespace ember::queue
