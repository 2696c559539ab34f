/* pg_store.cpp — see pg_store.h. */
#include "pg_store.h"

#include "conninfo.h"
#include "pq_session.h"

#include "log.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>
#include <unistd.h>

namespace pilotd {

using pilot::proto::PilotdCounters;
using pilot::proto::FeedbackRecord;
using pilot::proto::monotonic_us;

namespace {

/* COPY text format: backslash, tab, newline, carriage return escaped. */
void copy_text(std::string &out, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\\': out += "\\\\"; break;
        case '\t': out += "\\t"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        default: out += *s;
        }
    }
}

void copy_double(std::string &out, double v, bool null_if_negative) {
    if (null_if_negative && v < 0) {
        out += "\\N";
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    out += buf;
}

void copy_i64(std::string &out, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t>(v)); /* bigint: two's complement */
    out += buf;
}

/* timestamptz from unix microseconds, or NULL when unknown (0) */
void copy_time(std::string &out, uint64_t unix_us) {
    if (unix_us == 0) {
        out += "\\N";
        return;
    }
    time_t secs = static_cast<time_t>(unix_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[64];
    snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06u+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(unix_us % 1000000));
    out += buf;
}

void copy_bytea(std::string &out, const void *data, size_t n) {
    static const char hex[] = "0123456789abcdef";
    out += "\\\\x";
    const unsigned char *p = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < n; i++) {
        out += hex[p[i] >> 4];
        out += hex[p[i] & 15];
    }
}

std::string reason_text(uint32_t reason) {
    if (reason == FeedbackSpool::kCorruptEntry)
        return "spool entry damaged on disk (CRC mismatch)";
    return std::string("invalid record from a backend: ") + pilot::proto::feedback_check_name(reason);
}

} // namespace

namespace {
std::string one_line(const char *msg) { return pq_one_line(msg); }
} // namespace

PgStore::PgStore(PgStoreOptions opt, FeedbackSpool &spool) : opt_(std::move(opt)), spool_(spool) {}

PgStore::~PgStore() { stop(); }

void PgStore::start(PilotdCounters *counters) {
    ctr_ = counters;
    replay_mark_ = spool_.next_seq(); /* what a previous run left */
    restore_after_seq_ = replay_mark_;
    watermark_ = spool_.first_seq();  /* until the store says otherwise */
    if (ctr_)
        ctr_->store_watermark.store(watermark_, std::memory_order_release);
    if (ctr_)
        ctr_->store_state.store(pilot::proto::STORE_RETRYING, std::memory_order_relaxed);
    thread_ = std::thread([this] { run(); });
}

void PgStore::stop() noexcept {
    stopping_.store(true);
    spool_.wake();
    {
        /* a statement waiting on a hung server: cancel it (the store thread
         * then fails the transaction and sees stopping_) */
        std::lock_guard<std::mutex> g(cancel_mu_);
        char buf[256];
        if (cancel_ != nullptr && thread_.joinable())
            PQcancel(cancel_, buf, sizeof buf);
    }
    if (thread_.joinable())
        thread_.join();
    disconnect();
}

bool PgStore::sleep_ms(uint32_t ms) noexcept {
    const uint64_t until = monotonic_us() + static_cast<uint64_t>(ms) * 1000;
    while (!stopping_.load()) {
        uint64_t now = monotonic_us();
        if (now >= until)
            return true;
        std::this_thread::sleep_for(std::chrono::microseconds(std::min<uint64_t>(until - now, 50000)));
    }
    return false;
}

void PgStore::set_error(const std::string &e) noexcept {
    if (ctr_ == nullptr)
        return;
    /* sequence counter: odd while writing (readers retry or skip) */
    uint32_t s = ctr_->store_error_seq.load(std::memory_order_relaxed);
    ctr_->store_error_seq.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    size_t n = std::min(e.size(), sizeof ctr_->store_error - 1);
    pilot::proto::copy_clean_utf8(ctr_->store_error, sizeof ctr_->store_error, e.data(), n);
    ctr_->store_error_seq.store(s + 2, std::memory_order_release);
}

void PgStore::publish() noexcept {
    if (ctr_ == nullptr)
        return;
    ctr_->store_watermark.store(watermark_, std::memory_order_release);
    ctr_->store_committed.store(committed_.load(), std::memory_order_relaxed);
    ctr_->store_replayed.store(replayed_, std::memory_order_relaxed);
    ctr_->store_dead_letter.store(dead_, std::memory_order_relaxed);
    ctr_->store_failures.store(failures_, std::memory_order_relaxed);
    ctr_->store_state.store(failing_ || conn_ == nullptr ? pilot::proto::STORE_RETRYING : pilot::proto::STORE_OK,
                            std::memory_order_relaxed);
}

bool PgStore::connect(std::string *error) {
    /* the server of -D, unless it is a standby (read-only): then its
     * primary, from primary_conninfo; the DSN's own host and port win */
    std::string port, socket_dir;
    connected_to_primary_of_standby_ = primary_address(opt_.pgdata, &socket_dir, &port);
    if (!connected_to_primary_of_standby_)
        postmaster_address(opt_.pgdata, &port, &socket_dir);
    /* defaults first: the connection string (expanded dbname) overrides them */
    std::vector<const char *> keys, vals;
    if (!socket_dir.empty()) {
        keys.push_back("host");
        vals.push_back(socket_dir.c_str());
    }
    if (!port.empty()) {
        keys.push_back("port");
        vals.push_back(port.c_str());
    }
    keys.push_back("application_name");
    vals.push_back("pilotd");
    keys.push_back("connect_timeout");
    vals.push_back("5");
    keys.push_back("keepalives_idle"); /* TCP only: a dead server is noticed */
    vals.push_back("30");
    keys.push_back("tcp_user_timeout");
    vals.push_back("60000");
    keys.push_back("dbname");
    vals.push_back(opt_.dsn.c_str());
    keys.push_back(nullptr);
    vals.push_back(nullptr);
    conn_ = PQconnectdbParams(keys.data(), vals.data(), 1);
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
        *error = "cannot connect to the store (" + redacted_dsn(opt_.dsn) + "): " +
                 one_line(conn_ ? PQerrorMessage(conn_) : "out of memory");
        disconnect();
        return false;
    }
    PGresult *r = PQexec(conn_, "SET statement_timeout = '30s'; SET lock_timeout = '10s'; "
                                "SET synchronous_commit = on; SET search_path = pg_catalog");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        *error = "store session setup failed: " + one_line(PQerrorMessage(conn_));
    PQclear(r);
    if (ok && !pilotd_own_session(conn_, error)) {
        *error = "store " + *error;
        ok = false;
    }
    if (!ok) {
        disconnect();
        return false;
    }
    {
        std::lock_guard<std::mutex> g(cancel_mu_);
        cancel_ = PQgetCancel(conn_);
    }
    LOG_INFO("store: connected to database \"%s\" as \"%s\"", PQdb(conn_), PQuser(conn_));
    if (read_watermark(error) != Result::Ok)
        return false;
    query_log_guard_ = check_query_log_columns();
    feedback_dboid_ = check_feedback_dboid();
    /* the statistics each guarded run was planned with (extension 0.9);
     * without it, a restarted pilotd's guard replays runs unchecked */
    query_log_table_rows_ = query_log_guard_ && store_has_columns(conn_, "pg_pilot.query_log", {"table_rows_log"});
    /* pg_pilot.pilotds (extension 0.8): where this pilotd runs, as what */
    fleet_columns_ = store_has_columns(conn_, "pg_pilot.store_progress", {"host", "pgdata", "role", "waiting"});
    return true;
}

bool store_has_columns(PGconn *conn, const std::string &table, const std::vector<std::string> &columns) {
    std::string list;
    for (const std::string &c : columns)
        list += (list.empty() ? "'" : ", '") + c + "'"; /* our own identifiers: no quoting needed */
    const std::string sql = "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = '" + table +
                            "'::pg_catalog.regclass AND attname IN (" + list + ") AND NOT attisdropped";
    PGresult *r = PQexec(conn, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                    std::to_string(columns.size()) == PQgetvalue(r, 0, 0);
    PQclear(r);
    return ok;
}

/* Does pg_pilot.feedback have the database column (extension 0.8)? */
bool PgStore::check_feedback_dboid() {
    const bool ok = store_has_columns(conn_, "pg_pilot.feedback", {"dboid"});
    if (!ok)
        LOG_WARNING("store: pg_pilot.feedback in database \"%s\" has no dboid column (extension older than 0.8): "
                    "run ALTER EXTENSION pg_pilot UPDATE there; until then a model trained for one database may "
                    "learn from another database's queries on tables of the same names",
                    PQdb(conn_));
    return ok;
}

/* Does pg_pilot.query_log have the plan guard's columns (extension 0.5)? */
bool PgStore::check_query_log_columns() {
    const bool ok = store_has_columns(conn_, "pg_pilot.query_log", {"dboid", "estimates"});
    if (!ok)
        LOG_WARNING("store: pg_pilot.query_log in database \"%s\" has no plan guard columns (extension older "
                    "than 0.5): run ALTER EXTENSION pg_pilot UPDATE there; until then the guard's runs are not "
                    "kept across restarts of pilotd",
                    PQdb(conn_));
    return ok;
}

/* Once per start, after the spool was committed: the guard's runs logged
 * before this start, oldest first. */
void PgStore::restore_guard_runs() noexcept {
    if (conn_ == nullptr)
        return;
    guard_restored_ = true; /* cleared again when the query fails: tried on the next round */
    if (!opt_.restore_guard || !query_log_guard_)
        return;
    const std::string since = std::to_string(opt_.started_unix_us / 1000000.0);
    const std::string window = std::to_string(GuardBook::kWindow);
    const char *params[2] = {since.c_str(), window.c_str()};
    /* each arm's latest runs per template, oldest first, with the table
     * statistics they were planned with (-1: unknown) */
    const std::string sql =
        std::string("SELECT dboid, query_id, estimates, coalesce(planning_ms, 0) + execution_ms, ") +
        (query_log_table_rows_ ? "coalesce(table_rows_log, -1)" : "-1") +
        " FROM (SELECT l.*, row_number() OVER (PARTITION BY dboid, query_id, estimates ORDER BY id DESC) AS n"
        " FROM pg_pilot.query_log l WHERE estimates IS NOT NULL AND query_id IS NOT NULL AND dboid IS NOT NULL"
        " AND logged_at < to_timestamp($1::float8) AND logged_at > now() - interval '7 days') s"
        " WHERE n <= $2::int ORDER BY id LIMIT 1000000";
    PGresult *r = PQexecParams(
        conn_,
        sql.c_str(), 2, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        LOG_WARNING("store: reading the plan guard's past runs failed: %s (trying again)",
                    one_line(PQerrorMessage(conn_)).c_str());
        PQclear(r);
        guard_restored_ = false;
        return;
    }
    std::vector<GuardRun> runs;
    try {
        runs.reserve(static_cast<size_t>(PQntuples(r)));
        for (int i = 0; i < PQntuples(r); i++) {
            GuardRun g;
            g.key.dboid = static_cast<uint32_t>(strtoul(PQgetvalue(r, i, 0), nullptr, 10));
            g.key.query_id = static_cast<uint64_t>(strtoll(PQgetvalue(r, i, 1), nullptr, 10));
            g.arm = strcmp(PQgetvalue(r, i, 2), "pilot") == 0 ? pilot::proto::ARM_PILOT : pilot::proto::ARM_NATIVE;
            g.ms = strtod(PQgetvalue(r, i, 3), nullptr);
            g.table_rows_log = strtod(PQgetvalue(r, i, 4), nullptr);
            runs.push_back(g);
        }
        PQclear(r);
        opt_.restore_guard(runs);
        LOG_INFO("store: the plan guard got %zu past runs back", runs.size());
    } catch (const std::exception &e) {
        PQclear(r);
        LOG_WARNING("store: the plan guard's past runs were not restored: %s", e.what());
    }
}

void PgStore::disconnect() noexcept {
    {
        std::lock_guard<std::mutex> g(cancel_mu_);
        if (cancel_ != nullptr)
            PQfreeCancel(cancel_);
        cancel_ = nullptr;
    }
    if (conn_ != nullptr)
        PQfinish(conn_);
    conn_ = nullptr;
}

PgStore::Result PgStore::read_watermark(std::string *error) {
    const char *params[1] = {spool_.id().c_str()};
    PGresult *r = PQexecParams(conn_, "SELECT committed_seq FROM pg_pilot.store_progress WHERE spool_id = $1",
                               1, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        std::string msg = one_line(PQerrorMessage(conn_));
        if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0))
            msg = "pg_pilot's feedback tables are missing in database \"" + std::string(PQdb(conn_)) +
                  "\": run CREATE EXTENSION pg_pilot there (" + msg + ")";
        *error = "store: " + msg;
        PQclear(r);
        disconnect();
        return Result::Retry;
    }
    uint64_t first = spool_.first_seq(), next = spool_.next_seq();
    uint64_t w = first;
    db_has_row_ = PQntuples(r) == 1;
    db_watermark_ = 0;
    if (db_has_row_) {
        long long v = strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
        db_watermark_ = v > 0 ? static_cast<uint64_t>(v) : 0;
        w = db_watermark_;
        if (w > next) {
            /* the spool lost its newest entries (a damaged segment, a
             * restored state directory): continue numbering above the
             * store's watermark, so that new entries are not taken for
             * committed ones */
            LOG_WARNING("store: the watermark of spool %s in the store (%llu) is ahead of the spool (%llu); "
                        "the spool continues at %llu",
                        spool_.id().c_str(), static_cast<unsigned long long>(w),
                        static_cast<unsigned long long>(next), static_cast<unsigned long long>(w));
            if (!spool_.advance_to(w)) {
                PQclear(r);
                *error = "store: cannot advance the spool to the store's watermark";
                disconnect();
                return Result::Retry;
            }
        }
        if (w < first) {
            /* the store was restored from a backup: what it lacks is gone
             * from the spool; the next commit moves its watermark up */
            LOG_WARNING("store: spool entries %llu..%llu are no longer in the spool (store restored from a "
                        "backup?); continuing at %llu",
                        static_cast<unsigned long long>(w), static_cast<unsigned long long>(first),
                        static_cast<unsigned long long>(first));
            w = first;
        }
    }
    PQclear(r);
    watermark_ = w;
    return Result::Ok;
}

/*
 * One transaction: entries [begin, end) and the watermark moved to the seq
 * after the last.  reject_reason: store them all as dead letters with it.
 */
PgStore::Result PgStore::commit(const std::vector<FeedbackSpool::Entry> &entries, size_t begin, size_t end,
                                const std::string *reject_reason, std::string *error) {
    auto fail = [&](PGresult *r, const char *what) {
        if (r == nullptr) {
            /* no result at all (out of memory, connection lost): the outcome
             * is unknown; reconnect and ask PostgreSQL where it stands */
            *error = std::string("store: ") + what + ": " + one_line(PQerrorMessage(conn_));
            disconnect();
            return Result::Retry;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        Result res = (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)) ? Result::DataError
                                                                                              : Result::Retry;
        *error = std::string("store: ") + what + ": " + one_line(PQerrorMessage(conn_));
        if (r)
            PQclear(r);
        if (PQstatus(conn_) != CONNECTION_OK) {
            disconnect();
            return Result::Retry;
        }
        PGresult *rb = PQexec(conn_, "ROLLBACK");
        if (PQresultStatus(rb) != PGRES_COMMAND_OK)
            disconnect();
        PQclear(rb);
        return res;
    };
    /* true when it worked; else *err is the failed result (maybe NULL) */
    auto exec = [&](const char *sql, PGresult **err) {
        PGresult *r = PQexec(conn_, sql);
        if (r != nullptr && PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            return true;
        }
        *err = r;
        return false;
    };
    auto copy = [&](const char *sql, const std::string &data, PGresult **err) {
        PGresult *r = PQexec(conn_, sql);
        if (r == nullptr || PQresultStatus(r) != PGRES_COPY_IN) {
            *err = r;
            return false;
        }
        PQclear(r);
        if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1 ||
            PQputCopyEnd(conn_, nullptr) != 1) {
            *err = PQgetResult(conn_);
            return false;
        }
        r = PQgetResult(conn_);
        bool ok = r != nullptr && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            *err = r;
            return false;
        }
        PQclear(r);
        while ((r = PQgetResult(conn_)) != nullptr)
            PQclear(r);
        return true;
    };

    std::string fb, ql, dl;
    for (size_t i = begin; i < end; i++) {
        const FeedbackSpool::Entry &e = entries[i];
        const FeedbackRecord &r = e.rec;
        if (reject_reason != nullptr || e.type == FeedbackSpool::DEAD) {
            copy_time(dl, e.received_us);
            dl += '\t';
            copy_text(dl, reject_reason ? ("rejected by the store: " + *reject_reason).c_str()
                                        : reason_text(e.reason).c_str());
            dl += '\t';
            copy_bytea(dl, &r, sizeof r);
            dl += '\n';
        } else if (r.kind == pilot::proto::FB_RELSET) {
            copy_time(fb, e.received_us);
            fb += '\t';
            if (r.query_id) copy_i64(fb, r.query_id); else fb += "\\N";
            fb += '\t';
            copy_i64(fb, r.key);
            fb += '\t';
            copy_i64(fb, r.template_key);
            fb += '\t';
            copy_text(fb, r.relations); /* NUL-terminated: feedback_check() */
            fb += '\t';
            fb += std::to_string(r.nrels);
            fb += '\t';
            copy_double(fb, r.native_rows, true);
            fb += '\t';
            copy_double(fb, r.pilot_rows, true);
            fb += '\t';
            copy_double(fb, r.actual_rows, false);
            if (feedback_dboid_) {
                fb += '\t';
                if (r.dboid) fb += std::to_string(r.dboid); else fb += "\\N";
            }
            fb += '\n';
        } else {
            copy_time(ql, e.received_us);
            ql += '\t';
            if (r.query_id) copy_i64(ql, r.query_id); else ql += "\\N";
            ql += '\t';
            copy_double(ql, r.planning_ms, true);
            ql += '\t';
            copy_double(ql, r.execution_ms, false);
            ql += '\t';
            ql += std::to_string(r.nrels);
            if (query_log_guard_) {
                ql += '\t';
                if (r.dboid) ql += std::to_string(r.dboid); else ql += "\\N";
                ql += '\t';
                ql += r.guard_arm == pilot::proto::ARM_PILOT ? "pilot" : r.guard_arm == pilot::proto::ARM_NATIVE ? "native" : "\\N";
            }
            if (query_log_table_rows_) {
                ql += '\t';
                if (r.table_rows_log >= 0) copy_double(ql, r.table_rows_log, false); else ql += "\\N";
            }
            ql += '\n';
        }
    }

    PGresult *r = nullptr;
    if (!exec("BEGIN", &r))
        return fail(r, "BEGIN");
    /* lock the watermark and check nobody moved it */
    {
        const char *params[1] = {spool_.id().c_str()};
        r = PQexecParams(conn_,
                         "SELECT committed_seq FROM pg_pilot.store_progress WHERE spool_id = $1 FOR UPDATE", 1,
                         nullptr, params, nullptr, nullptr, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            return fail(r, "reading the watermark");
        /* compared with what was read from PostgreSQL (watermark_ may be
         * above it: see read_watermark) */
        bool has_row = PQntuples(r) == 1;
        bool moved = has_row != db_has_row_ ||
                     (has_row && strtoull(PQgetvalue(r, 0, 0), nullptr, 10) != db_watermark_);
        PQclear(r);
        if (moved) {
            *error = "store: the watermark moved under us; re-reading it";
            PGresult *rb = PQexec(conn_, "ROLLBACK");
            PQclear(rb);
            if (read_watermark(error) == Result::Ok)
                *error = "store: the watermark moved under us; re-read it";
            return Result::Retry;
        }
    }
    if (!fb.empty() && !copy(feedback_dboid_ ? "COPY pg_pilot.feedback (observed_at, query_id, subplan_key, "
                                               "template_key, relations, nrels, native_rows, pilot_rows, "
                                               "actual_rows, dboid) FROM STDIN"
                                             : "COPY pg_pilot.feedback (observed_at, query_id, subplan_key, "
                                               "template_key, relations, nrels, native_rows, pilot_rows, "
                                               "actual_rows) FROM STDIN",
                             fb, &r))
        return fail(r, "COPY into pg_pilot.feedback");
    const char *query_log_copy =
        query_log_table_rows_ ? "COPY pg_pilot.query_log (logged_at, query_id, planning_ms, execution_ms, "
                                "relation_sets, dboid, estimates, table_rows_log) FROM STDIN"
        : query_log_guard_    ? "COPY pg_pilot.query_log (logged_at, query_id, planning_ms, execution_ms, "
                                "relation_sets, dboid, estimates) FROM STDIN"
                              : "COPY pg_pilot.query_log (logged_at, query_id, planning_ms, execution_ms, "
                                "relation_sets) FROM STDIN";
    if (!ql.empty() && !copy(query_log_copy, ql, &r))
        return fail(r, "COPY into pg_pilot.query_log");
    if (!dl.empty() && !copy("COPY pg_pilot.feedback_dead_letter (received_at, reason, record) FROM STDIN", dl, &r))
        return fail(r, "COPY into pg_pilot.feedback_dead_letter");
    {
        std::string next = std::to_string(entries[end - 1].seq + 1);
        const uint64_t after = entries[end - 1].seq + 1, next_seq = spool_.next_seq();
        const std::string waiting = std::to_string(next_seq > after ? next_seq - after : 0);
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) != 0)
            host[0] = '\0';
        /* a standby's data directory holds standby.signal until it is promoted */
        const char *role =
            opt_.pgdata.empty() ? "" : access((opt_.pgdata + "/standby.signal").c_str(), F_OK) == 0 ? "standby" : "primary";
        const char *params[6] = {spool_.id().c_str(), next.c_str(), host, opt_.pgdata.c_str(), role, waiting.c_str()};
        r = fleet_columns_
                ? PQexecParams(conn_,
                               "INSERT INTO pg_pilot.store_progress (spool_id, committed_seq, updated_at, host, "
                               "pgdata, role, waiting) VALUES ($1, $2, now(), nullif($3, ''), nullif($4, ''), "
                               "nullif($5, ''), $6) ON CONFLICT (spool_id) DO UPDATE SET committed_seq = "
                               "EXCLUDED.committed_seq, updated_at = now(), host = EXCLUDED.host, pgdata = "
                               "EXCLUDED.pgdata, role = EXCLUDED.role, waiting = EXCLUDED.waiting",
                               6, nullptr, params, nullptr, nullptr, 0)
                : PQexecParams(conn_,
                               "INSERT INTO pg_pilot.store_progress (spool_id, committed_seq, updated_at) "
                               "VALUES ($1, $2, now()) ON CONFLICT (spool_id) DO UPDATE "
                               "SET committed_seq = EXCLUDED.committed_seq, updated_at = now()",
                               2, nullptr, params, nullptr, nullptr, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return fail(r, "moving the watermark");
        PQclear(r);
    }
    if (!exec("COMMIT", &r))
        return fail(r, "COMMIT");
    uint64_t n = end - begin;
    uint64_t nd = 0, nreplayed = 0;
    for (size_t i = begin; i < end; i++) {
        if (reject_reason != nullptr || entries[i].type == FeedbackSpool::DEAD)
            nd++;
        if (failing_ || entries[i].seq < replay_mark_)
            nreplayed++;
    }
    watermark_ = entries[end - 1].seq + 1;
    db_watermark_ = watermark_;
    db_has_row_ = true;
    committed_.fetch_add(n);
    dead_ += nd;
    replayed_ += nreplayed;
    return Result::Ok;
}

void PgStore::retention() noexcept {
    const uint64_t now = monotonic_us();
    if (conn_ == nullptr || opt_.retention_interval_s == 0 ||
        (last_retention_us_ != 0 && now - last_retention_us_ < opt_.retention_interval_s * 1000000ull))
        return;
    last_retention_us_ = now;
    struct Rule {
        const char *table, *time_col;
        bool by_rows;
    };
    static const Rule rules[] = {{"pg_pilot.feedback", "observed_at", true},
                                 {"pg_pilot.query_log", "logged_at", true},
                                 {"pg_pilot.feedback_dead_letter", "received_at", false}};
    uint64_t deleted = 0;
    for (const Rule &rule : rules) {
        std::string sqls[2];
        if (opt_.retention_days > 0)
            sqls[0] = std::string("DELETE FROM ") + rule.table + " WHERE " + rule.time_col + " < now() - interval '" +
                      std::to_string(opt_.retention_days) + " days'";
        if (opt_.max_rows > 0 && rule.by_rows)
            sqls[1] = std::string("DELETE FROM ") + rule.table + " WHERE id <= (SELECT max(id) FROM " + rule.table +
                      ") - " + std::to_string(opt_.max_rows);
        for (const std::string &sql : sqls) {
            if (sql.empty())
                continue;
            PGresult *r = PQexec(conn_, sql.c_str());
            if (PQresultStatus(r) == PGRES_COMMAND_OK) {
                deleted += strtoull(PQcmdTuples(r), nullptr, 10);
            } else {
                LOG_WARNING("store retention: %s: %s", rule.table, one_line(PQerrorMessage(conn_)).c_str());
                if (PQstatus(conn_) != CONNECTION_OK) {
                    PQclear(r);
                    disconnect();
                    return;
                }
            }
            PQclear(r);
        }
    }
    if (deleted > 0)
        LOG_INFO("store retention: deleted %llu rows (older than %u days or beyond %llu rows)",
                 static_cast<unsigned long long>(deleted), opt_.retention_days,
                 static_cast<unsigned long long>(opt_.max_rows));
}

void PgStore::run() noexcept {
    std::vector<FeedbackSpool::Entry> entries;
    uint32_t backoff = opt_.backoff_min_ms;
    std::mt19937 jitter(static_cast<uint32_t>(monotonic_us()));
    uint64_t last_log_us = 0, unlogged = 0;
    while (!stopping_.load()) {
        std::string error;
        Result res = Result::Ok;
        try {
            if (conn_ != nullptr && connected_to_primary_of_standby_ && !is_standby_data_directory(opt_.pgdata)) {
                /* promoted: the store is this server from now on */
                LOG_INFO("store: the server of %s was promoted: storing to it from now on", opt_.pgdata.c_str());
                disconnect();
            }
            if (conn_ == nullptr && !connect(&error)) {
                res = Result::Retry;
            } else {
                spool_.read(watermark_, opt_.chunk, &entries);
                /* what the previous instance acknowledged is committed: its runs
                 * are all in query_log now */
                if (!guard_restored_ && watermark_ >= restore_after_seq_)
                    restore_guard_runs();
                if (entries.empty()) {
                    retention();
                    publish();
                    spool_.wait_for(watermark_, 1000);
                    continue;
                }
                res = commit(entries, 0, entries.size(), nullptr, &error);
                if (res == Result::DataError) {
                    /* find the entries the server rejects: one transaction each */
                    LOG_WARNING("%s; retrying the %zu entries one by one", error.c_str(), entries.size());
                    res = Result::Ok;
                    for (size_t i = 0; i < entries.size() && res == Result::Ok && !stopping_.load(); i++) {
                        if (entries[i].seq < watermark_)
                            continue;
                        res = commit(entries, i, i + 1, nullptr, &error);
                        if (res == Result::DataError) {
                            std::string why = error;
                            LOG_WARNING("%s; entry %llu goes to the dead-letter table", why.c_str(),
                                        static_cast<unsigned long long>(entries[i].seq));
                            res = commit(entries, i, i + 1, &why, &error);
                        }
                    }
                }
            }
        } catch (const std::exception &e) {
            /* maybe inside a transaction: start over from PostgreSQL's watermark */
            error = std::string("store: ") + e.what();
            res = Result::Retry;
            disconnect();
        }
        if (res == Result::Ok) {
            if (failing_) {
                LOG_INFO("store: committing again (spool entries up to %llu were held while it failed)",
                         static_cast<unsigned long long>(spool_.next_seq()));
                replay_mark_ = std::max(replay_mark_, spool_.next_seq());
                set_error("");
            }
            failing_ = false;
            backoff = opt_.backoff_min_ms;
            spool_.release(watermark_);
            publish();
            continue;
        }
        /* Retry, or a DataError that could not be turned into dead letters */
        failures_++;
        if (!failing_)
            replay_mark_ = std::max(replay_mark_, spool_.next_seq());
        failing_ = true;
        set_error(error);
        publish();
        uint64_t now = monotonic_us();
        if (last_log_us == 0 || now - last_log_us > 30000000ull) {
            LOG_WARNING("%s (retrying in %u ms; feedback is kept in the spool; %llu similar messages not logged)",
                        error.c_str(), backoff, static_cast<unsigned long long>(unlogged));
            last_log_us = now;
            unlogged = 0;
        } else {
            unlogged++;
        }
        uint32_t wait = backoff / 2 + jitter() % (backoff / 2 + 1); /* 50..100 % */
        backoff = std::min(opt_.backoff_max_ms, backoff * 2);
        if (!sleep_ms(wait))
            break;
    }
    publish();
}

} // namespace pilotd
