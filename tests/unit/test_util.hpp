// Shared helpers for Ember's unit tests: chunked replay of parser inputs and
// in-memory plumbing between sans-I/O sessions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/bytes.hpp"
#include "ember/io_chain.hpp"

namespace ember::test {

// One way of cutting an input into consecutive chunks, and its name for
// failure messages.
struct Split {
  std::string name;
  std::vector<Bytes> chunks;
};

// Every way the style guide asks for: whole, split in two at every byte
// boundary, and cut into chunks of every size from 1 to size - 1. The
// chunks are slices of `input`'s storage, as reads into one buffer would be.
std::vector<Split> all_splits(const Bytes& input);

// Concatenation of the chain's iovecs.
std::string flatten(const IoChain& chain);

// True when [p, p + n) lies inside the storage behind `b`.
bool points_into(const Bytes& b, const void* p, size_t n = 0);

// Random bytes from a fixed-seed generator.
std::string random_bytes(size_t n, uint32_t seed);

// A BufferStorage on the heap that counts its destruction, to observe
// exactly when the last reference goes.
class CountingStorage;
Bytes counted_bytes(std::string_view content, int* destroyed);

// Anything with feed(const Bytes&) / produce(IoChain&) / wants_write().
// Moves bytes both ways until neither side has anything to say. Each
// produce() result is delivered as one Bytes (one "read"). Returns the
// number of rounds that moved bytes, or -1 when a side failed or the
// exchange did not settle.
template <class A, class B>
int pump(A& a, B& b, int max_rounds = 10000) {
  IoChain out;
  int moved_rounds = 0;
  for (int round = 0; round < max_rounds; ++round) {
    bool moved = false;
    out.clear();
    if (!a.produce(out)) return -1;
    if (!out.empty()) {
      moved = true;
      if (!b.feed(Bytes::copy(flatten(out)))) return -1;
    }
    out.clear();
    if (!b.produce(out)) return -1;
    if (!out.empty()) {
      moved = true;
      if (!a.feed(Bytes::copy(flatten(out)))) return -1;
    }
    if (moved) ++moved_rounds;
    if (!moved && !a.wants_write() && !b.wants_write()) return moved_rounds;
  }
  return -1;
}

}  // namespace ember::test
