// libFuzzer target: grpc::MessageReader fed the same stream whole and in
// chunks. Besides crashes it checks that chunking never changes the result.
//
// Input: byte 0 picks the size limit and pool use, byte 1 seeds the chunk
// sizes, the rest is the stream.
// libfuzzer-options: -max_len=8192 -timeout=10 -rss_limit_mb=2048
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocols/grpc/message_reader.hpp"

using namespace ember;
using namespace ember::grpc;

namespace {

struct Run {
  std::vector<std::string> messages;
  StatusCode code = StatusCode::ok;
  std::string error;
  bool failed = false;
  bool at_boundary = true;
};

void collect(void* ctx, Bytes m) {
  static_cast<Run*>(ctx)->messages.push_back(m.to_string());
}

Run run(const std::vector<Bytes>& chunks, size_t max, BufferPool* pool) {
  MessageReader reader(max, pool);
  Run r;
  for (const Bytes& c : chunks) {
    Status st = reader.feed(c, &collect, &r);
    if (!st.ok() && r.code == StatusCode::ok) {
      r.code = st.code;
      r.error = st.message;
    }
  }
  r.failed = reader.failed();
  r.at_boundary = reader.at_boundary();
  return r;
}

bool same(const Run& a, const Run& b) {
  return a.messages == b.messages && a.code == b.code && a.error == b.error &&
         a.failed == b.failed && a.at_boundary == b.at_boundary;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const size_t kLimits[] = {0, 1, 5, 16, 100, 1000, 4096, 8u << 20};
  size_t max = kLimits[data[0] & 7];
  static BufferPool pool;
  BufferPool* p = (data[0] & 8) ? &pool : nullptr;
  uint32_t seed = data[1] * 2654435761u + 1;
  Bytes stream = Bytes::copy(std::span(data + 2, size - 2));

  std::vector<Bytes> chunks;
  size_t spread = size_t{1} << (data[1] % 10);  // chunk sizes up to 1..512
  for (size_t at = 0; at < stream.size();) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    size_t n = std::min<size_t>(seed % (spread + 1), stream.size() - at);  // 0 is allowed
    chunks.push_back(stream.slice(at, n));
    at += n;
  }
  Run split = run(chunks, max, p);
  Run whole = run({stream}, max, p);
  if (!same(split, whole)) std::abort();
  for (const std::string& m : whole.messages)
    if (m.size() > max) std::abort();
  return 0;
}
