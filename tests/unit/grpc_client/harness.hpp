// Test harness for grpc::Channel and grpc::ServerConnection on real loops:
// a one-loop reactor on a thread with a Channel on it, grpcio peers
// (grpc_peer.py, grpc_client_peer.py) as child processes.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/tls.hpp"
#include "ember/reactor.hpp"
#include "protocols/grpc/channel.hpp"
#include "tests/unit/support/python_peer.hpp"

namespace ember::grpc::test {

using namespace std::chrono_literals;

using ember::test::have_grpcio;
using ember::test::run_command;
using ember::test::services_required;

// The grpcio server (grpc_peer.py).
class Peer : public ember::test::PythonPeer {
 public:
  explicit Peer(std::vector<std::string> extra = {}) : PythonPeer(with_script(std::move(extra))) {}

 private:
  static std::vector<std::string> with_script(std::vector<std::string> extra) {
    extra.insert(extra.begin(), EMBER_GRPC_PEER);
    return extra;
  }
};

// What one call delivered.
struct Outcome {
  std::vector<std::string> messages;
  std::optional<Status> status;
  std::optional<std::string> unary_message;
};

// A one-loop reactor on a thread with a Channel on it.
class Harness {
 public:
  Harness(Channel::Target target, Channel::Options options = {})
      : reactor_(one_loop()), thread_([this] { reactor_.run(); }) {
    on_loop([&] {
      channel_ = std::make_unique<Channel>(reactor_.loop(0), std::move(target), options);
    });
  }
  ~Harness() {
    on_loop([&] { channel_.reset(); });
    reactor_.stop();
    thread_.join();
  }

  template <class F>
  void on_loop(F fn) {
    std::promise<void> p;
    auto f = p.get_future();
    reactor_.loop(0).post([&](Loop&) {
      fn();
      p.set_value();
    });
    f.get();
  }

  // Starts a call; `sink` must outlive it. `on_first` runs (on the loop)
  // after the first streamed message.
  uint64_t start_stream(std::string path, std::string request, Outcome& sink,
                        std::promise<void>& done, CallOptions options = {},
                        std::function<void(Channel&, uint64_t)> on_first = {}) {
    uint64_t id = 0;
    on_loop([&] {
      auto id_box = std::make_shared<uint64_t>(0);
      id = channel_->server_streaming(
          path, Bytes::copy(request),
          [this, &sink, on_first, id_box](Bytes m) {
            sink.messages.push_back(m.to_string());
            if (sink.messages.size() == 1 && on_first) on_first(*channel_, *id_box);
          },
          [&sink, &done](Status s) {
            sink.status = std::move(s);
            done.set_value();
          },
          options);
      *id_box = id;
    });
    return id;
  }

  Outcome stream(std::string path, std::string request, CallOptions options = {},
                 std::function<void(Channel&, uint64_t)> on_first = {}) {
    Outcome out;
    std::promise<void> done;
    start_stream(std::move(path), std::move(request), out, done, options, std::move(on_first));
    wait(done);
    return out;
  }

  Outcome unary(std::string path, std::string request, CallOptions options = {}) {
    Outcome out;
    std::promise<void> done;
    on_loop([&] {
      channel_->unary(
          path, Bytes::copy(request),
          [&](Status s, std::optional<Bytes> m) {
            out.status = std::move(s);
            if (m) out.unary_message = m->to_string();
            done.set_value();
          },
          options);
    });
    wait(done);
    return out;
  }

  // Starts two calls and destroys the channel from the first callback,
  // which runs inside the session's feed(). Returns how many callbacks ran
  // (the other call is dropped without one).
  int destroy_from_callback(const std::string& path) {
    std::promise<void> done;
    auto callbacks = std::make_shared<int>(0);
    on_loop([&] {
      for (int i = 0; i < 2; ++i) {
        channel_->unary(path, Bytes::copy(std::string_view("x")),
                        [this, callbacks, &done](Status, std::optional<Bytes>) {
                          if (++*callbacks > 1) return;
                          channel_.reset();
                          done.set_value();
                        });
      }
    });
    wait(done);
    int n = 0;
    on_loop([&] { n = *callbacks; });  // the loop has gone past that feed
    return n;
  }

  // Destroys the channel from a streamed message's callback.
  void destroy_from_stream_message(const std::string& path, const std::string& request) {
    std::promise<void> done;
    on_loop([&] {
      channel_->server_streaming(
          path, Bytes::copy(request),
          [this, &done](Bytes) {
            if (!channel_) return;
            channel_.reset();
            done.set_value();
          },
          [](Status) {});
    });
    wait(done);
    on_loop([] {});
  }

  void reopen(Channel::Target target) {
    on_loop([&] { channel_ = std::make_unique<Channel>(reactor_.loop(0), std::move(target)); });
  }

  void wait(std::promise<void>& done) {
    // A guard fails the test instead of hanging it.
    if (done.get_future().wait_for(60s) != std::future_status::ready) {
      ADD_FAILURE() << "no status within 60 s";
      std::abort();  // the callbacks still reference this frame
    }
  }

  size_t in_flight() {
    size_t n = 0;
    on_loop([&] { n = channel_->calls_in_flight(); });
    return n;
  }

 private:
  static ReactorOptions one_loop() {
    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    return o;
  }
  Reactor reactor_;
  std::thread thread_;
  std::unique_ptr<Channel> channel_;
};

inline std::string numbered(int i) {
  return "message " + std::to_string(i);
}

}  // namespace ember::grpc::test
