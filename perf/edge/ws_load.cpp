// WebSocket echo load generator for the edge benchmark.
//
//   ember-ws-load -p PORT [-h 127.0.0.1] [-P /ws] [-c 64] [-s 32] [-d 5] [-n 0]
//                 [-o FILE] [--stall S]
//
// Opens C connections and does the client handshake on each (checks the 101
// and Sec-WebSocket-Accept), then keeps exactly one masked text frame of S
// bytes in flight per connection: when the echo arrives (and matches what was
// sent, byte for byte), the next frame goes out. Sends are collected and made
// after the batch of events, one write per connection per loop turn, so the
// server sees bursts as it would from many clients. Stops issuing after -d
// seconds or -n messages (0 = no cap), waits for the frames in flight, and
// prints the rate and latency percentiles; -o writes every latency (ns, one
// per line) for plots.
//
// Latency is from just before the write of a frame to the epoll wake-up that
// delivered its echo, into a log-linear histogram (< 0.8 % bucket width).
// The last line is machine-readable:
//   RESULT messages=N seconds=T rate=R p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
// Exit status: 0 ok, 1 connection or protocol error or a wrong echo, 2 usage,
// 4 stalled (no echo for --stall seconds while frames were in flight).
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <string>
#include <vector>

#include "edge_common.hpp"

namespace {

[[noreturn]] void die(const char* fmt, const char* a = "", const char* b = "") {
  std::fprintf(stderr, "ember-ws-load: ");
  std::fprintf(stderr, fmt, a, b);
  std::fprintf(stderr, "\n");
  std::exit(1);
}

// Log-linear histogram of nanoseconds: exact below 128, then 64 buckets per
// power of two.
class Histogram {
 public:
  void add(uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    max_ = std::max(max_, v);
  }
  uint64_t total() const { return total_; }
  uint64_t max() const { return max_; }
  // Nearest-rank percentile, reported as the bucket's midpoint.
  double percentile(double p) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(total_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, total_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(midpoint(i), static_cast<double>(max_));
    }
    return static_cast<double>(max_);
  }

 private:
  static constexpr size_t kBuckets = 64 * 64 + 128;
  static size_t index(uint64_t v) {
    if (v < 128) return v;
    unsigned shift = 63 - static_cast<unsigned>(__builtin_clzll(v)) - 6;
    return std::min<size_t>(shift * 64 + (v >> shift), kBuckets - 1);
  }
  static double midpoint(size_t i) {
    if (i < 128) return static_cast<double>(i);
    size_t shift = i / 64 - 1;
    uint64_t lo = (i - shift * 64) << shift;
    return static_cast<double>(lo) + static_cast<double>(uint64_t{1} << shift) / 2.0;
  }
  uint64_t counts_[kBuckets] = {};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

struct Conn {
  int fd = -1;
  uint32_t id = 0;
  uint64_t seq = 0;
  uint64_t sent_at = 0;
  bool in_flight = false;
  std::string payload;  // what is in flight, to compare with the echo
  std::vector<uint8_t> in;
  size_t in_len = 0;
};

struct Options {
  const char* host = "127.0.0.1";
  int port = 0;
  const char* path = "/ws";
  int conns = 64;
  size_t size = 32;
  double seconds = 5;
  uint64_t max_messages = 0;
  const char* out = nullptr;
  double stall = 5;
};

uint64_t g_rng = 0x9e3779b97f4a7c15ull;
uint32_t rnd32() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return static_cast<uint32_t>(g_rng);
}

void read_full_head(int fd, std::string& got) {
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("handshake: %s", r == 0 ? "server closed" : std::strerror(errno));
    got.append(buf, static_cast<size_t>(r));
    if (got.size() > 65536) die("handshake: response head too large");
  }
}

void handshake(Conn& c, const Options& o) {
  unsigned char raw[16];
  for (auto& b : raw)
    b = static_cast<unsigned char>(rnd32());
  unsigned char key[32];
  int klen = EVP_EncodeBlock(key, raw, sizeof raw);
  std::string k(reinterpret_cast<char*>(key), static_cast<size_t>(klen));
  std::string req = std::string("GET ") + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" +
                    std::to_string(o.port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: " +
                    k + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::write(c.fd, req.data(), req.size()) != static_cast<ssize_t>(req.size()))
    die("handshake write: %s", std::strerror(errno));
  std::string got;
  read_full_head(c.fd, got);
  size_t end = got.find("\r\n\r\n") + 4;
  std::string_view head(got.data(), end);
  if (head.substr(0, 12) != "HTTP/1.1 101") {
    std::string first(head.substr(0, head.find("\r\n")));
    die("handshake refused: %s", first.c_str());
  }
  std::string_view accept = edge::header_value(head, "Sec-WebSocket-Accept");
  if (accept != edge::ws_accept(k)) die("handshake: wrong Sec-WebSocket-Accept");
  // Anything after the head is frame data.
  size_t extra = got.size() - end;
  std::memcpy(c.in.data(), got.data() + end, extra);
  c.in_len = extra;
}

// Builds the next masked text frame for C into OUT (cleared first).
void build_frame(Conn& c, size_t size, std::string& out) {
  // Printable payload (valid UTF-8): connection id, sequence number, filler.
  c.payload.resize(size);
  char head[40];
  int n = std::snprintf(head, sizeof head, "%04x:%012" PRIx64 ":", c.id, c.seq++);
  for (size_t i = 0; i < size; ++i)
    c.payload[i] = i < static_cast<size_t>(n) ? head[i] : static_cast<char>('a' + i % 26);
  out.clear();
  out.push_back(static_cast<char>(0x81));
  if (size < 126) {
    out.push_back(static_cast<char>(0x80 | size));
  } else if (size < 65536) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(size >> 8));
    out.push_back(static_cast<char>(size));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>(static_cast<uint64_t>(size) >> (8 * i)));
  }
  uint32_t m = rnd32();
  uint8_t mask[4] = {static_cast<uint8_t>(m), static_cast<uint8_t>(m >> 8),
                     static_cast<uint8_t>(m >> 16), static_cast<uint8_t>(m >> 24)};
  out.append(reinterpret_cast<char*>(mask), 4);
  for (size_t i = 0; i < size; ++i)
    out.push_back(static_cast<char>(c.payload[i] ^ mask[i & 3]));
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      // A small frame at one in flight never fills a socket buffer; if it
      // does, wait for room rather than keep a send queue.
      usleep(50);
      continue;
    }
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

void usage() {
  std::fprintf(
      stderr,
      "usage: ember-ws-load -p PORT [-h HOST] [-P PATH] [-c CONNS] [-s SIZE] [-d SECONDS]\n"
      "                     [-n MAX_MESSAGES] [-o LATENCY_FILE] [--stall SECONDS]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto need = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "-p")
      o.port = std::atoi(need());
    else if (a == "-h")
      o.host = need();
    else if (a == "-P")
      o.path = need();
    else if (a == "-c")
      o.conns = std::atoi(need());
    else if (a == "-s")
      o.size = std::strtoull(need(), nullptr, 10);
    else if (a == "-d")
      o.seconds = std::atof(need());
    else if (a == "-n")
      o.max_messages = std::strtoull(need(), nullptr, 10);
    else if (a == "-o")
      o.out = need();
    else if (a == "--stall")
      o.stall = std::atof(need());
    else
      usage();
  }
  if (o.port <= 0 || o.conns <= 0 || o.size == 0 || o.size > (1u << 20) || o.seconds <= 0) usage();
  signal(SIGPIPE, SIG_IGN);
  edge::raise_nofile();
  g_rng ^= static_cast<uint64_t>(getpid()) << 32 ^ edge::now_ns();

  std::vector<Conn> conns(static_cast<size_t>(o.conns));
  sockaddr_in addr = edge::loopback_addr(o.host, o.port);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < conns.size(); ++i) {
    Conn& c = conns[i];
    c.id = static_cast<uint32_t>(i);
    c.in.resize(o.size + 65536);
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      die("connect: %s", std::strerror(errno));
    edge::set_nodelay(c.fd);
    timeval tv{5, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    handshake(c, o);
    edge::set_nonblocking(c.fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }

  Histogram hist;
  std::vector<uint64_t> raw;
  if (o.out) raw.reserve(1u << 20);
  std::vector<Conn*> to_send;
  for (auto& c : conns)
    to_send.push_back(&c);
  std::vector<epoll_event> events(static_cast<size_t>(o.conns));
  std::string frame;
  frame.reserve(o.size + 16);
  uint64_t issued = 0, done = 0, in_flight = 0;
  const uint64_t start = edge::now_ns();
  const uint64_t deadline = start + static_cast<uint64_t>(o.seconds * 1e9);
  uint64_t last_progress = start;
  uint64_t end = start;

  for (;;) {
    uint64_t now = edge::now_ns();
    bool stop = now >= deadline || (o.max_messages != 0 && issued >= o.max_messages);
    for (Conn* c : to_send) {
      if (stop || (o.max_messages != 0 && issued >= o.max_messages)) break;
      build_frame(*c, o.size, frame);
      c->sent_at = edge::now_ns();
      if (!write_all(c->fd, frame)) die("write: %s", std::strerror(errno));
      c->in_flight = true;
      ++issued;
      ++in_flight;
    }
    to_send.clear();
    if (in_flight == 0) {
      end = edge::now_ns();
      break;
    }
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait: %s", std::strerror(errno));
    if (n == 0) {
      if (static_cast<double>(edge::now_ns() - last_progress) > o.stall * 1e9) {
        std::fprintf(stderr,
                     "ember-ws-load: STALLED: no echo for %.1f s with %" PRIu64 " in flight\n",
                     o.stall, in_flight);
        return 4;
      }
      continue;
    }
    for (int i = 0; i < n; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      ssize_t r = ::read(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) die("connection %s by the server", r == 0 ? "closed" : std::strerror(errno));
      uint64_t t = edge::now_ns();
      c.in_len += static_cast<size_t>(r);
      size_t used = 0;
      for (;;) {
        const uint8_t* p = c.in.data() + used;
        size_t avail = c.in_len - used;
        if (avail < 2) break;
        uint64_t len = p[1] & 0x7f;
        size_t hdr = 2;
        if (len == 126) {
          if (avail < 4) break;
          len = (uint64_t{p[2]} << 8) | p[3];
          hdr = 4;
        } else if (len == 127) {
          if (avail < 10) break;
          len = 0;
          for (int k = 0; k < 8; ++k)
            len = (len << 8) | p[2 + k];
          hdr = 10;
        }
        if (p[1] & 0x80) die("the server sent a masked frame");
        if (len > c.in.size() - 10) die("frame too large");
        if (avail < hdr + len) break;
        uint8_t op = p[0] & 0x0f;
        if (op == 8) die("the server closed the WebSocket");
        if (op == 9 || op == 10) {  // ping/pong: not ours to answer in a load test
          used += hdr + len;
          continue;
        }
        if (p[0] != 0x81) die("unexpected frame (not a final text frame)");
        if (!c.in_flight) die("an echo nobody asked for");
        if (len != c.payload.size() || std::memcmp(p + hdr, c.payload.data(), len) != 0)
          die("wrong echo on connection: got \"%s\" want \"%s\"",
              std::string(reinterpret_cast<const char*>(p + hdr), len).c_str(), c.payload.c_str());
        uint64_t lat = t - c.sent_at;
        hist.add(lat);
        if (o.out) raw.push_back(lat);
        c.in_flight = false;
        --in_flight;
        ++done;
        to_send.push_back(&c);
        used += hdr + len;
      }
      if (used > 0) {
        std::memmove(c.in.data(), c.in.data() + used, c.in_len - used);
        c.in_len -= used;
      }
      last_progress = t;
    }
  }
  // Say goodbye properly: a masked close (1000) on each connection.
  static const char kClose[] = {'\x88', '\x82', 0, 0, 0, 0, '\x03', '\xe8'};
  for (auto& c : conns) {
    (void)!::write(c.fd, kClose, sizeof kClose);
    ::close(c.fd);
  }

  double secs = static_cast<double>(end - start) / 1e9;
  double rate = static_cast<double>(done) / secs;
  auto us = [&](double p) { return hist.percentile(p) / 1000.0; };
  std::printf("ws-load %s:%d%s: %d connections, %zu-byte masked text frames, 1 in flight each\n",
              o.host, o.port, o.path, o.conns, o.size);
  std::printf("  %" PRIu64 " messages in %.3f s = %.1f msg/s\n", done, secs, rate);
  std::printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", us(50), us(90),
              us(99), us(99.9), static_cast<double>(hist.max()) / 1000.0);
  std::printf("RESULT messages=%" PRIu64
              " seconds=%.6f rate=%.1f p50_us=%.2f p90_us=%.2f p99_us=%.2f "
              "p999_us=%.2f max_us=%.2f\n",
              done, secs, rate, us(50), us(90), us(99), us(99.9),
              static_cast<double>(hist.max()) / 1000.0);
  if (o.out) {
    std::FILE* f = std::fopen(o.out, "w");
    if (f == nullptr) die("cannot write %s: %s", o.out, std::strerror(errno));
    for (uint64_t v : raw)
      std::fprintf(f, "%" PRIu64 "\n", v);
    std::fclose(f);
  }
  return 0;
}
