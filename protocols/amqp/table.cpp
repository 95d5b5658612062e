#include "protocols/amqp/table.hpp"

#include <bit>
#include <cinttypes>
#include <cstdio>

namespace ember::amqp {

std::string TableCheck::describe() const {
  char buf[96];
  switch (status) {
    case TableStatus::ok:
      return "ok";
    case TableStatus::truncated:
      std::snprintf(buf, sizeof buf, "field table truncated at offset %zu", offset);
      break;
    case TableStatus::unknown_type:
      if (type >= 0x21 && type < 0x7f) {
        std::snprintf(buf, sizeof buf, "unknown field type '%c' (0x%02x) at offset %zu", type, type,
                      offset);
      } else {
        std::snprintf(buf, sizeof buf, "unknown field type 0x%02x at offset %zu", type, offset);
      }
      break;
    case TableStatus::too_deep:
      std::snprintf(buf, sizeof buf, "field tables nested deeper than %d levels at offset %zu",
                    kMaxTableDepth, offset);
      break;
  }
  return buf;
}

// ---- FieldValue --------------------------------------------------------------

FieldValue FieldValue::boolean(bool v) noexcept {
  return integer(FieldType::boolean, v ? 1 : 0);
}
FieldValue FieldValue::f32(float v) noexcept {
  FieldValue f;
  f.type_ = FieldType::f32;
  f.f32_ = v;
  return f;
}
FieldValue FieldValue::f64(double v) noexcept {
  FieldValue f;
  f.type_ = FieldType::f64;
  f.f64_ = v;
  return f;
}
FieldValue FieldValue::decimal(Decimal v) noexcept {
  return integer(FieldType::decimal, static_cast<int64_t>((uint64_t{v.scale} << 32) | v.value));
}
FieldValue FieldValue::string(std::string_view v) noexcept {
  FieldValue f;
  f.type_ = FieldType::string;
  f.str_ = v;
  return f;
}
FieldValue FieldValue::bytes(std::string_view v) noexcept {
  FieldValue f;
  f.type_ = FieldType::bytes;
  f.str_ = v;
  return f;
}
FieldValue FieldValue::timestamp(uint64_t seconds) noexcept {
  return integer(FieldType::timestamp, static_cast<int64_t>(seconds));
}
FieldValue FieldValue::table(const TableView& v) noexcept {
  FieldValue f;
  f.type_ = FieldType::table;
  f.str_ = Reader::as_view(v.bytes());
  return f;
}
FieldValue FieldValue::array(const ArrayView& v) noexcept {
  FieldValue f;
  f.type_ = FieldType::array;
  f.str_ = Reader::as_view(v.bytes());
  return f;
}

bool FieldValue::is_integer() const noexcept {
  switch (type_) {
    case FieldType::i8:
    case FieldType::u8:
    case FieldType::i16:
    case FieldType::u16:
    case FieldType::i32:
    case FieldType::u32:
    case FieldType::i64:
      return true;
    default:
      return false;
  }
}

Decimal FieldValue::as_decimal() const noexcept {
  if (type_ != FieldType::decimal) return {};
  auto u = static_cast<uint64_t>(int_);
  return Decimal{static_cast<uint8_t>(u >> 32), static_cast<uint32_t>(u)};
}

std::string_view FieldValue::as_string() const noexcept {
  return type_ == FieldType::string || type_ == FieldType::bytes ? str_ : std::string_view();
}

static std::span<const uint8_t> as_span(std::string_view s) noexcept {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TableView FieldValue::as_table() const noexcept {
  return type_ == FieldType::table ? TableView::trusted(as_span(str_)) : TableView();
}

ArrayView FieldValue::as_array() const noexcept {
  return type_ == FieldType::array ? ArrayView::trusted(as_span(str_)) : ArrayView();
}

bool operator==(const FieldValue& a, const FieldValue& b) noexcept {
  return a.type_ == b.type_ && a.int_ == b.int_ &&
         std::bit_cast<uint32_t>(a.f32_) == std::bit_cast<uint32_t>(b.f32_) &&
         std::bit_cast<uint64_t>(a.f64_) == std::bit_cast<uint64_t>(b.f64_) && a.str_ == b.str_;
}

// ---- reading -----------------------------------------------------------------

bool read_value(Reader& r, uint8_t type, FieldValue& out) noexcept {
  out = FieldValue();
  out.type_ = static_cast<FieldType>(type);
  switch (static_cast<FieldType>(type)) {
    case FieldType::boolean:
      out.int_ = r.u8() != 0 ? 1 : 0;
      break;
    case FieldType::i8:
      out.int_ = static_cast<int8_t>(r.u8());
      break;
    case FieldType::u8:
      out.int_ = r.u8();
      break;
    case FieldType::i16:
      out.int_ = static_cast<int16_t>(r.u16());
      break;
    case FieldType::u16:
      out.int_ = r.u16();
      break;
    case FieldType::i32:
      out.int_ = static_cast<int32_t>(r.u32());
      break;
    case FieldType::u32:
      out.int_ = r.u32();
      break;
    case FieldType::i64:
    case FieldType::timestamp:
      out.int_ = static_cast<int64_t>(r.u64());
      break;
    case FieldType::f32:
      out.f32_ = std::bit_cast<float>(r.u32());
      break;
    case FieldType::f64:
      out.f64_ = std::bit_cast<double>(r.u64());
      break;
    case FieldType::decimal: {
      uint64_t scale = r.u8();
      out.int_ = static_cast<int64_t>((scale << 32) | r.u32());
      break;
    }
    case FieldType::string:
    case FieldType::bytes:
    case FieldType::array:
    case FieldType::table:
      out.str_ = r.longstr();
      break;
    case FieldType::void_:
      break;
    default:
      out = FieldValue();
      return false;
  }
  if (!r.ok()) {
    out = FieldValue();
    return false;
  }
  return true;
}

namespace {

TableCheck check_items(std::span<const uint8_t> body, bool named, int depth, int max_depth,
                       const uint8_t* origin) noexcept;

TableCheck check_nested(const FieldValue& v, int depth, int max_depth,
                        const uint8_t* origin) noexcept {
  if (v.type() != FieldType::table && v.type() != FieldType::array) return {};
  return check_items(as_span(v.raw()), v.type() == FieldType::table, depth + 1, max_depth, origin);
}

// Walks every item of a table (named) or array body.
TableCheck check_items(std::span<const uint8_t> body, bool named, int depth, int max_depth,
                       const uint8_t* origin) noexcept {
  if (depth > max_depth)
    return {TableStatus::too_deep, 0, static_cast<size_t>(body.data() - origin)};
  Reader r(body);
  while (r.remaining() > 0) {
    const uint8_t* item = r.position();
    if (named) r.shortstr();
    const uint8_t* type_at = r.position();
    uint8_t type = r.u8();
    if (!r.ok()) return {TableStatus::truncated, 0, static_cast<size_t>(item - origin)};
    FieldValue v;
    if (!read_value(r, type, v)) {
      if (!r.ok()) return {TableStatus::truncated, 0, static_cast<size_t>(type_at - origin)};
      return {TableStatus::unknown_type, type, static_cast<size_t>(type_at - origin)};
    }
    TableCheck nested = check_nested(v, depth, max_depth, origin);
    if (!nested.ok()) return nested;
  }
  return {};
}

// Advances past one item already known to be valid.
const uint8_t* load_item(const uint8_t* at, const uint8_t* end, bool named, std::string_view* name,
                         FieldValue* value) noexcept {
  Reader r(std::span<const uint8_t>(at, static_cast<size_t>(end - at)));
  if (named) *name = r.shortstr();
  uint8_t type = r.u8();
  read_value(r, type, *value);
  return r.ok() ? r.position() : end;
}

}  // namespace

TableCheck TableView::parse(std::span<const uint8_t> body, TableView& out, int max_depth) noexcept {
  TableCheck c = check_items(body, true, 1, max_depth, body.data());
  out = c.ok() ? trusted(body) : TableView();
  return c;
}

TableCheck ArrayView::parse(std::span<const uint8_t> body, ArrayView& out, int max_depth) noexcept {
  TableCheck c = check_items(body, false, 1, max_depth, body.data());
  out = c.ok() ? trusted(body) : ArrayView();
  return c;
}

TableCheck read_table(Reader& r, TableView& out, int max_depth) noexcept {
  out = TableView();
  const uint8_t* start = r.position();
  uint32_t n = r.u32();
  std::span<const uint8_t> body = r.bytes(n);
  if (!r.ok()) return {TableStatus::truncated, 0, 0};
  TableCheck c = TableView::parse(body, out, max_depth);
  // Offsets relative to the table's length field.
  if (!c.ok()) c.offset += static_cast<size_t>(body.data() - start);
  return c;
}

void write_table(Writer& w, const TableView& t) {
  w.u32(static_cast<uint32_t>(t.bytes().size()));
  w.raw(t.bytes().data(), t.bytes().size());
}

void TableView::iterator::load() noexcept {
  if (at_ == end_) return;
  next_ = load_item(at_, end_, true, &field_.name, &field_.value);
}

void TableView::iterator::next() noexcept {
  at_ = next_;
  load();
}

void ArrayView::iterator::load() noexcept {
  if (at_ == end_) return;
  next_ = load_item(at_, end_, false, nullptr, &value_);
}

void ArrayView::iterator::next() noexcept {
  at_ = next_;
  load();
}

size_t TableView::size() const noexcept {
  size_t n = 0;
  for (auto it = begin(); it != end(); ++it)
    ++n;
  return n;
}

size_t ArrayView::size() const noexcept {
  size_t n = 0;
  for (auto it = begin(); it != end(); ++it)
    ++n;
  return n;
}

std::optional<FieldValue> TableView::find(std::string_view name) const noexcept {
  for (const Field& f : *this)
    if (f.name == name) return f.value;
  return std::nullopt;
}

bool operator==(const TableView& a, const TableView& b) noexcept {
  return Reader::as_view(a.bytes_) == Reader::as_view(b.bytes_);
}

bool operator==(const ArrayView& a, const ArrayView& b) noexcept {
  return Reader::as_view(a.bytes_) == Reader::as_view(b.bytes_);
}

// ---- writing -----------------------------------------------------------------

void write_value(Writer& w, const FieldValue& v) {
  w.u8(static_cast<uint8_t>(v.type()));
  switch (v.type()) {
    case FieldType::boolean:
      w.u8(v.as_bool() ? 1 : 0);
      break;
    case FieldType::i8:
    case FieldType::u8:
      w.u8(static_cast<uint8_t>(v.as_int()));
      break;
    case FieldType::i16:
    case FieldType::u16:
      w.u16(static_cast<uint16_t>(v.as_int()));
      break;
    case FieldType::i32:
    case FieldType::u32:
      w.u32(static_cast<uint32_t>(v.as_int()));
      break;
    case FieldType::i64:
      w.u64(static_cast<uint64_t>(v.as_int()));
      break;
    case FieldType::timestamp:
      w.u64(v.as_timestamp());
      break;
    case FieldType::f32:
      w.u32(std::bit_cast<uint32_t>(v.as_float()));
      break;
    case FieldType::f64:
      w.u64(std::bit_cast<uint64_t>(v.as_double()));
      break;
    case FieldType::decimal:
      w.u8(v.as_decimal().scale);
      w.u32(v.as_decimal().value);
      break;
    case FieldType::string:
    case FieldType::bytes:
    case FieldType::array:
    case FieldType::table:
      w.longstr(v.raw());
      break;
    case FieldType::void_:
      break;
  }
}

TableWriter& TableWriter::add(std::string_view name, const FieldValue& v) {
  if (in_array()) {
    ok_ = false;
    return *this;
  }
  Writer w(buf_);
  w.shortstr(name);
  write_value(w, v);
  if (!w.ok()) ok_ = false;
  return *this;
}

TableWriter& TableWriter::add(const FieldValue& v) {
  if (!in_array()) {
    ok_ = false;
    return *this;
  }
  Writer w(buf_);
  write_value(w, v);
  if (!w.ok()) ok_ = false;
  return *this;
}

void TableWriter::open(bool array) {
  if (depth_ + 1 >= kMaxTableDepth) {
    ok_ = false;
    return;
  }
  Writer w(buf_);
  w.u8(static_cast<uint8_t>(array ? FieldType::array : FieldType::table));
  levels_[depth_++] = Level{buf_.size(), array};
  w.u32(0);  // patched by end()
}

TableWriter& TableWriter::begin_table(std::string_view name) {
  if (in_array() || name.size() > 255) {
    ok_ = false;
    return *this;
  }
  Writer(buf_).shortstr(name);
  open(false);
  return *this;
}

TableWriter& TableWriter::begin_array(std::string_view name) {
  if (in_array() || name.size() > 255) {
    ok_ = false;
    return *this;
  }
  Writer(buf_).shortstr(name);
  open(true);
  return *this;
}

TableWriter& TableWriter::begin_table() {
  if (!in_array()) {
    ok_ = false;
    return *this;
  }
  open(false);
  return *this;
}

TableWriter& TableWriter::begin_array() {
  if (!in_array()) {
    ok_ = false;
    return *this;
  }
  open(true);
  return *this;
}

TableWriter& TableWriter::end() {
  if (depth_ == 0) {
    ok_ = false;
    return *this;
  }
  const Level& l = levels_[--depth_];
  size_t n = buf_.size() - l.length_at - 4;
  if (n > UINT32_MAX) ok_ = false;
  Writer(buf_).patch_u32(l.length_at, static_cast<uint32_t>(n));
  return *this;
}

TableView TableWriter::view() const noexcept {
  if (!ok()) return {};
  return TableView::trusted(buf_);
}

void TableWriter::clear() noexcept {
  buf_.clear();
  depth_ = 0;
  ok_ = true;
}

// ---- rendering ---------------------------------------------------------------

namespace {

void render(std::string& out, const FieldValue& v);

void render_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

void render_table(std::string& out, const TableView& t) {
  out += '{';
  bool first = true;
  for (const TableView::Field& f : t) {
    if (!first) out += ", ";
    first = false;
    out += f.name;
    out += ": ";
    render(out, f.value);
  }
  out += '}';
}

void render_array(std::string& out, const ArrayView& a) {
  out += '[';
  bool first = true;
  for (const FieldValue& v : a) {
    if (!first) out += ", ";
    first = false;
    render(out, v);
  }
  out += ']';
}

void render(std::string& out, const FieldValue& v) {
  char buf[64];
  switch (v.type()) {
    case FieldType::boolean:
      out += v.as_bool() ? "true" : "false";
      return;
    case FieldType::i64:
      out += std::to_string(v.as_int());
      return;
    case FieldType::i8:
    case FieldType::u8:
    case FieldType::i16:
    case FieldType::u16:
    case FieldType::i32:
    case FieldType::u32:
      out += std::to_string(v.as_int());
      out += ':';
      out += static_cast<char>(v.type());
      return;
    case FieldType::f32:
      std::snprintf(buf, sizeof buf, "%g:f", static_cast<double>(v.as_float()));
      out += buf;
      return;
    case FieldType::f64:
      std::snprintf(buf, sizeof buf, "%g:d", v.as_double());
      out += buf;
      return;
    case FieldType::decimal:
      std::snprintf(buf, sizeof buf, "%" PRIu32 "e-%u:D", v.as_decimal().value,
                    unsigned{v.as_decimal().scale});
      out += buf;
      return;
    case FieldType::string:
      render_string(out, v.as_string());
      return;
    case FieldType::bytes:
      out += "0x";
      for (char c : v.as_string()) {
        std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(c));
        out += buf;
      }
      return;
    case FieldType::timestamp:
      out += std::to_string(v.as_timestamp());
      out += ":T";
      return;
    case FieldType::table:
      render_table(out, v.as_table());
      return;
    case FieldType::array:
      render_array(out, v.as_array());
      return;
    case FieldType::void_:
      out += "void";
      return;
  }
}

}  // namespace

std::string to_string(const TableView& t) {
  std::string out;
  render_table(out, t);
  return out;
}

std::string to_string(const ArrayView& a) {
  std::string out;
  render_array(out, a);
  return out;
}

std::string to_string(const FieldValue& v) {
  std::string out;
  render(out, v);
  return out;
}

}  // namespace ember::amqp
