// What both HTTP/1.1 fuzz targets derive from their control bytes: the
// limits, how often the handler pauses the parser, and the cuts that split
// the input into chunks (the targets check whole and split runs agree).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ember/bytes.hpp"
#include "protocols/http1/http1.hpp"

namespace ember::http1::fuzz {

// Limits from the low two bits of `control`.
inline const Limits& limits(uint8_t control) {
  static const Limits kLimits[] = {
      Limits{},
      Limits{.max_request_line = 32,
             .max_header_bytes = 128,
             .max_headers = 4,
             .max_body = 64,
             .max_chunk_line = 16},
      Limits{.max_request_line = 4,
             .max_header_bytes = 16,
             .max_headers = 1,
             .max_body = 0,
             .max_chunk_line = 1},
      Limits{.max_request_line = 100,
             .max_header_bytes = 60,
             .max_headers = 100,
             .max_body = UINT64_MAX,
             .max_chunk_line = 4096},
  };
  return kLimits[control & 3];
}

// Pause after every Nth event (0: never), from bits 2..4 of `control`.
inline uint32_t pause_every(uint8_t control) {
  static const uint32_t kPause[] = {0, 1, 2, 3, 5, 7, 11, 0};
  return kPause[(control >> 2) & 7];
}

// `stream` cut at pseudo-random points (empty chunks included), sizes up to
// 2^(cuts % 11), seeded by `cuts`.
inline std::vector<Bytes> chunks(const Bytes& stream, uint8_t cuts) {
  std::vector<Bytes> out;
  uint32_t seed = cuts * 2654435761u + 1;
  size_t spread = size_t{1} << (cuts % 11);
  for (size_t at = 0; at < stream.size();) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    size_t n = std::min<size_t>(seed % (spread + 1), stream.size() - at);
    out.push_back(stream.slice(at, n));
    at += n;
  }
  return out;
}

}  // namespace ember::http1::fuzz
