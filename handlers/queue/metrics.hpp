// A Prometheus scrape endpoint: GET /metrics answers the text exposition
// format that `render` produces at that moment; anything else is 404 (405
// for other methods). One request per connection (Connection: close), a
// 5-second deadline per connection; enough for a scraper, nothing more.
//
// Thread: the listener's connections run on the reactor's loops; `render`
// is called there and must be thread-safe if the reactor has several.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ember/error.hpp"
#include "ember/reactor.hpp"

namespace ember::queue {

using MetricsRenderFn = std::function<std::string()>;

// Listens on host:port (0: any free port) and returns the bound port.
Result<uint16_t> listen_metrics(Reactor& reactor, const std::string& host, uint16_t port,
                                MetricsRenderFn render);

}  // namespace ember::queue
