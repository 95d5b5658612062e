// The error value of Ember's core layer: what failed (message) and the system
// code behind it (a negative libuv/errno code, or 0 when there is none).
#pragma once

#include <string>
#include <utility>

#include "ember/expected.hpp"

namespace ember {

struct Error {
  std::string message;
  int code = 0;

  Error() = default;
  explicit Error(std::string msg, int c = 0) : message(std::move(msg)), code(c) {}
};

template <class T>
using Result = Expected<T, Error>;

// "what: strerror(code)" for a negative errno/libuv code.
std::string describe_errno(int negative_code);

}  // namespace ember
