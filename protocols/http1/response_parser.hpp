// HTTP/1.1 response parser (client role), RFC 9112. Sans-I/O and incremental.
//
// Same design as RequestParser (see request_parser.hpp): feed() bytes, events
// to a handler, body pieces as slices of the input (no copy), a head split
// across feeds gathered into a reused buffer, head views valid until the
// callback returns, Action::pause for backpressure and pipelining.
//
// The body's length (RFC 9112 section 6.3): none for a response to HEAD, for
// 1xx, 204 and 304 (framing fields ignored); Content-Length; chunked; else
// until the server closes: call finish() at end of stream, which completes
// such a body.
//
// The parser must know the request each response answers: call
// set_request_method() before its head arrives (e.g. from on_complete() of
// the previous response). It falls back to GET after every final response.
//
// Interim responses: 100 and other 1xx go to on_interim() and parsing goes on
// with the next head. 101 goes to on_head(), and so does a 2xx answer to
// CONNECT; then feed() returns upgraded and consumes nothing more: the bytes
// after `consumed` belong to the new protocol or the tunnel.
//
// Strictness: the request parser's rules for lines, fields, chunks and
// limits, applied to responses, with these differences: a status line may
// omit the SP before an empty reason; a Transfer-Encoding other than exactly
// "chunked" is refused (Ember sends no TE header, so a server has no reason
// to use another coding); Transfer-Encoding in an HTTP/1.0 response and
// Content-Length with Transfer-Encoding are refused. Every error has status
// 502; close the connection after one.
//
// Thread: one parser per connection, on one thread. Callbacks must not
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

struct ResponseHead {
  Version version = Version::http1_1;
  int status = 0;
  std::string_view reason;
  std::span<const Field> fields;  // in order, values OWS-trimmed

  // The Content-Length value (without Transfer-Encoding). Frames the body only
  // when has_body: for HEAD or 304 it describes the body a GET would get.
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool until_close = false;  // the body ends when the connection does
  bool has_body = false;     // some body framing applies (may still be 0 bytes)
  // The connection may carry another request after this response: HTTP/1.1
  // without "Connection: close", HTTP/1.0 with "Connection: keep-alive";
  // never with an until-close body.
  bool keep_alive = true;
  // 101: the Upgrade field's value.
  std::string_view upgrade;

  std::optional<std::string_view> field(std::string_view name) const noexcept {
    return find_field(fields, name);
  }
};

class ResponseHandler : public MessageHandler {
 public:
  // The final response's head (or 101). Views are valid until this returns.
  virtual Action on_head(const ResponseHead& head) = 0;
  // A 1xx other than 101. Views are valid until this returns.
  virtual Action on_interim(const ResponseHead& head) {
    (void)head;
    return Action::proceed;
  }
};

class ResponseParser : private detail::ParserCore {
 public:
  ResponseParser(const Limits& limits, ResponseHandler& handler);

  using ParserCore::error;
  using ParserCore::failed;
  using ParserCore::feed;
  using ParserCore::idle;
  using ParserCore::paused;
  using ParserCore::reset;
  using ParserCore::resume;

  // The method of the request the next response answers (HEAD: no body;
  // CONNECT: a 2xx starts a tunnel).
  void set_request_method(Method m) noexcept { method_ = m; }
  // The peer closed the stream. Completes an until-close body (on_complete
  // fires) and returns true; true as well between messages. False, with
  // error() set, when a message was cut short. The parser is then done: call
  // reset() before reusing it.
  bool finish();

 private:
  bool parse_start_line(const char* line, size_t len) override;
  HeadOutcome finish_head(const char* base) override;
  void message_done() noexcept override { method_ = Method::get; }

  ResponseHandler& response_handler_;
  ResponseHead head_;
  Method method_ = Method::get;
  Version version_ = Version::http1_1;
  int status_ = 0;
  uint32_t reason_off_ = 0, reason_len_ = 0;
};

}  // namespace ember::http1
