// queue::Database: the PostgreSQL connection a queue microservice's `process`
// gets. One connection per worker, built from the config service's /db
// document and reused across requests (the reference opens one per request);
// a connection the server dropped is re-established before the next request.
//
// Thread: one thread at a time (a worker owns it while `process` runs).
// Errors are values: every message names the server (user@host:port/db) and
// carries PostgreSQL's own text, SQLSTATE included when the server sent one.
// Anything this class does not wrap is reachable through native() (libpq).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ember/error.hpp"

struct pg_conn;
struct pg_result;

namespace ember::queue {

// A query's answer: rows of text values (PostgreSQL's text format), NULL as
// nullopt. Views point into the result and live as long as it.
class Rows {
 public:
  Rows() = default;
  ~Rows();
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;

  std::size_t size() const noexcept;     // rows
  std::size_t columns() const noexcept;  // columns
  std::string_view column_name(std::size_t column) const;
  // Precondition: row < size(), column < columns().
  std::optional<std::string_view> get(std::size_t row, std::size_t column) const;
  // Rows affected by INSERT/UPDATE/DELETE (CommandStatus), 0 otherwise.
  std::uint64_t affected() const noexcept;

 private:
  friend class Database;
  explicit Rows(pg_result* r) noexcept : result_(r) {}
  pg_result* result_ = nullptr;
};

class Database {
 public:
  struct Settings {
    std::string host;
    std::uint16_t port = 5432;
    std::string user;
    std::string database;
    std::string password;
    std::chrono::seconds connect_timeout{10};
    std::string application_name = "ember";
  };

  // Connects (blocking: call it on a worker thread, never on a loop).
  static Result<std::unique_ptr<Database>> connect(Settings settings);
  // Connects on first use (exec or ensure_connected), not now.
  static std::unique_ptr<Database> deferred(Settings settings);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one statement (or several, separated by ';', without parameters).
  Result<Rows> exec(std::string_view sql);
  // $1..$n bound as text values; nullopt binds SQL NULL. Values are never
  // spliced into the SQL text.
  Result<Rows> exec(std::string_view sql, std::span<const std::optional<std::string>> params);
  Result<Rows> exec(std::string_view sql,
                    std::initializer_list<std::optional<std::string_view>> params);

  // True when the connection is usable; otherwise tries to (re-)establish
  // it once. The runtime calls this before each request.
  Result<void> ensure_connected();
  // False for a deferred connection nobody has used yet.
  bool opened() const noexcept { return conn_ != nullptr; }
  // Rolls back a transaction `process` left open, so the next request does
  // not inherit it.
  void reset_transaction();

  // user@host:port/database, for messages.
  const std::string& describe() const noexcept { return label_; }
  // Where it connects (the password included: never log it). Bindings that
  // bring their own driver connect with these.
  const Settings& settings() const noexcept { return settings_; }
  pg_conn* native() noexcept { return conn_; }

 private:
  Database(Settings settings, pg_conn* conn);
  static pg_conn* open(const Settings& settings);
  Result<Rows> finish(pg_result* r, std::string_view sql);

  Settings settings_;
  pg_conn* conn_ = nullptr;
  std::string label_;
};

}  // namespace ember::queue
