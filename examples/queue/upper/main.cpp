// A queue microservice on Ember: for request N it reads object N of bucket
// "in", writes its upper-cased text as object N of bucket "out", records a
// row in PostgreSQL, and routes N by a bool case: true when the text is
// longer than 16 bytes.
//
//   ember-queue-upper [CONFIG_HOST]   (default: $CONFIG_HOST, else
//                                      http://127.0.0.1:8000)
//
// The config service must know "upper" ({host}/upper, /upper/in, /upper/out)
// and /rabbitmq, /db and /object-storage; scripts/run.sh sets all of it up.
// EMBER_METRICS=host:port serves Prometheus metrics. SIGTERM finishes the
// work in flight and exits 0.
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "ember/queue.hpp"

using namespace ember::queue;

int main(int argc, char** argv) {
  const char* env_host = std::getenv("CONFIG_HOST");
  std::string host = argc > 1 ? argv[1] : env_host ? env_host : "http://127.0.0.1:8000";

  MicroserviceOptions options;
  if (const char* metrics = std::getenv("EMBER_METRICS")) options.metrics_listen = metrics;

  Microservice service(
      "upper", host,
      [](uint64_t request, const ReadFileFn& read_file, const WriteFileFn& write_file,
         Database& db) -> ProcessResult {
        std::string text = read_file("in", request).read_all();
        for (char& c : text)
          c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        write_file("out", request).write(text);

        auto made = db.exec(
            "CREATE TABLE IF NOT EXISTS upper_log (request bigint PRIMARY KEY, bytes bigint, "
            "at timestamptz DEFAULT now())");
        if (!made) throw std::runtime_error(made.error().message);
        auto row = db.exec(
            "INSERT INTO upper_log (request, bytes) VALUES ($1, $2) "
            "ON CONFLICT (request) DO UPDATE SET bytes = EXCLUDED.bytes, at = now()",
            {std::to_string(request), std::to_string(text.size())});
        if (!row) throw std::runtime_error(row.error().message);

        return {{request, text.size() > 16}};
      },
      options);
  return service.start();
}
