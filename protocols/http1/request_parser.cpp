#include "protocols/http1/request_parser.hpp"

#include <cstring>

#include "protocols/http1/chars.hpp"

namespace ember::http1 {

RequestParser::RequestParser(const Limits& limits, RequestHandler& handler)
    : ParserCore(Role::request, limits, handler), request_handler_(handler) {}

namespace {

// "HTTP/" DIGIT "." DIGIT. Returns 0 when well formed, else the status.
int parse_version(std::string_view v, Version* out) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !chars::is_digit(v[5]) || v[6] != '.' ||
      !chars::is_digit(v[7]))
    return 400;
  if (v[5] != '1') return 505;
  *out = v[7] == '0' ? Version::http1_0 : Version::http1_1;
  return 0;
}

}  // namespace

// request-line = method SP request-target SP HTTP-version (RFC 9112 section 3).
// The method's bytes were checked as they arrived (check_method_prefix).
bool RequestParser::parse_start_line(const char* line, size_t len) {
  std::string_view l(line, len);
  size_t sp1 = l.find(' ');
  if (sp1 == 0 || sp1 == l.npos) return fail(400, "malformed request line");
  size_t sp2 = l.find(' ', sp1 + 1);
  if (sp2 == l.npos || sp2 == sp1 + 1) return fail(400, "malformed request line");
  std::string_view method = l.substr(0, sp1);
  std::string_view target = l.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!chars::all_of(target, chars::kTarget))
    return fail(400, "invalid character in request-target");
  int bad = parse_version(l.substr(sp2 + 1), &version_);
  if (bad == 505) return fail(505, "unsupported HTTP version");
  if (bad) return fail(400, "malformed HTTP version");

  method_len_ = static_cast<uint32_t>(sp1);
  method_id_ = method_from_string(method);
  target_off_ = static_cast<uint32_t>(sp1 + 1);
  target_len_ = static_cast<uint32_t>(target.size());
  path_off_ = path_len_ = query_off_ = query_len_ = 0;
  authority_off_ = authority_len_ = 0;
  path_slash_ = path_asterisk_ = has_authority_ = false;

  // Where the path starts within the target, for origin- and absolute-form.
  size_t path_start = 0;
  if (method_id_ == Method::connect) {
    // authority-form: uri-host ":" port, nothing else.
    size_t colon = target.rfind(':');
    if (colon == 0 || colon == target.npos || colon + 1 == target.size() ||
        !chars::all_of(target, chars::kHost))
      return fail(400, "invalid CONNECT target");
    for (size_t i = colon + 1; i < target.size(); ++i)
      if (!chars::is_digit(target[i])) return fail(400, "invalid CONNECT target");
    return true;
  }
  if (target[0] == '/') {
    path_start = 0;
  } else if (target == "*") {
    if (method_id_ != Method::options) return fail(400, "asterisk-form target outside OPTIONS");
    path_asterisk_ = true;
    return true;
  } else {
    // absolute-form: scheme "://" authority [path] ["?" query]
    size_t i = 0;
    if (!((target[0] >= 'a' && target[0] <= 'z') || (target[0] >= 'A' && target[0] <= 'Z')))
      return fail(400, "invalid request-target");
    auto scheme_char = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || chars::is_digit(c) || c == '+' ||
             c == '-' || c == '.';
    };
    while (i < target.size() && scheme_char(target[i]))
      ++i;
    if (target.substr(i, 3) != "://") return fail(400, "invalid request-target");
    size_t a = i + 3;
    size_t a_end = target.find_first_of("/?", a);
    if (a_end == target.npos) a_end = target.size();
    std::string_view authority = target.substr(a, a_end - a);
    if (authority.empty() || !chars::all_of(authority, chars::kHost))
      return fail(400, "invalid authority in request-target");
    has_authority_ = true;
    authority_off_ = static_cast<uint32_t>(target_off_ + a);
    authority_len_ = static_cast<uint32_t>(authority.size());
    path_start = a_end;
  }
  size_t q = target.find('?', path_start);
  size_t path_end = q == target.npos ? target.size() : q;
  path_off_ = static_cast<uint32_t>(target_off_ + path_start);
  path_len_ = static_cast<uint32_t>(path_end - path_start);
  path_slash_ = path_len_ == 0;
  if (q != target.npos) {
    query_off_ = static_cast<uint32_t>(target_off_ + q + 1);
    query_len_ = static_cast<uint32_t>(target.size() - q - 1);
  }
  return true;
}

RequestParser::HeadOutcome RequestParser::finish_head(const char* base) {
  const HeadInfo& in = info_;
  if (version_ == Version::http1_1 && in.host_count == 0) {
    fail(400, "missing Host");
    return {};
  }
  HeadOutcome out{Next::none, 0};
  if (in.te_seen) {
    // RFC 9112 section 6.1 and 6.3: refuse what could be read two ways.
    if (version_ == Version::http1_0) {
      fail(400, "Transfer-Encoding in HTTP/1.0");
      return {};
    }
    if (in.cl_seen) {
      fail(400, "Content-Length with Transfer-Encoding");
      return {};
    }
    if (!in.te_last_chunked) {
      fail(400, "Transfer-Encoding does not end in chunked");
      return {};
    }
    if (in.te_chunked_count > 1) {
      fail(400, "chunked applied more than once");
      return {};
    }
    if (in.te_other) {
      fail(501, "unsupported transfer coding");
      return {};
    }
    out.next = Next::chunked;
  } else if (in.cl_seen) {
    if (in.content_length > limits_.max_body) {
      fail(413, "body too large");
      return {};
    }
    out = {Next::length, in.content_length};
  }

  RequestHead& h = head_;
  h.method = view(base, 0, method_len_);
  h.method_id = method_id_;
  h.target = view(base, target_off_, target_len_);
  if (path_asterisk_)
    h.path = "*";
  else if (path_slash_ && has_authority_)
    h.path = "/";
  else
    h.path = view(base, path_off_, path_len_);
  h.query = view(base, query_off_, query_len_);
  h.version = version_;
  h.fields = build_fields(base);
  h.content_length =
      in.cl_seen && !in.te_seen ? std::optional<uint64_t>(in.content_length) : std::nullopt;
  h.chunked = out.next == Next::chunked;
  h.keep_alive =
      version_ == Version::http1_1 ? !in.conn_close : (in.conn_keep_alive && !in.conn_close);
  h.expect_continue = version_ == Version::http1_1 && in.expect_continue;
  h.upgrade = in.conn_upgrade && in.upgrade_seen ? view(base, in.upgrade_off, in.upgrade_len)
                                                 : std::string_view{};
  h.host = has_authority_ ? view(base, authority_off_, authority_len_)
                          : view(base, in.host_off, in.host_len);
  event(request_handler_.on_head(h));
  return out;
}

}  // namespace ember::http1
