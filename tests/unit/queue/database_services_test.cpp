// queue::Database against the real PostgreSQL of scripts/services.sh (its
// env file sets PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "ember/queue_database.hpp"

namespace ember::queue {
namespace {

class DatabaseServices : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* host = std::getenv("PGHOST");
    if (!host || !std::getenv("PGPORT") || !std::getenv("PGPASSWORD")) {
      if (std::getenv("EMBER_REQUIRE_SERVICES"))
        FAIL() << "EMBER_REQUIRE_SERVICES is set but PGHOST/PGPORT/PGPASSWORD are not: source "
                  "the file `scripts/services.sh env` names";
      GTEST_SKIP() << "no PostgreSQL: run scripts/services.sh start postgres and source its env";
    }
    settings_.host = host;
    settings_.port = static_cast<uint16_t>(std::atoi(std::getenv("PGPORT")));
    settings_.user = std::getenv("PGUSER");
    settings_.database = std::getenv("PGDATABASE");
    settings_.password = std::getenv("PGPASSWORD");
    auto db = Database::connect(settings_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    static int n = 0;
    table_ = "ember_db_test_" + std::to_string(::getpid()) + "_" + std::to_string(++n);
    ASSERT_TRUE(db_->exec("DROP TABLE IF EXISTS " + table_));
    ASSERT_TRUE(db_->exec("CREATE TABLE " + table_ + " (id bigint PRIMARY KEY, note text)"));
  }
  void TearDown() override {
    if (db_) (void)db_->exec("DROP TABLE IF EXISTS " + table_);
  }

  Database::Settings settings_;
  std::unique_ptr<Database> db_;
  std::string table_;
};

TEST_F(DatabaseServices, ParametersRoundTripIncludingNullAndQuotes) {
  auto ins = db_->exec("INSERT INTO " + table_ + " VALUES ($1, $2), ($3, $4)",
                       {"1", "it's \"quoted\"; DROP TABLE x", "2", std::nullopt});
  ASSERT_TRUE(ins) << ins.error().message;
  EXPECT_EQ(ins->affected(), 2u);
  auto rows = db_->exec("SELECT id, note FROM " + table_ + " ORDER BY id");
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 2u);
  ASSERT_EQ(rows->columns(), 2u);
  EXPECT_EQ(rows->column_name(1), "note");
  EXPECT_EQ(rows->get(0, 0), "1");
  EXPECT_EQ(rows->get(0, 1), "it's \"quoted\"; DROP TABLE x");
  EXPECT_EQ(rows->get(1, 1), std::nullopt);
}

TEST_F(DatabaseServices, ServerErrorsCarrySqlstateAndTheStatement) {
  auto r = db_->exec("SELECT * FROM ember_no_such_table");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("SQLSTATE 42P01"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("SELECT * FROM ember_no_such_table"), std::string::npos);
  EXPECT_NE(r.error().message.find(settings_.host + ":" + std::to_string(settings_.port)),
            std::string::npos);
  // A duplicate key is a constraint violation, and the connection stays usable.
  ASSERT_TRUE(db_->exec("INSERT INTO " + table_ + " VALUES (1, 'a')"));
  auto dup = db_->exec("INSERT INTO " + table_ + " VALUES (1, 'b')");
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("SQLSTATE 23505"), std::string::npos);
  EXPECT_TRUE(db_->ensure_connected());
  EXPECT_TRUE(db_->exec("SELECT 1"));
}

TEST_F(DatabaseServices, AnOpenTransactionIsRolledBackBetweenRequests) {
  ASSERT_TRUE(db_->exec("BEGIN"));
  ASSERT_TRUE(db_->exec("INSERT INTO " + table_ + " VALUES (7, 'uncommitted')"));
  db_->reset_transaction();  // what the runtime does after `process`
  auto rows = db_->exec("SELECT count(*) FROM " + table_);
  ASSERT_TRUE(rows) << rows.error().message;
  EXPECT_EQ(rows->get(0, 0), "0");
  // A failed transaction too (PQTRANS_INERROR).
  ASSERT_TRUE(db_->exec("BEGIN"));
  EXPECT_FALSE(db_->exec("SELECT 1/0"));
  db_->reset_transaction();
  EXPECT_TRUE(db_->exec("SELECT 1"));
}

TEST_F(DatabaseServices, AConnectionTheServerDroppedIsReestablished) {
  auto pid = db_->exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid) << pid.error().message;
  std::string backend(*pid->get(0, 0));
  auto killer = Database::connect(settings_);
  ASSERT_TRUE(killer) << killer.error().message;
  auto killed = (*killer)->exec("SELECT pg_terminate_backend($1::int)", {backend});
  ASSERT_TRUE(killed) << killed.error().message;
  ASSERT_EQ(killed->get(0, 0), "t");

  auto lost = db_->exec("SELECT 1");
  ASSERT_FALSE(lost);
  EXPECT_NE(lost.error().message.find("re-established before the next request"), std::string::npos)
      << lost.error().message;
  auto again = db_->ensure_connected();
  ASSERT_TRUE(again) << again.error().message;
  auto rows = db_->exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(rows) << rows.error().message;
  EXPECT_NE(*rows->get(0, 0), backend);
}

TEST_F(DatabaseServices, AWrongPasswordNamesTheServerAndTheConfig) {
  Database::Settings bad = settings_;
  bad.password = "not-the-password";
  auto db = Database::connect(bad);
  ASSERT_FALSE(db);
  EXPECT_NE(db.error().message.find("cannot connect"), std::string::npos) << db.error().message;
  EXPECT_NE(db.error().message.find("password authentication failed"), std::string::npos)
      << db.error().message;
  EXPECT_NE(db.error().message.find("/db document"), std::string::npos);
}

TEST_F(DatabaseServices, ADeferredConnectionOpensOnFirstUseAndRetriesAfterAFailure) {
  auto count_ours = [&] {
    auto rows = db_->exec("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                          {std::string("ember-deferred-test")});
    EXPECT_TRUE(rows) << rows.error().message;
    return rows ? std::string(*rows->get(0, 0)) : std::string();
  };
  Database::Settings s = settings_;
  s.application_name = "ember-deferred-test";
  auto db = Database::deferred(s);
  EXPECT_FALSE(db->opened());
  db->reset_transaction();  // nothing to roll back, nothing opened
  EXPECT_FALSE(db->opened());
  EXPECT_EQ(count_ours(), "0");
  auto rows = db->exec("SELECT 41 + $1::int", {std::string("1")});
  ASSERT_TRUE(rows) << rows.error().message;
  EXPECT_EQ(rows->get(0, 0), "42");
  EXPECT_TRUE(db->opened());
  EXPECT_EQ(count_ours(), "1");
  EXPECT_EQ(db->settings().application_name, "ember-deferred-test");

  Database::Settings bad = settings_;
  bad.password = "not-the-password";
  auto wrong = Database::deferred(bad);
  auto failed = wrong->exec("SELECT 1");
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("password authentication failed"), std::string::npos)
      << failed.error().message;
  EXPECT_FALSE(wrong->opened());  // the next use tries again
  EXPECT_FALSE(wrong->ensure_connected());
}

}  // namespace
}  // namespace ember::queue
