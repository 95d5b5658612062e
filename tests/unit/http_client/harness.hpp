// Test harness for the HTTP client (protocols/http/client.hpp): a one-loop
// reactor on a thread with an http::Client on it, and the HTTP/1.1 client
// tests' collectors, raw servers and child processes.
#pragma once

#include "protocols/http/client.hpp"
#include "tests/unit/http1_client/client_harness.hpp"

namespace ember::http::test {

using http1::test::Collector;
using http1::test::Outcome;
using http1::test::RawServer;
using namespace std::chrono_literals;

// A one-loop reactor on a thread with an http::Client on it.
class Harness {
 public:
  explicit Harness(ClientOptions options = {})
      : reactor_(http1::test::one_loop()), thread_([this] { reactor_.run(); }) {
    on_loop([&] { client_ = std::make_unique<Client>(reactor_.loop(0), std::move(options)); });
  }
  ~Harness() {
    on_loop([&] { client_.reset(); });
    reactor_.stop();
    thread_.join();
  }
  Client& client() { return *client_; }

  template <class F>
  auto on_loop(F fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::promise<R> p;
    auto f = p.get_future();
    reactor_.loop(0).post([&](Loop&) {
      if constexpr (std::is_void_v<R>) {
        fn();
        p.set_value();
      } else {
        p.set_value(fn());
      }
    });
    return f.get();
  }
  Result<RequestHandle> start(http1::ClientRequest q, Collector& c) {
    return on_loop([&] { return client_->request(std::move(q), c); });
  }
  Outcome wait(Result<RequestHandle> h, Collector& c, std::chrono::seconds guard = 60s) {
    if (!h) {
      Outcome o;
      o.done = true;
      o.error = h.error().message;
      o.code = h.error().code;
      return o;
    }
    auto f = c.done.get_future();
    if (f.wait_for(guard) != std::future_status::ready) {
      on_loop([&] { h->cancel(); });
      ADD_FAILURE() << "no answer within the guard";
      return {};
    }
    return f.get();
  }
  Outcome fetch(http1::ClientRequest q) {
    Collector c;
    return wait(start(std::move(q), c), c);
  }

 private:
  Reactor reactor_;
  std::thread thread_;
  std::unique_ptr<Client> client_;
};

inline ClientOptions h2c(std::chrono::milliseconds head_timeout = 2000ms) {
  ClientOptions o;
  o.protocol = Protocol::h2;
  o.http1.response_head_timeout = head_timeout;
  o.http1.connect_timeout = 2000ms;
  return o;
}

}  // namespace ember::http::test
