/*
 * relset_estimates.cpp — how a relation set's estimate is obtained from pilotd
 * for the planner hooks (planner_hooks.cpp): keyed, filtered, asked, then
 * counted, logged and recorded once.
 *
 * key_for_ask         keys a set for an ask, with its key text only when it
 *                     will be sent (want_key_text).
 * filter_known        pilotd's known-sets filter: a set of tables pilotd knows
 *                     nothing of is neither keyed nor asked.
 * ask_pilotd         one round trip for many sets, within what is left of the
 *                     planning's budget (pg_pilot.timeout_ms).
 * apply_model_band    the model's "unsure" band: PostgreSQL's estimate stands.
 * finish_entry        once per set: counters, log line, explain record.
 * fetch_base_estimates, apply_base_rows
 *                     all base relations of a query level in one round trip,
 *                     and their rows set into their unparameterized paths.
 *
 * Split from planner_hooks.cpp so that the hooks file holds the hooks and the
 * per-planning state, and this one the asking.  The same rule holds here: no
 * ERROR of pg_pilot's making.  Keys come from the query level's catalog, which
 * planner_hooks.cpp builds guarded (root_catalog); talking to pilotd cannot
 * raise an error at all.
 */
extern "C" {
#include "postgres.h"

#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "utils/memutils.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"
#include "planner_internal.h"

#include <cmath>

/* ---------------------------------------------------------------------
 * Keys, asks and bookkeeping
 * --------------------------------------------------------------------- */

/* Computes the key of e (and its template key with want_template); false
 * (reason set) when the set cannot be keyed. */
bool
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
 * Keys e for an ask.  With want_text (pilotd_wants_text()), e also
 * keeps its canonical key text (in qs->cxt) until ask_pilotd() sent it.
 */
bool
key_for_ask(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e, bool want_text)
{
	RelsetKey	k;

	/* the text for the model (with every ask) or for pilotd's catalog (once
	 * per backend); without it a repeated statement's key comes from the
	 * backend's memo (relset_key.cpp) */
	if (want_text && qs->model_text == 0)
		qs->model_text = pilotd_model_needs_text() ? 2 : 1;
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
bool
want_key_text(PilotQueryState *qs)
{
	PilotFallback reason;

	return pilotd_usable(qs, &reason) && pilotd_wants_text();
}

/*
 * The learned model answers with a band around PostgreSQL's estimate where it
 * is unsure: inside it, PostgreSQL's estimate stands (counted as unknown).
 * For joins this can only be decided once the planner has sized the join.
 */
void
apply_model_band(PilotEstimate *e)
{
	if (e->answered && pilot::proto::within_unsure_band(e->rows, e->native_rows, e->keep_native_within))
	{
		e->answered = false;
		e->reason = PF_UNKNOWN;
	}
}

static double
used_rows(const PilotEstimate *e)
{
	return e->answered ? clamp_row_est(e->rows) : e->native_rows;
}

/* Bookkeeping once per relation set, when the planner first sizes it:
 * counters, log line, explain record. */
void
finish_entry(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e)
{
	e->resolved = true;
	e->finished = true;
	if (e->answered)
		rs->any_answered = true;
	else
		pilot_stats_count_fallback(e->reason, 1);
	if (pilot_log_estimates || qs->record)
	{
		char	   *label = relset_label(rs->root, e->relids);
		const char *source = e->answered ? pilot::proto::source_name(e->source)
			: psprintf("native (%s)", pilot_fallback_name(e->reason));

		if (pilot_log_estimates)
			ereport(LOG,
					(errmsg("pg_pilot: {%s} native=%.0f pilot=%s used=%.0f source=%s key=%016llx",
							label, e->native_rows,
							e->answered ? psprintf("%.0f", e->rows) : "-",
							used_rows(e), source, (unsigned long long) e->key),
					 errhidestmt(true)));
		if (qs->record && !e->recorded)
		{
			PilotRecord *r = (PilotRecord *) palloc0(sizeof(PilotRecord));

			r->relations = label;
			r->nrels = bms_num_members(e->relids);
			r->native_rows = e->native_rows;
			r->pilot_rows = e->answered ? e->rows : -1;
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
bool
pilotd_usable(PilotQueryState *qs, PilotFallback *reason)
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
void
ask_pilotd(PilotQueryState *qs, PilotEstimate **entries, int n)
{
	PilotAsk   *asks;
	uint64		budget = (uint64) pilot_timeout_ms * 1000;
	uint64		start;

	PilotFallback reason;

	if (n == 0)
		return;
	if (!pilotd_usable(qs, &reason))
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
		pilotd_estimate(asks, n, spent < budget ? (int64) (budget - spent) : 0);
	}
	qs->waited_us += pilot::proto::monotonic_us() - start;
	for (int i = 0; i < n; i++)
	{
		entries[i]->answered = asks[i].answered;
		entries[i]->rows = asks[i].rows;
		entries[i]->source = asks[i].source;
		entries[i]->keep_native_within = asks[i].keep_native_within;
		entries[i]->reason = asks[i].answered ? PF_NONE : asks[i].reason;
		if (entries[i]->key_text != NULL)
		{
			pfree(entries[i]->key_text);	/* sent: no longer needed */
			entries[i]->key_text = NULL;
		}
		/* pilotd is unusable for the rest of this planning: stop asking */
		if (asks[i].reason == PF_PILOTD_DOWN || asks[i].reason == PF_VERSION_MISMATCH ||
			asks[i].reason == PF_NO_SLOT)
			qs->disabled_reason = asks[i].reason;
	}
	pfree(asks);
}

/* ---------------------------------------------------------------------
 * Base relations
 * --------------------------------------------------------------------- */

double
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

void
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
int
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
	pilotd_may_answer(sets, may, n);
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
void
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
	ask_pilotd(qs, keyed, nkeyed);
	for (int i = 0; i < nall; i++)
	{
		PilotEstimate *e = all[i];
		int			relid = bms_singleton_member(e->relids);

		apply_model_band(e);
		finish_entry(qs, rs, e);
		/* paths of later relations are built with these rows */
		if (e->answered)
			root->simple_rel_array[relid]->rows = clamp_row_est(e->rows);
	}
}
