#include "handlers/flame/local/manager.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "ember/log.hpp"
#include "ember_flame_wire.pb.h"
#include "handlers/flame/launcher.hpp"
#include "handlers/flame/local/store.hpp"
#include "protocols/grpc/server_connection.hpp"

namespace ember::flame::local {

namespace pb = ::ember::wire::flame::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {

constexpr std::string_view kLog = "ember.flame.local";
constexpr int kMaxStartFailures = 3;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool terminal(pb::TaskState s) {
  return s == pb::Succeed || s == pb::Failed || s == pb::Cancelled;
}

template <class M>
bool parse(M& m, const Bytes& b) {
  return m.ParseFromArray(b.data(), static_cast<int>(b.size()));
}

Status bad_request(std::string_view what) {
  std::string m = "malformed ";
  m.append(what);
  return Status{StatusCode::invalid_argument, std::move(m)};
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace

// ---- state ----------------------------------------------------------------------

struct SessionRec {
  pb::Session pb;
  uint64_t order = 0;
  uint64_t next_task = 1;
  std::map<uint64_t, pb::Task> tasks;
  std::deque<uint64_t> pending;
  const std::string& id() const { return pb.metadata().id(); }
  bool open() const { return pb.status().state() == pb::Open; }
};

struct AppRec {
  pb::Application pb;
  int start_failures = 0;
  std::string last_failure;
};

struct Instance {
  enum State { launching, idle, binding, bound, running, unbinding, releasing };
  uint64_t id = 0;
  std::string app;
  State state = launching;
  std::string session;  // bound to, or being launched/bound for
  uint64_t task = 0;    // the running task's seq
  bool lost = false;    // its connection went; waiting for the exit status
  std::unique_ptr<InstanceProcess> process;
  std::unique_ptr<InstanceChannel> channel;
  TimerEntry release;
  struct Manager::Impl* owner = nullptr;
};

struct Watch {
  std::string session;
  uint64_t seq = 0;
  Manager::Sink sink;
};

struct Manager::Impl {
  Loop& loop;
  ManagerOptions options;
  unsigned max_instances = 1;
  std::unique_ptr<Store> store;
  std::string temp_dir;  // made by us, removed at the end
  std::map<std::string, AppRec> apps;
  std::map<std::string, std::unique_ptr<SessionRec>> sessions;
  std::map<uint64_t, SessionRec*> by_order;
  uint64_t next_order = 1;
  std::map<uint64_t, std::unique_ptr<Instance>> instances;
  uint64_t next_instance = 1;
  std::unordered_map<uint64_t, Watch> watches;
  std::multimap<std::pair<std::string, uint64_t>, uint64_t> watch_index;
  uint64_t next_watch = 2;  // 0 and 1 mean "none" to the connection
  std::set<std::string> dirty_sessions;
  std::set<std::pair<std::string, uint64_t>> dirty_tasks;
  TimerEntry flush_timer;
  bool in_schedule = false, schedule_again = false, stopping = false;
  uint64_t session_counter = 0;

  explicit Impl(Loop& l) : loop(l) {}

  // ---- persistence --------------------------------------------------------------

  void mark(SessionRec& s) {
    dirty_sessions.insert(s.id());
    arm_flush();
  }
  void mark(SessionRec& s, uint64_t seq) {
    dirty_tasks.emplace(s.id(), seq);
    mark(s);
  }
  void arm_flush() {
    if (!flush_timer.armed()) loop.arm(flush_timer, 5);
  }
  static void on_flush(TimerEntry* t) { static_cast<Impl*>(t->context)->flush(); }

  void flush() {
    loop.cancel(flush_timer);
    if (dirty_sessions.empty() && dirty_tasks.empty()) return;
    Result<void> r = store->begin();
    for (const auto& id : dirty_sessions) {
      if (!r) break;
      auto it = sessions.find(id);
      if (it == sessions.end()) continue;
      SessionRec& s = *it->second;
      r = store->put_session(id, s.order, s.next_task, s.pb.SerializeAsString());
    }
    for (const auto& [id, seq] : dirty_tasks) {
      if (!r) break;
      auto it = sessions.find(id);
      if (it == sessions.end()) continue;
      auto t = it->second->tasks.find(seq);
      if (t == it->second->tasks.end()) continue;
      r = store->put_task(id, seq, t->second.SerializeAsString());
    }
    if (r) r = store->commit();
    if (!r) {
      EMBER_ERROR(kLog, "cannot save the state; changes are kept in memory and retried",
                  {"error", r.error().message});
      (void)store->commit();
      loop.arm(flush_timer, 1000);
      return;
    }
    dirty_sessions.clear();
    dirty_tasks.clear();
  }

  Status save_app(const AppRec& a) {
    if (auto r = store->put_application(a.pb.metadata().name(), a.pb.SerializeAsString()); !r)
      return Status{StatusCode::internal, r.error().message};
    return {};
  }

  Result<void> load() {
    Store::Visitor v;
    v.application = [this](std::string_view data) {
      AppRec a;
      if (a.pb.ParseFromArray(data.data(), static_cast<int>(data.size())))
        apps[a.pb.metadata().name()] = std::move(a);
    };
    v.session = [this](std::string_view data, uint64_t next_task) {
      auto s = std::make_unique<SessionRec>();
      if (!s->pb.ParseFromArray(data.data(), static_cast<int>(data.size()))) return;
      s->next_task = next_task;
      s->order = next_order++;
      by_order[s->order] = s.get();
      sessions[s->id()] = std::move(s);
    };
    v.task = [this](std::string_view sid, uint64_t seq, std::string_view data) {
      auto it = sessions.find(std::string(sid));
      if (it == sessions.end()) return;
      pb::Task t;
      if (!t.ParseFromArray(data.data(), static_cast<int>(data.size()))) return;
      it->second->tasks[seq] = std::move(t);
    };
    if (auto r = store->load(v); !r) return r;
    // Counters from the tasks; tasks that were running run again.
    for (auto& [id, s] : sessions) {
      auto* st = s->pb.mutable_status();
      st->set_pending(0);
      st->set_running(0);
      st->set_succeed(0);
      st->set_failed(0);
      st->set_cancelled(0);
      for (auto& [seq, t] : s->tasks) {
        if (t.status().state() == pb::Running) {
          t.mutable_status()->set_state(pb::Pending);
          add_event(t, pb::Pending, "flame-local restarted while the task ran; it runs again");
          mark(*s, seq);
        }
        if (t.status().state() == pb::Pending) {
          if (s->open()) {
            s->pending.push_back(seq);
          } else {
            t.mutable_status()->set_state(pb::Cancelled);
            t.mutable_status()->set_completion_time(now_ms());
            mark(*s, seq);
          }
        }
        count(*s, t.status().state(), +1);
      }
    }
    return {};
  }

  // ---- tasks and watches ----------------------------------------------------------

  static void count(SessionRec& s, pb::TaskState st, int d) {
    auto* x = s.pb.mutable_status();
    switch (st) {
      case pb::Pending:
        x->set_pending(x->pending() + d);
        break;
      case pb::Running:
        x->set_running(x->running() + d);
        break;
      case pb::Succeed:
        x->set_succeed(x->succeed() + d);
        break;
      case pb::Failed:
        x->set_failed(x->failed() + d);
        break;
      case pb::Cancelled:
        x->set_cancelled(x->cancelled() + d);
        break;
      default:
        break;
    }
  }

  static void add_event(pb::Task& t, pb::TaskState st, std::string_view message) {
    auto* e = t.mutable_status()->add_events();
    e->set_code(st);
    if (!message.empty()) e->set_message(std::string(message));
    e->set_creation_time(now_ms());
  }

  void set_state(SessionRec& s, uint64_t seq, pb::TaskState st, std::string_view message = {}) {
    pb::Task& t = s.tasks[seq];
    count(s, t.status().state(), -1);
    count(s, st, +1);
    t.mutable_status()->set_state(st);
    if (terminal(st)) t.mutable_status()->set_completion_time(now_ms());
    add_event(t, st, message);
    mark(s, seq);
    notify(s, seq, t);
  }

  void notify(SessionRec& s, uint64_t seq, const pb::Task& t) {
    auto range = watch_index.equal_range({s.id(), seq});
    if (range.first == range.second) return;
    std::vector<uint64_t> ids;
    for (auto it = range.first; it != range.second; ++it)
      ids.push_back(it->second);
    std::string bytes = t.SerializeAsString();
    bool done = terminal(t.status().state());
    for (uint64_t id : ids) {
      auto w = watches.find(id);
      if (w == watches.end()) continue;
      w->second.sink.message(bytes);
      if (done) end_watch(id, Status{});
    }
  }

  void end_watch(uint64_t id, Status status) {
    auto w = watches.find(id);
    if (w == watches.end()) return;
    Manager::Sink sink = std::move(w->second.sink);
    auto range = watch_index.equal_range({w->second.session, w->second.seq});
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == id) {
        watch_index.erase(it);
        break;
      }
    }
    watches.erase(w);
    sink.done(std::move(status));
  }

  void fail_pending(SessionRec& s, const std::string& message) {
    while (!s.pending.empty()) {
      uint64_t seq = s.pending.front();
      s.pending.pop_front();
      set_state(s, seq, pb::Failed, message);
    }
  }

  void cancel_pending(SessionRec& s, std::string_view why) {
    while (!s.pending.empty()) {
      uint64_t seq = s.pending.front();
      s.pending.pop_front();
      set_state(s, seq, pb::Cancelled, why);
    }
  }

  SessionRec* find_session(const std::string& id) {
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : it->second.get();
  }

  // ---- instances --------------------------------------------------------------------

  Instance* find_instance(uint64_t id) {
    auto it = instances.find(id);
    return it == instances.end() ? nullptr : it->second.get();
  }

  std::chrono::milliseconds delay_release(const std::string& app) const {
    auto it = apps.find(app);
    if (it != apps.end() && it->second.pb.spec().has_delay_release()) {
      int64_t s = it->second.pb.spec().delay_release();
      return std::chrono::milliseconds(std::max<int64_t>(0, s) * 1000);
    }
    return options.default_delay_release;
  }

  ApplicationInfo app_info(const AppRec& a) const {
    ApplicationInfo info;
    const auto& spec = a.pb.spec();
    info.name = a.pb.metadata().name();
    info.shim = spec.shim();
    if (spec.has_image()) info.image = spec.image();
    if (spec.has_command()) info.command = spec.command();
    if (spec.has_working_directory()) info.working_directory = spec.working_directory();
    if (spec.has_url()) info.url = spec.url();
    if (spec.has_installer()) info.installer = spec.installer();
    return info;
  }

  void start_failed(AppRec& a, const std::string& why) {
    a.start_failures++;
    a.last_failure = why;
    EMBER_WARN(kLog, "an instance could not start", {"application", a.pb.metadata().name()},
               {"error", why}, {"attempt", a.start_failures});
    if (a.start_failures < kMaxStartFailures) return;
    std::string msg = "application " + a.pb.metadata().name() + " cannot start an instance (" +
                      std::to_string(a.start_failures) + " attempts): " + why;
    for (auto& [order, s] : by_order) {
      if (s->open() && s->pb.spec().application() == a.pb.metadata().name()) fail_pending(*s, msg);
    }
  }

  void launch(AppRec& a, SessionRec& s) {
    const auto& spec = a.pb.spec();
    if (!spec.has_command() || spec.command().empty()) {
      a.start_failures = kMaxStartFailures - 1;
      start_failed(a, "it has no command (ApplicationSpec.command) to run on this node");
      return;
    }
    auto inst = std::make_unique<Instance>();
    inst->id = next_instance++;
    inst->app = a.pb.metadata().name();
    inst->session = s.id();
    inst->owner = this;
    inst->release.context = inst.get();
    inst->release.fire = [](TimerEntry* t) {
      auto* i = static_cast<Instance*>(t->context);
      if (i->state == Instance::idle) i->owner->release(*i);
    };
    LaunchSpec ls;
    ls.argv.push_back(spec.command());
    for (const auto& arg : spec.arguments())
      ls.argv.push_back(arg);
    for (const auto& e : spec.environments())
      ls.env.emplace_back(e.name(), e.value());
    if (!options.frontend_endpoint.empty()) {
      bool given = std::any_of(ls.env.begin(), ls.env.end(),
                               [](const auto& kv) { return kv.first == "FLAME_ENDPOINT"; });
      if (!given) ls.env.emplace_back("FLAME_ENDPOINT", options.frontend_endpoint);
    }
    if (spec.has_working_directory()) ls.working_directory = spec.working_directory();
    ls.socket_path = options.socket_dir + "/" + std::to_string(inst->id) + ".sock";
    ls.startup_timeout = options.startup_timeout;
    uint64_t id = inst->id;
    auto p = InstanceProcess::launch(
        loop, std::move(ls), [this, id](Result<void> r) { on_ready(id, std::move(r)); },
        [this, id](int status) { on_exit(id, status); });
    if (!p) {
      // Nothing ran (a missing or unexecutable command): retrying cannot help
      // until the application is updated.
      a.start_failures = kMaxStartFailures - 1;
      start_failed(a, p.error().message);
      return;
    }
    inst->process = std::move(*p);
    EMBER_INFO(kLog, "instance launched", {"executor", id}, {"application", inst->app},
               {"pid", static_cast<int64_t>(inst->process->pid())});
    instances[id] = std::move(inst);
  }

  void on_ready(uint64_t id, Result<void> r) {
    Instance* inst = find_instance(id);
    if (!inst) return;
    if (!r) {
      std::string app = inst->app;
      instances.erase(id);
      if (auto a = apps.find(app); a != apps.end()) start_failed(a->second, r.error().message);
      return schedule();
    }
    InstanceChannelOptions co;
    inst->channel = std::make_unique<InstanceChannel>(loop, inst->process->socket_path(), co);
    inst->state = Instance::idle;
    SessionRec* s = find_session(inst->session);
    if (s && s->open() && !stopping) return bind(*inst, *s);
    inst->session.clear();
    idle(*inst);
    schedule();
  }

  void on_exit(uint64_t id, int status) {
    Instance* inst = find_instance(id);
    if (!inst) return;
    std::string how = describe_exit(status);
    EMBER_INFO(kLog, "instance exited", {"executor", id}, {"application", inst->app},
               {"status", how});
    if (!stopping) {
      SessionRec* s = find_session(inst->session);
      if (inst->state == Instance::running && s) {
        std::string msg = "the instance (executor-" + std::to_string(id) + ") of application " +
                          inst->app + " " + how + " while running task " +
                          std::to_string(inst->task);
        set_state(*s, inst->task, pb::Failed, msg);
      } else if (inst->state == Instance::binding) {
        if (auto a = apps.find(inst->app); a != apps.end())
          start_failed(a->second, "it " + how + " during OnSessionEnter");
      }
    }
    instances.erase(id);
    schedule();
  }

  void bind(Instance& inst, SessionRec& s) {
    loop.cancel(inst.release);
    inst.state = Instance::binding;
    inst.session = s.id();
    auto a = apps.find(inst.app);
    ApplicationInfo info = app_info(a->second);
    std::optional<Bytes> common;
    if (s.pb.spec().has_common_data()) common = Bytes::copy(s.pb.spec().common_data());
    uint64_t id = inst.id;
    inst.channel->enter(s.id(), info, common, [this, id](auto r) {
      Instance* i = find_instance(id);
      if (!i) return;
      SessionRec* s = find_session(i->session);
      if (!r) {
        if (r.error().code == StatusCode::unavailable) return lost(*i);
        if (s) {
          fail_pending(*s,
                       "OnSessionEnter failed: " + std::string(grpc::status_name(r.error().code)) +
                           ": " + r.error().message);
        }
        i->session.clear();
        return release(*i);
      }
      if (r->return_code != 0) {
        if (s) {
          fail_pending(*s, "the service refused session " + s->id() + ": " +
                               r->message.value_or("(no message)"));
        }
        i->session.clear();
        idle(*i);
        return schedule();
      }
      if (auto a = apps.find(i->app); a != apps.end()) a->second.start_failures = 0;
      i->state = Instance::bound;
      schedule();
    });
  }

  void dispatch(Instance& inst, SessionRec& s) {
    uint64_t seq = s.pending.front();
    s.pending.pop_front();
    inst.state = Instance::running;
    inst.task = seq;
    set_state(s, seq, pb::Running, "running on executor-" + std::to_string(inst.id));
    const pb::Task& t = s.tasks[seq];
    std::optional<Bytes> input;
    if (t.spec().has_input()) input = Bytes::copy(t.spec().input());
    uint64_t id = inst.id;
    std::string sid = s.id();
    inst.channel->invoke(std::to_string(seq), sid, input, [this, id, sid, seq](auto r) {
      Instance* i = find_instance(id);
      if (!i) return;
      SessionRec* s = find_session(sid);
      if (!r && r.error().code == StatusCode::unavailable) return lost(*i);
      i->state = Instance::bound;
      if (s) {
        if (!r) {
          set_state(*s, seq, pb::Failed,
                    "OnTaskInvoke failed: " + std::string(grpc::status_name(r.error().code)) +
                        ": " + r.error().message);
        } else if (r->return_code != 0) {
          set_state(*s, seq, pb::Failed, r->message.value_or("(no message)"));
        } else {
          pb::Task& t = s->tasks[seq];
          if (r->output)
            t.mutable_spec()->set_output(reinterpret_cast<const char*>(r->output->data()),
                                         r->output->size());
          set_state(*s, seq, pb::Succeed);
        }
      }
      schedule();
    });
  }

  // The connection to the instance is gone: the exit status tells the rest.
  void lost(Instance& inst) {
    if (inst.lost) return;
    inst.lost = true;
    inst.channel.reset();
    if (inst.process) inst.process->terminate(std::chrono::milliseconds(2000));
  }

  void unbind(Instance& inst) {
    inst.state = Instance::unbinding;
    uint64_t id = inst.id;
    inst.channel->leave([this, id](auto r) {
      Instance* i = find_instance(id);
      if (!i) return;
      if (!r && r.error().code == StatusCode::unavailable) return lost(*i);
      i->session.clear();
      idle(*i);
      schedule();
    });
  }

  void idle(Instance& inst) {
    inst.state = Instance::idle;
    if (stopping) return release(inst);
    loop.arm(inst.release, static_cast<uint64_t>(delay_release(inst.app).count()));
  }

  void release(Instance& inst) {
    loop.cancel(inst.release);
    inst.state = Instance::releasing;
    inst.channel.reset();
    EMBER_INFO(kLog, "instance released", {"executor", inst.id}, {"application", inst.app});
    if (inst.process) inst.process->terminate(options.release_grace);
  }

  // ---- the scheduler ------------------------------------------------------------------

  void schedule() {
    if (stopping) return;
    if (in_schedule) {
      schedule_again = true;
      return;
    }
    in_schedule = true;
    do {
      schedule_again = false;
      schedule_once();
    } while (schedule_again);
    in_schedule = false;
  }

  size_t bound_to(const SessionRec& s) const {
    size_t n = 0;
    for (const auto& [id, i] : instances) {
      if (i->session == s.id() && !i->lost &&
          (i->state == Instance::launching || i->state == Instance::binding ||
           i->state == Instance::bound || i->state == Instance::running))
        ++n;
    }
    return n;
  }

  void schedule_once() {
    // Instances bound to sessions that are gone or closed leave them.
    for (auto& [id, i] : instances) {
      if (i->state != Instance::bound) continue;
      SessionRec* s = find_session(i->session);
      if (!s || !s->open()) unbind(*i);
    }
    for (auto& [order, sp] : by_order) {
      SessionRec& s = *sp;
      if (!s.open()) continue;
      auto a = apps.find(s.pb.spec().application());
      if (a == apps.end()) continue;
      AppRec& app = a->second;
      // Bound and idle instances take the pending tasks, one each.
      for (auto& [id, i] : instances) {
        if (s.pending.empty()) break;
        if (i->state == Instance::bound && i->session == s.id()) dispatch(*i, s);
      }
      size_t cap = max_instances;
      if (s.pb.spec().has_max_instances()) cap = std::min<size_t>(cap, s.pb.spec().max_instances());
      if (app.pb.spec().has_max_instances())
        cap = std::min<size_t>(cap, app.pb.spec().max_instances());
      size_t need = s.pending.size() + static_cast<size_t>(s.pb.status().running());
      if (app.start_failures >= kMaxStartFailures) {
        // Only tasks make it try again.
      } else {
        need = std::max<size_t>(need, s.pb.spec().min_instances());
      }
      size_t want = std::min(cap, need);
      size_t have = bound_to(s);
      while (have < want) {
        if (!acquire(app, s)) break;
        ++have;
      }
    }
  }

  // One more instance for `s`: an idle one of its application, a new one,
  // or room made by releasing or unbinding another. False when none can be
  // had now.
  bool acquire(AppRec& app, SessionRec& s) {
    const std::string& name = app.pb.metadata().name();
    for (auto& [id, i] : instances) {
      if (i->state == Instance::idle && i->app == name) {
        bind(*i, s);
        return true;
      }
    }
    if (instances.size() < max_instances) {
      size_t before = instances.size();
      launch(app, s);
      return instances.size() > before;
    }
    // Full: release an idle instance of another application (its exit makes
    // room), or unbind an idle bound one from a session with nothing pending
    // that has more than its minimum.
    for (auto& [id, i] : instances) {
      if (i->state == Instance::idle) {
        release(*i);
        return false;
      }
    }
    for (auto& [id, i] : instances) {
      if (i->state != Instance::bound || i->session == s.id()) continue;
      SessionRec* other = find_session(i->session);
      if (!other || other->pending.empty()) {
        size_t min = other ? other->pb.spec().min_instances() : 0;
        if (!other || bound_to(*other) > min) {
          unbind(*i);
          return false;
        }
      }
    }
    return false;
  }

  // ---- the Frontend -----------------------------------------------------------------

  Status session_spec_ok(const pb::SessionSpec& spec) {
    if (spec.application().empty())
      return Status{StatusCode::invalid_argument, "SessionSpec.application is empty"};
    auto a = apps.find(spec.application());
    if (a == apps.end())
      return Status{StatusCode::not_found,
                    "application " + spec.application() + " is not registered"};
    if (a->second.pb.status().state() != pb::Enabled)
      return Status{StatusCode::failed_precondition,
                    "application " + spec.application() + " is disabled"};
    if (spec.has_max_instances() && spec.max_instances() < spec.min_instances())
      return Status{StatusCode::invalid_argument,
                    "min_instances " + std::to_string(spec.min_instances()) +
                        " is over max_instances " + std::to_string(spec.max_instances())};
    return {};
  }

  SessionRec& create_session(const std::string& id, const pb::SessionSpec& spec) {
    auto s = std::make_unique<SessionRec>();
    s->pb.mutable_metadata()->set_id(id);
    s->pb.mutable_metadata()->set_name(id);
    *s->pb.mutable_spec() = spec;
    s->pb.mutable_status()->set_state(pb::Open);
    s->pb.mutable_status()->set_creation_time(now_ms());
    s->order = next_order++;
    SessionRec& ref = *s;
    by_order[s->order] = s.get();
    sessions[id] = std::move(s);
    mark(ref);
    EMBER_INFO(kLog, "session created", {"session", id}, {"application", spec.application()});
    schedule();
    return ref;
  }

  static std::string spec_mismatch(const pb::SessionSpec& have, const pb::SessionSpec& want) {
    if (have.application() != want.application())
      return "application " + have.application() + " != " + want.application();
    if (have.has_common_data() != want.has_common_data() ||
        have.common_data() != want.common_data())
      return "common_data differs";
    if (have.min_instances() != want.min_instances())
      return "min_instances " + std::to_string(have.min_instances()) +
             " != " + std::to_string(want.min_instances());
    if (have.has_max_instances() != want.has_max_instances() ||
        have.max_instances() != want.max_instances())
      return "max_instances differs";
    return {};
  }

  void close_session(SessionRec& s) {
    if (!s.open()) return;
    cancel_pending(s, "the session was closed");
    s.pb.mutable_status()->set_state(pb::Closed);
    s.pb.mutable_status()->set_completion_time(now_ms());
    mark(s);
    schedule();
  }

  Expected<std::string, Status> call(int method, const Bytes& req) {
    switch (method) {
      case kRegisterApplication:
      case kUpdateApplication: {
        pb::RegisterApplicationRequest r;  // same fields as UpdateApplicationRequest
        if (!parse(r, req)) return bad_request("RegisterApplicationRequest");
        if (r.name().empty())
          return Status{StatusCode::invalid_argument, "the application name is empty"};
        auto it = apps.find(r.name());
        if (method == kRegisterApplication && it != apps.end())
          return Status{StatusCode::already_exists,
                        "application " + r.name() + " is already registered"};
        if (method == kUpdateApplication && it == apps.end())
          return Status{StatusCode::not_found, "application " + r.name() + " is not registered"};
        AppRec a;
        a.pb.mutable_metadata()->set_id(r.name());
        a.pb.mutable_metadata()->set_name(r.name());
        *a.pb.mutable_spec() = r.application();
        a.pb.mutable_status()->set_state(pb::Enabled);
        a.pb.mutable_status()->set_creation_time(
            it != apps.end() ? it->second.pb.status().creation_time() : now_ms());
        if (Status st = save_app(a); !st.ok()) return st;
        apps[r.name()] = std::move(a);
        EMBER_INFO(
            kLog, method == kRegisterApplication ? "application registered" : "application updated",
            {"application", r.name()});
        schedule();
        return pb::Result().SerializeAsString();
      }
      case kUnregisterApplication: {
        pb::UnregisterApplicationRequest r;
        if (!parse(r, req)) return bad_request("UnregisterApplicationRequest");
        if (!apps.count(r.name()))
          return Status{StatusCode::not_found, "application " + r.name() + " is not registered"};
        for (auto& [order, s] : by_order) {
          if (s->open() && s->pb.spec().application() == r.name())
            return Status{StatusCode::failed_precondition, "application " + r.name() +
                                                               " has an open session (" + s->id() +
                                                               "); close it first"};
        }
        if (auto res = store->delete_application(r.name()); !res)
          return Status{StatusCode::internal, res.error().message};
        apps.erase(r.name());
        for (auto& [id, i] : instances) {
          if (i->app == r.name() && i->state == Instance::idle) release(*i);
        }
        return pb::Result().SerializeAsString();
      }
      case kGetApplication: {
        pb::GetApplicationRequest r;
        if (!parse(r, req)) return bad_request("GetApplicationRequest");
        auto it = apps.find(r.name());
        if (it == apps.end())
          return Status{StatusCode::not_found, "application " + r.name() + " is not registered"};
        return it->second.pb.SerializeAsString();
      }
      case kListApplication: {
        pb::ApplicationList l;
        for (const auto& [name, a] : apps)
          *l.add_applications() = a.pb;
        return l.SerializeAsString();
      }
      case kListExecutor: {
        pb::ExecutorList l;
        for (const auto& [id, i] : instances) {
          pb::Executor* e = l.add_executors();
          std::string name = "executor-" + std::to_string(id);
          e->mutable_metadata()->set_id(name);
          e->mutable_metadata()->set_name(name);
          e->mutable_spec()->set_node(options.node_name);
          e->mutable_spec()->mutable_resreq()->set_cpu(1);
          pb::ExecutorState st = pb::ExecutorUnknown;
          switch (i->state) {
            case Instance::launching:
              st = pb::ExecutorVoid;
              break;
            case Instance::idle:
              st = pb::ExecutorIdle;
              break;
            case Instance::binding:
              st = pb::ExecutorBinding;
              break;
            case Instance::bound:
            case Instance::running:
              st = pb::ExecutorBound;
              break;
            case Instance::unbinding:
              st = pb::ExecutorUnbinding;
              break;
            case Instance::releasing:
              st = pb::ExecutorReleasing;
              break;
          }
          e->mutable_status()->set_state(st);
          if (!i->session.empty() && i->state != Instance::launching)
            e->mutable_status()->set_session_id(i->session);
        }
        return l.SerializeAsString();
      }
      case kListNodes: {
        pb::NodeList l;
        *l.add_nodes() = node();
        return l.SerializeAsString();
      }
      case kGetNode: {
        pb::GetNodeRequest r;
        if (!parse(r, req)) return bad_request("GetNodeRequest");
        if (r.name() != options.node_name)
          return Status{StatusCode::not_found, "node " + r.name() +
                                                   " is not known (flame-local has one node, " +
                                                   options.node_name + ")"};
        pb::GetNodeResponse resp;
        *resp.mutable_node() = node();
        return resp.SerializeAsString();
      }
      case kCreateSession: {
        pb::CreateSessionRequest r;
        if (!parse(r, req)) return bad_request("CreateSessionRequest");
        std::string id = r.session_id();
        if (id.empty()) id = std::to_string(now_ms()) + "-" + std::to_string(++session_counter);
        if (sessions.count(id))
          return Status{StatusCode::already_exists, "session " + id + " already exists"};
        if (Status st = session_spec_ok(r.session()); !st.ok()) return st;
        return create_session(id, r.session()).pb.SerializeAsString();
      }
      case kOpenSession: {
        pb::OpenSessionRequest r;
        if (!parse(r, req)) return bad_request("OpenSessionRequest");
        if (r.session_id().empty())
          return Status{StatusCode::invalid_argument, "OpenSession needs a session_id"};
        SessionRec* s = find_session(r.session_id());
        if (!s) {
          if (!r.has_session())
            return Status{StatusCode::not_found, "session " + r.session_id() +
                                                     " does not exist (give a spec to create it)"};
          if (Status st = session_spec_ok(r.session()); !st.ok()) return st;
          return create_session(r.session_id(), r.session()).pb.SerializeAsString();
        }
        if (!s->open())
          return Status{StatusCode::failed_precondition,
                        "session " + s->id() + " is closed; open another id"};
        if (r.has_session()) {
          std::string diff = spec_mismatch(s->pb.spec(), r.session());
          if (!diff.empty())
            return Status{StatusCode::failed_precondition,
                          "session " + s->id() + " exists with another spec: " + diff};
        }
        return s->pb.SerializeAsString();
      }
      case kCloseSession:
      case kDeleteSession:
      case kGetSession: {
        pb::GetSessionRequest r;  // session_id = 1 in all three
        if (!parse(r, req)) return bad_request("session request");
        SessionRec* s = find_session(r.session_id());
        if (!s) return Status{StatusCode::not_found, "session " + r.session_id() + " not found"};
        if (method == kGetSession) return s->pb.SerializeAsString();
        close_session(*s);
        std::string out = s->pb.SerializeAsString();
        if (method == kDeleteSession) delete_session(*s);
        return out;
      }
      case kListSession: {
        pb::SessionList l;
        for (const auto& [order, s] : by_order)
          *l.add_sessions() = s->pb;
        return l.SerializeAsString();
      }
      case kCreateTask: {
        pb::CreateTaskRequest r;
        if (!parse(r, req)) return bad_request("CreateTaskRequest");
        SessionRec* s = find_session(r.task().session_id());
        if (!s)
          return Status{StatusCode::not_found, "session " + r.task().session_id() + " not found"};
        if (!s->open())
          return Status{StatusCode::failed_precondition,
                        "session " + s->id() + " is closed; tasks go to open sessions"};
        uint64_t seq = s->next_task++;
        pb::Task& t = s->tasks[seq];
        std::string id = std::to_string(seq);
        t.mutable_metadata()->set_id(id);
        t.mutable_metadata()->set_name(id);
        t.mutable_spec()->set_session_id(s->id());
        if (r.task().has_input()) t.mutable_spec()->set_input(r.task().input());
        t.mutable_status()->set_state(pb::Pending);
        t.mutable_status()->set_creation_time(now_ms());
        count(*s, pb::Pending, +1);
        s->pending.push_back(seq);
        mark(*s, seq);
        if (auto a = apps.find(s->pb.spec().application());
            a != apps.end() && a->second.start_failures >= kMaxStartFailures)
          a->second.start_failures = kMaxStartFailures - 1;  // one more try
        std::string out = t.SerializeAsString();
        schedule();
        return out;
      }
      case kGetTask: {
        pb::GetTaskRequest r;
        if (!parse(r, req)) return bad_request("GetTaskRequest");
        auto [s, t] = find_task(r.session_id(), r.task_id());
        if (!t) return task_not_found(r.session_id(), r.task_id());
        return t->SerializeAsString();
      }
      default:
        return Status{StatusCode::unimplemented, "not a unary Frontend method"};
    }
  }

  static Status task_not_found(const std::string& sid, const std::string& tid) {
    return Status{StatusCode::not_found, "task " + tid + " of session " + sid + " not found"};
  }

  std::pair<SessionRec*, pb::Task*> find_task(const std::string& sid, const std::string& tid) {
    SessionRec* s = find_session(sid);
    if (!s || tid.empty() || tid.size() > 19 ||
        tid.find_first_not_of("0123456789") != std::string::npos)
      return {s, nullptr};
    auto it = s->tasks.find(std::stoull(tid));
    if (it == s->tasks.end()) return {s, nullptr};
    return {s, &it->second};
  }

  void delete_session(SessionRec& s) {
    std::string id = s.id();
    // Watches of its tasks end.
    std::vector<uint64_t> ids;
    for (const auto& [wid, w] : watches)
      if (w.session == id) ids.push_back(wid);
    for (uint64_t wid : ids)
      end_watch(wid, Status{StatusCode::not_found, "session " + id + " was deleted"});
    flush();
    if (auto r = store->delete_session(id); !r)
      EMBER_ERROR(kLog, "cannot delete a session from the state file",
                  {"error", r.error().message});
    by_order.erase(s.order);
    sessions.erase(id);
    schedule();
  }

  pb::Node node() const {
    pb::Node n;
    n.mutable_metadata()->set_id(options.node_name);
    n.mutable_metadata()->set_name(options.node_name);
    n.mutable_spec()->set_hostname(options.node_name);
    auto* st = n.mutable_status();
    st->set_state(pb::NodeReady);
    long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    uint64_t mem = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
    st->mutable_capacity()->set_cpu(max_instances);
    st->mutable_capacity()->set_memory(mem);
    size_t busy = instances.size();
    st->mutable_allocatable()->set_cpu(busy < max_instances ? max_instances - busy : 0);
    st->mutable_allocatable()->set_memory(mem);
    struct utsname u;
    if (::uname(&u) == 0) {
      st->mutable_info()->set_arch(u.machine);
      st->mutable_info()->set_os(u.sysname);
    }
    auto* addr = st->add_addresses();
    addr->set_type("Hostname");
    addr->set_address(options.node_name);
    st->set_last_heartbeat_time(now_ms());
    return n;
  }

  uint64_t stream(int method, const Bytes& req, Manager::Sink sink) {
    if (stopping) {
      sink.done(Status{StatusCode::unavailable, "flame-local is shutting down"});
      return 0;
    }
    if (method == kListTask) {
      pb::ListTaskRequest r;
      if (!parse(r, req)) {
        sink.done(bad_request("ListTaskRequest"));
        return 0;
      }
      SessionRec* s = find_session(r.session_id());
      if (!s) {
        sink.done(Status{StatusCode::not_found, "session " + r.session_id() + " not found"});
        return 0;
      }
      for (const auto& [seq, t] : s->tasks)
        sink.message(t.SerializeAsString());
      sink.done(Status{});
      return 0;
    }
    pb::WatchTaskRequest r;
    if (!parse(r, req)) {
      sink.done(bad_request("WatchTaskRequest"));
      return 0;
    }
    auto [s, t] = find_task(r.session_id(), r.task_id());
    if (!t) {
      sink.done(task_not_found(r.session_id(), r.task_id()));
      return 0;
    }
    sink.message(t->SerializeAsString());
    if (terminal(t->status().state())) {
      sink.done(Status{});
      return 0;
    }
    uint64_t id = next_watch++;
    uint64_t seq = std::stoull(r.task_id());
    watches[id] = Watch{s->id(), seq, std::move(sink)};
    watch_index.emplace(std::make_pair(s->id(), seq), id);
    return id;
  }

  void cancel(uint64_t id) {
    auto w = watches.find(id);
    if (w == watches.end()) return;
    auto range = watch_index.equal_range({w->second.session, w->second.seq});
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == id) {
        watch_index.erase(it);
        break;
      }
    }
    watches.erase(w);
  }

  void shutdown() {
    if (stopping) return;
    stopping = true;
    std::vector<uint64_t> ids;
    for (const auto& [id, w] : watches)
      ids.push_back(id);
    for (uint64_t id : ids)
      end_watch(id, Status{StatusCode::unavailable, "flame-local is shutting down"});
    flush();
    for (auto& [id, i] : instances) {
      if (i->state != Instance::releasing) release(*i);
    }
  }
};

// ---- Manager ------------------------------------------------------------------------

int Manager::method_of(std::string_view path) noexcept {
  constexpr std::string_view prefix = "/flame.v1.Frontend/";
  if (!path.starts_with(prefix)) return -1;
  std::string_view m = path.substr(prefix.size());
  static constexpr std::pair<std::string_view, int> kMethods[] = {
      {"RegisterApplication", kRegisterApplication},
      {"UnregisterApplication", kUnregisterApplication},
      {"UpdateApplication", kUpdateApplication},
      {"GetApplication", kGetApplication},
      {"ListApplication", kListApplication},
      {"ListApplications", kListApplication},  // Flame's main branch
      {"ListExecutor", kListExecutor},
      {"ListExecutors", kListExecutor},
      {"ListNodes", kListNodes},
      {"GetNode", kGetNode},
      {"CreateSession", kCreateSession},
      {"DeleteSession", kDeleteSession},
      {"OpenSession", kOpenSession},
      {"CloseSession", kCloseSession},
      {"GetSession", kGetSession},
      {"ListSession", kListSession},
      {"ListSessions", kListSession},
      {"CreateTask", kCreateTask},
      {"GetTask", kGetTask},
      {"WatchTask", kWatchTask},
      {"ListTask", kListTask},
      {"ListTasks", kListTask},
  };
  for (const auto& [name, id] : kMethods)
    if (name == m) return id;
  return -1;
}

Result<std::unique_ptr<Manager>> Manager::open(Loop& loop, ManagerOptions options) {
  std::unique_ptr<Manager> m(new Manager);
  m->impl_ = std::make_unique<Impl>(loop);
  Impl& d = *m->impl_;
  if (options.max_instances == 0) {
    size_t cpus = Reactor::allowed_cpus().size();
    options.max_instances = static_cast<unsigned>(std::max<size_t>(1, cpus));
  }
  if (options.node_name.empty()) options.node_name = host_name();
  if (options.socket_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp");
    templ.append("/ember-flame-local-XXXXXX");
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data()))
      return Error("cannot create a directory for instance sockets (" + templ +
                   "): " + describe_errno(-errno) + "; set TMPDIR");
    options.socket_dir = buf.data();
    d.temp_dir = options.socket_dir;
  }
  d.options = std::move(options);
  d.max_instances = d.options.max_instances;
  m->max_instances_ = d.max_instances;
  d.flush_timer.context = &d;
  d.flush_timer.fire = &Impl::on_flush;
  auto store = Store::open(d.options.state_file);
  if (!store) return store.error();
  d.store = std::move(*store);
  if (auto r = d.load(); !r) return r.error();
  d.flush();
  EMBER_INFO(kLog, "state loaded", {"file", d.options.state_file}, {"applications", d.apps.size()},
             {"sessions", d.sessions.size()});
  d.schedule();
  return m;
}

Manager::~Manager() {
  if (!impl_) return;
  impl_->stopping = true;
  impl_->flush();
  impl_->watches.clear();
  impl_->instances.clear();  // kills what is still running
  if (!impl_->temp_dir.empty()) ::rmdir(impl_->temp_dir.c_str());
}

const std::string& Manager::socket_dir() const noexcept {
  return impl_->options.socket_dir;
}

Expected<std::string, grpc::Status> Manager::call(int method, const Bytes& request) {
  if (impl_->stopping) return Status{StatusCode::unavailable, "flame-local is shutting down"};
  return impl_->call(method, request);
}

uint64_t Manager::stream(int method, const Bytes& request, Sink sink) {
  return impl_->stream(method, request, std::move(sink));
}

void Manager::cancel(uint64_t id) {
  impl_->cancel(id);
}

void Manager::shutdown() {
  impl_->shutdown();
}

// ---- the gRPC connection --------------------------------------------------------------

namespace {

constexpr http2::ServerConnectionOptions kFrontendConnection = {
    .log_target = "ember.flame.local", .peer_error_level = log::Level::debug};

grpc::ServerOptions frontend_options() {
  grpc::ServerOptions o;
  o.max_receive_message_size = 64u << 20;
  return o;
}

class FrontendConnection final : public grpc::ServerConnection {
 public:
  FrontendConnection(Loop& loop, Manager& m)
      : ServerConnection(loop, kFrontendConnection, frontend_options()), manager_(m) {}

 private:
  int resolve_method(std::string_view path) override { return Manager::method_of(path); }

  void on_call(grpc::ServerCall& call) override {
    int method = call.method();
    if (!Manager::streaming(method)) {
      auto r = manager_.call(method, call.request());
      if (!r) return fail(call, r.error().code, r.error().message);
      return respond(call, {}, Bytes::from(std::move(*r)));
    }
    grpc::ServerCall* c = &call;
    Manager::Sink sink;
    sink.message = [this, c](std::string m) { write(*c, {}, Bytes::from(std::move(m))); };
    sink.done = [this, c](Status s) {
      c->user = nullptr;
      if (s.ok())
        finish(*c);
      else
        finish(*c, s.code, s.message);
    };
    // Marks the call as live until done; the id goes in `user`.
    c->user = reinterpret_cast<void*>(uintptr_t{1});
    uint64_t id = manager_.stream(method, call.request(), std::move(sink));
    if (id != 0 && c->user) c->user = reinterpret_cast<void*>(static_cast<uintptr_t>(id));
  }

  void on_call_end(grpc::ServerCall& call, bool) override {
    auto id = reinterpret_cast<uintptr_t>(call.user);
    if (id > 1) manager_.cancel(id);
    call.user = nullptr;
  }

  Manager& manager_;
};

}  // namespace

HandlerFactory frontend_factory(Manager& manager) {
  return [&manager](Loop& loop) -> std::unique_ptr<ConnectionHandler> {
    return std::make_unique<FrontendConnection>(loop, manager);
  };
}

}  // namespace ember::flame::local
