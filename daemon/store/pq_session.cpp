#include "pq_session.h"

#include "conninfo.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace pilotd {

void PgResultDeleter::operator()(pg_result *r) const { PQclear(r); }

std::string pq_one_line(const char *msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
        s.pop_back();
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    std::replace(s.begin(), s.end(), '\t', ' ');
    return s;
}

bool pilotd_own_session(pg_conn *conn, std::string *error) {
    PGresult *r = PQexec(conn, "SET pg_pilot.enabled = off; SET pg_pilot.collect_feedback = off");
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        *error = "session setup failed: " + pq_one_line(PQerrorMessage(conn));
    PQclear(r);
    return ok;
}

PqSession::~PqSession() { close(); }

void PqSession::close() {
    if (cancel_ != nullptr)
        PQfreeCancel(cancel_);
    cancel_ = nullptr;
    if (conn_ != nullptr)
        PQfinish(conn_);
    conn_ = nullptr;
}

bool PqSession::connected() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

bool PqSession::connect(const std::string &dsn, const std::string &application_name, std::string *error,
                        const std::string &dbname) {
    close();
    /* expand_dbname: the first "dbname" is the whole DSN; a later one overrides its database */
    const char *keys[] = {"application_name", "connect_timeout", "dbname", "dbname", nullptr};
    const char *vals[] = {application_name.c_str(), "10", dsn.c_str(), dbname.c_str(), nullptr};
    if (dbname.empty())
        keys[3] = nullptr;
    conn_ = PQconnectdbParams(keys, vals, 1);
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
        *error = "cannot connect (" + redacted_dsn(dsn) + (dbname.empty() ? "" : ", database " + dbname) +
                 "): " + pq_one_line(conn_ ? PQerrorMessage(conn_) : "out of memory");
        close();
        return false;
    }
    PQsetNoticeProcessor(conn_, [](void *, const char *) {}, nullptr);
    cancel_ = PQgetCancel(conn_);
    return true;
}

void PqSession::cancel() const {
    char buf[256];
    if (cancel_ != nullptr)
        (void)PQcancel(cancel_, buf, sizeof buf);
}

std::string PqSession::error_of(const pg_result *r) const {
    const char *m = r ? PQresultErrorMessage(r) : nullptr;
    if ((m == nullptr || m[0] == '\0') && conn_ != nullptr)
        m = PQerrorMessage(conn_);
    std::string s = pq_one_line(m);
    if (s.rfind("ERROR:  ", 0) == 0)
        s.erase(0, 8);
    return s.empty() ? "unknown error" : s;
}

bool PqSession::exec(const std::string &sql, std::string *error) {
    if (conn_ == nullptr) {
        *error = "not connected";
        return false;
    }
    /* the extended protocol: exactly one statement (a text from a workload
     * or a table can never smuggle in a second one) */
    PgResult r(PQexecParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0));
    ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return true;
    *error = error_of(r.get());
    return false;
}

void PqSession::exec_quiet(const std::string &sql) {
    std::string ignored;
    (void)exec(sql, &ignored);
}

PgResult PqSession::query(const std::string &sql, const std::vector<std::string> &params, std::string *error,
                          std::string *sqlstate) {
    if (conn_ == nullptr) {
        *error = "not connected";
        return nullptr;
    }
    std::vector<const char *> p;
    p.reserve(params.size());
    for (const std::string &s : params)
        p.push_back(s.c_str());
    PgResult r(PQexecParams(conn_, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0));
    ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    *error = error_of(r.get());
    if (sqlstate != nullptr) {
        const char *s = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        *sqlstate = s ? s : "";
    }
    return nullptr;
}

std::string pq_text(const pg_result *r, int row, int col) {
    if (PQgetisnull(r, row, col))
        return std::string();
    return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

double pq_double(const pg_result *r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0.0 : strtod(PQgetvalue(r, row, col), nullptr);
}

long long pq_int(const pg_result *r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

bool pq_isnull(const pg_result *r, int row, int col) { return PQgetisnull(r, row, col) != 0; }

int pq_rows(const pg_result *r) { return r ? PQntuples(r) : 0; }

std::string quote_ident(const std::string &s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"')
            out += '"';
        out += c;
    }
    return out + "\"";
}

std::string quote_literal(const std::string &s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += '\'';
        out += c;
    }
    return out + "'";
}

} // namespace pilotd
