// The floor: the least a server can do for a task over a Unix socket. Each
// message is a 4-byte little-endian length and that many bytes; the server
// sends every complete message straight back. Blocking I/O, one connection at
// a time, no framing beyond the length, no allocation after start-up: one
// read and one write per message when the client waits for each answer.
// Listens on FLAME_INSTANCE_ENDPOINT so the bench launches it like the others.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

constexpr size_t kMaxMessage = 16u << 20;
constexpr size_t kBufferSize = 2 * (kMaxMessage + 4);

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void serve(int fd, uint8_t* buf) {
  size_t used = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf + used, kBufferSize - used);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    used += static_cast<size_t>(r);
    // Echo every complete message with one write; keep the partial tail.
    size_t done = 0;
    while (used - done >= 4) {
      uint32_t len;
      std::memcpy(&len, buf + done, 4);
      if (len > kMaxMessage) {
        std::fprintf(stderr, "pingpong: message of %u bytes is over the limit\n", len);
        return;
      }
      if (used - done < 4 + size_t{len}) break;
      done += 4 + size_t{len};
    }
    if (done > 0) {
      if (!write_all(fd, buf, done)) return;
      std::memmove(buf, buf + done, used - done);
      used -= done;
    }
  }
}

}  // namespace

int main() {
  const char* endpoint = std::getenv("FLAME_INSTANCE_ENDPOINT");
  if (!endpoint || !*endpoint) {
    std::fprintf(stderr, "pingpong: FLAME_INSTANCE_ENDPOINT is not set\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(endpoint) >= sizeof addr.sun_path) {
    std::fprintf(stderr, "pingpong: socket path too long\n");
    return 2;
  }
  std::strcpy(addr.sun_path, endpoint);
  struct stat st;
  if (::lstat(endpoint, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(endpoint);
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 16) != 0) {
    std::fprintf(stderr, "pingpong: cannot listen on %s: %s\n", endpoint, std::strerror(errno));
    return 2;
  }
  // Left uninitialised: pages are touched only as big messages need them.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kBufferSize]);
  for (;;) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    // The same send buffer Ember's server and the bench client use, so the
    // floor stays a floor for MiB payloads.
    int sndbuf = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    serve(fd, buf.get());
    ::close(fd);
  }
}
