// queue::Database without a server: failures name the server and what to check.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ember/queue_database.hpp"

namespace ember::queue {
namespace {

// A loopback port nothing listens on (bound, then released).
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    ADD_FAILURE() << "cannot bind a loopback socket";
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(Database, RefusedConnectionNamesTheServer) {
  Database::Settings s;
  s.host = "127.0.0.1";
  s.port = closed_port();
  s.user = "svc";
  s.database = "jobs";
  s.password = "unused-password";
  s.connect_timeout = std::chrono::seconds(2);
  auto db = Database::connect(s);
  ASSERT_FALSE(db);
  const std::string& m = db.error().message;
  std::string expected = "PostgreSQL svc@127.0.0.1:";
  expected += std::to_string(s.port);
  expected += "/jobs: cannot connect";
  EXPECT_NE(m.find(expected), std::string::npos) << m;
  EXPECT_NE(m.find("Connection refused"), std::string::npos) << m;
}

}  // namespace
}  // namespace ember::queue
