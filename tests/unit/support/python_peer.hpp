// A Python peer (grpcio) for the gRPC client tests: a script run by Debian's
// /usr/bin/python3 as a child process that prints "PORT <n>" once it serves,
// and is SIGKILLed when the object goes.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace ember::test {

// EMBER_REQUIRE_SERVICES set: a missing peer fails the test instead of
// skipping it.
inline bool services_required() {
  const char* v = std::getenv("EMBER_REQUIRE_SERVICES");
  return v && *v && std::string_view(v) != "0";
}

inline int run_command(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

inline bool have_grpcio() {
  static const bool ok = run_command("/usr/bin/python3 -c 'import grpc'") == 0;
  return ok;
}

#define REQUIRE_PEER()                                                                         \
  do {                                                                                         \
    if (!::ember::test::have_grpcio()) {                                                       \
      if (::ember::test::services_required()) FAIL() << "/usr/bin/python3 cannot import grpc"; \
      GTEST_SKIP() << "python3-grpcio not installed";                                          \
    }                                                                                          \
  } while (0)

class PythonPeer {
 public:
  // `args`: the script and its arguments.
  explicit PythonPeer(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    args.insert(args.begin(), "/usr/bin/python3");
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
      pid_ = -1;
      close(fds[0]);
      return;
    }
    // "PORT <n>" once it serves (blocking read: the child writes or dies).
    FILE* f = fdopen(fds[0], "r");
    char line[64] = {};
    if (f && fgets(line, sizeof line, f)) std::sscanf(line, "PORT %hu", &port_);
    if (f) fclose(f);
  }
  ~PythonPeer() { kill(); }
  PythonPeer(const PythonPeer&) = delete;
  PythonPeer& operator=(const PythonPeer&) = delete;

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace ember::test
