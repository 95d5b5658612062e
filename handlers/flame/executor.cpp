#include "handlers/flame/executor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "ember/buffer_pool.hpp"
#include "ember/io_chain.hpp"
#include "ember/slab.hpp"
#include "ember_flame_wire.pb.h"
#include "protocols/grpc/client.hpp"

namespace ember::flame {
namespace {

constexpr std::string_view kEnter = "/flame.v1.Instance/OnSessionEnter";
constexpr std::string_view kInvoke = "/flame.v1.Instance/OnTaskInvoke";
constexpr std::string_view kLeave = "/flame.v1.Instance/OnSessionLeave";

grpc::Status transport_error(const Error& e) {
  return grpc::Status{grpc::StatusCode::unavailable, e.message};
}

}  // namespace

// ---- InstanceClient ----------------------------------------------------------

struct InstanceClient::Impl final : grpc::ClientHandler {
  Impl(int socket_fd, const InstanceClientOptions& o)
      : fd(socket_fd), options(o), session(*this, client_options(o), slab, &pool) {}
  ~Impl() override {
    if (rbuf) rbuf->release();
    ::close(fd);
  }

  static grpc::ClientOptions client_options(const InstanceClientOptions& o) {
    grpc::ClientOptions c;
    c.http2.max_frame_size = o.max_frame_size;
    c.http2.initial_window_size = o.stream_window;
    c.http2.connection_window_size = o.connection_window;
    c.max_receive_message_size = o.max_response_bytes;
    c.authority = "[::]:50051";  // what the executor sends; servers must not care
    c.user_agent = "ember-flame-run/0.1";
    return c;
  }

  void on_response(uint64_t tag, grpc::Status status, std::optional<Bytes> message) override {
    ready.push_back(Completion{tag, std::move(status), std::move(message)});
  }

  Result<void> flush() {
    for (;;) {
      Result<void> r = session.produce(out);
      if (!r) return r;
      if (out.empty()) return {};
      while (!out.empty()) {
        ssize_t n =
            ::writev(fd, out.iov(), static_cast<int>(std::min<size_t>(out.iov_count(), IOV_MAX)));
        if (n < 0) {
          if (errno == EINTR) continue;
          int e = errno;
          out.clear();
          return Error("write to the service failed: " + describe_errno(e), -e);
        }
        out.consume(static_cast<size_t>(n));
      }
      out.clear();
    }
  }

  // One read, blocking or spinning; EINTR retried.
  ssize_t read_some(uint8_t* data, size_t size) {
    for (;;) {
      ssize_t n = options.spin_wait ? ::recv(fd, data, size, MSG_DONTWAIT) : ::read(fd, data, size);
      if (n >= 0 || (errno != EINTR && !(options.spin_wait && errno == EAGAIN))) return n;
    }
  }

  Result<void> read_once() {
    if (options.io_timeout_ms > 0 && !options.spin_wait) {
      pollfd p{fd, POLLIN, 0};
      int rc;
      do
        rc = ::poll(&p, 1, options.io_timeout_ms);
      while (rc < 0 && errno == EINTR);
      if (rc == 0)
        return Error("no answer from the service within " + std::to_string(options.io_timeout_ms) +
                     " ms");
    }
    // The middle of a large response goes straight to where it is gathered.
    ReadTarget direct;
    if (session.read_target(direct)) {
      ssize_t n = read_some(direct.data, direct.size);
      if (n == 0) return Error("the service closed the connection");
      if (n < 0) return Error("read from the service failed: " + describe_errno(errno), -errno);
      return session.feed(Bytes::share(direct.storage, direct.data, static_cast<size_t>(n)));
    }
    // Same buffer discipline as the server: reuse the buffer once nobody
    // holds a slice of it.
    if (rbuf && rbuf->use_count() == 1) roff = 0;
    if (!rbuf || rbuf->capacity() - roff < 4096) {
      if (rbuf) rbuf->release();
      rbuf = std::move(pool.take(256 * 1024)).release();
      roff = 0;
    }
    ssize_t n = read_some(rbuf->data() + roff, rbuf->capacity() - roff);
    if (n == 0) return Error("the service closed the connection");
    if (n < 0) return Error("read from the service failed: " + describe_errno(errno), -errno);
    Bytes data = Bytes::share(rbuf, rbuf->data() + roff, static_cast<size_t>(n));
    roff += static_cast<size_t>(n);
    return session.feed(data);
  }

  // Runs I/O until `tag` completes.
  Expected<std::optional<Bytes>, grpc::Status> finish(uint64_t tag) {
    for (;;) {
      if (Result<void> r = flush(); !r) return fail(r.error());
      for (size_t i = 0; i < ready.size(); ++i) {
        if (ready[i].tag != tag) continue;
        Completion c = std::move(ready[i]);
        ready.erase(ready.begin() + static_cast<long>(i));
        if (!c.status.ok()) return c.status;
        return std::move(c.message);
      }
      if (Result<void> r = read_once(); !r) return fail(r.error());
    }
  }

  grpc::Status fail(const Error& e) {
    session.fail_all(grpc::StatusCode::unavailable, e.message);
    return transport_error(e);
  }

  Result<void> start(std::string_view path, std::span<const uint8_t> head, Bytes body,
                     uint64_t tag) {
    return session.start_unary(path, head, std::move(body), tag, options.call_timeout_ns);
  }

  Result<void> start_task(uint64_t tag, std::string_view task_id, std::string_view session_id,
                          const std::optional<Bytes>& input) {
    wire::EncodedMessage m = wire::encode_task_context(task_id, session_id, input);
    return start(kInvoke, m.head_span(), std::move(m.body), tag);
  }

  int fd;
  InstanceClientOptions options;
  BufferPool pool;
  SlabAllocator slab;
  grpc::ClientSession session;
  IoChain out;
  BufferStorage* rbuf = nullptr;
  size_t roff = 0;
  std::vector<Completion> ready;
  uint64_t next_tag = 1ull << 62;  // blocking calls; pipelined tags are the caller's
};

InstanceClient::InstanceClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InstanceClient::~InstanceClient() = default;

Result<std::unique_ptr<InstanceClient>> InstanceClient::connect(
    const std::string& socket_path, const InstanceClientOptions& options) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return Error("socket path \"" + socket_path + "\" is longer than 107 bytes");
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  // The server binds, then listens: retry briefly across that gap.
  for (int attempt = 0;; ++attempt) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error("socket(): " + describe_errno(errno), -errno);
    if (options.socket_send_buffer > 0)
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &options.socket_send_buffer,
                   sizeof options.socket_send_buffer);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      auto impl = std::make_unique<Impl>(fd, options);
      return std::unique_ptr<InstanceClient>(new InstanceClient(std::move(impl)));
    }
    int e = errno;
    ::close(fd);
    if ((e != ECONNREFUSED && e != ENOENT) || attempt >= 500)
      return Error("cannot connect to \"" + socket_path + "\": " + describe_errno(e), -e);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

Expected<CallResult, grpc::Status> InstanceClient::enter(const std::string& session_id,
                                                         const std::string& application,
                                                         const std::optional<Bytes>& common_data) {
  ::ember::wire::flame::v1::SessionContext pb;
  pb.set_session_id(session_id);
  pb.mutable_application()->set_name(application);
  if (common_data) pb.set_common_data(common_data->to_string());
  auto r = call_raw(kEnter, Bytes::from(pb.SerializeAsString()));
  if (!r) return r.error();
  return decode_call_result(*r);
}

Expected<CallResult, grpc::Status> InstanceClient::leave() {
  auto r = call_raw(kLeave, Bytes());
  if (!r) return r.error();
  return decode_call_result(*r);
}

Expected<TaskOutcome, grpc::Status> InstanceClient::invoke(std::string_view task_id,
                                                           std::string_view session_id,
                                                           const std::optional<Bytes>& input) {
  uint64_t tag = impl_->next_tag++;
  if (Result<void> r = impl_->start_task(tag, task_id, session_id, input); !r)
    return transport_error(r.error());
  auto msg = impl_->finish(tag);
  if (!msg) return msg.error();
  if (!*msg) return TaskOutcome{};
  auto out = wire::decode_task_result(**msg);
  if (!out) return grpc::Status{grpc::StatusCode::internal, out.error()};
  return std::move(*out);
}

Expected<std::optional<Bytes>, grpc::Status> InstanceClient::call_raw(std::string_view path,
                                                                      Bytes request) {
  uint64_t tag = impl_->next_tag++;
  if (Result<void> r = impl_->start(path, {}, std::move(request), tag); !r)
    return transport_error(r.error());
  return impl_->finish(tag);
}

Result<void> InstanceClient::start_task(uint64_t tag, std::string_view task_id,
                                        std::string_view session_id,
                                        const std::optional<Bytes>& input) {
  return impl_->start_task(tag, task_id, session_id, input);
}

Result<void> InstanceClient::wait(std::vector<Completion>& out) {
  for (;;) {
    if (Result<void> r = impl_->flush(); !r) return r;
    if (!impl_->ready.empty()) break;
    if (Result<void> r = impl_->read_once(); !r) {
      impl_->session.fail_all(grpc::StatusCode::unavailable, r.error().message);
      for (auto& c : impl_->ready)
        out.push_back(std::move(c));
      impl_->ready.clear();
      return r;
    }
  }
  for (auto& c : impl_->ready)
    out.push_back(std::move(c));
  impl_->ready.clear();
  return {};
}

size_t InstanceClient::in_flight() const noexcept {
  return impl_->session.calls_in_flight();
}

}  // namespace ember::flame
