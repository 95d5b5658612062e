// The configuration documents of the queue face (shared/spec/slingshot.md):
// what the config service ("sys-map") answers, parsed into structs.
//
//   GET {host}/{name}           {"in": "q", "out": [{"case": <bool|int|string>, "queues": [...]}]}
//   GET {host}/{name}/{key}     text/plain bucket name
//   GET {host}/rabbitmq         {"host": [..], "port": [..], "username": [..], "pass": [..]}
//   GET {host}/db               {"host", "port", "username", "database", "pass"}: one-value lists
//   GET {host}/object-storage   {"host", "pass:access-key", "pass:secret-key"}: one-value lists
//
// Every parser takes the body and the URL it came from; an error's message
// names the URL and the field ("out[1].case", "port") and says what was
// expected and what was found. Fields not listed are ignored. Secrets are
// GNU pass entry names, resolved elsewhere (pass.hpp). Parsing is not on any
// hot path: it runs at start-up (and once per bucket key).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ember/error.hpp"
#include "ember/queue_case.hpp"

namespace ember::queue {

// Where an HTTP(S) service lives, from a "host" string as configured: a host
// without a scheme means https; "http://" is allowed for local use. An
// optional port and base path are kept ("http://127.0.0.1:8080/sys").
struct HttpEndpoint {
  bool tls = true;
  std::string host;  // DNS name or IP literal (IPv6 without brackets)
  std::uint16_t port = 443;
  std::string base_path;  // "" or "/a/b", never a trailing '/'

  // The Host header value: host, or host:port when the port is not the
  // scheme's default; IPv6 literals in brackets.
  std::string authority() const;
  // scheme://authority + base_path + path (path starts with '/').
  std::string url(std::string_view path) const;
};
Result<HttpEndpoint> parse_endpoint(std::string_view host);

// Paths on the config service. Names and keys are URI-encoded once.
std::string service_config_path(std::string_view service_name);
std::string bucket_config_path(std::string_view service_name, std::string_view key);
inline constexpr std::string_view kRabbitMqConfigPath = "/rabbitmq";
inline constexpr std::string_view kDbConfigPath = "/db";
inline constexpr std::string_view kObjectStorageConfigPath = "/object-storage";

struct Route {
  Case when;
  std::vector<std::string> queues;
};

// The service document: the inbound queue and the routes of each case.
class ServiceConfig {
 public:
  const std::string& in() const noexcept { return in_; }
  const std::vector<Route>& out() const noexcept { return out_; }
  // The queues of a case, or nullptr when the case has no route (the result
  // goes nowhere; the caller logs and counts it). The pointer lives as long
  // as this object.
  const std::vector<std::string>* queues_for(const Case& c) const;
  // Every outbound queue once, in order of first appearance: to declare.
  std::vector<std::string> outbound_queues() const;

  // Checks what the parser checks (names, duplicate cases) for configs built
  // in code.
  static Result<ServiceConfig> make(std::string in, std::vector<Route> out);

 private:
  std::string in_;
  std::vector<Route> out_;
  std::unordered_map<Case, std::size_t> index_;
};

struct RabbitMqConfig {
  std::string host;
  std::uint16_t port = 5672;
  std::string username;
  std::string pass_entry;  // pass entry holding the password
  std::string vhost = "/";
};

struct DbConfig {
  std::string host;
  std::uint16_t port = 5432;
  std::string username;
  std::string database;
  std::string pass_entry;
};

struct ObjectStorageConfig {
  std::string host;       // as configured
  HttpEndpoint endpoint;  // parsed from host
  std::string access_key_entry;
  std::string secret_key_entry;
};

// Queue names: 1..255 bytes (AMQP short string), no control characters.
// Duplicate cases in "out" are an error (which route would win is unclear).
Result<ServiceConfig> parse_service_config(std::string_view body, std::string_view url);
Result<RabbitMqConfig> parse_rabbitmq_config(std::string_view body, std::string_view url);
Result<DbConfig> parse_db_config(std::string_view body, std::string_view url);
Result<ObjectStorageConfig> parse_object_storage_config(std::string_view body,
                                                        std::string_view url);
// The text/plain bucket document: trimmed; empty, longer than 255 bytes, or
// holding '/', whitespace or control characters is an error.
Result<std::string> parse_bucket_name(std::string_view body, std::string_view url);

}  // namespace ember::queue
