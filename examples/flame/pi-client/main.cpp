// The Pi client of Flame's SDK examples, in C++: opens a session of the "pi"
// application (examples/flame/pi), keeps every task in flight at once on one
// connection, sums the hits the instances report and prints the estimate.
//
//   ember-flame-pi-client [--endpoint URL] [--service PATH] [--tasks N]
//                         [--samples N] [--instances N]
//
// The endpoint is --endpoint, else the current context of ~/.flame/flame.yaml
// with the FLAME_* overrides, else `ember flame-local`'s default
// http://127.0.0.1:8080. With --service the client registers (or updates)
// "pi" to run that binary; the same client runs against a Flame cluster.
#include <ember/flame_client.hpp>

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <string_view>

namespace fc = ember::flame::client;

namespace {

struct Options {
  std::string endpoint;
  std::string service;
  uint64_t tasks = 100;
  uint64_t samples = 1'000'000;  // per task
  uint32_t instances = 0;        // 0: one per CPU
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "ember-flame-pi-client: %s\n"
               "usage: ember-flame-pi-client [--endpoint URL] [--service PATH] [--tasks N] "
               "[--samples N] [--instances N]\n",
               why.c_str());
  std::exit(2);
}

uint64_t count(std::string_view flag, std::string_view text, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v == 0 || v > max)
    usage(std::string(flag) + " wants a whole number from 1 to " + std::to_string(max) +
          ", got \"" + std::string(text) + "\"");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage("estimates pi with Flame tasks");
    if (i + 1 >= argc) usage(std::string(a) + " needs a value");
    std::string_view v = argv[++i];
    if (a == "--endpoint") {
      o.endpoint = v;
    } else if (a == "--service") {
      o.service = std::filesystem::absolute(v).string();
    } else if (a == "--tasks") {
      o.tasks = count(a, v, 1'000'000);
    } else if (a == "--samples") {
      o.samples = count(a, v, 1'000'000'000'000ull);
    } else if (a == "--instances") {
      o.instances = static_cast<uint32_t>(count(a, v, 1024));
    } else {
      usage("unknown option " + std::string(a));
    }
  }
  if (o.instances == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.instances = cpus > 0 ? static_cast<uint32_t>(cpus) : 1;
  }
  return o;
}

// --endpoint, else the Flame context (when there is one), else flame-local.
ember::Result<std::string> endpoint_of(const Options& o, std::optional<fc::ClientTls>* tls) {
  if (!o.endpoint.empty()) return std::string(o.endpoint);
  const char* home = std::getenv("HOME");
  bool has_file = home && std::filesystem::exists(std::string(home) + "/.flame/flame.yaml");
  if (!has_file && !std::getenv("FLAME_ENDPOINT")) return std::string("http://127.0.0.1:8080");
  auto ctx = fc::FlameContext::from_file_with_env();
  if (!ctx) return ctx.error();
  auto entry = ctx->current();
  if (!entry) return entry.error();
  *tls = entry->cluster.tls;
  return std::string(entry->cluster.endpoint);
}

int fail(const char* what, const ember::Error& e) {
  std::fprintf(stderr, "ember-flame-pi-client: %s: %s\n", what, e.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  std::optional<fc::ClientTls> tls;
  auto endpoint = endpoint_of(o, &tls);
  if (!endpoint) return fail("cannot read the Flame context", endpoint.error());
  auto conn = fc::connect(*endpoint, tls);
  if (!conn) return fail("cannot connect", conn.error());

  if (!o.service.empty()) {
    fc::ApplicationAttributes app;
    app.command = o.service;
    app.description = "Monte Carlo estimate of pi (examples/flame/pi)";
    app.max_instances = o.instances;
    auto r = (*conn)->register_application("pi", app);
    if (!r && fc::error_code(r.error()) == fc::ErrorCode::already_exists)
      r = (*conn)->update_application("pi", app);
    if (!r) return fail("cannot register application pi", r.error());
  }

  std::string id = "pi-" + std::to_string(getpid()) + "-" +
                   std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  auto ssn = (*conn)->create_session(
      {.id = id, .application = "pi", .min_instances = o.instances, .max_instances = o.instances});
  if (!ssn) return fail("cannot create a session of application pi", ssn.error());
  std::fprintf(stderr, "ember-flame-pi-client: session %s on %s: %llu tasks of %llu samples\n",
               id.c_str(), endpoint->c_str(), static_cast<unsigned long long>(o.tasks),
               static_cast<unsigned long long>(o.samples));

  // Every task in flight at once: the calls start on the connection's loop
  // thread and the last one to finish fulfils the promise.
  struct Tally {
    uint64_t left = 0, hits = 0, failed = 0;
    std::string first_error;
    std::promise<void> done;
  };
  auto tally = std::make_shared<Tally>();
  tally->left = o.tasks;
  auto started = std::chrono::steady_clock::now();
  ember::Bytes input = ember::Bytes::copy(std::to_string(o.samples));
  (*conn)->post([tally, id, input, n = o.tasks](fc::AsyncClient& client) {
    for (uint64_t i = 0; i < n; ++i) {
      client.run_task(id, input, nullptr, [tally](ember::Result<fc::Task> t) {
        uint64_t hits = 0;
        bool ok = t && t->is_succeed() && t->output;
        if (ok) {
          std::string_view out = t->output->view();
          auto [end, ec] = std::from_chars(out.data(), out.data() + out.size(), hits);
          ok = ec == std::errc() && end == out.data() + out.size();
        }
        if (ok) {
          tally->hits += hits;
        } else if (tally->failed++ == 0) {
          tally->first_error = !t                  ? t.error().message
                               : t->events.empty() ? "task " + t->id + " ended without output"
                               : t->events.back().message ? *t->events.back().message
                                                          : "task " + t->id + " failed";
        }
        if (--tally->left == 0) tally->done.set_value();
      });
    }
  });
  tally->done.get_future().wait();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  auto closed = (*conn)->close_session(id);
  if (tally->failed) {
    std::fprintf(stderr, "ember-flame-pi-client: %llu of %llu tasks failed; the first: %s\n",
                 static_cast<unsigned long long>(tally->failed),
                 static_cast<unsigned long long>(o.tasks), tally->first_error.c_str());
    return 1;
  }
  if (!closed) return fail("cannot close the session", closed.error());
  double samples = static_cast<double>(o.samples) * static_cast<double>(o.tasks);
  std::printf("pi is about %.6f (%llu tasks, %.0f samples, %u instances, %.2f s)\n",
              4.0 * static_cast<double>(tally->hits) / samples,
              static_cast<unsigned long long>(o.tasks), samples, o.instances, seconds);
  return 0;
}
