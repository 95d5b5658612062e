// Internal: state shared by the Reactor and its loops.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/loop_impl.hpp"

namespace ember {

struct Reactor::Impl {
  struct UnixPath {
    std::string path;
    dev_t dev;
    ino_t ino;
  };

  ReactorOptions options;
  std::vector<std::unique_ptr<detail::LoopImpl>> loops;
  std::vector<UnixPath> unix_paths;
  std::atomic<bool> stopping{false};
  std::atomic<bool> forcing{false};
  std::function<void()> drain_hook;
  std::function<void()> reload_hook;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  uv_signal_t sighup;
  bool signals_on = false;
  bool ran = false;

  void request_stop() noexcept;
  void request_force() noexcept;
  void on_loop_finished(detail::LoopImpl& loop) noexcept;
};

}  // namespace ember
