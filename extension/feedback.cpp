/*
 * feedback.cpp — execution feedback: what each relation set of a plan really
 * produced, sent to pilotd without slowing the query.
 *
 * Planning end (pilot_feedback_remember): for the plan of a top-level query
 * level, every scan and join node whose relation set pg_pilot keyed gets an
 * entry (plan_node_id -> key, template, PostgreSQL's and pg_pilot's estimates).
 * The map lives in the PlannedStmt's own memory context, found through a
 * backend-local hash keyed by the PlannedStmt, and a reset callback on that
 * context removes the hash entry.  Plans the plancache copies (prepared
 * statements, PL/pgSQL) are not mapped yet: their copies find no map.
 *
 * ExecutorStart: for a sampled query (pg_pilot.collect_feedback,
 * pg_pilot.feedback_sample_rate) with a map, turn on row counting (no timing)
 * for the mapped nodes only — for the whole query if it runs parallel workers,
 * which count only then.  Not for EXPLAIN without ANALYZE.
 * ExecutorRun: a run with a row limit (cursor fetch) makes counts partial: such
 * queries send nothing.
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

#include "access/xact.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "executor/hashjoin.h"
#include "optimizer/optimizer.h"
#include "executor/instrument.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"

using pilot::proto::FeedbackRecord;

typedef struct FeedbackNode
{
	int			plan_node_id;
	uint32		nrels;
	uint64		key;
	uint64		template_key;
	double		native_rows;
	double		pilot_rows;
	char		relations[pilot::proto::kRelationsLen];	/* "a, b, c" */
} FeedbackNode;

typedef struct FeedbackMap
{
	const PlannedStmt *stmt;	/* hash key: must be first */
	double		planning_ms;
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
}

typedef struct MapBuild
{
	PilotRootState *rs;
	List	   *nodes;			/* FeedbackNode * */
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

		if (e != NULL && e->key != 0)
		{
			FeedbackNode *fn = (FeedbackNode *) palloc(sizeof(FeedbackNode));

			fn->plan_node_id = plan->plan_node_id;
			fn->nrels = (uint32) bms_num_members(relids);
			fn->key = e->key;
			fn->template_key = e->template_key;
			fn->native_rows = e->native_rows;
			fn->pilot_rows = e->learned ? e->rows : -1;
			relset_names(b->rs->root, relids, fn->relations, sizeof fn->relations);
			b->nodes = lappend(b->nodes, fn);
		}
	}
	return relids;
}

void
pilot_feedback_remember(PilotQueryState *qs, PlannedStmt *stmt, double planning_ms)
{
	PilotRootState *top = NULL;
	MapBuild	b;
	MemoryContext stmt_cxt;
	MemoryContext old;
	FeedbackMap *m;
	bool		found;
	int			i;
	ListCell   *lc;

	if (!pilot_collect_feedback || pilot_feedback_sample_rate <= 0 || stmt == NULL ||
		stmt->commandType == CMD_UTILITY)
		return;
	for (PilotRootState *rs = qs->roots; rs != NULL; rs = rs->next)
		if (rs->root->parent_root == NULL)
			top = rs;
	if (top == NULL)
		return;
	b.rs = top;
	b.nodes = NIL;
	(void) plan_relids(&b, stmt->planTree);
	if (b.nodes == NIL)
		return;

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
	/* the map lives and dies with the plan */
	stmt_cxt = GetMemoryChunkContext(stmt);
	old = MemoryContextSwitchTo(stmt_cxt);
	m = (FeedbackMap *) palloc0(sizeof(FeedbackMap));
	m->stmt = stmt;
	m->planning_ms = planning_ms;
	m->n = list_length(b.nodes);
	m->nodes = (FeedbackNode *) palloc(sizeof(FeedbackNode) * m->n);
	i = 0;
	foreach(lc, b.nodes)
		m->nodes[i++] = *(FeedbackNode *) lfirst(lc);
	m->cb.func = forget_map;
	m->cb.arg = m;
	MemoryContextRegisterResetCallback(stmt_cxt, &m->cb);
	MemoryContextSwitchTo(old);
	{
		MapEntry   *e = (MapEntry *) hash_search(maps, &stmt, HASH_ENTER, &found);

		e->map = m;
	}
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
 * report on (hashes, sorts, aggregates).  A node's instrumented ExecProcNode
 * wrapper is chosen on its first call, so setting node->instrument right after
 * ExecutorStart and re-arming the node is enough.
 */
typedef struct InstrWalk
{
	const FeedbackMap *map;
	MemoryContext cxt;
} InstrWalk;

static bool
instrument_walk(PlanState *ps, void *arg)
{
	InstrWalk  *iw = (InstrWalk *) arg;

	if (ps->instrument == NULL && node_entry(iw->map, ps->plan->plan_node_id) != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(iw->cxt);

		ps->instrument = InstrAlloc(1, INSTRUMENT_ROWS, false);
		MemoryContextSwitchTo(old);
		ExecSetExecProcNode(ps, ps->ExecProcNodeReal);
	}
	return planstate_tree_walker(ps, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)(void)>(instrument_walk)), arg);
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

	if (pilot_collect_feedback && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
		m = map_for(qd->plannedstmt);
	if (m != NULL && !sampled())
		m = NULL;
	/*
	 * Parallel workers count rows only when the whole query is instrumented;
	 * otherwise only the nodes we report on are (see instrument_mapped_nodes).
	 */
	if (m != NULL && qd->plannedstmt->parallelModeNeeded)
		qd->instrument_options |= INSTRUMENT_ROWS;

	if (prev_executor_start)
		prev_executor_start(qd, eflags);
	else
		standard_ExecutorStart(qd, eflags);

	if (m != NULL && qd->planstate != NULL)
		instrument_mapped_nodes(qd, m);
	if (m != NULL)
	{
		Collecting *c = (Collecting *) MemoryContextAllocZero(TopMemoryContext, sizeof(Collecting));

		c->qd = qd;
		c->map = m;
		c->subid = GetCurrentSubTransactionId();
		c->start_us = pilot::proto::monotonic_us();
		c->next = collecting;
		collecting = c;
	}
}

static void
pilot_executor_run(QueryDesc *qd, ScanDirection direction, uint64 count, bool execute_once)
{
	Collecting *c = collecting_entry(qd);

	if (c != NULL && (count != 0 || !ScanDirectionIsForward(direction)))
		c->partial = true;
	if (prev_executor_run)
		prev_executor_run(qd, direction, count, execute_once);
	else
		standard_ExecutorRun(qd, direction, count, execute_once);
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
	/* PG15 declares the walker as bool (*)() */
	r = planstate_tree_walker(ps, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)(void)>(walk_node)), w);
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
	(void) walk_node(qd->planstate, &w);
	{
		FeedbackRecord *q = &w.recs[w.n++];

		q->kind = pilot::proto::FB_QUERY;
		q->query_id = qd->plannedstmt->queryId;
		q->nrels = (uint32) (w.n - 1);	/* relation sets reported */
		q->native_rows = c->map->planning_ms;
		q->pilot_rows = -1;
		q->actual_rows = (double) (pilot::proto::monotonic_us() - c->start_us) / 1000.0;
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
