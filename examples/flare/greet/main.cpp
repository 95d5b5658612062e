// A native flare server: the README's example. Serves `greet` (and the bundled
// examples) from a YAML config given as the first argument.
#include <ember/flare_server.hpp>

#include <cstdio>
#include <string>

namespace flare = ember::flare;

int main(int argc, char** argv) {
  flare::Registry flares;
  flare::add_example_flares(flares);
  flares.add("greet", [](flare::Context& ctx) {
    ctx.response.set_header("content-type", "text/plain");
    ctx.response.set_body("hello, " + std::string(ctx.request.query()));  // copied into the arena
    return flare::Action::respond;
  });
  auto config = argc > 1 ? flare::load_config(argv[1]) : flare::default_config();
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return 2;
  }
  if (argc <= 1) config->routes.insert(config->routes.begin(), {"*", "/greet", "greet", ""});
  flare::Server server(*config, flares);
  if (auto bound = server.bind(); !bound) {
    std::fprintf(stderr, "%s\n", bound.error().message.c_str());
    return 3;
  }
  std::fputs(server.describe().c_str(), stdout);
  return server.run();  // SIGTERM drains, SIGHUP reloads certificates
}
