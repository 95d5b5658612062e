// Below grpc++: a bare HTTP/2 client (nghttp2's client role, not Ember's
// code) for what grpc++ will not do (send half a message and vanish, send a
// grpc-timeout without cancelling the call itself), and a recording proxy to
// see the bytes grpc++ really sent.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ember_it {

// 5-byte gRPC prefix (uncompressed, `announced` bytes) followed by `body`.
std::string grpc_frame(const std::string& body, uint32_t announced);
inline std::string grpc_frame(const std::string& body) {
  return grpc_frame(body, static_cast<uint32_t>(body.size()));
}

class H2Client {
 public:
  struct Stream {
    std::vector<std::pair<std::string, std::string>> headers;  // response headers + trailers
    std::string data;
    bool closed = false;
    uint32_t error_code = 0;
    std::string header(const std::string& name) const;  // last value, or ""
  };

  // Connects and queues the preface and SETTINGS.
  explicit H2Client(const std::string& socket_path);
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  bool connected() const noexcept { return fd_ >= 0; }
  // A gRPC POST to `path`. The body goes out as DATA; without `end_stream`
  // the stream stays open after it (the request never completes).
  int32_t start_call(const std::string& path, std::string body, bool end_stream,
                     const std::vector<std::pair<std::string, std::string>>& extra = {});
  void ping();
  bool ping_acked() const noexcept { return ping_acks_ > 0; }
  // Sends what is queued and reads until `done` holds, the peer closes or
  // the timeout passes. Returns done().
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  const Stream& stream(int32_t id) { return streams_[id]; }
  bool peer_closed() const noexcept { return eof_; }
  // Every frame received: type, flags, stream id.
  struct FrameSeen {
    uint8_t type, flags;
    int32_t stream_id;
  };
  const std::vector<FrameSeen>& frames() const noexcept { return frames_; }
  // Drops the connection at once, as a crashing client would.
  void close();

 private:
  struct Outgoing {
    std::string body;
    size_t offset = 0;
    bool end_stream = false;
  };
  bool flush();
  static ssize_t read_body(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void* self);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* self);
  static int on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                     void* self);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_close(nghttp2_session*, int32_t id, uint32_t error_code, void* self);

  int fd_ = -1;
  bool eof_ = false;
  int ping_acks_ = 0;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Stream> streams_;
  std::map<int32_t, Outgoing> outgoing_;
  std::vector<FrameSeen> frames_;
};

// One frame of a captured HTTP/2 byte stream.
struct Frame {
  uint8_t type;
  uint8_t flags;
  int32_t stream_id;
  std::string payload;
};
// Parses client-to-server bytes (after the 24-byte preface). Stops at a
// truncated frame.
std::vector<Frame> parse_client_frames(const std::string& bytes);

// Listens on `listen_path` and forwards every connection to `target_path`,
// recording what clients send.
class RecordingProxy {
 public:
  RecordingProxy(const std::string& listen_path, const std::string& target_path);
  ~RecordingProxy();
  // Bytes sent by client connection `n` (in accept order) so far.
  std::string client_bytes(size_t n);

 private:
  void accept_loop();
  void pump(int client, int server, size_t index);

  std::string target_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::mutex mu_;
  std::vector<std::string> captured_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace ember_it
