// The queue microservice runtime: config and secrets at start-up, one loop
// for the broker and the HTTP/1.1 client (config service, S3), worker
// threads for `process`. A request's life: delivery (loop) -> job queue ->
// worker (process, uploads) -> loop (publish results, confirms) -> ack.
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

#include "ember/log.hpp"
#include "ember/queue.hpp"
#include "ember/reactor.hpp"
#include "handlers/queue/broker.hpp"
#include "handlers/queue/config.hpp"
#include "handlers/queue/metrics.hpp"
#include "handlers/queue/object_store.hpp"
#include "handlers/queue/pass.hpp"
#include "handlers/queue/u64.hpp"
#include "protocols/amqp/table.hpp"
#include "protocols/http1/client.hpp"

namespace ember::queue {

std::string InputFile::read_all() {
  std::string out;
  uint8_t buf[64 * 1024];
  while (size_t n = read(buf))
    out.append(reinterpret_cast<const char*>(buf), n);
  return out;
}

namespace {

constexpr const char* kLog = "ember.queue";
constexpr std::string_view kAttemptHeader = "x-ember-attempt";
constexpr std::string_view kErrorHeader = "x-ember-error";

class S3InputFile final : public InputFile {
 public:
  explicit S3InputFile(std::unique_ptr<ObjectReader> r) : r_(std::move(r)) {}
  size_t read(std::span<uint8_t> out) override {
    auto n = r_->read(out);
    if (!n) throw std::runtime_error(n.error().message);
    return *n;
  }
  uint64_t size() const noexcept override { return r_->size(); }

 private:
  std::unique_ptr<ObjectReader> r_;
};

class StagedFile final : public OutputFile {
 public:
  StagedFile(std::string path, std::string bucket, std::string object)
      : path_(std::move(path)), bucket_(std::move(bucket)), object_(std::move(object)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("create " + path_ + ": " + std::strerror(errno));
  }
  ~StagedFile() override { close(); }
  void write(std::span<const uint8_t> data) override {
    if (fd_ < 0) throw std::runtime_error("write " + path_ + ": the file is closed");
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error("write " + path_ + ": " + std::strerror(errno));
      data = data.subspan(static_cast<size_t>(n));
    }
  }
  const std::string& path() const noexcept override { return path_; }
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  const std::string& bucket() const noexcept { return bucket_; }
  const std::string& object() const noexcept { return object_; }

 private:
  std::string path_, bucket_, object_;
  int fd_ = -1;
};

struct Job {
  DeliveryTag tag;
  uint64_t request = 0;
  unsigned attempt = 1;
};

// Jobs waiting for a worker, first in first out. A ring that only grows:
// std::deque would allocate a block every 16 jobs and free one as often.
class JobQueue {
 public:
  bool empty() const noexcept { return size_ == 0; }
  void push(const Job& job) {
    if (size_ == ring_.size()) {
      std::vector<Job> bigger(std::max<size_t>(64, ring_.size() * 2));
      for (size_t i = 0; i < size_; ++i)
        bigger[i] = ring_[(head_ + i) % ring_.size()];
      ring_.swap(bigger);
      head_ = 0;
    }
    ring_[(head_ + size_++) % ring_.size()] = job;
  }
  Job pop() noexcept {
    Job job = ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    --size_;
    return job;
  }

 private:
  std::vector<Job> ring_;
  size_t head_ = 0, size_ = 0;
};

// A finished job on its way from a worker to the loop.
struct Completion {
  Job job;
  ProcessResult results;
  std::string error;
};

// The results of one job on their way to the broker (loop thread). Pooled:
// a confirm callback holds a plain pointer, small enough for
// std::function's inline storage.
struct Pending {
  Job job;
  size_t remaining = 0;
  size_t failed = 0;
  std::string error;
  Pending* next_free = nullptr;
};

// Runs fn on the loop and waits (start-up and shutdown only).
template <class F>
void on_loop_and_wait(Loop& loop, F fn) {
  std::promise<void> done;
  loop.post([&](Loop&) {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace

struct Microservice::Impl {
  std::string name;
  std::string config_host;
  ProcessFn process;
  MicroserviceOptions opt;

  std::unique_ptr<Reactor> reactor;
  std::unique_ptr<http1::Client> client;  // io_loop thread
  std::unique_ptr<Database> loop_db;      // process_on_loop: the loop's connection
  std::unique_ptr<Broker> broker;         // loop thread
  std::unique_ptr<ObjectStore> store;
  HttpEndpoint config;
  ServiceConfig service;
  BrokerSettings broker_settings;
  Database::Settings db_settings;
  std::string dead_letter_queue;
  uv_signal_t sigterm{}, sigint{};

  std::mutex bucket_mu;
  std::unordered_map<std::string, std::string> buckets;

  std::mutex mu;  // jobs, stopping, shutdown
  std::condition_variable cv, shutdown_cv;
  // Set once shutdown waits for the deliveries in flight: only then does
  // settling one wake the waiter (otherwise every message would wake the
  // thread in start() twice for nothing).
  std::atomic<bool> draining{false};
  JobQueue jobs;
  bool stopping = false;
  bool shutdown = false;
  int signals = 0;
  std::vector<std::thread> workers;
  // Workers hand finished jobs to the loop here; one mailbox item drains
  // them all. The vectors keep their capacity: no allocation per job.
  struct DrainItem : MailboxItem {
    Impl* self = nullptr;
  };
  std::mutex completed_mu;
  std::vector<Completion> completed, settling;
  bool drain_posted = false;
  DrainItem drain_item;
  // Loop thread: jobs queued this turn; the workers are woken once, at the
  // end of the turn (Loop::defer), for all of them. Woken per job, a worker
  // sharing the loop's core would preempt it for every message.
  DrainItem wake_item;
  size_t jobs_this_turn = 0;
  // Loop thread: Pending records, and result bodies carved out of one pool
  // buffer at a time (each publish holds a slice; the buffer goes back to
  // the pool with the last one).
  std::vector<std::unique_ptr<Pending>> pending_store;
  Pending* free_pending = nullptr;
  MutableBuffer id_buffer;
  size_t id_used = 0;
  Broker::ConsumerId consumer = 0;
  std::atomic<size_t> unsettled{0};  // deliveries not yet acked/nacked

  mutable std::mutex stats_mu;
  MicroserviceStats stats;
  std::atomic<uint16_t> metrics_port{0};

  // The broker's loop; `process` runs here too with process_on_loop, and
  // then the HTTP client (config service, S3) needs a loop of its own.
  Loop& loop() { return reactor->loop(0); }
  Loop& io_loop() { return reactor->loop(opt.process_on_loop ? 1 : 0); }
  void count(uint64_t MicroserviceStats::*field, uint64_t n = 1) {
    std::lock_guard lock(stats_mu);
    stats.*field += n;
  }

  // ---- start-up (caller's thread) ----

  Result<std::string> get(std::string_view path) {
    std::string url = config.url(path);
    http1::ClientRequest req;
    req.url = url;
    auto r = http1::fetch_blocking(*client, req);
    if (!r) return Error("config service: " + r.error().message);
    if (r->status != 200)
      return Error("config service: GET " + url + ": " + std::to_string(r->status) + " " +
                   r->reason + " (is the service '" + name + "' configured there?)");
    Result<std::string> body;
    body.value() = std::move(r->body);
    return body;
  }

  Result<std::string> secret(const std::string& entry) {
    PassOptions po;
    po.program = opt.pass_program;
    auto s = pass_show(entry, po);
    if (!s) return Error(s.error().message);
    Result<std::string> out;
    out.value() = std::move(*s);
    return out;
  }

  Result<void> setup() {
    auto doc = get(service_config_path(name));
    if (!doc) return doc.error();
    auto svc = parse_service_config(*doc, config.url(service_config_path(name)));
    if (!svc) return svc.error();
    service = std::move(*svc);

    auto rdoc = get(kRabbitMqConfigPath);
    if (!rdoc) return rdoc.error();
    auto rabbit = parse_rabbitmq_config(*rdoc, config.url(kRabbitMqConfigPath));
    if (!rabbit) return rabbit.error();
    auto rpass = secret(rabbit->pass_entry);
    if (!rpass) return rpass.error();
    broker_settings.host = rabbit->host;
    broker_settings.port = rabbit->port;
    broker_settings.vhost = rabbit->vhost;
    broker_settings.user = rabbit->username;
    broker_settings.password = std::move(*rpass);
    broker_settings.connection_name = name;
    broker_settings.prefetch =
        opt.prefetch ? opt.prefetch : static_cast<uint16_t>(std::min(2u * opt.workers, 65535u));
    broker_settings.close_timeout = opt.shutdown_timeout;
    broker_settings.publisher_confirms = opt.publisher_confirms;

    auto ddoc = get(kDbConfigPath);
    if (!ddoc) return ddoc.error();
    auto db = parse_db_config(*ddoc, config.url(kDbConfigPath));
    if (!db) return db.error();
    auto dpass = secret(db->pass_entry);
    if (!dpass) return dpass.error();
    db_settings.host = db->host;
    db_settings.port = db->port;
    db_settings.user = db->username;
    db_settings.database = db->database;
    db_settings.password = std::move(*dpass);
    db_settings.application_name = name;

    auto odoc = get(kObjectStorageConfigPath);
    if (!odoc) return odoc.error();
    auto os = parse_object_storage_config(*odoc, config.url(kObjectStorageConfigPath));
    if (!os) return os.error();
    auto access = secret(os->access_key_entry);
    if (!access) return access.error();
    auto secret_key = secret(os->secret_key_entry);
    if (!secret_key) return secret_key.error();
    ObjectStoreSettings ss;
    ss.endpoint = os->endpoint;
    ss.access_key = std::move(*access);
    ss.secret_key = std::move(*secret_key);
    store = std::make_unique<ObjectStore>(*client, std::move(ss));
    return {};
  }

  // ---- worker threads ----

  Result<std::string> bucket_for(std::string_view key) {
    {
      std::lock_guard lock(bucket_mu);
      if (auto it = buckets.find(std::string(key)); it != buckets.end()) {
        Result<std::string> hit;
        hit.value() = it->second;
        return hit;
      }
    }
    std::string path = bucket_config_path(name, key);
    auto body = get(path);
    if (!body) return body.error();
    auto bucket = parse_bucket_name(*body, config.url(path));
    if (!bucket) return bucket.error();
    std::lock_guard lock(bucket_mu);
    buckets.emplace(std::string(key), *bucket);
    return bucket;
  }

  // One process() call and its uploads; returns the error, empty when done.
  // What one process() call opened and staged; read_file and write_file
  // capture only a pointer to it, which std::function keeps inline.
  struct Files {
    Impl& s;
    const Job& job;
    std::vector<std::unique_ptr<S3InputFile>> inputs;
    std::vector<std::unique_ptr<StagedFile>> outputs;
    std::string dir;  // made on the first write_file

    // Most requests write nothing, and mkdtemp + remove_all cost more than
    // the relay itself.
    void make_dir() {
      if (!dir.empty()) return;
      std::string base =
          s.opt.temp_dir.empty() ? std::filesystem::temp_directory_path().string() : s.opt.temp_dir;
      std::string pattern = base + "/" + s.name + "-" + std::to_string(job.request) + "-XXXXXX";
      if (!::mkdtemp(pattern.data()))
        throw std::runtime_error("cannot create a directory under " + base + ": " +
                                 std::strerror(errno));
      dir = std::move(pattern);
    }
    InputFile& read(std::string_view key, uint64_t object) {
      auto bucket = s.bucket_for(key);
      if (!bucket) throw std::runtime_error(bucket.error().message);
      auto reader = s.store->open(*bucket, std::to_string(object));
      if (!reader) throw std::runtime_error(reader.error().message);
      inputs.push_back(std::make_unique<S3InputFile>(std::move(*reader)));
      return *inputs.back();
    }
    OutputFile& write(std::string_view key, uint64_t object) {
      auto bucket = s.bucket_for(key);
      if (!bucket) throw std::runtime_error(bucket.error().message);
      std::string name_on_s3 = std::to_string(object);
      for (auto& o : outputs)
        if (o->bucket() == *bucket && o->object() == name_on_s3) return *o;
      make_dir();
      std::string path = dir + "/" + std::to_string(outputs.size()) + "-" + name_on_s3;
      outputs.push_back(std::make_unique<StagedFile>(path, *bucket, name_on_s3));
      return *outputs.back();
    }
  };

  std::string run(const Job& job, std::unique_ptr<Database>& db, ProcessResult& results) {
    if (!db && opt.lazy_database) {
      db = Database::deferred(db_settings);
    } else if (!db) {
      auto c = Database::connect(db_settings);
      if (!c) return c.error().message;
      db = std::move(*c);
    } else if (db->opened()) {
      if (auto ok = db->ensure_connected(); !ok) return ok.error().message;
    }
    Files files{*this, job, {}, {}, {}};
    auto& inputs = files.inputs;
    auto& outputs = files.outputs;
    std::string& dir = files.dir;
    ReadFileFn read_file = [f = &files](std::string_view key, uint64_t object) -> InputFile& {
      return f->read(key, object);
    };
    WriteFileFn write_file = [f = &files](std::string_view key, uint64_t object) -> OutputFile& {
      return f->write(key, object);
    };

    std::string error;
    try {
      results = process(job.request, read_file, write_file, *db);
    } catch (const std::exception& e) {
      error = "process(" + std::to_string(job.request) + ") threw: " + e.what();
    } catch (...) {
      error = "process(" + std::to_string(job.request) +
              ") threw something that is not a std::exception";
    }
    inputs.clear();
    for (auto& o : outputs)
      o->close();
    if (error.empty())
      for (auto& o : outputs) {
        auto sent = store->upload(o->bucket(), o->object(), o->path());
        if (!sent) {
          error = sent.error().message;
          break;
        }
      }
    outputs.clear();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    if (ec)
      EMBER_WARN(kLog, "cannot remove a request's directory", {"dir", dir},
                 {"error", ec.message()});
    db->reset_transaction();
    return error;
  }

  // Loop thread, end of turn: wakes as many workers as jobs came.
  static void wake_workers(MailboxItem* item, Loop*) {
    Impl& s = *static_cast<DrainItem*>(item)->self;
    size_t n = std::exchange(s.jobs_this_turn, 0);
    if (n >= s.workers.size())
      s.cv.notify_all();
    else
      while (n-- > 0)
        s.cv.notify_one();
  }

  // Hands the finished jobs to the loop (one post covers them all).
  void post_completions() {
    {
      std::lock_guard lock(completed_mu);
      if (drain_posted || completed.empty()) return;
      drain_posted = true;
    }
    loop().post(&drain_item);
  }

  void worker_main() {
    std::unique_ptr<Database> db;
    // Completions handed over without a post: the loop hears of them when
    // this worker runs out of jobs, or after kMaxHold (a slow process() must
    // not hold earlier results back).
    constexpr auto kMaxHold = std::chrono::milliseconds(1);
    bool holding = false;
    std::chrono::steady_clock::time_point held_since;
    for (;;) {
      Job job;
      bool more;
      {
        std::unique_lock lock(mu);
        if (holding &&
            (jobs.empty() || std::chrono::steady_clock::now() - held_since >= kMaxHold)) {
          lock.unlock();
          post_completions();
          holding = false;
          lock.lock();
        }
        cv.wait(lock, [&] { return stopping || !jobs.empty(); });
        // Stopping (the shutdown timed out): jobs not started go back to
        // their queue instead.
        if (stopping) {
          lock.unlock();
          post_completions();
          return;
        }
        job = jobs.pop();
        more = !jobs.empty();
      }
      auto started = std::chrono::steady_clock::now();
      ProcessResult results;
      std::string error = run(job, db, results);
      {
        std::lock_guard lock(completed_mu);
        completed.push_back({job, std::move(results), std::move(error)});
        if (drain_posted) {  // the loop has yet to drain: it takes these too
          holding = false;
          continue;
        }
        auto now = std::chrono::steady_clock::now();
        if (!holding) held_since = now;
        // Held only while jobs are fast: behind a slow next process() it
        // would wait for as long as that runs.
        bool fast = now - started < kMaxHold / 10;
        holding = more && fast && now - held_since < kMaxHold;
      }
      if (!holding) post_completions();
    }
  }

  // Loop thread: settles every job the workers finished since the last drain.
  static void drain_completed(MailboxItem* item, Loop* loop) {
    Impl& s = *static_cast<DrainItem*>(item)->self;
    if (!loop) {  // the loop is gone: the broker returns the deliveries to their queue
      std::lock_guard lock(s.completed_mu);
      s.completed.clear();
      s.drain_posted = false;
      return;
    }
    {
      std::lock_guard lock(s.completed_mu);
      s.settling.swap(s.completed);
      s.drain_posted = false;
    }
    for (Completion& c : s.settling)
      s.settle(c.job, std::move(c.results), std::move(c.error));
    s.settling.clear();
  }

  // ---- loop thread ----

  void on_delivery(const Delivery& d) {
    unsettled.fetch_add(1);
    count(&MicroserviceStats::received);
    unsigned attempt = 1;
    if (auto a = d.properties.headers.find(kAttemptHeader); a && a->is_integer() && a->as_int() > 0)
      attempt = static_cast<unsigned>(std::min<int64_t>(a->as_int(), 1'000'000));
    if (d.body_dropped) return dead_letter(d.tag, Bytes(), "the body is too large", attempt);
    bool late;
    {
      std::lock_guard lock(mu);
      late = stopping;  // the workers are gone: back to the queue at once
    }
    if (late) return settled(d.tag, false);
    U64Result r = parse_u64(d.body.view());
    if (!r.ok()) return dead_letter(d.tag, d.body, "the body is not a u64: " + r.reason(), attempt);
    Job job{d.tag, r.value, attempt};
    if (opt.process_on_loop) {
      ProcessResult results;
      std::string error = run(job, loop_db, results);
      return settle(job, std::move(results), std::move(error));
    }
    {
      std::lock_guard lock(mu);
      jobs.push(job);
    }
    if (jobs_this_turn++ == 0) loop().defer(&wake_item);
  }

  void settled(DeliveryTag tag, bool ack) {
    if (ack)
      broker->ack(tag);
    else
      broker->nack(tag, true);  // the broker delivers it again
    if (unsettled.fetch_sub(1) != 1 || !draining.load()) return;
    { std::lock_guard lock(mu); }  // a waiter between its check and its sleep sees this
    shutdown_cv.notify_all();
  }

  void publish_with_headers(std::string_view queue, Bytes body, unsigned attempt,
                            std::string_view error, ConfirmFn done) {
    amqp::TableWriter headers;
    headers.add(kAttemptHeader, amqp::FieldValue::i64(attempt));
    if (!error.empty()) headers.add(kErrorHeader, amqp::FieldValue::string(error.substr(0, 4000)));
    amqp::BasicProperties props;
    props.flags = amqp::BasicProperties::kHeaders;
    if (opt.durable_queues) {
      props.flags |= amqp::BasicProperties::kDeliveryMode;
      props.delivery_mode = 2;
    }
    props.headers = headers.view();
    broker->publish("", queue, std::move(body), props, std::move(done));
  }

  void dead_letter(DeliveryTag tag, Bytes body, std::string reason, unsigned attempt) {
    EMBER_WARN(kLog, "request dead-lettered", {"queue", dead_letter_queue}, {"reason", reason},
               {"attempt", static_cast<long long>(attempt)});
    publish_with_headers(dead_letter_queue, std::move(body), attempt, reason,
                         [this, tag](const Confirm& c) {
                           if (c.ok()) count(&MicroserviceStats::dead_lettered);
                           settled(tag, c.ok());
                         });
  }

  void retry(const Job& job, std::string error) {
    count(&MicroserviceStats::failed);
    Bytes body = Bytes::copy(std::to_string(job.request));
    if (job.attempt >= opt.max_attempts)
      return dead_letter(job.tag, std::move(body),
                         "failed " + std::to_string(job.attempt) + " times; last: " + error,
                         job.attempt);
    EMBER_WARN(kLog, "request failed; queued again", {"request", std::to_string(job.request)},
               {"attempt", static_cast<long long>(job.attempt)}, {"error", error});
    publish_with_headers(service.in(), std::move(body), job.attempt + 1, error,
                         [this, tag = job.tag](const Confirm& c) {
                           if (c.ok()) count(&MicroserviceStats::retried);
                           settled(tag, c.ok());
                         });
  }

  void settle(const Job& job, ProcessResult results, std::string error) {
    if (!broker) return;  // shut down meanwhile: the delivery went back to its queue
    if (!error.empty()) return retry(job, std::move(error));
    // Durable queues get persistent results: they survive a broker restart.
    amqp::BasicProperties props;
    if (opt.durable_queues) {
      props.flags = amqp::BasicProperties::kDeliveryMode;
      props.delivery_mode = 2;
    }
    Pending* pending = take_pending();
    pending->job = job;
    pending->remaining = 1;  // ours until every publish is made: one may fail at once
    for (const auto& [id, c] : results) {
      const std::vector<std::string>* queues = service.queues_for(c);
      if (!queues) {
        count(&MicroserviceStats::unrouted);
        EMBER_WARN(kLog, "result has no route; dropped", {"request", std::to_string(job.request)},
                   {"result", std::to_string(id)}, {"case", c.to_json()});
        continue;
      }
      for (const std::string& q : *queues) {
        ++pending->remaining;
        broker->publish("", q, id_bytes(id), props, [this, pending](const Confirm& c) {
          if (c.ok()) {
            count(&MicroserviceStats::published);
          } else {
            ++pending->failed;
            pending->error = "publish: " + std::string(c.text.empty() ? "not confirmed" : c.text);
          }
          if (--pending->remaining == 0) done(pending);
        });
      }
    }
    if (--pending->remaining == 0) done(pending);
  }

  // Settles the job once every result is confirmed (or failed), and gives
  // the record back.
  void done(Pending* p) {
    Job job = p->job;
    size_t failed = p->failed;
    std::string error = std::move(p->error);
    p->error.clear();
    p->failed = 0;
    p->next_free = free_pending;
    free_pending = p;
    if (failed == 0) {
      count(&MicroserviceStats::processed);
      return settled(job.tag, true);
    }
    // Some results reached their queues: a retry publishes them again (said
    // here, never silently).
    retry(job, std::to_string(failed) + " result publish(es) failed (" + error +
                   "); the retry publishes every result of this request again");
  }

  Pending* take_pending() {
    if (Pending* p = free_pending) {
      free_pending = p->next_free;
      p->next_free = nullptr;
      return p;
    }
    pending_store.push_back(std::make_unique<Pending>());
    return pending_store.back().get();
  }

  // A result's body: its id in decimal, a slice of the current id buffer.
  Bytes id_bytes(uint64_t id) {
    constexpr size_t kMaxDigits = 20;
    if (!id_buffer || id_buffer.capacity() - id_used < kMaxDigits) {
      id_buffer = loop().buffers().take(4096);
      id_used = 0;
    }
    char* at = reinterpret_cast<char*>(id_buffer.data() + id_used);
    size_t n = static_cast<size_t>(std::to_chars(at, at + kMaxDigits, id).ptr - at);
    id_used += n;
    return Bytes::share(id_buffer.storage(), reinterpret_cast<const uint8_t*>(at), n);
  }

  void request_shutdown() {
    std::lock_guard lock(mu);
    shutdown = true;
    shutdown_cv.notify_all();
  }

  void install_signals() {
    auto on_signal = [](uv_signal_t* h, int signum) {
      auto* self = static_cast<Impl*>(h->data);
      if (++self->signals > 1) {
        EMBER_ERROR(kLog, "second signal; exiting without finishing the work in flight");
        std::_Exit(1);
      }
      EMBER_INFO(kLog,
                 "signal received; finishing the work in flight (send it again to stop at once)",
                 {"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"});
      self->request_shutdown();
    };
    for (uv_signal_t* s : {&sigterm, &sigint}) {
      uv_signal_init(loop().uv(), s);
      s->data = this;
    }
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
  }

  // Prometheus text exposition format.
  std::string render_metrics() const {
    MicroserviceStats st;
    {
      std::lock_guard lock(stats_mu);
      st = stats;
    }
    std::string out;
    auto metric = [&](const char* metric_name, const char* type, const char* help, uint64_t v) {
      out.append("# HELP ember_queue_").append(metric_name).append(" ").append(help).append("\n");
      out.append("# TYPE ember_queue_").append(metric_name).append(" ").append(type).append("\n");
      out.append("ember_queue_").append(metric_name).append("{service=\"").append(name);
      out.append("\"} ").append(std::to_string(v)).append("\n");
    };
    metric("received_total", "counter", "Deliveries received from the inbound queue.", st.received);
    metric("succeeded_total", "counter", "Requests acked after all their results were confirmed.",
           st.processed);
    metric("failed_total", "counter", "Attempts that failed (process, upload or publish).",
           st.failed);
    metric("retried_total", "counter", "Requests queued again for another attempt.", st.retried);
    metric("dead_lettered_total", "counter", "Invalid or exhausted requests dead-lettered.",
           st.dead_lettered);
    metric("unrouted_total", "counter", "Results whose case has no route.", st.unrouted);
    metric("published_total", "counter",
           "Result messages confirmed by the broker (written, without publisher confirms).",
           st.published);
    metric("in_flight", "gauge", "Deliveries received and not yet settled.", unsettled.load());
    return out;
  }

  // Waits (caller's thread) until nothing is unsettled or the deadline passes.
  bool wait_settled(std::chrono::steady_clock::time_point deadline) {
    draining.store(true);
    std::unique_lock lock(mu);
    return shutdown_cv.wait_until(lock, deadline, [&] { return unsettled.load() == 0; });
  }
};

Microservice::Microservice(std::string name, std::string config_host, ProcessFn process,
                           MicroserviceOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->config_host = std::move(config_host);
  impl_->process = std::move(process);
  impl_->opt = std::move(options);
}

Microservice::~Microservice() = default;

void Microservice::stop() {
  impl_->request_shutdown();
}

uint16_t Microservice::metrics_port() const noexcept {
  return impl_->metrics_port.load();
}

MicroserviceStats Microservice::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

int Microservice::start() {
  Impl& s = *impl_;
  if (!s.process) {
    EMBER_ERROR(kLog, "Microservice has no process function");
    return 1;
  }
  auto ep = parse_endpoint(s.config_host);
  if (!ep) {
    EMBER_ERROR(kLog, "invalid config host", {"host", s.config_host},
                {"error", ep.error().message});
    return 1;
  }
  s.config = *ep;
  if (s.opt.workers == 0) s.opt.workers = std::max(1u, std::thread::hardware_concurrency());
  if (s.opt.max_attempts == 0) s.opt.max_attempts = 1;
  s.dead_letter_queue =
      s.opt.dead_letter_queue.empty() ? s.name + ".dead-letter" : s.opt.dead_letter_queue;

  ReactorOptions ro;
  ro.threads = s.opt.process_on_loop ? 2 : 1;
  ro.handle_signals = false;  // ours: finish the work first, then stop the loop
  s.reactor = std::make_unique<Reactor>(ro);
  // Listeners are bound before the loop runs.
  if (!s.opt.metrics_listen.empty()) {
    const std::string& hp = s.opt.metrics_listen;
    size_t colon = hp.rfind(':');
    int port = -1;
    if (colon != std::string::npos) {
      try {
        port = std::stoi(hp.substr(colon + 1));
      } catch (const std::exception&) {
      }
    }
    if (port < 0 || port > 65535) {
      EMBER_ERROR(kLog, "metrics_listen must be host:port", {"metrics_listen", hp});
      return 1;
    }
    auto bound = listen_metrics(*s.reactor, hp.substr(0, colon), static_cast<uint16_t>(port),
                                [&s] { return s.render_metrics(); });
    if (!bound) {
      EMBER_ERROR(kLog, "cannot listen for metrics", {"metrics_listen", hp},
                  {"error", bound.error().message});
      return 1;
    }
    s.metrics_port = *bound;
    EMBER_INFO(
        kLog, "metrics",
        {"url", "http://" + hp.substr(0, colon) + ":" + std::to_string(*bound) + "/metrics"});
  }
  std::thread loop_thread([&] { s.reactor->run(); });
  on_loop_and_wait(s.io_loop(), [&] { s.client = std::make_unique<http1::Client>(s.io_loop()); });
  on_loop_and_wait(s.loop(), [&] { s.install_signals(); });

  auto finish_loop = [&] {
    on_loop_and_wait(s.loop(), [&] {
      s.broker.reset();
      s.id_buffer = MutableBuffer();  // the loop's pool goes with the reactor
      s.loop_db.reset();
      uv_close(reinterpret_cast<uv_handle_t*>(&s.sigterm), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&s.sigint), nullptr);
    });
    on_loop_and_wait(s.io_loop(), [&] { s.client.reset(); });
    s.reactor->stop();
    loop_thread.join();
  };

  if (auto ok = s.setup(); !ok) {
    EMBER_ERROR(kLog, "start-up failed", {"service", s.name}, {"error", ok.error().message});
    finish_loop();
    return 1;
  }
  s.drain_item.self = &s;
  s.drain_item.run = &Impl::drain_completed;
  s.wake_item.self = &s;
  s.wake_item.run = &Impl::wake_workers;
  if (!s.opt.process_on_loop)
    for (unsigned i = 0; i < s.opt.workers; ++i)
      s.workers.emplace_back([&] { s.worker_main(); });

  on_loop_and_wait(s.loop(), [&] {
    BrokerEvents ev;
    ev.on_ready = [&] {
      EMBER_INFO(kLog, "consuming", {"service", s.name}, {"queue", s.service.in()});
    };
    ev.on_disconnected = [&](const amqp::AmqpError& e) {
      EMBER_WARN(kLog, "broker connection lost; reconnecting", {"error", e.describe()});
    };
    s.broker = std::make_unique<Broker>(s.loop(), s.broker_settings, std::move(ev));
    auto declare = [&](const std::string& q) {
      QueueSpec spec;
      spec.name = q;
      spec.durable = s.opt.durable_queues;
      s.broker->declare_queue(std::move(spec), [q](const amqp::AmqpError* e) {
        if (e) EMBER_ERROR(kLog, "cannot declare a queue", {"queue", q}, {"error", e->describe()});
      });
    };
    declare(s.service.in());
    for (const std::string& q : s.service.outbound_queues())
      declare(q);
    declare(s.dead_letter_queue);
    ConsumeOptions co;
    co.consumer_tag = s.name + "-consumer";
    s.consumer = s.broker->consume(
        s.service.in(), [&](const Delivery& d) { s.on_delivery(d); }, std::move(co));
    s.broker->start();
  });

  // Serve until a signal or stop().
  {
    std::unique_lock lock(s.mu);
    s.shutdown_cv.wait(lock, [&] { return s.shutdown; });
  }
  auto deadline = std::chrono::steady_clock::now() + s.opt.shutdown_timeout;
  on_loop_and_wait(s.loop(), [&] { s.broker->cancel(s.consumer); });
  bool clean = s.wait_settled(deadline);
  {
    std::lock_guard lock(s.mu);
    s.stopping = true;
  }
  s.cv.notify_all();
  for (auto& w : s.workers)
    w.join();  // a process() call in progress is waited for
  on_loop_and_wait(s.loop(), [&] {
    JobQueue left;
    {
      std::lock_guard lock(s.mu);
      std::swap(left, s.jobs);
    }
    while (!left.empty())
      s.settled(left.pop().tag, false);  // never started: back to the queue
  });
  clean = s.wait_settled(deadline) && clean;
  std::promise<void> closed;
  on_loop_and_wait(s.loop(), [&] { s.broker->close([&] { closed.set_value(); }); });
  closed.get_future().wait();
  finish_loop();
  MicroserviceStats st = stats();
  EMBER_INFO(kLog,
             clean ? "stopped" : "stopped; some deliveries went back to their queue unfinished",
             {"received", static_cast<long long>(st.received)},
             {"processed", static_cast<long long>(st.processed)},
             {"retried", static_cast<long long>(st.retried)},
             {"dead_lettered", static_cast<long long>(st.dead_lettered)},
             {"unrouted", static_cast<long long>(st.unrouted)});
  return clean ? 0 : 1;
}

}  // namespace ember::queue
