// flame-local's state file: applications, sessions and tasks in SQLite, each
// row one serialized flame.v1 message (Application, Session, Task), so what
// is stored is exactly what the Frontend answers.
//
// Writes are grouped: the manager marks what changed and calls flush() a few
// milliseconds later, one transaction for everything marked (WAL journal,
// synchronous=NORMAL). A crash of the machine may lose the last flush; a
// crash of flame-local loses nothing flushed.
// The file is locked (SQLite's exclusive locking mode): one flame-local per
// state file. Thread: one (the manager's loop).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ember/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace ember::flame::local {

class Store {
 public:
  // Opens (creating if needed) the state file. Errors name the file and what
  // SQLite said.
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Reads everything back, in insertion order of sessions and task order.
  struct Visitor {
    std::function<void(std::string_view application)> application;
    std::function<void(std::string_view session, uint64_t next_task)> session;
    std::function<void(std::string_view session_id, uint64_t seq, std::string_view task)> task;
  };
  Result<void> load(const Visitor& v);

  Result<void> begin();
  Result<void> commit();
  Result<void> put_application(std::string_view name, std::string_view data);
  Result<void> delete_application(std::string_view name);
  Result<void> put_session(std::string_view id, uint64_t created_order, uint64_t next_task,
                           std::string_view data);
  // The session and its tasks.
  Result<void> delete_session(std::string_view id);
  Result<void> put_task(std::string_view session_id, uint64_t seq, std::string_view data);

  const std::string& path() const noexcept { return path_; }

 private:
  Store() = default;
  Result<void> exec(const char* sql);
  Result<void> run(sqlite3_stmt* st, const char* what);
  Error error(const char* what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* put_app_ = nullptr;
  sqlite3_stmt* del_app_ = nullptr;
  sqlite3_stmt* put_session_ = nullptr;
  sqlite3_stmt* del_session_ = nullptr;
  sqlite3_stmt* del_session_tasks_ = nullptr;
  sqlite3_stmt* put_task_ = nullptr;
};

}  // namespace ember::flame::local
