/*
 * pg_pilot.cpp — module entry point: parameters and hook installation.
 *
 * pg_pilot gives PostgreSQL's planner row counts from a process of its own,
 * pilotd, over shared memory.  The planner asks for the estimates of base and
 * join relations while it plans; when pilotd is down, slow
 * (pg_pilot.timeout_ms, one budget per query), of another protocol version or
 * simply does not know a relation set, the planner keeps its own estimate and a
 * counter in pg_pilot.stats says why.  Nothing here raises an error inside a
 * user's query.
 *
 * Layout of the extension:
 *   pg_pilot.cpp       parameters, _PG_init (this file)
 *   planner_hooks.cpp  planner / set_rel_pathlist / set_join_pathlist hooks
 *   relset_estimates.cpp  a relation set's estimate: keyed, filtered, asked
 *   join_prefetch.cpp  connected join sets (DPccp) asked for ahead
 *   relset_key.cpp     planner structures -> subplan key description
 *   key_bridge.cpp     the only caller of common/subplan_key (C++ side)
 *   feedback.cpp       executor hooks: actual rows per relation set -> pilotd
 *   plan_map.cpp       plan nodes -> keyed relation sets (planning end, plancache)
 *   pilotd_client.cpp  round trips to pilotd, time budget, fallback reasons
 *   pilot_stats.cpp    shared counters behind pg_pilot.stats
 *   sql_functions.cpp  SQL-callable functions
 *
 * Must be loaded with shared_preload_libraries (its counters live in the
 * server's shared memory).
 */
extern "C" {
#include "postgres.h"

#include "utils/queryjumble.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

bool pilot_enabled = true;
int pilot_timeout_ms = 5;
int pilot_estimator = pilot::proto::EST_AUTO;
bool pilot_log_estimates = false;
int pilot_daemon_stale_ms = 1000;
int pilot_reattach_interval_ms = 100;
bool pilot_collect_feedback = true;
double pilot_feedback_sample_rate = 1.0;

static const struct config_enum_entry estimator_options[] = {
	{"auto", pilot::proto::EST_AUTO, false},
	{"oracle", pilot::proto::EST_ORACLE, false},
	{"native", pilot::proto::EST_NATIVE, false},
	{"memo", pilot::proto::EST_MEMO, false},
	{"learned", pilot::proto::EST_LEARNED, false},
	{NULL, 0, false}
};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
pilot_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	pilot_stats_shmem_request();
}

static void
pilot_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	pilot_stats_shmem_startup();
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
	{
		/* Loaded by CREATE EXTENSION or LOAD in a server that did not preload
		 * it: install nothing, the SQL functions explain what to do. */
		return;
	}

	DefineCustomBoolVariable("pg_pilot.enabled",
							 "Use pilotd's row estimates while planning.",
							 "When off, queries are planned exactly as without pg_pilot.",
							 &pilot_enabled, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("pg_pilot.timeout_ms",
							"Longest time pg_pilot may add to one query's planning, in total.",
							"Its own work (keys, join sizes) and waiting for pilotd count; relation "
							"sets not answered within it keep PostgreSQL's estimate. 0 disables asking.",
							&pilot_timeout_ms, 5, 0, 10000, PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("pg_pilot.estimator",
							 "Which pilotd estimator answers this session's queries.",
							 "auto: pilotd's chain (oracle, memo, learned model); "
							 "oracle: only loaded cardinalities; memo: only observed ones; "
							 "learned: only the learned model; "
							 "native: none (PostgreSQL's estimates; nothing is asked, the chosen "
							 "plan's sets are still keyed for execution feedback).",
							 &pilot_estimator, pilot::proto::EST_AUTO, estimator_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_pilot.log_estimates",
							 "Log every relation set's native and pg_pilot estimate.",
							 NULL, &pilot_log_estimates, false, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("pg_pilot.daemon_stale_ms",
							"A pilotd heartbeat older than this means pilotd is gone.",
							NULL, &pilot_daemon_stale_ms, 1000, 20, 60000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("pg_pilot.reattach_interval_ms",
							"How often a backend without pilotd looks for it again.",
							NULL, &pilot_reattach_interval_ms, 100, 0, 60000, PGC_SIGHUP,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_pilot.collect_feedback",
							 "Send the actual row counts of executed plans to pilotd.",
							 "Rows only (no timing) for sampled queries; a full queue drops, "
							 "never waits.",
							 &pilot_collect_feedback, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomRealVariable("pg_pilot.feedback_sample_rate",
							 "Fraction of queries whose execution feedback is collected.",
							 NULL, &pilot_feedback_sample_rate, 1.0, 0.0, 1.0, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("pg_pilot.guard",
							 "Guard each query template against slower plans from pg_pilot's estimates.",
							 "pilotd times the template's runs with pg_pilot's and with PostgreSQL's "
							 "estimates and keeps the faster; needs pg_pilot.collect_feedback.",
							 &pilot_guard, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomRealVariable("pg_pilot.guard_probe_rate",
							 "Fraction of a decided template's runs that try the other estimates.",
							 "So that a decision can be revised as data and models change.",
							 &pilot_guard_probe_rate, 0.05, 0.0, 1.0, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("pg_pilot");

	/* query ids (compute_query_id = auto): the feedback store's query log
	 * joins pg_stat_statements on them */
	EnableQueryId();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pilot_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pilot_shmem_startup;

	pilot_install_planner_hooks();
	pilot_install_executor_hooks();
	pilot_install_guard_hooks();
}

const char *
pilot_fallback_name(PilotFallback f)
{
	switch (f)
	{
		case PF_NONE: return "none";
		case PF_TIMEOUT: return "timeout";
		case PF_PILOTD_DOWN: return "daemon_down";
		case PF_VERSION_MISMATCH: return "version_mismatch";
		case PF_UNKNOWN: return "unknown";
		case PF_INVALID: return "invalid";
		case PF_UNKEYABLE: return "unkeyable";
		case PF_NO_SLOT: return "no_slot";
		case PF_BUSY: return "busy";
		case PF_ERROR: return "error";
		case PF_NUM_REASONS: break;
	}
	return "?";
}
