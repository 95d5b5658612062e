// flame.v1 hot-path codec, checked against libprotobuf's generated classes
// (an independent implementation of the same wire format).
#include "handlers/flame/wire.hpp"

#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "ember_flame_main_wire.pb.h"
#include "ember_flame_wire.pb.h"
#include "tests/unit/test_util.hpp"

namespace ember::flame::wire {
namespace {

// A hand-rolled protobuf writer, for inputs the generated code cannot make
// (shuffled, duplicated, unknown and malformed fields).
struct Pb {
  std::string out;
  Pb& varint(uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
    return *this;
  }
  Pb& tag(uint32_t field, uint32_t type) { return varint((uint64_t{field} << 3) | type); }
  Pb& bytes(uint32_t field, std::string_view s) {
    tag(field, 2).varint(s.size());
    out.append(s);
    return *this;
  }
  Pb& raw(std::string_view s) {
    out.append(s);
    return *this;
  }
};

std::string id_for(std::mt19937& rng) {
  // ASCII and multi-byte UTF-8, including 4-byte sequences.
  static const char* const kPieces[] = {
      "a", "Z", "9", "-", "_", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x94\xa5"};
  std::string s;
  size_t n = rng() % 40;
  for (size_t i = 0; i < n; ++i)
    s += kPieces[rng() % 8];
  return s;
}

Expected<TaskContext, std::string> decode(const std::string& wire) {
  return decode_task_context(Bytes::copy(wire));
}

TEST(TaskContextDecode, MatchesGeneratedSerializerOnRandomMessages) {
  std::mt19937 rng(42);
  for (int i = 0; i < 500; ++i) {
    ::ember::wire::flame::v1::TaskContext pb;
    pb.set_task_id(id_for(rng));
    pb.set_session_id(id_for(rng));
    int input_kind = static_cast<int>(rng() % 3);  // absent, empty, bytes
    std::string input;
    if (input_kind == 2) input = test::random_bytes(rng() % 3000, rng());
    if (input_kind != 0) pb.set_input(input);
    Bytes message = Bytes::copy(pb.SerializeAsString());

    auto ctx = decode_task_context(message);
    ASSERT_TRUE(ctx) << ctx.error();
    EXPECT_EQ(ctx->task_id, pb.task_id());
    EXPECT_EQ(ctx->session_id, pb.session_id());
    ASSERT_EQ(ctx->input.has_value(), input_kind != 0);
    if (ctx->input) {
      EXPECT_EQ(ctx->input->view(), input);
    }
  }
}

TEST(TaskContextDecode, ViewsPointIntoTheMessageBuffer) {
  ::ember::wire::flame::v1::TaskContext pb;
  pb.set_task_id("task-7");
  pb.set_session_id("session-1");
  pb.set_input(std::string(4096, 'i'));
  Bytes message = Bytes::copy(pb.SerializeAsString());
  auto ctx = decode_task_context(message);
  ASSERT_TRUE(ctx);
  EXPECT_TRUE(test::points_into(message, ctx->task_id.data(), ctx->task_id.size()));
  EXPECT_TRUE(test::points_into(message, ctx->session_id.data(), ctx->session_id.size()));
  ASSERT_TRUE(ctx->input);
  EXPECT_EQ(ctx->input->storage(), message.storage());
  EXPECT_EQ(ctx->input->data() + ctx->input->size(), message.data() + message.size());
}

TEST(TaskContextDecode, ContextKeepsTheBufferAlive) {
  int destroyed = 0;
  std::string wire = Pb().bytes(1, "t").bytes(4, "payload").out;
  std::optional<TaskContext> ctx;
  {
    Bytes message = test::counted_bytes(wire, &destroyed);
    auto r = decode_task_context(message);
    ASSERT_TRUE(r);
    ctx = std::move(*r);
  }
  EXPECT_EQ(destroyed, 0);
  EXPECT_EQ(ctx->task_id, "t");  // still readable: the context holds a reference
  ctx.reset();
  EXPECT_EQ(destroyed, 1);
}

TEST(TaskContextDecode, AbsentAndEmptyInputAreDistinct) {
  auto absent = decode(Pb().bytes(1, "t").out);
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->input.has_value());
  auto empty = decode(Pb().bytes(1, "t").bytes(4, "").out);
  ASSERT_TRUE(empty);
  ASSERT_TRUE(empty->input.has_value());
  EXPECT_TRUE(empty->input->empty());
  auto nothing = decode("");
  ASSERT_TRUE(nothing);
  EXPECT_EQ(nothing->task_id, "");
  EXPECT_FALSE(nothing->input.has_value());
}

TEST(TaskContextDecode, UnknownFieldsOfEveryWireTypeAreSkipped) {
  std::string wire = Pb().tag(3, 0)
                         .varint(1ull << 63)
                         .bytes(1, "task")
                         .tag(9, 1)
                         .raw("12345678")
                         .tag(6, 5)
                         .raw("1234")
                         .bytes(100, "unknown length-delimited")
                         .tag(7, 3)  // a group, with a field inside
                         .tag(1, 0)
                         .varint(5)
                         .tag(7, 4)
                         .bytes(2, "sess")
                         .tag(536870911, 0)  // the largest field number
                         .varint(1)
                         .bytes(4, "in")
                         .out;
  auto ctx = decode(wire);
  ASSERT_TRUE(ctx) << ctx.error();
  EXPECT_EQ(ctx->task_id, "task");
  EXPECT_EQ(ctx->session_id, "sess");
  ASSERT_TRUE(ctx->input);
  EXPECT_EQ(ctx->input->view(), "in");
  ::ember::wire::flame::v1::TaskContext pb;
  ASSERT_TRUE(pb.ParseFromString(wire));
  EXPECT_EQ(pb.task_id(), "task");
}

TEST(TaskContextDecode, FieldOrderDoesNotMatter) {
  std::string wire = Pb().bytes(4, "input").bytes(2, "sess").bytes(1, "task").out;
  auto ctx = decode(wire);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->task_id, "task");
  EXPECT_EQ(ctx->session_id, "sess");
  EXPECT_EQ(ctx->input->view(), "input");
}

TEST(TaskContextDecode, ShuffledFieldsWithUnknownsMatchLibprotobuf) {
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::vector<std::string> fields;
    fields.push_back(Pb().bytes(1, id_for(rng)).out);
    fields.push_back(Pb().bytes(2, id_for(rng)).out);
    if (rng() % 2) fields.push_back(Pb().bytes(4, test::random_bytes(rng() % 300, rng())).out);
    for (int u = 0, n = static_cast<int>(rng() % 4); u < n; ++u)
      fields.push_back(Pb().tag(5 + rng() % 1000, 0).varint(rng()).out);
    if (rng() % 2) fields.push_back(Pb().bytes(1, id_for(rng)).out);  // a repeat: last wins
    std::shuffle(fields.begin(), fields.end(), rng);
    std::string wire;
    for (const std::string& f : fields)
      wire += f;

    ::ember::wire::flame::v1::TaskContext ref;
    ASSERT_TRUE(ref.ParseFromString(wire));
    auto ctx = decode(wire);
    ASSERT_TRUE(ctx) << ctx.error();
    EXPECT_EQ(ctx->task_id, ref.task_id());
    EXPECT_EQ(ctx->session_id, ref.session_id());
    ASSERT_EQ(ctx->input.has_value(), ref.has_input());
    if (ctx->input) {
      EXPECT_EQ(ctx->input->view(), ref.input());
    }
  }
}

TEST(TaskContextDecode, RepeatedSingularFieldLastOneWins) {
  std::string wire =
      Pb().bytes(1, "first").bytes(4, "old").bytes(2, "s").bytes(1, "second").bytes(4, "new").out;
  auto ctx = decode(wire);
  ASSERT_TRUE(ctx);
  ::ember::wire::flame::v1::TaskContext pb;
  ASSERT_TRUE(pb.ParseFromString(wire));
  EXPECT_EQ(ctx->task_id, "second");
  EXPECT_EQ(ctx->task_id, pb.task_id());
  EXPECT_EQ(ctx->input->view(), "new");
  EXPECT_EQ(ctx->input->view(), pb.input());
}

void expect_error(const std::string& wire, std::string_view mentions) {
  auto ctx = decode(wire);
  ASSERT_FALSE(ctx) << "accepted " << testing::PrintToString(wire);
  EXPECT_NE(ctx.error().find(mentions), std::string::npos) << ctx.error();
}

TEST(TaskContextDecode, TruncatedVarintIsAnError) {
  expect_error("\x0a\x80", "truncated");                 // length varint cut short
  expect_error(Pb().bytes(1, "t").raw("\x80").out, "");  // tag varint cut short
}

TEST(TaskContextDecode, TruncatedLengthIsAnError) {
  expect_error(
      "\x0a\x05"
      "ab",
      "field 1 is truncated");
  expect_error(
      "\x22\x03"
      "ab",
      "field 4 is truncated");
  expect_error(Pb().tag(9, 2).varint(10).raw("abc").out, "unknown field 9");
  expect_error(Pb().tag(9, 1).raw("1234").out, "unknown field 9");
}

TEST(TaskContextDecode, LengthAbove32BitsIsAnError) {
  // 2^32 + 2 must not be read as 2: protobuf and prost reject it.
  std::string wire = Pb().tag(1, 2).varint((1ull << 32) + 2).raw("ok").out;
  ::ember::wire::flame::v1::TaskContext pb;
  EXPECT_FALSE(pb.ParseFromString(wire));
  expect_error(wire, "field 1");
  wire = Pb().tag(4, 2).varint((1ull << 32) + 2).raw("ok").out;
  expect_error(wire, "field 4");
}

TEST(TaskContextDecode, WrongWireTypesAreErrors) {
  expect_error(Pb().tag(1, 0).varint(1).out, "field 1 has wire type 0");
  expect_error(Pb().tag(2, 5).raw("1234").out, "field 2 has wire type 5");
  expect_error(Pb().tag(4, 1).raw("12345678").out, "field 4 has wire type 1");
  expect_error(Pb().tag(4, 3).tag(4, 4).out, "field 4 has wire type 3");
  expect_error(Pb().tag(9, 6).out, "");
  expect_error(Pb().tag(9, 7).out, "");
  expect_error(Pb().tag(9, 4).out, "");  // end of a group never opened
}

TEST(TaskContextDecode, InvalidUtf8IdsAreErrors) {
  const char* bad[] = {"\xff",
                       "\xc3",                  // truncated 2-byte sequence
                       "\xc0\x80",              // overlong NUL
                       "\xe0\x80\x80",          // overlong 3-byte
                       "\xed\xa0\x80",          // UTF-16 surrogate
                       "\xf4\x90\x80\x80",      // above U+10FFFF
                       "\xf8\x88\x80\x80\x80",  // 5-byte form
                       "ok\x80"};
  for (const char* b : bad) {
    SCOPED_TRACE(testing::PrintToString(std::string(b)));
    expect_error(Pb().bytes(1, b).out, "task_id is not valid UTF-8");
    expect_error(Pb().bytes(2, b).out, "session_id is not valid UTF-8");
  }
  // The same bytes are fine as input, which is `bytes`.
  EXPECT_TRUE(decode(Pb().bytes(4, "\xff\xc0\x80").out));
  // Boundary code points are valid.
  EXPECT_TRUE(decode(Pb().bytes(1, "\x7f\xc2\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf").out));
}

TEST(TaskContextDecode, TagZeroIsAnError) {
  expect_error(std::string("\x00", 1), "invalid field tag");
  expect_error(std::string("\x02\x00", 2), "invalid field tag");  // field 0, length-delimited
  expect_error(Pb().bytes(1, "t").raw(std::string("\x00", 1)).out, "invalid field tag");
}

TEST(TaskContextDecode, EveryPrefixOfAValidMessageAgreesWithLibprotobuf) {
  ::ember::wire::flame::v1::TaskContext pb;
  pb.set_task_id("t\xc3\xa9sk");
  pb.set_session_id("s");
  pb.set_input(std::string(200, 'x'));
  std::string wire = pb.SerializeAsString() + Pb().tag(12, 0).varint(300).out;
  google::protobuf::LogSilencer quiet;  // libprotobuf logs cut UTF-8 strings
  for (size_t n = 0; n <= wire.size(); ++n) {
    std::string prefix = wire.substr(0, n);
    ::ember::wire::flame::v1::TaskContext ref;
    bool ok = ref.ParseFromString(prefix);
    EXPECT_EQ(static_cast<bool>(decode(prefix)), ok) << "prefix of " << n << " bytes";
  }
}

TEST(TaskResultEncode, AbsentOutputIsAnEmptyMessage) {
  EncodedMessage r = encode_task_success(std::nullopt);
  EXPECT_EQ(r.size(), 0u);
  ::ember::wire::flame::v1::TaskResult pb;
  ASSERT_TRUE(pb.ParseFromString(""));
  EXPECT_EQ(pb.return_code(), 0);
  EXPECT_FALSE(pb.has_output());
}

std::string joined(const EncodedMessage& r) {
  return std::string(reinterpret_cast<const char*>(r.head), r.head_len) + r.body.to_string();
}

TEST(TaskResultEncode, EmptyOutputIsPresent) {
  EncodedMessage r = encode_task_success(Bytes());
  ::ember::wire::flame::v1::TaskResult pb;
  ASSERT_TRUE(pb.ParseFromString(joined(r)));
  EXPECT_EQ(pb.return_code(), 0);
  EXPECT_TRUE(pb.has_output());
  EXPECT_EQ(pb.output(), "");
  EXPECT_FALSE(pb.has_message());
}

TEST(TaskResultEncode, OutputIsSentByReference) {
  for (size_t size : {1u, 127u, 128u, 16383u, 16384u, 1u << 20}) {
    SCOPED_TRACE(size);
    Bytes output = Bytes::copy(test::random_bytes(size, static_cast<uint32_t>(size)));
    EncodedMessage r = encode_task_success(output);
    EXPECT_EQ(r.body.data(), output.data());  // no copy
    EXPECT_EQ(r.size(), r.head_len + size);
    ::ember::wire::flame::v1::TaskResult pb;
    ASSERT_TRUE(pb.ParseFromString(joined(r)));
    EXPECT_EQ(pb.return_code(), 0);
    EXPECT_EQ(pb.output(), output.view());
    EXPECT_EQ(pb.SerializeAsString(), joined(r));  // canonical encoding
  }
}

TEST(TaskResultEncode, FailureCarriesMinusOneAndTheMessage) {
  for (std::string msg : {std::string(), std::string("boom"), std::string(300, 'e'),
                          std::string("caf\xc3\xa9 \xf0\x9f\x94\xa5")}) {
    EncodedMessage r = encode_task_failure(msg);
    ::ember::wire::flame::v1::TaskResult pb;
    ASSERT_TRUE(pb.ParseFromString(joined(r)));
    EXPECT_EQ(pb.return_code(), -1);
    EXPECT_TRUE(pb.has_message());
    EXPECT_EQ(pb.message(), msg);
    EXPECT_FALSE(pb.has_output());
    EXPECT_EQ(pb.SerializeAsString(), joined(r));
  }
}

TEST(SessionContextDecode, FullApplication) {
  ::ember::wire::flame::v1::SessionContext pb;
  pb.set_session_id("s-1");
  auto* app = pb.mutable_application();
  app->set_name("pi");
  app->set_shim(::ember::wire::flame::v1::Wasm);
  app->set_image("img");
  app->set_command("/bin/pi");
  app->set_working_directory("/tmp");
  app->set_url("file:///pi");
  app->set_installer("none");
  pb.set_common_data(std::string("\x00\x01", 2));
  auto ctx = decode_session_context(Bytes::copy(pb.SerializeAsString()));
  ASSERT_TRUE(ctx) << ctx.error().message;
  EXPECT_EQ(ctx->session_id, "s-1");
  EXPECT_EQ(ctx->application.name, "pi");
  EXPECT_EQ(ctx->application.shim, Shim::Wasm);
  EXPECT_EQ(ctx->application.image, "img");
  EXPECT_EQ(ctx->application.command, "/bin/pi");
  EXPECT_EQ(ctx->application.working_directory, "/tmp");
  EXPECT_EQ(ctx->application.url, "file:///pi");
  EXPECT_EQ(ctx->application.installer, "none");
  ASSERT_TRUE(ctx->common_data);
  EXPECT_EQ(ctx->common_data->view(), std::string_view("\x00\x01", 2));
}

TEST(SessionContextDecode, OptionalFieldsAbsentAndCommonDataEmpty) {
  ::ember::wire::flame::v1::SessionContext pb;
  pb.set_session_id("s");
  pb.mutable_application()->set_name("echo");
  auto ctx = decode_session_context(Bytes::copy(pb.SerializeAsString()));
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->application.shim, Shim::Host);
  EXPECT_FALSE(ctx->application.image);
  EXPECT_FALSE(ctx->application.command);
  EXPECT_FALSE(ctx->common_data);

  pb.set_common_data("");
  ctx = decode_session_context(Bytes::copy(pb.SerializeAsString()));
  ASSERT_TRUE(ctx);
  ASSERT_TRUE(ctx->common_data);
  EXPECT_TRUE(ctx->common_data->empty());
}

TEST(SessionContextDecode, MissingApplicationIsAnError) {
  ::ember::wire::flame::v1::SessionContext pb;
  pb.set_session_id("s");
  auto ctx = decode_session_context(Bytes::copy(pb.SerializeAsString()));
  ASSERT_FALSE(ctx);
  EXPECT_EQ(ctx.error().kind, DecodeError::Kind::invalid);
  EXPECT_EQ(ctx.error().message, "SessionContext has no application");
  // An empty application message is present, though.
  pb.mutable_application();
  EXPECT_TRUE(decode_session_context(Bytes::copy(pb.SerializeAsString())));
}

TEST(SessionContextDecode, MalformedIsAnError) {
  auto ctx = decode_session_context(Bytes::copy(std::string("\x0a\x09short", 7)));
  ASSERT_FALSE(ctx);
  EXPECT_EQ(ctx.error().kind, DecodeError::Kind::malformed);
  EXPECT_EQ(ctx.error().message, "malformed SessionContext");
}

// ---- Flame main's edition ----------------------------------------------------

namespace main_pb = ::ember::wire::flame::main;

TEST(SessionContextDecode, MainEditionTokensAndWorkspaces) {
  main_pb::SessionContext pb;
  pb.set_session("s-9");
  pb.mutable_application()->set_name("pi");
  pb.mutable_application()->set_workspace("team-a");
  pb.mutable_application()->set_shim(main_pb::Cri);
  (*pb.mutable_tokens())["storage"] = "tok-1";
  (*pb.mutable_tokens())["cache"] = "tok-2";
  pb.set_workspace("default");
  auto ctx = decode_session_context(Bytes::copy(pb.SerializeAsString()));
  ASSERT_TRUE(ctx) << ctx.error().message;
  EXPECT_EQ(ctx->session_id, "s-9");
  EXPECT_EQ(ctx->application.shim, Shim::Cri);
  EXPECT_EQ(ctx->application.workspace, "team-a");
  EXPECT_EQ(ctx->workspace, "default");
  EXPECT_EQ(ctx->tokens,
            (std::map<std::string, std::string>{{"cache", "tok-2"}, {"storage", "tok-1"}}));
  EXPECT_TRUE(shows_wrapped_wire(*ctx));
}

TEST(SessionContextDecode, V060ContextShowsNoNewerWire) {
  ::ember::wire::flame::v1::SessionContext pb;
  pb.set_session_id("s");
  pb.mutable_application()->set_name("echo");
  auto ctx = decode_session_context(Bytes::copy(pb.SerializeAsString()));
  ASSERT_TRUE(ctx);
  EXPECT_FALSE(shows_wrapped_wire(*ctx));
  EXPECT_TRUE(ctx->tokens.empty());
}

TEST(TaskContextDecode, MainEditionWorkspace) {
  main_pb::TaskContext pb;
  pb.set_task("t");
  pb.set_session("s");
  pb.set_input("in");
  pb.set_workspace("default");
  auto ctx = decode(pb.SerializeAsString());
  ASSERT_TRUE(ctx) << ctx.error();
  EXPECT_EQ(ctx->task_id, "t");
  EXPECT_EQ(ctx->workspace, "default");
  EXPECT_EQ(ctx->input->view(), "in");
  auto bad = decode(Pb().bytes(5, "\xff").out);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "malformed TaskContext: workspace is not valid UTF-8");
}

TEST(TaskResultWrap, MatchesGeneratedWrapperAndKeepsOutputByReference) {
  Bytes output = Bytes::copy(std::string(1000, 'x'));
  EncodedMessage r = wrap_task_result(encode_task_success(output), {});
  EXPECT_EQ(r.body.data(), output.data());  // still by reference
  main_pb::OnTaskInvokeResponse pb;
  ASSERT_TRUE(pb.ParseFromString(joined(r)));
  EXPECT_EQ(pb.task_result().return_code(), 0);
  EXPECT_EQ(pb.task_result().output(), std::string(1000, 'x'));
  EXPECT_FALSE(pb.has_attributes());
  EXPECT_EQ(pb.SerializeAsString(), joined(r));

  // No output: the wrapper still holds an (empty) TaskResult, as prost sends it.
  EncodedMessage none = wrap_task_result(encode_task_success(std::nullopt), {});
  EXPECT_EQ(joined(none), std::string("\x0a\x00", 2));
}

TEST(TaskResultWrap, FailureAndAttributes) {
  std::vector<std::string> attrs = {"cache:a", std::string("\x00\xff", 2)};
  EncodedMessage r = wrap_task_result(encode_task_failure("boom"), attrs);
  main_pb::OnTaskInvokeResponse pb;
  ASSERT_TRUE(pb.ParseFromString(joined(r)));
  EXPECT_EQ(pb.task_result().return_code(), -1);
  EXPECT_EQ(pb.task_result().message(), "boom");
  ASSERT_EQ(pb.attributes().attr_size(), 2);
  EXPECT_EQ(pb.attributes().attr(0), "cache:a");
  EXPECT_EQ(pb.attributes().attr(1), std::string("\x00\xff", 2));
  EXPECT_EQ(joined(r).size(), joined(wrap_task_result(encode_task_failure("boom"), {})).size() +
                                  attributes_size(attrs));
}

TEST(TaskResultDecode, BothEditions) {
  // v0.6.0
  ::ember::wire::flame::v1::TaskResult plain;
  plain.set_output("out");
  auto a = decode_task_result(Bytes::copy(plain.SerializeAsString()));
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->output->view(), "out");
  EXPECT_TRUE(a->attributes.empty());
  // main: wrapped, with attributes
  main_pb::OnTaskInvokeResponse wrapped;
  wrapped.mutable_task_result()->set_return_code(-1);
  wrapped.mutable_task_result()->set_message("bad");
  wrapped.mutable_attributes()->add_attr("k1");
  wrapped.mutable_attributes()->add_attr("k2");
  auto b = decode_task_result(Bytes::copy(wrapped.SerializeAsString()));
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(b->return_code, -1);
  EXPECT_EQ(b->message, "bad");
  EXPECT_FALSE(b->output);
  EXPECT_EQ(b->attributes, (std::vector<std::string>{"k1", "k2"}));
  // Truncated wrappers are errors, not partial results.
  std::string bytes = wrapped.SerializeAsString();
  for (size_t n = 1; n < bytes.size(); ++n) {
    main_pb::OnTaskInvokeResponse ref;
    bool ok = ref.ParseFromString(bytes.substr(0, n));
    if (!ok) {
      EXPECT_FALSE(decode_task_result(Bytes::copy(bytes.substr(0, n)))) << n;
    }
  }
}

TEST(ResultDecode, BothEditions) {
  ::ember::wire::flame::v1::Result plain;
  plain.set_return_code(-1);
  plain.set_message("no");
  auto a = decode_result(Bytes::copy(plain.SerializeAsString()));
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->return_code, -1);
  EXPECT_EQ(a->message, "no");

  Bytes reply = encode_session_enter_reply(Status{}, std::vector<std::string>{"x"});
  main_pb::OnSessionEnterResponse pb;
  ASSERT_TRUE(pb.ParseFromString(std::string(reply.view())));
  EXPECT_TRUE(pb.has_result());
  EXPECT_EQ(pb.result().return_code(), 0);
  auto b = decode_result(reply);
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(b->return_code, 0);
  EXPECT_EQ(b->attributes, std::vector<std::string>{"x"});

  Bytes failed = encode_session_enter_reply(FlameError::internal("nope"), {});
  auto c = decode_result(failed);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->return_code, -1);
  EXPECT_EQ(c->message, "nope");
  EXPECT_FALSE(
      decode_result(Bytes::copy(std::string("\x0a\x05"
                                            "ab",
                                            4))));
}

TEST(ResultEncode, OkAndError) {
  ::ember::wire::flame::v1::Result pb;
  ASSERT_TRUE(pb.ParseFromString(encode_result(Status()).to_string()));
  EXPECT_EQ(pb.return_code(), 0);
  EXPECT_FALSE(pb.has_message());

  ASSERT_TRUE(
      pb.ParseFromString(encode_result(Status(FlameError::internal("disk full"))).to_string()));
  EXPECT_EQ(pb.return_code(), -1);
  EXPECT_EQ(pb.message(), "disk full");

  ASSERT_TRUE(
      pb.ParseFromString(encode_result(Status(FlameError::not_found("model"))).to_string()));
  EXPECT_EQ(pb.return_code(), -1);
  EXPECT_EQ(pb.message(), "'model' not found");
}

TEST(EmptyRequest, WellFormedness) {
  EXPECT_TRUE(is_well_formed(Bytes()));
  EXPECT_TRUE(is_well_formed(Bytes::copy(Pb().bytes(3, "unknown").out)));
  EXPECT_FALSE(is_well_formed(Bytes::copy(std::string("\x0a\x05x", 3))));
  EXPECT_FALSE(is_well_formed(Bytes::copy(std::string("\xff", 1))));
}

}  // namespace
}  // namespace ember::flame::wire
