// HTTP/1.1 message writing into an ember::IoChain (RFC 9112).
//
// Status lines, request lines, fields and chunk framing are copied into the
// chain's cork (one coalesced iovec); bodies are appended by reference
// (IoChain::append), never copied. Nothing here allocates once the chain's
// capacity is warm.
//
// Functions that take caller strings check them first and return false,
// appending nothing, when one could break the framing: a field name that is
// not a token, a value, reason or target holding CR, LF or another control
// byte except HTAB. So an untrusted value cannot split a response.
//
// Thread: everything may be used on any thread; the Date cache is per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ember/bytes.hpp"
#include "ember/io_chain.hpp"
#include "protocols/http1/http1.hpp"

namespace ember::http1 {

// "OK", "Not Found", ...; empty for a status without a registered phrase.
std::string_view reason_phrase(int status) noexcept;

// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") of a Unix time. Formatted at
// most once per second per thread: the view is valid on this thread until a
// call with another second.
std::string_view http_date(int64_t unix_seconds) noexcept;
// http_date() of the coarse real-time clock (a vDSO read, no syscall).
std::string_view http_date_now() noexcept;

bool valid_field_name(std::string_view name) noexcept;    // a token
bool valid_field_value(std::string_view value) noexcept;  // no controls but HTAB

// The head of a response, as ResponseWriter needs it.
struct ResponseStart {
  int status = 200;              // 100..599
  std::string_view reason = {};  // empty: reason_phrase(status)
  // Extra fields, written in order after Date. Content-Length,
  // Transfer-Encoding, Date, and for a final response Connection and
  // Keep-Alive, are the writer's own: such fields here are dropped (a 101's
  // "Connection: upgrade" is the caller's).
  std::span<const Field> fields = {};
  // false: "Connection: close"; close the connection once this is written.
  bool keep_alive = true;
  // Answering HEAD: the framing fields are written, the body is not.
  bool head_request = false;
  // The request's version: a 1.0 peer gets "Connection: keep-alive" when kept
  // alive, and a body of unknown length unframed, then the connection closes.
  Version request_version = Version::http1_1;
  // Unix seconds for the Date field; 0: http_date_now(). 1xx carry no Date.
  int64_t date = 0;
};

// Writes one response at a time into `out`: the head, then the body by
// reference. A response to HEAD and 1xx/204/304 get no body bytes (pieces
// passed to body() are dropped) and 1xx/204/304 no framing fields.
//
//   ResponseWriter w(chain);
//   w.write(start, body_bytes);                     // Content-Length
//   w.begin(start, std::nullopt); w.body(piece); ... w.end(trailers);  // chunked
class ResponseWriter {
 public:
  // Body pieces up to this size are copied into the output's cork next to
  // the head (one iovec, no reference to hold); larger ones are referenced.
  // A caller may hand over a piece it is about to reuse only if it is this small.
  static constexpr size_t kCopyBelow = 256;

  explicit ResponseWriter(IoChain& out) noexcept : out_(&out) {}

  // A whole response with `body` as its Content-Length body ("Content-Length:
  // 0" when empty). False, nothing written, when `start` is invalid.
  [[nodiscard]] bool write(const ResponseStart& start, const Bytes& body);
  // The head of a response whose body follows through body() and end():
  // `content_length` known, or nullopt for chunked (unframed, then close,
  // for an HTTP/1.0 peer). False, nothing written, when `start` is invalid.
  [[nodiscard]] bool begin(const ResponseStart& start, std::optional<uint64_t> content_length);
  // Appends a piece by reference (a chunk when chunked; empty pieces are
  // skipped). False, nothing written, when it would exceed the announced
  // Content-Length.
  [[nodiscard]] bool body(const Bytes& piece);
  // Ends the body: the last chunk and `trailers` when chunked (trailers are
  // dropped otherwise). False when fewer bytes than the announced
  // Content-Length were written (close the connection: the peer waits for
  // the rest) or a trailer is invalid (nothing written).
  [[nodiscard]] bool end(std::span<const Field> trailers = {});
  // The response says the connection closes after it (asked for, or an
  // HTTP/1.0 body of unknown length).
  bool closing() const noexcept { return closing_; }

 private:
  enum class Mode : uint8_t { none, length, chunked, raw };
  IoChain* out_;
  Mode mode_ = Mode::none;
  uint64_t remaining_ = 0;
  bool closing_ = false;
};

// A complete error response: `status` with its phrase, a text/plain body
// "<status> <phrase>: <reason>\n" (copied; it is small), Content-Length and
// "Connection: close". For the parsers' errors:
//   write_error(chain, parser.error().status, parser.error().reason);
// `reason` is body text: CR/LF in it are harmless.
void write_error(IoChain& out, int status, std::string_view reason, int64_t date = 0);

// "HTTP/1.1 100 Continue\r\n\r\n", referenced from static storage.
void write_continue(IoChain& out);

// How a request's body is framed.
struct BodyFraming {
  enum class Kind : uint8_t { none, length, chunked };
  Kind kind = Kind::none;
  uint64_t length = 0;

  // No body and no framing field (GET, HEAD, ...).
  static BodyFraming no_body() noexcept { return {}; }
  // "Content-Length: n" (also for n = 0, e.g. an empty POST).
  static BodyFraming content_length(uint64_t n) noexcept { return {Kind::length, n}; }
  // "Transfer-Encoding: chunked": send write_chunk() pieces, then
  // write_last_chunk().
  static BodyFraming chunked() noexcept { return {Kind::chunked, 0}; }
};

// Request line, Host, `fields` (leave out Host, Content-Length,
// Transfer-Encoding and Connection: close), framing, and "Connection: close"
// when !keep_alive. A Content-Length body follows with out.append(bytes).
// False, nothing written, when the method is not a token, the target holds a
// control byte, space, '#' or a byte >= 0x80, the host holds a byte outside
// uri-host [":" port], or a field is invalid.
[[nodiscard]] bool write_request(IoChain& out, std::string_view method, std::string_view target,
                                 std::string_view host, std::span<const Field> fields,
                                 BodyFraming body, bool keep_alive = true);

// One chunk: size line, `data` by reference, CRLF. Empty data writes nothing
// (an empty chunk would end the body).
void write_chunk(IoChain& out, const Bytes& data);
// "0\r\n", the trailer fields, "\r\n". False, nothing written, when a
// trailer is invalid.
[[nodiscard]] bool write_last_chunk(IoChain& out, std::span<const Field> trailers = {});

}  // namespace ember::http1
