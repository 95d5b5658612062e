// RequestCheck: RFC 9113 §8 rules for one request stream, for a server whose
// session runs with nghttp2's HTTP messaging off (Settings::http_messaging =
// false). nghttp2 then still checks framing, HPACK and stream states; this
// checks what it no longer does: field names and values, pseudo-headers,
// connection-specific fields, TE, content-length against the DATA received,
// and trailers. Sans-I/O: the caller feeds what the session delivers and
// resets the stream with PROTOCOL_ERROR (RFC 9113 §8.1.1) when a call
// returns a reason.
//
// Every call returns nullptr when the input is acceptable, otherwise a static
// string saying what broke the rules (for logs). After an error the state is
// unspecified until reset(). Thread: a value type.
#pragma once

#include <cstdint>
#include <string_view>

namespace ember::http2 {

// A field name as HTTP/2 carries it: a token (RFC 9110 §5.6.2) without
// uppercase letters (RFC 9113 §8.2.1).
bool valid_field_name(std::string_view name) noexcept;
// No NUL, CR, LF or other control byte but HTAB, and no leading or trailing
// SP/HTAB (RFC 9113 §8.2.1, RFC 9110 §5.5).
bool valid_field_value(std::string_view value) noexcept;

class RequestCheck {
 public:
  // One field of the request's header block, in order.
  const char* header(std::string_view name, std::string_view value) noexcept;
  // The request's header block is complete.
  const char* end_headers() noexcept;
  // One field of a trailer block (a header block after the request's).
  const char* trailer(std::string_view name, std::string_view value) noexcept;
  // `n` more body bytes arrived.
  const char* data(uint64_t n) noexcept;
  // The client ended its side of the stream.
  const char* end_stream() const noexcept;

  // The declared content-length; -1 when the request has none.
  int64_t content_length() const noexcept { return content_length_; }
  bool is_head() const noexcept { return (seen_ & kHead) != 0; }
  void reset() noexcept { *this = RequestCheck(); }

 private:
  enum : uint16_t {
    kMethod = 1 << 0,
    kScheme = 1 << 1,
    kAuthority = 1 << 2,
    kPath = 1 << 3,
    kRegular = 1 << 4,  // a regular field came: no pseudo-header may follow
    kConnect = 1 << 5,
    kOptions = 1 << 6,
    kHead = 1 << 7,
    kPathAsterisk = 1 << 8,
    kHost = 1 << 9,
  };
  const char* pseudo(std::string_view name, std::string_view value) noexcept;
  const char* regular(std::string_view name, std::string_view value, bool trailer) noexcept;

  uint16_t seen_ = 0;
  int64_t content_length_ = -1;
  uint64_t received_ = 0;
};

}  // namespace ember::http2
