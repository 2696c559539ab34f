/*
 * guard.cpp — the plan guard's backend half (pilotd's half, which times the
 * runs and decides, is daemon/guard/guard_book.h).
 *
 * When planning a query with a query id, the backend looks its template up in
 * the segment's guard table (a few cache lines, never a wait) and plans it
 * either with pg_pilot's estimates (ARM_PILOT) or exactly as PostgreSQL alone
 * would (ARM_NATIVE: pg_pilot asks nothing).  The executor hooks then report
 * the run's planning + execution time with the arm (feedback.cpp), and pilotd
 * decides from those runs:
 *   no row yet     either, at random (pilotd starts the template's book)
 *   explore        the arm with fewer runs, so the two alternate; at random
 *                  when they have as many (concurrent backends that read the
 *                  same counts then split, instead of all taking one arm)
 *   pilot/native   that arm; a fraction pg_pilot.guard_probe_rate of runs
 *                  takes the other, so that the decision can be revised
 *   pinned         the pinned arm, always (pg_pilot.guard_pin())
 * pilotd down or the guard off: pg_pilot's estimates, as without the guard
 * (and they fall back to PostgreSQL's when pilotd cannot answer).
 * EXPLAIN without ANALYZE executes nothing: it shows the side the template's
 * runs use now (pg_pilot's while it explores), never a random or probing one
 * (ExplainOneQuery_hook marks that planning). 
 *
 * SQL: pg_pilot.guard_pin(query_id, arm) (MSG_GUARD_PIN), pg_pilot.guard_reset()
 * (MSG_GUARD_RESET) and pg_pilot.guard_templates() (the table, for the
 * pg_pilot.query_stats view).
 */
extern "C" {
#include "postgres.h"

#include "commands/explain.h"
#include "common/pg_prng.h"
#include "executor/instrument.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"

using namespace pilot::proto;

extern "C" {
PG_FUNCTION_INFO_V1(pg_pilot_guard_pin);
PG_FUNCTION_INFO_V1(pg_pilot_guard_templates);
PG_FUNCTION_INFO_V1(pg_pilot_guard_reset);
}

bool		pilot_guard = true;
double		pilot_guard_probe_rate = 0.05;

static ExplainOneQuery_hook_type prev_explain_one_query = NULL;
static int	explain_only_depth = 0;	/* > 0 while EXPLAIN without ANALYZE plans */

static bool
probe(void)
{
	return pilot_guard_probe_rate > 0 && pg_prng_double(&pg_global_prng_state) < pilot_guard_probe_rate;
}

static uint32
either_arm(void)
{
	return pg_prng_double(&pg_global_prng_state) < 0.5 ? ARM_PILOT : ARM_NATIVE;
}

uint32
pilot_guard_arm(uint64 query_id, bool *must_report)
{
	GuardEntry	e;

	*must_report = false;
	/* no runs to time without feedback; nothing to guard with native estimates */
	if (!pilot_guard || query_id == 0 || !pilot_collect_feedback || pilot_estimator == EST_NATIVE)
		return ARM_UNKNOWN;
	if (!pilotd_guard_entry(query_id, &e))
	{
		*must_report = explain_only_depth == 0;
		return *must_report ? either_arm() : ARM_PILOT;
	}
	if (e.pinned != ARM_UNKNOWN)
		return e.pinned;
	if (explain_only_depth > 0)
		return e.decision == GUARD_NATIVE ? ARM_NATIVE : ARM_PILOT;
	switch (e.decision)
	{
		case GUARD_EXPLORE:
			*must_report = true;
			if (e.pilot_runs != e.native_runs)
				return e.pilot_runs < e.native_runs ? ARM_PILOT : ARM_NATIVE;
			return either_arm();
		case GUARD_PILOT:
			*must_report = probe();
			return *must_report ? ARM_NATIVE : ARM_PILOT;
		default:
			*must_report = probe();
			return *must_report ? ARM_PILOT : ARM_NATIVE;
	}
}

uint32
pilot_guard_settled_arm(uint64 query_id)
{
	GuardEntry	e;

	if (!pilot_guard || query_id == 0 || !pilotd_guard_entry(query_id, &e))
		return ARM_UNKNOWN;
	if (e.pinned != ARM_UNKNOWN)
		return e.pinned;
	switch (e.decision)
	{
		case GUARD_PILOT:
			return ARM_PILOT;
		case GUARD_NATIVE:
			return ARM_NATIVE;
		default:
			return ARM_UNKNOWN;
	}
}

/* EXPLAIN: what ExplainOneQuery() does (explain.c, PostgreSQL 15), with
 * plannings of EXPLAIN without ANALYZE marked for pilot_guard_arm() */
static void
pilot_explain_one_query(Query *query, int cursorOptions, IntoClause *into, ExplainState *es,
						const char *queryString, ParamListInfo params, QueryEnvironment *queryEnv)
{
	const bool	only = !es->analyze;

	if (only)
		explain_only_depth++;
	PG_TRY();
	{
		if (prev_explain_one_query)
			prev_explain_one_query(query, cursorOptions, into, es, queryString, params, queryEnv);
		else
		{
			PlannedStmt *plan;
			instr_time	planstart,
						planduration;
			BufferUsage bufusage_start,
						bufusage;

			if (es->buffers)
				bufusage_start = pgBufferUsage;
			INSTR_TIME_SET_CURRENT(planstart);
			plan = pg_plan_query(query, queryString, cursorOptions, params);
			INSTR_TIME_SET_CURRENT(planduration);
			INSTR_TIME_SUBTRACT(planduration, planstart);
			if (es->buffers)
			{
				memset(&bufusage, 0, sizeof(BufferUsage));
				BufferUsageAccumDiff(&bufusage, &pgBufferUsage, &bufusage_start);
			}
			ExplainOnePlan(plan, into, es, queryString, params, queryEnv, &planduration,
						   es->buffers ? &bufusage : NULL);
		}
	}
	PG_FINALLY();
	{
		if (only)
			explain_only_depth--;
	}
	PG_END_TRY();
}

void
pilot_install_guard_hooks(void)
{
	prev_explain_one_query = ExplainOneQuery_hook;
	ExplainOneQuery_hook = pilot_explain_one_query;
}

/* guard_pin(query_id bigint, arm text): 'pilot', 'native' or 'auto' (unpin) */
Datum
pg_pilot_guard_pin(PG_FUNCTION_ARGS)
{
	int64		query_id;
	const char *arm;
	uint32		code;

	pilot_require_preloaded();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pg_pilot: the query id and the arm must not be NULL")));
	query_id = PG_GETARG_INT64(0);
	arm = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (query_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: query id 0 is not a query template"),
				 errhint("Query ids are in pg_pilot.query_stats and pg_stat_statements.")));
	if (strcmp(arm, "pilot") == 0)
		code = ARM_PILOT;
	else if (strcmp(arm, "native") == 0)
		code = ARM_NATIVE;
	else if (strcmp(arm, "auto") == 0)
		code = ARM_UNKNOWN;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: unknown guard arm \"%s\"", arm),
				 errhint("Use 'pilot' (pg_pilot's estimates), 'native' (PostgreSQL's) or 'auto' "
						 "(the guard decides).")));
	pilotd_pin_template((uint64) query_id, code);
	PG_RETURN_VOID();
}

/* guard_reset(): every unpinned template of this database explores again */
Datum
pg_pilot_guard_reset(PG_FUNCTION_ARGS)
{
	pilot_require_preloaded();
	pilotd_reset_guard();
	PG_RETURN_VOID();
}

/* The guard table's rows (every database: like pg_stat_statements, query ids
 * and times are not secret): dboid, query_id, decision, pinned, pilot_runs,
 * native_runs, pilot_median_ms, native_median_ms, decided_at. */
Datum
pg_pilot_guard_templates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[9];
	bool		nulls[9];

	pilot_require_preloaded();
	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != 9)
		elog(ERROR, "pg_pilot.guard_templates: expected 9 columns, got %d", rsinfo->setDesc->natts);
	for (uint32 i = 0; i < kGuardEntries; i++)
	{
		GuardEntry	e;

		if (!pilotd_guard_row(i, &e))
			continue;
		memset(nulls, 0, sizeof nulls);
		values[0] = ObjectIdGetDatum((Oid) e.dboid);
		values[1] = Int64GetDatum((int64) e.query_id);
		values[2] = CStringGetTextDatum(guard_decision_name(e.decision));
		values[3] = CStringGetTextDatum(guard_arm_name(e.pinned));
		values[4] = Int32GetDatum((int32) Min(e.pilot_runs, (uint32) PG_INT32_MAX));
		values[5] = Int32GetDatum((int32) Min(e.native_runs, (uint32) PG_INT32_MAX));
		values[6] = Float8GetDatum(e.pilot_median_ms);
		nulls[6] = !(e.pilot_median_ms >= 0);
		values[7] = Float8GetDatum(e.native_median_ms);
		nulls[7] = !(e.native_median_ms >= 0);
		values[8] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) e.decided_unix));
		nulls[8] = e.decided_unix == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
