#include "handlers/flare/wasm/plasma.hpp"

#include <lmdb.h>

#include <cstring>
#include <tuple>

#include "handlers/flare/wasm/spark.hpp"

namespace ember::flare::wasm {
namespace {

void put_u64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads little-endian integers off the front of a view.
struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t u(int bytes) {
    if (in.size() < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i)
      v = v << 8 | static_cast<uint8_t>(in[static_cast<size_t>(i)]);
    in.remove_prefix(static_cast<size_t>(bytes));
    return v;
  }
};

// Who wrote last: the later clock, then the larger node id.
bool later(const PlasmaEntry& a, const PlasmaEntry& b) {
  return std::tie(a.clock, a.node) > std::tie(b.clock, b.node);
}

}  // namespace

uint64_t HybridClock::tick(uint64_t now_ms) noexcept {
  uint64_t last = last_.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t next = std::max(now_ms << 16, last + 1);
    if (last_.compare_exchange_weak(last, next, std::memory_order_relaxed)) return next;
  }
}

void HybridClock::observe(uint64_t remote) noexcept {
  uint64_t last = last_.load(std::memory_order_relaxed);
  while (remote > last && !last_.compare_exchange_weak(last, remote, std::memory_order_relaxed)) {
  }
}

int64_t PlasmaEntry::counter_value() const noexcept {
  __int128 sum = 0;
  for (const auto& [node, pn] : increments)
    sum += static_cast<__int128>(pn.first) - static_cast<__int128>(pn.second);
  if (sum > INT64_MAX) return INT64_MAX;
  if (sum < INT64_MIN) return INT64_MIN;
  return static_cast<int64_t>(sum);
}

std::string PlasmaEntry::encode() const {
  std::string out;
  out.push_back(static_cast<char>(kind));
  put_u64(&out, clock);
  put_u64(&out, node);
  out.push_back(deleted ? 1 : 0);
  put_u32(&out, static_cast<uint32_t>(value.size()));
  out.append(value);
  put_u32(&out, static_cast<uint32_t>(increments.size()));
  for (const auto& [n, pn] : increments) {
    put_u64(&out, n);
    put_u64(&out, pn.first);
    put_u64(&out, pn.second);
  }
  return out;
}

std::optional<PlasmaEntry> PlasmaEntry::decode(std::string_view bytes) {
  Reader r{bytes};
  PlasmaEntry e;
  uint64_t kind = r.u(1);
  if (kind != reg && kind != counter) return std::nullopt;
  e.kind = static_cast<Kind>(kind);
  e.clock = r.u(8);
  e.node = r.u(8);
  e.deleted = r.u(1) != 0;
  uint64_t len = r.u(4);
  if (!r.ok || r.in.size() < len) return std::nullopt;
  e.value.assign(r.in.substr(0, len));
  r.in.remove_prefix(len);
  uint64_t n = r.u(4);
  for (uint64_t i = 0; i < n && r.ok; ++i) {
    uint64_t node = r.u(8), p = r.u(8), m = r.u(8);
    e.increments[node] = {p, m};
  }
  if (!r.ok || !r.in.empty()) return std::nullopt;
  return e;
}

PlasmaEntry PlasmaEntry::merge(const PlasmaEntry& a, const PlasmaEntry& b) {
  if (later(a, b)) return a;
  if (later(b, a)) return b;
  // The same write (or, for counters, the same counter): per-node maxima.
  PlasmaEntry out = a;
  for (const auto& [node, pn] : b.increments) {
    auto& mine = out.increments[node];
    mine.first = std::max(mine.first, pn.first);
    mine.second = std::max(mine.second, pn.second);
  }
  return out;
}

PlasmaStore::PlasmaStore(SparkStore& store, uint64_t node_id, size_t max_key, size_t max_value)
    : store_(store), node_(node_id), max_key_(max_key), max_value_(max_value) {}

bool PlasmaStore::valid_key(std::string_view site, std::string_view key) const noexcept {
  return !key.empty() && key.size() <= max_key_ && store_.key_fits(site, key) &&
         key.find('\0') == std::string_view::npos;
}

std::optional<PlasmaEntry> PlasmaStore::entry(std::string_view site, std::string_view key) {
  if (!valid_key(site, key)) return std::nullopt;
  auto bytes = store_.plasma_table().get(scoped_key(site, key));
  return bytes ? PlasmaEntry::decode(*bytes) : std::nullopt;
}

std::optional<std::string> PlasmaStore::get(std::string_view site, std::string_view key) {
  auto e = entry(site, key);
  if (!e || e->deleted) return std::nullopt;
  if (e->kind == PlasmaEntry::counter) return std::to_string(e->counter_value());
  return e->value;
}

template <class Change>
PlasmaStatus PlasmaStore::update(std::string_view site, std::string_view key, Change change) {
  if (!valid_key(site, key)) return plasma_bad_key;
  bool undecodable = false;
  int rc = store_.plasma_table().update(
      scoped_key(site, key),
      [&](std::optional<std::string_view> old) -> std::optional<std::string> {
        std::optional<PlasmaEntry> e;
        if (old) {
          e = PlasmaEntry::decode(*old);
          if (!e) {
            undecodable = true;
            return std::nullopt;
          }
        }
        std::optional<PlasmaEntry> next = change(e);
        if (!next) return std::nullopt;
        return next->encode();
      });
  if (undecodable) return plasma_internal;
  if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) return plasma_too_large;
  return rc == 0 ? plasma_ok : plasma_internal;
}

PlasmaStatus PlasmaStore::set(std::string_view site, std::string_view key, std::string_view value) {
  if (value.size() > max_value_) return plasma_too_large;
  uint64_t clock = clock_.tick(wall_clock_ms());
  return update(site, key, [&](const std::optional<PlasmaEntry>&) {
    PlasmaEntry e;
    e.kind = PlasmaEntry::reg;
    e.clock = clock;
    e.node = node_;
    e.value.assign(value);
    return std::optional<PlasmaEntry>(std::move(e));
  });
}

PlasmaStatus PlasmaStore::remove(std::string_view site, std::string_view key) {
  uint64_t clock = clock_.tick(wall_clock_ms());
  return update(site, key, [&](const std::optional<PlasmaEntry>& old) {
    if (!old || old->deleted) return std::optional<PlasmaEntry>();  // nothing to delete
    PlasmaEntry e;
    e.kind = PlasmaEntry::reg;
    e.clock = clock;
    e.node = node_;
    e.deleted = true;
    return std::optional<PlasmaEntry>(std::move(e));
  });
}

std::optional<int64_t> PlasmaStore::add(std::string_view site, std::string_view key,
                                        int64_t delta) {
  std::optional<int64_t> result;
  uint64_t fresh = 0;
  PlasmaStatus st = update(site, key, [&](const std::optional<PlasmaEntry>& old) {
    PlasmaEntry e;
    if (old && old->kind == PlasmaEntry::counter && !old->deleted) {
      e = *old;
    } else {
      e.kind = PlasmaEntry::counter;
      // A counter on a missing key starts in the shared epoch (0, 0), so that
      // nodes creating it at once merge their counts; over a register or a
      // tombstone it needs a later write to win.
      if (old) {
        if (!fresh) fresh = clock_.tick(wall_clock_ms());
        e.clock = fresh;
        e.node = node_;
      }
    }
    auto& pn = e.increments[node_];
    __int128 next = static_cast<__int128>(e.counter_value()) + delta;
    if (next > INT64_MAX || next < INT64_MIN) return std::optional<PlasmaEntry>();
    uint64_t mag = delta < 0 ? 0 - static_cast<uint64_t>(delta) : static_cast<uint64_t>(delta);
    uint64_t& side = delta < 0 ? pn.second : pn.first;
    if (side > UINT64_MAX - mag) return std::optional<PlasmaEntry>();
    side += mag;
    result = static_cast<int64_t>(next);
    return std::optional<PlasmaEntry>(std::move(e));
  });
  if (st != plasma_ok) return std::nullopt;
  return result;
}

std::vector<std::string> PlasmaStore::list(std::string_view site, size_t max) {
  std::vector<std::string> keys;
  std::string prefix = scoped_key(site, {});
  store_.plasma_table().scan(prefix, [&](std::string_view k, std::string_view v) {
    auto e = PlasmaEntry::decode(v);
    if (e && !e->deleted) keys.emplace_back(k.substr(prefix.size()));
    return keys.size() < max;
  });
  return keys;
}

PlasmaStatus PlasmaStore::merge(std::string_view site, std::string_view key,
                                const PlasmaEntry& remote) {
  clock_.observe(remote.clock);
  return update(site, key, [&](const std::optional<PlasmaEntry>& old) {
    return std::optional<PlasmaEntry>(old ? PlasmaEntry::merge(*old, remote) : remote);
  });
}

}  // namespace ember::flare::wasm
