#include "handlers/flame/local/store.hpp"

#include <sqlite3.h>

namespace ember::flame::local {
namespace {

constexpr const char* kSchema = R"(
PRAGMA locking_mode=EXCLUSIVE;
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
INSERT OR IGNORE INTO meta VALUES ('format', 'ember-flame-local 1');
CREATE TABLE IF NOT EXISTS applications (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, created INTEGER NOT NULL,
                                     next_task INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (session_id TEXT NOT NULL, seq INTEGER NOT NULL,
                                  data BLOB NOT NULL, PRIMARY KEY (session_id, seq));
)";

std::string_view column_text(sqlite3_stmt* st, int i) {
  const void* p = sqlite3_column_blob(st, i);
  int n = sqlite3_column_bytes(st, i);
  return p ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n))
           : std::string_view();
}

void bind(sqlite3_stmt* st, int i, std::string_view v) {
  sqlite3_bind_blob(st, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

}  // namespace

Error Store::error(const char* what) const {
  std::string m = "state file " + path_ + ": " + what + ": ";
  m.append(db_ ? sqlite3_errmsg(db_) : "out of memory");
  return Error(std::move(m));
}

Result<void> Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = "state file " + path_ + ": ";
    m.append(err ? err : "error");
    sqlite3_free(err);
    return Error(std::move(m));
  }
  return {};
}

Result<void> Store::run(sqlite3_stmt* st, const char* what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return error(what);
  return {};
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  std::unique_ptr<Store> s(new Store);
  s->path_ = path;
  int rc =
      sqlite3_open_v2(path.c_str(), &s->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK)
    return s->error("cannot open it (check the directory exists and is writable)");
  sqlite3_busy_timeout(s->db_, 2000);
  if (auto r = s->exec(kSchema); !r) {
    r.error().message.append(
        " (is it a flame-local state file, and is another flame-local using it?)");
    return r.error();
  }
  struct {
    sqlite3_stmt** st;
    const char* sql;
  } stmts[] = {
      {&s->put_app_, "INSERT OR REPLACE INTO applications (name, data) VALUES (?1, ?2)"},
      {&s->del_app_, "DELETE FROM applications WHERE name = ?1"},
      {&s->put_session_,
       "INSERT INTO sessions (id, created, next_task, data) VALUES (?1, ?2, ?3, ?4) "
       "ON CONFLICT(id) DO UPDATE SET next_task = excluded.next_task, data = excluded.data"},
      {&s->del_session_, "DELETE FROM sessions WHERE id = ?1"},
      {&s->del_session_tasks_, "DELETE FROM tasks WHERE session_id = ?1"},
      {&s->put_task_, "INSERT OR REPLACE INTO tasks (session_id, seq, data) VALUES (?1, ?2, ?3)"},
  };
  for (auto& x : stmts) {
    if (sqlite3_prepare_v2(s->db_, x.sql, -1, x.st, nullptr) != SQLITE_OK)
      return s->error("cannot prepare a statement");
  }
  return s;
}

Store::~Store() {
  for (sqlite3_stmt* st :
       {put_app_, del_app_, put_session_, del_session_, del_session_tasks_, put_task_})
    sqlite3_finalize(st);
  sqlite3_close(db_);
}

Result<void> Store::load(const Visitor& v) {
  struct Query {
    const char* sql;
    int kind;
  } queries[] = {{"SELECT data FROM applications ORDER BY rowid", 0},
                 {"SELECT data, next_task FROM sessions ORDER BY created", 1},
                 {"SELECT session_id, seq, data FROM tasks ORDER BY session_id, seq", 2}};
  for (const Query& q : queries) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, q.sql, -1, &st, nullptr) != SQLITE_OK)
      return error("cannot read the state");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (q.kind == 0) {
        v.application(column_text(st, 0));
      } else if (q.kind == 1) {
        v.session(column_text(st, 0), static_cast<uint64_t>(sqlite3_column_int64(st, 1)));
      } else {
        v.task(column_text(st, 0), static_cast<uint64_t>(sqlite3_column_int64(st, 1)),
               column_text(st, 2));
      }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return error("cannot read the state");
  }
  return {};
}

Result<void> Store::begin() {
  return exec("BEGIN");
}
Result<void> Store::commit() {
  return exec("COMMIT");
}

Result<void> Store::put_application(std::string_view name, std::string_view data) {
  bind(put_app_, 1, name);
  bind(put_app_, 2, data);
  return run(put_app_, "cannot save an application");
}

Result<void> Store::delete_application(std::string_view name) {
  bind(del_app_, 1, name);
  return run(del_app_, "cannot delete an application");
}

Result<void> Store::put_session(std::string_view id, uint64_t created_order, uint64_t next_task,
                                std::string_view data) {
  bind(put_session_, 1, id);
  sqlite3_bind_int64(put_session_, 2, static_cast<sqlite3_int64>(created_order));
  sqlite3_bind_int64(put_session_, 3, static_cast<sqlite3_int64>(next_task));
  bind(put_session_, 4, data);
  return run(put_session_, "cannot save a session");
}

Result<void> Store::delete_session(std::string_view id) {
  bind(del_session_tasks_, 1, id);
  if (auto r = run(del_session_tasks_, "cannot delete a session's tasks"); !r) return r;
  bind(del_session_, 1, id);
  return run(del_session_, "cannot delete a session");
}

Result<void> Store::put_task(std::string_view session_id, uint64_t seq, std::string_view data) {
  bind(put_task_, 1, session_id);
  sqlite3_bind_int64(put_task_, 2, static_cast<sqlite3_int64>(seq));
  bind(put_task_, 3, data);
  return run(put_task_, "cannot save a task");
}

}  // namespace ember::flame::local
