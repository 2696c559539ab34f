/*
 * planner_internal.h — what the planner side's files share among themselves:
 * planner_hooks.cpp (hooks, per-planning state), relset_estimates.cpp (keys,
 * the known-sets filter, round trips, base relations) and join_prefetch.cpp
 * (the join sets asked for ahead).  Not part of the extension's interface
 * (pg_pilot.h); everything else in those files stays static.
 *
 * Include after pg_pilot.h.  All of it runs inside a planning that pg_pilot
 * takes part in, in the planning's memory context (qs->cxt).
 */
#ifndef PG_PILOT_PLANNER_INTERNAL_H
#define PG_PILOT_PLANNER_INTERNAL_H

/* ---- planner_hooks.cpp: per-planning state ---- */
extern uint64 work_spent(const PilotQueryState *qs);
extern bool budget_spent(const PilotQueryState *qs);
extern PilotEstimate *estimate_entry(PilotRootState *rs, Relids relids, double native_rows);
extern bool run_guarded(PilotQueryState *qs, void (*work) (void *arg), void *arg, const char *what);
extern struct RelsetCatalog *root_catalog(PilotQueryState *qs, PilotRootState *rs);

/* ---- relset_estimates.cpp: keys, asks and bookkeeping ---- */
extern bool key_entry(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e, bool want_text,
					  bool want_template, RelsetKey *k);
extern bool key_for_ask(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e, bool want_text);
extern bool want_key_text(PilotQueryState *qs);
extern void apply_model_band(PilotEstimate *e);
extern void finish_entry(PilotQueryState *qs, PilotRootState *rs, PilotEstimate *e);
extern bool pilotd_usable(PilotQueryState *qs, PilotFallback *reason);
extern void ask_pilotd(PilotQueryState *qs, PilotEstimate **entries, int n);
extern double parallel_divisor(Path *path);
extern void apply_base_rows(RelOptInfo *rel, double rows);
extern int	filter_known(PilotQueryState *qs, PilotRootState *rs, PilotEstimate **entries, int n);
extern void fetch_base_estimates(PilotQueryState *qs, PilotRootState *rs);

/* ---- join_prefetch.cpp: the join sets asked for ahead ---- */
extern void prefetch_join_estimates(PilotQueryState *qs, PilotRootState *rs);
extern bool enumerated_set(const PilotRootState *rs, Relids relids);

#endif
