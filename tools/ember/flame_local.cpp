// `ember flame-local`: a single-node Flame session manager (flame.v1.Frontend)
// for running Flame applications without a cluster. See
// handlers/flame/local/manager.hpp for what it does.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ember/config.hpp"
#include "ember/log.hpp"
#include "ember/reactor.hpp"
#include "handlers/flame/local/manager.hpp"

namespace {

const char kUsage[] = R"(usage: ember flame-local [options]

A single-node Flame session manager: serves Flame's flame.v1.Frontend (what
flmctl, flamepy and Flame's SDK clients talk to) and runs each registered
application's service on this machine the way Flame's executor does. Point
a Flame client at it (FLAME_ENDPOINT=http://127.0.0.1:8080, or the endpoint
of the current context in ~/.flame/flame.yaml); the same client and services
run unchanged against a real Flame cluster.

Options:
  --listen HOST:PORT     gRPC over TCP (default 127.0.0.1:8080; port 0 picks one)
  --unix PATH            also serve on a Unix socket
  --state FILE           SQLite state file: applications, sessions, tasks
                         (default ~/.flame/flame-local.db); a restart with the
                         same file keeps them
  --instances N          instances running at once (default: one per CPU)
  --delay-release DURATION
                         how long an instance without a session is kept when
                         its application sets no delay_release (default 60s)
  --startup-timeout DURATION
                         for a service to create its socket (default 30s)
  --socket-dir DIR       where instance sockets go (default: a temp dir)
  -h, --help             this text

Log level: EMBER_LOG (e.g. EMBER_LOG=info). SIGINT/SIGTERM stop it: instances
are released, the state is saved, tasks still running run again next time.
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "ember flame-local: %s\nRun `ember flame-local --help` for usage.\n",
               msg.c_str());
  std::exit(2);
}

bool split_host_port(const std::string& v, std::string* host, uint16_t* port) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos) return false;
  *host = v.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  std::string p = v.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned long n = std::stoul(p);
  if (n > 65535) return false;
  *port = static_cast<uint16_t>(n);
  return !host->empty();
}

}  // namespace

int flame_local_main(int argc, char** argv) {
  namespace fl = ember::flame::local;
  std::string listen = "127.0.0.1:8080", unix_path;
  fl::ManagerOptions mo;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto duration = [&]() {
      std::string v = value();
      auto ms = ember::config::parse_duration_ms(v);
      if (!ms) usage_error(a + " wants a duration like 500ms, 30s or 2m, got \"" + v + "\"");
      return std::chrono::milliseconds(*ms);
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--listen") {
      listen = value();
    } else if (a == "--unix") {
      unix_path = value();
    } else if (a == "--state") {
      mo.state_file = value();
    } else if (a == "--instances") {
      std::string v = value();
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(v) == 0)
        usage_error("--instances wants a whole number from 1 to 9999, got \"" + v + "\"");
      mo.max_instances = static_cast<unsigned>(std::stoul(v));
    } else if (a == "--delay-release") {
      mo.default_delay_release = duration();
    } else if (a == "--startup-timeout") {
      mo.startup_timeout = duration();
      if (mo.startup_timeout.count() == 0) usage_error("--startup-timeout must be over 0");
    } else if (a == "--socket-dir") {
      mo.socket_dir = value();
    } else {
      usage_error("unknown option " + a);
    }
  }
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(listen, &host, &port))
    usage_error("--listen wants HOST:PORT (e.g. 127.0.0.1:8080), got \"" + listen + "\"");
  if (mo.state_file.empty()) {
    const char* home = std::getenv("HOME");
    if (!home || !*home) usage_error("HOME is not set: give the state file with --state FILE");
    std::string dir = std::string(home) + "/.flame";
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "ember flame-local: cannot create %s: %s; give --state FILE\n",
                   dir.c_str(), std::strerror(errno));
      return 1;
    }
    mo.state_file = dir + "/flame-local.db";
  }

  ember::ReactorOptions ro;
  ro.threads = 1;  // one loop owns all the state
  ro.drain_timeout = std::chrono::milliseconds(15'000);
  ember::Reactor reactor(ro);
  // Connections are accepted once run() starts; the manager exists by then.
  fl::Manager* mp = nullptr;
  ember::HandlerFactory factory = [&mp](ember::Loop& loop) {
    return fl::frontend_factory(*mp)(loop);
  };
  auto bound = reactor.listen_tcp(host, port, factory);
  if (!bound) {
    std::fprintf(stderr,
                 "ember flame-local: cannot listen on %s: %s (is another flame-local or Flame "
                 "session manager there? pick another with --listen)\n",
                 listen.c_str(), bound.error().message.c_str());
    return 1;
  }
  if (!unix_path.empty()) {
    if (auto r = reactor.listen_unix(unix_path, factory); !r) {
      std::fprintf(stderr, "ember flame-local: cannot listen on %s: %s\n", unix_path.c_str(),
                   r.error().message.c_str());
      return 1;
    }
  }
  std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  mo.frontend_endpoint = "http://" + shown + ":" + std::to_string(*bound);
  auto manager = fl::Manager::open(reactor.loop(0), mo);
  if (!manager) {
    std::fprintf(stderr, "ember flame-local: %s\n", manager.error().message.c_str());
    return 1;
  }
  mp = manager->get();
  reactor.on_drain_start([&manager] { (*manager)->shutdown(); });
  std::fprintf(stderr,
               "ember flame-local: serving flame.v1.Frontend on http://%s:%u (state %s, up to %u "
               "instances)%s%s\n",
               shown.c_str(), static_cast<unsigned>(*bound), mo.state_file.c_str(),
               (*manager)->max_instances(),
               unix_path.empty() ? "" : " and unix:", unix_path.c_str());
  std::fflush(stderr);
  int rc = reactor.run();
  manager->reset();
  return rc;
}
