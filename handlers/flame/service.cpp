// The small, cold parts of the Flame API: errors, defaults, options.
#include <string>

#include "ember/config.hpp"
#include "ember/flame.hpp"

namespace ember::flame {

std::string FlameError::to_string() const {
  if (kind_ == Kind::NotFound) return "'" + message_ + "' not found";
  return message_;
}

std::string_view kind_name(FlameError::Kind kind) noexcept {
  switch (kind) {
    case FlameError::Kind::NotFound:
      return "NotFound";
    case FlameError::Kind::Internal:
      return "Internal";
    case FlameError::Kind::Network:
      return "Network";
    case FlameError::Kind::InvalidConfig:
      return "InvalidConfig";
  }
  return "Internal";
}

Status FlameService::on_session_enter(const SessionContext&) {
  return {};
}
Status FlameService::on_session_leave() {
  return {};
}
Status AsyncFlameService::on_session_enter(const SessionContext&) {
  return {};
}
Status AsyncFlameService::on_session_leave() {
  return {};
}

namespace {

template <class T>
bool read_size(const char* name, T* out, uint64_t min, uint64_t max, std::string* error) {
  auto text = config::env(name);
  if (!text) return true;
  auto v = config::parse_byte_size(*text);
  if (!v || *v < min || *v > max) {
    *error = std::string(name) + "=\"" + *text + "\" is not a size from " + std::to_string(min) +
             " to " + std::to_string(max) + " bytes (examples: 65536, 64k, 16MiB)";
    return false;
  }
  *out = static_cast<T>(*v);
  return true;
}

}  // namespace

Expected<RunOptions, std::string> RunOptions::from_env() {
  RunOptions o;
  auto endpoint = config::env("FLAME_INSTANCE_ENDPOINT");
  if (!endpoint)
    return std::string(
        "FLAME_INSTANCE_ENDPOINT is not set. This program is a Flame service: Flame's executor "
        "starts it with FLAME_INSTANCE_ENDPOINT=<unix socket path>. To run it by hand, use "
        "`ember flame-run -- <this program>`.");
  o.endpoint = *endpoint;
  std::string error;
  if (!read_size("EMBER_MAX_MESSAGE_BYTES", &o.max_message_bytes, 1024, 1ull << 31, &error) ||
      !read_size("EMBER_FLAME_MAX_OUTPUT_BYTES", &o.max_output_bytes, 1024, 1ull << 32, &error) ||
      !read_size("EMBER_MAX_HEADER_BYTES", &o.max_header_bytes, 1024, 16u << 20, &error) ||
      !read_size("EMBER_MAX_STREAMS", &o.max_concurrent_streams, 1, 1u << 20, &error) ||
      !read_size("EMBER_MAX_FRAME_BYTES", &o.max_frame_bytes, 16384, (1u << 24) - 1, &error) ||
      !read_size("EMBER_STREAM_WINDOW_BYTES", &o.stream_window_bytes, 65535, (1u << 31) - 1,
                 &error) ||
      !read_size("EMBER_CONNECTION_WINDOW_BYTES", &o.connection_window_bytes, 65535, (1u << 31) - 1,
                 &error) ||
      !read_size("EMBER_MAX_CONNECTIONS", &o.max_connections, 1, 1u << 20, &error) ||
      !read_size("EMBER_SOCKET_SEND_BUFFER", &o.socket_send_buffer, 0, 1u << 30, &error))
    return error;
  if (auto text = config::env("EMBER_BUSY_POLL_US")) {
    auto us = config::parse_byte_size(*text);  // a plain whole number
    if (!us || *us > 10'000'000 || text->find_first_not_of("0123456789") != std::string::npos)
      return "EMBER_BUSY_POLL_US=\"" + *text +
             "\" is not a number of microseconds from 0 to 10000000";
    o.busy_poll = std::chrono::microseconds(*us);
  }
  if (auto text = config::env("EMBER_DRAIN_TIMEOUT_MS")) {
    auto ms = config::parse_duration_ms(*text);
    if (!ms)
      return "EMBER_DRAIN_TIMEOUT_MS=\"" + *text +
             "\" is not a duration (examples: 30000, 30s, 2m; 0 waits forever)";
    o.drain_timeout = std::chrono::milliseconds(*ms);
  }
  if (auto text = config::env("EMBER_FLAME_WIRE")) {
    if (*text == "auto")
      o.wire = WireMode::automatic;
    else if (*text == "v0.6.0" || *text == "v0.6")
      o.wire = WireMode::v0_6_0;
    else if (*text == "wrapped" || *text == "main")
      o.wire = WireMode::wrapped;
    else
      return "EMBER_FLAME_WIRE=\"" + *text +
             "\" is not a wire edition: use auto (v0.6.0 unless the executor sends tokens or a "
             "workspace), v0.6.0 (Flame's release), or wrapped (Flame's main branch)";
  }
  return o;
}

}  // namespace ember::flame
