// AMQP field tables and values, RabbitMQ dialect.
//
// Decoding gives views: a TableView is the bytes of a field table (after its
// 4-byte length), checked once by TableView::parse(); iterating it and
// find() then cannot fail. Strings, byte arrays and nested tables/arrays are
// views into those same bytes, valid as long as the bytes are (for a
// decoded method: until the callback that delivered it returns).
//
// Types (RabbitMQ's, which differ from the 0-9-1 spec's table for 's', 'u',
// 'i' and 'I'): t bool, b i8, B u8, s i16, u u16, I i32, i u32, l i64,
// f float, d double, D decimal, S long string, x byte array, A array,
// T timestamp, F table, V void. Anything else is an error.
//
// Encoding: TableWriter builds a table (with nested tables and arrays) into
// its own buffer, reused across clear().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/amqp/wire.hpp"

namespace ember::amqp {

enum class FieldType : uint8_t {
  boolean = 't',
  i8 = 'b',
  u8 = 'B',
  i16 = 's',
  u16 = 'u',
  i32 = 'I',
  u32 = 'i',
  i64 = 'l',
  f32 = 'f',
  f64 = 'd',
  decimal = 'D',
  string = 'S',
  bytes = 'x',
  array = 'A',
  timestamp = 'T',
  table = 'F',
  void_ = 'V',
};

// Nesting limit for tables and arrays (the top-level table is depth 1).
inline constexpr int kMaxTableDepth = 16;

struct Decimal {
  uint8_t scale = 0;
  uint32_t value = 0;
  friend bool operator==(const Decimal&, const Decimal&) = default;
};

enum class TableStatus : uint8_t { ok, truncated, unknown_type, too_deep };

// The outcome of checking a table: where and what went wrong.
struct TableCheck {
  TableStatus status = TableStatus::ok;
  uint8_t type = 0;   // the offending type byte (unknown_type)
  size_t offset = 0;  // into the checked bytes
  bool ok() const noexcept { return status == TableStatus::ok; }
  // "unknown field type 'Z' (0x5a) at offset 12", for error texts.
  std::string describe() const;
};

class TableView;
class ArrayView;

// One value. Views point into the bytes it was decoded from (or the memory
// the caller gave a factory).
class FieldValue {
 public:
  FieldValue() noexcept = default;  // void

  static FieldValue boolean(bool v) noexcept;
  static FieldValue i8(int8_t v) noexcept { return integer(FieldType::i8, v); }
  static FieldValue u8(uint8_t v) noexcept { return integer(FieldType::u8, v); }
  static FieldValue i16(int16_t v) noexcept { return integer(FieldType::i16, v); }
  static FieldValue u16(uint16_t v) noexcept { return integer(FieldType::u16, v); }
  static FieldValue i32(int32_t v) noexcept { return integer(FieldType::i32, v); }
  static FieldValue u32(uint32_t v) noexcept { return integer(FieldType::u32, v); }
  static FieldValue i64(int64_t v) noexcept { return integer(FieldType::i64, v); }
  static FieldValue f32(float v) noexcept;
  static FieldValue f64(double v) noexcept;
  static FieldValue decimal(Decimal v) noexcept;
  static FieldValue string(std::string_view v) noexcept;  // 'S'
  static FieldValue bytes(std::string_view v) noexcept;   // 'x'
  static FieldValue timestamp(uint64_t seconds) noexcept;
  static FieldValue table(const TableView& v) noexcept;
  static FieldValue array(const ArrayView& v) noexcept;
  static FieldValue void_() noexcept { return {}; }

  FieldType type() const noexcept { return type_; }
  bool is_integer() const noexcept;

  // Each accessor returns the value when type() matches, else a zero value.
  bool as_bool() const noexcept { return type_ == FieldType::boolean && int_ != 0; }
  // Any of the integer types b B s u I i l, widened.
  int64_t as_int() const noexcept { return is_integer() ? int_ : 0; }
  float as_float() const noexcept { return type_ == FieldType::f32 ? f32_ : 0.0f; }
  double as_double() const noexcept { return type_ == FieldType::f64 ? f64_ : 0.0; }
  Decimal as_decimal() const noexcept;
  // 'S' and 'x'.
  std::string_view as_string() const noexcept;
  uint64_t as_timestamp() const noexcept {
    return type_ == FieldType::timestamp ? static_cast<uint64_t>(int_) : 0;
  }
  TableView as_table() const noexcept;
  ArrayView as_array() const noexcept;

  // Bytes of a string, byte array, table or array (the part after the
  // 4-byte length).
  std::string_view raw() const noexcept { return str_; }

  friend bool operator==(const FieldValue& a, const FieldValue& b) noexcept;

 private:
  static FieldValue integer(FieldType t, int64_t v) noexcept {
    FieldValue f;
    f.type_ = t;
    f.int_ = v;
    return f;
  }
  friend bool read_value(Reader& r, uint8_t type, FieldValue& out) noexcept;

  FieldType type_ = FieldType::void_;
  int64_t int_ = 0;  // integers, bool, timestamp, decimal (scale << 32 | value)
  float f32_ = 0;
  double f64_ = 0;
  std::string_view str_;
};

// Reads one value of `type` (already read) from `r`. The bytes of nested
// tables/arrays are not checked here; see TableView::parse.
bool read_value(Reader& r, uint8_t type, FieldValue& out) noexcept;
void write_value(Writer& w, const FieldValue& v);

class TableView {
 public:
  struct Field {
    std::string_view name;
    FieldValue value;
  };

  class iterator {
   public:
    using value_type = Field;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    const Field& operator*() const noexcept { return field_; }
    const Field* operator->() const noexcept { return &field_; }
    iterator& operator++() noexcept {
      next();
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator t = *this;
      next();
      return t;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.at_ == b.at_; }

   private:
    friend class TableView;
    iterator(const uint8_t* at, const uint8_t* end) noexcept : at_(at), end_(end) { load(); }
    void load() noexcept;
    void next() noexcept;
    const uint8_t* at_ = nullptr;
    const uint8_t* end_ = nullptr;
    const uint8_t* next_ = nullptr;
    Field field_;
  };

  TableView() noexcept = default;

  // Checks `body` (the bytes after a table's length) down to every nested
  // value and, when valid, views it in `out`.
  static TableCheck parse(std::span<const uint8_t> body, TableView& out,
                          int max_depth = kMaxTableDepth) noexcept;
  // Views bytes known to be valid (from TableWriter, or checked before).
  static TableView trusted(std::span<const uint8_t> body) noexcept {
    TableView t;
    t.bytes_ = body;
    return t;
  }

  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  bool empty() const noexcept { return bytes_.empty(); }
  // Number of fields (walks the table).
  size_t size() const noexcept;
  iterator begin() const noexcept { return {bytes_.data(), bytes_.data() + bytes_.size()}; }
  iterator end() const noexcept {
    return {bytes_.data() + bytes_.size(), bytes_.data() + bytes_.size()};
  }
  // The first field named `name`.
  std::optional<FieldValue> find(std::string_view name) const noexcept;

  // Byte-wise equality of the encodings.
  friend bool operator==(const TableView& a, const TableView& b) noexcept;

 private:
  std::span<const uint8_t> bytes_;
};

class ArrayView {
 public:
  class iterator {
   public:
    using value_type = FieldValue;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    const FieldValue& operator*() const noexcept { return value_; }
    const FieldValue* operator->() const noexcept { return &value_; }
    iterator& operator++() noexcept {
      next();
      return *this;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.at_ == b.at_; }

   private:
    friend class ArrayView;
    iterator(const uint8_t* at, const uint8_t* end) noexcept : at_(at), end_(end) { load(); }
    void load() noexcept;
    void next() noexcept;
    const uint8_t* at_ = nullptr;
    const uint8_t* end_ = nullptr;
    const uint8_t* next_ = nullptr;
    FieldValue value_;
  };

  ArrayView() noexcept = default;
  static TableCheck parse(std::span<const uint8_t> body, ArrayView& out,
                          int max_depth = kMaxTableDepth) noexcept;
  static ArrayView trusted(std::span<const uint8_t> body) noexcept {
    ArrayView a;
    a.bytes_ = body;
    return a;
  }

  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  bool empty() const noexcept { return bytes_.empty(); }
  size_t size() const noexcept;
  iterator begin() const noexcept { return {bytes_.data(), bytes_.data() + bytes_.size()}; }
  iterator end() const noexcept {
    return {bytes_.data() + bytes_.size(), bytes_.data() + bytes_.size()};
  }
  friend bool operator==(const ArrayView& a, const ArrayView& b) noexcept;

 private:
  std::span<const uint8_t> bytes_;
};

// Reads a table (4-byte length, then fields) from `r` and checks it. On a
// short read `r` fails and the status is `truncated`.
TableCheck read_table(Reader& r, TableView& out, int max_depth = kMaxTableDepth) noexcept;
// Writes the 4-byte length and the table's bytes.
void write_table(Writer& w, const TableView& t);

// A readable rendering for logs and tests, e.g.
//   {product: "RabbitMQ", capabilities: {publisher_confirms: true}, n: 5:I}
// Integers other than 'l' carry their type letter; 'x' renders as hex.
std::string to_string(const TableView& t);
std::string to_string(const ArrayView& a);
std::string to_string(const FieldValue& v);

// Builds a field table. Misuse (a name over 255 bytes, a named add inside an
// array, end() with nothing open, nesting deeper than kMaxTableDepth) makes
// ok() false; the result is then empty.
class TableWriter {
 public:
  TableWriter() = default;

  TableWriter& add(std::string_view name, const FieldValue& v);  // in a table
  TableWriter& add(const FieldValue& v);                         // in an array
  TableWriter& begin_table(std::string_view name);
  TableWriter& begin_array(std::string_view name);
  TableWriter& begin_table();  // as an element of the open array
  TableWriter& begin_array();
  TableWriter& end();

  // Every level closed and no misuse.
  bool ok() const noexcept { return ok_ && depth_ == 0; }
  // The top-level table; valid until the next change or clear().
  TableView view() const noexcept;
  // Starts over; keeps the buffer's capacity.
  void clear() noexcept;

 private:
  bool in_array() const noexcept { return depth_ > 0 && levels_[depth_ - 1].array; }
  void open(bool array);

  struct Level {
    size_t length_at;  // where the nested value's u32 length goes
    bool array;
  };
  std::vector<uint8_t> buf_;
  Level levels_[kMaxTableDepth];
  int depth_ = 0;  // open nested levels (the top-level table is implicit)
  bool ok_ = true;
};

}  // namespace ember::amqp
