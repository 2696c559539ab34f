/*
 * planner_hooks.cpp — where pilotd's estimates enter PostgreSQL's planner.
 *
 * planner_hook        starts a per-planning state: a memory context, a cache of
 *                     estimates per PlannerInfo and relid set, and one time
 *                     budget (pg_pilot.timeout_ms): the total time the planning
 *                     may spend waiting on pilotd, over all its round trips.
 * set_rel_pathlist    at the first base relation of a query level, asks for all
 *                     its base relations in ONE round trip and sets their rows
 *                     before their paths are built; at each relation's own hook
 *                     it also sets the rows of its unparameterized and partial
 *                     paths (partial: divided like costsize.c does).
 * set_join_pathlist   at the first split of a join relation, asks for its rows
 *                     (once per relid set, cached, so GEQO asks once too); if
 *                     they differ, sets joinrel->rows, drops the paths built so
 *                     far and re-runs add_paths_to_joinrel under a re-entrancy
 *                     guard, so no path keeps the old row count.  Later splits
 *                     cost with the new rows.
 *
 * Parameterized paths keep their ppi_rows; dummy relations, child relations,
 * and relation sets we cannot key keep PostgreSQL's estimate.  Every previous
 * hook is called (pg_hint_plan, hypopg, pg_stat_statements ... keep working).
 *
 * Never an ERROR of pg_pilot's making: the one step that reads catalogs and runs
 * type output functions (building a query level's catalog) runs in an internal
 * subtransaction and falls back to native planning when it fails (counted as
 * PF_ERROR); everything else only computes on memory it already has, and
 * talking to pilotd cannot raise an error at all.
 *
 * This file holds the hooks, the per-planning state (budget, estimates cache,
 * guarded catalog) and the capture mode (pilot_plan_query_in_mode); what the
 * hooks ask pilotd for is in relset_estimates.cpp (keys, the known-sets filter,
 * round trips, base relations) and join_prefetch.cpp (the join sets asked for
 * ahead); their shared functions are declared in planner_internal.h.
 */
extern "C" {
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planner.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/builtins.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"
#include "planner_internal.h"

static planner_hook_type prev_planner_hook = NULL;
static set_rel_pathlist_hook_type prev_set_rel_pathlist_hook = NULL;
static set_join_pathlist_hook_type prev_set_join_pathlist_hook = NULL;

PilotQueryState *pilot_query = NULL;
static bool join_rerun_guard = false;

/* pilot_plan_query_in_mode() hands its wishes to the next planner call */
static bool pending = false;
static PilotMode pending_mode = PM_PLAN;
static PilotRecording pending_record = PR_NONE;
static PilotQueryState *pending_result = NULL;

/* ---------------------------------------------------------------------
 * Per-planning state
 * --------------------------------------------------------------------- */

/*
 * pg_pilot's own work in a planning is timed: keys, PostgreSQL's sizes of the
 * prefetched joins, round trips.  pg_pilot.timeout_ms bounds the total, so a
 * large join problem (GEQO revisiting hundreds of sets) cannot make planning
 * grow without bound: once it is spent, the rest of the planning is native,
 * counted as fallback_timeout.
 */
static void
work_begin(PilotQueryState *qs)
{
	if (qs->work_depth++ == 0)
		qs->work_since_us = pilot::proto::monotonic_us();
}

static void
work_end(PilotQueryState *qs)
{
	if (qs->work_depth > 0 && --qs->work_depth == 0)
		qs->work_us += pilot::proto::monotonic_us() - qs->work_since_us;
}

uint64
work_spent(const PilotQueryState *qs)
{
	return qs->work_us + (qs->work_depth > 0 ? pilot::proto::monotonic_us() - qs->work_since_us : 0);
}

bool
budget_spent(const PilotQueryState *qs)
{
	return work_spent(qs) >= (uint64) pilot_timeout_ms * 1000;
}

static PilotRootState *
root_state(PilotQueryState *qs, PlannerInfo *root)
{
	PilotRootState *rs;
	HASHCTL		ctl;

	for (rs = qs->roots; rs != NULL; rs = rs->next)
		if (rs->root == root)
			return rs;
	rs = (PilotRootState *) palloc0(sizeof(PilotRootState));
	rs->root = root;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Relids);
	ctl.entrysize = sizeof(PilotEstimate);
	ctl.hash = bitmap_hash;
	ctl.match = bitmap_match;
	ctl.hcxt = qs->cxt;
	rs->estimates = hash_create("pg_pilot estimates", 64, &ctl,
								HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	rs->next = qs->roots;
	qs->roots = rs;
	return rs;
}

PilotEstimate *
estimate_entry(PilotRootState *rs, Relids relids, double native_rows)
{
	bool		found;
	PilotEstimate *e = (PilotEstimate *) hash_search(rs->estimates, &relids, HASH_ENTER, &found);

	if (!found)
	{
		/* the key pointer may live in a GEQO scratch context: keep our copy */
		e->relids = bms_copy(relids);
		e->resolved = false;
		e->finished = false;
		e->answered = false;
		e->reason = PF_UNKNOWN;
		e->source = 0;
		e->rows = 0;
		e->keep_native_within = 0;
		e->native_rows = native_rows;
		/* a join's own PostgreSQL estimate comes from size_prefetched_joins() */
		e->pg_rows = bms_membership(relids) == BMS_SINGLETON ? native_rows : -1;
		e->key = 0;
		e->template_key = 0;
		e->table_set = 0;
		e->not_asked = false;
		e->key_text = NULL;
		e->recorded = false;
	}
	return e;
}

/*
 * Runs work(arg) in an internal subtransaction: if it fails (a cache lookup, an
 * output function, ...), the subtransaction is rolled back — releasing locks,
 * buffer pins and other resources as for any error — the failure is logged and
 * counted, pg_pilot stops asking for this planning, and false is returned.  A
 * cancel is re-thrown.  Not in parallel mode (no subtransactions there).
 */
bool
run_guarded(PilotQueryState *qs, void (*work) (void *arg), void *arg, const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = false;

	if (IsInParallelMode())
		return false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		work(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		ereport(LOG,
				(errmsg("pg_pilot: %s, planning it natively: %s", what, edata->message),
				 errhidestmt(true)));
		FreeErrorData(edata);
		pilot_stats_count_fallback(PF_ERROR, 1);
		qs->disabled = true;
	}
	PG_END_TRY();
	return ok;
}

typedef struct CatalogWork
{
	PlannerInfo *root;
	struct RelsetCatalog *cat;
} CatalogWork;

static void
build_catalog(void *arg)
{
	CatalogWork *w = (CatalogWork *) arg;
	bool		saved_quote_all = quote_all_identifiers;
	const char *problem = NULL;

	/* names must not depend on this session's settings */
	quote_all_identifiers = false;
	PG_TRY();
	{
		w->cat = relset_catalog_build(w->root, &problem);
	}
	PG_FINALLY();
	{
		quote_all_identifiers = saved_quote_all;
	}
	PG_END_TRY();
}

/*
 * The catalog of this query level (relset_key.cpp), built once.  Building it
 * is the only part of pg_pilot's planning work that reads system catalogs and
 * runs type output functions, so it runs guarded: if it fails, this query
 * level is planned natively.
 */
struct RelsetCatalog *
root_catalog(PilotQueryState *qs, PilotRootState *rs)
{
	CatalogWork w = {rs->root, NULL};

	if (rs->catalog != NULL || rs->catalog_failed)
		return rs->catalog;
	rs->catalog_failed = true;	/* until proven otherwise */
	if (!run_guarded(qs, build_catalog, &w, "cannot describe this query's relations"))
		return NULL;
	rs->catalog = w.cat;
	rs->catalog_failed = (w.cat == NULL);
	return rs->catalog;
}

/*
 * The entry of a join set of a level where pilotd may answer none
 * (joins_unknown): made for the chosen plan's sets only, when feedback
 * remembers them, with the planner's own estimate.  Counted already.
 */
PilotEstimate *
pilot_unasked_join_entry(PilotQueryState *qs, PilotRootState *rs, Relids relids, double native_rows)
{
	MemoryContext old = MemoryContextSwitchTo(qs->cxt);
	PilotEstimate *e = estimate_entry(rs, relids, native_rows);

	MemoryContextSwitchTo(old);
	if (!e->finished)
	{
		e->not_asked = true;
		e->resolved = true;
		e->finished = true;
		e->reason = PF_UNKNOWN;
	}
	return e;
}

void
pilot_work_begin(PilotQueryState *qs)
{
	work_begin(qs);
}

void
pilot_work_end(PilotQueryState *qs)
{
	work_end(qs);
}

bool
pilot_budget_spent(const PilotQueryState *qs)
{
	return budget_spent(qs);
}

void
pilot_send_key_texts(PilotQueryState *qs, PilotEstimate **entries, int n)
{
	work_begin(qs);
	ask_pilotd(qs, entries, n);
	work_end(qs);
}

static void
capture(PilotQueryState *qs, PilotRootState *rs, Relids relids)
{
	PilotEstimate *e;
	RelsetKey	k;

	/* GEQO builds the final relation once per tour: one key is enough */
	if (qs->captured || qs->capture_problem != NULL)
		return;
	e = estimate_entry(rs, relids, 0);

	if (key_entry(qs, rs, e, true, true, &k))
	{
		qs->captured = true;
		qs->captured_key = k.key;
		qs->captured_template = k.template_key;
		qs->captured_table_set = relset_table_set(rs->catalog, relids);
		qs->captured_text = k.text;
		qs->captured_template_text = k.template_text;
	}
	else
		qs->capture_problem = pstrdup(k.problem ? k.problem : "cannot describe the relation set");
}

static bool
is_whole_query(PlannerInfo *root, Relids relids)
{
	return root->parent_root == NULL && bms_equal(relids, root->all_baserels);
}

/* ---------------------------------------------------------------------
 * Base relations
 * --------------------------------------------------------------------- */

static void
base_rel_work(PilotQueryState *qs, PlannerInfo *root, RelOptInfo *rel)
{
	PilotRootState *rs = root_state(qs, root);
	PilotEstimate *e;

	if (qs->mode == PM_CAPTURE)
	{
		if (is_whole_query(root, rel->relids) && !IS_DUMMY_REL(rel))
			capture(qs, rs, rel->relids);
		return;
	}
	if (!rs->base_fetched)
	{
		rs->base_fetched = true;
		work_begin(qs);
		fetch_base_estimates(qs, rs);
		work_end(qs);
	}
	if (IS_DUMMY_REL(rel))
		return;
	e = estimate_entry(rs, rel->relids, rel->rows);
	if (e->answered)
		apply_base_rows(rel, e->rows);
}

/* ---------------------------------------------------------------------
 * Join relations
 * --------------------------------------------------------------------- */

/* Returns true and the rows to use when joinrel must be re-costed. */
static bool
join_rel_work(PilotQueryState *qs, PlannerInfo *root, RelOptInfo *joinrel, double *rows)
{
	PilotRootState *rs = root_state(qs, root);
	PilotEstimate *e;

	if (qs->mode == PM_CAPTURE)
	{
		if (is_whole_query(root, joinrel->relids))
			capture(qs, rs, joinrel->relids);
		return false;
	}
	if (!rs->joins_prefetched)
	{
		rs->joins_prefetched = true;
		work_begin(qs);
		prefetch_join_estimates(qs, rs);
		work_end(qs);
	}
	if (rs->joins_unknown && enumerated_set(rs, joinrel->relids))
		return false;			/* counted by the prefetch */
	e = estimate_entry(rs, joinrel->relids, joinrel->rows);
	if (!e->finished)
	{
		e->native_rows = joinrel->rows;	/* first sight: PostgreSQL's own estimate */
		if (!e->resolved)
		{
			PilotFallback reason;

			/* no key computed for an answer that cannot be asked for */
			if (!pilotd_usable(qs, &reason))
				e->reason = reason;
			else
			{
				work_begin(qs);
				if (filter_known(qs, rs, &e, 1) == 1 &&
					key_for_ask(qs, rs, e, pilotd_wants_text()))
					ask_pilotd(qs, &e, 1);
				work_end(qs);
			}
		}
		apply_model_band(e);
		finish_entry(qs, rs, e);
	}
	if (!e->answered)
		return false;
	*rows = clamp_row_est(e->rows);
	return joinrel->rows != *rows;
}

/* ---------------------------------------------------------------------
 * Hooks
 * --------------------------------------------------------------------- */

/*
 * The state of this planning, if pg_pilot takes part in it.  pg_pilot.enabled
 * is checked again here, not only when planning starts: a planner hook that
 * runs inside ours may change it for one query (pg_hint_plan's
 * "Set(pg_pilot.enabled off)").
 */
static PilotQueryState *
active_query(void)
{
	PilotQueryState *qs = pilot_query;

	if (qs == NULL || qs->disabled)
		return NULL;
	if (qs->mode == PM_PLAN && (!pilot_enabled || pilot_timeout_ms <= 0))
		return NULL;
	return qs;
}

static void
pilot_set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	PilotQueryState *qs;

	if (prev_set_rel_pathlist_hook)
		prev_set_rel_pathlist_hook(root, rel, rti, rte);

	qs = active_query();
	if (qs == NULL || rel->reloptkind != RELOPT_BASEREL)
		return;
	{
		MemoryContext old = MemoryContextSwitchTo(qs->cxt);

		base_rel_work(qs, root, rel);
		MemoryContextSwitchTo(old);
	}
}

/* The foreign/custom paths of a path list, unparameterized ones set to rows
 * (divided for partial paths: divisor 0 means "use the path's own"). */
static List *
keep_provider_paths(List *paths, double rows, double divisor)
{
	List	   *kept = NIL;
	ListCell   *lc;

	foreach(lc, paths)
	{
		Path	   *p = (Path *) lfirst(lc);

		if (!IsA(p, ForeignPath) && !IsA(p, CustomPath))
			continue;
		if (p->param_info == NULL)
			p->rows = clamp_row_est(rows / (divisor > 0 ? divisor : parallel_divisor(p)));
		kept = lappend(kept, p);
	}
	return kept;
}

static void
pilot_set_join_pathlist(PlannerInfo *root, RelOptInfo *joinrel, RelOptInfo *outerrel,
						RelOptInfo *innerrel, JoinType jointype, JoinPathExtraData *extra)
{
	PilotQueryState *qs = join_rerun_guard ? NULL : active_query();
	bool		rerun = false;
	double		rows = 0;
	List	   *foreign;
	List	   *partial_foreign;
	ListCell   *lc;

	if (qs != NULL &&
		joinrel->reloptkind == RELOPT_JOINREL && !IS_DUMMY_REL(joinrel))
	{
		MemoryContext old = MemoryContextSwitchTo(qs->cxt);

		rerun = join_rel_work(qs, root, joinrel, &rows);
		MemoryContextSwitchTo(old);
	}

	if (!rerun)
	{
		if (prev_set_join_pathlist_hook)
			prev_set_join_pathlist_hook(root, joinrel, outerrel, innerrel, jointype, extra);
		return;
	}

	/*
	 * First split of this join relation and pilotd's rows differ: throw away
	 * the paths costed with the old rows and build them again.  The re-run calls
	 * this hook again; the guard makes that call pass straight to the previous
	 * hook, which therefore runs exactly once for the paths that stay.
	 */
	/*
	 * Foreign and custom join paths (postgres_fdw's join pushdown, ...) are
	 * added once per join relation by their provider, which would skip itself
	 * in the re-run: keep them, with the new rows, and add them back after.
	 */
	foreign = keep_provider_paths(joinrel->pathlist, rows, 1.0);
	partial_foreign = keep_provider_paths(joinrel->partial_pathlist, rows, 0);
	joinrel->rows = rows;
	joinrel->pathlist = NIL;
	joinrel->partial_pathlist = NIL;
	joinrel->cheapest_startup_path = NULL;
	joinrel->cheapest_total_path = NULL;
	joinrel->cheapest_unique_path = NULL;
	joinrel->cheapest_parameterized_paths = NIL;
	join_rerun_guard = true;
	PG_TRY();
	{
		add_paths_to_joinrel(root, joinrel, outerrel, innerrel, jointype,
							 extra->sjinfo, extra->restrictlist);
	}
	PG_FINALLY();
	{
		join_rerun_guard = false;
	}
	PG_END_TRY();
	foreach(lc, foreign)
		add_path(joinrel, (Path *) lfirst(lc));
	foreach(lc, partial_foreign)
		add_partial_path(joinrel, (Path *) lfirst(lc));
}

static PlannedStmt *
pilot_planner(Query *parse, const char *query_string, int cursorOptions,
			  ParamListInfo boundParams)
{
	PilotQueryState *outer = pilot_query;
	bool		outer_guard = join_rerun_guard;
	PilotQueryState *qs = NULL;
	PlannedStmt *result;
	bool		own_context = false;
	MemoryContext caller_cxt = CurrentMemoryContext;
	const uint64 planning_start_us = pilot::proto::monotonic_us();
	uint32		guard_arm = pilot::proto::ARM_UNKNOWN;
	bool		guard_must_report = false;

	if (pending)
	{
		/* pilot_plan_query_in_mode(): state lives in the caller's context */
		pending = false;
		qs = (PilotQueryState *) palloc0(sizeof(PilotQueryState));
		qs->cxt = CurrentMemoryContext;
		qs->mode = pending_mode;
		qs->record = pending_record != PR_NONE;
		qs->record_texts = pending_record == PR_KEY_TEXTS;
		pending_result = qs;
		if (qs->mode == PM_PLAN && (!pilot_enabled || pilot_timeout_ms <= 0))
			qs = NULL;
	}
	else if (pilot_enabled && pilot_timeout_ms > 0 &&
			 (guard_arm = pilot_guard_arm(parse->queryId, &guard_must_report)) != pilot::proto::ARM_NATIVE)
	{
		MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_pilot planning",
												  ALLOCSET_DEFAULT_SIZES);

		qs = (PilotQueryState *) MemoryContextAllocZero(cxt, sizeof(PilotQueryState));
		qs->cxt = cxt;
		qs->mode = PM_PLAN;
		own_context = true;
	}
	if (qs != NULL)
	{
		qs->disabled_reason = PF_NONE;
		qs->outer = outer;
	}

	pilot_query = qs;
	join_rerun_guard = false;
	PG_TRY();
	{
		if (prev_planner_hook)
			result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions, boundParams);
		if ((qs != NULL && qs->mode == PM_PLAN && !qs->disabled) || guard_arm == pilot::proto::ARM_NATIVE)
			pilot_feedback_remember(qs, result,
									(double) (pilot::proto::monotonic_us() - planning_start_us) / 1000.0,
									guard_arm, guard_must_report);
	}
	PG_FINALLY();
	{
		pilot_query = outer;
		join_rerun_guard = outer_guard;
		/* this planning's work (a planning nested in it took its own share) */
		pilot_stats_count_planning_work(qs != NULL ? qs->not_asked : 0, (int) relset_keys_take());
		if (own_context)
		{
			/* an error may have left us inside our context: leave it first */
			MemoryContextSwitchTo(caller_cxt);
			MemoryContextDelete(qs->cxt);
		}
	}
	PG_END_TRY();
	return result;
}

PilotQueryState *
pilot_plan_query_in_mode(const char *query, PilotMode mode, PilotRecording record)
{
	List	   *raw;
	List	   *trees;
	Query	   *q;
	PilotQueryState *result;

	raw = pg_parse_query(query);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: exactly one SQL statement expected, got %d",
						list_length(raw))));
	trees = pg_analyze_and_rewrite_fixedparams(linitial_node(RawStmt, raw), query, NULL, 0, NULL);
	if (list_length(trees) != 1 || linitial_node(Query, trees)->commandType == CMD_UTILITY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: the statement must be a SELECT, INSERT, UPDATE or DELETE")));
	q = linitial_node(Query, trees);
	/* planning checks no privileges: these functions reveal estimates (and the
	 * oracle's counts) only for what the caller may read, like EXPLAIN */
	(void) ExecCheckRTPerms(q->rtable, true);

	pending = true;
	pending_mode = mode;
	pending_record = record;
	pending_result = NULL;
	PG_TRY();
	{
		(void) pg_plan_query(q, query, CURSOR_OPT_PARALLEL_OK, NULL);
	}
	PG_FINALLY();
	{
		pending = false;
	}
	PG_END_TRY();
	result = pending_result;
	pending_result = NULL;
	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pilot: planner hook not reached"),
				 errhint("Is pg_pilot in shared_preload_libraries?")));
	return result;
}

void
pilot_install_planner_hooks(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = pilot_planner;
	prev_set_rel_pathlist_hook = set_rel_pathlist_hook;
	set_rel_pathlist_hook = pilot_set_rel_pathlist;
	prev_set_join_pathlist_hook = set_join_pathlist_hook;
	set_join_pathlist_hook = pilot_set_join_pathlist;
}
