/*
 * plan_map.h — a plan's map from its nodes to their keyed relation sets,
 * shared by plan_map.cpp (which builds and finds the maps) and feedback.cpp
 * (which reads them in the executor hooks).  Internal to the extension.
 *
 * Include after postgres.h, like pg_pilot.h.
 */
#ifndef PG_PILOT_PLAN_MAP_H
#define PG_PILOT_PLAN_MAP_H

extern "C" {
#include "nodes/plannodes.h"
}

#include "pilot_protocol.h"

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

/* stmt's map (its own, or adopted by adopt_copy()), or NULL */
extern FeedbackMap *map_for(const PlannedStmt *stmt);
/* a plancache copy of a plan remembered a moment ago: its own map, or NULL */
extern FeedbackMap *adopt_copy(const PlannedStmt *stmt);
/* the map's entry of a plan node, or NULL */
extern const FeedbackNode *node_entry(const FeedbackMap *m, int plan_node_id);

#endif
