// Config documents: the shapes of shared/spec/slingshot.md, and one exact
// error message per kind of mistake.
#include <gtest/gtest.h>

#include <string>

#include "handlers/queue/config.hpp"

namespace ember::queue {
namespace {

constexpr std::string_view kUrl = "https://sys-map.example/svc";

std::string service_error(std::string_view body) {
  auto r = parse_service_config(body, kUrl);
  EXPECT_FALSE(r) << body;
  return r ? "" : r.error().message;
}

TEST(ServiceConfig, ParsesTheSpecShape) {
  auto r = parse_service_config(R"({
    "in": "simple-microservice-inbound",
    "out": [
      {"case": "case_a", "queues": ["case_a_outbound_1", "case_a_outbound_2"]},
      {"case": "case_b", "queues": ["case_b_outbound"]}
    ]})",
                                kUrl);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->in(), "simple-microservice-inbound");
  ASSERT_EQ(r->out().size(), 2u);
  ASSERT_NE(r->queues_for(Case("case_a")), nullptr);
  EXPECT_EQ(*r->queues_for(Case("case_a")),
            (std::vector<std::string>{"case_a_outbound_1", "case_a_outbound_2"}));
  EXPECT_EQ(r->queues_for(Case("case_c")), nullptr);
  EXPECT_EQ(
      r->outbound_queues(),
      (std::vector<std::string>{"case_a_outbound_1", "case_a_outbound_2", "case_b_outbound"}));
}

TEST(ServiceConfig, BoolIntAndStringCasesAreDistinct) {
  auto r = parse_service_config(R"({"in": "q", "out": [
      {"case": true, "queues": ["bool"]},
      {"case": 1, "queues": ["int"]},
      {"case": "1", "queues": ["str", "bool"]},
      {"case": "true", "queues": []},
      {"case": -9223372036854775808, "queues": ["min"]},
      {"case": 9223372036854775807, "queues": ["max"]}]})",
                                kUrl);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->queues_for(Case(true))->at(0), "bool");
  EXPECT_EQ(r->queues_for(Case(1))->at(0), "int");
  EXPECT_EQ(r->queues_for(Case("1"))->at(0), "str");
  EXPECT_TRUE(r->queues_for(Case("true"))->empty());
  EXPECT_EQ(r->queues_for(Case(false)), nullptr);
  EXPECT_EQ(r->queues_for(Case(INT64_MIN))->at(0), "min");
  EXPECT_EQ(r->queues_for(Case(INT64_MAX))->at(0), "max");
  EXPECT_EQ(r->outbound_queues(), (std::vector<std::string>{"bool", "int", "str", "min", "max"}));
}

TEST(ServiceConfig, EmptyOutAndExtraFieldsAreFine) {
  auto r = parse_service_config(R"({"in": "q", "out": [], "comment": "x"})", kUrl);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->out().empty());
  EXPECT_EQ(r->queues_for(Case(true)), nullptr);
}

TEST(ServiceConfig, Errors) {
  std::string u(kUrl);  // appended, not `+`: GCC 12 misreads the inlined copy under TSan
  u += ": ";
  EXPECT_TRUE(service_error("").starts_with(u + "not valid JSON: "));
  EXPECT_TRUE(service_error("{\"in\": ").starts_with(u + "not valid JSON: "));
  // A number past what a double holds is a parse error too, not an exception (found by fuzzing).
  EXPECT_TRUE(service_error("{\"in\": 16744073E709551616}").starts_with(u + "not valid JSON: "));
  EXPECT_EQ(service_error("[]"), u + "expected a JSON object, got a list of 0 values");
  EXPECT_EQ(service_error("\"x\""), u + "expected a JSON object, got string \"x\"");
  EXPECT_EQ(service_error(R"({"out": []})"), u + "missing field \"in\"");
  EXPECT_EQ(service_error(R"({"in": "q"})"), u + "missing field \"out\"");
  EXPECT_EQ(service_error(R"({"in": ["q"], "out": []})"),
            u + "field \"in\": expected a string, got a list of 1 values");
  EXPECT_EQ(
      service_error(R"({"in": "", "out": []})"),
      u + "field \"in\": expected 1 to 255 bytes without control characters, got string \"\"");
  EXPECT_EQ(service_error(R"({"in": "q", "out": {}})"),
            u + "field \"out\": expected a list, got an object");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [1]})"),
            u + "field \"out[0]\": expected an object, got integer 1");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"queues": []}]})"),
            u + "missing field \"out[0].case\"");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": 1}]})"),
            u + "missing field \"out[0].queues\"");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": 1.5, "queues": []}]})"),
            u + "field \"out[0].case\": expected a bool, an integer or a string, got "
                "non-integer number 1.5");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": 1.0, "queues": []}]})"),
            u + "field \"out[0].case\": expected a bool, an integer or a string, got "
                "non-integer number 1.0");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": null, "queues": []}]})"),
            u + "field \"out[0].case\": expected a bool, an integer or a string, got null");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": [1], "queues": []}]})"),
            u + "field \"out[0].case\": expected a bool, an integer or a string, got a list of 1 "
                "values");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": 9223372036854775808, "queues": []}]})"),
            u + "field \"out[0].case\": integer case above 9223372036854775807: integer "
                "9223372036854775808");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": 1, "queues": "a"}]})"),
            u + "field \"out[0].queues\": expected a list of queue names, got string \"a\"");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": 1, "queues": ["a", 2]}]})"),
            u + "field \"out[0].queues[1]\": expected a string, got integer 2");
  EXPECT_EQ(service_error(R"({"in": "q", "out": [{"case": 1, "queues": ["a\u0001"]}]})"),
            u + "field \"out[0].queues[0]\": expected 1 to 255 bytes without control "
                "characters, got string \"a\\u0001\"");
  EXPECT_EQ(
      service_error(
          R"({"in": "q", "out": [{"case": "x", "queues": []}, {"case": "x", "queues": []}]})"),
      u + "field \"out[1].case\": case \"x\" repeats out[0].case");
}

TEST(ServiceConfig, QueueNameLengthLimit) {
  std::string q255(255, 'q'), q256(256, 'q');
  EXPECT_TRUE(parse_service_config(R"({"in": ")" + q255 + R"(", "out": []})", kUrl));
  EXPECT_FALSE(parse_service_config(R"({"in": ")" + q256 + R"(", "out": []})", kUrl));
  EXPECT_TRUE(parse_service_config(
      R"({"in": "q", "out": [{"case": 1, "queues": [")" + q255 + R"("]}]})", kUrl));
  EXPECT_FALSE(parse_service_config(
      R"({"in": "q", "out": [{"case": 1, "queues": [")" + q256 + R"("]}]})", kUrl));
}

TEST(ServiceConfig, MakeChecksLikeTheParser) {
  EXPECT_TRUE(ServiceConfig::make("q", {{Case(1), {"a"}}, {Case("1"), {"b"}}}));
  auto dup = ServiceConfig::make("q", {{Case(true), {"a"}}, {Case(true), {"b"}}});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().message, "out[1].case true repeats out[0].case");
  EXPECT_FALSE(ServiceConfig::make("", {}));
  EXPECT_FALSE(ServiceConfig::make("q", {{Case(1), {""}}}));
}

TEST(RabbitMqConfig, ParsesOneValueLists) {
  auto r = parse_rabbitmq_config(
      R"({"host": ["h"], "port": [5672], "username": ["u"], "pass": ["ember/rabbitmq"]})",
      "http://c/rabbitmq");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->host, "h");
  EXPECT_EQ(r->port, 5672);
  EXPECT_EQ(r->username, "u");
  EXPECT_EQ(r->pass_entry, "ember/rabbitmq");
  EXPECT_EQ(r->vhost, "/");
}

std::string rabbit_error(std::string_view body) {
  auto r = parse_rabbitmq_config(body, "http://c/rabbitmq");
  EXPECT_FALSE(r) << body;
  return r ? "" : r.error().message;
}

TEST(RabbitMqConfig, Errors) {
  EXPECT_EQ(rabbit_error(R"({"port": [1], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: missing field \"host\"");
  EXPECT_EQ(rabbit_error(R"({"host": "h", "port": [1], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"host\": expected a list with exactly one value, got "
            "string \"h\"");
  EXPECT_EQ(rabbit_error(R"({"host": ["a", "b"], "port": [1], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"host\": expected a list with exactly one value, got a "
            "list of 2 values");
  EXPECT_EQ(rabbit_error(R"({"host": [], "port": [1], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"host\": expected a list with exactly one value, got a "
            "list of 0 values");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": ["5672"], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"port\": expected an integer port 1-65535, got string "
            "\"5672\"");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [0], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"port\": expected an integer port 1-65535, got integer 0");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [65536], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"port\": expected an integer port 1-65535, got integer "
            "65536");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [-1], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"port\": expected an integer port 1-65535, got integer -1");
  EXPECT_EQ(
      rabbit_error(
          R"({"host": ["h"], "port": [18446744073709551615], "username": ["u"], "pass": ["p"]})"),
      "http://c/rabbitmq: field \"port\": expected an integer port 1-65535, got integer "
      "18446744073709551615");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [5672.0], "username": ["u"], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"port\": expected an integer port 1-65535, got non-integer "
            "number 5672.0");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [5672], "pass": ["p"]})"),
            "http://c/rabbitmq: missing field \"username\"");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [5672], "username": [null], "pass": ["p"]})"),
            "http://c/rabbitmq: field \"username\": expected a string, got null");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [5672], "username": ["u"]})"),
            "http://c/rabbitmq: missing field \"pass\"");
  EXPECT_EQ(rabbit_error(R"({"host": ["h"], "port": [5672], "username": ["u"], "pass": [""]})"),
            "http://c/rabbitmq: field \"pass\": expected 1 to 255 bytes without control "
            "characters, got string \"\"");
}

TEST(RabbitMqConfig, PortLimits) {
  EXPECT_EQ(parse_rabbitmq_config(
                R"({"host": ["h"], "port": [1], "username": ["u"], "pass": ["p"]})", "u")
                ->port,
            1);
  EXPECT_EQ(parse_rabbitmq_config(
                R"({"host": ["h"], "port": [65535], "username": ["u"], "pass": ["p"]})", "u")
                ->port,
            65535);
}

TEST(DbConfig, ParsesAndNamesMissingDatabase) {
  auto r = parse_db_config(
      R"({"host": ["127.0.0.1"], "port": [5432], "username": ["ember"], "database": ["ember"], "pass": ["ember/db"]})",
      "http://c/db");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 5432);
  EXPECT_EQ(r->username, "ember");
  EXPECT_EQ(r->database, "ember");
  EXPECT_EQ(r->pass_entry, "ember/db");
  auto bad = parse_db_config(R"({"host": ["h"], "port": [5432], "username": ["u"], "pass": ["p"]})",
                             "http://c/db");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "http://c/db: missing field \"database\"");
  auto two = parse_db_config(
      R"({"host": ["h"], "port": [5432], "username": ["u"], "database": ["a", "b"], "pass": ["p"]})",
      "http://c/db");
  ASSERT_FALSE(two);
  EXPECT_EQ(two.error().message,
            "http://c/db: field \"database\": expected a list with exactly one value, got a list "
            "of 2 values");
}

TEST(ObjectStorageConfig, ParsesHostAndPassEntries) {
  auto r = parse_object_storage_config(
      R"({"host": ["s3.example"], "pass:access-key": ["s3/a"], "pass:secret-key": ["s3/s"]})",
      "http://c/object-storage");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->host, "s3.example");
  EXPECT_TRUE(r->endpoint.tls);
  EXPECT_EQ(r->endpoint.port, 443);
  EXPECT_EQ(r->endpoint.authority(), "s3.example");
  EXPECT_EQ(r->access_key_entry, "s3/a");
  EXPECT_EQ(r->secret_key_entry, "s3/s");

  auto local = parse_object_storage_config(
      R"({"host": ["http://127.0.0.1:9000"], "pass:access-key": ["a"], "pass:secret-key": ["s"]})",
      "u");
  ASSERT_TRUE(local);
  EXPECT_FALSE(local->endpoint.tls);
  EXPECT_EQ(local->endpoint.authority(), "127.0.0.1:9000");

  auto missing = parse_object_storage_config(
      R"({"host": ["s3.example"], "pass:access-key": ["a"]})", "http://c/object-storage");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "http://c/object-storage: missing field \"pass:secret-key\"");
  auto bad_host = parse_object_storage_config(
      R"({"host": ["ftp://x"], "pass:access-key": ["a"], "pass:secret-key": ["s"]})", "u");
  ASSERT_FALSE(bad_host);
  EXPECT_EQ(bad_host.error().message,
            "u: field \"host\": host \"ftp://x\": only http:// and https:// are supported");
}

TEST(BucketName, TrimmedAndChecked) {
  EXPECT_EQ(*parse_bucket_name("bucket-1\n", "u"), "bucket-1");
  EXPECT_EQ(*parse_bucket_name(" \t my.bucket \r\n", "u"), "my.bucket");
  auto empty = parse_bucket_name(" \n", "http://c/svc/in");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "http://c/svc/in: empty bucket name");
  auto inner = parse_bucket_name("a b", "u");
  ASSERT_FALSE(inner);
  EXPECT_EQ(inner.error().message, "u: bucket name has a forbidden byte (0x20) at offset 1");
  auto slash = parse_bucket_name("a/b", "u");
  ASSERT_FALSE(slash);
  EXPECT_EQ(slash.error().message, "u: bucket name has a forbidden byte (0x2f) at offset 1");
  EXPECT_TRUE(parse_bucket_name(std::string(255, 'b'), "u"));
  EXPECT_FALSE(parse_bucket_name(std::string(256, 'b'), "u"));
}

TEST(Endpoint, SchemesPortsAndPaths) {
  auto a = parse_endpoint("sys-map.slingshot.cv");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "sys-map.slingshot.cv");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->url("/svc"), "https://sys-map.slingshot.cv/svc");

  auto b = parse_endpoint("http://127.0.0.1:8080/base/");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->port, 8080);
  EXPECT_EQ(b->base_path, "/base");
  EXPECT_EQ(b->url("/rabbitmq"), "http://127.0.0.1:8080/base/rabbitmq");

  auto c = parse_endpoint("https://[::1]:8443");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->authority(), "[::1]:8443");
  auto d = parse_endpoint("http://example:80");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->authority(), "example");

  for (const char* bad :
       {"", "http://", "ftp://x", "http://:80", "http://h:", "http://h:0", "http://h:65536",
        "http://h:8x", "http://u@h", "[::1", "h/a?b", "http://a b"})
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
  EXPECT_EQ(parse_endpoint("http://h:70000").error().message,
            "host \"http://h:70000\": port must be 1-65535");
}

TEST(ConfigPaths, EncodeNamesOnce) {
  EXPECT_EQ(service_config_path("simple-microservice"), "/simple-microservice");
  EXPECT_EQ(service_config_path("a b/c"), "/a%20b%2Fc");
  EXPECT_EQ(bucket_config_path("svc", "in"), "/svc/in");
  EXPECT_EQ(bucket_config_path("svc", "a%b"), "/svc/a%25b");
}

}  // namespace
}  // namespace ember::queue
