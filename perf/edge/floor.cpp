// The floor of the edge benchmark: the least an epoll server can do.
//
//   ember-edge-floor --port P [--host 127.0.0.1] [--mode http|ws]
//
// http: every request head (up to "\r\n\r\n"; no bodies) is answered with the
//       same fixed 200 response with a 5-byte body. Pipelined requests each get
//       their answer, in order; a partial head waits for the rest.
// ws:   the first request of a connection must be a WebSocket upgrade; the
//       server answers 101 and then echoes every data frame unmasked (same
//       opcode and FIN bit), answers pings, and echoes a close and closes.
//
// One thread, level-triggered epoll. Reads are handled as they come; the
// answers are written after the whole batch of events, one write per
// connection per loop turn. No allocation per request: each connection owns
// its input buffer and an output string whose capacity is kept.
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "edge_common.hpp"

namespace {

constexpr size_t kInCap = 16384;
constexpr char kResponse[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

struct Conn {
  int fd = -1;
  bool upgraded = false;  // ws mode: the 101 has been queued
  bool closing = false;   // close once the output is written
  bool dead = false;      // close now, drop the output
  bool dirty = false;     // in the flush list
  bool want_out = false;  // EPOLLOUT registered (the socket buffer was full)
  size_t in_len = 0;
  size_t out_off = 0;
  std::string out;
  char in[kInCap];
};

bool g_ws = false;

void append_ws_header(std::string& out, uint8_t b0, uint64_t len) {
  char h[10];
  size_t n = 0;
  h[n++] = static_cast<char>(b0);
  if (len < 126) {
    h[n++] = static_cast<char>(len);
  } else if (len < 65536) {
    h[n++] = 126;
    h[n++] = static_cast<char>(len >> 8);
    h[n++] = static_cast<char>(len);
  } else {
    h[n++] = 127;
    for (int i = 7; i >= 0; --i)
      h[n++] = static_cast<char>(len >> (8 * i));
  }
  out.append(h, n);
}

void ws_close(Conn& c, uint16_t code) {
  char p[2] = {static_cast<char>(code >> 8), static_cast<char>(code)};
  append_ws_header(c.out, 0x88, 2);
  c.out.append(p, 2);
  c.closing = true;
}

// Consumes complete HTTP request heads; returns the bytes used.
size_t on_http(Conn& c, size_t scan_from) {
  size_t used = 0;
  for (;;) {
    size_t from = scan_from > used + 3 ? scan_from - 3 : used;
    void* end = memmem(c.in + from, c.in_len - from, "\r\n\r\n", 4);
    if (end == nullptr) return used;
    used = static_cast<size_t>(static_cast<char*>(end) - c.in) + 4;
    c.out.append(kResponse, sizeof kResponse - 1);
  }
}

// Upgrade, then WebSocket frames; returns the bytes used.
size_t on_ws(Conn& c) {
  size_t used = 0;
  if (!c.upgraded) {
    void* end = memmem(c.in, c.in_len, "\r\n\r\n", 4);
    if (end == nullptr) return 0;
    used = static_cast<size_t>(static_cast<char*>(end) - c.in) + 4;
    std::string_view head(c.in, used);
    std::string_view key = edge::header_value(head, "Sec-WebSocket-Key");
    if (key.empty()) {
      c.out.append("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      c.closing = true;
      return used;
    }
    c.out.append(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ");
    c.out.append(edge::ws_accept(key));
    c.out.append("\r\n\r\n");
    c.upgraded = true;
  }
  while (!c.closing) {
    const auto* p = reinterpret_cast<const uint8_t*>(c.in + used);
    size_t avail = c.in_len - used;
    if (avail < 2) break;
    uint8_t b0 = p[0];
    uint64_t len = p[1] & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t{p[2]} << 8) | p[3];
      hdr = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i)
        len = (len << 8) | p[2 + i];
      hdr = 10;
    }
    if ((p[1] & 0x80) == 0) {  // client frames must be masked
      ws_close(c, 1002);
      break;
    }
    hdr += 4;
    if (len > kInCap - 14) {
      ws_close(c, 1009);
      break;
    }
    if (avail < hdr + len) break;
    const uint8_t* mask = p + hdr - 4;
    const uint8_t* payload = p + hdr;
    uint8_t op = b0 & 0x0f;
    if (op <= 2 || op == 8 || op == 9) {
      uint8_t out_b0 = op == 9 ? static_cast<uint8_t>((b0 & 0xf0) | 0x0a) : b0;
      append_ws_header(c.out, out_b0, len);
      size_t at = c.out.size();
      c.out.resize(at + len);
      for (size_t i = 0; i < len; ++i)
        c.out[at + i] = static_cast<char>(payload[i] ^ mask[i & 3]);
      if (op == 8) c.closing = true;
    } else if (op != 10) {
      ws_close(c, 1002);
    }
    used += hdr + len;
  }
  return used;
}

int g_ep = -1;

void set_events(Conn& c, bool want_out) {
  if (c.want_out == want_out) return;
  c.want_out = want_out;
  epoll_event ev{};
  // While output is stuck, stop reading: the peer must drain first.
  ev.events = want_out ? EPOLLOUT : EPOLLIN;
  ev.data.ptr = &c;
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c.fd, &ev);
}

void on_readable(Conn& c, std::vector<Conn*>& dirty) {
  ssize_t r = ::read(c.fd, c.in + c.in_len, kInCap - c.in_len);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) {
    c.dead = true;
  } else {
    size_t old = c.in_len;
    c.in_len += static_cast<size_t>(r);
    size_t used = g_ws ? on_ws(c) : on_http(c, old);
    if (used > 0) {
      std::memmove(c.in, c.in + used, c.in_len - used);
      c.in_len -= used;
    }
    if (c.in_len == kInCap) c.dead = true;  // a head or frame larger than the buffer
  }
  if (!c.dirty && (c.dead || !c.out.empty())) {
    c.dirty = true;
    dirty.push_back(&c);
  }
}

// Writes what is queued; returns false when the connection was closed.
bool flush(Conn& c) {
  if (!c.dead) {
    while (c.out_off < c.out.size()) {
      ssize_t w = ::write(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) {
        set_events(c, true);
        return true;
      }
      if (w <= 0) {
        c.dead = true;
        break;
      }
      c.out_off += static_cast<size_t>(w);
    }
  }
  if (c.dead || c.closing) {
    ::close(c.fd);
    delete &c;
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  set_events(c, false);
  return true;
}

int listen_on(const char* host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = edge::loopback_addr(host, port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4096) != 0) {
    std::fprintf(stderr, "ember-edge-floor: cannot listen on %s:%d: %s\n", host, port,
                 std::strerror(errno));
    std::exit(1);
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (a == "--mode" && i + 1 < argc) {
      std::string_view m = argv[++i];
      if (m != "http" && m != "ws") port = -1;
      g_ws = m == "ws";
    } else {
      port = -1;
      break;
    }
  }
  if (port <= 0) {
    std::fprintf(stderr, "usage: ember-edge-floor --port P [--host 127.0.0.1] [--mode http|ws]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  edge::raise_nofile();
  int lfd = listen_on(host, port);
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;  // the listener
  epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev);

  std::vector<epoll_event> events(512);
  std::vector<Conn*> dirty;
  dirty.reserve(1024);
  for (;;) {
    int n = epoll_wait(g_ep, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (c == nullptr) {
        for (int k = 0; k < 64; ++k) {
          int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          edge::set_nodelay(fd);
          auto* nc = new Conn;
          nc->fd = fd;
          nc->out.reserve(256);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.ptr = nc;
          epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev);
        }
      } else if (c->want_out) {
        if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flush(*c);
      } else {
        on_readable(*c, dirty);
      }
    }
    for (Conn* c : dirty) {
      c->dirty = false;
      flush(*c);
    }
    dirty.clear();
  }
}
