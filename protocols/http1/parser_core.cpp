#include "protocols/http1/parser_core.hpp"

#include <algorithm>
#include <cstring>

#include "protocols/http1/chars.hpp"

namespace ember::http1 {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (chars::lower(a[i]) != chars::lower(b[i])) return false;
  return true;
}

std::optional<std::string_view> find_field(std::span<const Field> fields,
                                           std::string_view name) noexcept {
  for (const Field& f : fields)
    if (iequals(f.name, name)) return f.value;
  return std::nullopt;
}

Method method_from_string(std::string_view m) noexcept {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::get;
      if (m == "PUT") return Method::put;
      break;
    case 4:
      if (m == "POST") return Method::post;
      if (m == "HEAD") return Method::head;
      break;
    case 5:
      if (m == "PATCH") return Method::patch;
      if (m == "TRACE") return Method::trace;
      break;
    case 6:
      if (m == "DELETE") return Method::delete_;
      break;
    case 7:
      if (m == "OPTIONS") return Method::options;
      if (m == "CONNECT") return Method::connect;
      break;
  }
  return Method::other;
}

std::string_view method_name(Method m) noexcept {
  switch (m) {
    case Method::get:
      return "GET";
    case Method::head:
      return "HEAD";
    case Method::post:
      return "POST";
    case Method::put:
      return "PUT";
    case Method::delete_:
      return "DELETE";
    case Method::connect:
      return "CONNECT";
    case Method::options:
      return "OPTIONS";
    case Method::trace:
      return "TRACE";
    case Method::patch:
      return "PATCH";
    case Method::other:
      break;
  }
  return {};
}

namespace detail {

namespace {
constexpr size_t kFirstGather = 1024;
}

ParserCore::ParserCore(Role role, const Limits& limits, MessageHandler& handler)
    : role_(role), limits_(limits), handler_(handler) {
  // A start line must leave room for its CRLF and the final CRLF (see
  // Limits::max_request_line): then a too-long line always fails as a line,
  // however the input is split.
  size_t head_room = limits_.max_header_bytes >= 4 ? limits_.max_header_bytes - 4 : 0;
  line_limit_ = std::min(limits_.max_request_line, head_room);
  field_pos_.reserve(16);
  fields_.reserve(16);
}

void ParserCore::reset() noexcept {
  state_ = State::head;
  paused_ = false;
  error_ = {};
  reset_message();
}

void ParserCore::reset_message() noexcept {
  info_ = HeadInfo{};
  start_block();
  skip_cr_ = false;
  remaining_ = 0;
  body_total_ = 0;
}

void ParserCore::start_block() noexcept {
  block_started_ = false;
  block_done_ = false;
  line_start_ = 0;
  lines_ = 0;
  method_checked_ = 0;
  method_done_ = false;
  gather_len_ = 0;
  field_pos_.clear();
}

bool ParserCore::fail(int status, std::string_view reason) noexcept {
  error_ = ParseError{role_ == Role::request ? status : 502, reason};
  state_ = State::failed;
  return false;
}

bool ParserCore::finish_stream() {
  switch (state_) {
    case State::failed:
      return false;
    case State::until_close:
      complete_message();
      return true;
    case State::upgraded:
      return true;
    default:
      if (idle()) return true;
      return fail(400, "connection closed before the message ended");
  }
}

std::span<const Field> ParserCore::build_fields(const char* base) {
  fields_.clear();
  for (const FieldPos& f : field_pos_)
    fields_.push_back(
        Field{view(base, f.name_off, f.name_len), view(base, f.value_off, f.value_len)});
  return {fields_.data(), fields_.size()};
}

FeedResult ParserCore::feed(const Bytes& input) {
  const uint8_t* p = input.data();
  const size_t n = input.size();
  size_t pos = 0;
  for (;;) {
    if (state_ == State::failed) return {pos, ParseStatus::error};
    if (state_ == State::upgraded) return {pos, ParseStatus::upgraded};
    if (paused_) return {pos, ParseStatus::paused};
    if (pos == n) return {n, ParseStatus::need_more};
    switch (state_) {
      case State::head:
      case State::trailers: {
        BlockResult r = read_block(p + pos, n - pos);
        pos += r.consumed;
        if (r.status != BlockStatus::done) break;
        if (state_ == State::head)
          head_block_done(r.base);
        else
          trailer_block_done(r.base);
        break;
      }
      case State::body_length: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - pos));
        remaining_ -= take;
        body_piece(input, pos, take);
        pos += take;
        if (remaining_ == 0) complete_message();
        break;
      }
      case State::chunk_line:
        pos += read_chunk_line(p + pos, n - pos);
        break;
      case State::chunk_data: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - pos));
        remaining_ -= take;
        if (remaining_ == 0) {
          state_ = State::chunk_crlf;
          crlf_cr_ = false;
        }
        body_piece(input, pos, take);
        pos += take;
        break;
      }
      case State::chunk_crlf: {
        char c = static_cast<char>(p[pos++]);
        if (!crlf_cr_ && c == '\r') {
          crlf_cr_ = true;
        } else if (crlf_cr_ && c == '\n') {
          state_ = State::chunk_line;
          chunk_state_ = ChunkLine::size;
          chunk_size_ = 0;
          chunk_digits_ = 0;
          chunk_line_len_ = 0;
        } else {
          fail(400, "missing CRLF after chunk data");
        }
        break;
      }
      case State::until_close: {
        // Up to the limit, then the error: the same bytes reach the handler
        // however the input is split.
        uint64_t room = limits_.max_body - body_total_;
        if (room == 0) {
          fail(413, "body too large");
          break;
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>(room, n - pos));
        body_total_ += take;
        body_piece(input, pos, take);
        pos += take;
        break;
      }
      case State::upgraded:
      case State::failed:
        break;
    }
  }
}

void ParserCore::body_piece(const Bytes& input, size_t offset, size_t n) {
  event(handler_.on_body(input.slice(offset, n)));
}

void ParserCore::complete_message() {
  // Reset first: on_complete may prepare the next message (the response
  // parser's request method).
  reset_message();
  message_done();
  state_ = State::head;
  event(handler_.on_complete());
}

void ParserCore::head_block_done(const char* base) {
  HeadOutcome out = finish_head(base);
  switch (out.next) {
    case Next::fail:
      if (state_ != State::failed) fail(400, "invalid head");
      return;
    case Next::none:
      complete_message();
      return;
    case Next::length:
      if (out.length == 0) {
        complete_message();
        return;
      }
      remaining_ = out.length;
      state_ = State::body_length;
      return;
    case Next::chunked:
      state_ = State::chunk_line;
      chunk_state_ = ChunkLine::size;
      chunk_size_ = 0;
      chunk_digits_ = 0;
      chunk_line_len_ = 0;
      body_total_ = 0;
      return;
    case Next::until_close:
      state_ = State::until_close;
      body_total_ = 0;
      return;
    case Next::upgraded:
      state_ = State::upgraded;
      return;
    case Next::interim:
      info_ = HeadInfo{};
      start_block();
      state_ = State::head;
      return;
  }
}

void ParserCore::trailer_block_done(const char* base) {
  std::span<const Field> trailers = build_fields(base);
  if (!trailers.empty()) event(handler_.on_trailers(trailers));
  complete_message();
}

// ---- head and trailer sections ---------------------------------------------

void ParserCore::append_gather(const void* data, size_t n) {
  if (n == 0) return;
  if (gather_len_ + n > gather_cap_) {
    size_t cap = std::max(gather_cap_ ? gather_cap_ : kFirstGather, size_t{1});
    while (cap < gather_len_ + n)
      cap *= 2;
    auto bigger = std::make_unique_for_overwrite<char[]>(cap);
    if (gather_len_) std::memcpy(bigger.get(), gather_.get(), gather_len_);
    gather_ = std::move(bigger);
    gather_cap_ = cap;
  }
  std::memcpy(gather_.get() + gather_len_, data, n);
  gather_len_ += n;
}

ParserCore::BlockResult ParserCore::read_block(const uint8_t* p, size_t n) {
  size_t i = 0;
  if (!block_started_) {
    if (state_ == State::head) {
      // Empty lines before a start line are skipped (RFC 9112 section 2.2).
      for (; i < n; ++i) {
        char c = static_cast<char>(p[i]);
        if (skip_cr_) {
          if (c != '\n') {
            fail(400, "bare CR");
            return {i, BlockStatus::fail, nullptr};
          }
          skip_cr_ = false;
        } else if (c == '\r') {
          skip_cr_ = true;
        } else if (c == '\n') {
          fail(400, "bare LF");
          return {i, BlockStatus::fail, nullptr};
        } else {
          break;
        }
      }
      if (i == n) return {n, BlockStatus::more, nullptr};
    }
    block_started_ = true;
  }

  if (gather_len_ == 0) {
    // The block starts in this input: parse it in place, views point here.
    const char* base = reinterpret_cast<const char*>(p + i);
    size_t avail = n - i;
    size_t end = 0;
    BlockStatus s = scan_lines(base, avail, &end);
    if (s == BlockStatus::fail) return {i, s, nullptr};
    if (s == BlockStatus::done) return {i + end, s, base};
    if (!check_partial(base, avail)) return {i, BlockStatus::fail, nullptr};
    append_gather(base, avail);
    return {n, BlockStatus::more, nullptr};
  }

  // Gathering: copy up to each line end, so that bytes after the block stay
  // in the input (a body is then still passed on without a copy). The cap
  // only has to exceed every limit check_partial applies.
  const size_t cap = limits_.max_header_bytes + 2;
  while (i < n) {
    const void* nl = std::memchr(p + i, '\n', n - i);
    size_t take = nl ? static_cast<size_t>(static_cast<const uint8_t*>(nl) - (p + i)) + 1 : n - i;
    bool capped = take > cap - gather_len_;
    if (capped) take = cap - gather_len_;
    append_gather(p + i, take);
    i += take;
    if (nl && !capped) {
      size_t end = 0;
      BlockStatus s = scan_lines(gather_.get(), gather_len_, &end);
      if (s == BlockStatus::fail) return {i, s, nullptr};
      if (s == BlockStatus::done) return {i, s, gather_.get()};
      continue;
    }
    if (!check_partial(gather_.get(), gather_len_)) return {i, BlockStatus::fail, nullptr};
  }
  return {n, BlockStatus::more, nullptr};
}

ParserCore::BlockStatus ParserCore::scan_lines(const char* buf, size_t len, size_t* end) {
  for (;;) {
    const void* nl = std::memchr(buf + line_start_, '\n', len - line_start_);
    if (!nl) return BlockStatus::more;
    size_t le = static_cast<size_t>(static_cast<const char*>(nl) - buf);
    if (!process_line(buf, line_start_, le)) return BlockStatus::fail;
    line_start_ = le + 1;
    if (block_done_) {
      *end = line_start_;
      return BlockStatus::done;
    }
  }
}

// The checks run in the same order on a complete line as check_partial runs
// them on an incomplete one, so the error does not depend on how the input
// was split: start-line prefix, start-line length, block size, then syntax.
bool ParserCore::process_line(const char* buf, size_t ls, size_t le) {
  const bool first = state_ == State::head && lines_ == 0;
  const size_t raw = le - ls;
  const bool cr = raw > 0 && buf[le - 1] == '\r';
  const size_t len = cr ? raw - 1 : raw;
  if (first) {
    if (!check_method_prefix(buf + ls, std::min(raw, line_limit_ + 1))) return false;
    if (len > line_limit_) return fail_line_too_long(buf + ls);
  }
  if (le + 1 > limits_.max_header_bytes)
    return fail(431,
                state_ == State::head ? "header section too large" : "trailer section too large");
  if (!cr) return fail(400, "bare LF");
  if (len == 0) {
    block_done_ = true;
    return true;
  }
  ++lines_;
  if (first) return parse_start_line(buf + ls, len);
  if (field_pos_.size() >= limits_.max_headers)
    return fail(431, state_ == State::head ? "too many header fields" : "too many trailer fields");
  return parse_field(buf, ls, len);
}

bool ParserCore::check_partial(const char* buf, size_t len) {
  if (state_ == State::head && lines_ == 0) {
    // line_start_ is 0: the start line is the incomplete one.
    if (!check_method_prefix(buf, std::min(len, line_limit_ + 1))) return false;
    size_t eff = len - (buf[len - 1] == '\r' ? 1 : 0);
    if (eff > line_limit_) return fail_line_too_long(buf);
  }
  if (len > limits_.max_header_bytes)
    return fail(431,
                state_ == State::head ? "header section too large" : "trailer section too large");
  return true;
}

// A request's method is checked as soon as its bytes arrive, so that a
// stray protocol (TLS, HTTP/2 preface bytes) is refused without waiting for
// a line end.
// Resumes where the previous call stopped, so a start line arriving a byte at
// a time costs linear time.
bool ParserCore::check_method_prefix(const char* line, size_t n) {
  if (role_ != Role::request || method_done_) return true;
  for (size_t i = method_checked_; i < n; ++i) {
    char c = line[i];
    if (c == ' ' || c == '\r') {
      method_done_ = true;
      return true;
    }
    if (!chars::is(c, chars::kToken)) return fail(400, "invalid character in method");
  }
  method_checked_ = std::max(method_checked_, n);
  return true;
}

// Which part overflowed decides the status (RFC 9112 section 3), judged from
// the first line_limit_ + 1 bytes, which every split of the input has seen:
// no SP there, the method is too long (501); else the target is (414),
// unless what follows the second SP is already more than a version (400).
bool ParserCore::fail_line_too_long(const char* line) {
  if (role_ == Role::response) return fail(502, "status line too long");
  std::string_view w(line, line_limit_ + 1);
  size_t sp1 = w.find(' ');
  if (sp1 == w.npos) return fail(501, "method too long");
  size_t sp2 = w.find(' ', sp1 + 1);
  if (sp2 != w.npos && w.size() - sp2 - 1 > 8) return fail(400, "request line too long");
  return fail(414, "request-target too long");
}

bool ParserCore::parse_field(const char* buf, size_t ls, size_t len) {
  const char* s = buf + ls;
  if (chars::is_ows(s[0])) return fail(400, "obsolete line folding or leading whitespace");
  size_t j = 0;
  while (j < len && chars::is(s[j], chars::kToken))
    ++j;
  if (j == len) return fail(400, "field line without colon");
  if (s[j] != ':') {
    if (chars::is_ows(s[j])) return fail(400, "whitespace between field name and colon");
    return fail(400, "invalid character in field name");
  }
  if (j == 0) return fail(400, "empty field name");
  size_t v = j + 1;
  size_t e = len;
  for (size_t k = v; k < e; ++k)
    if (!chars::is(s[k], chars::kFieldValue)) return fail(400, "invalid character in field value");
  while (v < e && chars::is_ows(s[v]))
    ++v;
  while (e > v && chars::is_ows(s[e - 1]))
    --e;
  FieldPos f{static_cast<uint32_t>(ls), static_cast<uint32_t>(j), static_cast<uint32_t>(ls + v),
             static_cast<uint32_t>(e - v)};
  field_pos_.push_back(f);
  if (state_ != State::head) return true;  // trailers carry no framing
  return classify(buf, f);
}

namespace {

// 1*DIGIT, or a list of equal ones (RFC 9112 section 6.3, item 5).
bool parse_content_length(std::string_view v, uint64_t* out, const char** why) {
  bool have = false;
  uint64_t value = 0;
  size_t i = 0;
  for (;;) {
    size_t start = i;
    uint64_t x = 0;
    while (i < v.size() && chars::is_digit(v[i])) {
      uint64_t d = static_cast<uint64_t>(v[i] - '0');
      if (x > (UINT64_MAX - d) / 10) {
        *why = "Content-Length overflows";
        return false;
      }
      x = x * 10 + d;
      ++i;
    }
    if (i == start) {
      *why = "invalid Content-Length";
      return false;
    }
    if (have && x != value) {
      *why = "conflicting Content-Length values";
      return false;
    }
    value = x;
    have = true;
    while (i < v.size() && chars::is_ows(v[i]))
      ++i;
    if (i == v.size()) break;
    if (v[i] != ',') {
      *why = "invalid Content-Length";
      return false;
    }
    ++i;
    while (i < v.size() && chars::is_ows(v[i]))
      ++i;
  }
  *out = value;
  return true;
}

}  // namespace

bool ParserCore::classify(const char* buf, const FieldPos& f) {
  std::string_view name = view(buf, f.name_off, f.name_len);
  std::string_view value = view(buf, f.value_off, f.value_len);
  switch (name.size()) {
    case 4:
      if (role_ == Role::request && iequals(name, "host")) {
        if (++info_.host_count > 1) return fail(400, "multiple Host fields");
        // Empty is allowed: RFC 9112 §3.2, a target URI without authority.
        if (!value.empty() && !valid_authority(value)) return fail(400, "invalid Host");
        info_.host_off = f.value_off;
        info_.host_len = f.value_len;
      }
      break;
    case 6:
      if (role_ == Role::request && iequals(name, "expect")) {
        chars::for_each_element(value, [&](std::string_view e) {
          if (iequals(e, "100-continue")) info_.expect_continue = true;
        });
      }
      break;
    case 7:
      if (!info_.upgrade_seen && iequals(name, "upgrade")) {
        info_.upgrade_seen = true;
        info_.upgrade_off = f.value_off;
        info_.upgrade_len = f.value_len;
      }
      break;
    case 10:
      if (iequals(name, "connection")) {
        chars::for_each_element(value, [&](std::string_view e) {
          if (iequals(e, "close"))
            info_.conn_close = true;
          else if (iequals(e, "keep-alive"))
            info_.conn_keep_alive = true;
          else if (iequals(e, "upgrade"))
            info_.conn_upgrade = true;
        });
      }
      break;
    case 14:
      if (iequals(name, "content-length")) {
        uint64_t cl = 0;
        const char* why = nullptr;
        if (!parse_content_length(value, &cl, &why)) return fail(400, why);
        if (info_.cl_seen && cl != info_.content_length)
          return fail(400, "conflicting Content-Length values");
        info_.cl_seen = true;
        info_.content_length = cl;
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        bool bad = false;
        chars::for_each_element(value, [&](std::string_view e) {
          size_t t = 0;
          while (t < e.size() && chars::is(e[t], chars::kToken))
            ++t;
          if (t == 0) {
            bad = true;
            return;
          }
          std::string_view rest = e.substr(t);
          while (!rest.empty() && chars::is_ows(rest.front()))
            rest.remove_prefix(1);
          if (!rest.empty() && rest.front() != ';') {
            bad = true;
            return;
          }
          if (rest.empty() && iequals(e.substr(0, t), "chunked")) {
            ++info_.te_chunked_count;
            info_.te_last_chunked = true;
          } else {
            info_.te_other = true;
            info_.te_last_chunked = false;
          }
        });
        if (bad) return fail(400, "invalid Transfer-Encoding");
        info_.te_seen = true;
      }
      break;
  }
  return true;
}

// ---- chunked framing --------------------------------------------------------

size_t ParserCore::read_chunk_line(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const char c = static_cast<char>(p[i]);
    if (chunk_state_ == ChunkLine::lf) {
      if (c != '\n') {
        fail(400, "bare CR in chunk line");
        return i;
      }
      if (chunk_size_ == 0) {
        start_block();
        state_ = State::trailers;
        return i + 1;
      }
      if (chunk_size_ > limits_.max_body - body_total_) {
        fail(413, "body too large");
        return i;
      }
      body_total_ += chunk_size_;
      remaining_ = chunk_size_;
      state_ = State::chunk_data;
      return i + 1;
    }
    if (c == '\n') {
      fail(400, "bare LF in chunk line");
      return i;
    }
    if (c == '\r') {
      // Ends the line where an extension or the size may end.
      switch (chunk_state_) {
        case ChunkLine::size:
          if (chunk_digits_ == 0) {
            fail(400, "invalid chunk size");
            return i;
          }
          [[fallthrough]];
        case ChunkLine::ext_name:
        case ChunkLine::ext_token:
        case ChunkLine::ext_quoted_end:
          chunk_state_ = ChunkLine::lf;
          continue;
        case ChunkLine::ext_quoted:
          break;  // not qdtext: fails below
        default:
          fail(400, chunk_state_ == ChunkLine::size_ws ? "invalid chunk size"
                                                       : "invalid chunk extension");
          return i;
      }
    }
    if (++chunk_line_len_ > limits_.max_chunk_line) {
      fail(400, "chunk line too long");
      return i;
    }
    const bool ws = chars::is_ows(c);
    const bool tchar = chars::is(c, chars::kToken);
    bool ok = true;
    switch (chunk_state_) {
      case ChunkLine::size:
        if (chars::is(c, chars::kHex)) {
          if (chunk_size_ > (UINT64_MAX >> 4)) {
            fail(400, "chunk size overflows");
            return i;
          }
          chunk_size_ = (chunk_size_ << 4) | static_cast<uint64_t>(chars::hex_value(c));
          ++chunk_digits_;
        } else if (chunk_digits_ == 0) {
          ok = false;
        } else if (c == ';') {
          chunk_state_ = ChunkLine::ext_pre_name;
        } else if (ws) {
          chunk_state_ = ChunkLine::size_ws;
        } else {
          ok = false;
        }
        if (!ok) {
          fail(400, "invalid chunk size");
          return i;
        }
        continue;
      case ChunkLine::size_ws:
        if (c == ';')
          chunk_state_ = ChunkLine::ext_pre_name;
        else if (!ws) {
          fail(400, "invalid chunk size");
          return i;
        }
        continue;
      case ChunkLine::ext_pre_name:
        if (tchar)
          chunk_state_ = ChunkLine::ext_name;
        else
          ok = ws;
        break;
      case ChunkLine::ext_name:
        if (ws)
          chunk_state_ = ChunkLine::ext_post_name;
        else if (c == '=')
          chunk_state_ = ChunkLine::ext_pre_value;
        else if (c == ';')
          chunk_state_ = ChunkLine::ext_pre_name;
        else
          ok = tchar;
        break;
      case ChunkLine::ext_post_name:
        if (c == '=')
          chunk_state_ = ChunkLine::ext_pre_value;
        else if (c == ';')
          chunk_state_ = ChunkLine::ext_pre_name;
        else
          ok = ws;
        break;
      case ChunkLine::ext_pre_value:
        if (c == '"')
          chunk_state_ = ChunkLine::ext_quoted;
        else if (tchar)
          chunk_state_ = ChunkLine::ext_token;
        else
          ok = ws;
        break;
      case ChunkLine::ext_token:
        if (ws)
          chunk_state_ = ChunkLine::ext_post_value;
        else if (c == ';')
          chunk_state_ = ChunkLine::ext_pre_name;
        else
          ok = tchar;
        break;
      case ChunkLine::ext_quoted:
        if (c == '"')
          chunk_state_ = ChunkLine::ext_quoted_end;
        else if (c == '\\')
          chunk_state_ = ChunkLine::ext_quoted_escape;
        else
          ok = chars::is(c, chars::kQdText);
        break;
      case ChunkLine::ext_quoted_escape:
        // quoted-pair: HTAB / SP / VCHAR / obs-text
        ok = c == '\t' || (static_cast<uint8_t>(c) >= 0x20 && c != 0x7F);
        chunk_state_ = ChunkLine::ext_quoted;
        break;
      case ChunkLine::ext_quoted_end:
        if (ws)
          chunk_state_ = ChunkLine::ext_post_value;
        else if (c == ';')
          chunk_state_ = ChunkLine::ext_pre_name;
        else
          ok = false;
        break;
      case ChunkLine::ext_post_value:
        if (c == ';')
          chunk_state_ = ChunkLine::ext_pre_name;
        else
          ok = ws;
        break;
      case ChunkLine::lf:
        break;
    }
    if (!ok) {
      fail(400, "invalid chunk extension");
      return i;
    }
  }
  return n;
}

}  // namespace detail
}  // namespace ember::http1
