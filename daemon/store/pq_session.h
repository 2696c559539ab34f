/*
 * pq_session.h — one libpq session for pilotd's client-side work (schema
 * snapshots, the index advisor): connect with an application name and an
 * optional database override, run commands and parameterized queries, and
 * turn a failure into one readable line.  Never throws.
 */
#ifndef PILOTD_PQ_SESSION_H
#define PILOTD_PQ_SESSION_H

#include <memory>
#include <string>
#include <vector>

struct pg_conn;
struct pg_result;
struct pg_cancel;

namespace pilotd {

struct PgResultDeleter {
    void operator()(pg_result *r) const;
};
using PgResult = std::unique_ptr<pg_result, PgResultDeleter>;

/* msg on one line: trailing blanks dropped, newlines and tabs become spaces */
std::string pq_one_line(const char *msg);

class PqSession {
  public:
    PqSession() = default;
    PqSession(const PqSession &) = delete;
    PqSession &operator=(const PqSession &) = delete;
    ~PqSession();

    /* dsn: a connection string or URI; dbname, when not empty, overrides its
     * database.  False with *error (no password in it) when it fails. */
    bool connect(const std::string &dsn, const std::string &application_name, std::string *error,
                 const std::string &dbname = std::string());
    void close();
    bool connected() const;

    /* Runs sql, one statement (the extended protocol refuses several);
     * false with *error = the server's message.  query() likewise. */
    bool exec(const std::string &sql, std::string *error);
    /* Runs sql and ignores the outcome (a setting that may not exist). */
    void exec_quiet(const std::string &sql);
    /* A statement returning rows, with text parameters; null with *error on
     * failure; *sqlstate (when given) receives the error's SQLSTATE. */
    PgResult query(const std::string &sql, const std::vector<std::string> &params, std::string *error,
                   std::string *sqlstate = nullptr);

    /* The server's message for a failed result (or the connection's), one
     * line, without the "ERROR:  " prefix. */
    std::string error_of(const pg_result *r) const;
    pg_conn *conn() const { return conn_; }

    /* Asks the server to cancel what this session runs now.  Callable from
     * another thread while the session is connected. */
    void cancel() const;

  private:
    pg_conn *conn_ = nullptr;
    pg_cancel *cancel_ = nullptr; /* made at connect: PQcancel() is thread-safe */
};

/* pilotd's own sessions (the store, model replication, the trainer's reads,
 * schema snapshots) are set up alike: their statements are not planned
 * through pg_pilot (pg_pilot.enabled = off) and produce no feedback
 * (pg_pilot.collect_feedback = off: feedback about committing feedback,
 * forever).  A server without the library accepts them as placeholders.
 * False with *error when the server refuses (a broken connection). */
bool pilotd_own_session(pg_conn *conn, std::string *error);

/* Result accessors (row, column); "" / 0 for NULL. */
std::string pq_text(const pg_result *r, int row, int col);
double pq_double(const pg_result *r, int row, int col);
long long pq_int(const pg_result *r, int row, int col);
bool pq_isnull(const pg_result *r, int row, int col);
int pq_rows(const pg_result *r);

/* SQL quoting: an identifier ("a""b") and a literal ('it''s'); both assume
 * standard_conforming_strings (PostgreSQL's default since 9.1). */
std::string quote_ident(const std::string &s);
std::string quote_literal(const std::string &s);

} // namespace pilotd

#endif
