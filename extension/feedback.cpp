/*
 * feedback.cpp — execution feedback: what each relation set of a plan really
 * produced, sent to pilotd without slowing the query.
 *
 * Planning end (pilot_feedback_remember): for the plan of a top-level query
 * level, every scan and join node whose relation set pg_pilot keyed gets an
 * entry (plan_node_id -> key, template, PostgreSQL's and pg_pilot's estimates).
 * The map lives in the PlannedStmt's own memory context, found through a
 * backend-local hash keyed by the PlannedStmt, and a reset callback on that
 * context removes the hash entry.  The plancache (prepared statements,
 * PL/pgSQL) executes COPIES of the plans it built, right after building them:
 * a copy without a map is matched against the last few plans remembered here
 * (cheap checks first, then a fingerprint of node types, ids, costs, rows,
 * relations and every qual with its constants, which copyObject() preserves),
 * and on a match gets its own map in the copy's memory context, so that a
 * cached plan's later executions find it directly.
 *
 * ExecutorStart: for a sampled query (pg_pilot.collect_feedback,
 * pg_pilot.feedback_sample_rate) with a map, turn on row counting (no timing)
 * for the mapped nodes only — for the whole query if it runs parallel workers,
 * which count only then.  Not for EXPLAIN without ANALYZE.
 * ExecutorRun: a run that returns its whole row limit (a cursor fetch) may have
 * stopped early and makes counts partial: such queries send nothing.
 * ExecutorEnd: walk the PlanState tree, add parallel workers' counts, and push
 * one record per mapped node into this backend's ring in pilotd's segment — a
 * memory copy, never a wait; a full ring drops and counts.  Only counts that
 * are the relation set's size are sent.  Skipped: nodes that ran more than once
 * per participant; inner sides of nested loops and children of Memoize (rows
 * per outer row, even when run once); nodes below a Limit, an input of a Merge
 * Join, or the outer side of a Hash Join whose hash table was empty (they may
 * stop early); below a Gather, nodes whose rows are not split between the
 * participants (each would count the whole set).  A query that fails never
 * reaches ExecutorEnd and sends nothing.
 */
extern "C" {
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "executor/hashjoin.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "executor/instrument.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"
#include "access/htup_details.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"

using pilot::proto::FeedbackRecord;

/* PG15 declares tree walkers as bool (*)(): one cast for all of ours */
template <typename Walker>
static inline bool (*pg_walker(Walker fn))()
{
	return reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)(void)>(fn));
}

typedef struct FeedbackNode
{
	int			plan_node_id;
	uint32		nrels;
	uint64		key;
	uint64		template_key;
	uint64		table_set;
	double		native_rows;
	double		pilot_rows;
	char		relations[pilot::proto::kRelationsLen];	/* "a, b, c" */
} FeedbackNode;

typedef struct FeedbackMap
{
	const PlannedStmt *stmt;	/* hash key: must be first */
	double		planning_ms;
	double		table_rows_log; /* plan_table_rows_log() when planned; < 0 unknown */
	uint32		guard_arm;		/* proto::GuardArm the plan was made with */
	bool		guard_must_report;	/* the guard needs the run's time (explore, probe) */
	int			n;
	FeedbackNode *nodes;		/* sorted by plan_node_id */
	MemoryContextCallback cb;
} FeedbackMap;

/* queries being collected right now (nesting: SPI inside a query) */
typedef struct Collecting
{
	QueryDesc  *qd;
	FeedbackMap *map;
	bool		partial;		/* ExecutorRun with a row limit */
	bool		timing_only;	/* not sampled: only the plan guard's FB_QUERY record */
	uint32		guard_arm;		/* proto::GuardArm reported with the run; ARM_UNKNOWN: none */
	double		planning_ms;	/* < 0: not planned for this run (a cached plan) */
	double		table_rows_log; /* the map's */
	SubTransactionId subid;		/* subtransaction it started in */
	uint64		start_us;
	struct Collecting *next;
} Collecting;

/* maps: PlannedStmt -> its FeedbackMap */
typedef struct MapEntry
{
	const PlannedStmt *stmt;	/* hash key: must be first */
	FeedbackMap *map;
} MapEntry;

static HTAB *maps = NULL;
static Collecting *collecting = NULL;

static void remember_recent(const PlannedStmt *stmt, FeedbackMap *m);
static void register_map(const PlannedStmt *stmt, FeedbackMap *m);
static void forget_recent(const FeedbackMap *m);

static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;

/* ---------------------------------------------------------------------
 * Planning end: remember the keyed relation sets of the plan's nodes
 * --------------------------------------------------------------------- */

static void
forget_map(void *arg)
{
	FeedbackMap *m = (FeedbackMap *) arg;

	if (maps != NULL)
		hash_search(maps, &m->stmt, HASH_REMOVE, NULL);
	forget_recent(m);
}

/*
 * The key texts of the chosen plan's sets that were not asked for (the
 * known-sets filter kept them from being keyed): pilotd needs them to train
 * on the feedback they will bring.  Sent in one round trip at the end of the
 * planning, within what is left of its budget; only texts pilotd has not
 * had from this backend (pilot_sidecar_text_sent()), so planning a statement
 * again sends nothing.
 */
static void
send_key_texts(PilotQueryState *qs, List *entries)
{
	int			n = list_length(entries);
	PilotEstimate **arr = (PilotEstimate **) palloc(sizeof(PilotEstimate *) * n);
	int			i = 0;
	ListCell   *lc;

	foreach(lc, entries)
		arr[i++] = (PilotEstimate *) lfirst(lc);
	pilot_send_key_texts(qs, arr, n);
	pfree(arr);
}

typedef struct MapBuild
{
	PilotQueryState *qs;
	PilotRootState *rs;
	List	   *nodes;			/* FeedbackNode * */
	bool		want_text;		/* pilotd catalogs key texts (pilot_sidecar_wants_text()) */
	List	   *unsent;			/* PilotEstimate * keyed here with a text pilotd has not had */
} MapBuild;

/*
 * The set's relations for people: table names in the order of the set, cut
 * with "..." to fit the record; clean UTF-8 (other bytes become '?').
 */
static void
relset_names(PlannerInfo *root, Relids relids, char *dst, size_t cap)
{
	StringInfoData buf;
	int			i = -1;
	int			len;

	initStringInfo(&buf);
	while ((i = bms_next_member(relids, i)) >= 0)
	{
		const char *name = NULL;

		if (i < root->simple_rel_array_size && root->simple_rte_array[i] != NULL)
		{
			RangeTblEntry *rte = root->simple_rte_array[i];

			if (rte->rtekind == RTE_RELATION)
				name = get_rel_name(rte->relid);
			if (name == NULL && rte->eref != NULL)
				name = rte->eref->aliasname;
		}
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, name != NULL ? name : "?");
	}
	len = buf.len;
	if ((size_t) len >= cap)
	{
		len = pg_mbcliplen(buf.data, buf.len, (int) cap - 4);
		buf.data[len] = '\0';
		appendStringInfoString(&buf, "...");
		len += 3;
	}
	pilot::proto::copy_clean_utf8(dst, cap, buf.data, (size_t) len);
	pfree(buf.data);
}

/* The relation set a plan node produces (NULL when it is not one we key). */
static Relids
plan_relids(MapBuild *b, Plan *plan)
{
	Relids		relids = NULL;

	if (plan == NULL)
		return NULL;
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
			relids = bms_make_singleton((int) ((Scan *) plan)->scanrelid);
			break;
		case T_ForeignScan:
			relids = ((ForeignScan *) plan)->fs_relids;
			plan_relids(b, plan->lefttree);
			break;
		case T_Append:
			relids = ((Append *) plan)->apprelids;
			{
				ListCell   *lc;

				foreach(lc, ((Append *) plan)->appendplans)
					plan_relids(b, (Plan *) lfirst(lc));
			}
			break;
		case T_NestLoop:
		case T_MergeJoin:
		case T_HashJoin:
			{
				Relids		l = plan_relids(b, plan->lefttree);
				Relids		r = plan_relids(b, plan->righttree);

				relids = (l && r) ? bms_union(l, r) : NULL;
			}
			break;
		case T_Hash:
		case T_Material:
		case T_Sort:
		case T_IncrementalSort:
		case T_Memoize:
		case T_Gather:
		case T_GatherMerge:
		case T_Unique:
			/* pass-through: the child's set; the child carries the entry */
			return plan_relids(b, plan->lefttree);
		default:
			/* aggregates, subqueries, ...: look below, but no set here */
			(void) plan_relids(b, plan->lefttree);
			(void) plan_relids(b, plan->righttree);
			return NULL;
	}
	if (relids != NULL)
	{
		PilotEstimate *e = (PilotEstimate *) hash_search(b->rs->estimates, &relids,
														 HASH_FIND, NULL);

		/* a level whose joins pilotd knows nothing of made no entries for
		 * them while planning: the chosen plan's, now */
		if (e == NULL && b->rs->joins_unknown && bms_membership(relids) == BMS_MULTIPLE)
		{
			RelOptInfo *rel = find_join_rel(b->rs->root, relids);

			e = pilot_unasked_join_entry(b->qs, b->rs, relids, rel != NULL ? rel->rows : plan->plan_rows);
		}

		/* a set the known-sets filter kept from being keyed: its key now
		 * (once per chosen plan's set, not per set the planner sized) */
		if (e != NULL && e->key == 0 && e->not_asked && b->rs->catalog != NULL &&
			!pilot_budget_spent(b->qs))
		{
			RelsetKey	k;

			/* with the key text only when pilotd needs it and has not had it */
			if (b->want_text
				? relset_key_text_once(b->rs->catalog, relids, RELSET_KEY | RELSET_TEMPLATE, &k)
				: relset_key_for(b->rs->catalog, relids, false, RELSET_KEY | RELSET_TEMPLATE, &k))
			{
				e->key = k.key;
				e->template_key = k.template_key;
				if (k.text != NULL)
				{
					e->key_text = k.text;
					b->unsent = lappend(b->unsent, e);
				}
			}
		}
		if (e != NULL && e->key != 0)
		{
			FeedbackNode *fn = (FeedbackNode *) palloc(sizeof(FeedbackNode));

			/* asks key without the template: the sets of the chosen plan get
			 * it here, once (from the catalog built already: no catalog access) */
			if (e->template_key == 0 && b->rs->catalog != NULL)
			{
				RelsetKey	k;

				if (relset_key_for(b->rs->catalog, relids, false, RELSET_TEMPLATE, &k))
					e->template_key = k.template_key;
			}

			fn->plan_node_id = plan->plan_node_id;
			fn->nrels = (uint32) bms_num_members(relids);
			fn->key = e->key;
			fn->template_key = e->template_key;
			if (e->table_set == 0)
				e->table_set = relset_table_set(b->rs->catalog, relids);
			fn->table_set = e->table_set;
			/* as the model sees it (pg_pilot.h); a set not sized from its
			 * parts (nothing asked) in a level where nothing was learned:
			 * the planner's own estimate is PostgreSQL's alone */
			fn->native_rows = (e->pg_rows < 0 && !b->rs->any_learned) ? e->native_rows : e->pg_rows;
			fn->pilot_rows = e->learned ? e->rows : -1;
			relset_names(b->rs->root, relids, fn->relations, sizeof fn->relations);
			b->nodes = lappend(b->nodes, fn);
		}
	}
	return relids;
}

/*
 * The table statistics a plan was made with, as one number for the plan
 * guard: the sum over the plan's tables of ln(1 + pg_class.reltuples).  When
 * ANALYZE or VACUUM finds a table much larger or smaller, the number moves by
 * the log of that factor and the guard lets the template explore again (its
 * old run times were of plans made for other sizes).  One syscache lookup per
 * table, only for runs the guard times; -1 when a table is unknown.
 */
static double
plan_table_rows_log(const PlannedStmt *stmt)
{
	double		sum = 0;
	ListCell   *lc;

	foreach(lc, stmt->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		HeapTuple	tup;

		if (rte->rtekind != RTE_RELATION)
			continue;
		tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rte->relid));
		if (!HeapTupleIsValid(tup))
			return -1;
		/* reltuples < 0: never vacuumed nor analyzed */
		sum += log1p(Max(((Form_pg_class) GETSTRUCT(tup))->reltuples, (float4) 0));
		ReleaseSysCache(tup);
	}
	return sum;
}

void
pilot_feedback_remember(PilotQueryState *qs, PlannedStmt *stmt, double planning_ms, uint32 guard_arm,
						bool guard_must_report)
{
	PilotRootState *top = NULL;
	MapBuild	b;
	MemoryContext stmt_cxt;
	MemoryContext old;
	FeedbackMap *m;
	int			i;
	ListCell   *lc;

	if (!pilot_collect_feedback || stmt == NULL || stmt->commandType == CMD_UTILITY)
		return;
	if (pilot_feedback_sample_rate <= 0 && guard_arm == pilot::proto::ARM_UNKNOWN)
		return;
	b.nodes = NIL;
	b.unsent = NIL;
	b.qs = qs;
	if (qs != NULL)
	{
		for (PilotRootState *rs = qs->roots; rs != NULL; rs = rs->next)
			if (rs->root->parent_root == NULL)
				top = rs;
		if (top != NULL)
		{
			/* keys computed here die with the planning's state */
			old = MemoryContextSwitchTo(qs->cxt);
			b.rs = top;
			b.want_text = pilot_sidecar_wants_text();
			/* keys of sets not asked: within the planning's budget */
			pilot_work_begin(qs);
			(void) plan_relids(&b, stmt->planTree);
			pilot_work_end(qs);
			if (b.unsent != NIL)
				send_key_texts(qs, b.unsent);
			MemoryContextSwitchTo(old);
		}
	}
	/* planned with pg_pilot's estimates but nothing of it keyed: pg_pilot took
	 * no part, nothing to report nor to guard.  Planned with PostgreSQL's by
	 * the guard: the run's time is reported (a map without nodes). */
	if (b.nodes == NIL && guard_arm != pilot::proto::ARM_NATIVE)
		return;

	/* the map lives and dies with the plan */
	stmt_cxt = GetMemoryChunkContext(stmt);
	old = MemoryContextSwitchTo(stmt_cxt);
	m = (FeedbackMap *) palloc0(sizeof(FeedbackMap));
	m->stmt = stmt;
	m->planning_ms = planning_ms;
	m->table_rows_log = guard_arm != pilot::proto::ARM_UNKNOWN ? plan_table_rows_log(stmt) : -1;
	m->guard_arm = guard_arm;
	m->guard_must_report = guard_must_report;
	m->n = list_length(b.nodes);
	m->nodes = (FeedbackNode *) palloc(sizeof(FeedbackNode) * m->n);
	i = 0;
	foreach(lc, b.nodes)
		m->nodes[i++] = *(FeedbackNode *) lfirst(lc);
	MemoryContextSwitchTo(old);
	register_map(stmt, m);
	remember_recent(stmt, m);
}

/* Makes m (allocated in stmt's memory context) stmt's map, until that
 * context goes. */
static void
register_map(const PlannedStmt *stmt, FeedbackMap *m)
{
	MapEntry   *e;
	bool		found;

	if (maps == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(PlannedStmt *);
		ctl.entrysize = sizeof(MapEntry);
		ctl.hcxt = TopMemoryContext;
		maps = hash_create("pg_pilot feedback maps", 64, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	m->cb.func = forget_map;
	m->cb.arg = m;
	MemoryContextRegisterResetCallback(GetMemoryChunkContext((void *) stmt), &m->cb);
	e = (MapEntry *) hash_search(maps, &stmt, HASH_ENTER, &found);
	e->map = m;
}

/* ---------------------------------------------------------------------
 * Plan fingerprints: finding the map of a plancache copy
 * --------------------------------------------------------------------- */

/* the last plans remembered (most plancache copies are of the latest) */
#define RECENT_MAPS 4
static FeedbackMap *recent_maps[RECENT_MAPS];
static int	recent_next = 0;

static inline void
fp_mix(uint64 *h, uint64 v)
{
	*h ^= v + UINT64CONST(0x9E3779B97F4A7C15) + (*h << 6) + (*h >> 2);
}

static inline void
fp_mix_double(uint64 *h, double d)
{
	uint64		v;

	memcpy(&v, &d, sizeof v);
	fp_mix(h, v);
}

/* What distinguishes one qual from another, constants included. */
static bool
fp_expr(Node *node, void *arg)
{
	uint64	   *h = (uint64 *) arg;

	if (node == NULL)
		return false;
	fp_mix(h, (uint64) nodeTag(node));
	switch (nodeTag(node))
	{
		case T_Const:
			{
				Const	   *c = (Const *) node;

				fp_mix(h, c->consttype);
				fp_mix(h, c->constisnull);
				if (!c->constisnull)
				{
					if (c->constbyval)
						fp_mix(h, (uint64) c->constvalue);
					else if (c->constlen > 0)
						fp_mix(h, pilot::proto::stable_hash64(DatumGetPointer(c->constvalue), c->constlen));
					else if (c->constlen == -1)
						fp_mix(h, pilot::proto::stable_hash64(DatumGetPointer(c->constvalue),
															  VARSIZE_ANY(DatumGetPointer(c->constvalue))));
					else if (c->constlen == -2)
						fp_mix(h, pilot::proto::stable_hash64(DatumGetPointer(c->constvalue),
															  strlen(DatumGetCString(c->constvalue))));
				}
				return false;
			}
		case T_Var:
			fp_mix(h, ((Var *) node)->varno);
			fp_mix(h, (uint64) (int64) ((Var *) node)->varattno);
			fp_mix(h, ((Var *) node)->varlevelsup);
			break;
		case T_Param:
			fp_mix(h, ((Param *) node)->paramkind);
			fp_mix(h, (uint64) (int64) ((Param *) node)->paramid);
			break;
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			fp_mix(h, ((OpExpr *) node)->opno);
			break;
		case T_ScalarArrayOpExpr:
			fp_mix(h, ((ScalarArrayOpExpr *) node)->opno);
			fp_mix(h, ((ScalarArrayOpExpr *) node)->useOr);
			break;
		case T_FuncExpr:
			fp_mix(h, ((FuncExpr *) node)->funcid);
			break;
		case T_BoolExpr:
			fp_mix(h, ((BoolExpr *) node)->boolop);
			break;
		default:
			break;
	}
	return expression_tree_walker(node, pg_walker(fp_expr), arg);
}

static void fp_plan(Plan *plan, uint64 *h);

static void
fp_plans(List *plans, uint64 *h)
{
	ListCell   *lc;

	foreach(lc, plans)
		fp_plan((Plan *) lfirst(lc), h);
}

static void
fp_plan(Plan *plan, uint64 *h)
{
	if (plan == NULL)
	{
		fp_mix(h, 0);
		return;
	}
	fp_mix(h, (uint64) nodeTag(plan));
	fp_mix(h, (uint64) plan->plan_node_id);
	fp_mix_double(h, plan->startup_cost);
	fp_mix_double(h, plan->total_cost);
	fp_mix_double(h, plan->plan_rows);
	fp_mix(h, (uint64) plan->plan_width);
	fp_mix(h, plan->parallel_aware);
	(void) fp_expr((Node *) plan->qual, h);
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_TidScan:
		case T_TidRangeScan:
		case T_BitmapHeapScan:
		case T_FunctionScan:
		case T_ValuesScan:
		case T_CteScan:
		case T_SubqueryScan:
		case T_ForeignScan:
		case T_CustomScan:
			fp_mix(h, ((Scan *) plan)->scanrelid);
			if (IsA(plan, BitmapHeapScan))
				(void) fp_expr((Node *) ((BitmapHeapScan *) plan)->bitmapqualorig, h);
			if (IsA(plan, SubqueryScan))
				fp_plan(((SubqueryScan *) plan)->subplan, h);
			break;
		case T_IndexScan:
			fp_mix(h, ((Scan *) plan)->scanrelid);
			fp_mix(h, ((IndexScan *) plan)->indexid);
			(void) fp_expr((Node *) ((IndexScan *) plan)->indexqualorig, h);
			break;
		case T_IndexOnlyScan:
			fp_mix(h, ((Scan *) plan)->scanrelid);
			fp_mix(h, ((IndexOnlyScan *) plan)->indexid);
			(void) fp_expr((Node *) ((IndexOnlyScan *) plan)->indexqual, h);
			break;
		case T_BitmapIndexScan:
			fp_mix(h, ((BitmapIndexScan *) plan)->indexid);
			(void) fp_expr((Node *) ((BitmapIndexScan *) plan)->indexqualorig, h);
			break;
		case T_NestLoop:
		case T_MergeJoin:
		case T_HashJoin:
			fp_mix(h, ((Join *) plan)->jointype);
			(void) fp_expr((Node *) ((Join *) plan)->joinqual, h);
			if (IsA(plan, HashJoin))
				(void) fp_expr((Node *) ((HashJoin *) plan)->hashclauses, h);
			if (IsA(plan, MergeJoin))
				(void) fp_expr((Node *) ((MergeJoin *) plan)->mergeclauses, h);
			break;
		case T_Append:
			fp_plans(((Append *) plan)->appendplans, h);
			break;
		case T_MergeAppend:
			fp_plans(((MergeAppend *) plan)->mergeplans, h);
			break;
		case T_BitmapAnd:
			fp_plans(((BitmapAnd *) plan)->bitmapplans, h);
			break;
		case T_BitmapOr:
			fp_plans(((BitmapOr *) plan)->bitmapplans, h);
			break;
		default:
			break;
	}
	fp_plan(plan->lefttree, h);
	fp_plan(plan->righttree, h);
}

static uint64
plan_fingerprint(const PlannedStmt *stmt)
{
	uint64		h = UINT64CONST(0xcbf29ce484222325);
	ListCell   *lc;

	fp_mix(&h, stmt->queryId);
	fp_mix(&h, (uint64) list_length(stmt->rtable));
	foreach(lc, stmt->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);

		fp_mix(&h, rte->rtekind);
		fp_mix(&h, rte->relid);
	}
	fp_plan(stmt->planTree, &h);
	fp_plans(stmt->subplans, &h);
	return h;
}

static void
remember_recent(const PlannedStmt *stmt, FeedbackMap *m)
{
	(void) stmt;
	recent_maps[recent_next] = m;
	recent_next = (recent_next + 1) % RECENT_MAPS;
}

static void
forget_recent(const FeedbackMap *m)
{
	for (int i = 0; i < RECENT_MAPS; i++)
		if (recent_maps[i] == m)
			recent_maps[i] = NULL;
}

/*
 * A plan without a map may be the plancache's copy of a plan remembered a
 * moment ago: find it, and give the copy a map of its own (in the copy's
 * memory context, found directly from now on).
 */
static FeedbackMap *
adopt_copy(const PlannedStmt *stmt)
{
	uint64		fp = 0;
	const Plan *p = stmt->planTree;

	if (p == NULL)
		return NULL;
	for (int k = 1; k <= RECENT_MAPS; k++)
	{
		FeedbackMap *orig = recent_maps[(recent_next - k + RECENT_MAPS) % RECENT_MAPS];
		const PlannedStmt *o;
		FeedbackMap *copy;

		if (orig == NULL)
			continue;
		o = orig->stmt;
		/* cheap checks first: most plans run without a map of their own */
		if (o->queryId != stmt->queryId || o->planTree == NULL ||
			nodeTag(o->planTree) != nodeTag(p) || o->planTree->total_cost != p->total_cost ||
			o->planTree->plan_rows != p->plan_rows ||
			list_length(o->rtable) != list_length(stmt->rtable))
			continue;
		if (fp == 0)
			fp = plan_fingerprint(stmt);
		if (plan_fingerprint(o) != fp)
			continue;
		copy = (FeedbackMap *) MemoryContextAllocZero(GetMemoryChunkContext((void *) stmt),
													  sizeof(FeedbackMap) + sizeof(FeedbackNode) * orig->n);
		copy->stmt = stmt;
		copy->planning_ms = orig->planning_ms;
		copy->table_rows_log = orig->table_rows_log;
		copy->guard_arm = orig->guard_arm;
		copy->guard_must_report = orig->guard_must_report;
		orig->planning_ms = -1;
		copy->n = orig->n;
		copy->nodes = (FeedbackNode *) (copy + 1);
		memcpy(copy->nodes, orig->nodes, sizeof(FeedbackNode) * orig->n);
		register_map(stmt, copy);
		return copy;
	}
	return NULL;
}

static FeedbackMap *
map_for(const PlannedStmt *stmt)
{
	MapEntry   *e;

	if (maps == NULL || stmt == NULL)
		return NULL;
	e = (MapEntry *) hash_search(maps, &stmt, HASH_FIND, NULL);
	return e ? e->map : NULL;
}

static const FeedbackNode *
node_entry(const FeedbackMap *m, int plan_node_id)
{
	for (int i = 0; i < m->n; i++)
		if (m->nodes[i].plan_node_id == plan_node_id)
			return &m->nodes[i];
	return NULL;
}

/* ---------------------------------------------------------------------
 * Executor
 * --------------------------------------------------------------------- */

static bool
sampled(void)
{
	if (pilot_feedback_sample_rate >= 1.0)
		return true;
	return pg_prng_double(&pg_global_prng_state) < pilot_feedback_sample_rate;
}

static Collecting *
collecting_entry(QueryDesc *qd)
{
	for (Collecting *c = collecting; c != NULL; c = c->next)
		if (c->qd == qd)
			return c;
	return NULL;
}

/*
 * Row counting for the mapped scan and join nodes only: counting every node
 * (INSTRUMENT_ROWS for the whole query) costs more, mostly in nodes we do not
 * report on (hashes, sorts, aggregates).  And a mapped node does not go
 * through ExecProcNodeInstr (InstrStartNode/InstrStopNode: timer, buffer and
 * WAL checks per row) but through count_rows(), which only counts, in the
 * Instrumentation fields InstrEndLoop() and EXPLAIN read (tuplecount,
 * running), so rescans (nloops) are accounted as usual.
 */
typedef struct InstrWalk
{
	const FeedbackMap *map;
	MemoryContext cxt;
} InstrWalk;

static TupleTableSlot *
count_rows(PlanState *ps)
{
	Instrumentation *in = ps->instrument;
	TupleTableSlot *slot;

	if (unlikely(!in->running))
		check_stack_depth();	/* what ExecProcNodeFirst did on the first call */
	slot = ps->ExecProcNodeReal(ps);
	in->running = true;
	if (!TupIsNull(slot))
		in->tuplecount += 1;
	return slot;
}

/* The executor's (static) ExecProcNodeFirst, which every node has until its
 * first call: learnt from what ExecSetExecProcNode() installs. */
static ExecProcNodeMtd
exec_proc_node_first(void)
{
	static ExecProcNodeMtd first = NULL;

	if (first == NULL)
	{
		PlanState	probe;

		memset(&probe, 0, sizeof(probe));
		ExecSetExecProcNode(&probe, count_rows);
		first = probe.ExecProcNode;
	}
	return first;
}

static bool
instrument_walk(PlanState *ps, void *arg)
{
	InstrWalk  *iw = (InstrWalk *) arg;

	/* only a node not yet run, whose ExecProcNode nobody else wrapped */
	if (ps->instrument == NULL && ps->ExecProcNode == exec_proc_node_first() &&
		node_entry(iw->map, ps->plan->plan_node_id) != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(iw->cxt);

		ps->instrument = InstrAlloc(1, INSTRUMENT_ROWS, false);
		MemoryContextSwitchTo(old);
		ps->ExecProcNode = count_rows;
	}
	return planstate_tree_walker(ps, pg_walker(instrument_walk), arg);
}

static void
instrument_mapped_nodes(QueryDesc *qd, const FeedbackMap *m)
{
	InstrWalk	iw;

	iw.map = m;
	iw.cxt = qd->estate->es_query_cxt;
	(void) instrument_walk(qd->planstate, &iw);
}

static void
pilot_executor_start(QueryDesc *qd, int eflags)
{
	FeedbackMap *m = NULL;
	double		planning_ms = -1;
	bool		timing_only = false;
	uint32		guard_arm = pilot::proto::ARM_UNKNOWN;

	if (pilot_collect_feedback && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) && qd->plannedstmt != NULL &&
		qd->plannedstmt->commandType != CMD_UTILITY)
	{
		/* a plancache copy is adopted on its first run, sampled or not */
		m = map_for(qd->plannedstmt);
		if (m == NULL)
			m = adopt_copy(qd->plannedstmt);
	}
	if (m != NULL)
	{
		/* a plan's planning time belongs to its first run only */
		planning_ms = m->planning_ms;
		m->planning_ms = -1;
		/*
		 * A cached plan (a prepared statement's generic plan) keeps the arm
		 * it was planned with: made while its template explored, for a probe,
		 * or before the guard decided otherwise.  When the template's pin or
		 * decision says the other arm, this run goes on, and the backend's
		 * cached plans are invalidated (as a catalog change does), so that
		 * the next execution plans with the settled arm.
		 */
		if (planning_ms < 0 && m->guard_arm != pilot::proto::ARM_UNKNOWN)
		{
			const uint32 settled = pilot_guard_settled_arm(qd->plannedstmt->queryId);

			if (settled != pilot::proto::ARM_UNKNOWN && settled != m->guard_arm)
			{
				m->guard_arm = pilot::proto::ARM_UNKNOWN;	/* once per plan */
				ResetPlanCache();
				elog(DEBUG1, "pg_pilot: query %lld has a cached plan of the other side: cached plans invalidated",
					 (long long) qd->plannedstmt->queryId);
			}
		}
		/*
		 * The plan guard times only runs planned for them: a cached plan's
		 * later runs (no planning, and an arm chosen back then) are not its
		 * template's evidence.  A run the guard needs (exploring, probing)
		 * reports its time even when not sampled for row counts.
		 */
		const bool guard_run = m->guard_arm != pilot::proto::ARM_UNKNOWN && planning_ms >= 0;
		const bool rows = m->n > 0 && pilot_feedback_sample_rate > 0 && sampled();

		if (guard_run)
			guard_arm = m->guard_arm;
		if (!rows)
		{
			if (guard_run && m->guard_must_report)
				timing_only = true;
			else
				m = NULL;
		}
	}
	/*
	 * Parallel workers count rows only when the whole query is instrumented;
	 * otherwise only the nodes we report on are (see instrument_mapped_nodes).
	 */
	if (m != NULL && !timing_only && qd->plannedstmt->parallelModeNeeded)
		qd->instrument_options |= INSTRUMENT_ROWS;

	if (prev_executor_start)
		prev_executor_start(qd, eflags);
	else
		standard_ExecutorStart(qd, eflags);

	if (m != NULL && !timing_only && qd->planstate != NULL)
		instrument_mapped_nodes(qd, m);
	if (m != NULL)
	{
		/* the map lives as long as the plan, which outlives its execution */
		Collecting *c = (Collecting *) MemoryContextAllocZero(TopMemoryContext, sizeof(Collecting));

		c->qd = qd;
		c->map = m;
		c->planning_ms = planning_ms;
		c->table_rows_log = m->table_rows_log;
		c->timing_only = timing_only;
		c->guard_arm = guard_arm;
		c->subid = GetCurrentSubTransactionId();
		c->start_us = pilot::proto::monotonic_us();
		c->next = collecting;
		collecting = c;
	}
}

/* An aggregate without GROUP BY at the top: it returns its only row after
 * reading every input row. */
static bool
plain_aggregate(const PlannedStmt *stmt)
{
	const Plan *p = stmt != NULL ? stmt->planTree : NULL;

	return p != NULL && IsA(p, Agg) && ((const Agg *) p)->aggstrategy == AGG_PLAIN;
}

static void
pilot_executor_run(QueryDesc *qd, ScanDirection direction, uint64 count, bool execute_once)
{
	Collecting *c = collecting_entry(qd);
	uint64		before = qd->estate != NULL ? qd->estate->es_processed : 0;

	if (c != NULL && !ScanDirectionIsForward(direction))
		c->partial = true;
	if (prev_executor_run)
		prev_executor_run(qd, direction, count, execute_once);
	else
		standard_ExecutorRun(qd, direction, count, execute_once);
	/* a run that returned its whole row limit may have stopped early (a
	 * cursor fetch); one that returned fewer rows ran the plan to its end
	 * (PL/pgSQL's SELECT INTO asks for 1 or 2 rows), and so did a plain
	 * aggregate, which reads all its input before its one row */
	c = collecting_entry(qd);
	if (c != NULL && count != 0 && qd->estate != NULL &&
		qd->estate->es_processed - before >= count && !plain_aggregate(qd->plannedstmt))
		c->partial = true;
}

typedef struct Walk
{
	const FeedbackMap *map;
	FeedbackRecord *recs;
	int			n;
	int			cap;
	uint64		query_id;
	int			participants;	/* 1 + workers launched, below a Gather */
	bool		unreliable;		/* below a Limit or a Merge Join input */
} Walk;

static bool walk_node(PlanState *ps, void *arg);

/* walks one child (not its siblings) with the given context */
static bool
walk_children_one(PlanState *child, Walk *w, int participants, bool unreliable)
{
	int			saved_p = w->participants;
	bool		saved_u = w->unreliable;
	bool		r;

	if (child == NULL)
		return false;
	w->participants = participants;
	w->unreliable = unreliable;
	r = walk_node(child, w);
	w->participants = saved_p;
	w->unreliable = saved_u;
	return r;
}

static bool
walk_children(PlanState *ps, Walk *w, int participants, bool unreliable)
{
	int			saved_p = w->participants;
	bool		saved_u = w->unreliable;
	bool		r;

	w->participants = participants;
	w->unreliable = unreliable;
	r = planstate_tree_walker(ps, pg_walker(walk_node), w);
	w->participants = saved_p;
	w->unreliable = saved_u;
	return r;
}

/* Does this node's output split between parallel participants (a partial
 * scan, or a join/pass-through node over one)? */
static bool
is_partial(const Plan *p)
{
	if (p == NULL)
		return false;
	switch (nodeTag(p))
	{
		case T_NestLoop:
		case T_MergeJoin:
		case T_HashJoin:
		case T_Hash:
		case T_Material:
		case T_Sort:
		case T_IncrementalSort:
		case T_Memoize:
		case T_Unique:
			return is_partial(p->lefttree);
		default:
			return p->parallel_aware;
	}
}

static bool
walk_node(PlanState *ps, void *arg)
{
	Walk	   *w = (Walk *) arg;
	const FeedbackNode *fn = node_entry(w->map, ps->plan->plan_node_id);
	Instrumentation *in = ps->instrument;
	int			participants = w->participants;

	/* below a Gather, only split outputs sum to the set's size */
	if (fn != NULL && in != NULL && !w->unreliable && w->n < w->cap &&
		(participants == 1 || is_partial(ps->plan)))
	{
		/* workers' counts are already added into the leader's instrument */
		InstrEndLoop(in);
		if (in->nloops >= 1 && in->nloops <= participants)
		{
			FeedbackRecord *r = &w->recs[w->n++];

			r->kind = pilot::proto::FB_RELSET;
			r->key = fn->key;
			r->template_key = fn->template_key;
			r->table_set = fn->table_set;
			r->native_rows = fn->native_rows;
			r->pilot_rows = fn->pilot_rows;
			r->actual_rows = in->ntuples;
			r->nrels = fn->nrels;
			r->query_id = w->query_id;
			memcpy(r->relations, fn->relations, sizeof r->relations);
		}
	}

	switch (nodeTag(ps))
	{
		case T_GatherState:
		case T_GatherMergeState:
			{
				int			launched = IsA(ps, GatherState)
					? ((GatherState *) ps)->nworkers_launched
					: ((GatherMergeState *) ps)->nworkers_launched;
				bool		single_copy = IsA(ps, GatherState) &&
					((Gather *) ps->plan)->single_copy;
				bool		leader = !single_copy && parallel_leader_participation;

				participants = launched + (leader ? 1 : 0);
				if (participants < 1)
					participants = 1;
				return walk_children(ps, w, participants, w->unreliable);
			}
		case T_LimitState:
		case T_MergeJoinState:
		case T_MemoizeState:
			return walk_children(ps, w, participants, true);
		case T_NestLoopState:
			{
				/* outer side: as usual; inner side: rows per outer row */
				bool		r = walk_node(outerPlanState(ps), w) ||
					walk_children_one(innerPlanState(ps), w, participants, true);

				return r;
			}
		case T_HashJoinState:
			{
				HashJoinTable ht = ((HashJoinState *) ps)->hj_HashTable;
				bool		outer_ok = ht != NULL && ht->totalTuples > 0;

				return walk_children_one(outerPlanState(ps), w, participants,
										 w->unreliable || !outer_ok) ||
					walk_children_one(innerPlanState(ps), w, participants, w->unreliable);
			}
		default:
			return walk_children(ps, w, participants, w->unreliable);
	}
}

static void
send_feedback(Collecting *c)
{
	QueryDesc  *qd = c->qd;
	Walk		w;

	if (qd->planstate == NULL || c->partial)
		return;
	w.map = c->map;
	w.cap = c->map->n + 1;
	w.recs = (FeedbackRecord *) palloc0(sizeof(FeedbackRecord) * w.cap);
	w.n = 0;
	w.query_id = qd->plannedstmt->queryId;
	w.participants = 1;
	w.unreliable = false;
	if (!c->timing_only)
		(void) walk_node(qd->planstate, &w);
	for (int i = 0; i < w.n; i++)
		w.recs[i].dboid = (uint32) MyDatabaseId;
	{
		FeedbackRecord *q = &w.recs[w.n++];

		q->kind = pilot::proto::FB_QUERY;
		q->query_id = qd->plannedstmt->queryId;
		q->dboid = (uint32) MyDatabaseId;
		q->guard_arm = c->guard_arm;
		q->nrels = (uint32) (w.n - 1);	/* relation sets reported */
		q->planning_ms = c->planning_ms;
		q->table_rows_log = c->table_rows_log;
		q->execution_ms = (double) (pilot::proto::monotonic_us() - c->start_us) / 1000.0;
	}
	pilot_sidecar_push_feedback(w.recs, w.n);
	pfree(w.recs);
}

static void
pilot_executor_end(QueryDesc *qd)
{
	Collecting **pp = &collecting;

	while (*pp != NULL && (*pp)->qd != qd)
		pp = &(*pp)->next;
	if (*pp != NULL)
	{
		Collecting *c = *pp;

		*pp = c->next;
		send_feedback(c);
		pfree(c);
	}
	if (prev_executor_end)
		prev_executor_end(qd);
	else
		standard_ExecutorEnd(qd);
}

/* An error ends the queries being collected without ExecutorEnd: forget those
 * started in the aborted (sub)transaction (their QueryDescs are gone; a later
 * one could reuse an address).  InvalidSubTransactionId: all of them. */
static void
forget_collecting(SubTransactionId from)
{
	Collecting **pp = &collecting;

	while (*pp != NULL)
	{
		Collecting *c = *pp;

		if (from == InvalidSubTransactionId || c->subid >= from)
		{
			*pp = c->next;
			pfree(c);
		}
		else
			pp = &c->next;
	}
}

static void
on_xact(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		forget_collecting(InvalidSubTransactionId);
}

static void
on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		forget_collecting(sub);
}

void
pilot_install_executor_hooks(void)
{
	RegisterXactCallback(on_xact, NULL);
	RegisterSubXactCallback(on_subxact, NULL);
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = pilot_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = pilot_executor_run;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = pilot_executor_end;
}
