// The edge server in-process on two loops: concurrent HTTP/1.1 keep-alive
// clients, pipelining, and WebSocket chat rooms whose broadcasts cross loops.
// Runs in the ThreadSanitizer build too, so it asserts behaviour, never speed.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ember/flare_server.hpp"
#include "protocols/websocket/frame.hpp"
#include "protocols/websocket/handshake.hpp"

namespace ember::flare {
namespace {

using namespace std::chrono_literals;

int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{30, 0};  // hang guard
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `marker` has appeared `count` times (or EOF / the guard).
std::string read_until(int fd, std::string_view marker, int count = 1) {
  std::string out;
  char buf[4096];
  auto occurrences = [&] {
    int n = 0;
    for (size_t at = out.find(marker); at != std::string::npos; at = out.find(marker, at + 1))
      ++n;
    return n;
  };
  while (occurrences() < count) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

class EdgeServer : public ::testing::Test {
 protected:
  void SetUp() override {
    add_example_flares(registry_);
    ServerConfig c = default_config();
    c.loops = 2;
    c.listeners[0].port = 0;
    c.beam.allow = {"127.0.0.1"};  // the fetch test fetches from this server
    server_ = std::make_unique<Server>(c, registry_);
    auto bound = server_->bind();
    ASSERT_TRUE(bound) << bound.error().message;
    port_ = server_->ports().at(0);
    runner_ = std::thread([this] { rc_ = server_->run(); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (runner_.joinable()) runner_.join();
    EXPECT_EQ(rc_, 0);
  }

  Registry registry_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::thread runner_;
  int rc_ = -1;
};

TEST_F(EdgeServer, ConcurrentKeepAliveClientsOnBothLoops) {
  constexpr int kClients = 6, kRequests = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      int fd = dial(port_);
      if (fd < 0) return;
      for (int i = 0; i < kRequests; ++i) {
        char body_text[32], req_text[128];
        std::snprintf(body_text, sizeof body_text, "c%dr%d", c, i);
        std::string body = body_text;
        std::snprintf(req_text, sizeof req_text,
                      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
                      body.size(), body_text);
        std::string req = req_text;
        if (!send_all(fd, req)) break;
        std::string resp = read_until(fd, body);
        if (resp.starts_with("HTTP/1.1 200 OK") && resp.ends_with(body)) ++ok;
      }
      ::close(fd);
    });
  }
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
}

TEST_F(EdgeServer, PipelinedRequestsAreAnsweredInOrder) {
  int fd = dial(port_);
  ASSERT_GE(fd, 0);
  auto body = [](int i) {
    char b[16];
    std::snprintf(b, sizeof b, "B%03d", i);
    return std::string(b);
  };
  std::string batch;
  for (int i = 0; i < 50; ++i)
    batch += "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n" + body(i);
  // All 50 in one write; the answers must come back in the same order.
  ASSERT_TRUE(send_all(fd, batch));
  std::string all = read_until(fd, body(49));
  size_t at = 0;
  for (int i = 0; i < 50; ++i) {
    size_t found = all.find("\r\n\r\n" + body(i), at);
    ASSERT_NE(found, std::string::npos) << "answer " << i;
    at = found + 1;
  }
  ::close(fd);
}

// A minimal WebSocket client over the project's own codec (client role).
class WsClient : private websocket::ParserHandler {
 public:
  explicit WsClient(uint16_t port, const std::string& path)
      : parser_(websocket::Role::client, *this), writer_(websocket::Role::client) {
    fd_ = dial(port);
    auto key = websocket::make_client_key();
    IoChain out;
    websocket::ClientRequest req;
    req.host = "t";
    req.target = path;
    EXPECT_TRUE(websocket::write_upgrade_request(out, req, key));
    send(out);
    std::string head = read_until(fd_, "\r\n\r\n");
    ok_ = head.starts_with("HTTP/1.1 101");
    size_t end = head.find("\r\n\r\n");
    if (end != std::string::npos && end + 4 < head.size()) feed(head.substr(end + 4));
  }
  ~WsClient() override {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  void send_text(std::string_view text) {
    IoChain out;
    writer_.write_frame(out, websocket::Opcode::text, Bytes::copy(text));
    send(out);
  }
  // Waits until a message containing `needle` arrives.
  bool wait_for(std::string_view needle) {
    for (;;) {
      for (const std::string& m : messages_)
        if (m.find(needle) != std::string::npos) return true;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      feed(std::string(buf, static_cast<size_t>(n)));
    }
  }

 private:
  void send(IoChain& out) {
    std::string flat;
    for (size_t i = 0; i < out.iov_count(); ++i)
      flat.append(static_cast<const char*>(out.iov()[i].iov_base), out.iov()[i].iov_len);
    send_all(fd_, flat);
  }
  void feed(const std::string& s) { parser_.feed(Bytes::copy(s)); }
  void on_message(websocket::Opcode, const Bytes& payload) override {
    messages_.push_back(payload.to_string());
  }

  int fd_ = -1;
  bool ok_ = false;
  websocket::Parser parser_;
  websocket::Writer writer_;
  std::vector<std::string> messages_;
};

TEST_F(EdgeServer, ChatRoomsBroadcastAcrossLoops) {
  // Enough members that, with two loops, both loops almost surely hold some.
  std::vector<std::unique_ptr<WsClient>> members;
  for (int i = 0; i < 8; ++i) {
    members.push_back(std::make_unique<WsClient>(port_, "/chat/room"));
    ASSERT_TRUE(members.back()->ok());
  }
  WsClient outsider(port_, "/chat/other");
  ASSERT_TRUE(outsider.ok());
  members[3]->send_text("hello from three");
  for (auto& m : members)
    EXPECT_TRUE(m->wait_for("hello from three"));
  outsider.send_text("only here");
  EXPECT_TRUE(outsider.wait_for("only here"));
}

TEST_F(EdgeServer, WebSocketEchoWhileHttpFlows) {
  std::atomic<bool> stop{false};
  std::atomic<int> http_ok{0};
  std::thread http([&] {
    int fd = dial(port_);
    while (!stop) {
      if (!send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")) break;
      if (read_until(fd, "hello").ends_with("hello")) ++http_ok;
    }
    ::close(fd);
  });
  WsClient ws(port_, "/ws");
  ASSERT_TRUE(ws.ok());
  for (int i = 0; i < 100; ++i) {
    char text[32];
    std::snprintf(text, sizeof text, "message %d", i);
    std::string msg = text;
    ws.send_text(msg);
    ASSERT_TRUE(ws.wait_for(msg));
  }
  stop = true;
  http.join();
  EXPECT_GT(http_ok.load(), 0);
}

// Server::set_routes while clients on both loops keep asking: every answer
// comes from one table or another, and the newest table serves on every
// loop once each has taken it.
TEST_F(EdgeServer, RouteTablesAreReplacedUnderLoad) {
  auto answer = [](std::string text) {
    return [text](Context& ctx) {
      ctx.response.set_body(text + ":" + std::to_string(ctx.loop_index()));
      return Action::respond;
    };
  };
  registry_.add("a", answer("from-a"));
  registry_.add("b", answer("from-b"));
  registry_.add("first", answer("from-first"));
  std::vector<LiveRoute> base = server_->routes();
  auto table = [&](const char* flare) {
    std::vector<LiveRoute> routes = base;
    routes.push_back({"*", "/swap", flare, registry_.find(flare)});
    return routes;
  };
  auto ask = [&](std::string_view host, std::string_view path) {
    int fd = dial(port_);
    if (fd < 0) return std::string();
    std::string req = "GET " + std::string(path) + " HTTP/1.1\r\nHost: ";
    req.append(host).append("\r\nConnection: close\r\n\r\n");
    std::string resp = send_all(fd, req) ? read_until(fd, "\x01") : "";  // to EOF
    ::close(fd);
    size_t body = resp.find("\r\n\r\n");
    return body == std::string::npos ? resp : resp.substr(body + 4);
  };

  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      while (!stop) {  // a connection per request: both loops take part
        std::string body = ask("t", "/swap");
        // Before the first table: the default route's "hello".
        if (!body.starts_with("from-a:") && !body.starts_with("from-b:") && body != "hello")
          ++wrong;
        ++answered;
      }
    });
  }
  for (int i = 0; i < 100; ++i) {
    server_->set_routes(table(i % 2 ? "b" : "a"));
    std::this_thread::sleep_for(1ms);
  }
  stop = true;
  for (auto& t : clients)
    t.join();
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(wrong.load(), 0);

  // A `first` route beats an exact-host one; wait until both loops have
  // taken the table, after which nothing stale may answer.
  std::vector<LiveRoute> routes = table("b");
  routes.push_back({"exact.test", "/", "a", registry_.find("a")});
  routes.push_back({"*", "/admin", "first", registry_.find("first"), true});
  server_->set_routes(routes);
  ASSERT_EQ(server_->routes().front().flare_name, "first");
  bool seen[2] = {false, false};
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!(seen[0] && seen[1]) && std::chrono::steady_clock::now() < deadline) {
    std::string body = ask("exact.test", "/admin/x");
    if (body == "from-first:0") seen[0] = true;
    if (body == "from-first:1") seen[1] = true;
  }
  ASSERT_TRUE(seen[0] && seen[1]) << "a loop never took the new table";
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(ask("exact.test", "/admin/x").starts_with("from-first:"));
    EXPECT_TRUE(ask("t", "/swap").starts_with("from-b:"));
    EXPECT_TRUE(ask("exact.test", "/other").starts_with("from-a:"));
  }
}

// A flare that answers with what it knows of the client.
class WhoAmI final : public Flare {
 public:
  Action handle_request(Context& ctx) override {
    ctx.response.set_body(std::string(ctx.request.scheme()) + " " +
                          std::string(ctx.request.remote_address()));
    return Action::respond;
  }
};

// Idle keep-alive connections keep the peer's address in binary; every
// request still sees it, as the client's socket has it.
TEST_F(EdgeServer, FlaresSeeTheClientsAddressOnEveryRequest) {
  std::vector<LiveRoute> routes = server_->routes();
  routes.push_back({"*", "/whoami", "whoami", std::make_shared<WhoAmI>()});
  server_->set_routes(routes);
  for (int c = 0; c < 4; ++c) {  // on both loops
    int fd = dial(port_);
    ASSERT_GE(fd, 0);
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len), 0);
    std::string expected = "http 127.0.0.1:" + std::to_string(ntohs(local.sin_port));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(send_all(fd, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n"));
      std::string got = read_until(fd, expected);
      EXPECT_NE(got.find(expected), std::string::npos) << got;
    }
    ::close(fd);
  }
}

// A flare that sets the fields the server owns: framing, Date, Connection.
class SetsFraming final : public Flare {
 public:
  Action handle_request(Context& ctx) override {
    ctx.response.set_header("Content-Length", "3");
    ctx.response.add_header("transfer-encoding", "chunked");
    ctx.response.set_header("Date", "Mon, 01 Jan 1990 00:00:00 GMT");
    ctx.response.set_header("Connection", "close");
    ctx.response.set_header("x-kept", "yes");
    ctx.response.set_body(std::string_view("hello"));
    return Action::respond;
  }
};

int count_of(const std::string& text, std::string_view needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

// The server frames the answer itself: a flare's Content-Length,
// Transfer-Encoding, Date or Connection would contradict it (a client could
// read the next answer out of this one's body), so they are dropped.
TEST_F(EdgeServer, FramingFieldsAFlareSetsAreTheServersOwn) {
  std::vector<LiveRoute> routes = server_->routes();
  routes.push_back({"*", "/framing", "framing", std::make_shared<SetsFraming>()});
  server_->set_routes(routes);
  int fd = dial(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd,
                       "GET /framing HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /framing HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got = read_until(fd, "hello", 2);
  ::close(fd);
  EXPECT_EQ(count_of(got, "HTTP/1.1 200"), 2) << got;  // still kept alive
  std::string lower = got;
  for (char& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(count_of(lower, "content-length: 5\r\n"), 2) << got;
  EXPECT_EQ(count_of(lower, "content-length:"), 2) << got;
  EXPECT_EQ(count_of(lower, "transfer-encoding"), 0) << got;
  EXPECT_EQ(count_of(lower, "connection:"), 0) << got;
  EXPECT_EQ(count_of(lower, "date:"), 2) << got;
  EXPECT_EQ(count_of(got, "1990"), 0) << got;
  EXPECT_EQ(count_of(got, "x-kept: yes"), 2) << got;
}

// A native flare that fetches (may_wait): it waits on its fiber while both
// loops keep answering, and many such invocations wait at once.
class Fetching final : public Flare {
 public:
  explicit Fetching(uint16_t port) : port_(port) {}
  bool may_wait() const noexcept override { return true; }
  Action handle_request(Context& ctx) override {
    std::string url = "http://127.0.0.1:" + std::to_string(port_) + "/echo";
    HeaderField extra{"x-from", "fetching"};
    FetchRequest req;
    req.method = "POST";
    req.url = url;
    req.headers = {&extra, 1};
    req.body = ctx.request.body().view();
    auto got = ctx.fetch(req);
    if (!got) {
      ctx.response.set_status(502);
      ctx.response.set_body(got.error().message);
      return Action::respond;
    }
    std::string echoed_method;
    for (auto& [n, v] : got->headers)
      if (n == "x-echo-method") echoed_method = v;
    ctx.response.set_body(std::to_string(got->status) + " " + echoed_method + " " + got->body);
    return Action::respond;
  }

 private:
  uint16_t port_;
};

TEST_F(EdgeServer, FlaresThatFetchWaitWithoutHoldingTheirLoop) {
  auto fetching = std::make_shared<Fetching>(port_);
  std::vector<LiveRoute> routes = server_->routes();
  routes.push_back({"*", "/fetch", "fetching", fetching});
  // 127.0.0.1 is allowed, but nothing listens on port 1.
  routes.push_back({"*", "/denied", "denied", std::make_shared<Fetching>(1)});
  server_->set_routes(routes);
  auto post = [&](std::string_view path, std::string_view body) {
    int fd = dial(port_);
    if (fd < 0) return std::string();
    std::string req = "POST " + std::string(path) +
                      " HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n";
    req.append(body);
    std::string resp = send_all(fd, req) ? read_until(fd, "\x01") : "";
    ::close(fd);
    return resp;
  };
  // Each loop takes the new table at its next turn.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  int fresh = 0;
  while (fresh < 10 && std::chrono::steady_clock::now() < deadline)
    fresh = post("/fetch", "warm").ends_with("200 POST warm") ? fresh + 1 : 0;
  ASSERT_EQ(fresh, 10);

  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 25; ++i) {
        std::string body = "c" + std::to_string(c) + "-" + std::to_string(i);
        if (post("/fetch", body).ends_with("200 POST " + body)) ++ok;
      }
    });
  }
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(ok.load(), 8 * 25);
  // A refused connection is an error value, not a crash; the flare answers it.
  std::string denied = post("/denied", "x");
  EXPECT_TRUE(denied.starts_with("HTTP/1.1 502")) << denied;
  EXPECT_NE(denied.find("fetch POST http://127.0.0.1:1/echo"), std::string::npos) << denied;
}

}  // namespace
}  // namespace ember::flare
