/* Unit tests of daemon/conninfo.h: connection strings completed with the
 * server of -D (so `pilotd train -D DIR --model-dsn "dbname=app"` reaches the
 * server the service serves, whatever PGHOST and PGPORT say), and shown
 * without their password. */
#include "conninfo.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace pilotd;

namespace {

/* A data directory whose postmaster.pid names port 54321 and socket
 * directory SOCK (the layout PostgreSQL writes: pid, data directory, start
 * time, port, socket directory, listen address, ...). */
struct DataDir {
    std::string path;
    explicit DataDir(const std::string &sock = "/tmp/pp sock's") {
        char tmpl[] = "/tmp/pp_conninfo.XXXXXX";
        path = mkdtemp(tmpl);
        std::ofstream(path + "/postmaster.pid") << "4242\n" << path << "\n1700000000\n54321\n" << sock
                                                << "\nlocalhost\n  5432001  12345\nready   \n";
    }
    ~DataDir() {
        unlink((path + "/postmaster.pid").c_str());
        rmdir(path.c_str());
    }
};

} // namespace

TEST(Conninfo, PostmasterAddress) {
    DataDir d;
    std::string port, sock;
    ASSERT_TRUE(postmaster_address(d.path, &port, &sock));
    EXPECT_EQ(port, "54321");
    EXPECT_EQ(sock, "/tmp/pp sock's");
    std::string p2, s2;
    EXPECT_FALSE(postmaster_address("/nonexistent/pg_pilot", &p2, &s2));
}

TEST(Conninfo, DsnWithoutServerGoesToTheServerOfTheDataDirectory) {
    DataDir d;
    const std::string dsn = dsn_for_server_of("dbname=app user=pilotd", d.path);
    /* quoted so that a socket directory with blanks and quotes survives */
    EXPECT_EQ(dsn, "host='/tmp/pp sock\\'s' port='54321' dbname=app user=pilotd");
    EXPECT_EQ(redacted_dsn(dsn), "user=pilotd dbname=app host=/tmp/pp sock's port=54321");
    EXPECT_EQ(dsn_for_server_of("", d.path), "host='/tmp/pp sock\\'s' port='54321'");
}

TEST(Conninfo, DsnNamingAServerIsLeftAlone) {
    DataDir d;
    for (const char *dsn : {"dbname=app host=db.example.com", "dbname=app port=6543", "hostaddr=10.0.0.1 dbname=app",
                            "service=pilot", "postgresql://db.example.com/app", "postgres:///app?port=6543"})
        EXPECT_EQ(dsn_for_server_of(dsn, d.path), dsn);
    /* no running server: unchanged (libpq's defaults apply, and say what failed) */
    EXPECT_EQ(dsn_for_server_of("dbname=app", "/nonexistent/pg_pilot"), "dbname=app");
    EXPECT_EQ(dsn_for_server_of("dbname=app", ""), "dbname=app");
    /* not a connection string: unchanged, for libpq's own error message */
    EXPECT_EQ(dsn_for_server_of("dbname='unterminated", d.path), "dbname='unterminated");
}

TEST(Conninfo, PasswordsAreNeverShown) {
    EXPECT_EQ(redacted_dsn("dbname=app password=secret user=x"), "user=x password=******** dbname=app");
    EXPECT_EQ(redacted_dsn("dbname='unterminated"), "(unparsable connection string)");
}

/* model-databases: the service trains each database with model-dsn's
 * connection, its database name replaced */
TEST(Conninfo, DsnWithAnotherDatabaseKeepsEverythingElse) {
    EXPECT_EQ(dsn_with_dbname("dbname=postgres user=pilotd", "app"), "user='pilotd' dbname='app'");
    EXPECT_EQ(dsn_with_dbname("user=pilotd host=/run/pg port=5433", "my db's"),
              "user='pilotd' host='/run/pg' port='5433' dbname='my db\\'s'");
    EXPECT_EQ(dsn_with_dbname("postgresql://pilotd@localhost:5433/postgres?application_name=x", "app"),
              "user='pilotd' host='localhost' port='5433' application_name='x' dbname='app'");
    EXPECT_EQ(dsn_with_dbname("this is = not a dsn", "app"), "") << "unparsable: nothing to connect to";
}

/* a standby's pilotd reads its own replica, whatever server its store DSN names */
TEST(Conninfo, DsnOnTheLocalServerDropsTheServerItNames) {
    EXPECT_EQ(dsn_on_local_server("host=primary.example port=5433 dbname=store user=pilotd"),
              "user='pilotd' dbname='store'");
    EXPECT_EQ(dsn_on_local_server("postgresql://pilotd@primary:5433/store"), "user='pilotd' dbname='store'");
    DataDir d;
    EXPECT_EQ(dsn_for_server_of(dsn_on_local_server("host=primary port=5433 dbname=store"), d.path),
              "host='/tmp/pp sock\\'s' port='54321' dbname='store'");
}
