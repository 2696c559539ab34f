/*
 * plan_map.cpp — the map from a plan's nodes to their keyed relation sets,
 * which execution feedback (feedback.cpp) reads when the plan runs.
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
 * Split from feedback.cpp: building, registering and finding a plan's map
 * (at planning end, and for plancache copies by fingerprint) is apart from
 * the executor hooks and the record walk, which only read it (plan_map.h).
 */
extern "C" {
#include "postgres.h"

#include <math.h>

#include "optimizer/pathnode.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "catalog/pg_class.h"
#include "access/htup_details.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"
#include "plan_map.h"

/* maps: PlannedStmt -> its FeedbackMap */
typedef struct MapEntry
{
	const PlannedStmt *stmt;	/* hash key: must be first */
	FeedbackMap *map;
} MapEntry;

static HTAB *maps = NULL;

static void remember_recent(const PlannedStmt *stmt, FeedbackMap *m);
static void register_map(const PlannedStmt *stmt, FeedbackMap *m);
static void forget_recent(const FeedbackMap *m);

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
 * had from this backend (pilotd_text_sent()), so planning a statement
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
	bool		want_text;		/* pilotd catalogs key texts (pilotd_wants_text()) */
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
			fn->native_rows = (e->pg_rows < 0 && !b->rs->any_answered) ? e->native_rows : e->pg_rows;
			fn->pilot_rows = e->answered ? e->rows : -1;
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
			b.want_text = pilotd_wants_text();
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
FeedbackMap *
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

FeedbackMap *
map_for(const PlannedStmt *stmt)
{
	MapEntry   *e;

	if (maps == NULL || stmt == NULL)
		return NULL;
	e = (MapEntry *) hash_search(maps, &stmt, HASH_FIND, NULL);
	return e ? e->map : NULL;
}

const FeedbackNode *
node_entry(const FeedbackMap *m, int plan_node_id)
{
	for (int i = 0; i < m->n; i++)
		if (m->nodes[i].plan_node_id == plan_node_id)
			return &m->nodes[i];
	return NULL;
}
