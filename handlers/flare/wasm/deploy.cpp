#include "handlers/flare/wasm/deploy.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "ember/config.hpp"
#include "ember/log.hpp"
#include "handlers/flare/wasm/host.hpp"
#include "protocols/http1/http1.hpp"

namespace ember::flare::wasm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Where a deployment is routed and what it is granted.
struct Spec {
  std::string host = "*", path = "/";
  std::vector<std::string> secrets, capabilities;
};

// What the compiler thread does next: compile and serve a version, or
// forget a removed deployment's files (state_dir is touched only there, in
// the order the calls came).
struct Job {
  std::string name;
  uint64_t version = 0;
  Spec spec;
  std::string module;
  std::string sha256;
  bool remove = false;
};

struct Record {
  Spec spec;  // of the newest accepted version
  uint64_t version = 0;
  std::string sha256;
  std::string status;  // "compiling", "active", "failed"
  std::string error;
  // The version being served, if any.
  std::shared_ptr<Flare> flare;
  Spec serving;
  uint64_t serving_version = 0;
  std::string serving_sha256, since;
};

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

bool valid_host(std::string_view host) {
  if (host == "*") return true;
  if (host.starts_with("*.")) host.remove_prefix(2);
  if (host.empty() || host.size() > 253) return false;
  for (char c : host)
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '.' && c != '-' && c != ':')
      return false;
  return true;
}

bool valid_path(std::string_view path) {
  if (path.empty() || path[0] != '/' || path.size() > 1024) return false;
  for (char c : path)
    if (static_cast<unsigned char>(c) <= ' ' || c == '?' || c == '#' || c == 0x7f) return false;
  return true;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json spec_json(const Spec& s) {
  return {
      {"host", s.host}, {"path", s.path}, {"secrets", s.secrets}, {"capabilities", s.capabilities}};
}

json record_json(const std::string& name, const Record& r) {
  json j = spec_json(r.spec);
  j["name"] = name;
  j["version"] = r.version;
  j["sha256"] = r.sha256;
  j["status"] = r.status;
  if (!r.error.empty()) j["error"] = r.error;
  if (r.flare) {
    json s = spec_json(r.serving);
    s["version"] = r.serving_version;
    s["sha256"] = r.serving_sha256;
    s["since"] = r.since;
    j["serving"] = std::move(s);
  } else {
    j["serving"] = nullptr;
  }
  return j;
}

// Writes `data` to `path` durably: a temporary file, fsync, rename, and an
// fsync of the directory, so a crash leaves the old file or the new one.
Result<void> write_file(const fs::path& path, std::string_view data) {
  fs::path tmp = path;
  tmp += ".tmp";
  auto failed = [&](const char* what, const fs::path& p) {
    return Error(std::string("cannot ") + what + " " + p.string() + ": " + describe_errno(-errno));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return failed("create", tmp);
  for (size_t at = 0; at < data.size();) {
    ssize_t n = ::write(fd, data.data() + at, data.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto e = failed("write", tmp);
      ::close(fd);
      return e;
    }
    at += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = failed("fsync", tmp);
    ::close(fd);
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failed("rename", tmp);
  int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

class AdminFlare;

}  // namespace

struct Deployer::Impl {
  Server& server;
  AdminSettings admin;
  Limits limits;
  std::shared_ptr<WasmHost> host;
  std::vector<LiveRoute> base;  // the config's routes and the admin API

  std::mutex mu;  // everything below
  std::condition_variable wake;
  std::deque<Job> jobs;
  bool stopping = false;
  std::map<std::string, Record> records;
  uint64_t next_version = 0;
  std::thread compiler;

  Impl(Server& s, const ServerConfig& c, std::shared_ptr<WasmHost> h)
      : server(s), admin(c.admin), limits(c.limits), host(std::move(h)) {}

  // ---- the admin API (loop threads) ----

  void serve(Context& ctx);
  void list(Response& resp);
  void show(const std::string& name, Response& resp);
  void deploy(const std::string& name, Context& ctx);
  void remove(const std::string& name, Response& resp);

  // ---- the compiler thread ----

  void run();
  // Builds the flare of `job` (compile, then the policy); an error says why.
  Result<std::shared_ptr<Flare>> build(const Job& job);
  // Marks `job`'s record active or failed, unless a newer PUT or a DELETE
  // superseded it. True when it became active.
  bool settle(const Job& job, Result<std::shared_ptr<Flare>> flare);
  void publish_locked();
  // The other deployment whose route (served or on its way) is `spec`'s.
  std::string taken_by_locked(const std::string& name, const Spec& spec) const;
  void persist(const Job& job);
  void unpersist(const std::string& name);
  void remove_modules(const std::string& name, const std::string& keep);
  void restore();
};

namespace {

void send_json(Response& resp, int status, const json& body) {
  resp.set_status(status);
  resp.set_header("content-type", "application/json");
  resp.set_header("cache-control", "no-store");
  resp.set_body(body.dump() + "\n");
}

void send_error(Response& resp, int status, const std::string& message) {
  send_json(resp, status, {{"error", message}});
}

// The admin API as a flare, routed ahead of every other route.
class AdminFlare final : public Flare {
 public:
  explicit AdminFlare(std::weak_ptr<Deployer::Impl> impl) : impl_(std::move(impl)) {}
  Action handle_request(Context& ctx) override {
    if (auto impl = impl_.lock()) {
      impl->serve(ctx);
    } else {
      send_error(ctx.response, 503, "the deployer has stopped (the server is shutting down)");
    }
    return Action::respond;
  }

 private:
  std::weak_ptr<Deployer::Impl> impl_;
};

bool token_matches(std::optional<std::string_view> authorization, const std::string& token) {
  if (!authorization) return false;
  std::string_view a = *authorization;
  if (a.size() < 7 || !(a.substr(0, 7) == "Bearer " || a.substr(0, 7) == "bearer ")) return false;
  a.remove_prefix(7);
  return a.size() == token.size() && CRYPTO_memcmp(a.data(), token.data(), a.size()) == 0;
}

}  // namespace

void Deployer::Impl::serve(Context& ctx) {
  const Request& req = ctx.request;
  Response& resp = ctx.response;
  {
    std::lock_guard lock(mu);
    if (stopping)
      return send_error(resp, 503, "the server is shutting down; retry after it restarts");
  }
  if (!token_matches(req.header("authorization"), admin.token)) {
    EMBER_WARN("ember.admin", "admin request refused: bad or missing token",
               {"remote", req.remote_address()}, {"path", req.path()});
    resp.set_header("www-authenticate", "Bearer realm=\"ember admin\"");
    send_error(resp, 401, "the admin API needs 'Authorization: Bearer TOKEN' with admin.token");
    return;
  }
  std::string_view rest = req.path().substr(std::min(req.path().size(), admin.path.size()));
  std::string_view method = req.method();
  if (rest == "/flares" || rest == "/flares/") {
    if (method != "GET") {
      resp.set_header("allow", "GET");
      return send_error(resp, 405, "use GET on " + admin.path + "/flares");
    }
    return list(resp);
  }
  if (!rest.starts_with("/flares/")) {
    return send_error(resp, 404,
                      "no admin endpoint " + std::string(req.path()) + "; there are " + admin.path +
                          "/flares (GET) and " + admin.path + "/flares/NAME (GET, PUT, DELETE)");
  }
  std::string name(rest.substr(8));
  if (!valid_name(name))
    return send_error(
        resp, 400,
        "a deployment name is 1 to 64 letters, digits, '.', '_' or '-' (got '" + name + "')");
  if (method == "GET") return show(name, resp);
  if (method == "PUT") return deploy(name, ctx);
  if (method == "DELETE") return remove(name, resp);
  resp.set_header("allow", "GET, PUT, DELETE");
  send_error(resp, 405, "use GET, PUT or DELETE on " + admin.path + "/flares/" + name);
}

void Deployer::Impl::list(Response& resp) {
  json all = json::array();
  {
    std::lock_guard lock(mu);
    for (const auto& [name, r] : records)
      all.push_back(record_json(name, r));
  }
  send_json(resp, 200, {{"flares", std::move(all)}});
}

void Deployer::Impl::show(const std::string& name, Response& resp) {
  std::lock_guard lock(mu);
  auto it = records.find(name);
  if (it == records.end()) return send_error(resp, 404, "no deployment named '" + name + "'");
  send_json(resp, 200, record_json(name, it->second));
}

void Deployer::Impl::deploy(const std::string& name, Context& ctx) {
  Response& resp = ctx.response;
  Spec spec;
  std::string_view query = ctx.request.query();
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key, value;
    if (!http1::form_decode(pair.substr(0, eq), &key) ||
        (eq != std::string_view::npos && !http1::form_decode(pair.substr(eq + 1), &value)))
      return send_error(resp, 400, "malformed percent-encoding in the query");
    if (key == "host") {
      for (char& c : value)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      spec.host = value;
    } else if (key == "path") {
      spec.path = value;
    } else if (key == "secret") {
      spec.secrets.push_back(value);
    } else if (key == "capability") {
      spec.capabilities.push_back(value);
    } else {
      return send_error(
          resp, 400,
          "unknown query parameter '" + key + "' (known: host, path, secret, capability)");
    }
  }
  if (!valid_host(spec.host))
    return send_error(resp, 400, "host '" + spec.host + "' is not *, NAME or *.NAME");
  if (!valid_path(spec.path))
    return send_error(resp, 400, "path '" + spec.path + "' must start with / (no spaces, ?, #)");
  if (spec.path.starts_with(admin.path) &&
      (spec.path.size() == admin.path.size() || spec.path[admin.path.size()] == '/'))
    return send_error(resp, 400, "path " + spec.path + " is the admin API's (" + admin.path + ")");
  for (const std::string& s : spec.secrets)
    if (!host->secret_defined(spec.host, s))
      return send_error(resp, 400,
                        "secret '" + s + "' is not in the config's secrets for " +
                            (spec.host == "*" ? std::string("*") : spec.host + " or *"));
  for (const std::string& c : spec.capabilities)
    if (c != "writes_spark_kv" && c != "writes_plasma_kv" && c != "beam")
      return send_error(
          resp, 400,
          "unknown capability '" + c + "' (known: writes_spark_kv, writes_plasma_kv, beam)");
  for (const LiveRoute& r : base)
    if (r.host == spec.host && r.path == spec.path)
      return send_error(resp, 409,
                        "route " + spec.host + spec.path + " is the config's (flare " +
                            r.flare_name + "); deploy on another host or path");

  std::string_view module = ctx.request.body().view();
  if (module.empty())
    return send_error(resp, 400, "the request body must be the module (a .wasm file)");
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(module.data()), module.size());
  auto info = validate(bytes, "deployment '" + name + "'", host->options().max_pages);
  if (!info) return send_error(resp, 400, info.error().message);

  std::string sha256 = sha256_hex(bytes);
  json answer;
  uint64_t version = 0;
  {
    std::lock_guard lock(mu);
    if (std::string other = taken_by_locked(name, spec); !other.empty())
      return send_error(resp, 409,
                        "route " + spec.host + spec.path + " is taken by deployment '" + other +
                            "'; remove that first or deploy on another host or path");
    Record& r = records[name];
    r.spec = spec;
    r.version = ++next_version;
    r.sha256 = sha256;
    r.status = "compiling";
    r.error.clear();
    version = r.version;
    jobs.push_back({name, r.version, std::move(spec), std::string(module), sha256, false});
    answer = record_json(name, r);
  }
  wake.notify_one();
  EMBER_INFO("ember.admin", "deployment accepted", {"name", name}, {"version", version},
             {"bytes", module.size()});
  resp.set_header("location", admin.path + "/flares/" + name);
  send_json(resp, 202, answer);
}

void Deployer::Impl::remove(const std::string& name, Response& resp) {
  {
    std::lock_guard lock(mu);
    auto it = records.find(name);
    if (it == records.end()) return send_error(resp, 404, "no deployment named '" + name + "'");
    records.erase(it);  // a job still queued for it is dropped when its turn comes
    publish_locked();
    Job job;
    job.name = name;
    job.remove = true;
    jobs.push_back(std::move(job));
  }
  wake.notify_one();
  EMBER_INFO("ember.admin", "deployment removed", {"name", name});
  send_json(resp, 200, {{"removed", name}});
}

void Deployer::Impl::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu);
      wake.wait(lock, [&] { return stopping || !jobs.empty(); });
      if (stopping) {
        // Compiles are dropped; removals still reach the disk.
        for (const Job& j : jobs)
          if (j.remove) unpersist(j.name);
        jobs.clear();
        return;
      }
      job = std::move(jobs.front());
      jobs.pop_front();
      if (!job.remove) {
        auto it = records.find(job.name);
        if (it == records.end() || it->second.version != job.version) continue;  // superseded
      }
    }
    if (job.remove)
      unpersist(job.name);
    else if (settle(job, build(job)))
      persist(job);
  }
}

Result<std::shared_ptr<Flare>> Deployer::Impl::build(const Job& job) {
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(job.module.data()), job.module.size());
  auto module = compile(bytes, "deployment '" + job.name + "'", host->options(), host_call);
  if (!module) return module.error();
  auto policy = host->policy(job.spec.host, job.spec.secrets, job.spec.capabilities);
  if (!policy) return policy.error();
  return make_flare("deploy:" + job.name, std::move(*module), std::move(*policy));
}

bool Deployer::Impl::settle(const Job& job, Result<std::shared_ptr<Flare>> flare) {
  std::lock_guard lock(mu);
  auto it = records.find(job.name);
  if (it == records.end() || it->second.version != job.version) return false;
  Record& r = it->second;
  if (!flare) {
    r.status = "failed";
    r.error = flare.error().message;
    EMBER_WARN("ember.admin", "deployment failed; the previous version (if any) keeps serving",
               {"name", job.name}, {"version", job.version}, {"error", r.error});
    return false;
  }
  r.status = "active";
  r.error.clear();
  r.flare = std::move(*flare);
  r.serving = job.spec;
  r.serving_version = job.version;
  r.serving_sha256 = r.sha256;
  r.since = utc_now();
  publish_locked();
  EMBER_INFO("ember.admin", "deployment serving", {"name", job.name}, {"version", job.version},
             {"route", job.spec.host + job.spec.path});
  return true;
}

void Deployer::Impl::publish_locked() {
  std::vector<LiveRoute> routes = base;
  for (const auto& [name, r] : records)
    if (r.flare) routes.push_back({r.serving.host, r.serving.path, "deploy:" + name, r.flare});
  server.set_routes(std::move(routes));
}

std::string Deployer::Impl::taken_by_locked(const std::string& name, const Spec& spec) const {
  for (const auto& [other, r] : records) {
    if (other == name) continue;
    if ((r.spec.host == spec.host && r.spec.path == spec.path) ||
        (r.flare && r.serving.host == spec.host && r.serving.path == spec.path))
      return other;
  }
  return {};
}

void Deployer::Impl::persist(const Job& job) {
  if (admin.state_dir.empty()) return;
  // The module under its hash first, then the record naming it: a crash in
  // between leaves the previous record and module in place.
  fs::path dir(admin.state_dir);
  std::string module_file = job.name + "." + job.sha256 + ".wasm";
  json meta = spec_json(job.spec);
  meta["name"] = job.name;
  meta["sha256"] = job.sha256;
  meta["module"] = module_file;
  Result<void> r = write_file(dir / module_file, job.module);
  if (r) r = write_file(dir / (job.name + ".json"), meta.dump(2) + "\n");
  if (!r) {
    EMBER_ERROR("ember.admin",
                "deployment serves but was not saved; it will be gone after a restart",
                {"name", job.name}, {"error", r.error().message});
    return;
  }
  remove_modules(job.name, module_file);
}

// NAME.<sha>.wasm files of `name` other than `keep` (every one when empty).
void Deployer::Impl::remove_modules(const std::string& name, const std::string& keep) {
  std::error_code ec;
  std::string prefix = name + ".";
  for (const auto& entry : fs::directory_iterator(admin.state_dir, ec)) {
    std::string file = entry.path().filename().string();
    // NAME.<64 hex>.wasm: names cannot collide (a name has no 64-hex part).
    if (file.size() == prefix.size() + 64 + 5 && file.starts_with(prefix) &&
        file.ends_with(".wasm") && file != keep)
      fs::remove(entry.path(), ec);
  }
}

void Deployer::Impl::unpersist(const std::string& name) {
  if (admin.state_dir.empty()) return;
  std::error_code ec;
  fs::remove(fs::path(admin.state_dir) / (name + ".json"), ec);
  remove_modules(name, "");
}

void Deployer::Impl::restore() {
  std::vector<fs::path> metas;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(admin.state_dir, ec))
    if (entry.path().extension() == ".json") metas.push_back(entry.path());
  std::sort(metas.begin(), metas.end());
  for (const fs::path& meta_path : metas) {
    std::string name = meta_path.stem().string();
    Job job;
    job.name = name;
    std::string problem;
    try {
      auto text = config::read_file(meta_path.string());
      if (!text) throw std::runtime_error(text.error().message);
      json meta = json::parse(*text);
      std::string module_file = meta.at("module").get<std::string>();
      if (module_file.find('/') != std::string::npos || !module_file.ends_with(".wasm"))
        throw std::runtime_error("bad module file name '" + module_file + "'");
      auto module = config::read_file((meta_path.parent_path() / module_file).string());
      if (!module) throw std::runtime_error(module.error().message);
      job.spec.host = meta.at("host").get<std::string>();
      job.spec.path = meta.at("path").get<std::string>();
      job.spec.secrets = meta.at("secrets").get<std::vector<std::string>>();
      job.spec.capabilities = meta.at("capabilities").get<std::vector<std::string>>();
      job.module = std::move(*module);
      auto bytes =
          std::span(reinterpret_cast<const uint8_t*>(job.module.data()), job.module.size());
      if (sha256_hex(bytes) != meta.at("sha256").get<std::string>())
        throw std::runtime_error("the module's SHA-256 differs from the one recorded");
      job.sha256 = meta.at("sha256").get<std::string>();
      if (!valid_name(name) || !valid_host(job.spec.host) || !valid_path(job.spec.path))
        throw std::runtime_error("bad name, host or path");
      for (const LiveRoute& b : base)
        if (b.host == job.spec.host && b.path == job.spec.path)
          throw std::runtime_error("its route " + b.host + b.path + " is now the config's");
      std::lock_guard lock(mu);
      if (std::string other = taken_by_locked(name, job.spec); !other.empty())
        throw std::runtime_error("deployment '" + other + "' was restored on the same route");
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (!problem.empty()) {
      EMBER_ERROR("ember.admin", "saved deployment not restored", {"file", meta_path.string()},
                  {"error", problem});
      continue;
    }
    {
      std::lock_guard lock(mu);
      Record& r = records[name];
      r.spec = job.spec;
      r.version = job.version = ++next_version;
      r.sha256 = job.sha256;
      r.status = "compiling";
    }
    settle(job, build(job));
  }
}

Result<std::unique_ptr<Deployer>> Deployer::start(Server& server, const ServerConfig& config,
                                                  std::shared_ptr<WasmHost> host) {
  if (!config.admin.enabled()) return Error("the admin API needs admin.token in the config");
  auto impl = std::make_shared<Impl>(server, config, std::move(host));
  if (!impl->admin.state_dir.empty()) {
    std::error_code ec;
    fs::create_directories(impl->admin.state_dir, ec);
    if (ec)
      return Error(config.origin + ": admin.state_dir " + impl->admin.state_dir + ": " +
                   ec.message());
    fs::permissions(impl->admin.state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  }
  impl->base = server.routes();
  LiveRoute admin_route;
  admin_route.path = impl->admin.path;
  admin_route.flare_name = "admin";
  admin_route.flare = std::make_shared<AdminFlare>(impl);
  admin_route.first = true;
  impl->base.push_back(std::move(admin_route));
  if (!impl->admin.state_dir.empty()) impl->restore();
  {
    std::lock_guard lock(impl->mu);
    impl->publish_locked();
  }
  impl->compiler = std::thread([raw = impl.get()] { raw->run(); });
  return std::unique_ptr<Deployer>(new Deployer(std::move(impl)));
}

Deployer::~Deployer() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->compiler.joinable()) impl_->compiler.join();
}

}  // namespace ember::flare::wasm
