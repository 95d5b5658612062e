// Start-up against the endpoint the executor hands over: missing, stale,
// taken, not a socket, too long.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/integration/harness.hpp"

namespace ember_it {
namespace {

// A service expected to refuse to start: its exit status and its log.
std::pair<std::optional<int>, std::string> failed_start(Service::Options o) {
  o.wait_for_socket = false;
  auto svc = Service::start(std::move(o));
  std::optional<int> status = svc->wait_exit(scaled(10s));
  return {status, svc->log()};
}

Service::Options echo_at(const std::string& socket_path) {
  Service::Options o;
  o.program = echo_bin();
  o.socket_path = socket_path;
  return o;
}

TEST(Startup, MissingEndpointExitsTwoNamingTheVariable) {
  for (const std::string& program : {echo_bin(), pi_bin(), test_service_bin()}) {
    Service::Options o;
    o.program = program;
    o.set_endpoint = false;
    auto [status, log] = failed_start(o);
    ASSERT_TRUE(status.has_value()) << program << " is still running";
    EXPECT_EQ(*status, 2) << program;
    EXPECT_NE(log.find("FLAME_INSTANCE_ENDPOINT"), std::string::npos) << log;
  }
}

TEST(Startup, StaleSocketFileIsReplaced) {
  TempDir dir;
  const std::string path = dir.file("stale.sock");
  // What a crashed instance leaves behind: bound, closed, never unlinked.
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  ASSERT_TRUE(S_ISSOCK(st.st_mode));

  Service::Options o = echo_at(path);
  o.wait_for_socket = false;  // the path exists already: wait for the service to say so
  auto svc = Service::start(o);
  ASSERT_TRUE(wait_until(
      [&] {
        return svc->log().find("instance server ready") != std::string::npos || !svc->alive();
      },
      scaled(10s)));
  ASSERT_TRUE(svc->alive()) << svc->log();
  EXPECT_NE(svc->log().find("replacing stale socket"), std::string::npos);
  EXPECT_TRUE(serves(path));
  EXPECT_EQ(svc->terminate(), 0);
  // A clean exit removes its own socket file.
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

TEST(Startup, SocketInUseExitsTwo) {
  auto first = Service::echo();
  auto [status, log] = failed_start(echo_at(first->socket_path()));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 2);
  EXPECT_NE(log.find("in use"), std::string::npos) << log;
  // The first instance is untouched.
  EXPECT_TRUE(serves(first->socket_path()));
  EXPECT_EQ(first->terminate(), 0);
}

TEST(Startup, RegularFileAtThePathExitsTwoAndIsKept) {
  TempDir dir;
  const std::string path = dir.file("not-a-socket");
  write_file(path, "precious");
  auto [status, log] = failed_start(echo_at(path));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 2);
  EXPECT_NE(log.find("not a socket"), std::string::npos) << log;
  EXPECT_EQ(read_file(path), "precious");
}

TEST(Startup, MissingDirectoryExitsTwo) {
  TempDir dir;
  auto [status, log] = failed_start(echo_at(dir.file("no/such/dir/instance.sock")));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 2);
  EXPECT_NE(log.find("directory"), std::string::npos) << log;
}

// sun_path holds 107 bytes and a NUL: 107 works, 108 is refused clearly.
TEST(Startup, SocketPathLengthLimit) {
  TempDir dir;
  ASSERT_LT(dir.path().size(), 90u) << "TMPDIR too long for this test";
  auto path_of = [&](size_t len) {
    std::string p = dir.path() + "/";
    p += std::string(len - p.size() - 5, 'p') + ".sock";
    return p;
  };
  const std::string longest = path_of(107), too_long = path_of(108);
  ASSERT_EQ(longest.size(), 107u);
  ASSERT_EQ(too_long.size(), 108u);

  auto [status, log] = failed_start(echo_at(too_long));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 2);
  EXPECT_NE(log.find("107"), std::string::npos) << log;
  EXPECT_NE(log.find("sun_path"), std::string::npos) << log;

  auto svc = Service::start(echo_at(longest));
  ASSERT_TRUE(svc->alive());
  EXPECT_TRUE(serves(longest));
  EXPECT_EQ(svc->terminate(), 0);
}

}  // namespace
}  // namespace ember_it
