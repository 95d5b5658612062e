// HTTP/1.1 request parser (server role), RFC 9112. Sans-I/O and incremental.
//
//   RequestParser parser(limits, handler);
//   FeedResult r = parser.feed(bytes);   // events go to `handler`
//
// Zero copy: body pieces reach on_body() as slices of the Bytes given to
// feed() (Content-Length and chunked alike). A head that arrives within one
// feed() is parsed in place; one split across feeds is gathered into the
// parser's own buffer (kept across requests, at most max_header_bytes), the
// only copy the parser makes. Steady state allocates nothing.
//
// Lifetime: the views in RequestHead (method, target, fields, ...) point into
// the input or that buffer and are valid only until on_head() returns. Copy
// what you need to keep. Body Bytes hold a reference and may be kept.
//
// Pipelining and backpressure: a callback returning Action::pause stops the
// parser after the bytes of that event; feed() returns paused with the count
// consumed. Call resume() when ready and feed the unconsumed rest (a slice of
// the same Bytes is fine). A server pauses from on_complete() to answer
// requests one at a time, and when it switches protocols (a request with
// `upgrade` it accepts, or CONNECT): the unconsumed bytes then belong to the
// new protocol.
//
// Strictness (RFC 9112 and RFC 9110), answered with `error().status`:
//   400  malformed request line, method or target bytes (controls, space, DEL,
//        bytes >= 0x80 and '#' are refused in the target), obs-fold, leading
//        whitespace, whitespace before the colon, invalid name or value bytes
//        (controls except HTAB), bare CR anywhere, bare LF anywhere (every line
//        must end in CRLF; empty lines before a request line are skipped),
//        Content-Length not 1*DIGIT (a list of equal values is accepted),
//        overflowing or conflicting, Content-Length with Transfer-Encoding,
//        Transfer-Encoding not ending in chunked or naming chunked twice,
//        Transfer-Encoding in HTTP/1.0, bad chunk sizes or extensions, no CRLF
//        after chunk data, chunk line over max_chunk_line, missing Host in
//        HTTP/1.1, several Host fields, invalid Host, target form not allowed
//        for the method (authority-form only with CONNECT, '*' only with
//        OPTIONS), absolute-form with userinfo or no host, a request line
//        over max_request_line with more than a version after the target
//   413  Content-Length or chunked data over max_body
//   414  request line over max_request_line, the method being complete
//   431  head over max_header_bytes, more than max_headers fields (trailer
//        section: same bounds)
//   501  transfer coding other than chunked (followed by chunked), or a
//        request line over max_request_line without an SP (method too long)
//   505  HTTP major version other than 1
// A line is checked as soon as it is complete (a request line's method as
// its bytes arrive), checks across fields (Host, framing) run when the head
// is; the error reported is the same however the input is split. After an
// error the parser refuses input: write the error response (write_error)
// and close the connection.
//
// Thread: one parser per connection, used on one thread. Callbacks must not
// destroy the parser or call feed() on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ember/bytes.hpp"
#include "protocols/http1/http1.hpp"
#include "protocols/http1/parser_core.hpp"

namespace ember::http1 {

struct RequestHead {
  std::string_view method;
  Method method_id = Method::other;
  std::string_view target;  // as received
  // Origin- and absolute-form: the path ("/" when an absolute-form target has
  // none) and the query (after '?', empty when absent). Asterisk-form: path
  // "*". Authority-form (CONNECT): both empty.
  std::string_view path;
  std::string_view query;
  Version version = Version::http1_1;
  std::span<const Field> fields;  // in order, names as received, values OWS-trimmed

  std::optional<uint64_t> content_length;  // absent with chunked or no body
  bool chunked = false;
  // HTTP/1.1: unless "Connection: close". HTTP/1.0: only with
  // "Connection: keep-alive" (and no "close").
  bool keep_alive = true;
  // "Expect: 100-continue" in an HTTP/1.1 request (ignored in 1.0, RFC 9110
  // section 10.1.1). Answer with write_continue() before reading the body,
  // or with a final response.
  bool expect_continue = false;
  // The Upgrade field's value when Connection lists "upgrade" ("websocket",
  // "h2c", ...); empty otherwise.
  std::string_view upgrade;
  // The request's authority: the absolute-form target's, else the Host
  // field's value (may be empty, e.g. HTTP/1.0 without Host).
  std::string_view host;

  bool has_body() const noexcept { return chunked || (content_length && *content_length > 0); }
  std::optional<std::string_view> field(std::string_view name) const noexcept {
    return find_field(fields, name);
  }
};

class RequestHandler : public MessageHandler {
 public:
  // The head is complete and valid. Views are valid until this returns.
  virtual Action on_head(const RequestHead& head) = 0;
};

class RequestParser : private detail::ParserCore {
 public:
  RequestParser(const Limits& limits, RequestHandler& handler);

  // Consumes input until it runs out (need_more: all consumed), a callback
  // pauses (paused), or the input is invalid (error). While paused or failed,
  // feed() consumes nothing.
  using ParserCore::error;
  using ParserCore::failed;
  using ParserCore::feed;
  using ParserCore::paused;
  using ParserCore::resume;
  // True between requests with no partial request buffered: a connection
  // closed now lost nothing.
  using ParserCore::idle;
  // Forgets everything, errors included, for a new connection.
  using ParserCore::reset;

 private:
  bool parse_start_line(const char* line, size_t len) override;
  HeadOutcome finish_head(const char* base) override;

  RequestHandler& request_handler_;
  RequestHead head_;
  // Offsets of the request line's parts from the head's start.
  uint32_t method_len_ = 0;
  uint32_t target_off_ = 0, target_len_ = 0;
  uint32_t path_off_ = 0, path_len_ = 0;
  uint32_t query_off_ = 0, query_len_ = 0;
  uint32_t authority_off_ = 0, authority_len_ = 0;
  bool path_slash_ = false;     // absolute-form without a path: "/"
  bool path_asterisk_ = false;  // asterisk-form
  bool has_authority_ = false;  // absolute-form
  Version version_ = Version::http1_1;
  Method method_id_ = Method::other;
};

}  // namespace ember::http1
