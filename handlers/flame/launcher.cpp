#include "handlers/flame/launcher.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>

#include "ember_flame_wire.pb.h"

extern char** environ;

namespace ember::flame {

// ---- environment and statuses --------------------------------------------------

std::vector<std::string> instance_environment(
    const std::string& socket_path, const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    bool overridden = kv.starts_with("FLAME_INSTANCE_ENDPOINT=");
    for (const auto& [k, v] : extra)
      overridden = overridden || (kv.size() > k.size() && kv.starts_with(k) && kv[k.size()] == '=');
    if (!overridden) env.emplace_back(kv);
  }
  env.push_back("FLAME_INSTANCE_ENDPOINT=" + socket_path);
  for (const auto& [k, v] : extra) {
    std::string s = k;
    s.push_back('=');
    s.append(v);
    env.push_back(std::move(s));
  }
  return env;
}

std::string describe_exit(int status) {
  if (status > 128 && status < 128 + 65) {
    int sig = status - 128;
    const char* abbrev = sigabbrev_np(sig);
    std::string s = "was killed by signal " + std::to_string(sig);
    if (abbrev) {
      s.append(" (SIG");
      s.append(abbrev);
      s.push_back(')');
    }
    return s;
  }
  return "exited with status " + std::to_string(status);
}

// ---- InstanceProcess -----------------------------------------------------------

struct InstanceProcess::Proc {
  uv_process_t handle;
  InstanceProcess* owner = nullptr;
};

namespace {

// Unix sockets accept into the backlog at once: a refused connect means the
// service has bound but not yet listened.
bool socket_accepts(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

Result<std::unique_ptr<InstanceProcess>> InstanceProcess::launch(Loop& loop, LaunchSpec spec,
                                                                 ReadyFn ready, ExitFn exited) {
  if (spec.argv.empty() || spec.argv[0].empty()) return Error("no service program given");
  if (spec.socket_path.empty()) return Error("no socket path for the service");
  if (spec.socket_path.size() > 107)
    return Error("socket path \"" + spec.socket_path +
                 "\" is over 107 bytes (sun_path); use a shorter TMPDIR or state directory");
  // A leftover socket of a dead instance is replaced; anything else is an error.
  struct stat st;
  if (::lstat(spec.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error("\"" + spec.socket_path + "\" exists and is not a socket; remove it");
    ::unlink(spec.socket_path.c_str());
  }

  std::unique_ptr<InstanceProcess> p(new InstanceProcess(loop, std::move(spec)));
  p->ready_ = std::move(ready);
  p->exited_ = std::move(exited);

  std::vector<std::string> env = instance_environment(p->spec_.socket_path, p->spec_.env);
  std::vector<char*> envp, argv;
  for (auto& s : env)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = p->spec_.argv;
  for (auto& s : args)
    argv.push_back(s.data());
  argv.push_back(nullptr);

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;  // stdin: /dev/null
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = p->spec_.stdout_to_stderr ? 2 : 1;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;

  uv_process_options_t o{};
  o.file = argv[0];
  o.args = argv.data();
  o.env = envp.data();
  o.cwd = p->spec_.working_directory.empty() ? nullptr : p->spec_.working_directory.c_str();
  // Its own session and process group: release signals the whole group.
  o.flags = UV_PROCESS_DETACHED;
  o.stdio_count = 3;
  o.stdio = stdio;
  o.exit_cb = [](uv_process_t* h, int64_t exit_status, int term_signal) {
    auto* proc = static_cast<Proc*>(h->data);
    int status = term_signal != 0 ? 128 + term_signal : static_cast<int>(exit_status);
    InstanceProcess* owner = proc->owner;
    uv_close(reinterpret_cast<uv_handle_t*>(h),
             [](uv_handle_t* hh) { delete static_cast<Proc*>(hh->data); });
    if (owner) {
      owner->proc_ = nullptr;
      owner->on_exit(status);
    }
  };

  auto* proc = new Proc;
  proc->handle.data = proc;
  proc->owner = p.get();
  int rc = uv_spawn(loop.uv(), &proc->handle, &o);
  if (rc != 0) {
    // libuv closes nothing on failure; the handle was initialised, close it.
    uv_close(reinterpret_cast<uv_handle_t*>(&proc->handle),
             [](uv_handle_t* hh) { delete static_cast<Proc*>(hh->data); });
    std::string msg = "cannot run \"" + p->spec_.argv[0] + "\": " + uv_strerror(rc);
    if (!p->spec_.working_directory.empty())
      msg.append(" (working directory \"" + p->spec_.working_directory + "\")");
    return Error(std::move(msg), rc);
  }
  p->proc_ = proc;
  p->poll_.fire = &InstanceProcess::poll_socket;
  p->poll_.context = p.get();
  p->kill_.fire = &InstanceProcess::kill_timer;
  p->kill_.context = p.get();
  p->startup_deadline_ = loop.now_ms() + static_cast<uint64_t>(p->spec_.startup_timeout.count());
  loop.arm(p->poll_, 1);
  return p;
}

void InstanceProcess::poll_socket(TimerEntry* t) {
  auto* self = static_cast<InstanceProcess*>(t->context);
  if (!self->ready_) return;
  if (socket_accepts(self->spec_.socket_path)) {
    self->report_ready({});
    return;
  }
  if (self->loop_.now_ms() >= self->startup_deadline_) {
    std::string msg = "the service \"" + self->spec_.argv[0] + "\" did not create its socket " +
                      self->spec_.socket_path + " within " +
                      std::to_string(self->spec_.startup_timeout.count()) + " ms";
    self->terminate(std::chrono::milliseconds(1000));
    self->report_ready(Error(std::move(msg)));
    return;
  }
  self->loop_.arm(self->poll_, 2);
}

void InstanceProcess::report_ready(Result<void> r) {
  loop_.cancel(poll_);
  ReadyFn fn = std::move(ready_);
  ready_ = nullptr;
  if (fn) fn(std::move(r));  // may destroy this
}

void InstanceProcess::on_exit(int status) {
  status_ = status;
  loop_.cancel(kill_);
  if (ready_) {
    exited_ = nullptr;  // the ready callback hears of it instead
    report_ready(Error("the service \"" + spec_.argv[0] + "\" " + describe_exit(status) +
                       " before creating its socket (see its log above)"));
    return;
  }
  ExitFn fn = std::move(exited_);
  exited_ = nullptr;
  if (fn) fn(status);  // may destroy this
}

void InstanceProcess::kill_timer(TimerEntry* t) {
  auto* self = static_cast<InstanceProcess*>(t->context);
  if (self->proc_) ::kill(-self->proc_->handle.pid, SIGKILL);
}

void InstanceProcess::terminate(std::chrono::milliseconds grace) {
  if (!proc_) return;
  ::kill(-proc_->handle.pid, SIGTERM);
  if (!kill_.armed()) loop_.arm(kill_, static_cast<uint64_t>(grace.count()));
}

pid_t InstanceProcess::pid() const noexcept {
  return proc_ ? proc_->handle.pid : -1;
}

std::optional<int> InstanceProcess::exit_status() const noexcept {
  return status_;
}

InstanceProcess::~InstanceProcess() {
  loop_.cancel(poll_);
  loop_.cancel(kill_);
  if (proc_) {
    ::kill(-proc_->handle.pid, SIGKILL);
    proc_->owner = nullptr;  // its exit callback closes and frees the handle
  }
}

// ---- InstanceChannel -----------------------------------------------------------

namespace {

constexpr std::string_view kEnter = "/flame.v1.Instance/OnSessionEnter";
constexpr std::string_view kInvoke = "/flame.v1.Instance/OnTaskInvoke";
constexpr std::string_view kLeave = "/flame.v1.Instance/OnSessionLeave";

grpc::Channel::Options channel_options(const InstanceChannelOptions& o) {
  grpc::Channel::Options c;
  c.grpc.http2.max_frame_size = o.max_frame_size;
  c.grpc.http2.initial_window_size = o.stream_window;
  c.grpc.http2.connection_window_size = o.connection_window;
  c.grpc.max_receive_message_size = o.max_response_bytes;
  c.grpc.authority = "[::]:50051";  // what the executor sends; servers must not care
  c.grpc.user_agent = "ember-flame-executor/0.1";
  c.connect.socket_send_buffer = o.socket_send_buffer;
  return c;
}

}  // namespace

Expected<CallResult, grpc::Status> decode_call_result(const std::optional<Bytes>& message) {
  if (!message) return CallResult{};
  auto r = wire::decode_result(*message);
  if (!r) return grpc::Status{grpc::StatusCode::internal, r.error() + " from the service"};
  return std::move(*r);
}

InstanceChannel::InstanceChannel(Loop& loop, std::string socket_path,
                                 InstanceChannelOptions options)
    : options_(options),
      channel_(loop, grpc::Channel::unix_socket(std::move(socket_path)), channel_options(options)) {
}

InstanceChannel::~InstanceChannel() = default;

void InstanceChannel::enter(const std::string& session_id, const ApplicationInfo& app,
                            const std::optional<Bytes>& common_data, ResultFn done) {
  ::ember::wire::flame::v1::SessionContext pb;
  pb.set_session_id(session_id);
  auto* a = pb.mutable_application();
  a->set_name(app.name);
  a->set_shim(static_cast<::ember::wire::flame::v1::Shim>(app.shim));
  if (app.image) a->set_image(*app.image);
  if (app.command) a->set_command(*app.command);
  if (app.working_directory) a->set_working_directory(*app.working_directory);
  if (app.url) a->set_url(*app.url);
  if (app.installer) a->set_installer(*app.installer);
  if (common_data) pb.set_common_data(common_data->to_string());
  channel_.unary(kEnter, Bytes::from(pb.SerializeAsString()),
                 [done = std::move(done)](grpc::Status s, std::optional<Bytes> m) {
                   if (!s.ok()) return done(std::move(s));
                   done(decode_call_result(m));
                 },
                 {options_.call_timeout});
}

void InstanceChannel::leave(ResultFn done) {
  channel_.unary(kLeave, Bytes(),
                 [done = std::move(done)](grpc::Status s, std::optional<Bytes> m) {
                   if (!s.ok()) return done(std::move(s));
                   done(decode_call_result(m));
                 },
                 {options_.call_timeout});
}

void InstanceChannel::invoke(std::string_view task_id, std::string_view session_id,
                             const std::optional<Bytes>& input, TaskFn done) {
  wire::EncodedMessage m = wire::encode_task_context(task_id, session_id, input);
  // The channel sends one body: the head goes in front of the input (one
  // copy of small inputs; large ones are rare on this path).
  Bytes request;
  if (m.head_len == 0) {
    request = std::move(m.body);
  } else {
    std::string all(reinterpret_cast<const char*>(m.head), m.head_len);
    all.append(reinterpret_cast<const char*>(m.body.data()), m.body.size());
    request = Bytes::from(std::move(all));
  }
  channel_.unary(kInvoke, std::move(request),
                 [done = std::move(done)](grpc::Status s, std::optional<Bytes> m) {
                   if (!s.ok()) return done(std::move(s));
                   if (!m) return done(TaskOutcome{});
                   auto out = wire::decode_task_result(*m);
                   if (!out) return done(grpc::Status{grpc::StatusCode::internal, out.error()});
                   done(std::move(*out));
                 },
                 {options_.call_timeout});
}

}  // namespace ember::flame
