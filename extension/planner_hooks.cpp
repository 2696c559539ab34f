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

#include <cmath>

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

static bool sidecar_usable(PilotQueryState *qs, PilotFallback *reason);

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

static uint64
work_spent(const PilotQueryState *qs)
{
	return qs->work_us + (qs->work_depth > 0 ? pilot::proto::monotonic_us() - qs->work_since_us : 0);
}

static bool
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

static PilotEstimate *
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
		e->learned = false;
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
static bool
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
static struct RelsetCatalog *
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

/* Computes the key of e (and its template key with want_template); false
 * (reason set) when the set cannot be keyed. */
static bool
key_entry(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e, bool want_text, bool want_template,
		  RelsetKey *k)
{
	struct RelsetCatalog *cat = root_catalog(qs, rs);

	if (cat == NULL || !relset_key_for(cat, e->relids, want_text,
										   want_template ? RELSET_KEY | RELSET_TEMPLATE : RELSET_KEY, k))
	{
		e->reason = PF_UNKEYABLE;
		return false;
	}
	e->key = k->key;
	if (want_template)
		e->template_key = k->template_key;
	return true;
}

/*
 * Keys e for an ask.  With want_text (pilot_sidecar_wants_text()), e also
 * keeps its canonical key text (in qs->cxt) until ask_sidecar() sent it.
 */
static bool
key_for_ask(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e, bool want_text)
{
	RelsetKey	k;

	/* the text for the model (with every ask) or for pilotd's catalog (once
	 * per backend); without it a repeated statement's key comes from the
	 * backend's memo (relset_key.cpp) */
	if (want_text && qs->model_text == 0)
		qs->model_text = pilot_sidecar_model_needs_text() ? 2 : 1;
	if (want_text && qs->model_text == 1)
	{
		struct RelsetCatalog *cat = root_catalog(qs, rs);

		if (cat == NULL || !relset_key_text_once(cat, e->relids, RELSET_KEY, &k))
		{
			e->reason = PF_UNKEYABLE;
			return false;
		}
		e->key = k.key;
	}
	else if (!key_entry(qs, rs, e, want_text, false, &k))
		return false;
	if (k.template_text != NULL)
		pfree(k.template_text);
	if (k.text != NULL)
	{
		if (e->key_text != NULL)
			pfree(e->key_text);
		e->key_text = k.text;
	}
	return true;
}

/* Key texts are computed only when they will be sent. */
static bool
want_key_text(PilotQueryState *qs)
{
	PilotFallback reason;

	return sidecar_usable(qs, &reason) && pilot_sidecar_wants_text();
}

/*
 * The learned model answers with a band around PostgreSQL's estimate where it
 * is unsure: inside it, PostgreSQL's estimate stands (counted as unknown).
 * For joins this can only be decided once the planner has sized the join.
 */
static void
apply_model_band(PilotEstimate *e)
{
	if (!e->learned || e->keep_native_within <= 0 || !(e->native_rows > 0))
		return;
	if (fabs(log(clamp_row_est(e->rows) / e->native_rows)) < e->keep_native_within)
	{
		e->learned = false;
		e->reason = PF_UNKNOWN;
	}
}

static double
used_rows(const PilotEstimate *e)
{
	return e->learned ? clamp_row_est(e->rows) : e->native_rows;
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

/* Bookkeeping once per relation set, when the planner first sizes it:
 * counters, log line, explain record. */
static void
finish_entry(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e)
{
	e->resolved = true;
	e->finished = true;
	if (e->learned)
		rs->any_learned = true;
	else
		pilot_stats_count_fallback(e->reason, 1);
	if (pilot_log_estimates || qs->record)
	{
		char	   *label = relset_label(rs->root, e->relids);
		const char *source = e->learned ? pilot::proto::source_name(e->source)
			: psprintf("native (%s)", pilot_fallback_name(e->reason));

		if (pilot_log_estimates)
			ereport(LOG,
					(errmsg("pg_pilot: {%s} native=%.0f pilot=%s used=%.0f source=%s key=%016llx",
							label, e->native_rows,
							e->learned ? psprintf("%.0f", e->rows) : "-",
							used_rows(e), source, (unsigned long long) e->key),
					 errhidestmt(true)));
		if (qs->record && !e->recorded)
		{
			PilotRecord *r = (PilotRecord *) palloc0(sizeof(PilotRecord));

			r->relations = label;
			r->nrels = bms_num_members(e->relids);
			r->native_rows = e->native_rows;
			r->pilot_rows = e->learned ? e->rows : -1;
			r->used_rows = used_rows(e);
			r->source = pstrdup(source);
			r->key = e->key;
			if (qs->record_texts && e->key != 0)
			{
				RelsetKey	k;

				if (key_entry(qs, rs, e, true, false, &k))
				{
					r->key_text = k.text;
					if (k.template_text != NULL)
						pfree(k.template_text);
				}
			}
			qs->records = lappend(qs->records, r);
			e->recorded = true;
		}
	}
}

/* Can this planning still ask pilotd?  If not, *reason says why. */
static bool
sidecar_usable(PilotQueryState *qs, PilotFallback *reason)
{
	if (qs->disabled_reason != PF_NONE)
	{
		*reason = qs->disabled_reason;
		return false;
	}
	if (qs->waited_us >= (uint64) pilot_timeout_ms * 1000 || budget_spent(qs))
	{
		*reason = PF_TIMEOUT;
		return false;
	}
	return true;
}

/*
 * Sends asks for entries (all keyed) in one round trip.  The budget
 * (pg_pilot.timeout_ms) is the total time one planning may spend in pg_pilot:
 * its own work (keys, join sizes) and waiting on pilotd, summed over its round
 * trips; PostgreSQL's own planning work between them does not count.
 */
static void
ask_sidecar(PilotQueryState *qs, PilotEstimate **entries, int n)
{
	PilotAsk   *asks;
	uint64		budget = (uint64) pilot_timeout_ms * 1000;
	uint64		start;

	PilotFallback reason;

	if (n == 0)
		return;
	if (!sidecar_usable(qs, &reason))
	{
		for (int i = 0; i < n; i++)
		{
			entries[i]->reason = reason;
			if (entries[i]->key_text != NULL)
			{
				pfree(entries[i]->key_text);
				entries[i]->key_text = NULL;
			}
		}
		return;
	}
	asks = (PilotAsk *) palloc0(sizeof(PilotAsk) * n);
	for (int i = 0; i < n; i++)
	{
		asks[i].key = entries[i]->key;
		asks[i].template_key = entries[i]->template_key;
		asks[i].native_rows = entries[i]->pg_rows;
		asks[i].nrels = (uint32) bms_num_members(entries[i]->relids);
		if (entries[i]->key_text != NULL)
		{
			size_t		len = strlen(entries[i]->key_text);

			/* longer than a request's whole text area: asked by key only */
			if (len <= pilot::proto::kMaxText)
			{
				asks[i].text = entries[i]->key_text;
				asks[i].text_len = (uint32) len;
			}
		}
	}
	start = pilot::proto::monotonic_us();
	{
		uint64		spent = Max(work_spent(qs), qs->waited_us);

		/* what is left of the budget (nothing left: every ask times out) */
		pilot_sidecar_estimate(asks, n, spent < budget ? (int64) (budget - spent) : 0);
	}
	qs->waited_us += pilot::proto::monotonic_us() - start;
	for (int i = 0; i < n; i++)
	{
		entries[i]->learned = asks[i].learned;
		entries[i]->rows = asks[i].rows;
		entries[i]->source = asks[i].source;
		entries[i]->keep_native_within = asks[i].keep_native_within;
		entries[i]->reason = asks[i].learned ? PF_NONE : asks[i].reason;
		if (entries[i]->key_text != NULL)
		{
			pfree(entries[i]->key_text);	/* sent: no longer needed */
			entries[i]->key_text = NULL;
		}
		/* the sidecar is unusable for the rest of this planning: stop asking */
		if (asks[i].reason == PF_DAEMON_DOWN || asks[i].reason == PF_VERSION_MISMATCH ||
			asks[i].reason == PF_NO_SLOT)
			qs->disabled_reason = asks[i].reason;
	}
	pfree(asks);
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
	ask_sidecar(qs, entries, n);
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

static double
parallel_divisor(Path *path)
{
	/* same as the static get_parallel_divisor() in costsize.c */
	double		divisor = path->parallel_workers;

	if (parallel_leader_participation)
	{
		double		leader = 1.0 - (0.3 * path->parallel_workers);

		if (leader > 0)
			divisor += leader;
	}
	return divisor > 0 ? divisor : 1.0;
}

static void
apply_base_rows(RelOptInfo *rel, double rows)
{
	ListCell   *lc;

	rel->rows = clamp_row_est(rows);
	foreach(lc, rel->pathlist)
	{
		Path	   *p = (Path *) lfirst(lc);

		if (p->param_info == NULL)
			p->rows = rel->rows;
	}
	foreach(lc, rel->partial_pathlist)
	{
		Path	   *p = (Path *) lfirst(lc);

		if (p->param_info == NULL)
			p->rows = clamp_row_est(rel->rows / parallel_divisor(p));
	}
}

/*
 * Which of n entries pilotd may answer (its known-sets filter, asked by the
 * entries' tables: no key needed).  The others are marked not asked: no key,
 * no round trip, PostgreSQL's estimate (counted as unknown, which is what
 * pilotd would have said).  Planning for explain_estimates() and subplans()
 * describes every set: nothing is filtered there.  Returns how many pass,
 * compacted to the front of entries.
 */
static int
filter_known(PilotQueryState *qs, PilotRootState *rs, PilotEstimate **entries, int n)
{
	uint64	   *sets;
	bool	   *may;
	int			kept = 0;

	if (n == 0 || qs->record)
		return n;
	sets = (uint64 *) palloc(sizeof(uint64) * n);
	may = (bool *) palloc(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		if (entries[i]->table_set == 0)
			entries[i]->table_set = relset_table_set(root_catalog(qs, rs), entries[i]->relids);
		sets[i] = entries[i]->table_set;
	}
	pilot_sidecar_may_answer(sets, may, n);
	for (int i = 0; i < n; i++)
	{
		if (may[i])
			entries[kept++] = entries[i];
		else
		{
			entries[i]->not_asked = true;
			entries[i]->resolved = true;
			entries[i]->reason = PF_UNKNOWN;
			qs->not_asked++;
		}
	}
	pfree(sets);
	pfree(may);
	return kept;
}

/* All base relations of this query level, one round trip. */
static void
fetch_base_estimates(PilotQueryState *qs, PilotRootState *rs)
{
	PlannerInfo *root = rs->root;
	PilotEstimate **keyed = (PilotEstimate **) palloc(sizeof(PilotEstimate *) *
													  root->simple_rel_array_size);
	PilotEstimate **all = (PilotEstimate **) palloc(sizeof(PilotEstimate *) *
													root->simple_rel_array_size);
	PilotEstimate **asked = (PilotEstimate **) palloc(sizeof(PilotEstimate *) *
													  root->simple_rel_array_size);
	int			nkeyed = 0;
	int			nall = 0;
	int			nasked;
	bool		want_text = want_key_text(qs);

	for (int i = 1; i < root->simple_rel_array_size; i++)
	{
		RelOptInfo *rel = root->simple_rel_array[i];
		PilotEstimate *e;

		if (rel == NULL || rel->reloptkind != RELOPT_BASEREL || IS_DUMMY_REL(rel))
			continue;
		e = estimate_entry(rs, rel->relids, rel->rows);
		if (e->resolved)
			continue;
		all[nall] = e;
		asked[nall] = e;
		nall++;
	}
	nasked = filter_known(qs, rs, asked, nall);
	for (int i = 0; i < nasked; i++)
		if (key_for_ask(qs, rs, asked[i], want_text))
			keyed[nkeyed++] = asked[i];
	ask_sidecar(qs, keyed, nkeyed);
	for (int i = 0; i < nall; i++)
	{
		PilotEstimate *e = all[i];
		int			relid = bms_singleton_member(e->relids);

		apply_model_band(e);
		finish_entry(qs, rs, e);
		/* paths of later relations are built with these rows */
		if (e->learned)
			root->simple_rel_array[relid]->rows = clamp_row_est(e->rows);
	}
}

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
	if (e->learned)
		apply_base_rows(rel, e->rows);
}

/* ---------------------------------------------------------------------
 * Join relations
 * --------------------------------------------------------------------- */

/*
 * Join relations are asked for in bulk: at the first join of a query level,
 * every connected set of its (keyable) base relations, enumerated like DPccp
 * does, up to PREFETCH_MAX sets, goes to pilotd in as few round trips as
 * possible.  Dynamic programming builds these sets anyway; sets beyond the cap
 * (large GEQO problems) are asked for when the planner builds them.
 */
#define PREFETCH_MAX 1024

typedef struct CsgEnum
{
	const uint64 *adjacency;
	uint64		present;
	int			count;
	bool		overflow;
	uint64	   *sets;
} CsgEnum;

static uint64
neighbours(const CsgEnum *en, uint64 set)
{
	uint64		n = 0;

	for (int x = 0; x < 64; x++)
		if (set & (UINT64CONST(1) << x))
			n |= en->adjacency[x];
	return n & en->present;
}

static void
emit_set(CsgEnum *en, uint64 set)
{
	if (__builtin_popcountll(set) < 2)
		return;
	if (en->count >= PREFETCH_MAX)
	{
		en->overflow = true;
		return;
	}
	en->sets[en->count++] = set;
}

static void
enumerate_csg_rec(CsgEnum *en, uint64 set, uint64 excluded)
{
	uint64		n = neighbours(en, set) & ~excluded;

	if (n == 0 || en->overflow)
		return;
	for (uint64 sub = n; sub != 0 && !en->overflow; sub = (sub - 1) & n)
		emit_set(en, set | sub);
	for (uint64 sub = n; sub != 0 && !en->overflow; sub = (sub - 1) & n)
		enumerate_csg_rec(en, set | sub, excluded | n);
}

typedef struct SizingWork
{
	PilotQueryState *qs;
	PilotRootState *rs;
	const uint64 *sets;
	int			count;
} SizingWork;

static int
popcount64(uint64 x)
{
	return __builtin_popcountll(x);
}

static Relids
relids_of_bits(uint64 bits)
{
	Relids		relids = NULL;

	for (int x = 0; x < 64; x++)
		if (bits & (UINT64CONST(1) << x))
			relids = bms_add_member(relids, x);
	return relids;
}

/*
 * PostgreSQL's own estimate (pg_rows) of each prefetched join set, smaller
 * sets first: S from S minus one base relation whose removal leaves a
 * connected set (sized already), as the planner would size it.
 */
static void
size_joins(void *arg)
{
	SizingWork *w = (SizingWork *) arg;
	PlannerInfo *root = w->rs->root;
	int		   *order = (int *) palloc(sizeof(int) * (w->count > 0 ? w->count : 1));
	int			n = 0;

	for (int size = 2; size <= 64; size++)
	{
		int			before = n;

		for (int i = 0; i < w->count; i++)
			if (popcount64(w->sets[i]) == size)
				order[n++] = i;
		if (n == before && n == w->count)
			break;
	}
	for (int k = 0; k < n; k++)
	{
		uint64		set = w->sets[order[k]];

		if ((k & 15) == 15 && budget_spent(w->qs))
			break;				/* the rest is not asked for: native */
		Relids		relids = relids_of_bits(set);
		PilotEstimate *e = (PilotEstimate *) hash_search(w->rs->estimates, &relids, HASH_FIND, NULL);

		if (e == NULL || e->pg_rows >= 0)
			continue;
		for (int r = 63; r >= 0; r--)
		{
			uint64		bit = UINT64CONST(1) << r;
			Relids		rest_relids,
						single;
			PilotEstimate *rest,
					   *base;

			if (!(set & bit))
				continue;
			rest_relids = relids_of_bits(set & ~bit);
			single = bms_make_singleton(r);
			rest = (PilotEstimate *) hash_search(w->rs->estimates, &rest_relids, HASH_FIND, NULL);
			base = (PilotEstimate *) hash_search(w->rs->estimates, &single, HASH_FIND, NULL);
			if (rest == NULL || base == NULL || !(rest->pg_rows > 0) || !(base->pg_rows > 0))
				continue;		/* not connected without r, or not sized */
			e->pg_rows = pilot_native_join_rows(root, rest_relids, rest->pg_rows, r, base->pg_rows);
			break;
		}
	}
}

static void
size_prefetched_joins(PilotQueryState *qs, PilotRootState *rs, const uint64 *sets, int count)
{
	SizingWork	w = {qs, rs, sets, count};

	if (count > 0 && pilot_native_join_sizable(rs->root))
		(void) run_guarded(qs, size_joins, &w, "cannot size this query's joins");
}

static void
prefetch_join_estimates(PilotQueryState *qs, PilotRootState *rs)
{
	struct RelsetCatalog *cat = root_catalog(qs, rs);
	uint64		adjacency[64];
	CsgEnum		en;
	PilotEstimate **keyed;
	PilotEstimate **entries;
	uint64	   *sets;
	int			nkeyed = 0;
	int			nknown;
	bool		want_text;

	PilotFallback reason;

	if (!sidecar_usable(qs, &reason) || cat == NULL ||
		!relset_join_graph(cat, adjacency, &en.present))
		return;
	want_text = want_key_text(qs);
	en.adjacency = adjacency;
	en.count = 0;
	en.overflow = false;
	en.sets = (uint64 *) palloc(sizeof(uint64) * PREFETCH_MAX);
	for (int v = 63; v >= 0 && !en.overflow; v--)
	{
		uint64		bit = UINT64CONST(1) << v;

		if (en.present & bit)
			enumerate_csg_rec(&en, bit, (bit << 1) - 1);
	}
	keyed = (PilotEstimate **) palloc(sizeof(PilotEstimate *) * (en.count > 0 ? en.count : 1));
	entries = (PilotEstimate **) palloc(sizeof(PilotEstimate *) * (en.count > 0 ? en.count : 1));
	sets = (uint64 *) palloc(sizeof(uint64) * (en.count > 0 ? en.count : 1));
	for (int i = 0; i < en.count; i++)
		sets[i] = relset_table_set_bits(cat, en.sets[i]);
	if (!qs->record && !rs->any_learned)
	{
		/*
		 * When pilotd may answer none of the sets (and nothing of this level
		 * was learned), no entry is made and nothing is sized: the planner
		 * looks each set up in the filter again, cheaply, when it builds it.
		 * A large join problem whose tables pilotd does not know costs an
		 * enumeration and a look per set, nothing more.
		 */
		bool	   *may = (bool *) palloc(sizeof(bool) * (en.count > 0 ? en.count : 1));
		bool		any = false;

		pilot_sidecar_may_answer(sets, may, en.count);
		for (int i = 0; i < en.count && !any; i++)
			any = may[i];
		if (!any && !en.overflow)
		{
			/*
			 * Every join set of the level was enumerated and none passes:
			 * the planner's visits to them (thousands in a large DP or
			 * GEQO search) skip pg_pilot altogether, counted here once per
			 * set; the chosen plan's sets get their entries for feedback.
			 */
			rs->joins_unknown = true;
			rs->join_present = en.present;
			rs->join_adjacency = (uint64 *) palloc(sizeof(adjacency));
			memcpy(rs->join_adjacency, adjacency, sizeof(adjacency));
			qs->not_asked += (uint64) en.count;
			pilot_stats_count_fallback(PF_UNKNOWN, en.count);
		}
		if (!any)
			en.count = 0;
		pfree(may);
	}
	for (int i = 0; i < en.count; i++)
	{
		entries[i] = estimate_entry(rs, relids_of_bits(en.sets[i]), -1);	/* not built yet */
		entries[i]->table_set = sets[i];
	}
	/* only the sets pilotd may answer are keyed and asked */
	nknown = filter_known(qs, rs, entries, en.count);

	/*
	 * PostgreSQL's own estimate of each set (the model's input and the
	 * feedback's native rows), sized from its parts: needed once some set is
	 * asked or some base relation got pilotd's rows.  Otherwise the planner's
	 * own estimates are PostgreSQL's alone, and the feedback takes them as
	 * they are (any_learned stays false).
	 */
	if (nknown > 0 || rs->any_learned)
		size_prefetched_joins(qs, rs, en.sets, en.count);
	if (qs->disabled)
		return;
	for (int i = 0; i < nknown; i++)
	{
		PilotEstimate *e = entries[i];

		if ((i & 15) == 15 && budget_spent(qs))
			break;				/* asked for what was keyed; the rest: native */
		if (e->resolved || e->finished)
			continue;
		if (key_for_ask(qs, rs, e, want_text))
			keyed[nkeyed++] = e;
		else
			e->resolved = true;	/* unkeyable: reason set, nothing to ask */
	}
	ask_sidecar(qs, keyed, nkeyed);
	for (int i = 0; i < nkeyed; i++)
		keyed[i]->resolved = true;
}

/*
 * With joins_unknown: is relids one of the sets the prefetch enumerated (and
 * the filter turned down), i.e. connected in the level's join graph?  Other
 * sets (a clauseless join, one formed through LATERAL) take the usual path.
 * A few bit operations: no memory beyond the graph.
 */
static bool
enumerated_set(const PilotRootState *rs, Relids relids)
{
	uint64		bits,
				reach,
				frontier;

	/* the members as one word (range-table indexes below 64), read directly:
	 * this runs for every split the planner tries */
	StaticAssertStmt(BITS_PER_BITMAPWORD == 64, "one bitmap word holds 64 relations");
	if (relids == NULL || relids->nwords < 1)
		return false;
	for (int w = 1; w < relids->nwords; w++)
		if (relids->words[w] != 0)
			return false;
	bits = (uint64) relids->words[0];
	if (bits == 0 || (bits & ~rs->join_present) != 0)
		return false;
	reach = frontier = bits & (~bits + 1);	/* the lowest member */
	while (frontier != 0)
	{
		uint64		next = 0;

		for (uint64 f = frontier; f != 0; f &= f - 1)
			next |= rs->join_adjacency[popcount64((f & (~f + 1)) - 1)];
		frontier = next & bits & ~reach;
		reach |= frontier;
	}
	return reach == bits;
}

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
			if (!sidecar_usable(qs, &reason))
				e->reason = reason;
			else
			{
				work_begin(qs);
				if (filter_known(qs, rs, &e, 1) == 1 &&
					key_for_ask(qs, rs, e, pilot_sidecar_wants_text()))
					ask_sidecar(qs, &e, 1);
				work_end(qs);
			}
		}
		apply_model_band(e);
		finish_entry(qs, rs, e);
	}
	if (!e->learned)
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
	 * First split of this join relation and the learned rows differ: throw away
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
