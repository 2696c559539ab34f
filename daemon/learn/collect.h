/*
 * collect.h — `pilotd collect`: bootstraps training labels by running a
 * workload through PostgreSQL with pg_pilot's execution feedback on, so that
 * pilotd observes (and its store keeps) the actual row counts of every
 * relation set the plans contain.
 *
 *   pilotd collect [-c FILE] [-D DIR] --workload FILE [--dsn DSN] [--timeout-ms N] [--repeat K] [--subplans]
 *
 * The DSN defaults to the configuration's model-dsn (the config file, -c or
 * the default one, and with -D the settings of that data directory's pilotd
 * service); with -D it goes to that server unless it names host or port.
 *
 * Workload file (FILE "-" = standard input): one query per line; blank lines
 * and lines starting with "--" or "#" (after leading blanks) are skipped; a
 * line "NUMBER||SQL" (a label file such as shared/data/stats5/train.txt) runs
 * the SQL after the first "||"; a trailing ';' is allowed.  The statements are
 * run as they are (DML modifies data); results are read and discarded (single-
 * row mode: a big result is never held in memory).
 *
 * Session: SET pg_pilot.collect_feedback = on, pg_pilot.feedback_sample_rate
 * = 1.0, pg_pilot.enabled = on, statement_timeout = N ms.  If the server has
 * not loaded pg_pilot (shared_preload_libraries), collect fails at once: the
 * queries would produce no feedback.  If the database has the extension and
 * pg_pilot.pilotd (pg_pilot.daemon before extension 0.9) says pilotd is not
 * attached, a warning says the feedback will be dropped (the run continues).
 *
 * Each query: ok, timed out (SQLSTATE 57014) or failed (any other error; the
 * first few are printed with their line number).  A failing query never stops
 * the run; a transaction a query leaves open (or aborted) is rolled back.  A
 * lost connection is re-established once (waiting up to 30 s for a
 * restarting server) and the run continues with the next query; losing it
 * again on the very next query, or not getting it back, ends the run (exit 1).
 *
 * --subplans: after each query (first pass only), every relation set the
 * planner sizes for it (pg_pilot.subplans(), extension 0.4) that the model can
 * describe is counted once per run with SELECT count(*) (models/key_sql.h),
 * feedback on, hash joins only (no nested loop: its inner side gives no
 * label; no merge join), so the store also learns the sub-plans the chosen
 * plans never execute.  Each count has the statement timeout; one that times
 * out is skipped.  Needs the extension in the database.
 *
 * --oracle-out OUT: the workload is not run and nothing is collected
 * (pg_pilot.collect_feedback = off, pg_pilot.estimator = native): every
 * describable relation set the planner sizes for each query
 * (pg_pilot.subplans()) is counted as for --subplans and written to OUT as an
 * oracle file, "COUNT||SQL" per line, for pg_pilot.load_cardinalities() —
 * the true counts a benchmark compares estimates with, from the planner's own
 * enumeration (the same sets, the same keys).  --max-subplans N keeps per
 * query the N - 1 smallest sets and the whole query.  OUT is written whole
 * at the end (a temporary file renamed); sets whose count timed out or
 * failed are left out and counted.
 *
 * Output on stderr: progress (progress.h: on a terminal a line redrawn in
 * place with done/total, rate and time left; otherwise a line at every 10 %),
 * then
 *   collect: N queries, N ok, N timed out, N failed in X s
 * Exit status: 0 the run completed (whatever the queries' outcomes), 1 runtime
 * error (unreadable workload, cannot connect, pg_pilot not loaded, connection
 * lost for good).
 */
#ifndef PILOTD_COLLECT_H
#define PILOTD_COLLECT_H

#include <cstdint>
#include <string>
#include <vector>

namespace pilotd {

struct CollectOptions {
    std::string workload;
    std::string dsn;
    uint32_t timeout_ms = 60000; /* statement_timeout per query; 0 = none */
    uint32_t repeat = 1;         /* run the whole workload K times */
    bool subplans = false;       /* also count every describable sub-plan */
    std::string oracle_out;      /* instead: count the sub-plans into this oracle file ("-": stdout) */
    uint32_t max_subplans = 0;   /* oracle_out: per query at most this many (0: all) */
};

/* exit status: 0 ok, 1 runtime error */
int run_collect(const CollectOptions &o);

/* Optional helper for the command line: parses the arguments after
 * "collect" but -c and -D (--workload FILE, --dsn DSN, --timeout-ms N, --repeat K,
 * --oracle-out FILE, --max-subplans N, also as --opt=value; --subplans) over *o (o->dsn: the configured default).  False with *error for an unknown option, a missing value or
 * a bad number, or when --workload or the DSN is missing. */
bool parse_collect_args(const std::vector<std::string> &args, CollectOptions *o, std::string *error);

struct WorkloadQuery {
    uint32_t line = 0; /* 1-based line number in the file */
    std::string sql;
};

/* Reads a workload file as described above; false with *error when it cannot
 * be read. */
bool read_workload(const std::string &path, std::vector<WorkloadQuery> *out, std::string *error);

} // namespace pilotd

#endif
