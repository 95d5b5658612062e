// Spark: the per-site key-value store with TTL behind flaron/v1's spark_*
// imports, kept on disk in LMDB so that it survives restarts.
//
// One store per server, shared by every loop: LMDB readers never block, and
// writers take LMDB's write lock for one short transaction. The file is
// written without fsync per commit (MDB_NOSYNC): a restart of the process
// keeps every write, a power loss may lose the last ones; sync() (called when
// the server drains) flushes them.
//
// Keys are scoped by site (a route's host). A value is stored with its expiry
// (ms since the epoch, 0 = none); expired values read as missing and are
// removed when the site needs room and when the store opens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/error.hpp"

namespace ember::flare::wasm {

struct SparkOptions {
  std::string dir;                 // LMDB environment directory (created)
  uint64_t max_size = 1ull << 30;  // map size: the most the file may hold
  size_t max_key = 512;            // bytes
  size_t max_value = 64 * 1024;    // bytes
  uint64_t max_keys_per_site = 100'000;
  uint32_t max_ttl = 10u * 365 * 86'400;  // seconds
};

// Spark statuses of flaron/v1 §7.1.
enum SparkStatus : int {
  spark_ok = 0,
  spark_invalid_ttl = 1,
  spark_too_large = 2,
  spark_write_limit = 3,
  spark_quota = 4,
  spark_unavailable = 5,
  spark_internal = 6,
  spark_read_limit = 7,
  spark_bad_key = 8,
  spark_no_capability = 9,
};

// Milliseconds since the epoch (the clock of expiries and plasma writes).
uint64_t wall_clock_ms();

// The record key of `key` in `site`: site NUL key (keys hold no NUL).
std::string scoped_key(std::string_view site, std::string_view key);

// Another named database in the store's LMDB environment, for the stores
// that share its file (plasma). Thread-safe like the store.
class KvTable {
 public:
  std::optional<std::string> get(std::string_view key);
  // Read-modify-write in one write transaction: `change` sees the current
  // bytes (nullopt when absent) and returns the new ones (nullopt: leave it).
  // 0, or an LMDB error code (MDB_MAP_FULL when the file is full).
  using Change = std::function<std::optional<std::string>(std::optional<std::string_view>)>;
  int update(std::string_view key, const Change& change);
  // Records whose key starts with `prefix`, in key order, until fn says stop.
  void scan(std::string_view prefix,
            const std::function<bool(std::string_view key, std::string_view value)>& fn);

 private:
  friend class SparkStore;
  void* env_ = nullptr;
  unsigned dbi_ = 0;
};

class SparkStore {
 public:
  static Result<std::unique_ptr<SparkStore>> open(SparkOptions options);
  ~SparkStore();
  SparkStore(const SparkStore&) = delete;
  SparkStore& operator=(const SparkStore&) = delete;

  struct Value {
    std::string data;
    uint32_t ttl_left = 0;  // seconds, rounded up; 0 = no expiry
  };
  // Missing, expired and unreadable keys are all nullopt.
  std::optional<Value> get(std::string_view site, std::string_view key, uint64_t now_ms);
  // ttl 0 = no expiry.
  SparkStatus set(std::string_view site, std::string_view key, std::string_view value,
                  int64_t ttl_seconds, uint64_t now_ms);
  void remove(std::string_view site, std::string_view key);
  // Live keys of the site, in order, at most `max`.
  std::vector<std::string> list(std::string_view site, uint64_t now_ms, size_t max);
  void sync();
  KvTable& plasma_table() noexcept { return plasma_; }
  // Whether scoped_key(site, key) fits in an LMDB key (at most 511 bytes).
  bool key_fits(std::string_view site, std::string_view key) const noexcept {
    return site.size() + 1 + key.size() <= max_record_key_;
  }

  const SparkOptions& options() const noexcept { return options_; }

 private:
  struct Lmdb;
  explicit SparkStore(SparkOptions options);
  bool valid_key(std::string_view site, std::string_view key) const noexcept;
  size_t purge_expired(void* txn, std::string_view site, uint64_t now_ms);
  SparkOptions options_;
  std::unique_ptr<Lmdb> db_;
  KvTable plasma_;
  size_t max_record_key_ = 511;  // mdb_env_get_maxkeysize
};

}  // namespace ember::flare::wasm
