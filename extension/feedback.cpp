/*
 * feedback.cpp — execution feedback: what each relation set of a plan really
 * produced, sent to pilotd without slowing the query.
 *
 * Planning end: pg_pilot maps the plan's scan and join nodes to their keyed
 * relation sets (plan_map.cpp, plan_map.h); this file reads those maps.
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

#include "access/xact.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "executor/hashjoin.h"
#include "optimizer/optimizer.h"
#include "executor/instrument.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
}

#include "pg_pilot.h"
#include "pilot_protocol.h"
#include "plan_map.h"

using pilot::proto::FeedbackRecord;

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

static Collecting *collecting = NULL;

static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;

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
	pilotd_push_feedback(w.recs, w.n);
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
