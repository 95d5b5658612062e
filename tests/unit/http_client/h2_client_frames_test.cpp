// The HTTP/2 client against servers written frame by frame (prior
// knowledge): the edges nginx does not show on demand. An early answer to an
// upload that is still going; a paused consumer whose body (and the
// connection's end) arrive meanwhile; requests queued behind the server's
// stream limit when the connection just closes; a response that breaks
// Content-Length (nghttp2 resets it: an invalid response, not the server's
// reset).
#include <atomic>
#include <set>

#include "tests/unit/http_client/frames.hpp"
#include "tests/unit/http_client/harness.hpp"

namespace ember::http::test {
namespace {

using http1::test::send_all;
using namespace frames;

// Starts a GET whose consumer pauses at its first `pauses` body pieces and
// resumes each `delay` later (from another thread, through the loop).
Outcome paused_get(Harness& h, const std::string& url, size_t pauses,
                   std::chrono::milliseconds delay) {
  Collector c;
  RequestHandle handle;
  Harness* hp = &h;
  c.body_hook = [&](Collector& self, const Bytes&) {
    if (self.out.chunks > pauses) return http1::Action::proceed;
    std::thread([hp, &handle, delay] {
      std::this_thread::sleep_for(delay);
      hp->on_loop([&] { handle.resume_response(); });
    }).detach();
    return http1::Action::pause;
  };
  auto r = h.on_loop([&] {
    auto x = h.client().request({.url = url}, c);
    if (x) handle = *x;
    return x;
  });
  Outcome o = h.wait(std::move(r), c, 10s);
  std::this_thread::sleep_for(delay + 50ms);  // the last resume has run
  return o;
}

TEST(H2ClientFrames, APausedConsumerDoesNotTimeOutOnWhatArrivedMeanwhile) {
  RawServer srv([](int fd, int) {
    serve(fd, settings(), [&](const Frame& f) {
      if (f.type == 1)
        send_all(fd, ok(f.stream, false) + data(f.stream, "a", false) + data(f.stream, "b", true));
      return true;
    });
  });
  Harness h(h2c(300ms));  // the resume comes later than the silence allowed
  Outcome o = paused_get(h, srv.url("/p"), 1, 800ms);
  EXPECT_TRUE(o.ok) << o.code << " " << o.error;
  EXPECT_EQ(o.body, "ab");
}

TEST(H2ClientFrames, AResponseHeldForAPausedConsumerOutlivesItsConnection) {
  RawServer srv([](int fd, int) {
    serve(fd, settings(), [&](const Frame& f) {
      if (f.type != 1) return true;
      send_all(fd, ok(f.stream, false) + data(f.stream, "a", false) + data(f.stream, "b", false) +
                       data(f.stream, "c", true) + goaway(f.stream));
      return false;  // and close
    });
    lingering_close(fd);
  });
  Harness h(h2c(5000ms));
  Outcome o = paused_get(h, srv.url("/p"), 2, 200ms);  // pauses at "a" and again at "b"
  EXPECT_TRUE(o.ok) << o.code << " " << o.error;
  EXPECT_EQ(o.body, "abc");
}

TEST(H2ClientFrames, AnEarlyAnswerEndsTheUploadAndFreesTheStream) {
  std::atomic<int> resets{0};
  RawServer srv([&](int fd, int) {
    std::set<int32_t> answered;
    serve(fd, settings({{3, 2}}), [&](const Frame& f) {  // two streams at a time
      if (f.type == 1 && answered.insert(f.stream).second)
        send_all(fd, ok(f.stream, true));  // complete, while the upload goes on
      if (f.type == 3) ++resets;
      return true;
    });
  });
  Harness h(h2c(1000ms));
  for (int i = 0; i < 3; ++i) {  // a third would wait for a slot the others hold
    http1::BodySource src;
    src.pull = [sent = false]() mutable {
      if (sent) return http1::BodyChunk::wait();  // never ends
      sent = true;
      return http1::BodyChunk::data(Bytes::copy(std::string_view("xx")));
    };
    Outcome o = h.fetch({.method = "POST", .url = srv.url("/up"), .source = std::move(src)});
    ASSERT_TRUE(o.ok) << i << ": " << o.error;
    EXPECT_EQ(o.status, 200);
  }
  Outcome get = h.fetch({.url = srv.url("/after")});
  EXPECT_TRUE(get.ok) << get.error;
  EXPECT_GE(resets.load(), 3);
}

TEST(H2ClientFrames, RequestsNeverSentGoAgainWhenTheConnectionCloses) {
  std::atomic<int> first_headers{0};
  RawServer srv([&](int fd, int index) {
    serve(fd, settings({{3, 1}}), [&](const Frame& f) {  // one stream at a time
      if (f.type != 1) return true;
      if (index > 0 || ++first_headers == 1) {
        send_all(fd, ok(f.stream, true));
        return true;
      }
      return false;  // closes with this stream unanswered (a restart)
    });
  });
  Harness h(h2c());
  ASSERT_TRUE(h.fetch({.url = srv.url("/1")}).ok);
  std::vector<std::unique_ptr<Collector>> cs(3);
  std::vector<Result<RequestHandle>> hs;
  h.on_loop([&] {
    for (auto& c : cs) {
      c = std::make_unique<Collector>();
      hs.push_back(h.client().request({.url = srv.url("/b")}, *c));
    }
  });
  int ok_count = 0, lost = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    Outcome o = h.wait(std::move(hs[i]), *cs[i]);
    ok_count += o.ok;
    lost += o.error.find("connection lost") != std::string::npos;
  }
  EXPECT_EQ(first_headers.load(), 2);  // the one sent may have been processed: it fails
  EXPECT_EQ(lost, 1);
  EXPECT_EQ(ok_count, 2);  // the two never sent were answered on a new connection
}

TEST(H2ClientFrames, ABodyThatBreaksContentLengthIsAnInvalidResponse) {
  RawServer srv([](int fd, int) {
    serve(fd, settings(), [&](const Frame& f) {
      // :status 200, content-length: 5 (literal, indexed name 28), then 2 bytes.
      if (f.type == 1)
        send_all(fd, frame(1, kEndHeaders, f.stream,
                           std::string("\x88\x0f\x0d\x01"
                                       "5",
                                       5)) +
                         data(f.stream, "ab", true));
      return true;
    });
  });
  Harness h(h2c());
  Outcome o = h.fetch({.url = srv.url("/cl")});
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.code, -EPROTO) << o.error;
  EXPECT_NE(o.error.find("invalid response"), std::string::npos) << o.error;
}

}  // namespace
}  // namespace ember::http::test
