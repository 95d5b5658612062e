// Routing cases: bool, integer and string never equal each other.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "ember/queue_case.hpp"

namespace ember::queue {
namespace {

TEST(Case, KindsAreDistinct) {
  Case t(true), one(1), s1("1"), strue("true"), f(false), zero(0), empty("");
  EXPECT_NE(t, one);
  EXPECT_NE(t, s1);
  EXPECT_NE(one, s1);
  EXPECT_NE(t, strue);
  EXPECT_NE(f, zero);
  EXPECT_NE(zero, empty);
  EXPECT_NE(f, empty);
  EXPECT_EQ(t, Case(true));
  EXPECT_EQ(one, Case(std::int64_t{1}));
  EXPECT_EQ(one, Case(static_cast<short>(1)));
  EXPECT_EQ(one, Case(1u));
  EXPECT_EQ(s1, Case(std::string("1")));
  EXPECT_EQ(s1, Case(std::string_view("1")));
}

TEST(Case, StringLiteralIsAStringNotABool) {
  Case c("yes");
  EXPECT_TRUE(c.is_string());
  EXPECT_EQ(c.as_string(), "yes");
}

TEST(Case, Accessors) {
  EXPECT_TRUE(Case(false).is_bool());
  EXPECT_FALSE(Case(false).as_bool());
  EXPECT_EQ(Case(-5).as_integer(), -5);
  EXPECT_EQ(Case(INT64_MIN).as_integer(), INT64_MIN);
  EXPECT_EQ(Case::integer(INT64_MAX).kind(), Case::Kind::Integer);
  EXPECT_EQ(Case::string("x").kind(), Case::Kind::String);
  EXPECT_EQ(Case::boolean(true).kind(), Case::Kind::Bool);
}

TEST(Case, HashAgreesWithEqualityAndSeparatesKinds) {
  std::unordered_set<Case> set;
  for (Case c : {Case(true), Case(false), Case(1), Case(0), Case("1"), Case("0"), Case("true"),
                 Case("false"), Case(""), Case(-1)})
    EXPECT_TRUE(set.insert(c).second) << c.to_json();
  EXPECT_EQ(set.size(), 10u);
  EXPECT_FALSE(set.insert(Case(1)).second);
  EXPECT_FALSE(set.insert(Case("true")).second);
  EXPECT_EQ(Case("abc").hash(), Case(std::string("abc")).hash());
  EXPECT_NE(Case(true).hash(), Case(1).hash());
  EXPECT_NE(Case(1).hash(), Case("1").hash());
  EXPECT_NE(Case(0).hash(), Case(false).hash());
}

TEST(Case, RoutingLookup) {
  std::unordered_map<Case, std::string> routes{{true, "t"}, {1, "i"}, {"1", "s"}};
  EXPECT_EQ(routes.at(Case(true)), "t");
  EXPECT_EQ(routes.at(Case(1)), "i");
  EXPECT_EQ(routes.at(Case("1")), "s");
  EXPECT_EQ(routes.count(Case(false)), 0u);
  EXPECT_EQ(routes.count(Case("true")), 0u);
}

TEST(Case, ToJson) {
  EXPECT_EQ(Case(true).to_json(), "true");
  EXPECT_EQ(Case(false).to_json(), "false");
  EXPECT_EQ(Case(-42).to_json(), "-42");
  EXPECT_EQ(Case("1").to_json(), "\"1\"");
  EXPECT_EQ(Case("a\"b\\c\nd\x01").to_json(), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

}  // namespace
}  // namespace ember::queue
