/*
 * index_advisor.h — workload-driven index recommendations, costed with
 * HypoPG's hypothetical indexes while pg_pilot's learned cardinalities are in
 * force (the advisor plans in an ordinary session of a server that preloads
 * pg_pilot, so the planner it asks "what if" is the planner the workload gets).
 *
 * A run, against one database (libpq):
 *   1. workload: a file (one query per line, as `pilotd collect` reads it;
 *      identical lines add up as frequency), each distinct SELECT measured once
 *      with EXPLAIN ANALYZE within the statement timeout; or the database's
 *      pg_stat_statements entries (normalized text, calls, time), with calls
 *      and time taken from pg_pilot.query_log in the feedback store when it has
 *      them.  Normalized texts ($1...) are planned as generic plans.
 *   2. the columns each query filters, joins, sorts and groups on, read from
 *      its EXPLAIN (VERBOSE) plan; candidates: each column, and ordered column
 *      lists up to the width; a candidate that is an existing btree index's
 *      leading columns is not proposed;
 *   3. what-if: a query's cost with a candidate set is its EXPLAIN cost with
 *      those hypothetical indexes (hypopg_create_index), cached per (query,
 *      indexes on the query's tables);
 *   4. greedy selection by net benefit per byte, within the storage budget and
 *      the count limit.  Benefit of an index = sum over queries of the query's
 *      time x the relative cost reduction; its write cost = rows the table
 *      changes per second (pg_stat_user_tables) x the workload's window x
 *      write_cost_us.  An index must gain at least min_benefit_pct of the
 *      workload's time;
 *   5. existing indexes never scanned (pg_stat_user_indexes) or whose key
 *      columns lead another btree index are reported as redundant.
 * Queries that cannot be planned are skipped and counted, never fatal.
 */
#ifndef PILOTD_INDEX_ADVISOR_H
#define PILOTD_INDEX_ADVISOR_H

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pilotd {

class PqSession;
struct Config;
struct CommandDefaults;

struct AdvisorOptions {
    std::string dsn;            /* the database to advise */
    std::string dbname;         /* overrides the DSN's database when not empty */
    std::string store_dsn;      /* pg_pilot.query_log's database ("" / "none": not used) */
    std::string workload;       /* a workload file; empty: pg_stat_statements */
    double budget_mb = 1024;    /* total size of the recommended indexes */
    uint32_t max_indexes = 5;
    uint32_t width = 2;         /* columns per index, 1..3 */
    double min_benefit_pct = 1; /* of the workload's time */
    double write_cost_us = 20;  /* per changed row and index */
    bool plain = false;         /* PostgreSQL's own estimates (pg_pilot.enabled off) */
    uint32_t timeout_ms = 10000; /* statement_timeout of a measuring run */
    uint32_t max_queries = 200;  /* the heaviest queries of the workload */
    uint32_t max_candidates = 400;
    std::function<void(const std::string &)> progress; /* may be empty */
    /* each query planned or measured: (what, done, total); may be empty */
    std::function<void(const char *, size_t, size_t)> counted;
    const std::atomic<bool> *stop = nullptr; /* set: end the run early (an error "stopped") */
};

struct QueryGain {
    std::string query;
    int64_t queryid = 0; /* pg_stat_statements' queryid, 0 unknown */
    double calls = 0;
    double time_ms = 0;      /* the query's time in the workload (all calls) */
    double cost_before = 0;  /* planner cost with the indexes chosen before this one */
    double cost_after = 0;
};

struct IndexRecommendation {
    std::string schema, table;
    std::vector<std::string> columns;
    std::string index_name; /* the name it gets when applied */
    std::string statement;  /* CREATE INDEX CONCURRENTLY ... */
    double size_bytes = 0;  /* HypoPG's estimate */
    double benefit_ms = 0;  /* estimated workload time saved */
    double write_cost_ms = 0;
    std::vector<QueryGain> queries; /* those that gain, most first */
    std::string reason;
};

struct RedundantIndex {
    std::string schema, table, index_name;
    std::string kind; /* "unused" or "duplicate" */
    double size_bytes = 0;
    std::string reason;
    std::string statement; /* DROP INDEX CONCURRENTLY ... */
};

struct AdviceResult {
    bool ok = false;
    std::string error;
    std::vector<IndexRecommendation> recommendations;
    std::vector<RedundantIndex> redundant;
    uint32_t queries = 0;        /* distinct queries costed */
    uint32_t skipped = 0;        /* could not be planned or measured */
    std::vector<std::string> skipped_examples; /* "why: query" (first few) */
    uint32_t candidates = 0;
    uint64_t whatif_plans = 0;   /* EXPLAINs with hypothetical indexes */
    uint64_t whatif_cache_hits = 0;
    double workload_ms = 0;      /* the workload's total time */
    double seconds = 0;          /* the run's duration */
    bool learned = false;        /* pg_pilot's estimates were in force */
    std::string note;            /* why the selection stopped, when it chose nothing */
};

/* One run on a session that is connected to the database to advise. */
AdviceResult advise(PqSession &db, const AdvisorOptions &o);

/* Creates rec's index with CREATE INDEX CONCURRENTLY (an invalid index left
 * by a failure is dropped).  Then plans rec's queries again: *using = how
 * many of them use it.  False with *error. */
bool apply_recommendation(PqSession &db, const IndexRecommendation &rec, uint32_t *using_it, std::string *error);

/* Writes the run into pg_pilot.index_advice (extension 0.3) when the database
 * has it: the previous proposals become "superseded".  False with *error. */
bool store_advice(PqSession &db, const AdviceResult &res, const AdvisorOptions &o, uint64_t run_id,
                  std::string *error);

/* `pilotd advise` (see --help). Exit status: 0 ok, 1 runtime error, 2 usage. */
int run_advise_command(const std::vector<std::string> &args, const CommandDefaults &defaults);

/* The advisor-* settings of pilotd's configuration (budget, count, width,
 * least benefit, write cost): the defaults of the service's jobs and of
 * `pilotd advise`. */
AdvisorOptions advisor_options(const Config &c);

} // namespace pilotd

#endif
