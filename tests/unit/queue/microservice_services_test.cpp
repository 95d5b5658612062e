// queue::Microservice end to end against the real services of
// scripts/services.sh: config service, pass, RabbitMQ, S3 (s3rver) and
// PostgreSQL. The test publishes requests and reads the outbound queues
// with a Broker of its own on its own loop.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ember/queue.hpp"
#include "ember/reactor.hpp"
#include "handlers/queue/broker.hpp"
#include "handlers/queue/object_store.hpp"
#include "protocols/amqp/methods.hpp"

namespace ember::queue {
namespace {

using namespace std::chrono_literals;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// rabbitmqctl against the services' node; false (and a test failure) when it fails.
bool rabbitmqctl(const std::string& args) {
  std::string cmd = "HOME='" + env("RABBITMQ_HOME_DIR") + "' ERL_EPMD_PORT='" +
                    env("RABBITMQ_EPMD_PORT") + "' /usr/lib/rabbitmq/bin/rabbitmqctl -q -n '" +
                    env("RABBITMQ_NODENAME") + "' " + args + " >/dev/null 2>&1";
  bool ok = std::system(cmd.c_str()) == 0;
  if (!ok) ADD_FAILURE() << "rabbitmqctl " << args << " failed";
  return ok;
}

// Messages seen on each queue (body, x-ember-error header).
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::multiset<std::string>> bodies;
  std::map<std::string, std::string> errors;  // dead-letter body -> error header

  bool wait_for(const std::string& queue, size_t n, std::chrono::seconds guard) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, guard, [&] { return bodies[queue].size() >= n; });
  }
};

class MicroserviceServices : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"CONFIG_HOST", "CONFIG_DIR", "RABBITMQ_PORT", "PGHOST", "S3_ENDPOINT",
                          "PASSWORD_STORE_DIR"})
      if (env(v).empty()) {
        if (!env("EMBER_REQUIRE_SERVICES").empty())
          FAIL() << "EMBER_REQUIRE_SERVICES is set but " << v
                 << " is not: source the file `scripts/services.sh env` names";
        GTEST_SKIP() << "no services: run scripts/services.sh start and source its env";
      }
    static int test_number = 0;  // queues differ per test (durability may differ)
    name_ = "ms-test-" + std::to_string(::getpid()) + "-" + std::to_string(++test_number);
    std::string dir = env("CONFIG_DIR");
    std::ofstream(dir + "/" + name_ + ".json")
        << R"({"in": ")" << name_ << R"(-in", "out": [)"
        << R"({"case": true, "queues": [")" << name_ << R"(-true"]},)"
        << R"({"case": 1, "queues": [")" << name_ << R"(-int"]},)"
        << R"({"case": "1", "queues": [")" << name_ << R"(-str", ")" << name_ << R"(-str2"]}]})";
    std::filesystem::create_directories(dir + "/" + name_);
    std::ofstream(dir + "/" + name_ + "/in") << "ember-in\n";
    std::ofstream(dir + "/" + name_ + "/out") << "ember-out\n";

    Database::Settings db;
    db.host = env("PGHOST");
    db.port = static_cast<uint16_t>(std::stoi(env("PGPORT")));
    db.user = env("PGUSER");
    db.database = env("PGDATABASE");
    db.password = env("PGPASSWORD");
    auto conn = Database::connect(db);
    ASSERT_TRUE(conn) << conn.error().message;
    db_ = std::move(*conn);
    table_ = "ms_test_" + std::to_string(::getpid());
    ASSERT_TRUE(db_->exec("DROP TABLE IF EXISTS " + table_));
    ASSERT_TRUE(db_->exec("CREATE TABLE " + table_ + " (request bigint PRIMARY KEY)"));

    ReactorOptions o;
    o.threads = 1;
    o.handle_signals = false;
    reactor_ = std::make_unique<Reactor>(o);
    loop_thread_ = std::thread([this] { reactor_->run(); });
    on_loop([&] { client_ = std::make_unique<http1::Client>(reactor_->loop(0)); });
    auto ep = parse_endpoint(env("S3_ENDPOINT"));
    ASSERT_TRUE(ep);
    ObjectStoreSettings ss;
    ss.endpoint = *ep;
    ss.access_key = env("S3_ACCESS_KEY");
    ss.secret_key = env("S3_SECRET_KEY");
    store_ = std::make_unique<ObjectStore>(*client_, ss);
  }

  void TearDown() override {
    if (!reactor_) return;
    on_loop([&] {
      broker_.reset();
      client_.reset();
    });
    store_.reset();
    reactor_->stop();
    loop_thread_.join();
    if (db_) (void)db_->exec("DROP TABLE IF EXISTS " + table_);
  }

  template <class F>
  void on_loop(F fn) {
    std::promise<void> done;
    reactor_->loop(0).post([&](Loop&) {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // The test's own broker connection: declares every queue, consumes the
  // outbound ones and the dead-letter queue.
  void connect_observer(bool durable = false) {
    auto ready = std::make_shared<std::promise<void>>();
    auto ready_future = ready->get_future();
    on_loop([&] {
      BrokerSettings bs;
      bs.host = env("RABBITMQ_HOST");
      bs.port = static_cast<uint16_t>(std::stoi(env("RABBITMQ_PORT")));
      bs.user = env("RABBITMQ_USER");
      bs.password = env("RABBITMQ_PASSWORD");
      bs.connection_name = name_ + "-observer";
      BrokerEvents ev;
      // Also after every reconnect: only the first one counts here.
      ev.on_ready = [ready]() mutable {
        if (ready) ready->set_value();
        ready.reset();
      };
      broker_ = std::make_unique<Broker>(reactor_->loop(0), bs, std::move(ev));
      for (std::string q : {name_ + "-in", name_ + "-true", name_ + "-int", name_ + "-str",
                            name_ + "-str2", name_ + ".dead-letter"}) {
        QueueSpec spec;
        spec.name = q;
        spec.durable = durable;
        broker_->declare_queue(spec);
        if (q == name_ + "-in") continue;
        broker_->consume(q, [this, q](const Delivery& d) {
          std::lock_guard lock(seen_.mu);
          std::string body(d.body.view());
          seen_.bodies[q].insert(body);
          if (auto e = d.properties.headers.find("x-ember-error"))
            seen_.errors[body] = std::string(e->as_string());
          broker_->ack(d.tag);
          seen_.cv.notify_all();
        });
      }
      broker_->start();
    });
    ASSERT_EQ(ready_future.wait_for(30s), std::future_status::ready);
  }

  void publish(const std::string& body, bool persistent = false) {
    std::promise<bool> confirmed;
    amqp::BasicProperties props;
    if (persistent) {
      props.flags = amqp::BasicProperties::kDeliveryMode;
      props.delivery_mode = 2;
    }
    on_loop([&] {
      broker_->publish("", name_ + "-in", Bytes::copy(body), props,
                       [&](const Confirm& c) { confirmed.set_value(c.ok()); });
    });
    ASSERT_TRUE(confirmed.get_future().get());
  }

  std::string name_, table_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Reactor> reactor_;
  std::thread loop_thread_;
  std::unique_ptr<http1::Client> client_;
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<Broker> broker_;
  Seen seen_;
};

// With worker threads, with process on the broker's loop, and with worker
// threads without publisher confirms (the reference's settle).
struct RunMode {
  bool on_loop;
  bool confirms;
  const char* name;
};
class MicroserviceRoutes : public MicroserviceServices,
                           public ::testing::WithParamInterface<RunMode> {};
INSTANTIATE_TEST_SUITE_P(ProcessOn, MicroserviceRoutes,
                         ::testing::Values(RunMode{false, true, "Workers"},
                                           RunMode{true, true, "Loop"},
                                           RunMode{false, false, "WorkersWithoutConfirms"}),
                         [](const auto& info) { return info.param.name; });

TEST_P(MicroserviceRoutes, ByCaseWithFilesAndRowsRetriesThenDeadLetters) {
  connect_observer();
  std::string in_file = ::testing::TempDir() + name_ + "-five";
  std::ofstream(in_file) << "five";
  ASSERT_TRUE(store_->upload("ember-in", "5", in_file));

  MicroserviceOptions opt;
  opt.workers = 2;
  opt.process_on_loop = GetParam().on_loop;
  opt.publisher_confirms = GetParam().confirms;
  opt.max_attempts = 2;
  opt.metrics_listen = "127.0.0.1:0";
  std::string table = table_;
  Microservice svc(
      name_, env("CONFIG_HOST"),
      [table](uint64_t request, const ReadFileFn& read_file, const WriteFileFn& write_file,
              Database& db) -> ProcessResult {
        if (request == 13) throw std::runtime_error("unlucky 13");
        std::string extra;
        if (request == 5) extra = read_file("in", 5).read_all();
        write_file("out", request).write("out-" + std::to_string(request) + extra);
        auto row = db.exec("INSERT INTO " + table + " VALUES ($1)", {std::to_string(request)});
        if (!row) throw std::runtime_error(row.error().message);
        return {{request, true},
                {request + 1000, 1},
                {request + 2000, "1"},
                {request + 3000, std::string("nowhere")}};
      },
      opt);
  std::promise<int> exit_code;
  std::thread runner([&] { exit_code.set_value(svc.start()); });

  // The service declares its queues once it is up; publishing before that
  // would still work (the observer declared the inbound queue).
  for (int i = 1; i <= 20; ++i)
    publish(std::to_string(i));
  publish(" 42\n");
  // Not a u64: straight to the dead-letter queue, never retried.
  const std::vector<std::string> invalid = {
      "abc", "-1", "1_000", "18446744073709551616", "", std::string(20u << 20, '7')};
  for (const std::string& body : invalid)
    publish(body);

  EXPECT_TRUE(seen_.wait_for(name_ + "-true", 20, 90s));
  EXPECT_TRUE(seen_.wait_for(name_ + "-str2", 20, 30s));
  EXPECT_TRUE(seen_.wait_for(name_ + ".dead-letter", 1 + invalid.size(), 30s));
  // The counters, as a Prometheus scraper (curl here) reads them.
  ASSERT_NE(svc.metrics_port(), 0);
  std::string url = "http://127.0.0.1:" + std::to_string(svc.metrics_port()) + "/metrics";
  std::string scraped;
  if (FILE* p = ::popen(("curl -sf " + url).c_str(), "r")) {
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p))
      scraped.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << url;
  }
  EXPECT_NE(scraped.find("# TYPE ember_queue_received_total counter"), std::string::npos)
      << scraped;
  EXPECT_NE(scraped.find("ember_queue_succeeded_total{service=\"" + name_ + "\"} 20"),
            std::string::npos)
      << scraped;
  EXPECT_NE(scraped.find("ember_queue_dead_lettered_total{service=\"" + name_ + "\"} 7"),
            std::string::npos)
      << scraped;
  svc.stop();
  EXPECT_EQ(exit_code.get_future().get(), 0);
  runner.join();

  std::lock_guard lock(seen_.mu);
  std::multiset<std::string> want_true, want_int, want_str;
  for (int i : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 42}) {
    want_true.insert(std::to_string(i));
    want_int.insert(std::to_string(i + 1000));
    want_str.insert(std::to_string(i + 2000));
  }
  EXPECT_EQ(seen_.bodies[name_ + "-true"], want_true);  // each exactly once
  EXPECT_EQ(seen_.bodies[name_ + "-int"], want_int);
  EXPECT_EQ(seen_.bodies[name_ + "-str"], want_str);
  EXPECT_EQ(seen_.bodies[name_ + "-str2"], want_str);
  std::multiset<std::string> dead(invalid.begin(), invalid.end());
  dead.insert("13");
  EXPECT_EQ(seen_.bodies[name_ + ".dead-letter"], dead);
  for (const std::string& body : invalid)
    EXPECT_NE(seen_.errors[body].find("not a u64"), std::string::npos)
        << body.substr(0, 30) << ": " << seen_.errors[body];
  EXPECT_NE(seen_.errors["13"].find("failed 2 times; last: process(13) threw: unlucky 13"),
            std::string::npos)
      << seen_.errors["13"];

  MicroserviceStats st = svc.stats();
  EXPECT_EQ(st.processed, 20u);
  EXPECT_EQ(st.received, 21u + invalid.size() + 1);  // 13 arrives twice
  EXPECT_EQ(st.dead_lettered, 1u + invalid.size());
  EXPECT_EQ(st.retried, 1u);
  EXPECT_EQ(st.failed, 2u);
  EXPECT_EQ(st.unrouted, 20u);
  EXPECT_EQ(st.published, 80u);

  auto rows = db_->exec("SELECT count(*) FROM " + table_);
  ASSERT_TRUE(rows) << rows.error().message;
  EXPECT_EQ(rows->get(0, 0), "20");
  auto five = store_->get("ember-out", "5");
  ASSERT_TRUE(five) << five.error().message;
  EXPECT_EQ(*five, "out-5five");
  auto seven = store_->get("ember-out", "7");
  ASSERT_TRUE(seven) << seven.error().message;
  EXPECT_EQ(*seven, "out-7");
}

// At least once across a broker restart: every request's results arrive,
// none is lost; duplicates (work whose ack died with the connection) are
// counted and reported.
TEST_F(MicroserviceServices, BrokerRestartMidRunLosesNothing) {
  connect_observer(/*durable=*/true);
  constexpr int kRequests = 400;
  for (int i = 1; i <= kRequests; ++i)
    publish(std::to_string(i), /*persistent=*/true);

  MicroserviceOptions opt;
  opt.workers = 2;
  opt.prefetch = 32;
  opt.durable_queues = true;
  Microservice svc(
      name_, env("CONFIG_HOST"),
      [](uint64_t request, const ReadFileFn&, const WriteFileFn&, Database&) -> ProcessResult {
        std::this_thread::sleep_for(25ms);  // still at work when the broker goes
        return {{request, true}};
      },
      opt);
  std::promise<int> exit_code;
  std::thread runner([&] { exit_code.set_value(svc.start()); });

  ASSERT_TRUE(seen_.wait_for(name_ + "-true", 50, 60s));
  ASSERT_TRUE(rabbitmqctl("stop_app"));
  ASSERT_TRUE(rabbitmqctl("start_app"));

  std::set<std::string> distinct;
  bool all = false;
  for (int tries = 0; tries < 240 && !all; ++tries) {
    std::this_thread::sleep_for(500ms);
    std::lock_guard lock(seen_.mu);
    distinct = std::set<std::string>(seen_.bodies[name_ + "-true"].begin(),
                                     seen_.bodies[name_ + "-true"].end());
    all = distinct.size() == kRequests;
  }
  svc.stop();
  EXPECT_EQ(exit_code.get_future().get(), 0);
  runner.join();
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kRequests)) << "results lost";
  size_t total;
  {
    std::lock_guard lock(seen_.mu);
    total = seen_.bodies[name_ + "-true"].size();
  }
  size_t duplicates = total - distinct.size();
  std::printf("broker restart: %d requests, %zu results, %zu duplicates (at-least-once)\n",
              kRequests, total, duplicates);
  RecordProperty("duplicates", static_cast<int>(duplicates));
  // Only work in flight at the restart can repeat: the prefetch bounds it.
  EXPECT_LE(duplicates, static_cast<size_t>(opt.prefetch) * 2);
  for (std::string q : {name_ + "-in", name_ + "-true", name_ + "-int", name_ + "-str",
                        name_ + "-str2", name_ + ".dead-letter"})
    rabbitmqctl("delete_queue '" + q + "'");
}

TEST_F(MicroserviceServices, AnUnknownServiceFailsStartUpNamingTheUrl) {
  Microservice svc(
      "no-such-service-" + name_, env("CONFIG_HOST"),
      [](uint64_t, const ReadFileFn&, const WriteFileFn&, Database&) { return ProcessResult{}; });
  EXPECT_EQ(svc.start(), 1);
}

}  // namespace
}  // namespace ember::queue
