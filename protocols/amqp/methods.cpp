#include "protocols/amqp/methods.hpp"

#include <array>
#include <cstdio>
#include <tuple>
#include <type_traits>
#include <utility>

namespace ember::amqp {
namespace {

// ---- argument descriptors ------------------------------------------------------
// Each method lists its arguments in wire order; one generic encoder and
// decoder walk the list. Integer, bit and table kinds follow from the member
// type; strings say whether they are short (u8 length) or long (u32 length).

enum class Str : uint8_t { short_, long_ };

template <class S, class T>
struct Arg {
  T S::*member;
  Str str = Str::short_;
};

template <class S, class T>
constexpr Arg<S, T> a(T S::*m) {
  return {m};
}
template <class S>
constexpr Arg<S, std::string_view> ls(std::string_view S::*m) {
  return {m, Str::long_};
}

template <class M>
struct Args;  // static constexpr auto list = std::make_tuple(...)

#define EMBER_ARGS(M, ...)                                                \
  template <>                                                             \
  struct Args<M> {                                                        \
    using S = M;                                                          \
    static constexpr auto list() { return std::make_tuple(__VA_ARGS__); } \
  };
#define EMBER_NO_ARGS(M)                                    \
  template <>                                               \
  struct Args<M> {                                          \
    static constexpr auto list() { return std::tuple<>(); } \
  };

EMBER_ARGS(ConnectionStart, a(&S::version_major), a(&S::version_minor), a(&S::server_properties),
           ls(&S::mechanisms), ls(&S::locales))
EMBER_ARGS(ConnectionStartOk, a(&S::client_properties), a(&S::mechanism), ls(&S::response),
           a(&S::locale))
EMBER_ARGS(ConnectionSecure, ls(&S::challenge))
EMBER_ARGS(ConnectionSecureOk, ls(&S::response))
EMBER_ARGS(ConnectionTune, a(&S::channel_max), a(&S::frame_max), a(&S::heartbeat))
EMBER_ARGS(ConnectionTuneOk, a(&S::channel_max), a(&S::frame_max), a(&S::heartbeat))
EMBER_ARGS(ConnectionOpen, a(&S::virtual_host), a(&S::reserved_1), a(&S::reserved_2))
EMBER_ARGS(ConnectionOpenOk, a(&S::reserved_1))
EMBER_ARGS(ConnectionClose, a(&S::reply_code), a(&S::reply_text), a(&S::failing_class_id),
           a(&S::failing_method_id))
EMBER_NO_ARGS(ConnectionCloseOk)
EMBER_ARGS(ConnectionBlocked, a(&S::reason))
EMBER_NO_ARGS(ConnectionUnblocked)
EMBER_ARGS(ConnectionUpdateSecret, ls(&S::new_secret), a(&S::reason))
EMBER_NO_ARGS(ConnectionUpdateSecretOk)

EMBER_ARGS(ChannelOpen, a(&S::reserved_1))
EMBER_ARGS(ChannelOpenOk, ls(&S::reserved_1))
EMBER_ARGS(ChannelFlow, a(&S::active))
EMBER_ARGS(ChannelFlowOk, a(&S::active))
EMBER_ARGS(ChannelClose, a(&S::reply_code), a(&S::reply_text), a(&S::failing_class_id),
           a(&S::failing_method_id))
EMBER_NO_ARGS(ChannelCloseOk)

EMBER_ARGS(ExchangeDeclare, a(&S::reserved_1), a(&S::exchange), a(&S::type), a(&S::passive),
           a(&S::durable), a(&S::auto_delete), a(&S::internal), a(&S::no_wait), a(&S::arguments))
EMBER_NO_ARGS(ExchangeDeclareOk)
EMBER_ARGS(ExchangeDelete, a(&S::reserved_1), a(&S::exchange), a(&S::if_unused), a(&S::no_wait))
EMBER_NO_ARGS(ExchangeDeleteOk)
EMBER_ARGS(ExchangeBind, a(&S::reserved_1), a(&S::destination), a(&S::source), a(&S::routing_key),
           a(&S::no_wait), a(&S::arguments))
EMBER_NO_ARGS(ExchangeBindOk)
EMBER_ARGS(ExchangeUnbind, a(&S::reserved_1), a(&S::destination), a(&S::source), a(&S::routing_key),
           a(&S::no_wait), a(&S::arguments))
EMBER_NO_ARGS(ExchangeUnbindOk)

EMBER_ARGS(QueueDeclare, a(&S::reserved_1), a(&S::queue), a(&S::passive), a(&S::durable),
           a(&S::exclusive), a(&S::auto_delete), a(&S::no_wait), a(&S::arguments))
EMBER_ARGS(QueueDeclareOk, a(&S::queue), a(&S::message_count), a(&S::consumer_count))
EMBER_ARGS(QueueBind, a(&S::reserved_1), a(&S::queue), a(&S::exchange), a(&S::routing_key),
           a(&S::no_wait), a(&S::arguments))
EMBER_NO_ARGS(QueueBindOk)
EMBER_ARGS(QueuePurge, a(&S::reserved_1), a(&S::queue), a(&S::no_wait))
EMBER_ARGS(QueuePurgeOk, a(&S::message_count))
EMBER_ARGS(QueueDelete, a(&S::reserved_1), a(&S::queue), a(&S::if_unused), a(&S::if_empty),
           a(&S::no_wait))
EMBER_ARGS(QueueDeleteOk, a(&S::message_count))
EMBER_ARGS(QueueUnbind, a(&S::reserved_1), a(&S::queue), a(&S::exchange), a(&S::routing_key),
           a(&S::arguments))
EMBER_NO_ARGS(QueueUnbindOk)

EMBER_ARGS(BasicQos, a(&S::prefetch_size), a(&S::prefetch_count), a(&S::global))
EMBER_NO_ARGS(BasicQosOk)
EMBER_ARGS(BasicConsume, a(&S::reserved_1), a(&S::queue), a(&S::consumer_tag), a(&S::no_local),
           a(&S::no_ack), a(&S::exclusive), a(&S::no_wait), a(&S::arguments))
EMBER_ARGS(BasicConsumeOk, a(&S::consumer_tag))
EMBER_ARGS(BasicCancel, a(&S::consumer_tag), a(&S::no_wait))
EMBER_ARGS(BasicCancelOk, a(&S::consumer_tag))
EMBER_ARGS(BasicPublish, a(&S::reserved_1), a(&S::exchange), a(&S::routing_key), a(&S::mandatory),
           a(&S::immediate))
EMBER_ARGS(BasicReturn, a(&S::reply_code), a(&S::reply_text), a(&S::exchange), a(&S::routing_key))
EMBER_ARGS(BasicDeliver, a(&S::consumer_tag), a(&S::delivery_tag), a(&S::redelivered),
           a(&S::exchange), a(&S::routing_key))
EMBER_ARGS(BasicGet, a(&S::reserved_1), a(&S::queue), a(&S::no_ack))
EMBER_ARGS(BasicGetOk, a(&S::delivery_tag), a(&S::redelivered), a(&S::exchange), a(&S::routing_key),
           a(&S::message_count))
EMBER_ARGS(BasicGetEmpty, a(&S::reserved_1))
EMBER_ARGS(BasicAck, a(&S::delivery_tag), a(&S::multiple))
EMBER_ARGS(BasicReject, a(&S::delivery_tag), a(&S::requeue))
EMBER_ARGS(BasicRecoverAsync, a(&S::requeue))
EMBER_ARGS(BasicRecover, a(&S::requeue))
EMBER_NO_ARGS(BasicRecoverOk)
EMBER_ARGS(BasicNack, a(&S::delivery_tag), a(&S::multiple), a(&S::requeue))

EMBER_ARGS(ConfirmSelect, a(&S::no_wait))
EMBER_NO_ARGS(ConfirmSelectOk)

#undef EMBER_ARGS
#undef EMBER_NO_ARGS

// ---- generic encode / decode ---------------------------------------------------

// Consecutive bit arguments share octets, lowest bit first.
struct BitPacker {
  Writer& w;
  uint8_t bits = 0;
  int count = 0;
  void put(bool v) {
    if (count == 8) flush();
    if (v) bits = static_cast<uint8_t>(bits | (1u << count));
    ++count;
  }
  void flush() {
    if (count == 0) return;
    w.u8(bits);
    bits = 0;
    count = 0;
  }
};

struct BitUnpacker {
  Reader& r;
  uint8_t bits = 0;
  int left = 0;
  bool get() {
    if (left == 0) {
      bits = r.u8();
      left = 8;
    }
    bool v = (bits & 1) != 0;
    bits = static_cast<uint8_t>(bits >> 1);
    --left;
    return v;
  }
  void reset() { left = 0; }
};

template <class S, class T>
void put_arg(const S& m, const Arg<S, T>& arg, Writer& w, BitPacker& bits) {
  const T& v = m.*(arg.member);
  if constexpr (std::is_same_v<T, bool>) {
    bits.put(v);
    return;
  } else {
    bits.flush();
    if constexpr (std::is_same_v<T, uint8_t>) {
      w.u8(v);
    } else if constexpr (std::is_same_v<T, uint16_t>) {
      w.u16(v);
    } else if constexpr (std::is_same_v<T, uint32_t>) {
      w.u32(v);
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      w.u64(v);
    } else if constexpr (std::is_same_v<T, std::string_view>) {
      if (arg.str == Str::short_) {
        w.shortstr(v);
      } else {
        w.longstr(v);
      }
    } else {
      static_assert(std::is_same_v<T, TableView>);
      write_table(w, v);
    }
  }
}

template <class S, class T>
void get_arg(S& m, const Arg<S, T>& arg, Reader& r, BitUnpacker& bits, TableCheck& table) {
  T& v = m.*(arg.member);
  if constexpr (std::is_same_v<T, bool>) {
    v = bits.get();
    return;
  } else {
    bits.reset();
    if constexpr (std::is_same_v<T, uint8_t>) {
      v = r.u8();
    } else if constexpr (std::is_same_v<T, uint16_t>) {
      v = r.u16();
    } else if constexpr (std::is_same_v<T, uint32_t>) {
      v = r.u32();
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      v = r.u64();
    } else if constexpr (std::is_same_v<T, std::string_view>) {
      v = arg.str == Str::short_ ? r.shortstr() : r.longstr();
    } else {
      static_assert(std::is_same_v<T, TableView>);
      if (!r.ok()) return;
      TableCheck c = read_table(r, v);
      // A truncated table is a truncated argument list; report it as such.
      if (!c.ok() && table.ok() && r.ok()) table = c;
      if (!c.ok() && r.ok()) r.fail();
    }
  }
}

template <class M>
void encode_args(const M& m, Writer& w) {
  BitPacker bits{w};
  std::apply([&](const auto&... arg) { (put_arg(m, arg, w, bits), ...); }, Args<M>::list());
  bits.flush();
}

template <class M>
DecodeStatus decode_args(Reader& r, M& m, TableCheck& table) {
  BitUnpacker bits{r};
  std::apply([&](const auto&... arg) { (get_arg(m, arg, r, bits, table), ...); }, Args<M>::list());
  if (!table.ok()) return DecodeStatus::bad_table;
  if (!r.ok()) return DecodeStatus::truncated;
  if (r.remaining() != 0) return DecodeStatus::trailing_bytes;
  return DecodeStatus::ok;
}

// ---- dispatch by id ------------------------------------------------------------

constexpr uint32_t key(uint16_t c, uint16_t m) {
  return (uint32_t{c} << 16) | m;
}

using DecodeFn = DecodeStatus (*)(Reader&, Method&, TableCheck&);

template <class M>
DecodeStatus decode_as(Reader& r, Method& out, TableCheck& table) {
  M& m = out.emplace<M>();
  return decode_args(r, m, table);
}

struct Entry {
  uint32_t key;
  DecodeFn decode;
  std::string_view name;
};

template <size_t... I>
constexpr auto make_entries(std::index_sequence<I...>) {
  return std::array<Entry, sizeof...(I)>{
      Entry{key(std::variant_alternative_t<I, Method>::class_id,
                std::variant_alternative_t<I, Method>::method_id),
            &decode_as<std::variant_alternative_t<I, Method>>,
            std::variant_alternative_t<I, Method>::name}...};
}

constexpr auto kEntries = make_entries(std::make_index_sequence<std::variant_size_v<Method>>());

const Entry* find_entry(uint16_t c, uint16_t m) noexcept {
  uint32_t k = key(c, m);
  for (const Entry& e : kEntries)
    if (e.key == k) return &e;
  return nullptr;
}

}  // namespace

std::string_view method_name(uint16_t class_id, uint16_t method_id) noexcept {
  const Entry* e = find_entry(class_id, method_id);
  return e ? e->name : std::string_view();
}

uint16_t class_of(const Method& m) noexcept {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::class_id; }, m);
}
uint16_t method_of(const Method& m) noexcept {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::method_id; }, m);
}
std::string_view name_of(const Method& m) noexcept {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::name; }, m);
}

ReplyCode DecodeResult::reply_code() const noexcept {
  switch (status) {
    case DecodeStatus::ok:
      return ReplyCode::reply_success;
    case DecodeStatus::unknown_method:
      return ReplyCode::not_implemented;
    default:
      return ReplyCode::syntax_error;
  }
}

std::string DecodeResult::describe() const {
  std::string name(method_name(class_id, method_id));
  if (name.empty()) name = "method " + std::to_string(class_id) + "." + std::to_string(method_id);
  switch (status) {
    case DecodeStatus::ok:
      return "ok";
    case DecodeStatus::truncated:
      return "truncated arguments of " + name;
    case DecodeStatus::trailing_bytes:
      return "unexpected bytes after the arguments of " + name;
    case DecodeStatus::bad_table:
      return "malformed table in " + name + ": " + table.describe();
    case DecodeStatus::unknown_method:
      return "unknown " + name;
  }
  return "?";
}

DecodeResult decode_method(std::span<const uint8_t> payload, Method& out) noexcept {
  DecodeResult res;
  Reader r(payload);
  res.class_id = r.u16();
  res.method_id = r.u16();
  if (!r.ok()) {
    res.status = DecodeStatus::truncated;
    return res;
  }
  const Entry* e = find_entry(res.class_id, res.method_id);
  if (!e) {
    res.status = DecodeStatus::unknown_method;
    return res;
  }
  res.status = e->decode(r, out, res.table);
  return res;
}

bool encode_method(const Method& m, std::vector<uint8_t>& out) {
  Writer w(out);
  std::visit(
      [&](const auto& x) {
        using M = std::decay_t<decltype(x)>;
        w.u16(M::class_id);
        w.u16(M::method_id);
        encode_args(x, w);
      },
      m);
  return w.ok();
}

// ---- content header -------------------------------------------------------------

bool operator==(const BasicProperties& a, const BasicProperties& b) noexcept {
  using P = BasicProperties;
  if (a.flags != b.flags) return false;
  auto same = [&](P::Flag f, auto P::*m) { return !a.has(f) || a.*m == b.*m; };
  return same(P::kContentType, &P::content_type) &&
         same(P::kContentEncoding, &P::content_encoding) && same(P::kHeaders, &P::headers) &&
         same(P::kDeliveryMode, &P::delivery_mode) && same(P::kPriority, &P::priority) &&
         same(P::kCorrelationId, &P::correlation_id) && same(P::kReplyTo, &P::reply_to) &&
         same(P::kExpiration, &P::expiration) && same(P::kMessageId, &P::message_id) &&
         same(P::kTimestamp, &P::timestamp) && same(P::kType, &P::type) &&
         same(P::kUserId, &P::user_id) && same(P::kAppId, &P::app_id) &&
         same(P::kClusterId, &P::cluster_id);
}

std::string HeaderResult::describe() const {
  char buf[80];
  switch (status) {
    case HeaderStatus::ok:
      return "ok";
    case HeaderStatus::truncated:
      return "truncated content header";
    case HeaderStatus::trailing_bytes:
      return "unexpected bytes after the content header's properties";
    case HeaderStatus::bad_flags:
      std::snprintf(buf, sizeof buf, "content header property flags 0x%04x set reserved bits",
                    flags);
      return buf;
    case HeaderStatus::bad_table:
      return "malformed headers table in content header: " + table.describe();
    case HeaderStatus::bad_weight:
      return "content header weight is not zero";
  }
  return "?";
}

HeaderResult decode_content_header(std::span<const uint8_t> payload, ContentHeader& out) noexcept {
  using P = BasicProperties;
  HeaderResult res;
  Reader r(payload);
  out.class_id = r.u16();
  out.weight = r.u16();
  out.body_size = r.u64();
  uint16_t flags = r.u16();
  res.flags = flags;
  if (!r.ok()) {
    res.status = HeaderStatus::truncated;
    return res;
  }
  if (out.weight != 0) {
    res.status = HeaderStatus::bad_weight;
    return res;
  }
  if (flags & ~P::kAllFlags) {
    res.status = HeaderStatus::bad_flags;
    return res;
  }
  P& p = out.properties;
  p = P();
  p.flags = flags;
  if (flags & P::kContentType) p.content_type = r.shortstr();
  if (flags & P::kContentEncoding) p.content_encoding = r.shortstr();
  if ((flags & P::kHeaders) && r.ok()) {
    TableCheck c = read_table(r, p.headers);
    if (!c.ok() && r.ok()) {
      res.status = HeaderStatus::bad_table;
      res.table = c;
      return res;
    }
  }
  if (flags & P::kDeliveryMode) p.delivery_mode = r.u8();
  if (flags & P::kPriority) p.priority = r.u8();
  if (flags & P::kCorrelationId) p.correlation_id = r.shortstr();
  if (flags & P::kReplyTo) p.reply_to = r.shortstr();
  if (flags & P::kExpiration) p.expiration = r.shortstr();
  if (flags & P::kMessageId) p.message_id = r.shortstr();
  if (flags & P::kTimestamp) p.timestamp = r.u64();
  if (flags & P::kType) p.type = r.shortstr();
  if (flags & P::kUserId) p.user_id = r.shortstr();
  if (flags & P::kAppId) p.app_id = r.shortstr();
  if (flags & P::kClusterId) p.cluster_id = r.shortstr();
  if (!r.ok()) {
    res.status = HeaderStatus::truncated;
  } else if (r.remaining() != 0) {
    res.status = HeaderStatus::trailing_bytes;
  }
  return res;
}

bool encode_content_header(uint64_t body_size, const BasicProperties& p,
                           std::vector<uint8_t>& out) {
  using P = BasicProperties;
  Writer w(out);
  w.u16(60);
  w.u16(0);
  w.u64(body_size);
  uint16_t flags = p.flags & P::kAllFlags;
  w.u16(flags);
  if (flags & P::kContentType) w.shortstr(p.content_type);
  if (flags & P::kContentEncoding) w.shortstr(p.content_encoding);
  if (flags & P::kHeaders) write_table(w, p.headers);
  if (flags & P::kDeliveryMode) w.u8(p.delivery_mode);
  if (flags & P::kPriority) w.u8(p.priority);
  if (flags & P::kCorrelationId) w.shortstr(p.correlation_id);
  if (flags & P::kReplyTo) w.shortstr(p.reply_to);
  if (flags & P::kExpiration) w.shortstr(p.expiration);
  if (flags & P::kMessageId) w.shortstr(p.message_id);
  if (flags & P::kTimestamp) w.u64(p.timestamp);
  if (flags & P::kType) w.shortstr(p.type);
  if (flags & P::kUserId) w.shortstr(p.user_id);
  if (flags & P::kAppId) w.shortstr(p.app_id);
  if (flags & P::kClusterId) w.shortstr(p.cluster_id);
  return w.ok();
}

}  // namespace ember::amqp
