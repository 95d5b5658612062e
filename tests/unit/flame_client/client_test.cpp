// The Flame client SDK (ember/flame_client.hpp) against frontend_peer.py, a
// flame.v1.Frontend in grpcio; flame.yaml/env and ResourceRequirement parsing.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>
#include <algorithm>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>

#include "ember/flame_client.hpp"
#include "ember/reactor.hpp"
#include "tests/unit/support/python_peer.hpp"

namespace ember::flame::client {
namespace {

using namespace std::chrono_literals;

using test::run_command;

// frontend_peer.py (flame_pb2 from EMBER_FLAME_PB2_DIR; with --branch, from
// EMBER_FLAME_MAIN_PB2_DIR, generated from Flame main's flame.proto).
class Peer : public test::PythonPeer {
 public:
  explicit Peer(std::vector<std::string> extra = {}) : PythonPeer(with_script(std::move(extra))) {}
  std::string endpoint(const char* scheme = "http") const {
    std::string e = scheme;
    e.append("://127.0.0.1:").append(std::to_string(port()));
    return e;
  }

 private:
  static std::vector<std::string> with_script(std::vector<std::string> extra) {
    bool branch = std::find(extra.begin(), extra.end(), "--branch") != extra.end();
    extra.insert(extra.begin(),
                 {EMBER_FRONTEND_PEER, branch ? EMBER_FLAME_MAIN_PB2_DIR : EMBER_FLAME_PB2_DIR});
    return extra;
  }
};

struct Recorder : TaskInformer {
  std::vector<TaskState> states;
  std::vector<std::string> errors;
  std::function<void()> on_first;
  void on_update(const Task& t) override {
    states.push_back(t.state);
    if (states.size() == 1 && on_first) on_first();
  }
  void on_error(const Error& e) override { errors.push_back(e.message); }
};

ApplicationAttributes echo_app() {
  ApplicationAttributes a;
  a.description = "reverses its input";
  a.labels = {"test"};
  a.command = "/usr/bin/echo-service";
  a.arguments = {"--fast"};
  a.environments = {{"RUST_LOG", "info"}};
  a.max_instances = 4;
  a.delay_release = std::chrono::seconds(30);
  a.schema = ApplicationSchema{"string", "string", std::nullopt};
  return a;
}

std::unique_ptr<Connection> connect_to(const std::string& endpoint,
                                       std::optional<ClientTls> tls = {}) {
  auto c = connect(endpoint, tls);
  EXPECT_TRUE(c) << c.error().message;
  return c ? std::move(*c) : nullptr;
}

TEST(FlameClient, ApplicationsRoundTripEveryField) {
  REQUIRE_PEER();
  Peer peer;
  ASSERT_NE(peer.port(), 0);
  auto conn = connect_to(peer.endpoint());
  ASSERT_TRUE(conn);
  auto r = conn->register_application("echo", echo_app());
  ASSERT_TRUE(r) << r.error().message;
  // A Flame refusal (Result.return_code -1) is an error with Flame's message.
  r = conn->register_application("echo", echo_app());
  ASSERT_FALSE(r);
  EXPECT_EQ(error_code(r.error()), ErrorCode::flame);
  EXPECT_NE(r.error().message.find("already exists"), std::string::npos) << r.error().message;

  auto app = conn->get_application("echo");
  ASSERT_TRUE(app) << app.error().message;
  EXPECT_EQ(app->name, "echo");
  EXPECT_EQ(app->attributes.command, "/usr/bin/echo-service");
  EXPECT_EQ(app->attributes.arguments, std::vector<std::string>{"--fast"});
  EXPECT_EQ(app->attributes.environments.at("RUST_LOG"), "info");
  EXPECT_EQ(app->attributes.max_instances, 4u);
  EXPECT_EQ(app->attributes.delay_release, std::chrono::seconds(30));
  ASSERT_TRUE(app->attributes.schema);
  EXPECT_EQ(app->attributes.schema->input, "string");
  EXPECT_FALSE(app->attributes.schema->common_data);
  EXPECT_FALSE(app->attributes.image);
  EXPECT_GT(app->creation_time, 0);

  ApplicationAttributes changed = echo_app();
  changed.command = "/usr/bin/other";
  ASSERT_TRUE(conn->update_application("echo", changed));
  EXPECT_EQ(conn->get_application("echo")->attributes.command, "/usr/bin/other");
  ASSERT_TRUE(conn->register_application("pi", ApplicationAttributes{}));
  auto list = conn->list_applications();
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(list->size(), 2u);

  ASSERT_TRUE(conn->unregister_application("pi"));
  auto missing = conn->get_application("pi");
  ASSERT_FALSE(missing);
  EXPECT_EQ(error_code(missing.error()), ErrorCode::not_found);
  EXPECT_NE(missing.error().message.find("GetApplication pi failed: NOT_FOUND"), std::string::npos)
      << missing.error().message;
  EXPECT_FALSE(conn->unregister_application("pi"));
}

TEST(FlameClient, SessionsAndTasksThroughEveryCall) {
  REQUIRE_PEER();
  Peer peer;
  auto conn = connect_to(peer.endpoint());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->register_application("echo", echo_app()));
  SessionAttributes attrs{.id = "s1", .application = "echo"};
  attrs.common_data = Bytes::copy(std::string_view("shared"));
  attrs.min_instances = 1;
  attrs.max_instances = 3;
  attrs.resreq = *ResourceRequirement::parse("cpu=2,mem=1g");
  auto ssn = conn->create_session(attrs);
  ASSERT_TRUE(ssn) << ssn.error().message;
  EXPECT_EQ(ssn->id(), "s1");
  EXPECT_EQ(ssn->info().attributes.resreq->memory, 1ull << 30);
  EXPECT_EQ(ssn->info().attributes.common_data->view(), "shared");
  EXPECT_FALSE(conn->create_session(attrs));  // ALREADY_EXISTS

  // run_task: every state, then the output.
  Recorder rec;
  auto done = ssn->run_task(Bytes::copy(std::string_view("hello")), rec);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->state, TaskState::Succeed);
  ASSERT_TRUE(done->output);
  EXPECT_EQ(done->output->view(), "olleh");
  ASSERT_FALSE(rec.states.empty());
  EXPECT_EQ(rec.states.back(), TaskState::Succeed);
  EXPECT_TRUE(rec.errors.empty());

  // A failed task is a final update with the reason in its events, not an error.
  Recorder failed;
  auto f = ssn->run_task(Bytes::copy(std::string_view("fail")), failed);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->state, TaskState::Failed);
  ASSERT_FALSE(f->events.empty());
  EXPECT_EQ(f->events.back().message, "boom: the task failed");

  // create, get, watch, list.
  auto t = ssn->create_task(std::nullopt);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_FALSE(t->input);
  Recorder w;
  auto watched = ssn->watch_task(t->id, w);
  ASSERT_TRUE(watched) << watched.error().message;
  EXPECT_EQ(watched->state, TaskState::Succeed);
  auto got = ssn->get_task(t->id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, TaskState::Succeed);
  auto unknown = ssn->get_task("999");
  EXPECT_EQ(error_code(unknown.error()), ErrorCode::not_found);
  auto tasks = ssn->list_tasks();
  ASSERT_TRUE(tasks) << tasks.error().message;
  ASSERT_EQ(tasks->size(), 3u);
  EXPECT_EQ((*tasks)[0].output->view(), "olleh");
  EXPECT_EQ((*tasks)[1].state, TaskState::Failed);

  // open-or-create: same spec opens, another spec is a clear error.
  auto same = conn->open_session("s1", attrs);
  ASSERT_TRUE(same) << same.error().message;
  SessionAttributes other = attrs;
  other.application = "pi";
  other.max_instances = 8;
  auto clash = conn->open_session("s1", other);
  ASSERT_FALSE(clash);
  EXPECT_EQ(error_code(clash.error()), ErrorCode::invalid_config);
  EXPECT_NE(clash.error().message.find("application is 'pi' here, 'echo' on the server"),
            std::string::npos)
      << clash.error().message;
  EXPECT_NE(clash.error().message.find("max_instances is '8' here, '3' on the server"),
            std::string::npos)
      << clash.error().message;
  auto created = conn->open_session("s2", SessionAttributes{.application = "echo"});
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->id(), "s2");
  EXPECT_FALSE(conn->open_session("s3"));  // neither there nor a spec to create it

  auto info = conn->get_session("s1");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->info().succeed, 2);
  EXPECT_EQ(info->info().failed, 1);
  auto all = conn->list_sessions();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
  ASSERT_TRUE(ssn->close());
  EXPECT_EQ(ssn->info().state, SessionState::Closed);
  ASSERT_TRUE(conn->close_session("s2"));
  auto late = ssn->create_task(std::nullopt);
  ASSERT_FALSE(late);
  EXPECT_EQ(error_code(late.error()), ErrorCode::failed_precondition);
  EXPECT_FALSE(conn->close_session("nope"));
}

TEST(FlameClient, ServerKilledMidWatchIsAnErrorNotAHang) {
  REQUIRE_PEER();
  Peer peer;
  auto conn = connect_to(peer.endpoint());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->register_application("echo", echo_app()));
  auto ssn = conn->create_session({.id = "s", .application = "echo"});
  ASSERT_TRUE(ssn);
  Recorder rec;
  rec.on_first = [&] { peer.kill(); };
  auto t0 = std::chrono::steady_clock::now();
  auto r = ssn->run_task(Bytes::copy(std::string_view("hang")), rec);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  ASSERT_FALSE(r);
  EXPECT_EQ(error_code(r.error()), ErrorCode::unavailable) << r.error().message;
  EXPECT_NE(r.error().message.find("WatchTask s/1 failed: UNAVAILABLE"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("is the Flame session manager at"), std::string::npos);
  ASSERT_EQ(rec.errors.size(), 1u);
  EXPECT_EQ(rec.errors[0], r.error().message);
  // The next call fails to connect, with the reason.
  auto again = conn->get_session("s");
  ASSERT_FALSE(again);
  EXPECT_EQ(error_code(again.error()), ErrorCode::unavailable);
}

TEST(FlameClient, ThousandsOfTasksInFlightFromOneLoopThread) {
  REQUIRE_PEER();
  Peer peer;
  auto conn = connect_to(peer.endpoint());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->register_application("echo", echo_app()));
  ASSERT_TRUE(conn->create_session({.id = "many", .application = "echo"}));
  constexpr int kTasks = 2000;
  struct State {
    int done = 0, ok = 0;
    size_t peak = 0;
    std::vector<std::string> errors;
    std::promise<void> all;
  };
  auto st = std::make_shared<State>();
  conn->post([st](AsyncClient& c) {
    for (int i = 0; i < kTasks; ++i) {
      std::string in = "task-";
      in.append(std::to_string(i));
      std::string want(in.rbegin(), in.rend());
      c.run_task("many", Bytes::copy(std::string_view(in)), {}, [st, want, &c](Result<Task> t) {
        EXPECT_TRUE(c.loop().on_loop_thread());
        if (!t)
          st->errors.push_back(t.error().message);
        else if (t->is_succeed() && t->output && t->output->view() == want)
          ++st->ok;
        if (++st->done == kTasks) st->all.set_value();
      });
    }
    st->peak = c.calls_in_flight();
  });
  ASSERT_EQ(st->all.get_future().wait_for(90s), std::future_status::ready);
  EXPECT_EQ(st->ok, kTasks);
  EXPECT_TRUE(st->errors.empty()) << st->errors.front();
  EXPECT_EQ(st->peak, static_cast<size_t>(kTasks));  // every create was in flight at once
}

TEST(FlameClient, BranchEditionListCallsFallBackFromUnimplemented) {
  REQUIRE_PEER();
  Peer peer({"--branch"});
  auto conn = connect_to(peer.endpoint());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->register_application("echo", echo_app()));
  auto apps = conn->list_applications();
  ASSERT_TRUE(apps) << apps.error().message;
  EXPECT_EQ(apps->size(), 1u);
  auto ssn = conn->create_session({.id = "b", .application = "echo"});
  ASSERT_TRUE(ssn);
  Recorder rec;
  ASSERT_TRUE(ssn->run_task(Bytes::copy(std::string_view("x")), rec));
  auto tasks = ssn->list_tasks();
  ASSERT_TRUE(tasks) << tasks.error().message;
  EXPECT_EQ(tasks->size(), 1u);
  auto sessions = conn->list_sessions();
  ASSERT_TRUE(sessions) << sessions.error().message;
  EXPECT_EQ(sessions->size(), 1u);
}

// ---- TLS ---------------------------------------------------------------------

struct Pki {
  std::filesystem::path dir;
  bool ok = false;
  Pki() {
    char tmpl[] = "/tmp/ember-flame-pki-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir = tmpl;
    auto p = [&](const char* f) { return (dir / f).string(); };
    std::ofstream(p("ext.cnf"))
        << "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n";
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
    ok = run_command("openssl req -x509" + ec + "-keyout " + p("ca.key") + " -out " + p("ca.pem") +
                     " -days 2 -subj /CN=Ember-Flame-Test-CA") == 0 &&
         run_command("openssl req -x509" + ec + "-keyout " + p("other.key") + " -out " +
                     p("other.pem") + " -days 2 -subj /CN=Other-CA") == 0 &&
         run_command("openssl req" + ec + "-keyout " + p("srv.key") + " -out " + p("srv.csr") +
                     " -subj /CN=localhost") == 0 &&
         run_command("openssl x509 -req -in " + p("srv.csr") + " -CA " + p("ca.pem") + " -CAkey " +
                     p("ca.key") + " -CAcreateserial -days 2 -out " + p("srv.pem") + " -extfile " +
                     p("ext.cnf")) == 0;
  }
  ~Pki() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::string file(const char* f) const { return (dir / f).string(); }
};

TEST(FlameClientTls, HttpsWithTheCaFromTheContext) {
  REQUIRE_PEER();
  Pki pki;
  ASSERT_TRUE(pki.ok)
      << "the openssl CLI could not make the test PKI (scripts/setup.sh installs it)";
  Peer peer({"--tls", pki.file("srv.pem"), pki.file("srv.key")});
  ASSERT_NE(peer.port(), 0);
  // The endpoint and CA come from a flame.yaml, as a user's would.
  std::string yaml = "current-context: tls\ncontexts:\n- name: tls\n  cluster:\n    endpoint: \"";
  yaml.append(peer.endpoint("https")).append("\"\n    tls: { ca_file: ").append(pki.file("ca.pem"));
  yaml.append(" }\n");
  auto ctx = FlameContext::parse(yaml);
  ASSERT_TRUE(ctx) << ctx.error().message;
  auto cur = ctx->current();
  ASSERT_TRUE(cur);
  auto conn = connect_to(cur->cluster.endpoint, cur->cluster.tls);
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->register_application("echo", echo_app()));
  auto ssn = conn->create_session({.id = "t", .application = "echo"});
  ASSERT_TRUE(ssn) << ssn.error().message;
  Recorder rec;
  auto r = ssn->run_task(Bytes::copy(std::string_view("secret")), rec);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->output->view(), "terces");
  auto tasks = ssn->list_tasks();
  ASSERT_TRUE(tasks);
  EXPECT_EQ(tasks->size(), 1u);

  // A CA that did not sign the server: a clear TLS error.
  auto bad = connect_to(peer.endpoint("https"), ClientTls{.ca_file = pki.file("other.pem")});
  ASSERT_TRUE(bad);
  auto apps = bad->list_applications();
  ASSERT_FALSE(apps);
  EXPECT_EQ(error_code(apps.error()), ErrorCode::unavailable);
  EXPECT_NE(apps.error().message.find("certificate verify failed"), std::string::npos)
      << apps.error().message;
  // An unreadable CA file fails connect() at once.
  auto missing = connect(peer.endpoint("https"), ClientTls{.ca_file = "/nonexistent/ca.pem"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(error_code(missing.error()), ErrorCode::invalid_config);
}

TEST(FlameClient, MalformedEndpointsAreRefused) {
  for (const char* e : {"127.0.0.1:8080", "grpc://h:1", "http://:80", "http://h:0",
                        "http://h:70000", "http://h:80/x", "unix:relative"}) {
    auto c = connect(e);
    ASSERT_FALSE(c) << e;
    EXPECT_EQ(error_code(c.error()), ErrorCode::invalid_config) << e;
    EXPECT_NE(c.error().message.find(e), std::string::npos) << c.error().message;
  }
  EXPECT_TRUE(connect("http://[::1]:8080"));
  EXPECT_TRUE(connect("unix:///tmp/flame.sock"));
}

// ---- flame.yaml and the environment -------------------------------------------

class EnvGuard {
 public:
  EnvGuard() {
    for (const char* n : kNames)
      if (const char* v = std::getenv(n)) saved_.emplace_back(n, v);
    clear();
  }
  ~EnvGuard() {
    clear();
    for (auto& [n, v] : saved_)
      setenv(n.c_str(), v.c_str(), 1);
  }
  static void clear() {
    for (const char* n : kNames)
      unsetenv(n);
  }

 private:
  static constexpr const char* kNames[] = {"FLAME_ENDPOINT",
                                           "FLAME_CA_FILE",
                                           "FLAME_CERT_FILE",
                                           "FLAME_KEY_FILE",
                                           "FLAME_WORKSPACE",
                                           "FLAME_CACHE_ENDPOINT",
                                           "HOME"};
  std::vector<std::pair<std::string, std::string>> saved_;
};

constexpr const char* kYaml = R"(---
current-context: flame
contexts:
- name: other
  cluster:
    endpoint: "http://other:1"
- name: flame
  cluster:
    endpoint: "http://127.0.0.1:8080"
  cache:
    endpoint: "grpc://127.0.0.1:9090"
)";

TEST(FlameContext, ParsesTheFileAndAppliesEnvOverrides) {
  EnvGuard env;
  char tmpl[] = "/tmp/ember-flame-home-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::filesystem::path home = tmpl;
  std::filesystem::create_directories(home / ".flame");
  std::ofstream(home / ".flame" / "flame.yaml") << kYaml;
  setenv("HOME", tmpl, 1);

  auto ctx = FlameContext::from_file_with_env();
  ASSERT_TRUE(ctx) << ctx.error().message;
  auto cur = ctx->current();
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_EQ(cur->name, "flame");
  EXPECT_EQ(cur->workspace, "default");
  EXPECT_EQ(cur->cluster.endpoint, "http://127.0.0.1:8080");
  EXPECT_FALSE(cur->cluster.tls);
  EXPECT_EQ(cur->cache->endpoint, "grpc://127.0.0.1:9090");

  setenv("FLAME_ENDPOINT", "https://flame.example:8443", 1);
  setenv("FLAME_CA_FILE", "/etc/flame/ca.crt", 1);
  setenv("FLAME_CACHE_ENDPOINT", "grpc://cache:9091", 1);
  setenv("FLAME_WORKSPACE", "team-a", 1);
  ctx = FlameContext::from_file_with_env();
  ASSERT_TRUE(ctx);
  cur = ctx->current();
  EXPECT_EQ(cur->cluster.endpoint, "https://flame.example:8443");
  EXPECT_EQ(cur->cluster.tls->ca_file, "/etc/flame/ca.crt");
  EXPECT_EQ(cur->cache->tls->ca_file, "/etc/flame/ca.crt");
  EXPECT_EQ(cur->cache->endpoint, "grpc://cache:9091");
  EXPECT_EQ(cur->workspace, "team-a");
  // Only the current context is overridden.
  EXPECT_EQ(ctx->contexts[0].cluster.endpoint, "http://other:1");

  // A CA in the file wins over FLAME_CA_FILE.
  std::ofstream(home / "tls.yaml")
      << "current-context: c\ncontexts:\n- name: c\n  cluster:\n    endpoint: https://h:1\n"
         "    tls:\n      ca_file: /file/ca.pem\n";
  ctx = FlameContext::from_file_with_env((home / "tls.yaml").string());
  ASSERT_TRUE(ctx) << ctx.error().message;
  EXPECT_EQ(ctx->current()->cluster.tls->ca_file, "/file/ca.pem");

  // No file: FLAME_ENDPOINT alone is enough (as inside an executor) ...
  std::filesystem::remove(home / ".flame" / "flame.yaml");
  ctx = FlameContext::from_file_with_env();
  ASSERT_TRUE(ctx) << ctx.error().message;
  EXPECT_EQ(ctx->current()->name, "env");
  EXPECT_EQ(ctx->current()->cluster.endpoint, "https://flame.example:8443");
  // ... and without it the error says what to do.
  unsetenv("FLAME_ENDPOINT");
  ctx = FlameContext::from_file_with_env();
  ASSERT_FALSE(ctx);
  EXPECT_EQ(error_code(ctx.error()), ErrorCode::invalid_config);
  EXPECT_NE(ctx.error().message.find("is not a file"), std::string::npos) << ctx.error().message;
  EXPECT_NE(ctx.error().message.find("FLAME_ENDPOINT"), std::string::npos);
  EXPECT_FALSE(FlameContext::from_env());
  std::filesystem::remove_all(home);
}

TEST(FlameContext, BadFilesNameTheProblem) {
  auto missing_ctx = FlameContext::parse(
      "current-context: nope\ncontexts:\n- name: a\n  cluster:\n    endpoint: http://a:1\n");
  ASSERT_TRUE(missing_ctx);
  auto cur = missing_ctx->current();
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().message.find("context <nope> not found (contexts: a)"), std::string::npos)
      << cur.error().message;
  struct Case {
    const char* yaml;
    const char* says;
  } cases[] = {
      {"current-context: a\ncontexts:\n- name: a\n", "contexts[0] (a): cluster is missing"},
      {"current-context: a\ncontexts:\n- name: a\n  cluster: {}\n", "cluster.endpoint is missing"},
      {"current-context: a\ncontexts:\n- cluster: {endpoint: x}\n", "contexts[0]: name is missing"},
      {"current-context: a\ncontexts: 3\n", "contexts must be a list"},
      {"- a\n- b\n", "expected a mapping"},
      {"current-context: [a\n", "my.yaml"},
  };
  for (const auto& c : cases) {
    auto r = FlameContext::parse(c.yaml, "my.yaml");
    ASSERT_FALSE(r) << c.yaml;
    EXPECT_EQ(error_code(r.error()), ErrorCode::invalid_config);
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
  }
}

// ---- ResourceRequirement ----------------------------------------------------------

TEST(ResourceRequirement, ParsesTheSeedsText) {
  auto r = ResourceRequirement::parse("cpu=4,mem=16g,gpu=1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, (ResourceRequirement{4, 16ull << 30, 1}));
  EXPECT_EQ(ResourceRequirement::parse(" CPU = 1 , Memory=2Gi ")->memory, 2ull << 30);
  EXPECT_EQ(ResourceRequirement::parse("mem=512")->memory, 512u);
  EXPECT_EQ(ResourceRequirement::parse("mem=512b")->memory, 512u);
  EXPECT_EQ(ResourceRequirement::parse("mem=3k")->memory, 3072u);
  EXPECT_EQ(ResourceRequirement::parse("mem=3KiB")->memory, 3072u);
  EXPECT_EQ(ResourceRequirement::parse("mem=2mb")->memory, 2u << 20);
  EXPECT_EQ(ResourceRequirement::parse("mem=1t")->memory, 1ull << 40);
  EXPECT_EQ(ResourceRequirement::parse("mem=1pi")->memory, 1ull << 50);
  EXPECT_EQ(ResourceRequirement::parse("gpu=2")->gpu, 2);
  EXPECT_EQ(ResourceRequirement::parse("cpu=4,mem=16g,gpu=1")->to_string(),
            "cpu=4,mem=17179869184,gpu=1");
}

TEST(ResourceRequirement, MalformedTextIsAnInvalidConfigErrorNamingTheEntry) {
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"", "cannot be empty"},
      {"   ", "cannot be empty"},
      {"cpu=1,,gpu=1", "invalid empty resource requirement entry in 'cpu=1,,gpu=1'"},
      {"cpu=1,", "invalid empty resource requirement entry"},
      {"cpu", "invalid resource requirement entry 'cpu', expected key=value"},
      {"cpu=1=2", "expected one '='"},
      {"cpu=", "missing value for resource requirement key 'cpu'"},
      {"disk=1", "unknown resource requirement key 'disk'"},
      {"cpu=-1", "invalid cpu resource value '-1'"},
      {"cpu=1.5", "invalid cpu resource value '1.5'"},
      {"gpu=x", "invalid gpu resource value 'x'"},
      {"mem=lots", "invalid memory size 'lots'"},
      {"mem=g", "invalid memory size 'g'"},
      {"mem=1x", "invalid memory size '1x'"},
      {"mem=99999999p", "too large"},
      {"cpu=99999999999999999999", "invalid cpu resource value"},
  };
  for (const auto& c : cases) {
    auto r = ResourceRequirement::parse(c.text);
    ASSERT_FALSE(r) << "'" << c.text << "' parsed";
    EXPECT_EQ(error_code(r.error()), ErrorCode::invalid_config);
    EXPECT_NE(r.error().message.find(c.says), std::string::npos)
        << "'" << c.text << "': " << r.error().message;
  }
}

}  // namespace
}  // namespace ember::flame::client
