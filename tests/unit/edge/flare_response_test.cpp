// The native flare Response: header fields are checked as a flare sets them
// (no header injection), kept in the arena, replaced and removed by name.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/arena.hpp"
#include "ember/flare.hpp"

namespace ember::flare {
namespace {

std::string thrown(Response& r, std::string_view name, std::string_view value) {
  try {
    r.add_header(name, value);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

TEST(FlareResponse, RejectsFieldsThatWouldBreakTheHead) {
  Arena arena;
  Scratch scratch(arena);
  Response r(scratch);
  EXPECT_EQ(thrown(r, "", "v"), "response header name is empty");
  // Control bytes show as \xNN: the message cannot break the log line it lands in.
  for (auto [name, shown] :
       std::vector<std::pair<std::string, std::string>>{{"x:y", "x:y"},
                                                        {"x y", "x y"},
                                                        {"x\ty", "x\\x09y"},
                                                        {"x\ry", "x\\x0dy"},
                                                        {"x\ny", "x\\x0ay"},
                                                        {std::string("x\0y", 3), "x\\x00y"},
                                                        {"x(y", "x(y"},
                                                        {"x\x7f", "x\\x7f"},
                                                        {"x\xff", "x\xff"}})
    EXPECT_EQ(thrown(r, name, "v"),
              "response header name \"" + shown + "\" has a character not allowed in a field name");
  for (std::string value :
       std::vector<std::string>{"a\rb", "a\nb", std::string("a\0b", 3), "a\x01b", "a\x7f"})
    EXPECT_EQ(thrown(r, "x-v", value),
              "response header \"x-v\" has a control character in its value");
  EXPECT_TRUE(r.headers().empty()) << "a refused field is not kept";
  // What a value may hold: spaces, tabs, colons, bytes above 0x7f.
  EXPECT_EQ(thrown(r, "X-Fine", "a: b\tc \xc3\xa9"), "");
  EXPECT_EQ(r.header("x-fine").value_or(""), "a: b\tc \xc3\xa9");
}

TEST(FlareResponse, SetReplacesAddAppendsRemoveDrops) {
  Arena arena;
  Scratch scratch(arena);
  Response r(scratch);
  for (int i = 0; i < 20; ++i)  // past the first block of fields
    r.add_header("x-n", std::to_string(i));
  r.set_header("Content-Type", "text/plain");
  r.set_header("content-type", "text/html");
  EXPECT_EQ(r.headers().size(), 21u);
  EXPECT_EQ(r.header("CONTENT-TYPE").value_or(""), "text/html");
  EXPECT_EQ(r.headers()[19].value, "19");
  r.remove_header("X-N");
  ASSERT_EQ(r.headers().size(), 1u);
  EXPECT_EQ(r.headers()[0].name, "content-type");
}

}  // namespace
}  // namespace ember::flare
