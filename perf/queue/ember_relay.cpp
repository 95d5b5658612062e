// Ember's side of the queue relay benchmark: the real queue::Microservice
// with an identity `process` (result = request, case true). Configuration
// from the config service, secrets from pass, as in production.
//
//   ember-queue-relay NAME CONFIG_HOST PREFETCH [WORKERS [TEMP_DIR]]
//
// WORKERS "loop": MicroserviceOptions::process_on_loop (no worker threads).
// TEMP_DIR: MicroserviceOptions::temp_dir (default $TMPDIR or /tmp); the
// runtime makes and removes a directory there per request.
//
// Serves until SIGTERM; exit status is Microservice::start()'s.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ember/queue.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s NAME CONFIG_HOST PREFETCH [WORKERS [TEMP_DIR]]\n", argv[0]);
    return 2;
  }
  ember::queue::MicroserviceOptions opt;
  opt.prefetch = static_cast<uint16_t>(std::atoi(argv[3]));
  std::string workers = argc > 4 ? argv[4] : "1";
  opt.process_on_loop = workers == "loop";
  opt.workers = opt.process_on_loop ? 1 : static_cast<unsigned>(std::atoi(workers.c_str()));
  if (argc > 5) opt.temp_dir = argv[5];
  opt.shutdown_timeout = std::chrono::milliseconds(5000);
  ember::queue::Microservice svc(
      argv[1], argv[2],
      [](uint64_t request, const ember::queue::ReadFileFn&, const ember::queue::WriteFileFn&,
         ember::queue::Database&) -> ember::queue::ProcessResult {
        return {{request, true}};
      },
      opt);
  return svc.start();
}
