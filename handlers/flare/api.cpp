// The native flare API: request views, the arena-backed response, the registry.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "ember/flare.hpp"
#include "protocols/http1/writer.hpp"

namespace ember::flare {
namespace {

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// The name as a message may show it: what() is a C string (a NUL would cut
// it short) that callers print as they like, so control bytes go as \xNN.
std::string printable(std::string_view name) {
  std::string out;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out.push_back(c);
      continue;
    }
    constexpr char kHex[] = "0123456789abcdef";
    out.append("\\x");
    out.push_back(kHex[u >> 4]);
    out.push_back(kHex[u & 15]);
  }
  return out;
}

void check_field(std::string_view name, std::string_view value) {
  if (name.empty()) throw std::invalid_argument("response header name is empty");
  // HTTP/1.1's rules (RFC 9110 5.1, 5.5), which HTTP/2 shares: a name is a
  // token, a value holds no control byte but HTAB.
  if (!http1::valid_field_name(name))
    throw std::invalid_argument("response header name \"" + printable(name) +
                                "\" has a character not allowed in a field name");
  if (!http1::valid_field_value(value))
    throw std::invalid_argument("response header \"" + printable(name) +
                                "\" has a control character in its value");
}

}  // namespace

ArenaExhausted::ArenaExhausted(size_t wanted, size_t limit)
    : std::runtime_error("flare arena exhausted: needed " + std::to_string(wanted) +
                         " more bytes of its " + std::to_string(limit) +
                         "-byte arena (raise limits.arena_size, or send large bodies as Bytes)"),
      wanted_(wanted),
      limit_(limit) {}

void* Scratch::allocate(size_t size, size_t align) {
  void* p = arena_.allocate(size, align);
  if (!p && size > 0) throw ArenaExhausted(size, arena_.limit());
  return p;
}

std::string_view Scratch::copy(std::string_view s) {
  if (s.empty()) return {};
  auto* p = static_cast<char*>(allocate(s.size(), 1));
  std::memcpy(p, s.data(), s.size());
  return {p, s.size()};
}

std::span<uint8_t> Scratch::bytes(size_t n) {
  return {static_cast<uint8_t*>(allocate(n, 1)), n};
}

Result<FetchResponse> Context::fetch(const FetchRequest& request) {
  if (!fetcher_)
    return Error("flare '" + std::string(name_) +
                 "' fetched without may_wait() returning true (or the server has no beam)");
  return fetcher_->fetch(request);
}

Request::Request(Parts p) noexcept
    : method_(p.method),
      url_(p.url),
      host_(p.host),
      scheme_(p.scheme),
      protocol_(p.protocol),
      remote_(p.remote),
      headers_(p.headers),
      body_(std::move(p.body)) {
  size_t q = url_.find('?');
  path_ = url_.substr(0, q);
  if (q != std::string_view::npos) query_ = url_.substr(q + 1);
}

std::optional<std::string_view> Request::header(std::string_view name) const noexcept {
  for (const HeaderField& f : headers_)
    if (iequal(f.name, name)) return f.value;
  return std::nullopt;
}

void Response::set_status(int status) {
  if (status < 100 || status > 599)
    throw std::invalid_argument("response status " + std::to_string(status) +
                                " is outside 100..599");
  status_ = status;
  status_set_ = true;
}

void Response::append_field(std::string_view name, std::string_view value) {
  check_field(name, value);
  if (count_ == capacity_) {
    size_t cap = capacity_ ? capacity_ * 2 : 8;
    auto* grown = static_cast<HeaderField*>(
        scratch_.allocate(cap * sizeof(HeaderField), alignof(HeaderField)));
    std::copy(fields_, fields_ + count_, grown);  // the old block stays in the arena
    fields_ = grown;
    capacity_ = cap;
  }
  fields_[count_++] = {scratch_.copy(name), scratch_.copy(value)};
}

void Response::set_header(std::string_view name, std::string_view value) {
  remove_header(name);
  append_field(name, value);
}

void Response::add_header(std::string_view name, std::string_view value) {
  append_field(name, value);
}

void Response::remove_header(std::string_view name) noexcept {
  size_t kept = 0;
  for (size_t i = 0; i < count_; ++i)
    if (!iequal(fields_[i].name, name)) fields_[kept++] = fields_[i];
  count_ = kept;
}

std::optional<std::string_view> Response::header(std::string_view name) const noexcept {
  for (size_t i = 0; i < count_; ++i)
    if (iequal(fields_[i].name, name)) return fields_[i].value;
  return std::nullopt;
}

void Response::set_body(std::string_view body) {
  std::string_view copy = scratch_.copy(body);
  // Arena memory lives until the invocation ends; the host copies or
  // references it before then.
  body_ = Bytes::unowned(copy);
  body_in_arena_ = true;
}

void Response::set_body(std::span<const uint8_t> body) {
  set_body(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()));
}

void Response::set_body(Bytes body) noexcept {
  body_ = std::move(body);
  body_in_arena_ = false;
}

void Registry::add(std::string name, std::shared_ptr<Flare> flare) {
  for (auto& [n, f] : flares_)
    if (n == name) {
      f = std::move(flare);
      return;
    }
  flares_.emplace_back(std::move(name), std::move(flare));
}

void Registry::add(std::string name, std::function<Action(Context&)> fn) {
  struct FnFlare final : Flare {
    explicit FnFlare(std::function<Action(Context&)> f) : fn(std::move(f)) {}
    Action handle_request(Context& ctx) override { return fn(ctx); }
    std::function<Action(Context&)> fn;
  };
  add(std::move(name), std::make_shared<FnFlare>(std::move(fn)));
}

std::shared_ptr<Flare> Registry::find(std::string_view name) const {
  for (const auto& [n, f] : flares_)
    if (n == name) return f;
  return nullptr;
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const auto& [n, f] : flares_)
    out.push_back(n);
  return out;
}

}  // namespace ember::flare
