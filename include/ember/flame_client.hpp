// Flame client SDK: drive a Flame session manager (flame.v1.Frontend) from
// C++, as Flame's Rust client (flame_rs::client) does.
//
//   using namespace ember::flame::client;
//   auto ctx = FlameContext::from_file_with_env();          // ~/.flame/flame.yaml + env
//   auto entry = ctx->current();                            // the current context
//   auto conn = connect(entry->cluster.endpoint, entry->cluster.tls);
//   auto ssn = (*conn)->create_session({.id = "pi-1", .application = "pi"});
//   PrintInformer informer;
//   auto task = ssn->run_task(Bytes::copy("1000000"), informer);   // blocks
//   ssn->close();
//
// Two forms of every call:
// * Connection (synchronous): each call blocks the calling thread until the
//   session manager answers. The connection runs its own loop thread; calls
//   may come from any number of threads at once (they share one HTTP/2
//   connection). Informer callbacks of run_task/watch_task run on the
//   calling thread.
// * AsyncClient (asynchronous): lives on one Ember Loop; every call returns
//   at once and its callback runs later on that loop's thread, so one thread
//   keeps any number of calls and tasks in flight. Connection::post() hands
//   work to the AsyncClient of a Connection.
//
// Errors are values (ember::Result / ember::Error), never exceptions.
// Error::code tells what kind of failure it was (see ErrorCode and
// error_code()); Error::message names the call, what failed and what to do.
//
// Endpoints: "http://host:port" (h2c), "https://host:port" (TLS with ALPN h2,
// verified against ClientTls::ca_file or the system CAs), "unix:/path" (h2c
// on a Unix socket). The connection opens with the first call and reopens
// with the first call after it was lost; an unreachable manager fails that
// call with ErrorCode::unavailable.
//
// Wire editions: the calls are those of Flame v0.6.0 (ListApplication,
// ListSession, ListTask). A session manager built from Flame's main branch
// answers those UNIMPLEMENTED and serves ListApplications, ListSessions and
// ListTasks: the client then retries with the new name and keeps using it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/error.hpp"
#include "ember/flame.hpp"

namespace ember {
class Loop;
}

namespace ember::flame::client {

// ---- errors -----------------------------------------------------------------

// Error::code of the client's errors: 1..16 are the gRPC status with which the
// session manager (or the connection) failed the call; the others are the
// client's own.
enum class ErrorCode : int {
  none = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,  // the connection could not be made or was lost
  data_loss = 15,
  unauthenticated = 16,
  invalid_config = 100,  // configuration, endpoint, resource text, session spec mismatch
  flame = 101,           // the call succeeded but Flame refused it (Result.return_code < 0)
  malformed = 102,       // the answer could not be decoded
  incomplete = 103,      // a watch ended before its task reached a final state
};

inline ErrorCode error_code(const Error& e) noexcept {
  return static_cast<ErrorCode>(e.code);
}

// ---- configuration (~/.flame/flame.yaml) -----------------------------------

struct ClientTls {
  std::optional<std::string> ca_file{};    // PEM CAs that sign the server; none: system CAs
  std::optional<std::string> cert_file{};  // client certificate (with key_file)
  std::optional<std::string> key_file{};
};

struct ClusterConfig {
  std::string endpoint{};  // "http://127.0.0.1:8080", "https://…"
  std::optional<ClientTls> tls{};
};

struct CacheConfig {
  std::optional<std::string> endpoint{};  // "grpc://127.0.0.1:9090"
  std::optional<ClientTls> tls{};
  std::optional<std::string> storage{};
};

struct ContextEntry {
  std::string name{};
  std::string workspace = "default";
  ClusterConfig cluster{};
  std::optional<CacheConfig> cache{};
};

// The client configuration file:
//
//   current-context: flame
//   contexts:
//   - name: flame
//     cluster:
//       endpoint: "https://flame.example:8080"
//       tls: { ca_file: /etc/flame/ca.crt }
//     cache:
//       endpoint: "grpc://127.0.0.1:9090"
//
// Environment overrides of the current context (apply_env_overrides):
// FLAME_ENDPOINT replaces the cluster endpoint; FLAME_CA_FILE, FLAME_CERT_FILE
// and FLAME_KEY_FILE fill the cluster's and the cache's TLS settings where
// they have none; FLAME_CACHE_ENDPOINT replaces (or adds) the cache endpoint;
// FLAME_WORKSPACE sets the workspace.
struct FlameContext {
  std::string current_context{};
  std::vector<ContextEntry> contexts{};

  // Parses the YAML text; `origin` names it in errors (a path).
  static Result<FlameContext> parse(std::string_view yaml, std::string_view origin = "flame.yaml");
  // `path`, or $HOME/.flame/flame.yaml when empty.
  static Result<FlameContext> from_file(const std::string& path = {});
  // A context named "env" from FLAME_ENDPOINT (required) and the variables above.
  static Result<FlameContext> from_env();
  // from_file() then apply_env_overrides(). When the file does not exist and
  // FLAME_ENDPOINT is set (as inside a Flame executor), from_env().
  static Result<FlameContext> from_file_with_env(const std::string& path = {});
  void apply_env_overrides();

  // The entry named by current_context; InvalidConfig when there is none.
  Result<ContextEntry> current() const;
};

// ---- data -------------------------------------------------------------------

enum class SessionState { Open = 0, Closed = 1 };
enum class TaskState { Pending = 0, Running = 1, Succeed = 2, Failed = 3, Cancelled = 4 };
enum class ApplicationState { Enabled = 0, Disabled = 1 };
std::string_view state_name(TaskState s) noexcept;
std::string_view state_name(SessionState s) noexcept;
inline bool is_final(TaskState s) noexcept {
  return s == TaskState::Succeed || s == TaskState::Failed || s == TaskState::Cancelled;
}

// CPU, memory (bytes) and GPU a session's instances request.
struct ResourceRequirement {
  uint64_t cpu = 0;
  uint64_t memory = 0;
  int32_t gpu = 0;

  // "cpu=4,mem=16g,gpu=1": comma-separated key=value; keys cpu, mem/memory
  // and gpu, any case; memory takes k/m/g/t/p (also ki/kib/kb/…, powers of
  // 1024) or b. Empty text or entries, unknown keys, a missing value, a second
  // '=' or a bad number are ErrorCode::invalid_config errors naming the entry.
  static Result<ResourceRequirement> parse(std::string_view text);
  std::string to_string() const;
  bool operator==(const ResourceRequirement&) const = default;
};

// Times are milliseconds since the Unix epoch, as on the wire.
struct Event {
  int32_t code = 0;
  std::optional<std::string> message{};
  int64_t creation_time = 0;
};

struct ApplicationSchema {
  std::optional<std::string> input{}, output{}, common_data{};
};

struct ApplicationAttributes {
  std::optional<Shim> shim{};
  std::optional<std::string> image{};
  std::optional<std::string> description{};
  std::vector<std::string> labels{};
  std::optional<std::string> command{};
  std::vector<std::string> arguments{};
  std::map<std::string, std::string> environments{};
  std::optional<std::string> working_directory{};
  std::optional<uint32_t> max_instances{};
  std::optional<std::chrono::seconds> delay_release{};
  std::optional<ApplicationSchema> schema{};
  std::optional<std::string> url{};
  std::optional<std::string> installer{};
};

struct Application {
  std::string name{};
  ApplicationAttributes attributes{};
  ApplicationState state = ApplicationState::Enabled;
  int64_t creation_time = 0;
};

// What a session is created or opened with.
struct SessionAttributes {
  std::string id{};
  std::string application{};
  std::optional<Bytes> common_data{};
  uint32_t min_instances = 0;
  std::optional<uint32_t> max_instances{};
  uint32_t batch_size = 1;
  uint32_t priority = 0;
  std::optional<ResourceRequirement> resreq{};
};

// A session as the session manager reports it.
struct SessionInfo {
  std::string id{};
  SessionAttributes attributes{};  // attributes.id == id
  SessionState state = SessionState::Open;
  int64_t creation_time = 0;
  std::optional<int64_t> completion_time{};
  int32_t pending = 0, running = 0, succeed = 0, failed = 0, cancelled = 0;
  std::vector<Event> events{};
};

struct Task {
  std::string id{};
  std::string session_id{};
  TaskState state = TaskState::Pending;
  std::optional<Bytes> input{};   // owned copies: safe to keep and pass between threads
  std::optional<Bytes> output{};  // present once the task succeeded with output
  int64_t creation_time = 0;
  std::optional<int64_t> completion_time{};
  std::vector<Event> events{};  // a failed task's message is in its last event

  bool is_completed() const noexcept { return is_final(state); }
  bool is_succeed() const noexcept { return state == TaskState::Succeed; }
  bool is_failed() const noexcept { return state == TaskState::Failed; }
};

// Hears a watched task: on_update for every state the session manager
// reports, in order (the last one final), or on_error once if the watch
// fails (the connection is lost, the task is unknown, the stream ends early).
class TaskInformer {
 public:
  virtual ~TaskInformer() = default;
  virtual void on_update(const Task& task) = 0;
  virtual void on_error(const Error& error) = 0;
};

struct ConnectOptions {
  std::optional<ClientTls> tls{};  // for https:// endpoints
  std::chrono::milliseconds connect_timeout{10'000};
  // Deadline of each unary call (0: none). Watches and lists have none.
  std::chrono::milliseconds call_timeout{0};
  // Largest answer accepted (a ListTask message, a task with its output).
  size_t max_message_bytes = 64u << 20;
};

// ---- asynchronous client ----------------------------------------------------

template <class T>
using Done = std::function<void(Result<T>)>;
using UpdateFn = std::function<void(const Task&)>;

// A client on one Ember Loop. Construct, call and destroy it on that loop's
// thread; every callback runs on it, exactly once per call (later, or before
// the call returns when it cannot even start). Destroying the client drops
// the calls in flight without calling them back.
class AsyncClient {
 public:
  static Result<std::unique_ptr<AsyncClient>> create(Loop& loop, std::string_view endpoint,
                                                     ConnectOptions options = {});
  virtual ~AsyncClient() = default;

  virtual void register_application(std::string name, const ApplicationAttributes& attrs,
                                    Done<void> done) = 0;
  virtual void unregister_application(std::string name, Done<void> done) = 0;
  virtual void update_application(std::string name, const ApplicationAttributes& attrs,
                                  Done<void> done) = 0;
  virtual void get_application(std::string name, Done<Application> done) = 0;
  virtual void list_applications(Done<std::vector<Application>> done) = 0;

  virtual void create_session(const SessionAttributes& attrs, Done<SessionInfo> done) = 0;
  // Open-or-create. With `attrs`, an existing session must match them
  // (application, common data, instances, priority, resources): otherwise
  // ErrorCode::invalid_config naming each difference.
  virtual void open_session(std::string id, std::optional<SessionAttributes> attrs,
                            Done<SessionInfo> done) = 0;
  virtual void close_session(std::string id, Done<SessionInfo> done) = 0;
  virtual void get_session(std::string id, Done<SessionInfo> done) = 0;
  virtual void list_sessions(Done<std::vector<SessionInfo>> done) = 0;

  virtual void create_task(std::string session_id, std::optional<Bytes> input, Done<Task> done) = 0;
  virtual void get_task(std::string session_id, std::string task_id, Done<Task> done) = 0;
  virtual void list_tasks(std::string session_id, Done<std::vector<Task>> done) = 0;
  // Streams the task's states to on_update; `done` gets the final one, or the
  // error. Returns an id for cancel().
  virtual uint64_t watch_task(std::string session_id, std::string task_id, UpdateFn on_update,
                              Done<Task> done) = 0;
  // create_task, then watch_task.
  virtual void run_task(std::string session_id, std::optional<Bytes> input, UpdateFn on_update,
                        Done<Task> done) = 0;
  // Ends a watch with ErrorCode::cancelled. False when it has already ended.
  virtual bool cancel(uint64_t watch_id) = 0;

  virtual size_t calls_in_flight() const noexcept = 0;
  virtual Loop& loop() const noexcept = 0;
  virtual const std::string& endpoint() const noexcept = 0;
};

// ---- synchronous client -----------------------------------------------------

class Connection;

// A session handle. It refers to its Connection, which must outlive it.
class Session {
 public:
  Session(Connection& conn, SessionInfo info) : conn_(&conn), info_(std::move(info)) {}
  const std::string& id() const noexcept { return info_.id; }
  const SessionInfo& info() const noexcept { return info_; }

  Result<Task> create_task(std::optional<Bytes> input);
  Result<Task> get_task(const std::string& task_id);
  Result<std::vector<Task>> list_tasks();
  // Creates the task and watches it to its final state, calling the
  // informer on this thread. Returns the final task (which may be Failed or
  // Cancelled: see its events), or the error also given to on_error.
  Result<Task> run_task(std::optional<Bytes> input, TaskInformer& informer);
  Result<Task> watch_task(const std::string& task_id, TaskInformer& informer);
  Result<void> close();

 private:
  Connection* conn_;
  SessionInfo info_;
};

class Connection {
 public:
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<void> register_application(std::string name, const ApplicationAttributes& attrs);
  Result<void> unregister_application(std::string name);
  Result<void> update_application(std::string name, const ApplicationAttributes& attrs);
  Result<Application> get_application(std::string name);
  Result<std::vector<Application>> list_applications();

  Result<Session> create_session(const SessionAttributes& attrs);
  Result<Session> open_session(std::string id, std::optional<SessionAttributes> attrs = {});
  Result<Session> get_session(std::string id);
  Result<std::vector<SessionInfo>> list_sessions();
  Result<void> close_session(std::string id);

  // Runs fn(client) on the connection's loop thread (thread-safe). For
  // asynchronous use: start any number of calls there.
  void post(std::function<void(AsyncClient&)> fn);
  const std::string& endpoint() const noexcept { return endpoint_; }

  struct Impl;

 private:
  friend class Session;
  friend Result<std::unique_ptr<Connection>> connect(std::string_view, ConnectOptions);
  Connection(std::unique_ptr<Impl> impl, std::string endpoint);
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
};

// Starts a connection (and its loop thread) to `endpoint`. Fails at once on a
// malformed endpoint or unreadable TLS files; an unreachable server fails the
// first call.
Result<std::unique_ptr<Connection>> connect(std::string_view endpoint, ConnectOptions options = {});
inline Result<std::unique_ptr<Connection>> connect(std::string_view endpoint,
                                                   const std::optional<ClientTls>& tls) {
  ConnectOptions o;
  o.tls = tls;
  return connect(endpoint, std::move(o));
}

}  // namespace ember::flame::client
