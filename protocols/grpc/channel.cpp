#include "protocols/grpc/channel.hpp"

#include <utility>

#include "ember/log.hpp"

namespace ember::grpc {

struct Channel::Call {
  Channel* channel = nullptr;
  uint64_t id = 0;
  UnaryFn unary;  // unary calls
  MessageFn on_message;
  DoneFn done;  // server-streaming calls
  TimerEntry deadline;
  // on_message is running: a call that ends meanwhile (cancel() from the
  // callback) is freed once it returns, not under its feet.
  bool delivering = false;
  bool orphaned = false;
};

// The session's events, routed to the calls by tag (the call id).
// Null once the channel is gone while its session was still feeding.
struct Channel::Handler final : ClientHandler {
  explicit Handler(Channel& c) : channel(&c) {}
  void on_response(uint64_t tag, Status status, std::optional<Bytes> message) override {
    if (!channel) return;
    auto it = channel->calls_.find(tag);
    if (it != channel->calls_.end())
      channel->ended(*it->second, std::move(status), std::move(message));
  }
  void on_message(uint64_t tag, Bytes message) override {
    if (!channel) return;
    auto it = channel->calls_.find(tag);
    if (it == channel->calls_.end() || !it->second->on_message) return;
    Call* call = it->second.get();
    call->delivering = true;
    call->on_message(std::move(message));
    call->delivering = false;
    if (call->orphaned) delete call;
  }
  Channel* channel;
};

// The connection's handler, owned by the core. It outlives the channel when
// the channel goes first (then it only closes), and tells the channel when
// the connection ends.
class Channel::Link final : public ConnectionHandler {
 public:
  explicit Link(Channel* channel) : channel_(channel) {}

  void detach() noexcept {
    channel_ = nullptr;
    if (conn_) conn_->abort();
  }
  // The channel is destroyed from a callback of its session's feed(): the
  // session (and its handler, now inert) stay alive until feed() returns.
  void adopt(std::unique_ptr<ClientSession> session, std::unique_ptr<Handler> handler) noexcept {
    adopted_session_ = std::move(session);
    adopted_handler_ = std::move(handler);
  }
  void want_write() noexcept {
    if (conn_) conn_->want_write();
  }

  void on_open(Connection& conn) override {
    conn_ = &conn;
    if (!channel_) return conn.abort();
    if (conn.secure() && conn.alpn() != "h2") {
      failure_ = "the server did not negotiate HTTP/2 (ALPN \"" + std::string(conn.alpn()) +
                 "\"); offer \"h2\" in tls::ClientConfig::alpn";
      return conn.abort();
    }
    channel_->on_link_open(conn);
    conn.want_write();
  }
  bool read_target(ReadTarget& target) override {
    return channel_ && channel_->session_ && failure_.empty() &&
           channel_->session_->read_target(target);
  }
  void on_data(Connection& conn, const Bytes& data) override {
    if (!channel_ || !failure_.empty()) return;
    channel_->feeding_ = true;
    Result<void> r = channel_->session_->feed(data);
    if (!channel_) {  // destroyed by a callback meanwhile
      adopted_session_.reset();
      adopted_handler_.reset();
      return;
    }
    channel_->feeding_ = false;
    if (!r) failure_ = r.error().message;  // a GOAWAY is queued: write it, then close
    if (channel_ && (!failure_.empty() || channel_->session_->wants_write())) conn.want_write();
  }
  void on_writable(Connection& conn, IoChain& out) override {
    if (!channel_) return conn.close();
    Result<void> r = channel_->session_->produce(out);
    if (!r && failure_.empty()) failure_ = r.error().message;
    if (!failure_.empty()) return conn.close();
    if (!out.empty() && channel_->session_->wants_write()) conn.want_write();
  }
  void on_drain(Connection& conn) override {
    if (failure_.empty()) failure_ = "the loop is shutting down";
    conn.close();
  }
  void on_close(Connection& conn, int error) override {
    conn_ = nullptr;
    if (!channel_) return;
    std::string reason = failure_;
    if (reason.empty()) {
      if (!conn.error_text().empty())
        reason = conn.error_text();
      else if (error != 0)
        reason = describe_errno(error);
      else
        reason = "the server closed the connection";
    }
    channel_->on_link_closed(std::move(reason));
  }

 private:
  Channel* channel_;
  Connection* conn_ = nullptr;
  std::string failure_;
  std::unique_ptr<ClientSession> adopted_session_;
  std::unique_ptr<Handler> adopted_handler_;
};

Channel::Channel(Loop& loop, Target target, Options options)
    : loop_(loop),
      target_(std::move(target)),
      options_(std::move(options)),
      handler_(std::make_unique<Handler>(*this)) {
  if (options_.grpc.authority == "localhost" && target_.unix_path.empty())
    options_.grpc.authority = target_.host + ":" + std::to_string(target_.port);
  if (options_.connect.tls) options_.grpc.scheme = "https";
}

Channel::~Channel() {
  for (auto& [id, call] : calls_) {
    loop_.cancel(call->deadline);
    // Destroyed from this call's on_message: Handler::on_message frees it.
    if (call->delivering) call.release()->orphaned = true;
  }
  if (link_ && feeding_) {
    handler_->channel = nullptr;
    link_->adopt(std::move(session_), std::move(handler_));
  }
  if (link_) link_->detach();
  // The session frees its calls without calling back.
  session_.reset();
  calls_.clear();
}

void Channel::connect() {
  auto link = std::make_unique<Link>(this);
  link_ = link.get();
  // A connection that fails at once reports it through on_close, from here.
  if (!target_.unix_path.empty())
    loop_.connect_unix(target_.unix_path, std::move(link), options_.connect);
  else
    loop_.connect(target_.host, target_.port, std::move(link), options_.connect);
}

uint64_t Channel::unary(std::string_view path, Bytes request, UnaryFn done, CallOptions options) {
  auto call = std::make_unique<Call>();
  call->unary = std::move(done);
  return start(path, std::move(request), std::move(call), options);
}

uint64_t Channel::server_streaming(std::string_view path, Bytes request, MessageFn on_message,
                                   DoneFn done, CallOptions options) {
  auto call = std::make_unique<Call>();
  call->on_message = std::move(on_message);
  call->done = std::move(done);
  return start(path, std::move(request), std::move(call), options);
}

uint64_t Channel::start(std::string_view path, Bytes request, std::unique_ptr<Call> owned,
                        CallOptions options) {
  uint64_t id = next_id_++;
  Call& call = *owned;
  call.channel = this;
  call.id = id;
  calls_.emplace(id, std::move(owned));
  if (!session_)
    session_ =
        std::make_unique<ClientSession>(*handler_, options_.grpc, loop_.slab(), &loop_.buffers());
  uint64_t timeout_ns =
      options.timeout.count() > 0
          ? static_cast<uint64_t>(std::chrono::nanoseconds(options.timeout).count())
          : 0;
  Result<void> r =
      call.unary ? session_->start_unary(path, {}, std::move(request), id, timeout_ns)
                 : session_->start_server_streaming(path, {}, std::move(request), id, timeout_ns);
  if (!r) {
    ended(call, Status{StatusCode::unavailable, r.error().message}, std::nullopt);
    return id;
  }
  if (timeout_ns) {
    call.deadline.context = &call;
    call.deadline.fire = [](TimerEntry* t) {
      auto* c = static_cast<Call*>(t->context);
      Channel* ch = c->channel;
      Status st{StatusCode::deadline_exceeded, "deadline exceeded before the server answered"};
      if (ch->session_ && ch->session_->cancel(c->id, st)) {
        if (ch->link_) ch->link_->want_write();
      } else {
        ch->ended(*c, std::move(st), std::nullopt);
      }
    };
    loop_.arm(call.deadline, static_cast<uint64_t>(options.timeout.count()));
  }
  if (!link_)
    connect();
  else if (open_)
    link_->want_write();
  return id;
}

bool Channel::cancel(uint64_t call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return false;
  Status st{StatusCode::cancelled, "cancelled by the client"};
  if (session_ && session_->cancel(call_id, st)) {
    if (link_) link_->want_write();
  } else {
    ended(*it->second, std::move(st), std::nullopt);
  }
  return true;
}

void Channel::ended(Call& call, Status status, std::optional<Bytes> message) {
  loop_.cancel(call.deadline);
  auto it = calls_.find(call.id);
  if (it == calls_.end()) return;
  std::unique_ptr<Call> owned = std::move(it->second);
  calls_.erase(it);
  if (owned->unary)
    owned->unary(std::move(status), std::move(message));
  else if (owned->done)
    owned->done(std::move(status));
  if (owned->delivering) owned.release()->orphaned = true;  // Handler::on_message frees it
}

void Channel::on_link_closed(std::string reason) {
  bool was_open = open_;
  link_ = nullptr;
  open_ = false;
  EMBER_DEBUG("ember.grpc", "channel connection ended", {"reason", reason});
  // Calls started from the callbacks below go to a new session and connection.
  std::unique_ptr<ClientSession> lost = std::move(session_);
  if (lost)
    lost->fail_all(StatusCode::unavailable,
                   was_open ? "connection lost: " + reason : std::move(reason));
}

void Channel::on_link_open(Connection&) {
  open_ = true;
}

}  // namespace ember::grpc
