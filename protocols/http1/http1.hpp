// HTTP/1.1 codec (RFC 9112), sans-I/O: the vocabulary shared by the request
// parser (server role), the response parser (client role) and the writers.
//
// Parsers take bytes with feed() and report events to a handler; writers
// append to an ember::IoChain. No sockets, no loop, no locks: one parser or
// writer belongs to one connection on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ember::http1 {

// One header (or trailer) field line. Views into a parser's input or its
// head buffer (see the parser headers for how long), or the caller's strings
// when writing.
struct Field {
  std::string_view name;
  std::string_view value;
};

// The value of the first field named `name` (ASCII case-insensitive), if any.
std::optional<std::string_view> find_field(std::span<const Field> fields,
                                           std::string_view name) noexcept;
// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;

// An absolute http:// or https:// URL (scheme case-insensitive; no user
// info; IPv4, a name or a bracketed IPv6 address; a fragment is dropped).
struct ParsedUrl {
  bool https = false;
  std::string_view host;         // brackets stripped
  std::string_view host_header;  // authority without user info
  uint16_t port = 0;
  std::string_view target;  // empty: "/"
  bool query_only = false;  // target starts with '?': prefix "/"
};
// Empty on success, else what is wrong ("invalid port in URL", ...).
std::string_view parse_url(std::string_view url, ParsedUrl& out);

// A Host field value or an HTTP/2 :authority: uri-host [":" port] (RFC 9110
// §7.2, RFC 3986 §3.2.2-3.2.3), where uri-host is a reg-name (an IPv4
// address is one) or a bracketed IPv6 address, and the port is digits up to
// 65535 (empty: the default). No userinfo (RFC 9113 §8.3.1). Empty is false.
bool valid_authority(std::string_view authority) noexcept;

// RFC 3986 percent-encoding of every byte but the unreserved ones
// (A-Z a-z 0-9 - . _ ~), and '/' when keep_slash (paths).
std::string percent_encode(std::string_view in, bool keep_slash = false);
// Decodes %XX, and '+' as a space (application/x-www-form-urlencoded, query
// strings). False when a '%' is not followed by two hex digits.
bool form_decode(std::string_view in, std::string* out);

// HTTP/1.x minor versions above 1 (HTTP/1.2 ...) are read as 1.1, as RFC 9110
// section 2.5 asks; other major versions are refused.
// http2: a response the HTTP client (protocols/http) received over HTTP/2.
enum class Version : uint8_t { http1_0, http1_1, http2 };

enum class Method : uint8_t {
  other,
  get,
  head,
  post,
  put,
  delete_,
  connect,
  options,
  trace,
  patch
};
// Case-sensitive, as methods are: "get" is Method::other.
Method method_from_string(std::string_view method) noexcept;
std::string_view method_name(Method m) noexcept;  // empty for Method::other

// Knobs of a parser. The defaults suit an edge server.
struct Limits {
  // Request line (or status line), CRLF excluded. Also capped at
  // max_header_bytes - 4, so that a line the head cannot hold fails as a line.
  size_t max_request_line = 8 * 1024;
  // The whole head: start line, field lines, their CRLFs and the final CRLF.
  // The trailer section of a chunked body has the same bound on its own.
  size_t max_header_bytes = 32 * 1024;
  // Field lines in the head; also in the trailer section.
  size_t max_headers = 100;
  // Body bytes (chunked: the data, not the framing). UINT64_MAX: no limit.
  uint64_t max_body = 8u << 20;
  // One chunk-size line with its extensions, CRLF excluded.
  size_t max_chunk_line = 4 * 1024;
};

// Why a parser stopped. `status` is the HTTP status the server should answer
// with (400, 413, 414, 431, 501, 505); the response parser (client role)
// always says 502, the answer a proxy would give. `reason` is a static string.
// After an error the connection must be closed: the parser refuses further
// input, and the bytes already given have an unknown framing.
struct ParseError {
  int status = 0;
  std::string_view reason;
};

enum class ParseStatus : uint8_t {
  need_more,  // every byte consumed; feed more when it arrives
  paused,     // a handler returned Action::pause: resume(), then feed the rest
  upgraded,   // (response parser) the bytes after `consumed` belong to another protocol
  error,      // see error(); close the connection
};

struct FeedResult {
  size_t consumed = 0;  // bytes of the input used; all of it for need_more
  ParseStatus status = ParseStatus::need_more;
};

// What a handler's callback asks of the parser.
enum class Action : uint8_t {
  proceed,
  // Stop consuming input after the bytes that produced this event; feed()
  // returns paused. Events that need no further input still fire first: a
  // head without body, or a last body piece, is followed by on_complete()
  // in the same feed() (whose own return value then also counts).
  pause,
};

}  // namespace ember::http1
