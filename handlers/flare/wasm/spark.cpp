#include "handlers/flare/wasm/spark.hpp"

#include <lmdb.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>

#include "ember/log.hpp"

namespace ember::flare::wasm {
namespace {

constexpr const char* kLog = "ember.spark";

// Records: "data" maps scoped_key(site, key) to expiry (u64 LE, ms; 0 =
// none) + value; "count" maps site to its number of records (u64 LE).

MDB_val val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

uint64_t load_u64(const void* p) {
  uint8_t b[8];
  std::memcpy(b, p, 8);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = v << 8 | b[i];
  return v;
}

void store_u64(uint64_t v, char* out) {
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

bool expired(uint64_t expiry, uint64_t now_ms) {
  return expiry != 0 && expiry <= now_ms;
}

// A transaction that aborts unless committed.
class Txn {
 public:
  Txn(MDB_env* env, bool write) {
    rc_ = mdb_txn_begin(env, nullptr, write ? 0 : MDB_RDONLY, &txn_);
    if (rc_ != 0) txn_ = nullptr;
  }
  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  MDB_txn* get() const noexcept { return txn_; }
  int error() const noexcept { return rc_; }
  int commit() {
    int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    return rc;
  }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

}  // namespace

struct SparkStore::Lmdb {
  MDB_env* env = nullptr;
  MDB_dbi data = 0, count = 0;
  ~Lmdb() {
    if (env) mdb_env_close(env);
  }

  uint64_t count_of(MDB_txn* txn, std::string_view site) {
    MDB_val k = val(site), v;
    if (mdb_get(txn, count, &k, &v) != 0 || v.mv_size != 8) return 0;
    return load_u64(v.mv_data);
  }
  int put_count(MDB_txn* txn, std::string_view site, uint64_t n) {
    MDB_val k = val(site);
    if (n == 0) {
      int rc = mdb_del(txn, count, &k, nullptr);
      return rc == MDB_NOTFOUND ? 0 : rc;
    }
    char b[8];
    store_u64(n, b);
    MDB_val v{8, b};
    return mdb_put(txn, count, &k, &v, 0);
  }
};

uint64_t wall_clock_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string scoped_key(std::string_view site, std::string_view key) {
  std::string k;
  k.reserve(site.size() + 1 + key.size());
  k.append(site).push_back('\0');
  k.append(key);
  return k;
}

SparkStore::SparkStore(SparkOptions options) : options_(std::move(options)) {}
SparkStore::~SparkStore() {
  sync();
}

Result<std::unique_ptr<SparkStore>> SparkStore::open(SparkOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec)
    return Error("cannot create the spark directory " + options.dir + ": " + ec.message() +
                 " (set spark.dir in the config)");
  ::chmod(options.dir.c_str(), 0700);
  std::unique_ptr<SparkStore> s(new SparkStore(std::move(options)));
  s->db_ = std::make_unique<Lmdb>();
  Lmdb& db = *s->db_;
  const std::string& dir = s->options_.dir;
  auto fail = [&](const char* what, int rc) {
    return Error("spark store " + dir + ": " + what + ": " + mdb_strerror(rc));
  };
  if (int rc = mdb_env_create(&db.env)) return fail("cannot create the LMDB environment", rc);
  if (int rc = mdb_env_set_mapsize(db.env, s->options_.max_size))
    return fail("cannot set its size", rc);
  if (int rc = mdb_env_set_maxdbs(db.env, 3)) return fail("cannot set its databases", rc);
  // Loops read from their own threads: read transactions are not tied to one.
  // WRITEMAP: a commit writes through the map instead of pwrite()ing each
  // dirty page (a set costs a third less CPU); durability is unchanged.
  if (int rc = mdb_env_open(db.env, dir.c_str(), MDB_NOSYNC | MDB_NOTLS | MDB_WRITEMAP, 0600))
    return fail("cannot open it (is another server using it?)", rc);
  s->max_record_key_ = static_cast<size_t>(mdb_env_get_maxkeysize(db.env));

  // Open the databases, drop expired records and recount every site.
  Txn txn(db.env, true);
  if (txn.error()) return fail("cannot start a transaction", txn.error());
  if (int rc = mdb_dbi_open(txn.get(), "data", MDB_CREATE, &db.data))
    return fail("cannot open its data", rc);
  if (int rc = mdb_dbi_open(txn.get(), "count", MDB_CREATE, &db.count))
    return fail("cannot open its counts", rc);
  MDB_dbi plasma = 0;
  if (int rc = mdb_dbi_open(txn.get(), "plasma", MDB_CREATE, &plasma))
    return fail("cannot open its plasma records", rc);
  s->plasma_.env_ = db.env;
  s->plasma_.dbi_ = plasma;
  if (int rc = mdb_drop(txn.get(), db.count, 0)) return fail("cannot reset its counts", rc);
  uint64_t now = wall_clock_ms();
  std::map<std::string, uint64_t> counts;
  size_t dropped = 0;
  MDB_cursor* cur = nullptr;
  if (int rc = mdb_cursor_open(txn.get(), db.data, &cur)) return fail("cannot read it", rc);
  MDB_val k, v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (v.mv_size < 8 || expired(load_u64(v.mv_data), now)) {
      mdb_cursor_del(cur, 0);
      ++dropped;
      continue;
    }
    std::string_view key = view(k);
    counts[std::string(key.substr(0, key.find('\0')))]++;
  }
  mdb_cursor_close(cur);
  for (const auto& [site, n] : counts)
    if (int rc = db.put_count(txn.get(), site, n)) return fail("cannot count its keys", rc);
  if (int rc = txn.commit()) return fail("cannot save it", rc);
  EMBER_INFO(kLog, "spark store opened", {"dir", dir}, {"sites", counts.size()},
             {"expired_dropped", dropped});
  return s;
}

bool SparkStore::valid_key(std::string_view site, std::string_view key) const noexcept {
  return !key.empty() && key.size() <= options_.max_key && key_fits(site, key) &&
         key.find('\0') == std::string_view::npos;
}

std::optional<SparkStore::Value> SparkStore::get(std::string_view site, std::string_view key,
                                                 uint64_t now_ms) {
  if (!valid_key(site, key)) return std::nullopt;
  Txn txn(db_->env, false);
  if (txn.error()) return std::nullopt;
  std::string rk = scoped_key(site, key);
  MDB_val k = val(rk), v;
  if (mdb_get(txn.get(), db_->data, &k, &v) != 0 || v.mv_size < 8) return std::nullopt;
  uint64_t expiry = load_u64(v.mv_data);
  if (expired(expiry, now_ms)) return std::nullopt;
  Value out;
  out.data.assign(static_cast<const char*>(v.mv_data) + 8, v.mv_size - 8);
  if (expiry) out.ttl_left = static_cast<uint32_t>((expiry - now_ms + 999) / 1000);
  return out;
}

size_t SparkStore::purge_expired(void* t, std::string_view site, uint64_t now_ms) {
  auto* txn = static_cast<MDB_txn*>(t);
  MDB_cursor* cur = nullptr;
  if (mdb_cursor_open(txn, db_->data, &cur) != 0) return 0;
  std::string prefix = scoped_key(site, {});
  MDB_val k = val(prefix), v;
  size_t removed = 0;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (!view(k).starts_with(prefix)) break;
    if (v.mv_size < 8 || expired(load_u64(v.mv_data), now_ms)) {
      if (mdb_cursor_del(cur, 0) == 0) ++removed;
    }
  }
  mdb_cursor_close(cur);
  return removed;
}

SparkStatus SparkStore::set(std::string_view site, std::string_view key, std::string_view value,
                            int64_t ttl_seconds, uint64_t now_ms) {
  if (!valid_key(site, key)) return spark_bad_key;
  if (ttl_seconds < 0 || ttl_seconds > options_.max_ttl) return spark_invalid_ttl;
  if (value.size() > options_.max_value) return spark_too_large;
  Txn txn(db_->env, true);
  if (txn.error()) return spark_internal;
  std::string rk = scoped_key(site, key);
  MDB_val k = val(rk), old;
  bool exists = mdb_get(txn.get(), db_->data, &k, &old) == 0;
  uint64_t n = db_->count_of(txn.get(), site);
  if (!exists && n >= options_.max_keys_per_site) {
    n -= std::min<uint64_t>(n, purge_expired(txn.get(), site, now_ms));
    if (n >= options_.max_keys_per_site) return spark_quota;
  }
  std::string rec(8, '\0');
  store_u64(ttl_seconds ? now_ms + static_cast<uint64_t>(ttl_seconds) * 1000 : 0, rec.data());
  rec.append(value);
  MDB_val v = val(rec);
  int rc = mdb_put(txn.get(), db_->data, &k, &v, 0);
  if (rc == 0) rc = db_->put_count(txn.get(), site, exists ? n : n + 1);
  if (rc == 0) rc = txn.commit();
  if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) return spark_quota;
  if (rc != 0) {
    EMBER_ERROR(kLog, "spark write failed", {"site", std::string(site)},
                {"error", mdb_strerror(rc)});
    return spark_internal;
  }
  return spark_ok;
}

void SparkStore::remove(std::string_view site, std::string_view key) {
  if (!valid_key(site, key)) return;
  Txn txn(db_->env, true);
  if (txn.error()) return;
  std::string rk = scoped_key(site, key);
  MDB_val k = val(rk);
  if (mdb_del(txn.get(), db_->data, &k, nullptr) != 0) return;
  uint64_t n = db_->count_of(txn.get(), site);
  if (db_->put_count(txn.get(), site, n ? n - 1 : 0) == 0) (void)txn.commit();
}

std::vector<std::string> SparkStore::list(std::string_view site, uint64_t now_ms, size_t max) {
  std::vector<std::string> keys;
  Txn txn(db_->env, false);
  if (txn.error()) return keys;
  MDB_cursor* cur = nullptr;
  if (mdb_cursor_open(txn.get(), db_->data, &cur) != 0) return keys;
  std::string prefix = scoped_key(site, {});
  MDB_val k = val(prefix), v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && keys.size() < max;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view key = view(k);
    if (!key.starts_with(prefix)) break;
    if (v.mv_size < 8 || expired(load_u64(v.mv_data), now_ms)) continue;
    keys.emplace_back(key.substr(prefix.size()));
  }
  mdb_cursor_close(cur);
  return keys;
}

std::optional<std::string> KvTable::get(std::string_view key) {
  Txn txn(static_cast<MDB_env*>(env_), false);
  if (txn.error()) return std::nullopt;
  MDB_val k = val(key), v;
  if (mdb_get(txn.get(), dbi_, &k, &v) != 0) return std::nullopt;
  return std::string(view(v));
}

int KvTable::update(std::string_view key, const Change& change) {
  Txn txn(static_cast<MDB_env*>(env_), true);
  if (txn.error()) return txn.error();
  MDB_val k = val(key), v;
  std::optional<std::string_view> old;
  if (mdb_get(txn.get(), dbi_, &k, &v) == 0) old = view(v);
  std::optional<std::string> next = change(old);
  if (!next) return 0;
  MDB_val nv = val(*next);
  int rc = mdb_put(txn.get(), dbi_, &k, &nv, 0);
  return rc ? rc : txn.commit();
}

void KvTable::scan(std::string_view prefix,
                   const std::function<bool(std::string_view, std::string_view)>& fn) {
  Txn txn(static_cast<MDB_env*>(env_), false);
  if (txn.error()) return;
  MDB_cursor* cur = nullptr;
  if (mdb_cursor_open(txn.get(), dbi_, &cur) != 0) return;
  MDB_val k = val(prefix), v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (!view(k).starts_with(prefix) || !fn(view(k), view(v))) break;
  }
  mdb_cursor_close(cur);
}

void SparkStore::sync() {
  if (db_ && db_->env) mdb_env_sync(db_->env, 1);
}

}  // namespace ember::flare::wasm
