// core/fiber.hpp: tasks that suspend and resume in order, reuse of one
// fiber for task after task, deep stacks, exceptions kept inside the task.
#include "core/fiber.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace ember {
namespace {

struct Steps {
  std::vector<std::string> log;
  Fiber* fiber = nullptr;
  int suspensions = 0;
};

void three_steps(void* arg) {
  auto* s = static_cast<Steps*>(arg);
  for (int i = 0; i < s->suspensions; ++i) {
    EXPECT_EQ(Fiber::current(), s->fiber);
    s->log.push_back("step " + std::to_string(i));
    s->fiber->suspend();
  }
  s->log.push_back("done");
}

TEST(Fiber, SuspendsAndResumesInOrder) {
  Fiber fiber;
  Steps s{{}, &fiber, 3};
  EXPECT_EQ(Fiber::current(), nullptr);
  EXPECT_FALSE(fiber.run(&three_steps, &s));
  EXPECT_TRUE(fiber.suspended());
  EXPECT_EQ(Fiber::current(), nullptr);
  s.log.push_back("caller");
  EXPECT_FALSE(fiber.resume());
  EXPECT_FALSE(fiber.resume());
  EXPECT_TRUE(fiber.resume());
  EXPECT_FALSE(fiber.suspended());
  EXPECT_EQ(s.log, (std::vector<std::string>{"step 0", "caller", "step 1", "step 2", "done"}));
}

TEST(Fiber, RunsOneTaskAfterAnother) {
  Fiber fiber;
  for (int round = 0; round < 1000; ++round) {
    Steps s{{}, &fiber, round % 3};
    bool done = fiber.run(&three_steps, &s);
    while (!done)
      done = fiber.resume();
    ASSERT_EQ(s.log.size(), static_cast<size_t>(round % 3 + 1));
  }
}

TEST(Fiber, TwoFibersInterleave) {
  Fiber a, b;
  Steps sa{{}, &a, 2}, sb{{}, &b, 2};
  EXPECT_FALSE(a.run(&three_steps, &sa));
  EXPECT_FALSE(b.run(&three_steps, &sb));
  EXPECT_FALSE(a.resume());
  EXPECT_FALSE(b.resume());
  EXPECT_TRUE(b.resume());
  EXPECT_TRUE(a.resume());
  EXPECT_EQ(sa.log, sb.log);
}

int depth(int n, volatile char* prev) {
  volatile char frame[512];
  frame[0] = static_cast<char>(n);
  if (prev) frame[1] = prev[0];
  return n == 0 ? frame[0] : depth(n - 1, frame) + 1;
}

TEST(Fiber, HasADeepStack) {
  Fiber fiber;  // 8 MiB by default: 4 MiB of frames fit
  int result = 0;
  struct Arg {
    int* out;
  } arg{&result};
  EXPECT_TRUE(fiber.run([](void* p) { *static_cast<Arg*>(p)->out = depth(8000, nullptr); }, &arg));
  EXPECT_EQ(result, 8000);
}

TEST(Fiber, ExceptionsStayInsideTheTask) {
  Fiber fiber;
  std::string caught;
  EXPECT_FALSE(fiber.run(
      [](void* p) {
        try {
          Fiber::current()->suspend();
          throw std::runtime_error("inside");
        } catch (const std::exception& e) {
          *static_cast<std::string*>(p) = e.what();
        }
      },
      &caught));
  EXPECT_EQ(caught, "");
  try {
    throw std::logic_error("outside, while the task is suspended");
  } catch (const std::logic_error&) {
  }
  EXPECT_TRUE(fiber.resume());
  EXPECT_EQ(caught, "inside");
}

}  // namespace
}  // namespace ember
