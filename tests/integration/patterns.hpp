// Deterministic payloads shared by the test service and the tests, so an
// output can be checked byte for byte without sending the expectation along.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ember_it {

// `n` bytes derived from `seed`; different seeds give different bytes at
// almost every offset, so a reply routed to the wrong call cannot match.
inline std::string pattern_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  for (size_t i = 0; i < n; ++i) {
    if (i % 8 == 0) {
      x ^= x >> 33;
      x *= 0xff51afd7ed558ccdull;
      x ^= x >> 29;
    }
    s[i] = static_cast<char>(x >> (8 * (i % 8)));
  }
  return s;
}

}  // namespace ember_it
