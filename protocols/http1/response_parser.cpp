#include "protocols/http1/response_parser.hpp"

#include "protocols/http1/chars.hpp"

namespace ember::http1 {

ResponseParser::ResponseParser(const Limits& limits, ResponseHandler& handler)
    : ParserCore(Role::response, limits, handler), response_handler_(handler) {}

bool ResponseParser::finish() {
  return finish_stream();
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ]
// (RFC 9112 section 4); the second SP may be missing when the reason is.
bool ResponseParser::parse_start_line(const char* line, size_t len) {
  std::string_view l(line, len);
  if (len < 12 || l.substr(0, 5) != "HTTP/" || !chars::is_digit(l[5]) || l[6] != '.' ||
      !chars::is_digit(l[7]) || l[8] != ' ')
    return fail(502, "malformed status line");
  if (l[5] != '1') return fail(502, "unsupported HTTP version");
  version_ = l[7] == '0' ? Version::http1_0 : Version::http1_1;
  if (!chars::is_digit(l[9]) || !chars::is_digit(l[10]) || !chars::is_digit(l[11]))
    return fail(502, "malformed status line");
  status_ = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
  if (status_ < 100 || status_ > 599) return fail(502, "invalid status code");
  reason_off_ = reason_len_ = 0;
  if (len > 12) {
    if (l[12] != ' ') return fail(502, "malformed status line");
    std::string_view reason = l.substr(13);
    if (!chars::all_of(reason, chars::kFieldValue))
      return fail(502, "invalid character in reason phrase");
    reason_off_ = 13;
    reason_len_ = static_cast<uint32_t>(reason.size());
  }
  return true;
}

ResponseParser::HeadOutcome ResponseParser::finish_head(const char* base) {
  const HeadInfo& in = info_;
  ResponseHead& h = head_;
  h.version = version_;
  h.status = status_;
  h.reason = view(base, reason_off_, reason_len_);
  h.fields = build_fields(base);
  h.upgrade = in.upgrade_seen ? view(base, in.upgrade_off, in.upgrade_len) : std::string_view{};
  h.content_length = std::nullopt;
  h.chunked = h.until_close = h.has_body = false;
  h.keep_alive =
      version_ == Version::http1_1 ? !in.conn_close : (in.conn_keep_alive && !in.conn_close);

  if (status_ < 200) {
    if (status_ == 101) {
      event(response_handler_.on_head(h));
      return {Next::upgraded, 0};
    }
    event(response_handler_.on_interim(h));
    return {Next::interim, 0};
  }
  if (method_ == Method::connect && status_ < 300) {
    event(response_handler_.on_head(h));
    return {Next::upgraded, 0};
  }

  HeadOutcome out{Next::none, 0};
  const bool no_body = method_ == Method::head || status_ == 204 || status_ == 304;
  if (in.te_seen) {
    if (version_ == Version::http1_0) {
      fail(502, "Transfer-Encoding in HTTP/1.0");
      return {};
    }
    if (in.cl_seen) {
      fail(502, "Content-Length with Transfer-Encoding");
      return {};
    }
    if (in.te_other || in.te_chunked_count != 1 || !in.te_last_chunked) {
      fail(502, "unsupported transfer coding");
      return {};
    }
    if (!no_body) out.next = Next::chunked;
  } else if (in.cl_seen) {
    h.content_length = in.content_length;
    if (!no_body) {
      if (in.content_length > limits_.max_body) {
        fail(502, "body too large");
        return {};
      }
      out = {Next::length, in.content_length};
    }
  } else if (!no_body) {
    out.next = Next::until_close;
  }
  h.chunked = out.next == Next::chunked;
  h.until_close = out.next == Next::until_close;
  h.has_body = out.next != Next::none;
  if (h.until_close) h.keep_alive = false;
  event(response_handler_.on_head(h));
  return out;
}

}  // namespace ember::http1
