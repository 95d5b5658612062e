// Ember's side of the queue relay benchmark: the real queue::Microservice
// with an identity `process` (result = request, case true). Configuration
// from the config service, secrets from pass, as in production.
//
//   ember-queue-relay [--no-confirms] NAME CONFIG_HOST PREFETCH [WORKERS [TEMP_DIR]]
//
// --no-confirms: MicroserviceOptions::publisher_confirms = false (the
// reference's settle: results acked as written, with the inbound ack).
// WORKERS "loop": MicroserviceOptions::process_on_loop (no worker threads).
// TEMP_DIR: MicroserviceOptions::temp_dir (default $TMPDIR or /tmp); the
// runtime makes and removes a directory there per request.
//
// Serves until SIGTERM; exit status is Microservice::start()'s.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ember/queue.hpp"

int main(int argc, char** argv) {
  ember::queue::MicroserviceOptions opt;
  std::vector<char*> args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-confirms")
      opt.publisher_confirms = false;
    else
      args.push_back(argv[i]);
  }
  argc = static_cast<int>(args.size());
  argv = args.data();
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: %s [--no-confirms] NAME CONFIG_HOST PREFETCH [WORKERS [TEMP_DIR]]\n",
                 argv[0]);
    return 2;
  }
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
