// The HTTP/1.1 client against a raw TCP server written here: hostile and
// malformed responses, timeouts, the keep-alive retry path, cancellation,
// backpressure. Each failure asserts the exact error text.
#include "tests/unit/http1_client/client_harness.hpp"

namespace ember::http1::test {
namespace {

// Answers every request on a connection with `response`, until EOF.
RawServer::Script answer_all(std::string response) {
  return [response](int fd, int) {
    while (!read_request(fd).empty())
      send_all(fd, response);
  };
}

// Reads one request, sends `response` and closes.
RawServer::Script answer_once(std::string response) {
  return [response](int fd, int) {
    if (read_request(fd).empty()) return;
    send_all(fd, response);
  };
}

ClientOptions small_limits() {
  ClientOptions o;
  o.response_head_timeout = 5000ms;
  o.max_response_head_bytes = 16384;
  o.max_response_body_bytes = 1000;
  return o;
}

std::string head_of_size(size_t total) {
  // "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Fill: <pad>\r\n\r\n"
  std::string start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Fill: ";
  std::string end = "\r\n\r\n";
  return start + std::string(total - start.size() - end.size(), 'a') + end;
}

TEST(Http1ClientRaw, SimpleGetAndKeepAlive) {
  RawServer server(answer_all("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"));
  Harness h(small_limits());
  for (int i = 0; i < 3; ++i) {
    Outcome o = h.fetch({.url = server.url("/a?b=c")});
    ASSERT_TRUE(o.ok) << o.error;
    EXPECT_EQ(o.status, 200);
    EXPECT_EQ(o.reason, "OK");
    EXPECT_EQ(o.body, "hello");
  }
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(h.on_loop([&] { return h.client().idle_connections(); }), 1u);
}

TEST(Http1ClientRaw, RequestHeadOnTheWire) {
  std::promise<std::string> seen;
  RawServer server([&](int fd, int) {
    seen.set_value(read_request(fd));
    send_all(fd, "HTTP/1.1 204 No Content\r\n\r\n");
  });
  Harness h;
  Field fields[] = {{"X-Test", "1"}};
  Outcome o = h.fetch({.method = "POST",
                       .url = server.url("/up#frag"),
                       .headers = fields,
                       .body = Bytes::copy(std::string_view("abc"))});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.status, 204);
  std::string req = seen.get_future().get();
  EXPECT_EQ(req, "POST /up HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                     "\r\nX-Test: 1\r\nContent-Length: 3\r\n\r\nabc");
}

TEST(Http1ClientRaw, BadStatusLine) {
  RawServer server(answer_once("HTTP/1.1 2x0 OK\r\n\r\n"));
  Harness h;
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_EQ(o.error, "GET " + server.url("/x") + ": invalid response: malformed status line");
  EXPECT_EQ(o.code, -EPROTO);
}

TEST(Http1ClientRaw, HeadAtTheLimitPasses) {
  RawServer server(answer_once(head_of_size(16384)));
  Harness h(small_limits());
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_TRUE(o.ok) << o.error;
}

TEST(Http1ClientRaw, HeadOneOverTheLimit) {
  RawServer server(answer_once(head_of_size(16385)));
  Harness h(small_limits());
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_EQ(o.error, "GET " + server.url("/x") + ": response head over 16384 bytes");
}

TEST(Http1ClientRaw, BodyAtTheLimitPasses) {
  RawServer server(
      answer_once("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'b')));
  Harness h(small_limits());
  Outcome o = h.fetch({.url = server.url("/x")});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body.size(), 1000u);
}

TEST(Http1ClientRaw, ContentLengthBodyOverTheLimit) {
  RawServer server(
      answer_once("HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n" + std::string(1001, 'b')));
  Harness h(small_limits());
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_EQ(o.error, "GET " + server.url("/x") + ": response body over 1000 bytes");
  EXPECT_EQ(o.code, -EMSGSIZE);
}

TEST(Http1ClientRaw, ChunkedBodyOverTheLimit) {
  RawServer server(answer_once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" +
                               std::string(1000, 'b') + "\r\n1\r\nc\r\n0\r\n\r\n"));
  Harness h(small_limits());
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_EQ(o.error, "GET " + server.url("/x") + ": response body over 1000 bytes");
}

TEST(Http1ClientRaw, ContentLengthWithTransferEncoding) {
  RawServer server(
      answer_once("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  Harness h;
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_EQ(o.error, "GET " + server.url("/x") +
                         ": invalid response: Content-Length with Transfer-Encoding");
}

TEST(Http1ClientRaw, BadChunkSize) {
  RawServer server(
      answer_once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"));
  Harness h;
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_EQ(o.error, "GET " + server.url("/x") + ": invalid response: invalid chunk size");
}

TEST(Http1ClientRaw, ChunkedBodyDecoded) {
  RawServer server(answer_once(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"));
  Harness h;
  Outcome o = h.fetch({.url = server.url("/x")});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body, "abcde");
}

TEST(Http1ClientRaw, EarlyCloseMidBody) {
  RawServer server(answer_once("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"));
  Harness h;
  Outcome o = h.fetch({.url = server.url("/x")});
  EXPECT_EQ(o.error, "GET " + server.url("/x") + ": connection closed before the response ended");
  EXPECT_EQ(o.body, "0123456789");
}

TEST(Http1ClientRaw, BodyDelimitedByClose) {
  RawServer server(answer_once("HTTP/1.0 200 OK\r\n\r\nuntil the end"));
  Harness h;
  Outcome o = h.fetch({.url = server.url("/x")});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body, "until the end");
}

TEST(Http1ClientRaw, ConnectionCloseIsNotReused) {
  RawServer server(
      answer_all("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"));
  Harness h;
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(h.fetch({.url = server.url("/x")}).ok);
  EXPECT_EQ(server.accepted(), 2);
}

TEST(Http1ClientRaw, HeadAnd304HaveNoBody) {
  RawServer server([](int fd, int) {
    std::string req;
    while (!(req = read_request(fd)).empty()) {
      if (req.starts_with("HEAD"))
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n");
      else
        send_all(fd, "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n");
    }
  });
  Harness h;
  Outcome a = h.fetch({.method = "HEAD", .url = server.url("/x")});
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.body, "");
  Outcome b = h.fetch({.url = server.url("/x")});
  ASSERT_TRUE(b.ok) << b.error;
  EXPECT_EQ(b.status, 304);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(Http1ClientRaw, ServerNeverAnswers) {
  RawServer server([](int fd, int) {
    read_request(fd);
    wait_eof(fd);
  });
  ClientOptions o;
  o.response_head_timeout = 200ms;
  Harness h(o);
  Outcome r = h.fetch({.url = server.url("/slow")});
  EXPECT_EQ(r.error, "GET " + server.url("/slow") +
                         ": timed out after 200 ms waiting for the response head");
  EXPECT_EQ(r.code, -ETIMEDOUT);
}

TEST(Http1ClientRaw, RequestDeadline) {
  RawServer server([](int fd, int) {
    read_request(fd);
    wait_eof(fd);
  });
  ClientOptions o;
  o.request_timeout = 150ms;
  Harness h(o);
  Outcome r = h.fetch({.url = server.url("/slow")});
  EXPECT_EQ(r.error, "GET " + server.url("/slow") + ": timed out after 150 ms (request deadline)");
}

// The server answers the first request, reads the second on the same
// connection and closes without a byte: the client retries on a new one.
RawServer::Script close_second() {
  return [](int fd, int index) {
    if (index == 0) {
      read_request(fd);
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr1");
      read_request(fd);
      return;  // closed without answering
    }
    while (!read_request(fd).empty())
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr2");
  };
}

TEST(Http1ClientRaw, ReusedConnectionClosedIsRetried) {
  RawServer server(close_second());
  Harness h;
  ASSERT_EQ(h.fetch({.url = server.url("/1")}).body, "r1");
  Outcome o = h.fetch(
      {.method = "PUT", .url = server.url("/2"), .body = Bytes::copy(std::string_view("data"))});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body, "r2");
  EXPECT_EQ(server.accepted(), 2);
}

TEST(Http1ClientRaw, NonIdempotentIsNotRetried) {
  RawServer server(close_second());
  Harness h;
  ASSERT_EQ(h.fetch({.url = server.url("/1")}).body, "r1");
  Outcome o = h.fetch({.method = "POST", .url = server.url("/2")});
  EXPECT_EQ(o.error,
            "POST " + server.url("/2") + ": server closed the connection before responding");
  EXPECT_EQ(server.accepted(), 1);
}

TEST(Http1ClientRaw, ConnectionRefused) {
  uint16_t port = free_port();
  Harness h;
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/x";
  Outcome o = h.fetch({.url = url});
  EXPECT_EQ(o.error, "GET " + url + ": connect: connection refused");
  EXPECT_EQ(o.code, -ECONNREFUSED);
}

TEST(Http1ClientRaw, UnresolvableHost) {
  Harness h;
  Outcome o = h.fetch({.url = "http://no-such-host.invalid/x"});
  EXPECT_TRUE(o.error.starts_with("GET http://no-such-host.invalid/x: resolve: ")) << o.error;
}

TEST(Http1ClientRaw, InvalidRequests) {
  Harness h;
  struct Case {
    std::string_view method, url, error;
  } cases[] = {
      {"GET", "ftp://h/x", "GET ftp://h/x: unsupported URL scheme (http or https only)"},
      {"GET", "/relative", "GET /relative: not an absolute URL"},
      {"GET", "http:///x", "GET http:///x: no host in URL"},
      {"GET", "http://u@h/x", "GET http://u@h/x: user info in URL is not supported"},
      {"GET", "http://h:70000/", "GET http://h:70000/: invalid port in URL"},
      {"GET", "http://h/a b", "GET http://h/a b: invalid character in URL path"},
      {"G T", "http://h/", "G T http://h/: invalid method"},
  };
  for (const Case& c : cases) {
    Collector col;
    auto r = h.start({.method = c.method, .url = c.url}, col);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, c.error);
  }
  Field host[] = {{"Host", "evil"}};
  Collector col;
  auto r = h.start({.url = "http://h/", .headers = host}, col);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "GET http://h/: header field Host is set by the client");
}

TEST(Http1ClientRaw, CancelClosesTheConnection) {
  std::promise<void> closed;
  std::promise<void> got;
  RawServer server([&](int fd, int) {
    read_request(fd);
    got.set_value();
    if (wait_eof(fd)) closed.set_value();
  });
  Harness h;
  Collector c;
  auto handle = h.start({.url = server.url("/x")}, c);
  ASSERT_TRUE(handle);
  got.get_future().wait();
  h.on_loop([&] {
    EXPECT_TRUE(handle->active());
    handle->cancel();
    EXPECT_FALSE(handle->active());
  });
  EXPECT_EQ(closed.get_future().wait_for(20s), std::future_status::ready);
  // No callback came, and a later request still works (on a new connection).
  EXPECT_FALSE(c.out.done);
}

TEST(Http1ClientRaw, PauseAndResumeDelivery) {
  std::string body(300'000, 'z');
  RawServer server(answer_once("HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + body));
  ClientOptions opts;
  opts.max_response_body_bytes = 1 << 20;
  Harness h(opts);
  Collector c;
  std::promise<void> paused;
  bool once = false;
  c.body_hook = [&](Collector&, const Bytes&) {
    if (once) return Action::proceed;
    once = true;
    paused.set_value();
    return Action::pause;
  };
  auto handle = h.start({.url = server.url("/x")}, c);
  ASSERT_TRUE(handle);
  paused.get_future().wait();
  size_t before = h.on_loop([&] { return c.out.body.size(); });
  EXPECT_LT(before, body.size());
  EXPECT_FALSE(h.on_loop([&] { return c.out.done; }));
  h.on_loop([&] { handle->resume_response(); });
  Outcome o = h.wait(std::move(handle), c);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body, body);
}

TEST(Http1ClientRaw, QueuesBeyondMaxConnections) {
  RawServer server(answer_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  ClientOptions opts;
  opts.max_connections_per_origin = 1;
  Harness h(opts);
  Collector c[4];
  std::vector<Result<RequestHandle>> hs;
  for (auto& col : c)
    hs.push_back(h.start({.url = server.url("/q")}, col));
  for (int i = 0; i < 4; ++i) {
    Outcome o = h.wait(std::move(hs[i]), c[i]);
    EXPECT_TRUE(o.ok) << o.error;
  }
  EXPECT_EQ(server.accepted(), 1);
}

TEST(Http1ClientRaw, FetchBlocking) {
  RawServer server(answer_all("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"));
  Harness h;
  auto r = fetch_blocking(h.client(), {.url = server.url("/x")});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->header("x-a"), "b");
  auto one = fetch_blocking(h.loop(), {.url = server.url("/y")});
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->body, "hello");
  // On the loop thread it refuses instead of deadlocking.
  auto self = h.on_loop([&] { return fetch_blocking(h.client(), {.url = server.url("/z")}); });
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().message,
            "GET " + server.url("/z") +
                ": fetch_blocking called on the loop's own thread (it would wait for itself)");
}

TEST(Http1ClientRaw, InterimResponsesAreSkipped) {
  RawServer server(
      answer_once("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  Harness h;
  Outcome o = h.fetch({.url = server.url("/x")});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.status, 200);
  EXPECT_EQ(o.body, "ok");
}

TEST(Http1ClientRaw, IdleConnectionClosedAfterIdleTimeout) {
  std::promise<void> eof;
  RawServer server([&](int fd, int) {
    read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    if (wait_eof(fd)) eof.set_value();  // the client closed the idle connection
  });
  ClientOptions o;
  o.idle_timeout = 50ms;
  Harness h(o);
  ASSERT_TRUE(h.fetch({.url = server.url("/x")}).ok);
  EXPECT_EQ(eof.get_future().wait_for(20s), std::future_status::ready);
}

TEST(Http1ClientRaw, UnsolicitedBytesOnAnIdleConnectionDropIt) {
  std::promise<void> sent;
  RawServer server([&](int fd, int index) {
    read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    if (index == 0) {
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nX");  // nobody asked
      sent.set_value();
      wait_eof(fd);
    }
  });
  Harness h;
  ASSERT_TRUE(h.fetch({.url = server.url("/x")}).ok);
  sent.get_future().wait();
  // The stray response is not taken as the answer to the next request.
  Outcome o = h.fetch({.url = server.url("/y")});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body, "1");
}

// A paused consumer of a "Connection: close" response: the server has sent
// everything and closed before delivery resumes; nothing is lost.
TEST(Http1ClientRaw, PausedConsumerAndServerClose) {
  std::string body(500'000, 'q');
  std::promise<void> server_done;
  RawServer server([&](int fd, int) {
    read_request(fd);
    send_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 500000\r\n\r\n" + body);
    ::shutdown(fd, SHUT_WR);
    server_done.set_value();
    wait_eof(fd);
  });
  ClientOptions opts;
  opts.max_response_body_bytes = 1 << 20;
  Harness h(opts);
  Collector c;
  bool once = false;
  c.body_hook = [&](Collector&, const Bytes&) {
    if (once) return Action::proceed;
    once = true;
    return Action::pause;
  };
  auto handle = h.start({.url = server.url("/x")}, c);
  ASSERT_TRUE(handle);
  server_done.get_future().wait();
  h.on_loop([&] { handle->resume_response(); });
  Outcome o = h.wait(std::move(handle), c);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.body.size(), body.size());
}

// The upload source is pulled only as fast as the server reads: the lead of
// pulled bytes over received bytes stays bounded (socket buffers plus
// upload_high_water), far below the 64 MiB body.
TEST(Http1ClientRaw, UploadRespectsBackpressure) {
  constexpr uint64_t kTotal = 64ull << 20;
  std::atomic<uint64_t> pulled{0};
  std::atomic<uint64_t> max_lead{0};
  RawServer server([&](int fd, int) {
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    std::string head;
    char buf[16 * 1024];
    uint64_t got = 0;
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(fd, buf, 1, 0);
      if (n <= 0) return;
      head.append(buf, 1);
    }
    while (got < kTotal) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      got += static_cast<uint64_t>(n);
      uint64_t lead = pulled.load() - got;
      if (lead > max_lead.load()) max_lead = lead;
    }
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    wait_eof(fd);
  });
  Harness h;
  Bytes piece = Bytes::from(std::string(256 * 1024, 'u'));
  BodySource src;
  src.length = kTotal;
  src.pull = [&] {
    if (pulled.load() == kTotal) return BodyChunk::end();
    pulled += piece.size();
    return BodyChunk::data(piece);
  };
  Outcome o = h.fetch({.method = "PUT", .url = server.url("/up"), .source = std::move(src)});
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(pulled.load(), kTotal);
  std::printf("largest lead of pulled over received bytes: %llu KiB\n",
              static_cast<unsigned long long>(max_lead.load() / 1024));
  EXPECT_LT(max_lead.load(), 16ull << 20);
}

// cancel() from inside on_body: no further callback, the connection closes,
// and the client goes on working.
TEST(Http1ClientRaw, CancelFromABodyCallback) {
  std::promise<void> closed;
  RawServer server([&](int fd, int index) {
    read_request(fd);
    if (index == 0) {
      send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + std::string(300'000, 'c'));
      if (wait_eof(fd)) closed.set_value();
      return;
    }
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  });
  Harness h;
  Collector c;
  RequestHandle handle;
  int after_cancel = 0;
  bool cancelled = false;
  c.body_hook = [&](Collector&, const Bytes&) {
    if (cancelled) ++after_cancel;
    cancelled = true;
    handle.cancel();
    return Action::proceed;
  };
  ASSERT_TRUE(h.on_loop([&] {
    auto r = h.client().request({.url = server.url("/x")}, c);
    if (r) handle = *r;
    return static_cast<bool>(r);
  }));
  EXPECT_EQ(closed.get_future().wait_for(20s), std::future_status::ready);
  Outcome next = h.fetch({.url = server.url("/y")});
  EXPECT_EQ(next.body, "ok");
  h.on_loop([&] {
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(after_cancel, 0);
    EXPECT_FALSE(c.out.done);
  });
}

// A server that refuses an upload answers at once and closes with the body
// unread, so its kernel resets the connection. The client's next write fails,
// but the answer already sits in its receive buffer: the caller gets the 413,
// not "connection reset".
TEST(Http1ClientRaw, AnEarlyAnswerToAnUploadSurvivesTheReset) {
  RawServer server([](int fd, int) {
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1)
      head.push_back(c);
    send_all(fd,
             "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n"
             "Connection: close\r\n\r\ntoo big!");
    // Closed by the harness with the body unread: a reset, not a FIN.
  });
  Harness h;
  for (int round = 0; round < 5; ++round) {
    Bytes piece = Bytes::from(std::string(256 * 1024, 'u'));
    constexpr uint64_t kTotal = 64ull << 20;
    BodySource src;
    src.length = kTotal;
    uint64_t pulled = 0;
    src.pull = [&pulled, piece] {
      if (pulled == kTotal) return BodyChunk::end();
      pulled += piece.size();
      return BodyChunk::data(piece);
    };
    Outcome o = h.fetch({.method = "PUT", .url = server.url("/up"), .source = std::move(src)});
    ASSERT_TRUE(o.ok) << "round " << round << ": " << o.error;
    EXPECT_EQ(o.status, 413);
    EXPECT_EQ(o.body, "too big!");
  }
}

}  // namespace
}  // namespace ember::http1::test
