// AttributePublisher: flamepy's limits, all-or-nothing publishing, a set that
// each reply drains, and use from many threads at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "ember/flame.hpp"

namespace ember::flame {
namespace {

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(AttributePublisher, TakeDrainsAndRepeatsCollapse) {
  AttributePublisher p;
  EXPECT_EQ(p.pending(), 0u);
  ASSERT_TRUE(p.publish({"a", "b", "a"}));
  ASSERT_TRUE(p.publish({"b", "c"}));
  EXPECT_EQ(p.pending(), 3u);
  EXPECT_EQ(sorted(p.take()), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(p.pending(), 0u);
  EXPECT_TRUE(p.take().empty());
  ASSERT_TRUE(p.publish(std::vector<std::string>{"a"}));  // taken ones may come again
  EXPECT_EQ(p.take(), std::vector<std::string>{"a"});
}

TEST(AttributePublisher, BinaryAttributesAreBytes) {
  AttributePublisher p;
  std::string bin("\x00\xff\x00", 3);
  ASSERT_TRUE(p.publish({std::string_view(bin)}));
  EXPECT_EQ(p.take(), std::vector<std::string>{bin});
}

TEST(AttributePublisher, AttributeOverItsLimitIsRefusedAndNothingIsAdded) {
  AttributePublisher p;
  std::string big(AttributePublisher::kMaxAttributeBytes + 1, 'x');
  std::string fits(AttributePublisher::kMaxAttributeBytes, 'y');
  Status s = p.publish({std::string_view("ok"), std::string_view(big)});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind(), FlameError::Kind::InvalidConfig);
  EXPECT_NE(s.error().message().find("attribute 1 is 257 bytes"), std::string::npos)
      << s.error().message();
  EXPECT_EQ(p.pending(), 0u);
  EXPECT_TRUE(p.publish({std::string_view(fits)}));
}

TEST(AttributePublisher, CountLimitAppliesToWhatWaits) {
  AttributePublisher p;
  std::vector<std::string> many;
  for (size_t i = 0; i < AttributePublisher::kMaxAttributes; ++i)
    many.push_back(std::string("k").append(std::to_string(i)));
  ASSERT_TRUE(p.publish(many));
  ASSERT_TRUE(p.publish({"k0"}));  // a repeat adds nothing, so it fits
  Status s = p.publish({"one-more"});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("at most 1024"), std::string::npos) << s.error().message();
  EXPECT_EQ(p.pending(), AttributePublisher::kMaxAttributes);
  p.take();
  EXPECT_TRUE(p.publish({"one-more"}));
}

TEST(AttributePublisher, TotalBytesLimit) {
  AttributePublisher p;
  // 256 attributes of 256 bytes: exactly 64 KiB.
  std::vector<std::string> full;
  for (int i = 0; i < 256; ++i) {
    std::string a(AttributePublisher::kMaxAttributeBytes, 'a');
    a.replace(0, 4, std::to_string(1000 + i));
    full.push_back(a);
  }
  ASSERT_TRUE(p.publish(full));
  Status s = p.publish({"x"});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("65537 bytes"), std::string::npos) << s.error().message();
  EXPECT_EQ(p.pending(), 256u);
}

TEST(AttributePublisher, ManyThreadsPublishWhileOneTakes) {
  AttributePublisher p;
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::string> seen;
  std::atomic<int> running{kThreads};
  std::thread taker([&] {
    while (running.load() > 0 || p.pending() > 0)
      for (auto& a : p.take())
        seen.push_back(std::move(a));
  });
  std::vector<std::thread> publishers;
  for (int t = 0; t < kThreads; ++t)
    publishers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string a =
            std::string("t").append(std::to_string(t)).append("-").append(std::to_string(i));
        ASSERT_TRUE(p.publish({std::string_view(a)}));
      }
      --running;
    });
  for (auto& th : publishers)
    th.join();
  taker.join();
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), size_t{kThreads * kEach});
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
}

}  // namespace
}  // namespace ember::flame
