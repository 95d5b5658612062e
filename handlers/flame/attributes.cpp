// AttributePublisher: executor attributes waiting for a reply to carry them.
#include <string>

#include "ember/flame.hpp"

namespace ember::flame {

Status AttributePublisher::publish(std::span<const std::string_view> attributes) {
  std::lock_guard lock(mu_);
  size_t count = pending_.size(), bytes = bytes_;
  for (size_t i = 0; i < attributes.size(); ++i) {
    std::string_view a = attributes[i];
    if (a.size() > kMaxAttributeBytes)
      return FlameError::invalid_config(
          "executor attribute " + std::to_string(i) + " is " + std::to_string(a.size()) +
          " bytes; attributes are limited to " + std::to_string(kMaxAttributeBytes) +
          " bytes each. Publish a shorter key (a hash of it, for example).");
    // A repeat within this call or of one already waiting adds nothing.
    bool repeat = pending_.count(std::string(a)) > 0;
    for (size_t j = 0; j < i && !repeat; ++j)
      repeat = attributes[j] == a;
    if (repeat) continue;
    ++count;
    bytes += a.size();
  }
  if (count > kMaxAttributes)
    return FlameError::invalid_config("publishing these executor attributes would make " +
                                      std::to_string(count) + " wait for the next reply; at most " +
                                      std::to_string(kMaxAttributes) +
                                      " may. Publish fewer, or after a task has replied.");
  if (bytes > kMaxTotalBytes)
    return FlameError::invalid_config(
        "publishing these executor attributes would make " + std::to_string(bytes) +
        " bytes wait for the next reply; at most " + std::to_string(kMaxTotalBytes) +
        " may. Publish fewer or shorter ones.");
  for (std::string_view a : attributes)
    pending_.emplace(a);
  bytes_ = bytes;
  count_.store(pending_.size(), std::memory_order_relaxed);
  return {};
}

Status AttributePublisher::publish(const std::vector<std::string>& attributes) {
  std::vector<std::string_view> views(attributes.begin(), attributes.end());
  return publish(std::span<const std::string_view>(views));
}

std::vector<std::string> AttributePublisher::take() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(pending_.size());
  while (!pending_.empty())
    out.push_back(std::move(pending_.extract(pending_.begin()).value()));
  bytes_ = 0;
  count_.store(0, std::memory_order_relaxed);
  return out;
}

}  // namespace ember::flame
