// Plasma's CRDTs: merging states from several nodes in any order, any
// number of times, ends in the same state (what replication will rely on),
// and two stores that exchange their entries converge.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "handlers/flare/wasm/plasma.hpp"
#include "handlers/flare/wasm/spark.hpp"

namespace fw = ember::flare::wasm;
using fw::PlasmaEntry;

namespace {

PlasmaEntry reg(uint64_t clock, uint64_t node, std::string value, bool deleted = false) {
  PlasmaEntry e;
  e.kind = PlasmaEntry::reg;
  e.clock = clock;
  e.node = node;
  e.value = std::move(value);
  e.deleted = deleted;
  return e;
}

PlasmaEntry counter(uint64_t clock, uint64_t node,
                    std::map<uint64_t, std::pair<uint64_t, uint64_t>> inc) {
  PlasmaEntry e;
  e.kind = PlasmaEntry::counter;
  e.clock = clock;
  e.node = node;
  e.increments = std::move(inc);
  return e;
}

bool same(const PlasmaEntry& a, const PlasmaEntry& b) {
  return a.encode() == b.encode();
}

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/ember-plasma-test-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST(PlasmaEntry, EncodeDecodeRoundTripsAndRejectsGarbage) {
  for (const PlasmaEntry& e :
       {reg(5, 1, "value"), reg(7, 2, "", true), counter(0, 0, {{1, {10, 3}}, {9, {0, 4}}})}) {
    auto back = PlasmaEntry::decode(e.encode());
    ASSERT_TRUE(back);
    EXPECT_TRUE(same(*back, e));
  }
  std::string good = reg(5, 1, "value").encode();
  EXPECT_FALSE(PlasmaEntry::decode(""));
  EXPECT_FALSE(PlasmaEntry::decode(good.substr(0, good.size() - 1)));  // truncated
  EXPECT_FALSE(PlasmaEntry::decode(good + "x"));                       // trailing bytes
  std::string bad_kind = good;
  bad_kind[0] = 9;
  EXPECT_FALSE(PlasmaEntry::decode(bad_kind));
}

TEST(PlasmaEntry, MergeIsCommutativeAssociativeAndIdempotent) {
  std::vector<PlasmaEntry> states = {
      reg(10, 1, "a"),
      reg(10, 2, "b"),  // same clock: the larger node wins
      reg(12, 1, "", true),
      counter(0, 0, {{1, {5, 0}}}),
      counter(0, 0, {{2, {3, 1}}}),
      counter(0, 0, {{1, {7, 2}}}),
      counter(11, 3, {{3, {1, 0}}}),
  };
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<PlasmaEntry> order = states;
    std::shuffle(order.begin(), order.end(), rng);
    PlasmaEntry left = order[0], right = order.back();
    for (size_t i = 1; i < order.size(); ++i)
      left = PlasmaEntry::merge(left, order[i]);
    for (size_t i = order.size() - 1; i-- > 0;)
      right = PlasmaEntry::merge(order[i], right);
    EXPECT_TRUE(same(left, right));
    EXPECT_TRUE(same(PlasmaEntry::merge(left, left), left));
    EXPECT_TRUE(same(PlasmaEntry::merge(left, order[round % order.size()]), left));
  }
  // The latest write overall is the tombstone at clock 12.
  PlasmaEntry all = states[0];
  for (const auto& s : states)
    all = PlasmaEntry::merge(all, s);
  EXPECT_TRUE(all.deleted);
}

TEST(PlasmaEntry, CountersOfTheSameEpochAddUpPerNode) {
  PlasmaEntry a = counter(0, 0, {{1, {5, 1}}});
  PlasmaEntry b = counter(0, 0, {{2, {10, 0}}});
  PlasmaEntry a_later = counter(0, 0, {{1, {8, 1}}});
  PlasmaEntry m = PlasmaEntry::merge(PlasmaEntry::merge(a, b), a_later);
  EXPECT_EQ(m.counter_value(), 8 - 1 + 10);
}

TEST(HybridClock, NeverGoesBackwardsAndFollowsRemoteClocks) {
  fw::HybridClock c;
  uint64_t a = c.tick(1000);
  uint64_t b = c.tick(999);  // the wall clock stepped back
  EXPECT_GT(b, a);
  c.observe(uint64_t(5000) << 16);
  EXPECT_GT(c.tick(1001), uint64_t(5000) << 16);
}

TEST(PlasmaStore, TwoNodesThatExchangeEntriesConverge) {
  TempDir d1, d2;
  auto s1 = fw::SparkStore::open({.dir = d1.path});
  auto s2 = fw::SparkStore::open({.dir = d2.path});
  ASSERT_TRUE(s1 && s2);
  fw::PlasmaStore p1(**s1, 1, 512, 65536), p2(**s2, 2, 512, 65536);
  // Concurrent work on both nodes.
  ASSERT_EQ(*p1.add("site", "hits", 5), 5);
  ASSERT_EQ(*p2.add("site", "hits", 7), 7);
  ASSERT_EQ(*p2.add("site", "hits", -2), 5);
  ASSERT_EQ(p1.set("site", "owner", "node one"), fw::plasma_ok);
  ASSERT_EQ(p2.set("site", "owner", "node two"), fw::plasma_ok);  // later clock: wins
  ASSERT_EQ(p1.set("site", "gone", "x"), fw::plasma_ok);
  ASSERT_EQ(p1.remove("site", "gone"), fw::plasma_ok);
  ASSERT_EQ(p2.set("other-site", "k", "v"), fw::plasma_ok);
  // Exchange every entry both ways.
  for (const char* key : {"hits", "owner", "gone"}) {
    auto e1 = p1.entry("site", key);
    auto e2 = p2.entry("site", key);
    if (e2) {
      ASSERT_EQ(p1.merge("site", key, *e2), fw::plasma_ok);
    }
    if (e1) {
      ASSERT_EQ(p2.merge("site", key, *e1), fw::plasma_ok);
    }
  }
  for (auto* p : {&p1, &p2}) {
    EXPECT_EQ(p->get("site", "hits"), std::optional<std::string>("10"));
    EXPECT_EQ(p->get("site", "owner"), std::optional<std::string>("node two"));
    EXPECT_EQ(p->get("site", "gone"), std::nullopt);
    EXPECT_EQ(p->list("site", 100), (std::vector<std::string>{"hits", "owner"}));
  }
  EXPECT_EQ(p1.get("other-site", "k"), std::nullopt);  // sites stay apart
  // After a merge the local clock has seen the remote one: a new write wins.
  ASSERT_EQ(p1.set("site", "owner", "node one again"), fw::plasma_ok);
  auto e = p1.entry("site", "owner");
  ASSERT_EQ(p2.merge("site", "owner", *e), fw::plasma_ok);
  EXPECT_EQ(p2.get("site", "owner"), std::optional<std::string>("node one again"));
}

// LMDB keys hold at most 511 bytes and a record's key is site NUL key: how
// long a key may be depends on the site, and past that it is a bad key on
// every operation (never an internal error from LMDB).
TEST(SparkStore, KeysLongerThanLmdbTakesAreBadKeysForTheirSite) {
  TempDir d;
  auto s = fw::SparkStore::open({.dir = d.path});
  ASSERT_TRUE(s);
  fw::PlasmaStore p(**s, 1, 512, 65536);
  std::string site(100, 's');
  std::string fits(410, 'k'), over(411, 'k');
  EXPECT_EQ((*s)->set(site, fits, "v", 0, 1), fw::spark_ok);
  EXPECT_EQ((*s)->set(site, over, "v", 0, 1), fw::spark_bad_key);
  EXPECT_EQ((*s)->set("t", over, "v", 0, 1), fw::spark_ok);  // a shorter site leaves room
  EXPECT_FALSE((*s)->get(site, over, 1));
  EXPECT_EQ(p.set(site, fits, "v"), fw::plasma_ok);
  EXPECT_EQ(p.set(site, over, "v"), fw::plasma_bad_key);
  EXPECT_EQ(p.remove(site, over), fw::plasma_bad_key);
  EXPECT_FALSE(p.add(site, over, 1));
  EXPECT_EQ(*p.add(site, std::string(410, 'c'), 1), 1);
}
