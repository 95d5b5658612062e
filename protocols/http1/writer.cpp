#include "protocols/http1/writer.hpp"

#include <time.h>

#include <charconv>
#include <climits>
#include <cstring>

#include "protocols/http1/chars.hpp"

namespace ember::http1 {

namespace {

// Builds a head on the stack and hands it to the cork in few append_copy
// calls (the cork coalesces them into one iovec).
class HeadBuf {
 public:
  explicit HeadBuf(IoChain& out) noexcept : out_(out) {}
  ~HeadBuf() { flush(); }
  HeadBuf(const HeadBuf&) = delete;
  HeadBuf& operator=(const HeadBuf&) = delete;

  void put(std::string_view s) {
    if (s.empty()) return;  // may have no data pointer
    if (s.size() > sizeof(buf_) - len_) {
      flush();
      if (s.size() > sizeof(buf_)) {
        out_.append_copy(s);
        return;
      }
    }
    std::memcpy(buf_ + len_, s.data(), s.size());
    len_ += s.size();
  }
  void put_dec(uint64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof(tmp), v);
    put({tmp, static_cast<size_t>(r.ptr - tmp)});
  }
  void put_hex(uint64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof(tmp), v, 16);
    put({tmp, static_cast<size_t>(r.ptr - tmp)});
  }
  void field(std::string_view name, std::string_view value) {
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  }
  void flush() {
    if (len_) out_.append_copy(buf_, len_);
    len_ = 0;
  }

 private:
  IoChain& out_;
  size_t len_ = 0;
  char buf_[512];
};

bool valid_fields(std::span<const Field> fields) noexcept {
  for (const Field& f : fields)
    if (!valid_field_name(f.name) || !valid_field_value(f.value)) return false;
  return true;
}

// Fields the writer writes itself for a final response: a caller's copy
// could contradict the framing (two lengths, a length and chunked) and let a
// client read the next response out of this one's body. A 1xx keeps its
// Connection (a 101's "upgrade").
bool writer_owned(std::string_view name, int status) noexcept {
  switch (name.size()) {
    case 4:
      return iequals(name, "date");
    case 10:
      return status >= 200 && (iequals(name, "connection") || iequals(name, "keep-alive"));
    case 14:
      return iequals(name, "content-length");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

bool no_content_status(int status) noexcept {
  return status < 200 || status == 204 || status == 304;
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

struct DateCache {
  int64_t second = INT64_MIN;
  char text[29];
};
thread_local DateCache t_date;

}  // namespace

bool valid_field_name(std::string_view name) noexcept {
  return !name.empty() && chars::all_of(name, chars::kToken);
}

bool valid_field_value(std::string_view value) noexcept {
  return chars::all_of(value, chars::kFieldValue);
}

std::string_view reason_phrase(int status) noexcept {
  // clang-format off
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return {};
  }
  // clang-format on
}

std::string_view http_date(int64_t unix_seconds) noexcept {
  DateCache& c = t_date;
  if (c.second != unix_seconds) {
    static constexpr char kDays[] = "SunMonTueWedThuFriSat";
    static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    time_t t = static_cast<time_t>(unix_seconds);
    struct tm tm;
    gmtime_r(&t, &tm);
    char* p = c.text;
    auto two = [&](int v) {
      *p++ = static_cast<char>('0' + v / 10);
      *p++ = static_cast<char>('0' + v % 10);
    };
    std::memcpy(p, kDays + 3 * tm.tm_wday, 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    two(tm.tm_mday);
    *p++ = ' ';
    std::memcpy(p, kMonths + 3 * tm.tm_mon, 3);
    p += 3;
    *p++ = ' ';
    int year = tm.tm_year + 1900;
    two(year / 100 % 100);
    two(year % 100);
    *p++ = ' ';
    two(tm.tm_hour);
    *p++ = ':';
    two(tm.tm_min);
    *p++ = ':';
    two(tm.tm_sec);
    std::memcpy(p, " GMT", 4);
    c.second = unix_seconds;
  }
  return {c.text, sizeof(c.text)};
}

std::string_view http_date_now() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return http_date(ts.tv_sec);
}

// ---- server: responses -------------------------------------------------------

bool ResponseWriter::begin(const ResponseStart& r, std::optional<uint64_t> content_length) {
  if (r.status < 100 || r.status > 599 || !valid_field_value(r.reason) || !valid_fields(r.fields))
    return false;
  HeadBuf h(*out_);
  h.put("HTTP/1.1 ");
  h.put_dec(static_cast<uint64_t>(r.status));
  h.put(" ");
  h.put(r.reason.empty() ? reason_phrase(r.status) : r.reason);
  h.put("\r\n");
  if (r.status >= 200) h.field("Date", r.date ? http_date(r.date) : http_date_now());
  bool upgrade = false;  // RFC 9110 7.8: Upgrade goes with Connection: upgrade
  for (const Field& f : r.fields) {
    if (writer_owned(f.name, r.status)) continue;
    h.field(f.name, f.value);
    upgrade = upgrade || (r.status >= 200 && f.name.size() == 7 && iequals(f.name, "upgrade"));
  }

  mode_ = Mode::none;
  remaining_ = 0;
  closing_ = false;
  if (r.status < 200) {
    // Interim: no framing, no connection management; the final response follows.
    h.put("\r\n");
    return true;
  }
  const bool no_content = no_content_status(r.status);
  if (!no_content) {
    if (content_length) {
      h.put("Content-Length: ");
      h.put_dec(*content_length);
      h.put("\r\n");
      mode_ = Mode::length;
      remaining_ = *content_length;
    } else if (r.request_version == Version::http1_1) {
      h.put("Transfer-Encoding: chunked\r\n");
      mode_ = Mode::chunked;
    } else if (!r.head_request) {
      // An HTTP/1.0 peer knows no chunked: the close ends the body.
      mode_ = Mode::raw;
      closing_ = true;
    }
    if (r.head_request) mode_ = Mode::none;
  }
  if (!r.keep_alive) closing_ = true;
  if (closing_)
    h.put(upgrade ? "Connection: close, upgrade\r\n" : "Connection: close\r\n");
  else if (r.request_version == Version::http1_0)
    h.put(upgrade ? "Connection: keep-alive, upgrade\r\n" : "Connection: keep-alive\r\n");
  else if (upgrade)
    h.put("Connection: upgrade\r\n");
  h.put("\r\n");
  return true;
}

bool ResponseWriter::body(const Bytes& piece) {
  switch (mode_) {
    case Mode::none:
      return true;
    case Mode::length:
      if (piece.size() > remaining_) return false;
      remaining_ -= piece.size();
      if (piece.size() <= kCopyBelow)
        out_->append_copy(piece.data(), piece.size());
      else
        out_->append(piece);
      return true;
    case Mode::chunked:
      write_chunk(*out_, piece);
      return true;
    case Mode::raw:
      out_->append(piece);
      return true;
  }
  return true;
}

bool ResponseWriter::end(std::span<const Field> trailers) {
  Mode m = mode_;
  mode_ = Mode::none;
  if (m == Mode::length) return remaining_ == 0;
  if (m == Mode::chunked) {
    if (!write_last_chunk(*out_, trailers)) {
      mode_ = m;
      return false;
    }
  }
  return true;
}

bool ResponseWriter::write(const ResponseStart& start, const Bytes& body_bytes) {
  if (!begin(start, body_bytes.size())) return false;
  (void)body(body_bytes);  // cannot exceed: the length is its size
  return end();
}

void write_error(IoChain& out, int status, std::string_view reason, int64_t date) {
  std::string_view phrase = reason_phrase(status);
  char num[4] = {static_cast<char>('0' + status / 100 % 10),
                 static_cast<char>('0' + status / 10 % 10), static_cast<char>('0' + status % 10),
                 0};
  std::string_view code(num, 3);
  uint64_t body_len = 3 + 1 + phrase.size() + (reason.empty() ? 0 : 2 + reason.size()) + 1;
  HeadBuf h(out);
  h.put("HTTP/1.1 ");
  h.put(code);
  h.put(" ");
  h.put(phrase);
  h.put("\r\n");
  h.field("Date", date ? http_date(date) : http_date_now());
  h.put("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  h.put_dec(body_len);
  h.put("\r\nConnection: close\r\n\r\n");
  h.put(code);
  h.put(" ");
  h.put(phrase);
  if (!reason.empty()) {
    h.put(": ");
    h.put(reason);
  }
  h.put("\n");
}

void write_continue(IoChain& out) {
  out.append_unowned(kContinue.data(), kContinue.size());
}

// ---- client: requests --------------------------------------------------------

bool write_request(IoChain& out, std::string_view method, std::string_view target,
                   std::string_view host, std::span<const Field> fields, BodyFraming body,
                   bool keep_alive) {
  if (method.empty() || !chars::all_of(method, chars::kToken) || target.empty() ||
      !chars::all_of(target, chars::kTarget) || !chars::all_of(host, chars::kHost) ||
      !valid_fields(fields))
    return false;
  HeadBuf h(out);
  h.put(method);
  h.put(" ");
  h.put(target);
  h.put(" HTTP/1.1\r\n");
  h.field("Host", host);
  for (const Field& f : fields)
    h.field(f.name, f.value);
  if (body.kind == BodyFraming::Kind::length) {
    h.put("Content-Length: ");
    h.put_dec(body.length);
    h.put("\r\n");
  } else if (body.kind == BodyFraming::Kind::chunked) {
    h.put("Transfer-Encoding: chunked\r\n");
  }
  if (!keep_alive) h.put("Connection: close\r\n");
  h.put("\r\n");
  return true;
}

void write_chunk(IoChain& out, const Bytes& data) {
  if (data.empty()) return;
  {
    HeadBuf h(out);
    h.put_hex(data.size());
    h.put("\r\n");
  }
  out.append(data);
  out.append_copy("\r\n", 2);
}

bool write_last_chunk(IoChain& out, std::span<const Field> trailers) {
  if (!valid_fields(trailers)) return false;
  HeadBuf h(out);
  h.put("0\r\n");
  for (const Field& f : trailers)
    h.field(f.name, f.value);
  h.put("\r\n");
  return true;
}

}  // namespace ember::http1
