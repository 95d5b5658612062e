// Field tables: every RabbitMQ type from hand-built bytes, the writer's
// exact output, x-death style nesting, and malformed tables with the exact
// failure.
#include <gtest/gtest.h>

#include <string>

#include "protocols/amqp/table.hpp"
#include "tests/unit/amqp/amqp_test_util.hpp"

namespace ember::amqp {
namespace {

using test::hex_bytes;
using test::to_hex;

std::span<const uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// One field of every type, as RabbitMQ encodes them.
const std::string kEveryType = hex_bytes(
    "01 't' 't' 01"
    "01 'b' 'b' ff"
    "01 'B' 'B' ff"
    "01 's' 's' ff fe"
    "01 'u' 'u' ff fe"
    "01 'I' 'I' ff ff ff fd"
    "01 'i' 'i' ff ff ff fd"
    "01 'l' 'l' ff ff ff ff ff ff ff fc"
    "01 'f' 'f' 3f c0 00 00"
    "01 'd' 'd' 40 04 00 00 00 00 00 00"
    "01 'D' 'D' 02 00 00 04 d2"
    "01 'S' 'S' 00 00 00 05 'hello'"
    "01 'x' 'x' 00 00 00 03 00 ff 10"
    "01 'A' 'A' 00 00 00 0a 'I' 00 00 00 07 'S' 00 00 00 00"
    "01 'T' 'T' 00 00 00 00 65 4f 5e 80"
    "01 'F' 'F' 00 00 00 04 01 'k' 'b' 05"
    "01 'V' 'V'");

TEST(AmqpTable, DecodesEveryType) {
  TableView t;
  TableCheck c = TableView::parse(span_of(kEveryType), t);
  ASSERT_TRUE(c.ok()) << c.describe();
  EXPECT_EQ(t.size(), 17u);

  EXPECT_EQ(t.find("t")->type(), FieldType::boolean);
  EXPECT_TRUE(t.find("t")->as_bool());
  EXPECT_EQ(t.find("b")->as_int(), -1);
  EXPECT_EQ(t.find("B")->as_int(), 255);
  EXPECT_EQ(t.find("s")->as_int(), -2);
  EXPECT_EQ(t.find("u")->as_int(), 65534);
  EXPECT_EQ(t.find("I")->as_int(), -3);
  EXPECT_EQ(t.find("i")->as_int(), 4294967293);
  EXPECT_EQ(t.find("l")->as_int(), -4);
  EXPECT_EQ(t.find("f")->as_float(), 1.5f);
  EXPECT_EQ(t.find("d")->as_double(), 2.5);
  EXPECT_EQ(t.find("D")->as_decimal(), (Decimal{2, 1234}));
  EXPECT_EQ(t.find("S")->as_string(), "hello");
  EXPECT_EQ(t.find("x")->type(), FieldType::bytes);
  EXPECT_EQ(t.find("x")->as_string(), std::string_view("\x00\xff\x10", 3));
  EXPECT_EQ(t.find("T")->as_timestamp(), 1699700352u);
  EXPECT_EQ(t.find("V")->type(), FieldType::void_);
  EXPECT_FALSE(t.find("missing").has_value());

  ArrayView a = t.find("A")->as_array();
  ASSERT_EQ(a.size(), 2u);
  auto it = a.begin();
  EXPECT_EQ(it->type(), FieldType::i32);
  EXPECT_EQ(it->as_int(), 7);
  ++it;
  EXPECT_EQ(it->type(), FieldType::string);
  EXPECT_EQ(it->as_string(), "");

  TableView nested = t.find("F")->as_table();
  EXPECT_EQ(nested.find("k")->as_int(), 5);
  EXPECT_EQ(nested.find("k")->type(), FieldType::i8);

  // Accessors of the wrong type give zero values, not garbage.
  EXPECT_EQ(t.find("S")->as_int(), 0);
  EXPECT_FALSE(t.find("b")->as_bool());
  EXPECT_TRUE(t.find("D")->as_table().empty());

  EXPECT_EQ(to_string(t),
            "{t: true, b: -1:b, B: 255:B, s: -2:s, u: 65534:u, I: -3:I, i: 4294967293:i, l: -4, "
            "f: 1.5:f, d: 2.5:d, D: 1234e-2:D, S: \"hello\", x: 0x00ff10, A: [7:I, \"\"], "
            "T: 1699700352:T, F: {k: 5:b}, V: void}");
}

TEST(AmqpTable, WriterReproducesEveryTypeExactly) {
  TableWriter w;
  w.add("t", FieldValue::boolean(true))
      .add("b", FieldValue::i8(-1))
      .add("B", FieldValue::u8(255))
      .add("s", FieldValue::i16(-2))
      .add("u", FieldValue::u16(65534))
      .add("I", FieldValue::i32(-3))
      .add("i", FieldValue::u32(4294967293u))
      .add("l", FieldValue::i64(-4))
      .add("f", FieldValue::f32(1.5f))
      .add("d", FieldValue::f64(2.5))
      .add("D", FieldValue::decimal({2, 1234}))
      .add("S", FieldValue::string("hello"))
      .add("x", FieldValue::bytes(std::string_view("\x00\xff\x10", 3)))
      .begin_array("A")
      .add(FieldValue::i32(7))
      .add(FieldValue::string(""))
      .end()
      .add("T", FieldValue::timestamp(1699700352))
      .begin_table("F")
      .add("k", FieldValue::i8(5))
      .end()
      .add("V", FieldValue::void_());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(to_hex(w.view().bytes()), to_hex(kEveryType));

  // Re-encoding decoded values, nested ones by their bytes, is exact too.
  TableView t;
  ASSERT_TRUE(TableView::parse(span_of(kEveryType), t).ok());
  TableWriter again;
  for (const TableView::Field& f : t)
    again.add(f.name, f.value);
  EXPECT_EQ(again.view(), t);
}

TEST(AmqpTable, ClientPropertiesExactBytes) {
  TableWriter w;
  w.add("product", FieldValue::string("ember"))
      .begin_table("capabilities")
      .add("publisher_confirms", FieldValue::boolean(true))
      .add("basic.nack", FieldValue::boolean(true))
      .end();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(to_hex(w.view().bytes()), to_hex(hex_bytes("07 'product' 'S' 00 00 00 05 'ember'"
                                                       "0c 'capabilities' 'F' 00 00 00 22"
                                                       "  12 'publisher_confirms' 't' 01"
                                                       "  0a 'basic.nack' 't' 01")));
}

TEST(AmqpTable, QueueArgumentsAndXDeathHeaders) {
  TableWriter args;
  args.add("x-dead-letter-exchange", FieldValue::string(""))
      .add("x-dead-letter-routing-key", FieldValue::string("in.dead"))
      .add("x-queue-type", FieldValue::string("quorum"))
      .add("x-delivery-limit", FieldValue::i64(5));
  ASSERT_TRUE(args.ok());
  TableView a;
  ASSERT_TRUE(TableView::parse(args.view().bytes(), a).ok());
  EXPECT_EQ(to_string(a),
            "{x-dead-letter-exchange: \"\", x-dead-letter-routing-key: \"in.dead\", "
            "x-queue-type: \"quorum\", x-delivery-limit: 5}");

  // What RabbitMQ puts in a dead-lettered message's headers.
  TableWriter h;
  h.add("x-first-death-queue", FieldValue::string("in"))
      .begin_array("x-death")
      .begin_table()
      .add("count", FieldValue::i64(3))
      .add("reason", FieldValue::string("rejected"))
      .add("queue", FieldValue::string("in"))
      .add("time", FieldValue::timestamp(1700000000))
      .add("exchange", FieldValue::string(""))
      .begin_array("routing-keys")
      .add(FieldValue::string("in"))
      .end()
      .end()
      .end();
  ASSERT_TRUE(h.ok());
  TableView headers;
  ASSERT_TRUE(TableView::parse(h.view().bytes(), headers).ok());
  ArrayView deaths = headers.find("x-death")->as_array();
  ASSERT_EQ(deaths.size(), 1u);
  TableView death = deaths.begin()->as_table();
  EXPECT_EQ(death.find("count")->as_int(), 3);
  EXPECT_EQ(death.find("reason")->as_string(), "rejected");
  EXPECT_EQ(death.find("time")->as_timestamp(), 1700000000u);
  EXPECT_EQ(to_string(death.find("routing-keys")->as_array()), "[\"in\"]");
}

TEST(AmqpTable, EmptyTableAndRead) {
  std::string wire = hex_bytes("00 00 00 00");
  Reader r(span_of(wire));
  TableView t;
  EXPECT_TRUE(read_table(r, t).ok());
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.begin(), t.end());
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(to_string(t), "{}");
}

TEST(AmqpTable, EveryTruncationIsReported) {
  // Each strict prefix of a one-field table is truncated; the full table is fine.
  std::string one = hex_bytes("01 'F' 'F' 00 00 00 09 01 'A' 'A' 00 00 00 02 'b' 01");
  for (size_t n = 1; n < one.size(); ++n) {
    SCOPED_TRACE(n);
    TableView t;
    TableCheck c = TableView::parse(span_of(one).subspan(0, n), t);
    EXPECT_EQ(c.status, TableStatus::truncated);
    EXPECT_TRUE(t.empty());
  }
  TableView t;
  EXPECT_TRUE(TableView::parse(span_of(one), t).ok());

  // The length prefix promises more than there is.
  std::string wire = hex_bytes("00 00 00 05 01 'a' 't'");
  Reader r(span_of(wire));
  EXPECT_EQ(read_table(r, t).status, TableStatus::truncated);
  EXPECT_FALSE(r.ok());

  // A nested table's length runs past its parent's end.
  std::string nested = hex_bytes("01 'F' 'F' 00 00 00 09 01 'a' 't' 01");
  TableCheck c = TableView::parse(span_of(nested), t);
  EXPECT_EQ(c.status, TableStatus::truncated);
  EXPECT_EQ(c.describe(), "field table truncated at offset 2");
}

TEST(AmqpTable, UnknownTypesAreErrors) {
  // 'U' and 'L' are the 0-9-1 spec's, never RabbitMQ's; 'Z' is nobody's.
  for (char type : {'Z', 'U', 'L', 'c', '\0', '\xff'}) {
    SCOPED_TRACE(static_cast<int>(type));
    std::string body = hex_bytes("01 'a' 't' 01 01 'b'") + type + hex_bytes("00 00 00 00");
    TableView t;
    TableCheck c = TableView::parse(span_of(body), t);
    EXPECT_EQ(c.status, TableStatus::unknown_type);
    EXPECT_EQ(c.type, static_cast<uint8_t>(type));
    EXPECT_EQ(c.offset, 6u);
  }
  std::string body = hex_bytes("01 'a' 'Z'");
  TableView t;
  EXPECT_EQ(TableView::parse(span_of(body), t).describe(),
            "unknown field type 'Z' (0x5a) at offset 2");
  // Inside an array inside a table.
  body = hex_bytes("01 'a' 'A' 00 00 00 02 'b' 01 01 'c' 'A' 00 00 00 01 '?'");
  TableCheck c = TableView::parse(span_of(body), t);
  EXPECT_EQ(c.status, TableStatus::unknown_type);
  EXPECT_EQ(c.type, '?');
  EXPECT_EQ(c.offset, 16u);
}

// A table nested `depth` levels deep in total (the outer table is level 1).
std::string nested_tables(int depth) {
  std::string inner;  // the innermost table's body: empty
  for (int level = depth; level > 1; --level) {
    std::string wrapped = hex_bytes("01 'n' 'F'");
    auto n = static_cast<uint32_t>(inner.size());
    wrapped += static_cast<char>(n >> 24);
    wrapped += static_cast<char>(n >> 16);
    wrapped += static_cast<char>(n >> 8);
    wrapped += static_cast<char>(n);
    inner = wrapped + inner;
  }
  return inner;
}

TEST(AmqpTable, NestingDepthLimit) {
  TableView t;
  EXPECT_TRUE(TableView::parse(span_of(nested_tables(kMaxTableDepth)), t).ok());
  TableCheck c = TableView::parse(span_of(nested_tables(kMaxTableDepth + 1)), t);
  EXPECT_EQ(c.status, TableStatus::too_deep);
  EXPECT_TRUE(t.empty());
  // Arrays count as levels too.
  std::string arrays = hex_bytes("01 'a' 'A' 00 00 00 0a 'A' 00 00 00 05 'A' 00 00 00 00");
  EXPECT_TRUE(TableView::parse(span_of(arrays), t, 4).ok());
  EXPECT_EQ(TableView::parse(span_of(arrays), t, 3).status, TableStatus::too_deep);

  // The writer refuses to go past the limit.
  TableWriter w;
  for (int i = 1; i < kMaxTableDepth; ++i)
    w.begin_table("n");
  for (int i = 1; i < kMaxTableDepth; ++i)
    w.end();
  EXPECT_TRUE(w.ok());
  EXPECT_EQ(to_hex(w.view().bytes()), to_hex(nested_tables(kMaxTableDepth)));
  w.clear();
  for (int i = 1; i <= kMaxTableDepth; ++i)
    w.begin_table("n");
  EXPECT_FALSE(w.ok());
}

TEST(AmqpTable, WriterMisuse) {
  {
    TableWriter w;
    w.add(FieldValue::i8(1));  // unnamed at the top level
    EXPECT_FALSE(w.ok());
    EXPECT_TRUE(w.view().empty());
  }
  {
    TableWriter w;
    w.begin_array("a").add("name", FieldValue::i8(1));  // named inside an array
    w.end();
    EXPECT_FALSE(w.ok());
  }
  {
    TableWriter w;
    w.end();
    EXPECT_FALSE(w.ok());
  }
  {
    TableWriter w;
    w.begin_table("open");
    EXPECT_FALSE(w.ok());  // unclosed
    w.end();
    EXPECT_TRUE(w.ok());
  }
  {
    TableWriter w;
    w.add(std::string(256, 'n'), FieldValue::i8(1));
    EXPECT_FALSE(w.ok());
    w.clear();
    w.add(std::string(255, 'n'), FieldValue::i8(1));
    EXPECT_TRUE(w.ok());
  }
  {
    TableWriter w;
    w.begin_table();  // element form outside an array
    EXPECT_FALSE(w.ok());
  }
}

TEST(AmqpTable, IterationOrderAndDuplicates) {
  std::string body = hex_bytes("01 'a' 'b' 01 01 'a' 'b' 02 00 'V'");
  TableView t;
  ASSERT_TRUE(TableView::parse(span_of(body), t).ok());
  std::string names;
  for (const auto& f : t) {
    names += '[';
    names += f.name;
    names += ']';
  }
  EXPECT_EQ(names, "[a][a][]");
  EXPECT_EQ(t.find("a")->as_int(), 1);  // the first wins
  EXPECT_EQ(t.find("")->type(), FieldType::void_);
}

}  // namespace
}  // namespace ember::amqp
