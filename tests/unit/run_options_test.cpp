// RunOptions::from_env: every knob has a default, an environment variable,
// and an error that names the variable when its value is unusable.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "ember/flame.hpp"

namespace ember::flame {
namespace {

constexpr const char* kVars[] = {"FLAME_INSTANCE_ENDPOINT",
                                 "EMBER_MAX_MESSAGE_BYTES",
                                 "EMBER_FLAME_MAX_OUTPUT_BYTES",
                                 "EMBER_MAX_HEADER_BYTES",
                                 "EMBER_MAX_STREAMS",
                                 "EMBER_MAX_FRAME_BYTES",
                                 "EMBER_STREAM_WINDOW_BYTES",
                                 "EMBER_CONNECTION_WINDOW_BYTES",
                                 "EMBER_MAX_CONNECTIONS",
                                 "EMBER_SOCKET_SEND_BUFFER",
                                 "EMBER_BUSY_POLL_US",
                                 "EMBER_DRAIN_TIMEOUT_MS"};

class RunOptionsEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars)
      ::unsetenv(v);
    ::setenv("FLAME_INSTANCE_ENDPOINT", "/tmp/x.sock", 1);
  }
  void TearDown() override {
    for (const char* v : kVars)
      ::unsetenv(v);
  }
};

TEST_F(RunOptionsEnv, DefaultsWithOnlyTheEndpoint) {
  auto o = RunOptions::from_env();
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->endpoint, "/tmp/x.sock");
  EXPECT_EQ(o->max_message_bytes, 64u << 20);
  EXPECT_EQ(o->max_output_bytes, 4u << 20);
  EXPECT_EQ(o->max_frame_bytes, 1u << 20);
  EXPECT_EQ(o->socket_send_buffer, 4u << 20);
  EXPECT_EQ(o->busy_poll.count(), 0);
  EXPECT_EQ(o->drain_timeout.count(), 30'000);
}

TEST_F(RunOptionsEnv, MissingEndpointSaysWhatToDo) {
  ::unsetenv("FLAME_INSTANCE_ENDPOINT");
  auto o = RunOptions::from_env();
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().find("FLAME_INSTANCE_ENDPOINT"), std::string::npos);
  EXPECT_NE(o.error().find("ember flame-run"), std::string::npos);
}

TEST_F(RunOptionsEnv, EveryKnobIsRead) {
  ::setenv("EMBER_MAX_MESSAGE_BYTES", "2MiB", 1);
  ::setenv("EMBER_FLAME_MAX_OUTPUT_BYTES", "16m", 1);
  ::setenv("EMBER_MAX_HEADER_BYTES", "8k", 1);
  ::setenv("EMBER_MAX_STREAMS", "10", 1);
  ::setenv("EMBER_MAX_FRAME_BYTES", "16384", 1);
  ::setenv("EMBER_STREAM_WINDOW_BYTES", "1m", 1);
  ::setenv("EMBER_CONNECTION_WINDOW_BYTES", "2m", 1);
  ::setenv("EMBER_MAX_CONNECTIONS", "3", 1);
  ::setenv("EMBER_SOCKET_SEND_BUFFER", "0", 1);
  ::setenv("EMBER_BUSY_POLL_US", "250", 1);
  ::setenv("EMBER_DRAIN_TIMEOUT_MS", "5s", 1);
  auto o = RunOptions::from_env();
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->max_message_bytes, 2u << 20);
  EXPECT_EQ(o->max_output_bytes, 16u << 20);
  EXPECT_EQ(o->max_header_bytes, 8u << 10);
  EXPECT_EQ(o->max_concurrent_streams, 10u);
  EXPECT_EQ(o->max_frame_bytes, 16384u);
  EXPECT_EQ(o->stream_window_bytes, 1u << 20);
  EXPECT_EQ(o->connection_window_bytes, 2u << 20);
  EXPECT_EQ(o->max_connections, 3u);
  EXPECT_EQ(o->socket_send_buffer, 0u);
  EXPECT_EQ(o->busy_poll.count(), 250);
  EXPECT_EQ(o->drain_timeout.count(), 5000);
}

TEST_F(RunOptionsEnv, BadValuesNameTheirVariable) {
  const std::pair<const char*, const char*> bad[] = {
      {"EMBER_MAX_MESSAGE_BYTES", "lots"}, {"EMBER_MAX_MESSAGE_BYTES", "1"},
      {"EMBER_MAX_FRAME_BYTES", "16383"},  {"EMBER_MAX_FRAME_BYTES", "16m"},
      {"EMBER_MAX_STREAMS", "0"},          {"EMBER_STREAM_WINDOW_BYTES", "4g"},
      {"EMBER_BUSY_POLL_US", "-5"},        {"EMBER_BUSY_POLL_US", "20ms"},
      {"EMBER_DRAIN_TIMEOUT_MS", "soon"},  {"EMBER_SOCKET_SEND_BUFFER", "2g"}};
  for (const auto& [name, value] : bad) {
    SetUp();
    ::setenv(name, value, 1);
    auto o = RunOptions::from_env();
    ASSERT_FALSE(o) << name << "=" << value;
    EXPECT_NE(o.error().find(name), std::string::npos) << o.error();
  }
}

}  // namespace
}  // namespace ember::flame
