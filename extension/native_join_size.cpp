/*
 * native_join_size.cpp — PostgreSQL's own row estimate of a join relation the
 * planner has not built yet.
 *
 * pg_pilot asks pilotd for all join sets of a query level at its first join,
 * before the planner has sized them.  The learned model corrects PostgreSQL's
 * estimate far better than it estimates from scratch, so the backend computes
 * that estimate itself: for a set S = O + {r} (O connected, r one base
 * relation), exactly what set_joinrel_size_estimates() computes when the
 * planner first builds S from O and r — foreign-key selectivity and
 * clauselist_selectivity() over the join clauses that O and r bring together,
 * the equi-joins generated from equivalence classes as the planner generates
 * them — on scratch RelOptInfos, so the planner's own relations are untouched,
 * and from PostgreSQL's own estimates of O and r (never learned rows).
 *
 * The result is the model's input and the "native" rows of the execution
 * feedback, the same number at training and at serving.  The planner may build
 * S from another pair first; its estimate can then differ a little, as the
 * planner's own does between pairs.
 *
 * Only inner joins are sized here: a query level with outer, semi or anti
 * joins, lateral references or placeholders gets no estimate (the caller keeps
 * "unknown").  PostgreSQL functions called here may raise ERRORs: the caller
 * runs this inside a subtransaction.
 */
extern "C" {
#include "postgres.h"

#include "nodes/pathnodes.h"
#include "optimizer/cost.h"
#include "optimizer/paths.h"
}

#include "pg_pilot.h"

bool
pilot_native_join_sizable(PlannerInfo *root)
{
	return root->join_info_list == NIL && !root->hasLateralRTEs &&
		root->placeholder_list == NIL;
}

/* The join clauses that become restrictions when O and r are joined. */
static List *
joining_clauses(PlannerInfo *root, Relids set, Relids outer, RelOptInfo *inner)
{
	List	   *clauses = generate_join_implied_equalities(root, set, outer, inner);
	int			x = -1;

	/* other join clauses sit in each member's joininfo: those O and r complete */
	while ((x = bms_next_member(set, x)) >= 0)
	{
		RelOptInfo *rel = root->simple_rel_array[x];
		ListCell   *lc;

		foreach(lc, rel->joininfo)
		{
			RestrictInfo *ri = (RestrictInfo *) lfirst(lc);

			if (bms_is_subset(ri->required_relids, set) &&
				!bms_is_subset(ri->required_relids, outer))
				clauses = list_append_unique_ptr(clauses, ri);
		}
	}
	return clauses;
}

double
pilot_native_join_rows(PlannerInfo *root, Relids outer, double outer_rows,
					   int inner_relid, double inner_rows)
{
	RelOptInfo *base;
	RelOptInfo *joinrel;
	RelOptInfo *o;
	RelOptInfo *i;
	SpecialJoinInfo *sj;
	Relids		set;
	List	   *clauses;

	if (inner_relid <= 0 || inner_relid >= root->simple_rel_array_size ||
		!(outer_rows > 0) || !(inner_rows > 0))
		return -1;
	base = root->simple_rel_array[inner_relid];
	if (base == NULL || base->reloptkind != RELOPT_BASEREL ||
		bms_is_member(inner_relid, outer))
		return -1;
	set = bms_add_member(bms_copy(outer), inner_relid);
	clauses = joining_clauses(root, set, outer, base);

	/* as make_join_rel() describes a plain inner join */
	sj = makeNode(SpecialJoinInfo);
	sj->min_lefthand = outer;
	sj->min_righthand = base->relids;
	sj->syn_lefthand = outer;
	sj->syn_righthand = base->relids;
	sj->jointype = JOIN_INNER;

	o = makeNode(RelOptInfo);
	o->reloptkind = bms_membership(outer) == BMS_SINGLETON ? RELOPT_BASEREL : RELOPT_JOINREL;
	o->relids = outer;
	o->rows = outer_rows;
	i = makeNode(RelOptInfo);
	i->reloptkind = RELOPT_BASEREL;
	i->relids = base->relids;
	i->relid = base->relid;
	i->rows = inner_rows;
	joinrel = makeNode(RelOptInfo);
	joinrel->reloptkind = RELOPT_JOINREL;
	joinrel->relids = set;

	set_joinrel_size_estimates(root, joinrel, o, i, sj, clauses);
	return joinrel->rows;
}
