// ember-test-service: a Flame service whose behaviour the task input picks,
// for the integration tests.
//
//   plain bytes     -> echo (the input, shared, as the output)
//   "fail:MSG"      -> FlameError::internal(MSG)
//   "notfound:X"    -> FlameError::not_found(X)       (wire: "'X' not found")
//   "throw:MSG"     -> throws std::runtime_error(MSG)
//   "sleep:MS[...]" -> waits MS ms, then echoes the whole input
//   "none"          -> no output (absent on the wire)
//   "empty"         -> an empty output (present on the wire)
//   "big:N"         -> N bytes of pattern_bytes(N, 0)
//   "exit:N"        -> the process exits with status N mid-task (a crash)
//   "publish:A,B"   -> publishes executor attributes A and B, then echoes
//                      (a refused publish fails the task with the reason)
//
// OnSessionEnter for application "refuse" fails; common data "publish:A,B"
// publishes attributes A and B on enter (before a refusal, too). With EMBER_TEST_EVENTS=<file>
// every session and task event is appended to that file as one tab-separated
// line, so tests can check what the service saw and wait for a task to start:
//   enter <session_id> <app> <common_data hex or "-">
//   wire <workspace> <application workspace> <tokens as k=v,k=v>  (only when
//        the executor sent any of them: Flame main's wire)
//   leave
//   task-begin <task_id>  (+ "\t<workspace>" when the task carries one)
//   task-end <task_id>
// With EMBER_TEST_ASYNC=1 the service is an AsyncFlameService that answers
// from its own worker threads (sleeps do not hold a thread: jobs wait in a
// time-ordered queue).
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ember/flame.hpp"
#include "tests/integration/patterns.hpp"

namespace flame = ember::flame;
using Clock = std::chrono::steady_clock;

namespace {

class EventLog {
 public:
  EventLog() {
    const char* path = std::getenv("EMBER_TEST_EVENTS");
    if (path && *path) fd_ = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  ~EventLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  // One write() per line: lines from different threads never interleave.
  void write(std::string line) {
    if (fd_ < 0) return;
    line.push_back('\n');
    (void)!::write(fd_, line.data(), line.size());
  }

 private:
  int fd_ = -1;
};

std::string hex(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// What a task input asks for. Sleeps are separated out because the sync and
// async services wait differently.
struct Plan {
  std::chrono::milliseconds delay{0};
};

Plan plan_of(const flame::TaskContext& ctx) {
  Plan plan;
  if (!ctx.input) return plan;
  std::string_view in = ctx.input->view();
  if (in.starts_with("sleep:")) {
    unsigned ms = 0;
    std::from_chars(in.data() + 6, in.data() + in.size(), ms);
    plan.delay = std::chrono::milliseconds(ms);
  }
  return plan;
}

// "A,B" as attributes.
flame::Status publish_list(flame::AttributePublisher& publisher, std::string_view list) {
  std::vector<std::string_view> attrs;
  while (!list.empty()) {
    size_t comma = list.find(',');
    attrs.push_back(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return publisher.publish(attrs);
}

// The answer, once any delay has passed.
flame::TaskResult answer(const flame::TaskContext& ctx, flame::AttributePublisher& publisher) {
  if (!ctx.input) return ctx.input;
  std::string_view in = ctx.input->view();
  if (in.starts_with("publish:")) {
    if (flame::Status s = publish_list(publisher, in.substr(8)); !s) return s.error();
    return ctx.input;
  }
  if (in.starts_with("fail:")) return flame::FlameError::internal(std::string(in.substr(5)));
  if (in.starts_with("notfound:")) return flame::FlameError::not_found(std::string(in.substr(9)));
  if (in.starts_with("throw:")) throw std::runtime_error(std::string(in.substr(6)));
  if (in.starts_with("exit:")) {
    int status = 1;
    std::from_chars(in.data() + 5, in.data() + in.size(), status);
    std::_Exit(status);
  }
  if (in == "none") return std::optional<flame::TaskOutput>();
  if (in == "empty") return std::optional<flame::TaskOutput>(ember::Bytes());
  if (in.starts_with("big:")) {
    size_t n = 0;
    std::from_chars(in.data() + 4, in.data() + in.size(), n);
    return std::optional<flame::TaskOutput>(ember::Bytes::from(ember_it::pattern_bytes(n, 0)));
  }
  return ctx.input;  // echo, and the end of a sleep
}

flame::Status enter_session(EventLog& log, const flame::SessionContext& ctx,
                            flame::AttributePublisher& publisher) {
  log.write("enter\t" + ctx.session_id + "\t" + ctx.application.name + "\t" +
            (ctx.common_data ? hex(ctx.common_data->view()) : "-"));
  if (!ctx.tokens.empty() || !ctx.workspace.empty() || !ctx.application.workspace.empty()) {
    std::string tokens;
    for (const auto& [k, v] : ctx.tokens) {
      if (!tokens.empty()) tokens.push_back(',');
      tokens.append(k).append("=").append(v);
    }
    log.write("wire\t" + ctx.workspace + "\t" + ctx.application.workspace + "\t" + tokens);
  }
  if (ctx.common_data && ctx.common_data->view().starts_with("publish:"))
    if (flame::Status s = publish_list(publisher, ctx.common_data->view().substr(8)); !s) return s;
  if (ctx.application.name == "refuse")
    return flame::FlameError::invalid_config("application 'refuse' is refused by the test service");
  return {};
}

std::string begin_line(const flame::TaskContext& ctx) {
  std::string line = "task-begin\t";
  line.append(ctx.task_id);
  if (!ctx.workspace.empty()) line.append("\t").append(ctx.workspace);
  return line;
}

class SyncService final : public flame::FlameService {
 public:
  explicit SyncService(EventLog& log) : log_(log) {}

  flame::Status on_session_enter(const flame::SessionContext& ctx) override {
    return enter_session(log_, ctx, publisher());
  }
  flame::Status on_session_leave() override {
    log_.write("leave");
    return {};
  }
  flame::TaskResult on_task_invoke(flame::TaskContext ctx) override {
    std::string id(ctx.task_id);
    log_.write(begin_line(ctx));
    Plan plan = plan_of(ctx);
    // Blocks the loop on purpose: this is what a synchronous handler does.
    if (plan.delay.count() > 0) std::this_thread::sleep_for(plan.delay);
    struct EndLine {
      EventLog& log;
      std::string id;
      ~EndLine() { log.write("task-end\t" + id); }
    } end{log_, id};
    return answer(ctx, publisher());
  }

 private:
  EventLog& log_;
};

class AsyncService final : public flame::AsyncFlameService {
 public:
  explicit AsyncService(EventLog& log, unsigned threads = 4) : log_(log) {
    for (unsigned i = 0; i < threads; ++i)
      workers_.emplace_back([this] { work(); });
  }
  ~AsyncService() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

  flame::Status on_session_enter(const flame::SessionContext& ctx) override {
    return enter_session(log_, ctx, publisher());
  }
  flame::Status on_session_leave() override {
    log_.write("leave");
    return {};
  }
  void on_task_invoke(flame::TaskContext ctx, flame::TaskCompletion done) override {
    log_.write(begin_line(ctx));
    // A throwing async handler throws here, on Ember's loop thread.
    if (ctx.input && ctx.input->view().starts_with("throw:"))
      throw std::runtime_error(ctx.input->to_string().substr(6));
    Plan plan = plan_of(ctx);
    {
      std::lock_guard lock(mu_);
      jobs_.emplace(std::make_pair(Clock::now() + plan.delay, seq_++),
                    Job{std::move(ctx), std::move(done)});
    }
    cv_.notify_one();
  }

 private:
  struct Job {
    flame::TaskContext ctx;
    flame::TaskCompletion done;
  };

  void work() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (stop_ && jobs_.empty()) return;
      if (jobs_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto due = jobs_.begin()->first.first;
      if (Clock::now() < due) {
        cv_.wait_until(lock, due);
        continue;
      }
      Job job = std::move(jobs_.extract(jobs_.begin()).mapped());
      lock.unlock();
      std::string id(job.ctx.task_id);
      flame::TaskResult result = answer(job.ctx, publisher());
      log_.write("task-end\t" + id);
      job.done(std::move(result));
      lock.lock();
    }
  }

  EventLog& log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::pair<Clock::time_point, uint64_t>, Job> jobs_;
  uint64_t seq_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

int main() {
  EventLog log;
  const char* async = std::getenv("EMBER_TEST_ASYNC");
  if (async && std::string_view(async) == "1") {
    AsyncService service(log);
    return flame::run(service);
  }
  SyncService service(log);
  return flame::run(service);
}
