// `ember serve`: the edge server with the bundled (or linked-in) flares.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "ember/flare_server.hpp"
#include "ember/log.hpp"
#include "handlers/flare/wasm/deploy.hpp"
#include "handlers/flare/wasm/wasm_flare.hpp"

namespace {

const char kServeUsage[] =
    R"(usage: ember serve [--config FILE] [--check] [--listen HOST:PORT] [--loops N]

Serves HTTP/1.1, HTTP/2 (h2c and TLS) and WebSocket traffic to flares, routed by
host and path prefix. Without --config it serves the bundled example flares on
127.0.0.1:8080:
  /       hello    200 "hello"
  /echo   echo     the request body back
  /ws     ws-echo  WebSocket echo
  /chat   chat     WebSocket chat room (per path)

options:
  --config FILE       YAML config: listeners, TLS, loops, routes, limits, wasm, beam, admin
                      (docs/serve.md); a route with `wasm: FILE.wasm` serves a flaron/v1
                      WebAssembly flare, one with `origin: URL` forwards passthrough/transform;
                      `admin: {token: ...}` turns on the deploy API (`ember flare --help`)
  --listen HOST:PORT  replace the listeners with one plain listener
  --loops N           event loops (0: one per CPU this process may use)
  --check             load and validate the config, print the routes, exit

signals: SIGTERM/SIGINT drain (a second one cuts), SIGHUP reloads TLS certificates.
exit status: 0 clean drain; 1 drain timed out; 2 usage or config error; 3 cannot bind.
)";

}  // namespace

int serve_main(int argc, char** argv) {
  using namespace ember::flare;
  std::string config_path, listen;
  long loops = -1;
  bool check = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ember serve: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kServeUsage, stdout);
      return 0;
    } else if (a == "--config") {
      config_path = value();
    } else if (a == "--listen") {
      listen = value();
    } else if (a == "--loops") {
      std::string v = value();
      char* end = nullptr;
      loops = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || loops < 0 || loops > 1024) {
        std::fprintf(stderr, "ember serve: --loops wants 0..1024, got \"%s\"\n", v.c_str());
        return 2;
      }
    } else if (a == "--check") {
      check = true;
    } else {
      std::fprintf(stderr, "ember serve: unknown option %s\nRun `ember serve --help`.\n",
                   a.c_str());
      return 2;
    }
  }

  ServerConfig config = default_config();
  if (!config_path.empty()) {
    auto loaded = load_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "ember serve: %s\n", loaded.error().message.c_str());
      return 2;
    }
    config = std::move(*loaded);
  }
  if (!listen.empty()) {
    auto parsed =
        parse_config("listeners: [{listen: \"" + listen + "\"}]\nroutes: [{flare: x}]", "--listen");
    if (!parsed) {
      std::fprintf(stderr, "ember serve: %s\n", parsed.error().message.c_str());
      return 2;
    }
    config.listeners = parsed->listeners;
  }
  if (loops >= 0) config.loops = static_cast<unsigned>(loops);
  if (!config.log.empty() && !ember::log::configure(config.log))
    std::fprintf(stderr, "ember serve: ignoring log spec \"%s\" (see EMBER_LOG)\n",
                 config.log.c_str());

  Registry registry;
  add_example_flares(registry);
  // Wasm flares are validated and compiled here, at deploy time.
  auto wasm_host = std::make_shared<ember::flare::wasm::WasmHost>(config);
  if (auto added = ember::flare::wasm::add_wasm_flares(config, registry, *wasm_host); !added) {
    std::fprintf(stderr, "ember serve: %s\n", added.error().message.c_str());
    return 2;
  }
  ServerConfig served = config;
  Server server(std::move(config), registry);
  if (auto bound = server.bind(); !bound) {
    std::fprintf(stderr, "ember serve: %s\n", bound.error().message.c_str());
    return bound.error().message.find("names flare") != std::string::npos ? 2 : 3;
  }
  std::unique_ptr<ember::flare::wasm::Deployer> deployer;
  if (served.admin.enabled() && !check) {
    auto started = ember::flare::wasm::Deployer::start(server, served, wasm_host);
    if (!started) {
      std::fprintf(stderr, "ember serve: %s\n", started.error().message.c_str());
      return 2;
    }
    deployer = std::move(*started);
  }
  std::fputs(server.describe().c_str(), stdout);
  std::fflush(stdout);
  if (check) return 0;
  return server.run();
}
