#include "handlers/queue/pass.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace ember::queue {

namespace {

constexpr std::size_t kMaxOut = 64 * 1024;  // a secret's first line is far shorter
constexpr std::size_t kMaxErr = 4 * 1024;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

PassError error(PassError::Kind kind, std::string_view entry, std::string_view what,
                std::string_view stderr_text = {}) {
  std::string msg = "pass show " + std::string(entry) + ": " + std::string(what);
  std::string_view err = trim(stderr_text);
  if (!err.empty()) msg += ": " + std::string(err);
  return PassError{kind, std::move(msg)};
}

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// `pass show FOLDER` prints a tree and exits 0: its first line would pass for
// a secret. Caught here when the store is where pass looks for it.
bool names_folder(std::string_view entry) {
  std::string store;
  if (const char* d = std::getenv("PASSWORD_STORE_DIR"); d && *d)
    store = d;
  else if (const char* h = std::getenv("HOME"); h && *h)
    store = std::string(h) + "/.password-store";
  else
    return false;
  std::string base = store + "/" + std::string(entry);
  return !exists(base + ".gpg") && is_dir(base);
}

struct Fds {
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  ~Fds() {
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
  }
  static void close_one(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace

const char* to_string(PassError::Kind k) noexcept {
  switch (k) {
    case PassError::Kind::InvalidName:
      return "invalid entry name";
    case PassError::Kind::NotInstalled:
      return "pass is not installed";
    case PassError::Kind::NotFound:
      return "entry not found";
    case PassError::Kind::Folder:
      return "entry is a folder";
    case PassError::Kind::GpgFailed:
      return "gpg failed";
    case PassError::Kind::Empty:
      return "empty secret";
    case PassError::Kind::Timeout:
      return "timed out";
    case PassError::Kind::Failed:
      return "failed";
  }
  return "failed";
}

Expected<std::string, PassError> pass_show(std::string_view entry, const PassOptions& options) {
  using Kind = PassError::Kind;
  if (entry.empty() || entry.front() == '-' ||
      entry.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos)
    return error(Kind::InvalidName, entry,
                 "entry names must be non-empty, not start with '-', and have no NUL, CR or LF");
  if (names_folder(entry))
    return error(Kind::Folder, entry, "this names a folder of the password store, not an entry");

  Fds fds;
  if (::pipe2(fds.out, O_CLOEXEC) != 0 || ::pipe2(fds.err, O_CLOEXEC) != 0)
    return error(Kind::Failed, entry, std::string("pipe: ") + std::strerror(errno));

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds.out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds.err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The caller may ignore or block signals (SIGPIPE usually): the child
  // starts with the defaults.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGCHLD);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::string name(entry);
  char show[] = "show";
  char dashes[] = "--";
  char* argv[] = {const_cast<char*>(options.program.c_str()), show, dashes, name.data(), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, options.program.c_str(), &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc == ENOENT || rc == EACCES || rc == ENOTDIR)
    return error(Kind::NotInstalled, entry,
                 "cannot run \"" + options.program + "\" (" + std::strerror(rc) +
                     "): install GNU pass (Debian package pass)");
  if (rc != 0) return error(Kind::Failed, entry, std::string("posix_spawn: ") + std::strerror(rc));
  Fds::close_one(fds.out[1]);
  Fds::close_one(fds.err[1]);

  std::string out, err;
  out.reserve(256);
  bool timed_out = false;
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  char buf[4096];
  while (fds.out[0] >= 0 || fds.err[0] >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p[2];
    nfds_t n = 0;
    int* which[2];
    for (int* fd : {&fds.out[0], &fds.err[0]}) {
      if (*fd < 0) continue;
      p[n] = {*fd, POLLIN, 0};
      which[n++] = fd;
    }
    int ready = ::poll(p, n, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(*which[i], buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        Fds::close_one(*which[i]);
        continue;
      }
      bool is_out = which[i] == &fds.out[0];
      std::string& into = is_out ? out : err;
      std::size_t cap = is_out ? kMaxOut : kMaxErr;
      // Keep draining past the cap so the child never blocks on a full pipe.
      if (into.size() < cap)
        into.append(buf, std::min(static_cast<std::size_t>(got), cap - into.size()));
    }
  }
  OPENSSL_cleanse(buf, sizeof buf);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }

  auto wipe = [&] { OPENSSL_cleanse(out.data(), out.size()); };
  if (timed_out) {
    wipe();
    return error(Kind::Timeout, entry,
                 "no answer within " + std::to_string(options.timeout.count()) + " ms", err);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    wipe();
    std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "killed by signal " + std::to_string(WTERMSIG(status));
    if (err.find("is not in the password store") != std::string::npos)
      return error(Kind::NotFound, entry, "no such entry (" + how + ")", err);
    if (err.find("gpg:") != std::string::npos || err.find("decrypt") != std::string::npos)
      return error(Kind::GpgFailed, entry, "gpg could not decrypt it (" + how + ")", err);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      return error(Kind::NotInstalled, entry, "command not found (" + how + ")", err);
    return error(Kind::Failed, entry, how, err);
  }
  std::string_view first(out);
  auto newline = first.find('\n');
  if (newline == std::string_view::npos && out.size() >= kMaxOut) {
    wipe();
    return error(Kind::Failed, entry, "the first line is longer than 64 KiB");
  }
  first = first.substr(0, newline);
  first = trim(first);
  if (first.empty()) {
    wipe();
    return error(Kind::Empty, entry, "the first line is empty");
  }
  std::string secret(first);
  wipe();
  return secret;
}

}  // namespace ember::queue
