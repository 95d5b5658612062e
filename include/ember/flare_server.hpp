// The edge server behind `ember serve`: HTTP/1.1, HTTP/2 (h2c and TLS) and
// WebSocket on every loop, routed to flares by host and path prefix.
//
// Thread: construct, bind() and describe on one thread; run() blocks until
// stop() (thread-safe) or SIGTERM/SIGINT drains it; SIGHUP reloads TLS
// certificates without dropping connections.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/error.hpp"
#include "ember/flare.hpp"

namespace ember::flare {

struct Certificate {
  std::string cert_file;
  std::string key_file;
  std::vector<std::string> hosts;  // SNI names ("*.example.com"); empty: the default
};

struct ListenerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  // TLS when certificates are given; ALPN offers these (server preference).
  std::vector<Certificate> certificates;
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  bool tls() const noexcept { return !certificates.empty(); }
};

// How outbound requests (beam fetches, a route's origin) speak HTTP.
// automatic: HTTP/2 to https:// servers that choose "h2" with ALPN, else
// HTTP/1.1; http1: HTTP/1.1 only; h2: HTTP/2 only (to http:// servers with
// prior knowledge). Config values: auto, http1, h2.
enum class HttpProtocol : uint8_t { automatic, http1, h2 };

struct RouteConfig {
  std::string host = "*";  // "example.com", "*.example.com" or "*"
  std::string path = "/";  // prefix, matched at segment boundaries
  std::string flare;       // a name in the Registry
  std::string wasm;        // or a flaron/v1 WebAssembly module file (sets `flare`)
  // Secrets a Wasm flare on this route may read (secret_get, and the keys
  // of crypto_hmac, crypto_sign_jwt and the AES calls).
  std::vector<std::string> allowed_secrets = {};
  // What a Wasm flare on this route may do beyond reading: writes_spark_kv,
  // writes_plasma_kv, beam.
  std::vector<std::string> capabilities = {};
  // Where Action::passthrough and Action::transform send the request:
  // "http://HOST[:PORT]" or "https://…" (no path; the request's is kept).
  std::string origin = {};
  HttpProtocol origin_protocol = HttpProtocol::automatic;
};

// `wasm:` in the config: the engine behind routes with `wasm: FILE`.
struct WasmSettings {
  std::string cache_dir;            // compiled modules; empty: $TMPDIR/ember-wasm-<uid>
  uint64_t max_memory = 16u << 20;  // linear memory cap per instance
  uint64_t fuel = 200'000'000;      // per invocation: charged per function call and loop turn
  uint64_t timeout_ms = 1'000;      // wall clock per invocation (checked at host calls)
  // Idle instances kept per flare and loop for reuse; flares that wait
  // (beam_fetch) have many invocations at once and keep more.
  uint32_t idle_instances = 4;
  uint32_t idle_waiting_instances = 64;
};

// `spark:` in the config: the on-disk KV store of Wasm flares (per site).
struct SparkSettings {
  std::string dir;                 // empty: $HOME/.ember/spark (or $TMPDIR/ember-spark-<uid>)
  uint64_t max_size = 1ull << 30;  // the store's file, at most
  uint64_t max_value = 64 * 1024;  // per value
  uint64_t max_keys_per_site = 100'000;
  uint32_t reads_per_invocation = 1'000;  // then spark_get answers nothing
  uint32_t writes_per_invocation = 100;   // then spark_set answers 3 (write limit)
};

// `plasma:` in the config: the CRDT store of Wasm flares (in spark's file).
struct PlasmaSettings {
  uint64_t node_id = 0;  // this node in the CRDTs; 0: derived from the host name
  uint64_t max_value = 64 * 1024;
  uint32_t writes_per_invocation = 100;  // then writes answer 2 (write limit)
};

// `beam:` in the config: outbound HTTP from flares (Context::fetch, and
// flaron's beam_fetch for Wasm flares whose route grants `beam`).
struct BeamSettings {
  // Hosts flares may fetch from: "api.example.com" (any port),
  // "api.example.com:8443", "*.example.com" (subdomains, any port, not the
  // apex), "[::1]:8080", or "*" (anywhere). Names are compared as written in
  // the URL, not as resolved. Empty: none.
  std::vector<std::string> allow;
  uint64_t connect_timeout_ms = 5'000;
  uint64_t timeout_ms = 10'000;      // the whole request, connect included
  uint64_t max_response = 1u << 20;  // response body, at most
  uint64_t max_request = 1u << 20;   // request body a flare sends, at most
  uint32_t fetches_per_invocation = 10;
  size_t max_connections_per_origin = 8;  // per loop
  // Invocations waiting at once per loop (each holds a fiber, an arena and
  // its request); past it, requests to flares that wait are answered 503.
  size_t max_waiting = 1024;
  std::string ca_file;  // trusted CAs for https://; empty: the system's
  HttpProtocol protocol = HttpProtocol::automatic;
};

// `admin:` in the config: the API that deploys, replaces and removes Wasm
// flares at run time (docs/serve.md). Off without a token.
struct AdminSettings {
  std::string token;             // bearer token, at least 16 characters; empty: off
  std::string path = "/_ember";  // the API's prefix, on every listener
  std::string state_dir;         // deployments kept here and redeployed at start; empty: not kept
  bool enabled() const noexcept { return !token.empty(); }
};

// Every limit has a default and a key of the same name under `limits:`.
struct Limits {
  size_t arena_size = kDefaultArenaSize;  // per invocation
  size_t max_connections = 10'000;        // per loop
  uint64_t header_timeout_ms = 10'000;    // first byte to end of head (408)
  uint64_t body_timeout_ms = 30'000;      // head to end of body (408)
  uint64_t idle_timeout_ms = 60'000;      // keep-alive, between requests
  uint64_t ws_idle_timeout_ms = 300'000;  // WebSocket without traffic (1001)
  size_t max_request_line = 8 * 1024;     // 414
  size_t max_header_bytes = 32 * 1024;    // 431; HTTP/2 header list too
  size_t max_headers = 100;               // 431; HTTP/2 fields per block too
  uint64_t max_body = 8u << 20;           // 413
  size_t ws_max_frame = 1u << 20;         // 1009
  size_t ws_max_message = 16u << 20;      // 1009
  uint32_t h2_max_concurrent_streams = 128;
  uint64_t drain_timeout_ms = 30'000;
  uint64_t origin_timeout_ms = 30'000;   // a request proxied to a route's origin (502)
  uint64_t max_origin_body = 64u << 20;  // an origin's answer, at most (502)
};

struct ServerConfig {
  unsigned loops = 0;  // 0: one per CPU the process may run on
  bool pin_loops = false;
  std::string log;  // log spec (EMBER_LOG syntax); empty: leave as is
  std::vector<ListenerConfig> listeners;
  std::vector<RouteConfig> routes;
  Limits limits;
  WasmSettings wasm;
  SparkSettings spark;
  PlasmaSettings plasma;
  AdminSettings admin;
  BeamSettings beam;
  // `secrets:` per site (a route's host, or "*" for every site): name to
  // value. Values are read when the config loads and are never logged.
  std::map<std::string, std::map<std::string, std::string>> secrets;
  std::string origin;  // where it was read from, for messages
};

// Parses the YAML config (see docs/serve.md). Errors name the file, the key
// and what was expected.
Result<ServerConfig> parse_config(std::string_view yaml, std::string_view origin);
Result<ServerConfig> load_config(const std::string& path);
// 127.0.0.1:8080 serving the bundled examples: /ws (ws-echo), /chat, /echo, / (hello).
ServerConfig default_config();

// A route as a running server holds it.
struct LiveRoute {
  std::string host = "*";  // "*", "example.com" or "*.example.com" (lower case)
  std::string path = "/";  // prefix
  std::string flare_name;
  std::shared_ptr<Flare> flare;
  bool first = false;       // matched before every other route (the admin API)
  std::string origin = {};  // RouteConfig::origin
  HttpProtocol origin_protocol = HttpProtocol::automatic;
};

class Server {
 public:
  Server(ServerConfig config, const Registry& registry);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Checks routes against the registry, loads certificates and binds every
  // listener. Port 0 binds a free port; ports() then says which.
  Result<void> bind();
  const std::vector<uint16_t>& ports() const noexcept;
  // One line per listener and route, for the start-up banner.
  std::string describe() const;
  // Serves until stop() or a signal; 0 after a clean drain.
  int run();
  void stop() noexcept;
  // Re-reads every TLS certificate (what SIGHUP does). Thread-safe.
  Result<void> reload_certificates();

  // After bind(), thread-safe. The route table being served, and its
  // replacement: each loop switches at its next turn. A request being
  // answered, and every open WebSocket connection, keeps the flare it was
  // routed to; the old flares are released with the last of them.
  std::vector<LiveRoute> routes() const;
  void set_routes(std::vector<LiveRoute> routes);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::flare
