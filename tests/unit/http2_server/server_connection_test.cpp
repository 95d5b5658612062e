// http2::ServerConnection on a real loop and loopback socket: a small
// protocol (TestProtocol) answers requests, and a raw HTTP/2 client written
// here sends frames by hand, so each test can send what a broken or hostile
// peer would and check the exact frames that come back. Waits only guard
// against hangs.
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ember/reactor.hpp"
#include "protocols/http2/server_connection.hpp"
#include "protocols/http2/session.hpp"

namespace ember::http2 {
namespace {

using namespace std::chrono_literals;

// ---- the protocol under the connection ---------------------------------------

struct Config {
  Settings settings;
  ServerConnectionOptions options;
  uint64_t stream_timeout_ms = 0;  // 0: requests have no deadline
  bool abandon_on_open = false;
  size_t gather_bytes = 0;  // POST bodies gathered in place when > 0
};

// What the server saw, for the test thread.
struct Observed {
  std::atomic<int> expired{0};
  std::atomic<size_t> gathered{0};
  std::atomic<size_t> in_place{0};  // body bytes the kernel read into the gather buffer
  std::atomic<bool> body_ok{false};
};

struct Stream {
  int32_t id = 0;
  uint64_t started_ms = 0;
  bool answered = false;
  Body out;
};

// Answers every complete request 200 "ok"; an incomplete one past its
// deadline 408. Gathers a POST body in one buffer, offering it as the read
// target while a DATA payload is pending.
class TestProtocol final : public SessionConnection, private SessionHandler {
 public:
  TestProtocol(Loop& loop, const Config& config, Observed& seen)
      : SessionConnection(config.options, *this, config.settings, loop.slab()),
        loop_(loop),
        config_(config),
        seen_(seen) {}

 private:
  bool idle() const noexcept override { return open_ == 0; }

  bool direct_read(ReadTarget& target) override {
    int32_t id;
    size_t left = session_.pending_data(&id);
    if (left == 0 || !gather_ || gathered_ >= gather_.capacity()) return false;
    target.storage = gather_.storage();
    target.data = gather_.data() + gathered_;
    target.size = std::min(left, gather_.capacity() - gathered_);
    return true;
  }

  void opened(Connection&) override {
    if (config_.abandon_on_open) abandon(NGHTTP2_PROTOCOL_ERROR);
  }

  uint64_t next_deadline_ms() const noexcept override {
    if (config_.stream_timeout_ms == 0) return kNoDeadline;
    uint64_t due = kNoDeadline;
    for (const Stream& s : streams_)
      if (s.id != 0 && !s.answered) due = std::min(due, s.started_ms + config_.stream_timeout_ms);
    return due;
  }

  void expire_streams(uint64_t now) override {
    for (Stream& s : streams_) {
      if (s.id == 0 || s.answered || now - s.started_ms < config_.stream_timeout_ms) continue;
      ++seen_.expired;
      answer(s, "408");
    }
  }

  Stream* find(int32_t id) {
    for (Stream& s : streams_)
      if (s.id == id) return &s;
    return nullptr;
  }

  void on_headers_begin(int32_t id) override {
    if (find(id)) return;
    Stream* s = find(0);
    if (!s) s = &streams_.emplace_back();
    s->id = id;
    s->started_ms = loop_.now_ms();
    s->answered = false;
    ++open_;
    if (config_.gather_bytes && !gather_) gather_ = MutableBuffer::allocate(config_.gather_bytes);
  }
  void on_header(int32_t, std::string_view, std::string_view) override {}
  void on_headers_end(int32_t) override {}
  using SessionConnection::on_data;  // the socket's; this one is the stream's
  void on_data(int32_t, const Bytes& chunk) override {
    if (!gather_ || gathered_ + chunk.size() > gather_.capacity()) return;
    if (chunk.data() == gather_.data() + gathered_)
      seen_.in_place += chunk.size();
    else
      std::memcpy(gather_.data() + gathered_, chunk.data(), chunk.size());
    gathered_ += chunk.size();
  }
  void on_remote_end(int32_t id) override {
    Stream* s = find(id);
    if (!s || s->answered) return;
    if (gather_) {
      bool ok = true;
      for (size_t i = 0; i < gathered_; ++i)
        ok = ok && gather_.data()[i] == static_cast<uint8_t>(i * 7);
      seen_.gathered = gathered_;
      seen_.body_ok = ok;
    }
    answer(*s, "200");
  }
  void on_stream_close(int32_t id, uint32_t) override {
    Stream* s = find(id);
    if (!s) return;
    if (!s->answered) deadline_moved();
    s->id = 0;
    --open_;
  }
  void on_body_end(int32_t) override {}

  void answer(Stream& s, std::string_view status) {
    s.answered = true;
    const Header headers[] = {{":status", status}, {"content-length", "2"}};
    s.out.reset({}, Bytes::copy("ok"));
    session_.submit_response(s.id, headers, &s.out);
  }

  Loop& loop_;
  const Config& config_;
  Observed& seen_;
  std::deque<Stream> streams_;  // id 0: a free record; never moved (nghttp2 reads `out`)
  size_t open_ = 0;
  MutableBuffer gather_;
  size_t gathered_ = 0;
};

// ---- the raw client -----------------------------------------------------------

struct Frame {
  uint8_t type = 0, flags = 0;
  int32_t stream = 0;
  std::string payload;
};

constexpr uint8_t kData = 0, kHeaders = 1, kRst = 3, kSettings = 4, kPing = 6, kGoaway = 7,
                  kWindowUpdate = 8, kContinuation = 9;
constexpr uint8_t kEndStream = 1, kAck = 1, kEndHeaders = 4;

std::string frame(uint8_t type, uint8_t flags, int32_t stream, std::string_view payload) {
  std::string f(9, '\0');
  size_t n = payload.size();
  f[0] = static_cast<char>(n >> 16);
  f[1] = static_cast<char>(n >> 8);
  f[2] = static_cast<char>(n);
  f[3] = static_cast<char>(type);
  f[4] = static_cast<char>(flags);
  for (int i = 0; i < 4; ++i)
    f[5 + i] = static_cast<char>(static_cast<uint32_t>(stream) >> (24 - 8 * i));
  f.append(payload);
  return f;
}

// GET or POST / with :authority "localhost", HPACK without the dynamic table.
std::string request_block(bool post) {
  std::string b;
  b += static_cast<char>(post ? 0x83 : 0x82);  // :method
  b += static_cast<char>(0x86);                // :scheme http
  b += static_cast<char>(0x84);                // :path /
  b += '\x01';                                 // :authority, literal without indexing
  b += '\x09';
  b += "localhost";
  return b;
}

uint32_t u32(std::string_view p, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<uint8_t>(p[at + i]);
  return v;
}

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{20, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    nghttp2_hd_inflate_new(&inflater_);
  }
  ~Client() {
    nghttp2_hd_inflate_del(inflater_);
    ::close(fd_);
  }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  void start() {
    send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    send(frame(kSettings, 0, 0, ""));
  }

  // Reads frames until `done` holds for one (true) or the socket ends or
  // times out (false). Every frame read is kept in `frames`.
  bool read_until(const std::function<bool(const Frame&)>& done) {
    for (;;) {
      while (buffer_.size() >= 9) {
        size_t len = (static_cast<uint8_t>(buffer_[0]) << 16) |
                     (static_cast<uint8_t>(buffer_[1]) << 8) | static_cast<uint8_t>(buffer_[2]);
        if (buffer_.size() < 9 + len) break;
        Frame f;
        f.type = static_cast<uint8_t>(buffer_[3]);
        f.flags = static_cast<uint8_t>(buffer_[4]);
        f.stream = static_cast<int32_t>(u32(buffer_, 5) & 0x7fffffffu);
        f.payload = buffer_.substr(9, len);
        buffer_.erase(0, 9 + len);
        if (f.type == kHeaders) statuses_[f.stream] = status(f);
        if ((f.type == kHeaders || f.type == kData) && (f.flags & kEndStream))
          ended_.push_back(f.stream);
        frames.push_back(f);
        if (done(frames.back())) return true;
      }
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof = n == 0;
        return false;
      }
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }
  // Reads until the server closes; true when it did (not a timeout).
  bool read_to_eof() {
    read_until([](const Frame&) { return false; });
    return eof;
  }
  // The server's SETTINGS (acknowledged) and its connection WINDOW_UPDATE.
  void handshake() {
    bool settings = false, window = false;
    ASSERT_TRUE(read_until([&](const Frame& f) {
      settings = settings || (f.type == kSettings && !(f.flags & kAck));
      window = window || (f.type == kWindowUpdate && f.stream == 0);
      return settings && window;
    }));
    send(frame(kSettings, kAck, 0, ""));
  }

  // The :status of a HEADERS frame (decoded in frame order: the HPACK
  // table is the connection's).
  std::string status(const Frame& f) {
    std::string found;
    auto* in = reinterpret_cast<const uint8_t*>(f.payload.data());
    size_t left = f.payload.size();
    for (;;) {
      nghttp2_nv nv;
      int flags = 0;
      ssize_t n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, 1);
      if (n < 0) return "hpack error";
      in += n;
      left -= static_cast<size_t>(n);
      if (flags & NGHTTP2_HD_INFLATE_EMIT) {
        std::string_view name(reinterpret_cast<const char*>(nv.name), nv.namelen);
        if (name == ":status") found.assign(reinterpret_cast<const char*>(nv.value), nv.valuelen);
      }
      if (flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_);
        return found;
      }
      if (n == 0 && left == 0) return found;
    }
  }
  // Reads until the answer on `stream` is complete; returns its status.
  std::string answer(int32_t stream) {
    auto ended = [&] { return std::find(ended_.begin(), ended_.end(), stream) != ended_.end(); };
    if (!ended() && !read_until([&](const Frame&) { return ended(); })) return "no answer";
    return statuses_[stream];
  }
  // Returns once the server has processed everything sent before: PING
  // frames are answered in order.
  void sync() {
    send(frame(kPing, 0, 0, "syncsync"));
    ASSERT_TRUE(read_until([](const Frame& f) { return f.type == kPing && (f.flags & kAck); }));
  }
  const Frame* goaway() const {
    for (const Frame& f : frames)
      if (f.type == kGoaway) return &f;
    return nullptr;
  }

  std::vector<Frame> frames;
  bool eof = false;

 private:
  int fd_ = -1;
  std::string buffer_;
  std::map<int32_t, std::string> statuses_;
  std::vector<int32_t> ended_;
  nghttp2_hd_inflater* inflater_ = nullptr;
};

uint32_t goaway_code(const Frame* f) {
  return f && f->payload.size() >= 8 ? u32(f->payload, 4) : UINT32_MAX;
}

// ---- the server ---------------------------------------------------------------

class Server {
 public:
  explicit Server(Config config) : config_(std::move(config)), reactor_(options()) {
    auto port = reactor_.listen_tcp("127.0.0.1", 0, [this](Loop& loop) {
      return std::make_unique<TestProtocol>(loop, config_, seen);
    });
    EXPECT_TRUE(port.has_value());
    port_ = port ? *port : 0;
    thread_ = std::thread([this] { rc_ = reactor_.run(); });
  }
  ~Server() {
    reactor_.stop();
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  void stop() { reactor_.stop(); }
  // Waits for run() to return after stop(); its exit code.
  int join() {
    thread_.join();
    return rc_;
  }
  Observed seen;

 private:
  static ReactorOptions options() {
    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    o.drain_timeout = 10s;
    return o;
  }
  Config config_;
  Reactor reactor_;
  uint16_t port_ = 0;
  int rc_ = -1;
  std::thread thread_;
};

// ---- tests --------------------------------------------------------------------

TEST(ServerConnection, AnswersRequestsAndStaysOpen) {
  Server server({});
  Client c(server.port());
  c.start();
  c.send(frame(kHeaders, kEndHeaders | kEndStream, 1, request_block(false)));
  c.send(frame(kHeaders, kEndHeaders | kEndStream, 3, request_block(false)));
  EXPECT_EQ(c.answer(1), "200");
  EXPECT_EQ(c.answer(3), "200");
  c.send(frame(kHeaders, kEndHeaders | kEndStream, 5, request_block(false)));
  EXPECT_EQ(c.answer(5), "200");
  EXPECT_EQ(c.goaway(), nullptr);
}

TEST(ServerConnection, DrainSendsGoawayAndClosesOnceStreamsFinish) {
  Server server({});
  Client c(server.port());
  c.start();
  c.send(frame(kHeaders, kEndHeaders, 1, request_block(true)));  // body still to come
  c.sync();
  server.stop();
  ASSERT_TRUE(c.read_until([](const Frame& f) { return f.type == kGoaway; }));
  EXPECT_EQ(goaway_code(c.goaway()), NGHTTP2_NO_ERROR);
  // The stream in flight finishes; then the connection closes.
  c.send(frame(kData, kEndStream, 1, "x"));
  EXPECT_EQ(c.answer(1), "200");
  EXPECT_TRUE(c.read_to_eof());
  EXPECT_EQ(server.join(), 0);
}

TEST(ServerConnection, DrainClosesAtOnceWhenIdle) {
  Server server({});
  Client c(server.port());
  c.start();
  c.sync();
  server.stop();
  EXPECT_TRUE(c.read_to_eof());
  EXPECT_EQ(goaway_code(c.goaway()), NGHTTP2_NO_ERROR);
  EXPECT_EQ(server.join(), 0);
}

TEST(ServerConnection, IdleTimeoutSendsGoawayAndCloses) {
  Config config;
  config.options.idle_timeout_ms = 30;
  Server server(config);
  Client c(server.port());
  c.start();
  c.send(frame(kHeaders, kEndHeaders | kEndStream, 1, request_block(false)));
  EXPECT_EQ(c.answer(1), "200");
  EXPECT_TRUE(c.read_to_eof());
  const Frame* g = c.goaway();
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(goaway_code(g), NGHTTP2_NO_ERROR);
  EXPECT_EQ(u32(g->payload, 0), 1u);  // last stream: the one answered
}

TEST(ServerConnection, IdleTimeoutWithStalledStreamEndsTheConnection) {
  Config config;
  config.options.idle_timeout_ms = 30;  // no stream deadline: the stream stalls
  Server server(config);
  Client c(server.port());
  c.start();
  c.send(frame(kHeaders, kEndHeaders, 1, request_block(true)));
  // A graceful GOAWAY would wait for stream 1 forever; the connection ends.
  EXPECT_TRUE(c.read_to_eof());
  EXPECT_EQ(goaway_code(c.goaway()), NGHTTP2_NO_ERROR);
  for (const Frame& f : c.frames)
    EXPECT_FALSE(f.type == kHeaders && f.stream == 1) << "stream 1 was answered";
}

TEST(ServerConnection, StreamDeadlineAnswersTheStreamAndKeepsTheConnection) {
  Config config;
  config.stream_timeout_ms = 30;
  config.options.idle_timeout_ms = 60'000;
  Server server(config);
  Client c(server.port());
  c.start();
  c.send(frame(kHeaders, kEndHeaders, 1, request_block(true)));
  EXPECT_EQ(c.answer(1), "408");
  EXPECT_EQ(server.seen.expired.load(), 1);
  c.send(frame(kHeaders, kEndHeaders | kEndStream, 3, request_block(false)));
  EXPECT_EQ(c.answer(3), "200");
  EXPECT_EQ(c.goaway(), nullptr);
}

TEST(ServerConnection, ProtocolErrorSendsGoawayAndCloses) {
  Server server({});
  Client c(server.port());
  c.start();
  c.send(frame(kData, 0, 0, "x"));  // DATA on stream 0
  EXPECT_TRUE(c.read_to_eof());
  EXPECT_EQ(goaway_code(c.goaway()), NGHTTP2_PROTOCOL_ERROR);
}

TEST(ServerConnection, InputAfterTheSessionFailedIsIgnored) {
  Server server({});
  Client c(server.port());
  c.start();
  // The request after the broken frame is not answered.
  c.send(frame(kData, 0, 0, "x") +
         frame(kHeaders, kEndHeaders | kEndStream, 1, request_block(false)));
  EXPECT_TRUE(c.read_to_eof());
  for (const Frame& f : c.frames)
    EXPECT_FALSE(f.type == kHeaders && f.stream == 1) << "answered after the error";
}

TEST(ServerConnection, RstStreamClosesOnlyThatStream) {
  Server server({});
  Client c(server.port());
  c.start();
  c.send(frame(kHeaders, kEndHeaders, 1, request_block(true)));
  c.send(frame(kRst, 0, 1, std::string("\0\0\0\x8", 4)));  // CANCEL
  c.send(frame(kHeaders, kEndHeaders | kEndStream, 3, request_block(false)));
  EXPECT_EQ(c.answer(3), "200");
  EXPECT_EQ(c.goaway(), nullptr);
}

// Settings::max_continuations through the connection: at the limit the
// request is answered, one past it the connection ends ENHANCE_YOUR_CALM.
std::string split_block(size_t continuations) {
  std::string block = request_block(false);
  std::string out = frame(kHeaders, kEndStream, 1, block.substr(0, 1));
  for (size_t i = 1; i <= continuations; ++i) {
    bool last = i == continuations;
    out += frame(kContinuation, last ? kEndHeaders : 0, 1,
                 block.substr(i, last ? std::string::npos : 1));
  }
  return out;
}

// Settings::max_unanswered_resets through the connection: `resets` streams
// opened and cancelled at once, then a GET on the next stream id.
std::string reset_burst(int32_t resets) {
  std::string burst;
  for (int32_t id = 1; id < 2 * resets; id += 2) {
    burst += frame(kHeaders, kEndHeaders, id, request_block(true));
    burst += frame(kRst, 0, id, std::string("\0\0\0\x8", 4));  // CANCEL
  }
  return burst + frame(kHeaders, kEndHeaders | kEndStream, 2 * resets + 1, request_block(false));
}

// At a flood limit: `wire` gets stream `id` answered, the connection stays.
void expect_served(const Config& config, const std::string& wire, int32_t id) {
  Server server(config);
  Client c(server.port());
  c.start();
  c.send(wire);
  EXPECT_EQ(c.answer(id), "200");
  EXPECT_EQ(c.goaway(), nullptr);
}

// One past it: GOAWAY ENHANCE_YOUR_CALM, the connection ends, and stream
// `id` (sent after the flood) is not answered.
void expect_calmed(const Config& config, const std::string& wire, int32_t id) {
  Server server(config);
  Client c(server.port());
  c.start();
  c.send(wire);
  EXPECT_TRUE(c.read_to_eof());
  EXPECT_EQ(goaway_code(c.goaway()), NGHTTP2_ENHANCE_YOUR_CALM);
  for (const Frame& f : c.frames)
    EXPECT_FALSE(f.type == kHeaders && f.stream == id) << "answered after the flood";
}

Config flood_limits() {
  Config config;
  config.settings.max_continuations = 3;
  config.settings.max_unanswered_resets = 5;
  return config;
}

TEST(ServerConnection, ContinuationsAtTheLimitAreServed) {
  expect_served(flood_limits(), split_block(3), 1);
}
TEST(ServerConnection, ContinuationFloodEndsTheConnectionCalmly) {
  expect_calmed(flood_limits(), split_block(4), 1);
}
TEST(ServerConnection, RapidResetAtTheLimitIsTolerated) {
  expect_served(flood_limits(), reset_burst(5), 11);
}
TEST(ServerConnection, RapidResetEndsTheConnectionCalmly) {
  expect_calmed(flood_limits(), reset_burst(6), 13);
}

TEST(ServerConnection, AbandonSendsGoawayWithTheCodeAndCloses) {
  Config config;
  config.abandon_on_open = true;
  Server server(config);
  Client c(server.port());
  // Nothing sent: unread input would turn the close into a reset.
  EXPECT_TRUE(c.read_to_eof());
  EXPECT_EQ(goaway_code(c.goaway()), NGHTTP2_PROTOCOL_ERROR);
}

// A large body under flow control: the DATA payloads past the first read land
// in the protocol's gather buffer (read_target), not in the read buffer.
TEST(ServerConnection, LargeBodyIsReadInPlace) {
  constexpr size_t kBody = 1u << 20;
  Config config;
  config.gather_bytes = kBody;
  Server server(config);
  Client c(server.port());
  c.start();
  c.handshake();
  std::string body(kBody, '\0');
  for (size_t i = 0; i < kBody; ++i)
    body[i] = static_cast<char>(static_cast<uint8_t>(i * 7));
  std::string wire = frame(kHeaders, kEndHeaders, 1, request_block(true));
  constexpr size_t kFrame = 16384;  // the default SETTINGS_MAX_FRAME_SIZE
  for (size_t at = 0; at < kBody; at += kFrame) {
    bool last = at + kFrame >= kBody;
    wire += frame(kData, last ? kEndStream : 0, 1, std::string_view(body).substr(at, kFrame));
  }
  std::thread sender([&] { c.send(wire); });
  EXPECT_EQ(c.answer(1), "200");
  sender.join();
  EXPECT_EQ(server.seen.gathered.load(), kBody);
  EXPECT_TRUE(server.seen.body_ok.load());
  EXPECT_GT(server.seen.in_place.load(), 0u);
}

}  // namespace
}  // namespace ember::http2
