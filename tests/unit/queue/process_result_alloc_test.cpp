// A process() that returns a few results costs no heap allocation: the
// results stay inside the ProcessResult value on their way to the runtime.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "ember/queue.hpp"
#include "tests/unit/support/allocation_counter.hpp"

namespace ember::queue {
namespace {

using ember::test::count_allocations;

TEST(ProcessResultAllocations, UpToFourResultsAllocateNothing) {
  ProcessFn process = [](uint64_t request, const ReadFileFn&, const WriteFileFn&,
                         Database&) -> ProcessResult {
    return {{request, true}, {request + 1, int64_t{7}}, {request + 2, "short"}};
  };
  auto db = Database::deferred(Database::Settings{});  // never used: connects on first use
  ReadFileFn read_file;
  WriteFileFn write_file;
  ProcessResult results;
  // As the runtime does it: one call, the value moved into place, handed on.
  EXPECT_EQ(count_allocations([&] {
              results = process(42, read_file, write_file, *db);
              ProcessResult handed_on(std::move(results));
              results = std::move(handed_on);
            }),
            0u);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].first, 42u);
  EXPECT_EQ(results[2].second, Case("short"));
}

TEST(ProcessResultAllocations, AFifthResultMovesToTheHeapOnce) {
  ProcessResult results;
  EXPECT_EQ(count_allocations([&] {
              for (uint64_t i = 0; i < 8; ++i)
                results.emplace_back(i, true);
            }),
            1u);  // capacity 4 → 8 in one step
  EXPECT_EQ(results.size(), 8u);
}

}  // namespace
}  // namespace ember::queue
