// The synchronous Flame client: an AsyncClient on a one-loop reactor of its
// own; each call posts to that loop and waits for its callback.
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "ember/flame_client.hpp"
#include "ember/reactor.hpp"

namespace ember::flame::client {

struct Connection::Impl {
  Reactor reactor;
  std::unique_ptr<AsyncClient> client;
  std::thread thread;

  static ReactorOptions options() {
    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    o.drain_timeout = std::chrono::milliseconds(1000);
    return o;
  }
  Impl() : reactor(options()) {}

  Loop& loop() { return reactor.loop(0); }

  // Runs start(client, done) on the loop and waits for done's result.
  template <class T, class Start>
  Result<T> call(Start start) {
    if (loop().on_loop_thread())
      return Error(
          "a synchronous Flame call was made on the connection's own loop thread (from a "
          "callback): use the AsyncClient given to Connection::post() there",
          static_cast<int>(ErrorCode::invalid_argument));
    auto promise = std::make_shared<std::promise<Result<T>>>();
    auto future = promise->get_future();
    loop().post([this, promise, start = std::move(start)](Loop&) mutable {
      start(*client, [promise](Result<T> r) { promise->set_value(std::move(r)); });
    });
    return future.get();
  }

  // A watch whose informer runs on the waiting thread.
  Result<Task> watch(std::function<void(AsyncClient&, UpdateFn, Done<Task>)> start,
                     TaskInformer& informer) {
    struct Shared {
      std::mutex mu;
      std::condition_variable cv;
      std::deque<Task> updates;
      std::optional<Result<Task>> result;
    };
    auto sh = std::make_shared<Shared>();
    if (loop().on_loop_thread()) {
      Error e(
          "a synchronous Flame watch was made on the connection's own loop thread: use "
          "the AsyncClient there",
          static_cast<int>(ErrorCode::invalid_argument));
      informer.on_error(e);
      return e;
    }
    loop().post([this, sh, start = std::move(start)](Loop&) {
      start(
          *client,
          [sh](const Task& t) {
            std::lock_guard lock(sh->mu);
            sh->updates.push_back(t);
            sh->cv.notify_one();
          },
          [sh](Result<Task> r) {
            std::lock_guard lock(sh->mu);
            sh->result.emplace(std::move(r));
            sh->cv.notify_one();
          });
    });
    std::unique_lock lock(sh->mu);
    while (true) {
      sh->cv.wait(lock, [&] { return !sh->updates.empty() || sh->result; });
      while (!sh->updates.empty()) {
        Task t = std::move(sh->updates.front());
        sh->updates.pop_front();
        lock.unlock();
        informer.on_update(t);
        lock.lock();
      }
      if (sh->result) break;
    }
    Result<Task> r = std::move(*sh->result);
    lock.unlock();
    if (!r) informer.on_error(r.error());
    return r;
  }
};

Connection::Connection(std::unique_ptr<Impl> impl, std::string endpoint)
    : impl_(std::move(impl)), endpoint_(std::move(endpoint)) {}

Connection::~Connection() {
  if (!impl_) return;
  std::promise<void> gone;
  impl_->loop().post([this, &gone](Loop&) {
    impl_->client.reset();
    gone.set_value();
  });
  gone.get_future().wait();
  impl_->reactor.stop();
  impl_->thread.join();
}

Result<std::unique_ptr<Connection>> connect(std::string_view endpoint, ConnectOptions options) {
  auto impl = std::make_unique<Connection::Impl>();
  Connection::Impl* raw = impl.get();
  raw->thread = std::thread([raw] { raw->reactor.run(); });
  std::promise<Result<std::unique_ptr<AsyncClient>>> made;
  raw->loop().post(
      [&](Loop& loop) { made.set_value(AsyncClient::create(loop, endpoint, options)); });
  auto client = made.get_future().get();
  if (!client) {
    raw->reactor.stop();
    raw->thread.join();
    return std::move(client).error();
  }
  raw->client = std::move(*client);
  return std::unique_ptr<Connection>(new Connection(std::move(impl), std::string(endpoint)));
}

void Connection::post(std::function<void(AsyncClient&)> fn) {
  impl_->loop().post([this, fn = std::move(fn)](Loop&) { fn(*impl_->client); });
}

// ---- applications ----

Result<void> Connection::register_application(std::string name,
                                              const ApplicationAttributes& attrs) {
  return impl_->call<void>([name = std::move(name), attrs](AsyncClient& c, Done<void> d) {
    c.register_application(name, attrs, std::move(d));
  });
}

Result<void> Connection::unregister_application(std::string name) {
  return impl_->call<void>([name = std::move(name)](AsyncClient& c, Done<void> d) {
    c.unregister_application(name, std::move(d));
  });
}

Result<void> Connection::update_application(std::string name, const ApplicationAttributes& attrs) {
  return impl_->call<void>([name = std::move(name), attrs](AsyncClient& c, Done<void> d) {
    c.update_application(name, attrs, std::move(d));
  });
}

Result<Application> Connection::get_application(std::string name) {
  return impl_->call<Application>([name = std::move(name)](AsyncClient& c, Done<Application> d) {
    c.get_application(name, std::move(d));
  });
}

Result<std::vector<Application>> Connection::list_applications() {
  return impl_->call<std::vector<Application>>(
      [](AsyncClient& c, Done<std::vector<Application>> d) { c.list_applications(std::move(d)); });
}

// ---- sessions ----

namespace {
Result<Session> to_session(Connection& conn, Result<SessionInfo> r) {
  if (!r) return std::move(r).error();
  return Session(conn, std::move(*r));
}
}  // namespace

Result<Session> Connection::create_session(const SessionAttributes& attrs) {
  return to_session(*this, impl_->call<SessionInfo>([attrs](AsyncClient& c, Done<SessionInfo> d) {
    c.create_session(attrs, std::move(d));
  }));
}

Result<Session> Connection::open_session(std::string id, std::optional<SessionAttributes> attrs) {
  return to_session(*this, impl_->call<SessionInfo>(
                               [id = std::move(id), attrs](AsyncClient& c, Done<SessionInfo> d) {
                                 c.open_session(id, attrs, std::move(d));
                               }));
}

Result<Session> Connection::get_session(std::string id) {
  return to_session(
      *this, impl_->call<SessionInfo>([id = std::move(id)](AsyncClient& c, Done<SessionInfo> d) {
        c.get_session(id, std::move(d));
      }));
}

Result<std::vector<SessionInfo>> Connection::list_sessions() {
  return impl_->call<std::vector<SessionInfo>>(
      [](AsyncClient& c, Done<std::vector<SessionInfo>> d) { c.list_sessions(std::move(d)); });
}

Result<void> Connection::close_session(std::string id) {
  auto r = impl_->call<SessionInfo>([id = std::move(id)](AsyncClient& c, Done<SessionInfo> d) {
    c.close_session(id, std::move(d));
  });
  if (!r) return std::move(r).error();
  return {};
}

// ---- Session ----

Result<Task> Session::create_task(std::optional<Bytes> input) {
  return conn_->impl_->call<Task>(
      [id = info_.id, input = std::move(input)](AsyncClient& c, Done<Task> d) {
        c.create_task(id, input, std::move(d));
      });
}

Result<Task> Session::get_task(const std::string& task_id) {
  return conn_->impl_->call<Task>([id = info_.id, task_id](AsyncClient& c, Done<Task> d) {
    c.get_task(id, task_id, std::move(d));
  });
}

Result<std::vector<Task>> Session::list_tasks() {
  return conn_->impl_->call<std::vector<Task>>(
      [id = info_.id](AsyncClient& c, Done<std::vector<Task>> d) {
        c.list_tasks(id, std::move(d));
      });
}

Result<Task> Session::run_task(std::optional<Bytes> input, TaskInformer& informer) {
  return conn_->impl_->watch(
      [id = info_.id, input = std::move(input)](AsyncClient& c, UpdateFn u, Done<Task> d) {
        c.run_task(id, input, std::move(u), std::move(d));
      },
      informer);
}

Result<Task> Session::watch_task(const std::string& task_id, TaskInformer& informer) {
  return conn_->impl_->watch(
      [id = info_.id, task_id](AsyncClient& c, UpdateFn u, Done<Task> d) {
        c.watch_task(id, task_id, std::move(u), std::move(d));
      },
      informer);
}

Result<void> Session::close() {
  auto r = conn_->impl_->call<SessionInfo>(
      [id = info_.id](AsyncClient& c, Done<SessionInfo> d) { c.close_session(id, std::move(d)); });
  if (!r) return std::move(r).error();
  info_ = std::move(*r);
  return {};
}

// ---- names ----

std::string_view state_name(TaskState s) noexcept {
  switch (s) {
    case TaskState::Pending:
      return "Pending";
    case TaskState::Running:
      return "Running";
    case TaskState::Succeed:
      return "Succeed";
    case TaskState::Failed:
      return "Failed";
    case TaskState::Cancelled:
      return "Cancelled";
  }
  return "Unknown";
}

std::string_view state_name(SessionState s) noexcept {
  return s == SessionState::Open ? "Open" : "Closed";
}

}  // namespace ember::flame::client
