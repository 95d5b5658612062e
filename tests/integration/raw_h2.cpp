#include "tests/integration/raw_h2.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

namespace ember_it {
namespace {

int connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return -1;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

nghttp2_nv nv(const std::string& name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

std::string grpc_frame(const std::string& body, uint32_t announced) {
  std::string out(5, '\0');
  out[1] = static_cast<char>(announced >> 24);
  out[2] = static_cast<char>(announced >> 16);
  out[3] = static_cast<char>(announced >> 8);
  out[4] = static_cast<char>(announced);
  return out + body;
}

// ---- H2Client -------------------------------------------------------------------

std::string H2Client::Stream::header(const std::string& name) const {
  std::string v;
  for (const auto& [n, value] : headers)
    if (n == name) v = value;
  return v;
}

H2Client::H2Client(const std::string& socket_path) {
  fd_ = connect_unix(socket_path);
  if (fd_ < 0) {
    ADD_FAILURE() << "cannot connect to " << socket_path << ": " << std::strerror(errno);
    return;
  }
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, &H2Client::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &H2Client::on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &H2Client::on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &H2Client::on_close);
  nghttp2_session_client_new(&session_, cb, this);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
}

H2Client::~H2Client() {
  close();
  if (session_) nghttp2_session_del(session_);
}

void H2Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int32_t H2Client::start_call(const std::string& path, std::string body, bool end_stream,
                             const std::vector<std::pair<std::string, std::string>>& extra) {
  const std::string k[] = {":method", ":scheme", ":path", ":authority", "content-type", "te"};
  const std::string v[] = {"POST", "http", path, "[::]:50051", "application/grpc", "trailers"};
  std::vector<nghttp2_nv> nva;
  for (size_t i = 0; i < 6; ++i)
    nva.push_back(nv(k[i], v[i]));
  for (const auto& [name, value] : extra)
    nva.push_back(nv(name, value));
  bool has_body = !body.empty() || !end_stream;
  nghttp2_data_provider prd{};
  prd.read_callback = &H2Client::read_body;
  int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                      has_body ? &prd : nullptr, nullptr);
  if (id > 0 && has_body) outgoing_[id] = Outgoing{std::move(body), 0, end_stream};
  return id;
}

void H2Client::ping() {
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
}

bool H2Client::flush() {
  for (;;) {
    const uint8_t* data;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return false;
    if (n == 0) return true;
    if (!send_all(fd_, data, static_cast<size_t>(n))) return false;
  }
}

bool H2Client::pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint8_t buf[65536];
  while (fd_ >= 0 && !eof_) {
    if (!flush()) eof_ = true;
    if (done()) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) continue;
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;
      break;
    }
    if (nghttp2_session_mem_recv(session_, buf, static_cast<size_t>(n)) < 0) eof_ = true;
  }
  return done();
}

ssize_t H2Client::read_body(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                            nghttp2_data_source*, void* self) {
  auto& out = static_cast<H2Client*>(self)->outgoing_[id];
  size_t n = std::min(len, out.body.size() - out.offset);
  std::memcpy(buf, out.body.data() + out.offset, n);
  out.offset += n;
  if (out.offset == out.body.size()) {
    // Without end_stream the request stays unfinished for good.
    if (out.end_stream)
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (n == 0)
      return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

int H2Client::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                        void* self) {
  static_cast<H2Client*>(self)->streams_[frame->hd.stream_id].headers.emplace_back(
      std::string(reinterpret_cast<const char*>(name), namelen),
      std::string(reinterpret_cast<const char*>(value), valuelen));
  return 0;
}

int H2Client::on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                      void* self) {
  static_cast<H2Client*>(self)->streams_[id].data.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int H2Client::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  static_cast<H2Client*>(self)->frames_.push_back(
      {frame->hd.type, frame->hd.flags, frame->hd.stream_id});
  if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK))
    ++static_cast<H2Client*>(self)->ping_acks_;
  return 0;
}

int H2Client::on_close(nghttp2_session*, int32_t id, uint32_t error_code, void* self) {
  auto& s = static_cast<H2Client*>(self)->streams_[id];
  s.closed = true;
  s.error_code = error_code;
  return 0;
}

// ---- frames -----------------------------------------------------------------------

std::vector<Frame> parse_client_frames(const std::string& bytes) {
  std::vector<Frame> frames;
  size_t pos = std::string_view(bytes).starts_with("PRI * HTTP/2.0") ? 24 : 0;
  while (bytes.size() - pos >= 9) {
    auto b = [&](size_t i) { return static_cast<uint8_t>(bytes[pos + i]); };
    size_t len = (size_t{b(0)} << 16) | (size_t{b(1)} << 8) | b(2);
    if (bytes.size() - pos - 9 < len) break;
    Frame f;
    f.type = b(3);
    f.flags = b(4);
    f.stream_id = static_cast<int32_t>(((uint32_t{b(5)} & 0x7f) << 24) | (uint32_t{b(6)} << 16) |
                                       (uint32_t{b(7)} << 8) | b(8));
    f.payload = bytes.substr(pos + 9, len);
    frames.push_back(std::move(f));
    pos += 9 + len;
  }
  return frames;
}

// ---- RecordingProxy -----------------------------------------------------------------

RecordingProxy::RecordingProxy(const std::string& listen_path, const std::string& target_path)
    : target_(target_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, listen_path.data(),
              std::min(listen_path.size(), sizeof addr.sun_path - 1));
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0 || ::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "proxy cannot listen on " << listen_path << ": " << std::strerror(errno);
    return;
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

RecordingProxy::~RecordingProxy() {
  if (stop_pipe_[1] >= 0) (void)!::write(stop_pipe_[1], "x", 1);
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : threads_)
    t.join();
  for (int fd : {listen_fd_, stop_pipe_[0], stop_pipe_[1]})
    if (fd >= 0) ::close(fd);
}

std::string RecordingProxy::client_bytes(size_t n) {
  std::lock_guard lock(mu_);
  return n < captured_.size() ? captured_[n] : std::string();
}

void RecordingProxy::accept_loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    int server = connect_unix(target_);
    if (server < 0) {
      ::close(client);
      continue;
    }
    size_t index;
    {
      std::lock_guard lock(mu_);
      index = captured_.size();
      captured_.emplace_back();
    }
    threads_.emplace_back([this, client, server, index] { pump(client, server, index); });
  }
}

void RecordingProxy::pump(int client, int server, size_t index) {
  char buf[65536];
  for (;;) {
    pollfd p[3] = {{client, POLLIN, 0}, {server, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[2].revents) break;
    bool done = false;
    for (int side = 0; side < 2 && !done; ++side) {
      if (!p[side].revents) continue;
      int from = side == 0 ? client : server, to = side == 0 ? server : client;
      ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) {
        done = true;
        break;
      }
      if (side == 0) {
        std::lock_guard lock(mu_);
        captured_[index].append(buf, static_cast<size_t>(n));
      }
      if (!send_all(to, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n))) done = true;
    }
    if (done) break;
  }
  ::close(client);
  ::close(server);
}

}  // namespace ember_it
