// Pi: Monte Carlo hits inside the unit circle.
//
// Byte encoding (both directions ASCII decimal, so `ember flame-run` and
// shell tools can drive it):
//   input:  the number of samples, 1 to 10^12, e.g. "1000000"
//           (surrounding whitespace allowed)
//   output: the number of samples that fell inside the circle, e.g. "785123"
// A client sums hits and samples over many tasks and prints 4 * hits / samples.
//
// Each task seeds its generator from its session and task ids, so re-running
// a task gives the same answer.
#include <ember/flame.hpp>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace flame = ember::flame;

namespace {

constexpr uint64_t kMaxSamples = 1'000'000'000'000ull;

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

// xoshiro256** seeded with splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    uint64_t result = rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

class PiService final : public flame::FlameService {
 public:
  flame::TaskResult on_task_invoke(flame::TaskContext ctx) override {
    if (!ctx.input)
      return flame::FlameError::invalid_config("pi needs an input: the sample count in decimal");
    std::string_view text = trim(ctx.input->view());
    uint64_t samples = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), samples);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || samples == 0 ||
        samples > kMaxSamples)
      return flame::FlameError::invalid_config(
          "pi input must be a decimal sample count from 1 to 1000000000000, got \"" +
          std::string(text.substr(0, 40)) + "\"");
    Rng rng(fnv1a(ctx.task_id, fnv1a(ctx.session_id)));
    uint64_t hits = 0;
    for (uint64_t i = 0; i < samples; ++i) {
      double x = rng.unit(), y = rng.unit();
      hits += (x * x + y * y <= 1.0) ? 1 : 0;
    }
    return ember::Bytes::copy(std::to_string(hits));
  }
};

int main() {
  PiService service;
  return flame::run(service);
}
