// gRPC status codes and the small text codecs gRPC's HTTP/2 mapping needs:
// percent-encoded grpc-message and the grpc-timeout header.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ember::grpc {

enum class StatusCode : int {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

std::string_view status_name(StatusCode code) noexcept;

struct Status {
  StatusCode code = StatusCode::ok;
  std::string message;

  bool ok() const noexcept { return code == StatusCode::ok; }
  static Status make(StatusCode c, std::string m) { return Status{c, std::move(m)}; }
};

// grpc-message encoding: bytes outside 0x20..0x7E and '%' become %XX.
std::string percent_encode(std::string_view text);
// Lenient, as the spec asks: a malformed escape is kept as is.
std::string percent_decode(std::string_view text);

// grpc-timeout: 1-8 ASCII digits and a unit (H M S m u n). Returns the timeout
// in nanoseconds (saturating), or nullopt when malformed.
std::optional<uint64_t> parse_timeout(std::string_view value) noexcept;
// The shortest grpc-timeout value for `nanos` (rounded up, 8 digits at most).
std::string format_timeout(uint64_t nanos);

// HTTP status -> gRPC status, for responses without grpc-status.
StatusCode status_from_http(int http_status) noexcept;

}  // namespace ember::grpc
