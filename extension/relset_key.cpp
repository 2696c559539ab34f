/*
 * relset_key.cpp — describes a relation set of a planning (a base or join
 * relation) as a pilot::KeyDesc, from which common/subplan_key derives the
 * canonical subplan key.
 *
 * Per PlannerInfo we build a catalog once (the first time the hooks need a
 * key), holding every piece a relation set's description is made of, already
 * serialised into KeyNode trees:
 *   - per base relation: its table and its restriction clauses (baserestrictinfo,
 *     including what equivalence classes derived from constants);
 *   - join clauses (joininfo) with the relids they need;
 *   - equivalence classes: members per relation.  An equi-join is described by
 *     the class's members inside the set, "EQ(t1.a, t2.b, ...)", so it does not
 *     matter which of the equivalent join clauses the planner generated;
 *   - outer/semi/anti joins: kind and minimal sides.
 * A set's description is then a cheap selection from the catalog.
 *
 * Only plain tables (and materialized views, partitioned and foreign tables)
 * are keyed.  Anything we cannot describe faithfully — subqueries, functions,
 * Params, sub-plans, CASE, placeholders — makes the sets that contain it
 * "unkeyable": they keep PostgreSQL's estimate.
 *
 * Constants of types whose text output depends on session settings (DateStyle,
 * TimeZone, IntervalStyle, extra_float_digits, bytea_output, lc_monetary) are
 * rendered from their binary send form, so a key does not change with them.
 *
 * Everything here is palloc'd in the caller's memory context and uses no C++
 * object with a destructor: PostgreSQL calls below may raise ERRORs, which the
 * caller (planner_hooks.cpp) catches.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "optimizer/pathnode.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
}

#include "grow_cache.h"
#include "key_bridge.h"
#include "pg_pilot.h"
#include "pilot_protocol.h"
#include "subplan_key.h"

using pilot::KeyDesc;
using pilot::KeyNode;

typedef struct CatRel
{
	bool		present;		/* a base relation of this planning */
	const char *problem;		/* non-NULL: sets containing it are unkeyable */
	const char *table;
	uint64		table_hash;		/* stable_hash64(table): see relset_table_set() */
	List	   *clauses;		/* KeyNode * */
} CatRel;

typedef struct CatClause
{
	Relids		relids;			/* the set must contain these */
	const KeyNode *node;		/* NULL: could not serialise (poison) */
	const char *problem;
} CatClause;

typedef struct CatMember
{
	Relids		relids;
	const KeyNode *node;		/* NULL: poison */
} CatMember;

typedef struct CatEC
{
	int			nmembers;
	CatMember  *members;
} CatEC;

struct RelsetCatalog
{
	PlannerInfo *root;
	int			nrels;			/* simple_rel_array_size */
	CatRel	   *rels;
	List	   *clauses;		/* CatClause *: join clauses and special joins */
	List	   *ecs;			/* CatEC * */
};

/* ---------------------------------------------------------------------
 * Expression serialisation
 * --------------------------------------------------------------------- */

typedef struct SerCtx
{
	PlannerInfo *root;
	const char *problem;
} SerCtx;

static KeyNode *
make_node(int kind, const char *text)
{
	KeyNode    *n = (KeyNode *) palloc0(sizeof(KeyNode));

	n->kind = kind;
	n->text = text;
	/* hashed once here, not in every set keyed from the catalog */
	n->text_hash = pilot::key_node_text_hash(text);
	n->rel = -1;
	return n;
}

static KeyNode *
make_call(const char *name, uint32 flags, int nargs, KeyNode **args)
{
	KeyNode    *n = make_node(pilot::KN_CALL, name);

	n->flags = flags;
	n->nargs = nargs;
	n->args = (const KeyNode *const *) args;
	return n;
}

static KeyNode *serialize(SerCtx *ctx, Node *node);

static KeyNode *
serialize_args(SerCtx *ctx, const char *name, uint32 flags, List *args)
{
	int			n = list_length(args);
	KeyNode   **a = (KeyNode **) palloc0(sizeof(KeyNode *) * (n > 0 ? n : 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, args)
	{
		a[i] = serialize(ctx, (Node *) lfirst(lc));
		if (a[i] == NULL)
			return NULL;
		i++;
	}
	return make_call(name, flags, n, a);
}

/*
 * Whether a type's text output may depend on session settings (DateStyle,
 * IntervalStyle, TimeZone, extra_float_digits, lc_monetary, bytea_output):
 * such constants are keyed by their binary send form instead.  Decided by the
 * base type's category, so domains, arrays and ranges over such types count.
 */
static bool
type_output_is_setting_dependent(Oid typid)
{
	Oid			elem;
	char		category;
	bool		preferred;

	typid = getBaseType(typid);
	elem = get_element_type(typid);
	if (OidIsValid(elem))
		typid = getBaseType(elem);
	switch (typid)
	{
		case FLOAT4OID:
		case FLOAT8OID:
		case CASHOID:
		case BYTEAOID:
			return true;
		default:
			break;
	}
	get_type_category_preferred(typid, &category, &preferred);
	switch (category)
	{
		case TYPCATEGORY_DATETIME:
		case TYPCATEGORY_TIMESPAN:
		case TYPCATEGORY_GEOMETRIC:
		case TYPCATEGORY_RANGE:
		case TYPCATEGORY_COMPOSITE:
			return true;
		default:
			return false;
	}
}

static const char *
render_const(Const *c)
{
	char	   *type = format_type_be_qualified(c->consttype);

	if (c->constisnull)
		return psprintf("NULL::%s", type);
	if (type_output_is_setting_dependent(c->consttype))
	{
		Oid			sendfn;
		bool		isvarlena;
		bytea	   *bin;
		StringInfoData s;
		const unsigned char *p;
		int			len;

		getTypeBinaryOutputInfo(c->consttype, &sendfn, &isvarlena);
		if (!OidIsValid(sendfn))
			return psprintf("%s::%s", quote_literal_cstr(type), type);	/* unreachable for these */
		bin = OidSendFunctionCall(sendfn, c->constvalue);
		p = (const unsigned char *) VARDATA(bin);
		len = VARSIZE(bin) - VARHDRSZ;
		initStringInfo(&s);
		appendStringInfoString(&s, "X'");
		for (int i = 0; i < len; i++)
			appendStringInfo(&s, "%02x", p[i]);
		appendStringInfo(&s, "'::%s", type);
		return s.data;
	}
	else
	{
		Oid			outfn;
		bool		isvarlena;

		getTypeOutputInfo(c->consttype, &outfn, &isvarlena);
		return psprintf("%s::%s",
						quote_literal_cstr(OidOutputFunctionCall(outfn, c->constvalue)),
						type);
	}
}

static const char *
function_name(Oid funcid)
{
	char	   *name = get_func_name(funcid);
	Oid			nsp;

	if (name == NULL)
		return NULL;
	nsp = get_func_namespace(funcid);
	if (nsp != PG_CATALOG_NAMESPACE)
	{
		char	   *nspname = get_namespace_name(nsp);

		if (nspname != NULL)
			return quote_qualified_identifier(nspname, name);
	}
	return quote_identifier(name);
}

/* An operator, schema-qualified with its argument types: "pg_catalog.=(integer,integer)". */
static const char *
operator_name(Oid opno)
{
	return format_operator_extended(opno, FORMAT_OPERATOR_FORCE_QUALIFY);
}

/* name, plus " COLLATE x" when the comparison uses a non-default collation */
static const char *
with_collation(const char *name, Oid collid)
{
	char	   *cname;

	if (!OidIsValid(collid) || collid == DEFAULT_COLLATION_OID)
		return name;
	cname = get_collation_name(collid);
	return psprintf("%s COLLATE %s", name, cname ? quote_identifier(cname) : "?");
}

static KeyNode *
serialize_op(SerCtx *ctx, Oid opno, Oid collid, List *args, const char *prefix)
{
	const char *name = with_collation(operator_name(opno), collid);
	KeyNode    *n;

	if (prefix)
		name = psprintf("%s %s", prefix, name);
	if (list_length(args) == 2)
	{
		Oid			comm = get_commutator(opno);

		n = serialize_args(ctx, name, pilot::KF_INFIX, args);
		if (n != NULL && OidIsValid(comm))
		{
			const char *cname = (comm == opno) ? name
				: with_collation(operator_name(comm), collid);

			n->commutator = (prefix && comm != opno) ? psprintf("%s %s", prefix, cname) : cname;
			n->commutator_hash = pilot::key_node_text_hash(n->commutator);
		}
		return n;
	}
	return serialize_args(ctx, name, 0, args);
}

static KeyNode *
serialize(SerCtx *ctx, Node *node)
{
	if (node == NULL)
	{
		ctx->problem = "empty expression";
		return NULL;
	}
	check_stack_depth();

	switch (nodeTag(node))
	{
		case T_Var:
			{
				Var		   *v = (Var *) node;
				RangeTblEntry *rte;
				KeyNode    *n;
				char	   *att;

				if (v->varlevelsup != 0 || v->varno <= 0 ||
					(int) v->varno >= ctx->root->simple_rel_array_size)
				{
					ctx->problem = "reference to an outer query level";
					return NULL;
				}
				rte = ctx->root->simple_rte_array[v->varno];
				if (rte == NULL || rte->rtekind != RTE_RELATION)
				{
					ctx->problem = "reference to a relation that is not a table";
					return NULL;
				}
				if (v->varattno == 0)
					att = pstrdup("*");
				else
				{
					att = get_attname(rte->relid, v->varattno, true);
					if (att == NULL)
						att = psprintf("attnum%d", (int) v->varattno);
					else
						att = (char *) quote_identifier(att);
				}
				n = make_node(pilot::KN_VAR, att);
				n->rel = (int) v->varno;
				return n;
			}
		case T_Const:
			return make_node(pilot::KN_CONST, render_const((Const *) node));
		case T_OpExpr:
			{
				OpExpr	   *op = (OpExpr *) node;

				return serialize_op(ctx, op->opno, op->inputcollid, op->args, NULL);
			}
		case T_DistinctExpr:
			{
				DistinctExpr *op = (DistinctExpr *) node;

				return serialize_op(ctx, op->opno, op->inputcollid, op->args, "IS DISTINCT FROM");
			}
		case T_NullIfExpr:
			return serialize_args(ctx, "NULLIF", 0, ((NullIfExpr *) node)->args);
		case T_ScalarArrayOpExpr:
			{
				ScalarArrayOpExpr *sa = (ScalarArrayOpExpr *) node;

				return serialize_args(ctx,
									  psprintf("%s %s",
											   with_collation(operator_name(sa->opno), sa->inputcollid),
											   sa->useOr ? "ANY" : "ALL"),
									  0, sa->args);
			}
		case T_BoolExpr:
			{
				BoolExpr   *b = (BoolExpr *) node;

				switch (b->boolop)
				{
					case AND_EXPR:
						return serialize_args(ctx, "AND", pilot::KF_SORT_ARGS, b->args);
					case OR_EXPR:
						return serialize_args(ctx, "OR", pilot::KF_SORT_ARGS, b->args);
					case NOT_EXPR:
						return serialize_args(ctx, "NOT", 0, b->args);
				}
				ctx->problem = "unknown boolean operator";
				return NULL;
			}
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) node;

				return serialize_args(ctx,
									  nt->nulltesttype == IS_NULL ? "IS NULL" : "IS NOT NULL",
									  0, list_make1(nt->arg));
			}
		case T_BooleanTest:
			{
				BooleanTest *bt = (BooleanTest *) node;
				static const char *const names[] = {
					"IS TRUE", "IS NOT TRUE", "IS FALSE", "IS NOT FALSE",
					"IS UNKNOWN", "IS NOT UNKNOWN"
				};

				if ((int) bt->booltesttype < 0 || (int) bt->booltesttype > 5)
				{
					ctx->problem = "unknown boolean test";
					return NULL;
				}
				return serialize_args(ctx, names[bt->booltesttype], 0, list_make1(bt->arg));
			}
		case T_FuncExpr:
			{
				FuncExpr   *f = (FuncExpr *) node;
				const char *name = function_name(f->funcid);

				if (name == NULL)
				{
					ctx->problem = "function without a name";
					return NULL;
				}
				if (f->funcretset)
				{
					ctx->problem = "set-returning function";
					return NULL;
				}
				return serialize_args(ctx, with_collation(name, f->inputcollid), 0, f->args);
			}
		case T_RelabelType:
			{
				/* a binary-compatible cast still changes the operators that apply */
				RelabelType *r = (RelabelType *) node;

				return serialize_args(ctx, psprintf("::%s", format_type_be_qualified(r->resulttype)),
									  0, list_make1(r->arg));
			}
		case T_CollateExpr:
			return serialize(ctx, (Node *) ((CollateExpr *) node)->arg);
		case T_CoerceViaIO:
			{
				CoerceViaIO *c = (CoerceViaIO *) node;

				return serialize_args(ctx, psprintf("::%s", format_type_be_qualified(c->resulttype)), 0,
									  list_make1(c->arg));
			}
		case T_ArrayCoerceExpr:
			{
				ArrayCoerceExpr *c = (ArrayCoerceExpr *) node;

				return serialize_args(ctx, psprintf("::%s", format_type_be_qualified(c->resulttype)), 0,
									  list_make1(c->arg));
			}
		case T_ArrayExpr:
			return serialize_args(ctx, "ARRAY", 0, ((ArrayExpr *) node)->elements);
		case T_RowExpr:
			return serialize_args(ctx, "ROW", 0, ((RowExpr *) node)->args);
		case T_CoalesceExpr:
			return serialize_args(ctx, "COALESCE", 0, ((CoalesceExpr *) node)->args);
		case T_MinMaxExpr:
			{
				MinMaxExpr *m = (MinMaxExpr *) node;

				return serialize_args(ctx, m->op == IS_GREATEST ? "GREATEST" : "LEAST",
									  0, m->args);
			}
		case T_Param:
			ctx->problem = "parameter ($n) in a clause";
			return NULL;
		case T_SubPlan:
		case T_AlternativeSubPlan:
		case T_SubLink:
			ctx->problem = "sub-query in a clause";
			return NULL;
		case T_PlaceHolderVar:
			ctx->problem = "placeholder variable";
			return NULL;
		default:
			ctx->problem = "unsupported expression";
			return NULL;
	}
}

/* ---------------------------------------------------------------------
 * Catalog
 * --------------------------------------------------------------------- */

static const char *
table_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);
	char	   *nsp;

	if (rel == NULL)
		return NULL;
	nsp = get_namespace_name(get_rel_namespace(relid));
	if (nsp == NULL)
		return NULL;
	return quote_qualified_identifier(nsp, rel);
}

/* A join clause; one from an outer join's ON (not pushed down) filters
 * differently from the same condition in WHERE, so it is marked "ON(...)". */
static void
add_clause(RelsetCatalog *cat, SerCtx *ctx, Relids relids, Node *clause, bool pushed_down)
{
	CatClause  *cc = (CatClause *) palloc0(sizeof(CatClause));

	ctx->problem = NULL;
	cc->relids = relids;
	cc->node = serialize(ctx, clause);
	if (cc->node != NULL && !pushed_down)
	{
		KeyNode   **a = (KeyNode **) palloc(sizeof(KeyNode *));

		a[0] = (KeyNode *) cc->node;
		cc->node = make_call("ON", 0, 1, a);
	}
	cc->problem = ctx->problem;
	cat->clauses = lappend(cat->clauses, cc);
}

static KeyNode *
rel_star(int rti)
{
	KeyNode    *n = make_node(pilot::KN_VAR, "*");

	n->rel = rti;
	return n;
}

static KeyNode *
relids_node(const char *name, Relids relids)
{
	int			n = bms_num_members(relids);
	KeyNode   **a = (KeyNode **) palloc0(sizeof(KeyNode *) * (n > 0 ? n : 1));
	int			i = 0;
	int			x = -1;

	while ((x = bms_next_member(relids, x)) >= 0)
		a[i++] = rel_star(x);
	return make_call(name, pilot::KF_SORT_ARGS, n, a);
}

RelsetCatalog *
relset_catalog_build(PlannerInfo *root, const char **problem)
{
	RelsetCatalog *cat = (RelsetCatalog *) palloc0(sizeof(RelsetCatalog));
	SerCtx		ctx;
	List	   *seen = NIL;
	ListCell   *lc;

	ctx.root = root;
	ctx.problem = NULL;
	cat->root = root;
	cat->nrels = root->simple_rel_array_size;
	cat->rels = (CatRel *) palloc0(sizeof(CatRel) * (cat->nrels > 0 ? cat->nrels : 1));
	*problem = NULL;

	for (int i = 1; i < cat->nrels; i++)
	{
		RelOptInfo *rel = root->simple_rel_array[i];
		RangeTblEntry *rte = root->simple_rte_array[i];
		CatRel	   *cr = &cat->rels[i];

		if (rel == NULL || rel->reloptkind != RELOPT_BASEREL || rte == NULL)
			continue;
		cr->present = true;
		if (rte->rtekind != RTE_RELATION)
		{
			cr->problem = "not a table (sub-query, function, values or CTE)";
			continue;
		}
		if (rte->tablesample != NULL)
		{
			cr->problem = "TABLESAMPLE";
			continue;
		}
		cr->table = table_name(rte->relid);
		if (cr->table == NULL)
		{
			cr->problem = "table without a name";
			continue;
		}
		/* "t" with inheritance children differs from "ONLY t" ("t*", as in old SQL) */
		if (rte->inh)
			cr->table = psprintf("%s*", cr->table);
		cr->table_hash = pilot::proto::stable_hash64(cr->table, strlen(cr->table));
		foreach(lc, rel->baserestrictinfo)
		{
			RestrictInfo *ri = (RestrictInfo *) lfirst(lc);
			KeyNode    *n;

			ctx.problem = NULL;
			n = serialize(&ctx, (Node *) ri->clause);
			if (n == NULL)
			{
				cr->problem = ctx.problem;
				break;
			}
			cr->clauses = lappend(cr->clauses, n);
		}
		/* join clauses, each once (a clause sits in every member's joininfo) */
		foreach(lc, rel->joininfo)
		{
			RestrictInfo *ri = (RestrictInfo *) lfirst(lc);

			if (list_member_ptr(seen, ri))
				continue;
			seen = lappend(seen, ri);
			add_clause(cat, &ctx, bms_union(ri->required_relids, ri->clause_relids),
					   (Node *) ri->clause, ri->is_pushed_down);
		}
	}

	/* equivalence classes: equi-joins described by their members */
	foreach(lc, root->eq_classes)
	{
		EquivalenceClass *ec = (EquivalenceClass *) lfirst(lc);
		CatEC	   *ce;
		ListCell   *lm;
		int			n = 0;

		if (ec->ec_broken || ec->ec_has_volatile)
			continue;			/* broken ECs put their clauses back in joininfo */
		ce = (CatEC *) palloc0(sizeof(CatEC));
		ce->members = (CatMember *) palloc0(sizeof(CatMember) *
											(list_length(ec->ec_members) + 1));
		foreach(lm, ec->ec_members)
		{
			EquivalenceMember *em = (EquivalenceMember *) lfirst(lm);

			if (em->em_is_child || em->em_is_const || bms_is_empty(em->em_relids))
				continue;
			ctx.problem = NULL;
			ce->members[n].relids = em->em_relids;
			ce->members[n].node = serialize(&ctx, (Node *) em->em_expr);
			n++;
		}
		ce->nmembers = n;
		if (n >= 2)
			cat->ecs = lappend(cat->ecs, ce);
	}

	/* outer, semi and anti joins change a set's size: record kind and sides */
	foreach(lc, root->join_info_list)
	{
		SpecialJoinInfo *sj = (SpecialJoinInfo *) lfirst(lc);
		const char *kind;
		KeyNode   **a;
		CatClause  *cc;

		switch (sj->jointype)
		{
			case JOIN_LEFT: kind = "LEFT JOIN"; break;
			case JOIN_FULL: kind = "FULL JOIN"; break;
			case JOIN_SEMI: kind = "SEMI JOIN"; break;
			case JOIN_ANTI: kind = "ANTI JOIN"; break;
			default: kind = "JOIN"; break;
		}
		a = (KeyNode **) palloc0(sizeof(KeyNode *) * 2);
		a[0] = relids_node("L", sj->min_lefthand);
		a[1] = relids_node("R", sj->min_righthand);
		cc = (CatClause *) palloc0(sizeof(CatClause));
		cc->relids = bms_union(sj->min_lefthand, sj->min_righthand);
		cc->node = make_call(kind, 0, 2, a);
		cat->clauses = lappend(cat->clauses, cc);
	}
	return cat;
}

/* keys computed since relset_keys_take() last ran (pg_pilot.stats) */
static uint64 keys_computed = 0;

/*
 * The keys this backend computed, by the fingerprint of their description
 * (subplan_desc_fingerprint(): the same query planned again describes its
 * sets the same way).  A repeated statement's sets cost a pass over their
 * description instead of a canonicalisation.  Direct-mapped (grow_cache.h);
 * only for keys asked without their text (or RELSET_TEXT_IF_COMPUTED).
 */
#define KEY_MEMO_SIZE 4096
typedef struct KeyMemo
{
	uint64		fingerprint;	/* 0: empty */
	uint64		key;
	uint64		template_key;
	unsigned	parts;			/* which of the two are filled in */
} KeyMemo;
static GrowCache<KeyMemo, KEY_MEMO_SIZE> key_memo;

uint64
relset_keys_take(void)
{
	uint64		n = keys_computed;

	keys_computed = 0;
	return n;
}

/* Builds the description of `relids` and computes its key. */
bool
relset_key_for(RelsetCatalog *cat, Relids relids, bool want_text, unsigned parts, RelsetKey *out)
{
	int			nrels = bms_num_members(relids);
	int		   *ids;
	const char **tables;
	List	   *clauses = NIL;
	ListCell   *lc;
	int			i = 0;
	int			x = -1;
	KeyDesc		desc;
	const char *text = NULL;
	const char *ttext = NULL;
	const char *error = NULL;
	uint64_t	key = 0;
	uint64_t	tkey = 0;

	memset(out, 0, sizeof(*out));
	if (cat == NULL || nrels == 0)
	{
		out->problem = "no relations";
		return false;
	}
	ids = (int *) palloc(sizeof(int) * nrels);
	tables = (const char **) palloc(sizeof(char *) * nrels);
	while ((x = bms_next_member(relids, x)) >= 0)
	{
		CatRel	   *cr = (x < cat->nrels) ? &cat->rels[x] : NULL;

		if (cr == NULL || !cr->present)
		{
			out->problem = "not a base relation of this query level";
			return false;
		}
		if (cr->problem != NULL)
		{
			out->problem = cr->problem;
			return false;
		}
		ids[i] = x;
		tables[i] = cr->table;
		i++;
		clauses = list_concat(clauses, cr->clauses);
	}
	foreach(lc, cat->clauses)
	{
		CatClause  *cc = (CatClause *) lfirst(lc);

		if (!bms_is_subset(cc->relids, relids) || bms_membership(cc->relids) != BMS_MULTIPLE)
			continue;
		if (cc->node == NULL)
		{
			out->problem = cc->problem ? cc->problem : "unsupported join clause";
			return false;
		}
		clauses = lappend(clauses, (void *) cc->node);
	}
	foreach(lc, cat->ecs)
	{
		CatEC	   *ce = (CatEC *) lfirst(lc);
		KeyNode   **a = (KeyNode **) palloc(sizeof(KeyNode *) * ce->nmembers);
		int			n = 0;

		for (int m = 0; m < ce->nmembers; m++)
		{
			if (!bms_is_subset(ce->members[m].relids, relids))
				continue;
			if (ce->members[m].node == NULL)
			{
				out->problem = "unsupported equivalence member";
				return false;
			}
			a[n++] = (KeyNode *) ce->members[m].node;
		}
		if (n >= 2)
			clauses = lappend(clauses, make_call("EQ", pilot::KF_SORT_ARGS, n, a));
	}

	desc.nrels = nrels;
	desc.rel_ids = ids;
	desc.tables = tables;
	desc.nclauses = list_length(clauses);
	{
		const KeyNode **arr = (const KeyNode **) palloc(sizeof(KeyNode *) *
														(desc.nclauses > 0 ? desc.nclauses : 1));

		i = 0;
		foreach(lc, clauses)
			arr[i++] = (const KeyNode *) lfirst(lc);
		desc.clauses = arr;
	}
	static_assert(RELSET_KEY == pilot::KEY_PART_KEY && RELSET_TEMPLATE == pilot::KEY_PART_TEMPLATE, "key parts");
	{
		uint64		fp = pilot_key_fingerprint(&desc);
		KeyMemo    *m = key_memo.find(fp);

		const bool memo_ok = !want_text || (parts & RELSET_TEXT_IF_COMPUTED);

		parts &= RELSET_KEY | RELSET_TEMPLATE;
		if (memo_ok && fp != 0 && m != NULL && m->fingerprint == fp && (m->parts & parts) == parts)
		{
			out->key = (parts & RELSET_KEY) ? m->key : 0;
			out->template_key = (parts & RELSET_TEMPLATE) ? m->template_key : 0;
			return true;
		}
		if (!pilot_key_compute(&desc, parts, &key, &tkey, &text, &ttext, &error))
		{
			out->problem = "malformed relation set description";
			return false;
		}
		if (fp != 0 && (m == NULL || m->fingerprint != fp) && (m = key_memo.claim(fp)) != NULL)
		{
			m->fingerprint = fp;
			m->parts = 0;
		}
		if (fp != 0 && m != NULL)
		{
			if (parts & RELSET_KEY)
				m->key = key;
			if (parts & RELSET_TEMPLATE)
				m->template_key = tkey;
			m->parts |= parts;
		}
	}
	out->key = key;
	out->template_key = tkey;
	if (parts & RELSET_KEY)
		keys_computed++;
	if (want_text)
	{
		/* copy out of the bridge's static storage before anything else runs */
		out->text = pstrdup(text);
		out->template_text = pstrdup(ttext);
	}
	return true;
}

bool
relset_key_text_once(RelsetCatalog *cat, Relids relids, unsigned parts, RelsetKey *out)
{
	if (!relset_key_for(cat, relids, true, parts | RELSET_TEXT_IF_COMPUTED, out))
		return false;
	if (out->template_text != NULL)
	{
		pfree(out->template_text);
		out->template_text = NULL;
	}
	if (pilotd_text_sent(out->key))
	{
		if (out->text != NULL)
			pfree(out->text);
		out->text = NULL;
	}
	else if (out->text == NULL)
	{
		/* from the memo, but pilotd has not had the text (rare) */
		RelsetKey	t;

		if (relset_key_for(cat, relids, true, RELSET_KEY, &t))
		{
			out->text = t.text;
			if (t.template_text != NULL)
				pfree(t.template_text);
		}
	}
	return true;
}

/* Adds relation x's table to a table set; false when x cannot be keyed. */
static bool
add_table(RelsetCatalog *cat, int x, uint64 *acc)
{
	CatRel	   *cr = (x < cat->nrels) ? &cat->rels[x] : NULL;

	if (cr == NULL || !cr->present || cr->problem != NULL)
		return false;
	*acc = pilot::proto::table_set_add(*acc, cr->table_hash);
	return true;
}

/*
 * The set's tables as one number (proto::table_set_finish()), as the memo
 * and the oracle record it: what the known-sets filter is asked about
 * before any key is computed.  0 when some relation cannot be keyed.
 */
uint64
relset_table_set(RelsetCatalog *cat, Relids relids)
{
	uint64		acc = 0;
	int			x = -1;

	if (cat == NULL || relids == NULL)
		return 0;
	while ((x = bms_next_member(relids, x)) >= 0)
		if (!add_table(cat, x, &acc))
			return 0;
	return pilot::proto::table_set_finish(acc);
}

/* The same for a set given as bits of range-table indexes (< 64). */
uint64
relset_table_set_bits(RelsetCatalog *cat, uint64 bits)
{
	uint64		acc = 0;

	for (; bits != 0; bits &= bits - 1)
		if (!add_table(cat, __builtin_ctzll(bits), &acc))
			return 0;
	return pilot::proto::table_set_finish(acc);
}

/*
 * Join graph of the base relations (range-table indexes < 64): for each
 * relation, the relations it shares a join clause, an equivalence class or an
 * outer/semi/anti join with.  False when some relation's index is >= 64.
 */
bool
relset_join_graph(RelsetCatalog *cat, uint64 *adjacency, uint64 *present)
{
	ListCell   *lc;

	*present = 0;
	for (int i = 0; i < 64; i++)
		adjacency[i] = 0;
	for (int i = 1; i < cat->nrels; i++)
	{
		if (!cat->rels[i].present)
			continue;
		if (i >= 64)
			return false;
		if (cat->rels[i].problem == NULL)
			*present |= UINT64CONST(1) << i;
	}
	foreach(lc, cat->clauses)
	{
		CatClause  *cc = (CatClause *) lfirst(lc);
		int			a = -1;

		while ((a = bms_next_member(cc->relids, a)) >= 0 && a < 64)
		{
			int			b = -1;

			while ((b = bms_next_member(cc->relids, b)) >= 0 && b < 64)
				if (a != b)
					adjacency[a] |= UINT64CONST(1) << b;
		}
	}
	foreach(lc, cat->ecs)
	{
		CatEC	   *ce = (CatEC *) lfirst(lc);
		uint64		members = 0;

		for (int m = 0; m < ce->nmembers; m++)
		{
			int			x = -1;

			while ((x = bms_next_member(ce->members[m].relids, x)) >= 0)
				if (x < 64)
					members |= UINT64CONST(1) << x;
		}
		for (int x = 0; x < 64; x++)
			if (members & (UINT64CONST(1) << x))
				adjacency[x] |= members & ~(UINT64CONST(1) << x);
	}
	return true;
}

char *
relset_label(PlannerInfo *root, Relids relids)
{
	StringInfoData s;
	int			x = -1;

	initStringInfo(&s);
	while ((x = bms_next_member(relids, x)) >= 0)
	{
		RangeTblEntry *rte = (x < root->simple_rel_array_size) ? root->simple_rte_array[x] : NULL;

		if (s.len > 0)
			appendStringInfoString(&s, " ");
		if (rte != NULL && rte->eref != NULL && rte->eref->aliasname != NULL)
			appendStringInfoString(&s, rte->eref->aliasname);
		else
			appendStringInfo(&s, "#%d", x);
	}
	return s.data;
}
