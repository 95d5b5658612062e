// ember-flame-run-task-load: Flame's run_task (CreateTask, then WatchTask to
// the final state) through a flame.v1.Frontend, driven by Ember's C++ client
// SDK with a fixed number of tasks in flight on one connection. The grpcio
// twin is run_task_load.py; perf/flame_local/bench.py runs both.
//
//   ember-flame-run-task-load --endpoint URL --service PATH [--tasks N]
//       [--in-flight K] [--payload BYTES] [--instances I] [--warmup N]
//
// Prints one JSON line: tasks, seconds, rate, p50/p99 latency (µs, create to
// final state) and this process's CPU per task (µs).
#include <ember/flame_client.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fc = ember::flame::client;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string endpoint, service;
  uint64_t tasks = 10'000, in_flight = 1, payload = 64, instances = 1, warmup = 200;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "ember-flame-run-task-load: %s\n"
               "usage: ember-flame-run-task-load --endpoint URL --service PATH [--tasks N] "
               "[--in-flight K] [--payload BYTES] [--instances I] [--warmup N]\n",
               why.c_str());
  std::exit(2);
}

uint64_t number(std::string_view flag, std::string_view text, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    usage(std::string(flag) + " wants a whole number from " + std::to_string(min) + " to " +
          std::to_string(max) + ", got \"" + std::string(text) + "\"");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") usage("runs Flame tasks through a session manager");
    if (i + 1 >= argc) usage(std::string(a) + " needs a value");
    std::string_view v = argv[++i];
    if (a == "--endpoint")
      o.endpoint = v;
    else if (a == "--service")
      o.service = v;
    else if (a == "--tasks")
      o.tasks = number(a, v, 1, 100'000'000);
    else if (a == "--in-flight")
      o.in_flight = number(a, v, 1, 100'000);
    else if (a == "--payload")
      o.payload = number(a, v, 0, 4u << 20);
    else if (a == "--instances")
      o.instances = number(a, v, 1, 1024);
    else if (a == "--warmup")
      o.warmup = number(a, v, 0, 1'000'000);
    else
      usage("unknown option " + std::string(a));
  }
  if (o.endpoint.empty() || o.service.empty()) usage("--endpoint and --service are required");
  return o;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Runs `n` tasks with `k` in flight on the connection's loop; returns each
// task's latency in µs, or the first error.
struct Batch {
  uint64_t left = 0, started = 0, total = 0, in_flight = 0;
  std::vector<double> latencies;
  std::string error;
  std::promise<void> done;
};

void start_one(fc::AsyncClient& client, const std::shared_ptr<Batch>& b, const std::string& sid,
               const ember::Bytes& input) {
  ++b->started;
  auto t0 = Clock::now();
  client.run_task(sid, input, nullptr, [&client, b, sid, input, t0](ember::Result<fc::Task> t) {
    b->latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!t)
      b->error = t.error().message;
    else if (!t->is_succeed() || !t->output || t->output->view() != input.view())
      b->error = "task " + t->id + " did not echo its input";
    if (b->started < b->total && b->error.empty()) return start_one(client, b, sid, input);
    if (--b->in_flight == 0) b->done.set_value();
  });
}

ember::Result<std::vector<double>> run_batch(fc::Connection& conn, const std::string& sid,
                                             uint64_t n, uint64_t k, const ember::Bytes& input) {
  auto b = std::make_shared<Batch>();
  b->total = n;
  b->in_flight = std::min(n, k);
  b->latencies.reserve(n);
  auto done = b->done.get_future();
  conn.post([b, sid, input](fc::AsyncClient& client) {
    for (uint64_t i = 0, first = b->in_flight; i < first; ++i)
      start_one(client, b, sid, input);
  });
  done.wait();
  if (!b->error.empty()) return ember::Error(b->error);
  return std::move(b->latencies);
}

int fail(const char* what, const ember::Error& e) {
  std::fprintf(stderr, "ember-flame-run-task-load: %s: %s\n", what, e.message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto conn = fc::connect(o.endpoint);
  if (!conn) return fail("cannot connect", conn.error());
  fc::ApplicationAttributes app;
  app.command = o.service;
  app.max_instances = static_cast<uint32_t>(o.instances);
  auto r = (*conn)->register_application("bench-echo", app);
  if (!r && fc::error_code(r.error()) == fc::ErrorCode::already_exists)
    r = (*conn)->update_application("bench-echo", app);
  if (!r) return fail("cannot register bench-echo", r.error());
  std::string sid = "cpp-" + std::to_string(getpid());
  auto inst = static_cast<uint32_t>(o.instances);
  auto ssn = (*conn)->create_session(
      {.id = sid, .application = "bench-echo", .min_instances = inst, .max_instances = inst});
  if (!ssn) return fail("cannot create the session", ssn.error());

  ember::Bytes input = ember::Bytes::copy(std::string(o.payload, 'x'));
  if (o.warmup > 0) {
    auto w = run_batch(**conn, sid, o.warmup, o.in_flight, input);
    if (!w) return fail("warm-up failed", w.error());
  }
  double cpu0 = cpu_seconds();
  auto t0 = Clock::now();
  auto lat = run_batch(**conn, sid, o.tasks, o.in_flight, input);
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = cpu_seconds() - cpu0;
  if (!lat) return fail("tasks failed", lat.error());
  (void)(*conn)->close_session(sid);

  std::sort(lat->begin(), lat->end());
  auto pct = [&](double p) { return (*lat)[static_cast<size_t>(p * (lat->size() - 1))]; };
  std::printf(
      "{\"client\": \"ember-cpp\", \"tasks\": %llu, \"in_flight\": %llu, \"seconds\": %.4f, "
      "\"rate\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"client_cpu_us\": %.2f}\n",
      static_cast<unsigned long long>(o.tasks), static_cast<unsigned long long>(o.in_flight),
      seconds, static_cast<double>(o.tasks) / seconds, pct(0.50), pct(0.99),
      cpu * 1e6 / static_cast<double>(o.tasks));
  return 0;
}
