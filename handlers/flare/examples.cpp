// The bundled example flares, served by `ember serve` without a config.
#include "ember/flare.hpp"

namespace ember::flare {
namespace {

// 200 "hello": the smallest useful answer (the benchmark's flare).
class Hello final : public Flare {
 public:
  Action handle_request(Context& ctx) override {
    ctx.response.set_header("content-type", "text/plain");
    ctx.response.set_body(Bytes::unowned(std::string_view("hello")));
    return Action::respond;
  }
};

// Answers with the request body (by reference: no copy), its content type,
// and what arrived, in headers.
class Echo final : public Flare {
 public:
  Action handle_request(Context& ctx) override {
    const Request& req = ctx.request;
    ctx.response.set_header("content-type",
                            req.header("content-type").value_or("application/octet-stream"));
    ctx.response.set_header("x-echo-method", req.method());
    ctx.response.set_header("x-echo-url", req.url());
    ctx.response.set_header("x-echo-protocol", req.protocol());
    ctx.response.set_body(req.body());
    return Action::respond;
  }
};

// WebSocket echo: every message back with its own opcode, zero-copy.
class WsEcho final : public Flare {
 public:
  Action handle_request(Context& ctx) override {
    ctx.response.set_status(426);
    ctx.response.set_header("upgrade", "websocket");
    ctx.response.set_body(std::string_view("this flare speaks WebSocket: connect with ws://\n"));
    return Action::respond;
  }
  bool accepts_websocket() const noexcept override { return true; }
  void ws_message(WsContext& ws) override { ws.send(ws.data(), ws.is_text()); }
};

// WebSocket chat: every text message goes to everyone in the room named by
// the path (across all loops), prefixed with the sender's connection id.
class Chat final : public Flare {
 public:
  Action handle_request(Context& ctx) override {
    ctx.response.set_status(426);
    ctx.response.set_header("upgrade", "websocket");
    ctx.response.set_body(std::string_view("chat speaks WebSocket: connect with ws://\n"));
    return Action::respond;
  }
  bool accepts_websocket() const noexcept override { return true; }
  void ws_open(WsContext& ws) override {
    ws.join(ws.upgrade_request().path());
    ws.broadcast(ws.upgrade_request().path(),
                 ws.scratch.copy("* " + std::to_string(ws.connection_id()) + " joined"), true);
  }
  void ws_message(WsContext& ws) override {
    std::string line = std::to_string(ws.connection_id()) + ": ";
    line.append(ws.data().view());
    ws.broadcast(ws.upgrade_request().path(), ws.scratch.copy(line), ws.is_text());
  }
  void ws_close(WsContext& ws) override {
    ws.broadcast(ws.upgrade_request().path(),
                 ws.scratch.copy("* " + std::to_string(ws.connection_id()) + " left"), true);
  }
};

}  // namespace

void add_example_flares(Registry& registry) {
  registry.add("hello", std::make_shared<Hello>());
  registry.add("echo", std::make_shared<Echo>());
  registry.add("ws-echo", std::make_shared<WsEcho>());
  registry.add("chat", std::make_shared<Chat>());
}

}  // namespace ember::flare
