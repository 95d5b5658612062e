// PostgreSQL through libpq: connect, run statements with text parameters,
// re-establish a dropped connection, roll back what a request left open.
#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <string>
#include <vector>

#include "ember/log.hpp"
#include "ember/queue_database.hpp"

namespace ember::queue {
namespace {

// libpq's messages end with a newline (sometimes several lines).
std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s.empty() ? std::string("no detail from libpq") : s;
}

std::string sql_excerpt(std::string_view sql) {
  constexpr size_t kMax = 60;
  std::string s(sql.substr(0, kMax));
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (sql.size() > kMax) s += "...";
  return s;
}

// Server notices (NOTICE, WARNING) go to the log, not to stderr.
void log_notice(void*, const char* message) {
  EMBER_DEBUG("ember.queue.db", "server notice", {"message", trimmed(message)});
}

}  // namespace

// ---- Rows ----

Rows::~Rows() {
  if (result_) PQclear(result_);
}

Rows::Rows(Rows&& other) noexcept : result_(other.result_) {
  other.result_ = nullptr;
}

Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    if (result_) PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

size_t Rows::size() const noexcept {
  return result_ ? static_cast<size_t>(PQntuples(result_)) : 0;
}

size_t Rows::columns() const noexcept {
  return result_ ? static_cast<size_t>(PQnfields(result_)) : 0;
}

std::string_view Rows::column_name(size_t column) const {
  const char* name = result_ ? PQfname(result_, static_cast<int>(column)) : nullptr;
  return name ? std::string_view(name) : std::string_view();
}

std::optional<std::string_view> Rows::get(size_t row, size_t column) const {
  int r = static_cast<int>(row), c = static_cast<int>(column);
  if (PQgetisnull(result_, r, c)) return std::nullopt;
  return std::string_view(PQgetvalue(result_, r, c),
                          static_cast<size_t>(PQgetlength(result_, r, c)));
}

uint64_t Rows::affected() const noexcept {
  if (!result_) return 0;
  std::string_view text = PQcmdTuples(result_);
  uint64_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

// ---- Database ----

Database::Database(Settings settings, PGconn* conn)
    : settings_(std::move(settings)),
      conn_(conn),
      label_("PostgreSQL " + settings_.user + "@" + settings_.host + ":" +
             std::to_string(settings_.port) + "/" + settings_.database) {}

Database::~Database() {
  if (conn_) PQfinish(conn_);
}

PGconn* Database::open(const Settings& settings) {
  std::string port = std::to_string(settings.port);
  std::string timeout = std::to_string(std::max<long long>(1, settings.connect_timeout.count()));
  const char* keys[] = {"host",
                        "port",
                        "user",
                        "dbname",
                        "password",
                        "connect_timeout",
                        "application_name",
                        "client_encoding",
                        nullptr};
  const char* values[] = {settings.host.c_str(),
                          port.c_str(),
                          settings.user.c_str(),
                          settings.database.c_str(),
                          settings.password.c_str(),
                          timeout.c_str(),
                          settings.application_name.c_str(),
                          "UTF8",
                          nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 0);
  if (conn) PQsetNoticeProcessor(conn, &log_notice, nullptr);
  return conn;
}

Result<std::unique_ptr<Database>> Database::connect(Settings settings) {
  std::unique_ptr<Database> db = deferred(std::move(settings));
  if (auto ok = db->ensure_connected(); !ok) return ok.error();
  return db;
}

std::unique_ptr<Database> Database::deferred(Settings settings) {
  return std::unique_ptr<Database>(new Database(std::move(settings), nullptr));
}

Result<Rows> Database::finish(PGresult* r, std::string_view sql) {
  Rows rows(r);  // frees the result on every path
  if (!r) return Error(label_ + ": " + sql_excerpt(sql) + ": " + trimmed(PQerrorMessage(conn_)));
  ExecStatusType status = PQresultStatus(r);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY)
    return rows;
  std::string message = label_ + ": " + sql_excerpt(sql) + ": ";
  if (const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE))
    message += std::string("SQLSTATE ") + state + ": ";
  message += trimmed(PQresultErrorMessage(r));
  if (PQstatus(conn_) != CONNECTION_OK)
    message += " (connection lost; it is re-established before the next request)";
  return Error(std::move(message));
}

Result<Rows> Database::exec(std::string_view sql) {
  if (!conn_)
    if (auto ok = ensure_connected(); !ok) return ok.error();
  std::string text(sql);
  return finish(PQexec(conn_, text.c_str()), sql);
}

Result<Rows> Database::exec(std::string_view sql,
                            std::span<const std::optional<std::string>> params) {
  if (!conn_)
    if (auto ok = ensure_connected(); !ok) return ok.error();
  std::string text(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params)
    values.push_back(p ? p->c_str() : nullptr);
  return finish(PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0),
                sql);
}

Result<Rows> Database::exec(std::string_view sql,
                            std::initializer_list<std::optional<std::string_view>> params) {
  // libpq wants NUL-terminated values.
  std::vector<std::optional<std::string>> owned;
  owned.reserve(params.size());
  for (const auto& p : params)
    owned.push_back(p ? std::optional<std::string>(std::string(*p)) : std::nullopt);
  return exec(sql, std::span<const std::optional<std::string>>(owned));
}

Result<void> Database::ensure_connected() {
  if (!conn_) {
    conn_ = open(settings_);
    if (!conn_) return Error("PostgreSQL: out of memory creating a connection");
    if (PQstatus(conn_) == CONNECTION_OK) return {};
    std::string why = trimmed(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    return Error(label_ + ": cannot connect: " + why +
                 " (check the /db document of the config service and its pass entry)");
  }
  if (PQstatus(conn_) == CONNECTION_OK) return {};
  PQreset(conn_);
  if (PQstatus(conn_) == CONNECTION_OK) return {};
  return Error(label_ + ": connection lost and could not be re-established: " +
               trimmed(PQerrorMessage(conn_)));
}

void Database::reset_transaction() {
  if (!conn_) return;
  PGTransactionStatusType t = PQtransactionStatus(conn_);
  if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR) PQclear(PQexec(conn_, "ROLLBACK"));
}

}  // namespace ember::queue
