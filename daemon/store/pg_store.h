/*
 * pg_store.h — commits the feedback spool (feedback_spool.h) into the
 * extension's tables through libpq, as a dedicated role (member of
 * pilot_store, see sql/pg_pilot--0.1.sql):
 *
 *   pg_pilot.feedback              one row per relation set observed
 *   pg_pilot.query_log             one row per query observed
 *   pg_pilot.feedback_dead_letter  records that could not be used, with why
 *   pg_pilot.store_progress        per spool: the next seq to commit
 *
 * Exactly once: each transaction COPYs a chunk of spool entries and moves the
 * spool's watermark in store_progress in the SAME transaction, after locking
 * and checking it; after any failure (even a lost COMMIT reply) the store
 * thread reconnects and continues from the watermark PostgreSQL has.  Spool
 * segments below the watermark are deleted.
 *
 * Failures: connection errors, missing tables, refused permissions, timeouts
 * are retried with exponential backoff (min..max, with jitter); the spool
 * holds everything meanwhile.  A chunk the server rejects for its data
 * (SQLSTATE classes 22, 23) is retried entry by entry; an entry rejected on its
 * own goes to the dead-letter table with the server's message.
 *
 * Retention: every retention_interval_s, rows older than retention_days and
 * rows beyond max_rows (the oldest ids) are deleted (0 = no limit).
 *
 * The plan guard: runs carry their database and arm (pg_pilot.query_log
 * dboid, estimates; schema 0.5, used when the table has them).  Once the
 * spool's entries from before a start are committed, the runs logged before that start are
 * read back (the latest GuardBook::kWindow per template and arm, of the
 * last 7 days) and handed to restore_guard: a kill -9 loses none of the
 * guard's acknowledged runs.
 *
 * One thread; counters and the last error are published in the segment.
 */
#ifndef PILOTD_PG_STORE_H
#define PILOTD_PG_STORE_H

#include "feedback_spool.h"
#include "guard_book.h"
#include "pilot_protocol.h"

#include <atomic>
#include <functional>
#include <mutex>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

struct pg_conn;
struct pg_cancel;

namespace pilotd {

/* Has table (schema-qualified) every one of these columns?  The store's
 * tables gained columns with extension versions; pilotd works with older
 * ones.  False also when the query fails. */
bool store_has_columns(pg_conn *conn, const std::string &table, const std::vector<std::string> &columns);

struct PgStoreOptions {
    std::string dsn;    /* libpq connection string */
    std::string pgdata; /* host and port come from its postmaster.pid when dsn has none */
    uint32_t chunk = 2000;
    uint32_t backoff_min_ms = 100;
    uint32_t backoff_max_ms = 30000;
    uint32_t retention_days = 30;
    uint64_t max_rows = 10000000;
    uint32_t retention_interval_s = 60;
    /* the guard's runs from before this start (see above); may be empty */
    std::function<void(const std::vector<GuardRun> &)> restore_guard;
    uint64_t started_unix_us = 0; /* runs logged before it are restored */
};

class PgStore {
  public:
    PgStore(PgStoreOptions opt, FeedbackSpool &spool);
    ~PgStore();
    PgStore(const PgStore &) = delete;
    PgStore &operator=(const PgStore &) = delete;

    /* Starts the store thread; counters may be null. */
    void start(pilot::proto::PilotdCounters *counters);
    /* Stops after the current transaction (bounded by statement_timeout). */
    void stop() noexcept;

    uint64_t committed() const { return committed_.load(); }
    /* spool entries not committed yet (after stop(): exact) */
    uint64_t pending() {
        uint64_t next = spool_.next_seq();
        return next > watermark_ ? next - watermark_ : 0;
    }

  private:
    enum class Result { Ok, Retry, DataError };
    void run() noexcept;
    bool connect(std::string *error);
    void disconnect() noexcept;
    Result commit(const std::vector<FeedbackSpool::Entry> &entries, size_t begin, size_t end,
                  const std::string *reject_reason, std::string *error);
    Result read_watermark(std::string *error);
    bool check_query_log_columns();
    bool check_feedback_dboid();
    void restore_guard_runs() noexcept;
    void retention() noexcept;
    void set_error(const std::string &e) noexcept;
    void publish() noexcept;
    bool sleep_ms(uint32_t ms) noexcept;

    PgStoreOptions opt_;
    FeedbackSpool &spool_;
    pilot::proto::PilotdCounters *ctr_ = nullptr;
    pg_conn *conn_ = nullptr;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    uint64_t watermark_ = 0;   /* next seq to commit; valid while connected */
    uint64_t db_watermark_ = 0; /* what store_progress said (or was set to by us) */
    bool db_has_row_ = false;   /* store_progress has a row for this spool */
    std::mutex cancel_mu_;
    pg_cancel *cancel_ = nullptr; /* for stop(): PQcancel is thread-safe */
    uint64_t replay_mark_ = 0; /* entries below it waited out a restart or an outage */
    bool failing_ = false;
    std::atomic<uint64_t> committed_{0};
    uint64_t replayed_ = 0, dead_ = 0, failures_ = 0;
    uint64_t last_retention_us_ = 0;
    bool query_log_guard_ = false; /* query_log has dboid and estimates (0.5) */
    bool feedback_dboid_ = false;  /* feedback has dboid (0.8) */
    bool query_log_table_rows_ = false; /* query_log has table_rows_log (0.9) */
    bool fleet_columns_ = false;   /* store_progress has host, pgdata, role, waiting (0.8) */
    bool connected_to_primary_of_standby_ = false; /* the server of -D is a standby: its primary's store */
    bool guard_restored_ = false;
    uint64_t restore_after_seq_ = 0; /* the spool's next seq at start */
};

} // namespace pilotd

#endif
