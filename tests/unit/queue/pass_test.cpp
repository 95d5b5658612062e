// The `pass show` wrapper: stand-in programs for every failure, then the
// real pass and gpg with a throwaway key when they are installed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "handlers/queue/pass.hpp"

namespace ember::queue {
namespace {

namespace fs = std::filesystem;
using Kind = PassError::Kind;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ember-pass-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

  // An executable shell script; its arguments are "show" "--" ENTRY.
  std::string script(const std::string& name, const std::string& body, bool executable = true) {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    ::chmod(p.c_str(), executable ? 0755 : 0644);
    return p;
  }

 private:
  std::string path_;
};

// Sets an environment variable for one test and restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    had_ = std::getenv(name) != nullptr;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

PassOptions with(const std::string& program) {
  PassOptions o;
  o.program = program;
  return o;
}

TEST(PassShow, FirstLineTrimmed) {
  TempDir d;
  auto p = d.script("pass", "printf '  s3cr3t \\t\\r\\nsecond line\\n'");
  auto r = pass_show("ember/s3/secret-key", with(p));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "s3cr3t");
}

TEST(PassShow, NoTrailingNewline) {
  TempDir d;
  auto p = d.script("pass", "printf 'abc'");
  EXPECT_EQ(*pass_show("e", with(p)), "abc");
}

TEST(PassShow, ArgumentsAreNotInterpretedByAShell) {
  TempDir d;
  auto p = d.script("pass", "printf '%s|' \"$@\"");
  auto r = pass_show("a b;$(touch x)*", with(p));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "show|--|a b;$(touch x)*|");
}

TEST(PassShow, EmptyFirstLine) {
  TempDir d;
  auto p = d.script("pass", "printf ' \\nsecond\\n'");
  auto r = pass_show("e", with(p));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::Empty);
  EXPECT_EQ(r.error().message, "pass show e: the first line is empty");
}

TEST(PassShow, MissingEntry) {
  TempDir d;
  auto p = d.script("pass", "echo \"Error: $3 is not in the password store.\" >&2; exit 1");
  auto r = pass_show("ember/nope", with(p));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::NotFound);
  EXPECT_EQ(r.error().message,
            "pass show ember/nope: no such entry (exit status 1): Error: ember/nope is not in the "
            "password store.");
}

TEST(PassShow, GpgFailure) {
  TempDir d;
  auto p = d.script("pass", "echo 'gpg: decryption failed: No secret key' >&2; exit 2");
  auto r = pass_show("e", with(p));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::GpgFailed);
  EXPECT_EQ(r.error().message,
            "pass show e: gpg could not decrypt it (exit status 2): gpg: decryption failed: No "
            "secret key");
}

TEST(PassShow, OtherFailureCarriesStderrNotStdout) {
  TempDir d;
  auto p = d.script("pass", "echo 'the-secret'; echo boom >&2; exit 3");
  auto r = pass_show("e", with(p));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::Failed);
  EXPECT_EQ(r.error().message, "pass show e: exit status 3: boom");
  EXPECT_EQ(r.error().message.find("the-secret"), std::string::npos);
}

TEST(PassShow, KilledBySignal) {
  TempDir d;
  auto p = d.script("pass", "kill -9 $$");
  auto r = pass_show("e", with(p));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::Failed);
  EXPECT_EQ(r.error().message, "pass show e: killed by signal 9");
}

TEST(PassShow, NotInstalled) {
  auto r = pass_show("e", with("/nonexistent/bin/pass"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::NotInstalled);
  EXPECT_EQ(r.error().message,
            "pass show e: cannot run \"/nonexistent/bin/pass\" (No such file or directory): "
            "install GNU pass (Debian package pass)");
  auto on_path = pass_show("e", with("ember-no-such-pass-program"));
  ASSERT_FALSE(on_path);
  EXPECT_EQ(on_path.error().kind, Kind::NotInstalled);
  TempDir d;
  auto p = d.script("pass", "echo x", /*executable=*/false);
  auto not_exec = pass_show("e", with(p));
  ASSERT_FALSE(not_exec);
  EXPECT_EQ(not_exec.error().kind, Kind::NotInstalled);
}

TEST(PassShow, Timeout) {
  TempDir d;
  auto p = d.script("pass", "exec sleep 30");
  PassOptions o = with(p);
  o.timeout = std::chrono::milliseconds(100);
  auto t0 = std::chrono::steady_clock::now();
  auto r = pass_show("e", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::Timeout);
  EXPECT_EQ(r.error().message, "pass show e: no answer within 100 ms");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(PassShow, HugeOutputIsDrainedAndRefused) {
  TempDir d;
  auto big = d.script("pass", "head -c 1000000 /dev/zero | tr '\\0' a");
  auto r = pass_show("e", with(big));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "pass show e: the first line is longer than 64 KiB");
  // A long tail after a short first line is fine.
  auto tail = d.script("pass", "echo first; head -c 1000000 /dev/zero | tr '\\0' a");
  EXPECT_EQ(*pass_show("e", with(tail)), "first");
}

TEST(PassShow, InvalidNames) {
  for (std::string_view bad :
       {std::string_view(""), std::string_view("-c"), std::string_view("a\nb"),
        std::string_view("a\0b", 3), std::string_view("a\rb")}) {
    auto r = pass_show(bad, with("/nonexistent/never-run"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, Kind::InvalidName);
  }
}

TEST(PassShow, FolderIsRefusedBeforeRunning) {
  TempDir store;
  fs::create_directories(store.path() + "/ember/s3");
  std::ofstream(store.path() + "/ember/db.gpg") << "x";
  ScopedEnv env("PASSWORD_STORE_DIR", store.path());
  auto r = pass_show("ember/s3", with("/nonexistent/never-run"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Kind::Folder);
  EXPECT_EQ(r.error().message,
            "pass show ember/s3: this names a folder of the password store, not an entry");
  // An entry that exists is not mistaken for a folder (the stand-in then runs).
  EXPECT_EQ(pass_show("ember/db", with("/nonexistent/never-run")).error().kind, Kind::NotInstalled);
}

// ---- the real pass ------------------------------------------------------------

bool have(const char* program) {
  std::string cmd = std::string("command -v ") + program + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

int sh(const std::string& cmd) {
  return std::system(cmd.c_str());
}

TEST(PassShowReal, ThrowawayStore) {
  if (!have("pass") || !have("gpg")) GTEST_SKIP() << "pass or gpg not installed";
  TempDir home, store, other_home;
  ::chmod(home.path().c_str(), 0700);
  ::chmod(other_home.path().c_str(), 0700);
  ScopedEnv gh("GNUPGHOME", home.path());
  ScopedEnv ps("PASSWORD_STORE_DIR", store.path() + "/s");
  // ed25519 + cv25519: gpg 2.2's default RSA-3072 takes seconds to generate.
  const std::string gpg = "gpg --batch --pinentry-mode loopback --passphrase '' ";
  ASSERT_EQ(sh(gpg + "--quick-gen-key 'Ember pass test <pass-test@localhost>' ed25519 cert never "
                     ">/dev/null 2>&1"),
            0);
  ASSERT_EQ(sh("fpr=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: "
               "'/^fpr/ {print $10; exit}') && " +
               gpg + "--quick-add-key \"$fpr\" cv25519 encr never >/dev/null 2>&1 && " +
               "pass init \"$fpr\" >/dev/null 2>&1"),
            0);
  ASSERT_EQ(sh("printf 'real-secret  \\nuser: x\\n' | pass insert -m -f ember/s3/secret-key "
               ">/dev/null 2>&1"),
            0);

  auto r = pass_show("ember/s3/secret-key");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "real-secret");

  auto missing = pass_show("ember/s3/nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, Kind::NotFound) << missing.error().message;

  auto folder = pass_show("ember/s3");
  ASSERT_FALSE(folder);
  EXPECT_EQ(folder.error().kind, Kind::Folder);

  {
    // Another GNUPGHOME has no secret key: gpg cannot decrypt.
    ScopedEnv no_key("GNUPGHOME", other_home.path());
    auto gpg = pass_show("ember/s3/secret-key");
    ASSERT_FALSE(gpg);
    EXPECT_EQ(gpg.error().kind, Kind::GpgFailed) << gpg.error().message;
    EXPECT_EQ(gpg.error().message.find("real-secret"), std::string::npos);
    sh("gpgconf --kill all >/dev/null 2>&1");
  }
  sh("gpgconf --kill all >/dev/null 2>&1");
}

}  // namespace
}  // namespace ember::queue
