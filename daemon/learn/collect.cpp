/* collect.cpp — see collect.h. */
#include "collect.h"
#include "progress.h"

#include "key_sql.h"
#include "conninfo.h"
#include "pq_session.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>
#include <unordered_set>

namespace pilotd {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr uint32_t kLoggedFailures = 5;  /* failed queries printed in full */
constexpr int kReconnectWaitS = 30;      /* a restarting server (crash recovery) */

std::string one_line(const char *msg, size_t max = 300) {
    std::string s = pq_one_line(msg);
    if (s.rfind("ERROR:  ", 0) == 0)
        s.erase(0, 8);
    if (s.size() > max)
        s = s.substr(0, max) + "...";
    return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool parse_u32(const std::string &s, uint32_t *out) {
    if (s.empty() || !isdigit(static_cast<unsigned char>(s[0])))
        return false;
    char *end = nullptr;
    errno = 0;
    unsigned long long v = strtoull(s.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT32_MAX)
        return false;
    *out = static_cast<uint32_t>(v);
    return true;
}

/* "NUMBER||SQL" -> SQL; anything else as is */
std::string strip_label(const std::string &line) {
    size_t bar = line.find("||");
    if (bar == std::string::npos || bar == 0)
        return line;
    size_t i = 0;
    while (i < bar && isspace(static_cast<unsigned char>(line[i])))
        i++;
    if (i < bar && (line[i] == '-' || line[i] == '+'))
        i++;
    bool digits = false;
    for (; i < bar; i++) {
        unsigned char c = static_cast<unsigned char>(line[i]);
        if (isdigit(c))
            digits = true;
        else if (c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+' && !isspace(c))
            return line; /* "||" inside the SQL (string concatenation) */
    }
    return digits ? line.substr(bar + 2) : line;
}

void trim(std::string *s) {
    size_t b = 0, e = s->size();
    while (b < e && isspace(static_cast<unsigned char>((*s)[b])))
        b++;
    while (e > b && isspace(static_cast<unsigned char>((*s)[e - 1])))
        e--;
    *s = s->substr(b, e - b);
}

class Collector {
  public:
    explicit Collector(const CollectOptions &o) : o_(o) {}
    ~Collector() {
        if (conn_ != nullptr)
            PQfinish(conn_);
    }

    /* false with *error: the run cannot go on */
    bool connect(std::string *error) {
        if (conn_ != nullptr)
            PQfinish(conn_);
        const char *keys[] = {"application_name", "connect_timeout", "dbname", nullptr};
        const char *vals[] = {"pilotd collect", "10", o_.dsn.c_str(), nullptr};
        conn_ = PQconnectdbParams(keys, vals, 1);
        if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
            *error = "cannot connect (" + redacted_dsn(o_.dsn) +
                     "): " + one_line(conn_ ? PQerrorMessage(conn_) : "out of memory");
            return false;
        }
        /* the workload's NOTICEs and WARNINGs would drown the progress lines */
        PQsetNoticeProcessor(conn_, [](void *, const char *) {}, nullptr);
        /* a placeholder pg_pilot.* setting is accepted silently when the
         * library is not loaded: ask pg_settings, which lists real ones only */
        PGresult *r = PQexec(conn_, "SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'pg_pilot.collect_feedback'");
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        bool loaded = ok && PQntuples(r) == 1;
        if (!ok)
            *error = "cannot read pg_settings: " + one_line(PQerrorMessage(conn_));
        PQclear(r);
        if (!ok)
            return false;
        if (!loaded) {
            *error = "pg_pilot is not loaded by this server (" + redacted_dsn(o_.dsn) +
                     "): add pg_pilot to shared_preload_libraries in postgresql.conf and restart "
                     "PostgreSQL; without it the queries produce no feedback";
            return false;
        }
        const std::string setup = "SET pg_pilot.collect_feedback = on; SET pg_pilot.feedback_sample_rate = 1.0; "
                                  "SET pg_pilot.enabled = on; SET statement_timeout = " +
                                  std::to_string(o_.timeout_ms);
        r = PQexec(conn_, setup.c_str());
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            *error = "pg_pilot settings rejected (pg_pilot must be in shared_preload_libraries): " +
                     one_line(PQerrorMessage(conn_));
        PQclear(r);
        return ok;
    }

    /* --subplans needs pg_pilot.subplans(): false with *error without it */
    bool has_subplans_function(std::string *error) {
        PGresult *r = PQexec(conn_, "SELECT to_regprocedure('pg_pilot.subplans(text)') IS NOT NULL");
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!ok)
            *error = "--subplans needs pg_pilot.subplans() in this database: CREATE EXTENSION pg_pilot, or "
                     "ALTER EXTENSION pg_pilot UPDATE (0.4 or later)";
        return ok;
    }

    struct Subplan {
        std::string key, key_text;
        int nrels = 0;
    };
    /* The relation sets the planner sizes for sql that it can describe (with
     * their key texts); empty when it cannot be planned. */
    std::vector<Subplan> subplans(const std::string &sql) {
        std::vector<Subplan> out;
        const char *params[] = {sql.c_str()};
        PGresult *r = PQexecParams(conn_,
                                   "SELECT key, key_text, nrels FROM pg_pilot.subplans($1) WHERE key_text IS NOT NULL",
                                   1, nullptr, params, nullptr, nullptr, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            for (int i = 0; i < PQntuples(r); i++)
                out.push_back({PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), atoi(PQgetvalue(r, i, 2))});
        PQclear(r);
        if (PQtransactionStatus(conn_) != PQTRANS_IDLE)
            PQclear(PQexec(conn_, "ROLLBACK"));
        return out;
    }

    enum class Outcome { Ok, Timeout, Failed, Lost };

    /* --oracle-out: nothing collected, nothing asked of pilotd */
    bool oracle_session(std::string *error) {
        PGresult *r = PQexec(conn_, "SET pg_pilot.collect_feedback = off; SET pg_pilot.estimator = native");
        const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            *error = "cannot turn feedback off: " + one_line(PQerrorMessage(conn_));
        PQclear(r);
        return ok;
    }

    /* Runs a SELECT count(*): its count in *rows. */
    Outcome count(const std::string &sql, double *rows, std::string *message) {
        PGresult *r = PQexec(conn_, sql.c_str());
        Outcome out = Outcome::Ok;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1) {
            *rows = strtod(PQgetvalue(r, 0, 0), nullptr);
        } else {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            out = state != nullptr && strcmp(state, "57014") == 0 ? Outcome::Timeout : Outcome::Failed;
            *message = one_line(PQresultErrorMessage(r));
        }
        PQclear(r);
        if (PQstatus(conn_) == CONNECTION_BAD)
            return Outcome::Lost;
        if (PQtransactionStatus(conn_) != PQTRANS_IDLE)
            PQclear(PQexec(conn_, "ROLLBACK"));
        return out;
    }

    /* Session settings for counting (on) and for the workload (off). */
    void counting(bool on) {
        PQclear(PQexec(conn_, on ? "SET enable_nestloop = off; SET enable_mergejoin = off; SET work_mem = '256MB'"
                                 : "RESET enable_nestloop; RESET enable_mergejoin; RESET work_mem"));
    }

    /* Warns when the database has the extension and pilotd is not attached
     * (the feedback would be dropped).  Silent if it cannot tell.  The view is
     * pg_pilot.pilotd from extension 0.9 on; before, it was pg_pilot.daemon
     * (kept as a deprecated view in 0.9, dropped in 0.10). */
    void check_pilotd() {
        /* the function behind the view pg_pilot.pilotd (pg_pilot.daemon
         * before 0.9), the same in every version of the extension */
        PGresult *r = PQexec(conn_, "SELECT attached FROM pg_pilot.daemon_status()");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 'f')
            fprintf(stderr, "collect: WARNING: pilotd is not attached to this server (pg_pilot.pilotd): "
                            "the feedback of these queries will be dropped\n");
        PQclear(r);
        if (PQtransactionStatus(conn_) != PQTRANS_IDLE)
            PQclear(PQexec(conn_, "ROLLBACK"));
    }

    /* Runs one statement, discarding its rows. */
    Outcome run(const std::string &sql, std::string *message) {
        if (!PQsendQuery(conn_, sql.c_str())) {
            *message = one_line(PQerrorMessage(conn_));
            return PQstatus(conn_) == CONNECTION_BAD ? Outcome::Lost : Outcome::Failed;
        }
        PQsetSingleRowMode(conn_); /* may fail harmlessly (then results come whole) */
        Outcome out = Outcome::Ok;
        bool first_error = true;
        while (PGresult *r = PQgetResult(conn_)) {
            switch (PQresultStatus(r)) {
            case PGRES_COPY_OUT: {
                char *buf = nullptr;
                while (PQgetCopyData(conn_, &buf, 0) > 0)
                    PQfreemem(buf);
                break;
            }
            case PGRES_COPY_IN:
                PQputCopyEnd(conn_, "pilotd collect does not feed COPY FROM STDIN");
                break;
            case PGRES_FATAL_ERROR:
            case PGRES_BAD_RESPONSE:
            case PGRES_NONFATAL_ERROR:
                if (first_error) {
                    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                    out = state != nullptr && strcmp(state, "57014") == 0 ? Outcome::Timeout : Outcome::Failed;
                    /* the primary message only (not LINE/HINT/CONTEXT), with the SQLSTATE */
                    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
                    *message = one_line(primary ? primary : PQresultErrorMessage(r));
                    if (state != nullptr)
                        *message = "[" + std::string(state) + "] " + *message;
                    first_error = false;
                }
                break;
            default:
                break;
            }
            PQclear(r);
        }
        if (PQstatus(conn_) == CONNECTION_BAD) {
            if (message->empty())
                *message = one_line(PQerrorMessage(conn_));
            return Outcome::Lost;
        }
        /* every query starts outside a transaction */
        if (PQtransactionStatus(conn_) != PQTRANS_IDLE)
            PQclear(PQexec(conn_, "ROLLBACK"));
        return out;
    }

    /* One reconnect: retried for a while if the server is restarting. */
    bool reconnect(std::string *error) {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            if (connect(error))
                return true;
            if (error->find("pg_pilot") != std::string::npos || seconds_since(t0) > kReconnectWaitS)
                return false;
            std::this_thread::sleep_for(std::chrono::seconds(1));
        }
    }

  private:
    const CollectOptions &o_;
    PGconn *conn_ = nullptr;
};

} // namespace

bool read_workload(const std::string &path, std::vector<WorkloadQuery> *out, std::string *error) {
    std::ifstream file;
    std::istream *in = &std::cin;
    if (path != "-") {
        file.open(path);
        if (!file) {
            *error = "cannot open the workload file \"" + path + "\": " + strerror(errno);
            return false;
        }
        in = &file;
    }
    out->clear();
    std::string line;
    uint32_t n = 0;
    while (std::getline(*in, line)) {
        n++;
        trim(&line);
        if (line.empty() || line.rfind("--", 0) == 0 || line[0] == '#')
            continue;
        std::string sql = strip_label(line);
        trim(&sql);
        while (!sql.empty() && sql.back() == ';') {
            sql.pop_back();
            trim(&sql);
        }
        if (sql.empty())
            continue;
        out->push_back({n, std::move(sql)});
    }
    if (in->bad()) {
        *error = "cannot read the workload file \"" + path + "\"";
        return false;
    }
    return true;
}

bool parse_collect_args(const std::vector<std::string> &args, CollectOptions *o, std::string *error) {
    for (size_t i = 0; i < args.size(); i++) {
        std::string key = args[i], value;
        bool inline_value = false;
        size_t eq = key.find('=');
        if (key.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = key.substr(eq + 1);
            key = key.substr(0, eq);
            inline_value = true;
        }
        if (key == "--subplans" && !inline_value) {
            o->subplans = true;
            continue;
        }
        if (key != "--workload" && key != "--dsn" && key != "--timeout-ms" && key != "--repeat" &&
            key != "--oracle-out" && key != "--max-subplans") {
            *error = "collect: unknown argument \"" + args[i] + "\"";
            return false;
        }
        if (!inline_value) {
            if (i + 1 >= args.size()) {
                *error = "collect: " + key + " needs a value";
                return false;
            }
            value = args[++i];
        }
        if (key == "--workload") {
            o->workload = value;
        } else if (key == "--dsn") {
            o->dsn = value;
        } else if (key == "--oracle-out") {
            if (value.empty()) {
                *error = "collect: --oracle-out wants a file name (\"-\": standard output)";
                return false;
            }
            o->oracle_out = value;
        } else if (key == "--max-subplans") {
            if (!parse_u32(value, &o->max_subplans) || o->max_subplans == 1) {
                *error = "collect: --max-subplans wants a count of 2 or more (0: all), not \"" + value + "\"";
                return false;
            }
        } else if (key == "--timeout-ms") {
            if (!parse_u32(value, &o->timeout_ms) || o->timeout_ms > INT32_MAX) {
                *error = "collect: --timeout-ms wants milliseconds (0 = no timeout), not \"" + value + "\"";
                return false;
            }
        } else if (!parse_u32(value, &o->repeat) || o->repeat == 0) {
            *error = "collect: --repeat wants a positive count, not \"" + value + "\"";
            return false;
        }
    }
    if (o->workload.empty()) {
        *error = "collect: --workload FILE is required";
        return false;
    }
    if (o->dsn.empty()) {
        *error = "collect: the database to run in is required: --dsn DSN (or \"model-dsn\" in the config file, "
                 "or -D DIR of a pilotd service started with one)";
        return false;
    }
    return true;
}

namespace {

/* --oracle-out: the true count of every describable sub-plan of the queries */
int write_oracle(Collector &c, const std::vector<WorkloadQuery> &queries, const CollectOptions &o,
                 std::chrono::steady_clock::time_point t0) {
    std::string error;
    if (!c.oracle_session(&error)) {
        fprintf(stderr, "collect: %s\n", error.c_str());
        return kExitFailure;
    }
    c.counting(true);
    std::string text;
    std::unordered_set<std::string> seen;
    uint64_t counted = 0, timed_out = 0, failed = 0, undescribable = 0, capped = 0;
    Progress bar("collect", queries.size(), "queries");
    for (size_t n = 0; n < queries.size(); n++) {
        std::vector<Collector::Subplan> sets = c.subplans(queries[n].sql);
        if (o.max_subplans > 0 && sets.size() > o.max_subplans) {
            /* a 17-table join has thousands: the smallest sets, and the whole query */
            std::stable_sort(sets.begin(), sets.end(),
                             [](const Collector::Subplan &a, const Collector::Subplan &b) { return a.nrels < b.nrels; });
            sets.erase(sets.begin() + (o.max_subplans - 1), sets.end() - 1);
            capped++;
        }
        for (const auto &s : sets) {
            if (!seen.insert(s.key).second)
                continue;
            std::string sql, why, msg;
            if (!pilot::model::key_count_sql(s.key_text, &sql, &why)) {
                if (++undescribable <= kLoggedFailures)
                    bar.note("collect: a sub-plan of line %u cannot be counted: %s\n  %s", queries[n].line,
                             why.c_str(), s.key_text.c_str());
                continue;
            }
            double rows = 0;
            switch (c.count(sql, &rows, &msg)) {
            case Collector::Outcome::Ok: {
                std::replace(sql.begin(), sql.end(), '\n', ' ');
                char num[32];
                snprintf(num, sizeof num, "%.0f", rows);
                text += std::string(num) + "||" + sql + "\n";
                counted++;
                break;
            }
            case Collector::Outcome::Timeout: timed_out++; break;
            case Collector::Outcome::Lost:
                bar.clear();
                fprintf(stderr, "collect: connection lost at line %u: %s\n", queries[n].line, msg.c_str());
                return kExitFailure;
            default:
                if (++failed <= kLoggedFailures)
                    bar.note("collect: a sub-plan of line %u failed: %s\n  %s", queries[n].line, msg.c_str(),
                             sql.c_str());
                break;
            }
        }
        bar.update(n + 1, std::to_string(counted) + " sub-plans counted");
    }
    c.counting(false);
    if (o.oracle_out == "-") {
        fwrite(text.data(), 1, text.size(), stdout);
        fflush(stdout);
    } else {
        /* not replace_file(): that one writes private (0600) state files, and
         * the server reads this one (pg_pilot.load_cardinalities) */
        const std::string tmp = o.oracle_out + ".tmp";
        FILE *f = fopen(tmp.c_str(), "w");
        const bool ok = f != nullptr && fwrite(text.data(), 1, text.size(), f) == text.size();
        if (f != nullptr && fclose(f) != 0 && ok) {
            fprintf(stderr, "collect: cannot write \"%s\": %s\n", tmp.c_str(), strerror(errno));
            return kExitFailure;
        }
        if (!ok || rename(tmp.c_str(), o.oracle_out.c_str()) != 0) {
            fprintf(stderr, "collect: cannot write \"%s\": %s\n", o.oracle_out.c_str(), strerror(errno));
            return kExitFailure;
        }
    }
    bar.clear();
    fprintf(stderr,
            "collect: %zu queries: %llu sub-plans counted into %s (%llu timed out, %llu failed, %llu not "
            "describable, %llu queries capped at %u sub-plans) in %.1f s\n",
            queries.size(), static_cast<unsigned long long>(counted),
            o.oracle_out == "-" ? "standard output" : ("\"" + o.oracle_out + "\"").c_str(),
            static_cast<unsigned long long>(timed_out), static_cast<unsigned long long>(failed),
            static_cast<unsigned long long>(undescribable), static_cast<unsigned long long>(capped), o.max_subplans,
            seconds_since(t0));
    return kExitOk;
}

} // namespace

int run_collect(const CollectOptions &o) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<WorkloadQuery> queries;
    std::string error;
    if (!read_workload(o.workload, &queries, &error)) {
        fprintf(stderr, "collect: %s\n", error.c_str());
        return kExitFailure;
    }
    const uint32_t repeat = std::max<uint32_t>(o.repeat, 1);
    const uint64_t total = static_cast<uint64_t>(queries.size()) * repeat;
    if (total == 0) {
        fprintf(stderr, "collect: no queries in \"%s\"\n", o.workload.c_str());
        fprintf(stderr, "collect: 0 queries, 0 ok, 0 timed out, 0 failed in %.1f s\n", seconds_since(t0));
        return kExitOk;
    }

    Collector c(o);
    if (!c.connect(&error)) {
        fprintf(stderr, "collect: %s\n", error.c_str());
        return kExitFailure;
    }
    const bool oracle = !o.oracle_out.empty();
    if (!oracle)
        c.check_pilotd();
    if ((o.subplans || oracle) && !c.has_subplans_function(&error)) {
        fprintf(stderr, "collect: %s\n", error.c_str());
        return kExitFailure;
    }
    if (oracle)
        return write_oracle(c, queries, o, t0);
    fprintf(stderr, "collect: %zu queries from \"%s\"%s, statement_timeout %u ms, on %s\n", queries.size(),
            o.workload.c_str(), repeat > 1 ? (" x" + std::to_string(repeat)).c_str() : "", o.timeout_ms,
            redacted_dsn(o.dsn).c_str());

    uint64_t done = 0, ok = 0, timed_out = 0, failed = 0;
    uint64_t sub_counted = 0, sub_timed_out = 0, sub_failed = 0, sub_undescribable = 0;
    std::unordered_set<std::string> sub_seen; /* keys counted (or tried) in this run */
    bool lost_last = false;
    Progress bar("collect", total, "queries");
    auto summary = [&](const char *prefix) {
        bar.clear();
        fprintf(stderr, "collect: %s%llu queries, %llu ok, %llu timed out, %llu failed in %.1f s\n", prefix,
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(ok),
                static_cast<unsigned long long>(timed_out), static_cast<unsigned long long>(failed),
                seconds_since(t0));
        if (o.subplans)
            fprintf(stderr, "collect: %ssub-plans: %llu counted, %llu timed out, %llu failed, %llu not describable\n",
                    prefix, static_cast<unsigned long long>(sub_counted), static_cast<unsigned long long>(sub_timed_out),
                    static_cast<unsigned long long>(sub_failed), static_cast<unsigned long long>(sub_undescribable));
    };
    /* every describable sub-plan of q not counted yet in this run */
    auto count_subplans = [&](const WorkloadQuery &q) {
        bool set = false;
        for (const auto &s : c.subplans(q.sql)) {
            if (!sub_seen.insert(s.key).second)
                continue;
            std::string sql, why, msg;
            if (!pilot::model::key_count_sql(s.key_text, &sql, &why)) {
                sub_undescribable++;
                continue;
            }
            if (!set) {
                c.counting(true);
                set = true;
            }
            switch (c.run(sql, &msg)) {
            case Collector::Outcome::Ok: sub_counted++; break;
            case Collector::Outcome::Timeout: sub_timed_out++; break;
            default:
                if (++sub_failed <= kLoggedFailures)
                    bar.note("collect: a sub-plan of line %u failed: %s\n  %s", q.line, msg.c_str(), sql.c_str());
                break;
            }
        }
        if (set)
            c.counting(false);
    };

    for (uint32_t pass = 0; pass < repeat; pass++) {
        for (const WorkloadQuery &q : queries) {
            std::string msg;
            Collector::Outcome res = c.run(q.sql, &msg);
            if (o.subplans && pass == 0 && res != Collector::Outcome::Lost)
                count_subplans(q);
            done++;
            switch (res) {
            case Collector::Outcome::Ok: ok++; break;
            case Collector::Outcome::Timeout: timed_out++; break;
            case Collector::Outcome::Failed:
            case Collector::Outcome::Lost:
                failed++;
                if (failed <= kLoggedFailures || res == Collector::Outcome::Lost)
                    bar.note("collect: line %u failed: %s", q.line, msg.c_str());
                if (failed == kLoggedFailures)
                    bar.note("collect: (further failures are counted, not printed)");
                break;
            }
            if (res == Collector::Outcome::Lost) {
                if (lost_last) {
                    bar.note("collect: the connection was lost twice in a row; giving up");
                    summary("stopped after ");
                    return kExitFailure;
                }
                bar.note("collect: connection lost at line %u; reconnecting", q.line);
                if (!c.reconnect(&error)) {
                    bar.note("collect: %s", error.c_str());
                    summary("stopped after ");
                    return kExitFailure;
                }
                lost_last = true;
            } else {
                lost_last = false;
            }
            std::string detail = std::to_string(ok) + " ok, " + std::to_string(timed_out) + " timed out, " +
                                 std::to_string(failed) + " failed";
            if (o.subplans)
                detail += ", " + std::to_string(sub_counted) + " sub-plans counted";
            bar.update(done, detail);
        }
    }
    summary("");
    return kExitOk;
}

} // namespace pilotd
