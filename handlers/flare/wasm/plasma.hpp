// Plasma: the CRDT key-value store behind flaron/v1's plasma_* imports, kept
// per site in the same LMDB environment as spark (a database of its own).
//
// Every key holds one CRDT, so that stores on several nodes can later merge
// each other's states without coordination (merge() is that entry point):
//  * a register (plasma_set / plasma_delete): last writer wins, ordered by a
//    hybrid logical clock and then the node id; a delete is a tombstone;
//  * a PN-counter (plasma_increment / plasma_decrement): per node, the sum
//    of increments and the sum of decrements; its value is their difference.
// A key changes kind when a newer write of the other kind arrives (the
// register's or the counter's clock decides).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/error.hpp"

namespace ember::flare::wasm {

// A hybrid logical clock: physical ms in the high 48 bits, a counter in the
// low 16; tick() never goes backwards and stays close to the wall clock.
class HybridClock {
 public:
  uint64_t tick(uint64_t now_ms) noexcept;
  void observe(uint64_t remote) noexcept;  // after merging a remote state

 private:
  std::atomic<uint64_t> last_{0};
};

// One key's state (what merge() exchanges).
struct PlasmaEntry {
  enum Kind : uint8_t { reg = 1, counter = 2 };
  Kind kind = reg;
  uint64_t clock = 0;  // of the last write that set the kind (and a register's value)
  uint64_t node = 0;   // the node of that write (ties)
  bool deleted = false;
  std::string value;                                             // register
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> increments;  // counter: node -> (P, N)

  int64_t counter_value() const noexcept;
  std::string encode() const;
  static std::optional<PlasmaEntry> decode(std::string_view bytes);
  // The join of two states: commutative, associative, idempotent.
  static PlasmaEntry merge(const PlasmaEntry& a, const PlasmaEntry& b);
};

// Plasma statuses of flaron/v1 §7.2.
enum PlasmaStatus : int {
  plasma_ok = 0,
  plasma_unavailable = 1,
  plasma_write_limit = 2,
  plasma_too_large = 3,
  plasma_bad_key = 4,
  plasma_no_capability = 5,
  plasma_internal = 6,
};

class SparkStore;

// Runs on the store's LMDB environment; thread-safe like it.
class PlasmaStore {
 public:
  PlasmaStore(SparkStore& store, uint64_t node_id, size_t max_key, size_t max_value);

  // A register's value, or a counter's as decimal text; nullopt when missing.
  std::optional<std::string> get(std::string_view site, std::string_view key);
  PlasmaStatus set(std::string_view site, std::string_view key, std::string_view value);
  PlasmaStatus remove(std::string_view site, std::string_view key);
  // The counter's new value; nullopt for a bad key, a value that would leave
  // int64, or a failed write.
  std::optional<int64_t> add(std::string_view site, std::string_view key, int64_t delta);
  std::vector<std::string> list(std::string_view site, size_t max);
  // Folds a remote node's state for the key into ours.
  PlasmaStatus merge(std::string_view site, std::string_view key, const PlasmaEntry& remote);
  std::optional<PlasmaEntry> entry(std::string_view site, std::string_view key);

  uint64_t node_id() const noexcept { return node_; }

 private:
  template <class Change>
  PlasmaStatus update(std::string_view site, std::string_view key, Change change);
  bool valid_key(std::string_view site, std::string_view key) const noexcept;

  SparkStore& store_;
  uint64_t node_;
  size_t max_key_, max_value_;
  HybridClock clock_;
};

}  // namespace ember::flare::wasm
