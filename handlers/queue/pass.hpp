// Secrets of the queue face live in GNU pass: `pass show ENTRY`, first line,
// trimmed. This runs it without a shell (posix_spawnp, argv
// {"pass", "show", "--", entry}, stdin /dev/null, the process environment:
// PASSWORD_STORE_DIR, GNUPGHOME, PATH) and classifies failures.
//
// Blocking: waits for the child (tens of ms, gpg is forked), at most
// `timeout`, after which the child is killed. Call it at start-up or on a
// worker thread, never on a loop thread. Thread-safe (no shared state).
// The secret is never logged and is not part of any error message; the
// command's stderr is (pass and gpg do not print secrets there). Buffers that
// held the secret's neighbours are wiped.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ember/expected.hpp"

namespace ember::queue {

struct PassError {
  enum class Kind : std::uint8_t {
    InvalidName,   // empty, starts with '-', has NUL/CR/LF
    NotInstalled,  // the program is not found (or not executable)
    NotFound,      // no such entry in the store
    Folder,        // the entry names a folder of the store, not a secret
    GpgFailed,     // gpg could not decrypt (no secret key, agent, ...)
    Empty,         // the first line is empty after trimming
    Timeout,       // the command did not finish within the timeout
    Failed,        // any other failure (exit status, signal, spawn error)
  };
  Kind kind = Kind::Failed;
  std::string message;  // "pass show NAME: what happened: <stderr>"
};

const char* to_string(PassError::Kind k) noexcept;

struct PassOptions {
  std::string program = "pass";  // looked up on PATH unless it has a '/'
  std::chrono::milliseconds timeout{10000};
};

Expected<std::string, PassError> pass_show(std::string_view entry, const PassOptions& options = {});

}  // namespace ember::queue
