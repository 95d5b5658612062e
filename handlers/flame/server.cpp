// The Flame instance server: flame.v1.Instance over gRPC on the reactor.
//
// Bytes from the socket go through the gRPC server session (HTTP/2 + message
// framing), driven by grpc::ServerConnection, to InstanceConnection::on_call,
// which decodes the request in place and calls the user's service. The answer
// is encoded as a few header bytes plus the output by reference, and leaves in
// the loop's flush phase.
#include <unistd.h>

#include <atomic>
#include <memory>
#include <vector>

#include "ember/flame.hpp"
#include "ember/log.hpp"
#include "ember/reactor.hpp"
#include "handlers/flame/wire.hpp"
#include "protocols/grpc/server_connection.hpp"

namespace ember::flame {
namespace detail {

// Sync and async services, seen alike by the server.
class ServiceAdapter {
 public:
  virtual ~ServiceAdapter() = default;
  virtual Status enter(const SessionContext& ctx) = 0;
  virtual Status leave() = 0;
  virtual bool is_async() const noexcept = 0;
  virtual TaskResult invoke(TaskContext ctx) = 0;
  virtual void invoke_async(TaskContext ctx, TaskCompletion done) = 0;
  virtual AttributePublisher& publisher() noexcept = 0;
};

class InstanceConnection;

// One async task between dispatch and answer. Two references: the
// connection's (dropped when the call ends) and the completion's (dropped
// on the loop thread once its answer has been handled).
struct PendingTask : MailboxItem {
  std::atomic<int> refs{2};
  std::shared_ptr<Mailbox> mailbox;
  InstanceConnection* owner = nullptr;  // loop thread; null once cancelled
  grpc::ServerCall* call = nullptr;
  std::optional<TaskResult> result;
  TimerEntry deadline;
  bool inline_done = false;
  bool dropped = false;  // answered by ~TaskCompletion, not by the service
};

namespace {

// Async task records are recycled per loop thread: no allocation per task.
struct TaskPool {
  std::vector<PendingTask*> free;
  ~TaskPool() {
    for (PendingTask* p : free)
      delete p;
  }
};
thread_local TaskPool tls_task_pool;
// The task whose on_task_invoke is running on this thread right now; a
// completion called inside it answers inline, without the mailbox.
thread_local PendingTask* tls_inline_task = nullptr;

void release(PendingTask* p, bool on_loop_thread) {
  if (p->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (!on_loop_thread || tls_task_pool.free.size() >= 1024) {
    delete p;
    return;
  }
  p->result.reset();
  p->owner = nullptr;
  p->call = nullptr;
  p->inline_done = false;
  p->dropped = false;
  p->refs.store(2, std::memory_order_relaxed);
  tls_task_pool.free.push_back(p);
}

enum Method { kEnter = 0, kInvoke = 1, kLeave = 2 };

}  // namespace

// Process-wide state of the instance (one loop: no locking needed).
struct Instance {
  ServiceAdapter& service;
  RunOptions options;
  std::string session_id;
  bool in_session = false;
  uint64_t tasks = 0;
  uint64_t failed = 0;
};

// The executor is trusted: its protocol errors are warnings. No idle
// timeout: it keeps its one connection open between sessions.
constexpr http2::ServerConnectionOptions kConnectionOptions = {
    .log_target = "ember.flame", .peer_error_level = log::Level::warn};

class InstanceConnection final : public grpc::ServerConnection {
 public:
  InstanceConnection(Loop& loop, Instance& instance, const grpc::ServerOptions& options)
      : ServerConnection(loop, kConnectionOptions, options),
        instance_(instance),
        wrapped_(instance.options.wire == WireMode::wrapped) {}

  // Called on the loop thread when an async task has its answer.
  void finish_task(PendingTask* p) {
    loop().cancel(p->deadline);
    grpc::ServerCall* call = p->call;
    p->owner = nullptr;
    p->call = nullptr;
    call->user = nullptr;
    send_task_result(*call, std::move(*p->result));
    release(p, true);  // the connection's reference
  }

 private:
  void opened(Connection& conn) override {
    EMBER_DEBUG("ember.flame", "executor connected", {"connection", conn.id()});
  }
  void closed(Connection& conn, int error) override {
    EMBER_DEBUG("ember.flame", "executor disconnected", {"connection", conn.id()},
                {"error", error == 0 ? "none" : describe_errno(error)});
  }

  int resolve_method(std::string_view path) override {
    if (path == "/flame.v1.Instance/OnTaskInvoke") return kInvoke;
    if (path == "/flame.v1.Instance/OnSessionEnter") return kEnter;
    if (path == "/flame.v1.Instance/OnSessionLeave") return kLeave;
    return -1;
  }

  void on_call(grpc::ServerCall& call) override {
    switch (call.method()) {
      case kInvoke:
        return invoke(call);
      case kEnter:
        return enter(call);
      case kLeave:
        return leave(call);
    }
  }

  void on_call_end(grpc::ServerCall& call, bool responded) override {
    auto* p = static_cast<PendingTask*>(call.user);
    if (!p) return;
    // Cancelled before the service answered: the answer will be dropped.
    EMBER_INFO("ember.flame", "task cancelled before its answer",
               {"reason", responded ? "deadline" : "client reset or disconnect"});
    loop().cancel(p->deadline);
    p->owner = nullptr;
    p->call = nullptr;
    call.user = nullptr;
    release(p, true);
  }

  void enter(grpc::ServerCall& call) {
    auto ctx = wire::decode_session_context(call.request());
    if (!ctx && ctx.error().kind == wire::DecodeError::Kind::malformed)
      return reject(call, grpc::StatusCode::internal, ctx.error().message);
    if (ctx && wire::shows_wrapped_wire(*ctx)) use_wrapped_wire("the session context");
    Status status = [&]() -> Status {
      if (!ctx) return FlameError::invalid_config(ctx.error().message);
      EMBER_INFO("ember.flame", "session entered", {"session_id", ctx->session_id},
                 {"application", ctx->application.name});
      instance_.session_id = ctx->session_id;
      instance_.in_session = true;
      return guarded([&] { return instance_.service.enter(*ctx); });
    }();
    if (!status)
      EMBER_WARN("ember.flame", "session enter failed", {"error", status.error().to_string()});
    if (!wrapped_) return reply_result(call, status);
    // A failed enter leaves the attributes for the next reply.
    std::vector<std::string> attributes;
    if (status) attributes = instance_.service.publisher().take();
    respond(call, {}, wire::encode_session_enter_reply(status, attributes));
  }

  // From here on this connection answers in Flame main's wrapped edition.
  void use_wrapped_wire(std::string_view evidence) {
    if (wrapped_ || instance_.options.wire == WireMode::v0_6_0) return;
    wrapped_ = true;
    EMBER_INFO("ember.flame", "executor speaks Flame main's wire: replies are wrapped",
               {"evidence", evidence});
  }

  void leave(grpc::ServerCall& call) {
    if (!wire::is_well_formed(call.request()))
      return reject(call, grpc::StatusCode::internal, "malformed EmptyRequest");
    Status status = guarded([&] { return instance_.service.leave(); });
    EMBER_INFO("ember.flame", "session left", {"session_id", instance_.session_id},
               {"tasks", instance_.tasks}, {"failed", instance_.failed});
    instance_.in_session = false;
    reply_result(call, status);
  }

  void invoke(grpc::ServerCall& call) {
    auto ctx = wire::decode_task_context(call.request());
    if (!ctx) return reject(call, grpc::StatusCode::internal, ctx.error());
    if (!ctx->workspace.empty() && !wrapped_) use_wrapped_wire("a task context's workspace");
    ++instance_.tasks;
    EMBER_TRACE("ember.flame", "task", {"task_id", ctx->task_id},
                {"input_bytes", ctx->input ? ctx->input->size() : 0});
    if (!instance_.service.is_async()) {
      TaskResult result = [&]() -> TaskResult {
        try {
          return instance_.service.invoke(std::move(*ctx));
        } catch (const std::exception& e) {
          return FlameError::internal(std::string("handler threw: ") + e.what());
        } catch (...) {
          return FlameError::internal("handler threw a non-standard exception");
        }
      }();
      return send_task_result(call, std::move(result));
    }
    invoke_async(call, std::move(*ctx));
  }

  void invoke_async(grpc::ServerCall& call, TaskContext ctx) {
    PendingTask* p;
    if (!tls_task_pool.free.empty()) {
      p = tls_task_pool.free.back();
      tls_task_pool.free.pop_back();
    } else {
      p = new PendingTask;
      p->deadline.context = p;
      p->deadline.fire = [](TimerEntry* t) {
        auto* task = static_cast<PendingTask*>(t->context);
        if (task->owner) task->owner->on_deadline(task);
      };
      p->run = [](MailboxItem* self, Loop* loop) {
        auto* task = static_cast<PendingTask*>(self);
        if (loop && task->owner) task->owner->finish_task(task);
        release(task, loop != nullptr);  // the completion's reference
      };
    }
    if (p->mailbox != loop().mailbox()) p->mailbox = loop().mailbox();
    p->owner = this;
    p->call = &call;
    call.user = p;
    if (call.has_deadline()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          call.deadline() - std::chrono::steady_clock::now());
      loop().arm(p->deadline, left.count() > 0 ? static_cast<uint64_t>(left.count()) : 0);
    }
    tls_inline_task = p;
    // A handler that throws before answering drops its completion while the
    // exception unwinds; the task then fails with the exception's text, as a
    // synchronous handler's would. (inline_done is only set on this thread.)
    auto threw = [&](std::string message) {
      if (p->inline_done && p->dropped) p->result.emplace(FlameError::internal(std::move(message)));
    };
    try {
      instance_.service.invoke_async(std::move(ctx), TaskCompletion(p));
    } catch (const std::exception& e) {
      EMBER_ERROR("ember.flame", "async handler threw", {"error", e.what()});
      threw(std::string("handler threw: ") + e.what());
    } catch (...) {
      EMBER_ERROR("ember.flame", "async handler threw a non-standard exception");
      threw("handler threw a non-standard exception");
    }
    tls_inline_task = nullptr;
    if (p->inline_done && p->owner) {
      finish_task(p);
      release(p, true);  // the completion's reference
    }
  }

  void on_deadline(PendingTask* p) {
    grpc::ServerCall* call = p->call;
    if (!call) return;
    reject(*call, grpc::StatusCode::deadline_exceeded,
           "the task did not finish before the client's grpc-timeout");
  }

  void send_task_result(grpc::ServerCall& call, TaskResult result) {
    wire::EncodedMessage enc;
    if (result) {
      enc = wire::encode_task_success(std::move(*result));
    } else {
      ++instance_.failed;
      EMBER_DEBUG("ember.flame", "task failed", {"kind", kind_name(result.error().kind())},
                  {"error", result.error().message()});
      enc = wire::encode_task_failure(result.error().to_string());
    }
    std::vector<std::string> attributes;
    AttributePublisher& publisher = instance_.service.publisher();
    if (publisher.pending() > 0) {
      if (wrapped_) {
        attributes = publisher.take();
      } else if (!attributes_unsent_logged_) {
        attributes_unsent_logged_ = true;
        EMBER_WARN("ember.flame",
                   "the service published executor attributes, which Flame v0.6.0's replies "
                   "cannot carry; they wait. Set EMBER_FLAME_WIRE=wrapped if the executor "
                   "runs Flame's main branch",
                   {"pending", publisher.pending()});
      }
    }
    if (enc.size() + wire::attributes_size(attributes) > instance_.options.max_output_bytes) {
      ++instance_.failed;
      std::string msg = "task output is " + std::to_string(enc.body.size()) +
                        " bytes; the executor accepts responses up to " +
                        std::to_string(instance_.options.max_output_bytes) +
                        " bytes. Return less, or raise EMBER_FLAME_MAX_OUTPUT_BYTES if your "
                        "executor accepts more.";
      EMBER_WARN("ember.flame", "task output over the response limit",
                 {"output_bytes", enc.body.size()}, {"limit", instance_.options.max_output_bytes});
      enc = wire::encode_task_failure(msg);
    }
    if (wrapped_) enc = wire::wrap_task_result(std::move(enc), attributes);
    respond(call, enc.head_span(), std::move(enc.body));
  }

  void reply_result(grpc::ServerCall& call, const Status& status) {
    respond(call, {}, wire::encode_result(status));
  }

  void reject(grpc::ServerCall& call, grpc::StatusCode code, std::string_view message) {
    EMBER_WARN("ember.flame", "call rejected", {"path", call.path()},
               {"status", grpc::status_name(code)}, {"message", message});
    fail(call, code, message);
  }

  template <class F>
  Status guarded(F&& f) {
    try {
      return f();
    } catch (const std::exception& e) {
      return FlameError::internal(std::string("handler threw: ") + e.what());
    } catch (...) {
      return FlameError::internal("handler threw a non-standard exception");
    }
  }

  Instance& instance_;
  bool wrapped_;  // answering in Flame main's wrapped edition
  bool attributes_unsent_logged_ = false;
};

class SyncAdapter final : public ServiceAdapter {
 public:
  explicit SyncAdapter(FlameService& s) : s_(s) {}
  Status enter(const SessionContext& ctx) override { return s_.on_session_enter(ctx); }
  Status leave() override { return s_.on_session_leave(); }
  AttributePublisher& publisher() noexcept override { return s_.publisher(); }
  bool is_async() const noexcept override { return false; }
  TaskResult invoke(TaskContext ctx) override { return s_.on_task_invoke(std::move(ctx)); }
  void invoke_async(TaskContext, TaskCompletion) override {}

 private:
  FlameService& s_;
};

class AsyncAdapter final : public ServiceAdapter {
 public:
  explicit AsyncAdapter(AsyncFlameService& s) : s_(s) {}
  Status enter(const SessionContext& ctx) override { return s_.on_session_enter(ctx); }
  Status leave() override { return s_.on_session_leave(); }
  AttributePublisher& publisher() noexcept override { return s_.publisher(); }
  bool is_async() const noexcept override { return true; }
  TaskResult invoke(TaskContext) override {
    return FlameError::internal("async service invoked synchronously");
  }
  void invoke_async(TaskContext ctx, TaskCompletion done) override {
    s_.on_task_invoke(std::move(ctx), std::move(done));
  }

 private:
  AsyncFlameService& s_;
};

int serve(ServiceAdapter& adapter, const RunOptions& options) {
  ReactorOptions ro;
  // The executor opens one connection and sends one task at a time: a single
  // loop serves it with the least latency and memory.
  ro.threads = 1;
  ro.drain_timeout = options.drain_timeout;
  ro.max_connections = options.max_connections;
  ro.socket_send_buffer = options.socket_send_buffer;
  ro.busy_poll = options.busy_poll;
  Reactor reactor(ro);

  grpc::ServerOptions so;
  so.max_receive_message_size = options.max_message_bytes;
  so.max_header_list_size = options.max_header_bytes;
  so.http2.max_concurrent_streams = options.max_concurrent_streams;
  so.http2.max_frame_size = options.max_frame_bytes;
  so.http2.initial_window_size = options.stream_window_bytes;
  so.http2.connection_window_size = options.connection_window_bytes;
  so.http2.max_header_list_size = static_cast<uint32_t>(options.max_header_bytes);
  // Pipelined tasks with large outputs: one answer at a time, not all at once.
  so.http2.complete_streams_in_order = true;

  Instance instance{adapter, options, {}, false, 0, 0};
  Result<void> listening = reactor.listen_unix(options.endpoint, [&](Loop& loop) {
    return std::make_unique<InstanceConnection>(loop, instance, so);
  });
  if (!listening) {
    EMBER_ERROR("ember.flame", "cannot serve the instance endpoint", {"endpoint", options.endpoint},
                {"error", listening.error().message});
    return 2;
  }
  EMBER_INFO("ember.flame", "instance server ready", {"endpoint", options.endpoint},
             {"pid", static_cast<long long>(::getpid())});
  int rc = reactor.run();
  EMBER_INFO("ember.flame", "instance server stopped", {"tasks", instance.tasks},
             {"failed", instance.failed}, {"clean", rc == 0});
  return rc;
}

}  // namespace detail

TaskCompletion& TaskCompletion::operator=(TaskCompletion&& other) noexcept {
  if (this != &other) {
    if (pending_) (*this)(FlameError::internal("task completion overwritten without answering"));
    pending_ = other.pending_;
    other.pending_ = nullptr;
  }
  return *this;
}

TaskCompletion::~TaskCompletion() {
  if (!pending_) return;
  pending_->dropped = true;
  (*this)(FlameError::internal("the service dropped the task's completion without answering"));
}

void TaskCompletion::operator()(TaskResult result) {
  detail::PendingTask* p = pending_;
  if (!p) return;  // answered already
  pending_ = nullptr;
  p->result.emplace(std::move(result));
  if (detail::tls_inline_task == p) {
    p->inline_done = true;
    return;
  }
  p->mailbox->post(p);
}

int run(FlameService& service, const RunOptions& options) {
  detail::SyncAdapter adapter(service);
  return detail::serve(adapter, options);
}

int run(AsyncFlameService& service, const RunOptions& options) {
  detail::AsyncAdapter adapter(service);
  return detail::serve(adapter, options);
}

namespace {
template <class S>
int run_from_env(S& service) {
  auto options = RunOptions::from_env();
  if (!options) {
    EMBER_ERROR("ember.flame", "cannot start", {"error", options.error()});
    return 2;
  }
  return run(service, *options);
}
}  // namespace

int run(FlameService& service) {
  return run_from_env(service);
}
int run(AsyncFlameService& service) {
  return run_from_env(service);
}

}  // namespace ember::flame
