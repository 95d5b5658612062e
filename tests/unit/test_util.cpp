#include "tests/unit/test_util.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "ember/log.hpp"

namespace ember::test {

std::vector<Split> all_splits(const Bytes& input) {
  std::vector<Split> out;
  out.push_back({"whole", {input}});
  size_t n = input.size();
  for (size_t at = 1; at < n; ++at)
    out.push_back(
        {"split at " + std::to_string(at), {input.slice(0, at), input.slice(at, n - at)}});
  for (size_t size = 1; size < n; ++size) {
    Split s{"chunks of " + std::to_string(size), {}};
    for (size_t off = 0; off < n; off += size)
      s.chunks.push_back(input.slice(off, std::min(size, n - off)));
    out.push_back(std::move(s));
  }
  return out;
}

std::string flatten(const IoChain& chain) {
  std::string s;
  s.reserve(chain.size());
  for (size_t i = 0; i < chain.iov_count(); ++i) {
    const iovec& v = chain.iov()[i];
    s.append(static_cast<const char*>(v.iov_base), v.iov_len);
  }
  return s;
}

bool points_into(const Bytes& b, const void* p, size_t n) {
  if (!b.storage()) return false;
  auto* lo = b.storage()->data();
  auto* hi = lo + b.storage()->capacity();
  auto* q = static_cast<const uint8_t*>(p);
  return q >= lo && q + n <= hi;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s)
    c = static_cast<char>(rng() & 0xFF);
  return s;
}

class CountingStorage final : public BufferStorage {
 public:
  CountingStorage(std::string_view content, int* destroyed)
      : BufferStorage(nullptr, 0), owned_(content), destroyed_(destroyed) {
    set_data(reinterpret_cast<uint8_t*>(owned_.data()), owned_.size());
  }

 private:
  void destroy() noexcept override {
    ++*destroyed_;
    delete this;
  }
  std::string owned_;
  int* destroyed_;
};

Bytes counted_bytes(std::string_view content, int* destroyed) {
  return Bytes::adopt(new CountingStorage(content, destroyed), content.size());
}

namespace {

// Keep the suite's output readable: Ember logs only errors unless the
// developer asks for more with EMBER_LOG.
struct QuietLogs : ::testing::Environment {
  void SetUp() override {
    if (!std::getenv("EMBER_LOG")) log::configure("error");
  }
};
const auto* const kQuietLogs = ::testing::AddGlobalTestEnvironment(new QuietLogs);

}  // namespace
}  // namespace ember::test
