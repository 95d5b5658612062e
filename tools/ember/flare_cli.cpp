// `ember flare`: deploys, replaces, lists and removes Wasm flares on a
// running `ember serve` through its admin API (handlers/flare/wasm/deploy.hpp).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/tls.hpp"
#include "ember/config.hpp"
#include "ember/reactor.hpp"
#include "protocols/http1/client.hpp"
#include "protocols/http1/http1.hpp"

namespace {

const char kFlareUsage[] =
    R"(usage: ember flare deploy NAME FILE.wasm [--host HOST] [--path PATH]
                          [--secret NAME]... [--capability CAP]... [--no-wait]
       ember flare status NAME
       ember flare list
       ember flare remove NAME

Deploys a flaron/v1 WebAssembly module as flare NAME on a running `ember serve`
(its config needs `admin: {token: ...}`), or replaces the version NAME serves.
The module is checked at once and compiled by the server; deploy waits until it
serves (or failed). Requests and WebSocket connections already routed finish on
the old version.

deploy options:
  --host HOST         the route's host: NAME, *.NAME or * (default *)
  --path PATH         the route's path prefix (default /)
  --secret NAME       a secret of the config's `secrets:` the flare may read (repeatable)
  --capability CAP    writes_spark_kv, writes_plasma_kv or beam (repeatable)
  --no-wait           return once the server accepted the module

options:
  --server URL        the admin API (default $EMBER_ADMIN_URL, else http://127.0.0.1:8080/_ember)
  --token-file FILE   the admin token (default $EMBER_ADMIN_TOKEN)
  --cacert FILE       CA certificates for an https:// server
  --timeout SECONDS   how long deploy waits for the compile (default 120)

exit status: 0 done; 1 the server refused or the deployment failed; 2 usage;
3 the server could not be reached.
)";

constexpr int kExitDone = 0, kExitRefused = 1, kExitUsage = 2, kExitUnreachable = 3;

// Thrown (after the message is printed) to leave with an exit status once
// the client's loop thread has stopped.
struct Exit {
  int code;
};

// A one-loop reactor on a thread of its own, for blocking fetches.
class AdminClient {
 public:
  AdminClient(std::string base, std::string token, ember::http1::Client::Options options)
      : reactor_(reactor_options()),
        base_(std::move(base)),
        token_(std::move(token)),
        options_(std::move(options)) {
    thread_ = std::thread([this] { reactor_.run(); });
  }
  ~AdminClient() {
    reactor_.stop();
    thread_.join();
  }

  // The answer as JSON; throws Exit after printing what went wrong.
  nlohmann::json call(std::string_view method, const std::string& path, std::string body = {},
                      int* status = nullptr) {
    std::string url = base_ + path;
    std::string auth = "Bearer " + token_;
    ember::http1::Field fields[] = {{"authorization", auth}, {"content-type", "application/wasm"}};
    ember::http1::ClientRequest req;
    req.method = method;
    req.url = url;
    req.headers = std::span(fields, body.empty() ? 1 : 2);
    if (!body.empty()) req.body = ember::Bytes::copy(body);
    auto resp = ember::http1::fetch_blocking(reactor_.loop(0), req, options_);
    if (!resp) {
      std::fprintf(stderr, "ember flare: cannot reach %s: %s\n", url.c_str(),
                   resp.error().message.c_str());
      throw Exit{kExitUnreachable};
    }
    nlohmann::json j = nlohmann::json::parse(resp->body, nullptr, false);
    if (j.is_discarded()) {
      std::string why = resp->status == 413
                            ? "the module is larger than the server's limits.max_body"
                            : "not a JSON answer; is " + base_ + " the admin API (admin.path)?";
      std::fprintf(stderr, "ember flare: %s %s: %d: %s\n", std::string(method).c_str(), url.c_str(),
                   resp->status, why.c_str());
      throw Exit{kExitRefused};
    }
    if (status) *status = resp->status;
    if (resp->status >= 300) {
      std::string why = j.contains("error") && j["error"].is_string()
                            ? j["error"].get<std::string>()
                            : resp->body;
      std::fprintf(stderr, "ember flare: %s %s: %d: %s\n", std::string(method).c_str(), url.c_str(),
                   resp->status, why.c_str());
      throw Exit{kExitRefused};
    }
    return j;
  }

 private:
  static ember::ReactorOptions reactor_options() {
    ember::ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    o.drain_timeout = std::chrono::milliseconds(1000);
    return o;
  }
  ember::Reactor reactor_;
  std::thread thread_;
  std::string base_, token_;
  ember::http1::Client::Options options_;
};

void print_record(const nlohmann::json& r) {
  std::string route = r.value("host", "*") + r.value("path", "/");
  std::printf("%-20s %-10s v%-5llu %s\n", r.value("name", "?").c_str(),
              r.value("status", "?").c_str(),
              static_cast<unsigned long long>(r.value("version", 0ull)), route.c_str());
  if (r.contains("serving") && r["serving"].is_object()) {
    const auto& s = r["serving"];
    std::printf("%-20s serving    v%-5llu %s since %s\n", "",
                static_cast<unsigned long long>(s.value("version", 0ull)),
                (s.value("host", "*") + s.value("path", "/")).c_str(),
                s.value("since", "?").c_str());
  }
  if (r.contains("error")) std::printf("%-20s error: %s\n", "", r.value("error", "").c_str());
}

}  // namespace

namespace {

int flare_command(int argc, char** argv) {
  std::vector<std::string> positional, secrets, capabilities;
  std::string server, token_file, cacert, host, path;
  double timeout_s = 120;
  bool wait = true;
  if (const char* s = std::getenv("EMBER_ADMIN_URL")) server = s;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ember flare: %s needs a value\n", a.c_str());
        std::exit(kExitUsage);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kFlareUsage, stdout);
      return kExitDone;
    } else if (a == "--server") {
      server = value();
    } else if (a == "--token-file") {
      token_file = value();
    } else if (a == "--cacert") {
      cacert = value();
    } else if (a == "--host") {
      host = value();
    } else if (a == "--path") {
      path = value();
    } else if (a == "--secret") {
      secrets.push_back(value());
    } else if (a == "--capability") {
      capabilities.push_back(value());
    } else if (a == "--no-wait") {
      wait = false;
    } else if (a == "--timeout") {
      std::string v = value();
      char* end = nullptr;
      timeout_s = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || timeout_s <= 0) {
        std::fprintf(stderr, "ember flare: --timeout wants seconds > 0, got \"%s\"\n", v.c_str());
        return kExitUsage;
      }
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "ember flare: unknown option %s\nRun `ember flare --help`.\n",
                   a.c_str());
      return kExitUsage;
    } else {
      positional.push_back(a);
    }
  }
  const std::string cmd = positional.empty() ? "" : positional[0];
  size_t want = cmd == "deploy"                        ? 3
                : cmd == "list"                        ? 1
                : (cmd == "status" || cmd == "remove") ? 2
                                                       : 0;
  if (want == 0 || positional.size() != want) {
    std::fputs(kFlareUsage, stderr);
    return kExitUsage;
  }

  std::string token;
  if (!token_file.empty()) {
    auto read = ember::config::read_file(token_file);
    if (!read) {
      std::fprintf(stderr, "ember flare: --token-file: %s\n", read.error().message.c_str());
      return kExitUsage;
    }
    token = std::move(*read);
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r'))
      token.pop_back();
  } else if (const char* t = std::getenv("EMBER_ADMIN_TOKEN")) {
    token = t;
  }
  if (token.empty()) {
    std::fputs("ember flare: no admin token: pass --token-file FILE or set EMBER_ADMIN_TOKEN\n",
               stderr);
    return kExitUsage;
  }
  if (server.empty()) server = "http://127.0.0.1:8080/_ember";
  while (!server.empty() && server.back() == '/')
    server.pop_back();

  ember::http1::Client::Options options;
  options.request_timeout = std::chrono::milliseconds(30'000);
  if (!cacert.empty()) {
    ember::tls::ClientConfig tc;
    tc.ca_file = cacert;
    auto ctx = ember::tls::ClientContext::create(std::move(tc));
    if (!ctx) {
      std::fprintf(stderr, "ember flare: --cacert %s: %s\n", cacert.c_str(),
                   ctx.error().message.c_str());
      return kExitUsage;
    }
    options.tls = *ctx;
  }
  AdminClient admin(server, token, options);

  if (cmd == "list") {
    auto j = admin.call("GET", "/flares");
    if (j["flares"].empty()) std::puts("no deployments");
    for (const auto& r : j["flares"])
      print_record(r);
    return kExitDone;
  }
  const std::string name = ember::http1::percent_encode(positional[1]);
  if (cmd == "status") {
    print_record(admin.call("GET", "/flares/" + name));
    return kExitDone;
  }
  if (cmd == "remove") {
    admin.call("DELETE", "/flares/" + name);
    std::printf("removed %s\n", positional[1].c_str());
    return kExitDone;
  }

  auto module = ember::config::read_file(positional[2]);
  if (!module) {
    std::fprintf(stderr, "ember flare: module: %s\n", module.error().message.c_str());
    return kExitUsage;
  }
  std::string query;
  auto add = [&](const char* key, const std::string& v) {
    query += (query.empty() ? "?" : "&") + std::string(key) + "=" +
             ember::http1::percent_encode(v, true);
  };
  if (!host.empty()) add("host", host);
  if (!path.empty()) add("path", path);
  for (const auto& s : secrets)
    add("secret", s);
  for (const auto& c : capabilities)
    add("capability", c);
  auto accepted = admin.call("PUT", "/flares/" + name + query, std::move(*module));
  uint64_t version = accepted.value("version", 0ull);
  std::printf("accepted %s v%llu (sha256 %s)\n", positional[1].c_str(),
              static_cast<unsigned long long>(version), accepted.value("sha256", "?").c_str());
  if (!wait) return kExitDone;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    auto r = admin.call("GET", "/flares/" + name);
    if (r.value("version", 0ull) != version) {
      std::fprintf(stderr, "ember flare: %s was replaced or removed meanwhile (now v%llu)\n",
                   positional[1].c_str(),
                   static_cast<unsigned long long>(r.value("version", 0ull)));
      return kExitRefused;
    }
    std::string status = r.value("status", "");
    if (status == "active") {
      print_record(r);
      return kExitDone;
    }
    if (status == "failed") {
      std::fprintf(stderr, "ember flare: deployment of %s failed: %s\n", positional[1].c_str(),
                   r.value("error", "?").c_str());
      return kExitRefused;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr,
                   "ember flare: %s still compiling after %.0f s; check `ember flare status %s`\n",
                   positional[1].c_str(), timeout_s, positional[1].c_str());
      return kExitRefused;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

int flare_main(int argc, char** argv) {
  try {
    return flare_command(argc, argv);
  } catch (const Exit& e) {
    return e.code;
  }
}
