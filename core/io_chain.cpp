#include "ember/io_chain.hpp"

#include "ember/buffer_pool.hpp"

#include <algorithm>
#include <cstring>

namespace ember {

void IoChain::push_iov(const void* data, size_t n) {
  // Coalesce with the previous iovec when the bytes are contiguous.
  if (iov_.size() > first_) {
    iovec& last = iov_.back();
    if (static_cast<const uint8_t*>(last.iov_base) + last.iov_len == data) {
      last.iov_len += n;
      bytes_ += n;
      return;
    }
  }
  iov_.push_back(iovec{const_cast<void*>(data), n});
  bytes_ += n;
}

IoChain::~IoChain() {
  for (CorkChunk& c : cork_)
    if (c.pooled) c.pooled->release();
}

void IoChain::append_copy(const void* data, size_t n) {
  if (n == 0) return;
  while (cork_index_ < cork_.size() && cork_[cork_index_].size - cork_offset_ < n) {
    ++cork_index_;
    cork_offset_ = 0;
  }
  if (cork_index_ == cork_.size()) {
    size_t size = std::max(kCorkChunk, n);
    if (pool_) {
      BufferStorage* s = std::move(pool_->take(size)).release();
      cork_.push_back(CorkChunk{s->data(), s->capacity(), s, nullptr});
    } else {
      auto owned = std::make_unique<uint8_t[]>(size);
      uint8_t* p = owned.get();
      cork_.push_back(CorkChunk{p, size, nullptr, std::move(owned)});
    }
    cork_offset_ = 0;
  }
  uint8_t* dst = cork_[cork_index_].data + cork_offset_;
  std::memcpy(dst, data, n);
  cork_offset_ += n;
  push_iov(dst, n);
}

void IoChain::append(const Bytes& payload) {
  if (payload.empty()) return;
  held_.push_back(payload);
  push_iov(payload.data(), payload.size());
}

void IoChain::append(Bytes&& payload) {
  if (payload.empty()) return;
  const uint8_t* p = payload.data();
  size_t n = payload.size();
  held_.push_back(std::move(payload));
  push_iov(p, n);
}

void IoChain::append_unowned(const void* data, size_t n) {
  if (n) push_iov(data, n);
}

void IoChain::consume(size_t n) noexcept {
  bytes_ -= n;
  while (n > 0 && first_ < iov_.size()) {
    iovec& v = iov_[first_];
    if (n < v.iov_len) {
      v.iov_base = static_cast<uint8_t*>(v.iov_base) + n;
      v.iov_len -= n;
      return;
    }
    n -= v.iov_len;
    ++first_;
  }
}

void IoChain::clear() noexcept {
  iov_.clear();
  first_ = 0;
  bytes_ = 0;
  held_.clear();
  cork_index_ = 0;
  cork_offset_ = 0;
  if (pool_ && !cork_.empty()) {
    for (CorkChunk& c : cork_)
      c.pooled->release();
    cork_.clear();  // capacity stays: no allocation next time
  }
}

}  // namespace ember
