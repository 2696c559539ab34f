/*
 * join_prefetch.cpp — the join sets of a query level asked for ahead, at its
 * first join (prefetch_join_estimates, from join_rel_work in planner_hooks.cpp).
 *
 * enumeration         every connected set of the level's join graph
 *                     (relset_join_graph), as DPccp enumerates them
 *                     (enumerate_csg_rec), up to PREFETCH_MAX sets.
 * sizing              PostgreSQL's own estimate of each set, not built yet
 *                     (size_joins: a smaller connected set joined to one base
 *                     relation, native_join_size.cpp), run guarded like the
 *                     catalog (run_guarded): it is the model's input.
 * enumerated_set      when pilotd may answer none of the sets, the level keeps
 *                     its join graph and the planner's visits to those sets
 *                     are turned away with a few bit operations.
 *
 * Split from planner_hooks.cpp: a self-contained algorithm over relation sets
 * as 64-bit words (range-table indexes below 64), which needs of the hooks only
 * the level's PilotRootState, its estimates cache and the ask functions
 * (planner_internal.h).
 */
extern "C" {
#include "postgres.h"

#include "nodes/bitmapset.h"
#include "utils/hsearch.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"
#include "planner_internal.h"

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

void
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

	if (!pilotd_usable(qs, &reason) || cat == NULL ||
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
	if (!qs->record && !rs->any_answered)
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

		pilotd_may_answer(sets, may, en.count);
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
	 * they are (any_answered stays false).
	 */
	if (nknown > 0 || rs->any_answered)
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
	ask_pilotd(qs, keyed, nkeyed);
	for (int i = 0; i < nkeyed; i++)
		keyed[i]->resolved = true;
}

/*
 * With joins_unknown: is relids one of the sets the prefetch enumerated (and
 * the filter turned down), i.e. connected in the level's join graph?  Other
 * sets (a clauseless join, one formed through LATERAL) take the usual path.
 * A few bit operations: no memory beyond the graph.
 */
bool
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
