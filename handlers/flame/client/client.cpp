// The asynchronous Flame client: flame.v1.Frontend calls over grpc::Channel
// on one loop, messages built with the generated flame.v1 classes.
#include <memory>
#include <unordered_map>

#include "core/tls.hpp"
#include "ember/flame_client.hpp"
#include "ember/reactor.hpp"
#include "ember_flame_wire.pb.h"
#include "handlers/flame/client/convert.hpp"
#include "protocols/grpc/channel.hpp"

namespace ember::flame::client {
namespace {

constexpr std::string_view kService = "/flame.v1.Frontend/";

std::string path_of(std::string_view method) {
  std::string p(kService);
  p.append(method);
  return p;
}

Bytes encode(const google::protobuf::Message& m) {
  return Bytes::from(m.SerializeAsString());
}

struct Endpoint {
  std::string scheme, host, unix_path;
  uint16_t port = 0;
};

Result<Endpoint> parse_endpoint(std::string_view text) {
  Endpoint e;
  auto bad = [&](std::string_view why) {
    std::string m = "invalid Flame endpoint <";
    m.append(text).append(">: ").append(why);
    return Error(std::move(m), static_cast<int>(ErrorCode::invalid_config));
  };
  size_t colon = text.find(':');
  if (colon == std::string_view::npos)
    return bad("expected http://host:port, https://host:port or unix:/path");
  e.scheme = std::string(text.substr(0, colon));
  std::string_view rest = text.substr(colon + 1);
  if (e.scheme == "unix") {
    while (rest.starts_with("//"))
      rest.remove_prefix(1);
    if (rest.empty() || rest[0] != '/') return bad("expected unix:/absolute/path");
    e.unix_path = std::string(rest);
    return e;
  }
  if (e.scheme != "http" && e.scheme != "https")
    return bad("the scheme must be http, https or unix");
  if (!rest.starts_with("//")) return bad("expected <scheme>://host:port");
  rest.remove_prefix(2);
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") return bad("a path is not allowed");
    rest = rest.substr(0, slash);
  }
  std::string_view port;
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed [ in the host");
    e.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (rest.starts_with(":"))
      port = rest.substr(1);
    else if (!rest.empty())
      return bad("unexpected text after the host");
  } else {
    size_t c = rest.rfind(':');
    e.host = std::string(rest.substr(0, c));
    if (c != std::string_view::npos) port = rest.substr(c + 1);
  }
  if (e.host.empty()) return bad("the host is missing");
  if (port.empty()) {
    e.port = e.scheme == "https" ? 443 : 80;
  } else {
    unsigned p = 0;
    for (char ch : port) {
      if (ch < '0' || ch > '9' || (p = p * 10 + unsigned(ch - '0')) > 65535)
        return bad("the port must be a number from 1 to 65535");
    }
    if (p == 0) return bad("the port must be a number from 1 to 65535");
    e.port = static_cast<uint16_t>(p);
  }
  return e;
}

// One watch_task in flight.
struct Watch {
  uint64_t call_id = 0;
  UpdateFn on_update;
  Done<Task> done;
  std::optional<Task> last;
  bool finished = false;  // `done` has run
};

class Client final : public AsyncClient {
 public:
  Client(Loop& loop, std::string endpoint, grpc::Channel::Target target,
         grpc::Channel::Options options, const ConnectOptions& opts)
      : loop_(loop),
        endpoint_(std::move(endpoint)),
        call_timeout_(opts.call_timeout),
        channel_(loop, std::move(target), std::move(options)) {}
  ~Client() override { *alive_ = false; }

  // ---- applications ----
  void register_application(std::string name, const ApplicationAttributes& attrs,
                            Done<void> done) override {
    pb::RegisterApplicationRequest req;
    req.set_name(name);
    to_proto(attrs, *req.mutable_application());
    result_call("RegisterApplication", name, req, std::move(done));
  }
  void unregister_application(std::string name, Done<void> done) override {
    pb::UnregisterApplicationRequest req;
    req.set_name(name);
    result_call("UnregisterApplication", name, req, std::move(done));
  }
  void update_application(std::string name, const ApplicationAttributes& attrs,
                          Done<void> done) override {
    pb::UpdateApplicationRequest req;
    req.set_name(name);
    to_proto(attrs, *req.mutable_application());
    result_call("UpdateApplication", name, req, std::move(done));
  }
  void get_application(std::string name, Done<Application> done) override {
    pb::GetApplicationRequest req;
    req.set_name(name);
    unary<pb::Application>(
        "GetApplication", name, req, std::move(done),
        [](const pb::Application& a) -> Result<Application> { return from_proto(a); });
  }
  void list_applications(Done<std::vector<Application>> done) override {
    unary_fallback<pb::ApplicationList>(
        "ListApplication", "ListApplications", pb::ListApplicationRequest(), std::move(done),
        [](const pb::ApplicationList& l) -> Result<std::vector<Application>> {
          std::vector<Application> out;
          for (const auto& a : l.applications())
            out.push_back(from_proto(a));
          return out;
        });
  }

  // ---- sessions ----
  void create_session(const SessionAttributes& attrs, Done<SessionInfo> done) override {
    pb::CreateSessionRequest req;
    req.set_session_id(attrs.id);
    to_proto(attrs, *req.mutable_session());
    unary<pb::Session>("CreateSession", attrs.id, req, std::move(done), session_from);
  }
  void open_session(std::string id, std::optional<SessionAttributes> attrs,
                    Done<SessionInfo> done) override {
    pb::OpenSessionRequest req;
    req.set_session_id(id);
    if (attrs) {
      if (!attrs->id.empty() && attrs->id != id) {
        std::string m = "OpenSession: session id <";
        m.append(id).append("> does not match the attributes' id <").append(attrs->id).append(">");
        return done(Error(std::move(m), static_cast<int>(ErrorCode::invalid_config)));
      }
      attrs->id = id;
      to_proto(*attrs, *req.mutable_session());
    }
    unary<pb::Session>(
        "OpenSession", id, req, std::move(done),
        [attrs = std::move(attrs)](const pb::Session& s) -> Result<SessionInfo> {
          SessionInfo info = from_proto(s);
          if (attrs) {
            auto diff = spec_differences(*attrs, info.attributes);
            if (!diff.empty()) {
              std::string m = "OpenSession ";
              m.append(info.id)
                  .append(": the session exists with another spec (")
                  .append(diff)
                  .append("): open it without attributes, or use another id");
              return Error(std::move(m), static_cast<int>(ErrorCode::invalid_config));
            }
          }
          if (info.state == SessionState::Closed) {
            std::string m = "OpenSession ";
            m.append(info.id).append(": the session is closed: use another id");
            return Error(std::move(m), static_cast<int>(ErrorCode::failed_precondition));
          }
          return info;
        });
  }
  void close_session(std::string id, Done<SessionInfo> done) override {
    pb::CloseSessionRequest req;
    req.set_session_id(id);
    unary<pb::Session>("CloseSession", id, req, std::move(done), session_from);
  }
  void get_session(std::string id, Done<SessionInfo> done) override {
    pb::GetSessionRequest req;
    req.set_session_id(id);
    unary<pb::Session>("GetSession", id, req, std::move(done), session_from);
  }
  void list_sessions(Done<std::vector<SessionInfo>> done) override {
    unary_fallback<pb::SessionList>(
        "ListSession", "ListSessions", pb::ListSessionRequest(), std::move(done),
        [](const pb::SessionList& l) -> Result<std::vector<SessionInfo>> {
          std::vector<SessionInfo> out;
          for (const auto& s : l.sessions())
            out.push_back(from_proto(s));
          return out;
        });
  }

  // ---- tasks ----
  void create_task(std::string session_id, std::optional<Bytes> input, Done<Task> done) override {
    pb::CreateTaskRequest req;
    auto* spec = req.mutable_task();
    spec->set_session_id(session_id);
    if (input) spec->set_input(std::string(input->view()));
    unary<pb::Task>("CreateTask", session_id, req, std::move(done), task_from);
  }
  void get_task(std::string session_id, std::string task_id, Done<Task> done) override {
    pb::GetTaskRequest req;
    req.set_session_id(session_id);
    req.set_task_id(task_id);
    std::string what = session_id;
    what.append("/").append(task_id);
    unary<pb::Task>("GetTask", what, req, std::move(done), task_from);
  }
  void list_tasks(std::string session_id, Done<std::vector<Task>> done) override {
    pb::ListTaskRequest req;
    req.set_session_id(session_id);
    list_tasks_as("ListTask", std::move(session_id), encode(req), std::move(done));
  }

  uint64_t watch_task(std::string session_id, std::string task_id, UpdateFn on_update,
                      Done<Task> done) override {
    pb::WatchTaskRequest req;
    req.set_session_id(session_id);
    req.set_task_id(task_id);
    std::string what = session_id;
    what.append("/").append(task_id);
    uint64_t id = next_watch_++;
    auto w = std::make_shared<Watch>();
    w->on_update = std::move(on_update);
    w->done = std::move(done);
    watches_[id] = w;
    uint64_t call = channel_.server_streaming(
        path_of("WatchTask"), encode(req),
        [this, w, what, id](Bytes m) {
          if (w->finished) return;
          pb::Task t;
          if (!t.ParseFromArray(m.data(), static_cast<int>(m.size()))) {
            finish_watch(id, *w, malformed("WatchTask", what));
            cancel_later(w);
            return;
          }
          Task task = from_proto(t);
          bool final = task.is_completed();
          if (w->on_update) w->on_update(task);
          if (w->finished) return;  // the callback cancelled the watch
          w->last = std::move(task);
          if (final) {
            finish_watch(id, *w, std::move(*w->last));
            cancel_later(w);  // a server that keeps the stream open
          }
        },
        [this, w, what, id](grpc::Status s) {
          w->call_id = 0;
          if (w->finished) return;
          if (!s.ok()) return finish_watch(id, *w, rpc_error("WatchTask", what, s));
          std::string m = "WatchTask ";
          m.append(what).append(": the session manager ended the watch before the task finished");
          if (w->last) m.append(" (last state ").append(state_name(w->last->state)).append(")");
          finish_watch(id, *w, Error(std::move(m), static_cast<int>(ErrorCode::incomplete)));
        });
    if (!w->finished) w->call_id = call;
    return id;
  }

  void run_task(std::string session_id, std::optional<Bytes> input, UpdateFn on_update,
                Done<Task> done) override {
    auto alive = alive_;
    create_task(session_id, std::move(input),
                [this, alive, session_id, on_update = std::move(on_update),
                 done = std::move(done)](Result<Task> t) mutable {
                  if (!*alive) return;
                  if (!t) return done(std::move(t).error());
                  watch_task(std::move(session_id), t->id, std::move(on_update), std::move(done));
                });
  }

  bool cancel(uint64_t watch_id) override {
    auto it = watches_.find(watch_id);
    if (it == watches_.end()) return false;
    auto w = it->second;
    std::string m = "WatchTask: cancelled by the client";
    finish_watch(watch_id, *w, Error(std::move(m), static_cast<int>(ErrorCode::cancelled)));
    if (w->call_id) channel_.cancel(w->call_id);
    return true;
  }

  size_t calls_in_flight() const noexcept override { return channel_.calls_in_flight(); }
  Loop& loop() const noexcept override { return loop_; }
  const std::string& endpoint() const noexcept override { return endpoint_; }

 private:
  Error rpc_error(std::string_view method, std::string_view what, const grpc::Status& s) const {
    std::string m(method);
    if (!what.empty()) m.append(" ").append(what);
    m.append(" failed: ").append(grpc::status_name(s.code));
    if (!s.message.empty()) m.append(": ").append(s.message);
    if (s.code == grpc::StatusCode::unavailable)
      m.append(" (is the Flame session manager at ").append(endpoint_).append(" running?)");
    return Error(std::move(m), static_cast<int>(s.code));
  }
  static Error malformed(std::string_view method, std::string_view what) {
    std::string m(method);
    m.append(" ").append(what).append(": the answer is not a flame.v1 message (is the endpoint a ");
    m.append("Flame session manager?)");
    return Error(std::move(m), static_cast<int>(ErrorCode::malformed));
  }
  static Result<SessionInfo> session_from(const pb::Session& s) { return from_proto(s); }
  static Result<Task> task_from(const pb::Task& t) { return from_proto(t); }

  grpc::CallOptions call_options() const { return {.timeout = call_timeout_}; }

  template <class Resp, class T, class Conv>
  void unary(std::string_view method, std::string what, const google::protobuf::Message& req,
             Done<T> done, Conv conv) {
    std::string name(method);
    channel_.unary(
        path_of(method), encode(req),
        [this, name, what = std::move(what), done = std::move(done), conv = std::move(conv)](
            grpc::Status s, std::optional<Bytes> m) {
          if (!s.ok()) return done(rpc_error(name, what, s));
          Resp resp;
          if (m && !resp.ParseFromArray(m->data(), static_cast<int>(m->size())))
            return done(malformed(name, what));
          done(conv(resp));
        },
        call_options());
  }

  // A call renamed on Flame's main branch: the v0.6.0 name first, the new
  // one when that is UNIMPLEMENTED (and from then on).
  template <class Resp, class T, class Conv>
  void unary_fallback(std::string_view old_name, std::string_view new_name,
                      const google::protobuf::Message& req, Done<T> done, Conv conv) {
    if (branch_names_) return unary<Resp>(new_name, "", req, std::move(done), std::move(conv));
    Bytes body = encode(req);
    std::string o(old_name), n(new_name);
    channel_.unary(
        path_of(old_name), body,
        [this, o, n, body, done = std::move(done), conv = std::move(conv)](
            grpc::Status s, std::optional<Bytes> m) mutable {
          if (s.code == grpc::StatusCode::unimplemented) {
            branch_names_ = true;
            channel_.unary(
                path_of(n), body,
                [this, n, done = std::move(done), conv = std::move(conv)](grpc::Status s2,
                                                                          std::optional<Bytes> m2) {
                  deliver<Resp>(n, s2, m2, done, conv);
                },
                call_options());
            return;
          }
          deliver<Resp>(o, s, m, done, conv);
        },
        call_options());
  }

  template <class Resp, class T, class Conv>
  void deliver(const std::string& method, const grpc::Status& s, const std::optional<Bytes>& m,
               const Done<T>& done, const Conv& conv) {
    if (!s.ok()) return done(rpc_error(method, "", s));
    Resp resp;
    if (m && !resp.ParseFromArray(m->data(), static_cast<int>(m->size())))
      return done(malformed(method, ""));
    done(conv(resp));
  }

  // flame.v1.Result: return_code < 0 is Flame refusing the call.
  void result_call(std::string_view method, std::string what, const google::protobuf::Message& req,
                   Done<void> done) {
    std::string name(method);
    unary<pb::Result>(method, what, req, std::move(done),
                      [name, what](const pb::Result& r) -> Result<void> {
                        if (r.return_code() >= 0) return {};
                        std::string m = name;
                        m.append(" ").append(what).append(" refused by Flame");
                        if (r.has_message()) m.append(": ").append(r.message());
                        return Error(std::move(m), static_cast<int>(ErrorCode::flame));
                      });
  }

  void list_tasks_as(std::string_view method, std::string session_id, Bytes body,
                     Done<std::vector<Task>> done) {
    if (branch_names_ && method == "ListTask") method = "ListTasks";
    auto tasks = std::make_shared<std::vector<Task>>();
    auto bad = std::make_shared<bool>(false);
    std::string name(method);
    channel_.server_streaming(
        path_of(method), body,
        [tasks, bad](Bytes m) {
          pb::Task t;
          if (!t.ParseFromArray(m.data(), static_cast<int>(m.size())))
            *bad = true;
          else
            tasks->push_back(from_proto(t));
        },
        [this, name, session_id, body, tasks, bad, done = std::move(done)](grpc::Status s) mutable {
          if (s.code == grpc::StatusCode::unimplemented && name == "ListTask") {
            branch_names_ = true;
            return list_tasks_as("ListTasks", std::move(session_id), body, std::move(done));
          }
          if (!s.ok()) return done(rpc_error(name, session_id, s));
          if (*bad) return done(malformed(name, session_id));
          done(std::move(*tasks));
        });
  }

  void finish_watch(uint64_t id, Watch& w, Result<Task> r) {
    w.finished = true;
    auto done = std::move(w.done);
    watches_.erase(id);
    if (done) done(std::move(r));
  }

  // Ends the stream of a finished watch unless the server ends it first (its
  // trailers usually come in the same read as the final task).
  void cancel_later(const std::shared_ptr<Watch>& w) {
    auto alive = alive_;
    loop_.post([this, alive, w](Loop&) {
      if (*alive && w->call_id) channel_.cancel(w->call_id);
    });
  }

  Loop& loop_;
  std::string endpoint_;
  std::chrono::milliseconds call_timeout_;
  grpc::Channel channel_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool branch_names_ = false;  // the session manager serves Flame main's renamed calls
  uint64_t next_watch_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Watch>> watches_;
};

}  // namespace

Result<std::unique_ptr<AsyncClient>> AsyncClient::create(Loop& loop, std::string_view endpoint,
                                                         ConnectOptions options) {
  auto ep = parse_endpoint(endpoint);
  if (!ep) return std::move(ep).error();
  grpc::Channel::Options co;
  co.connect.timeout = options.connect_timeout;
  co.grpc.max_receive_message_size = options.max_message_bytes;
  grpc::Channel::Target target;
  if (!ep->unix_path.empty()) {
    target = grpc::Channel::unix_socket(ep->unix_path);
  } else {
    target = grpc::Channel::tcp(ep->host, ep->port);
    bool v6 = ep->host.find(':') != std::string::npos;
    co.grpc.authority.clear();
    co.grpc.authority.append(v6 ? "[" : "").append(ep->host).append(v6 ? "]:" : ":");
    co.grpc.authority.append(std::to_string(ep->port));
  }
  if (ep->scheme == "https") {
    tls::ClientConfig cfg;
    cfg.alpn = {"h2"};
    if (options.tls) {
      const ClientTls& t = *options.tls;
      if (t.cert_file.has_value() != t.key_file.has_value()) {
        std::string m = "client TLS for <";
        m.append(endpoint).append(
            "> needs both cert_file and key_file (FLAME_CERT_FILE, FLAME_KEY_FILE)");
        return Error(std::move(m), static_cast<int>(ErrorCode::invalid_config));
      }
      if (t.ca_file) cfg.ca_file = *t.ca_file;
      if (t.cert_file) cfg.cert_file = *t.cert_file;
      if (t.key_file) cfg.key_file = *t.key_file;
    }
    auto ctx = tls::ClientContext::create(cfg);
    if (!ctx) {
      std::string m = "TLS for <";
      m.append(endpoint).append(">: ").append(ctx.error().message);
      return Error(std::move(m), static_cast<int>(ErrorCode::invalid_config));
    }
    co.connect.tls = *ctx;
    co.grpc.scheme = "https";
  }
  return std::unique_ptr<AsyncClient>(
      new Client(loop, std::string(endpoint), std::move(target), std::move(co), options));
}

}  // namespace ember::flame::client
