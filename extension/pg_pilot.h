/*
 * pg_pilot.h — declarations shared by the extension's source files.
 *
 * Include after postgres.h (every .cpp includes PostgreSQL headers first, inside
 * extern "C", and C++ headers after them).
 */
#ifndef PG_PILOT_H
#define PG_PILOT_H

extern "C" {
#include "nodes/pathnodes.h"
#include "utils/hsearch.h"
}

/* ---- parameters (pg_pilot.cpp) ---- */
extern bool pilot_enabled;
extern int pilot_timeout_ms;
extern int pilot_estimator;        /* proto::EstimatorId */
extern bool pilot_log_estimates;
extern int pilot_daemon_stale_ms;
extern int pilot_reattach_interval_ms;
extern bool pilot_collect_feedback;
extern double pilot_feedback_sample_rate;
extern bool pilot_guard;               /* guard.cpp */
extern double pilot_guard_probe_rate;

/* Why a relation set kept PostgreSQL's estimate (also the pg_pilot.stats columns). */
typedef enum PilotFallback
{
	PF_NONE = 0,		/* pilotd's value used */
	PF_TIMEOUT,			/* pilotd did not answer within the query's budget */
	PF_PILOTD_DOWN,		/* no segment, stale heartbeat, pilotd stopping */
	PF_VERSION_MISMATCH,	/* segment of another protocol version / layout */
	PF_UNKNOWN,			/* pilotd answered "don't know" */
	PF_INVALID,			/* response failed validation */
	PF_UNKEYABLE,		/* relation set could not be described (see relset_key.cpp) */
	PF_NO_SLOT,			/* backend id beyond pilotd's slots */
	PF_BUSY,			/* our slot still busy with an abandoned request */
	PF_ERROR,			/* internal error caught and turned into a fallback */
	PF_NUM_REASONS
} PilotFallback;

extern const char *pilot_fallback_name(PilotFallback f);

/* ---- per-planning state (planner_hooks.cpp) ---- */

/* One relation set's estimate, cached per planning by relid set. */
typedef struct PilotEstimate
{
	Relids		relids;			/* hash key: must be first */
	bool		resolved;		/* estimate fetched (or given up) */
	bool		finished;		/* counted, logged and recorded (at first sight) */
	bool		answered;		/* rows is a value from pilotd */
	PilotFallback reason;		/* why not, when !answered */
	uint32		source;			/* proto::Source when answered (oracle, memo or model) */
	double		rows;			/* pilotd's rows (when answered) */
	double		keep_native_within;	/* the model's "unsure" band (EstimateAnswer) */
	double		native_rows;	/* the planner's estimate when first seen */
	double		pg_rows;		/* PostgreSQL's own estimate from its own estimates
								 * of the parts (< 0: unknown): the model's input
								 * and the feedback's native rows.  Base relations:
								 * native_rows; joins: native_join_size.cpp */
	uint64		key;			/* 0 when unkeyable or not keyed (not_asked) */
	uint64		template_key;
	uint64		table_set;		/* relset_table_set(); 0 until computed */
	bool		not_asked;		/* pilotd knows no set of these tables (its
								 * known-sets filter): neither keyed nor asked */
	char	   *key_text;		/* canonical key text to send with the ask, or NULL
								 * (only while a text is wanted; freed once asked) */
	bool		recorded;		/* already added to the explain record */
} PilotEstimate;

struct RelsetCatalog;

/* Per PlannerInfo (each subquery level has its own range table). */
typedef struct PilotRootState
{
	PlannerInfo *root;
	struct RelsetCatalog *catalog;	/* NULL until built; see catalog_failed */
	bool		catalog_failed;
	bool		base_fetched;
	bool		joins_prefetched;
	bool		any_answered;	/* some set of this level was sized with pilotd's rows: the
								 * planner's own estimates of the others are no longer
								 * PostgreSQL's alone (see size_joins) */
	bool		joins_unknown;	/* pilotd may answer no connected join set of this
								 * level (all were enumerated): those get no entry while
								 * planning; the chosen plan's get one for feedback
								 * (pilot_unasked_join_entry) */
	uint64		join_present;	/* with joins_unknown: the join graph the */
	uint64	   *join_adjacency; /* enumeration ran on (bit = range-table index) */
	HTAB	   *estimates;		/* Relids -> PilotEstimate */
	struct PilotRootState *next;
} PilotRootState;

/* One entry of pg_pilot.explain_estimates(). */
typedef struct PilotRecord
{
	char	   *relations;
	int			nrels;
	double		native_rows;
	double		pilot_rows;		/* < 0: none */
	double		used_rows;
	char	   *source;
	uint64		key;
	char	   *key_text;
} PilotRecord;

typedef enum PilotMode
{
	PM_PLAN = 0,				/* normal planning: ask pilotd */
	PM_CAPTURE,					/* derive the key of the whole query, ask nothing */
} PilotMode;

typedef struct PilotQueryState
{
	MemoryContext cxt;
	PilotMode	mode;
	bool		record;			/* collect PilotRecords (explain_estimates) */
	bool		record_texts;	/* ... with their key texts (pg_pilot.subplans) */
	bool		disabled;		/* an internal error or a dead pilotd: stop asking */
	PilotFallback disabled_reason;
	uint64		waited_us;		/* time spent waiting on pilotd so far */
	/* pg_pilot's own time in this planning so far (keys, join sizing, round
	 * trips): pg_pilot.timeout_ms bounds it (planner_hooks.cpp, work_spent()) */
	uint64		work_us;
	uint64		work_since_us;	/* start of the open work region */
	int			work_depth;		/* work regions open (they nest) */
	int			not_asked;		/* relation sets the known-sets filter kept from asking */
	int			model_text;		/* 0: not looked up yet; 1: asks need no key text for
								 * the model; 2: they do (pilotd_model_needs_text) */
	PilotRootState *roots;
	List	   *records;		/* PilotRecord * */
	/* PM_CAPTURE results */
	bool		captured;
	uint64		captured_key;
	uint64		captured_template;
	uint64		captured_table_set;	/* relset_table_set() of the whole query */
	char	   *captured_text;
	char	   *captured_template_text;
	char	   *capture_problem;
	struct PilotQueryState *outer;	/* planner re-entered (e.g. SPI in a function) */
} PilotQueryState;

extern PilotQueryState *pilot_query;	/* innermost planning, or NULL */

extern void pilot_install_planner_hooks(void);
/* pg_pilot's own work in a planning, bounded by pg_pilot.timeout_ms (the
 * work regions nest; planner_hooks.cpp) */
extern void pilot_work_begin(PilotQueryState *qs);
extern void pilot_work_end(PilotQueryState *qs);
extern bool pilot_budget_spent(const PilotQueryState *qs);
/* Sends n entries' key texts (keyed after the planning, for its feedback) to
 * pilotd in one round trip within what is left of the planning's budget;
 * the answers are not used.  Never raises an error. */
extern void pilot_send_key_texts(PilotQueryState *qs, PilotEstimate **entries, int n);
extern PilotEstimate *pilot_unasked_join_entry(PilotQueryState *qs, PilotRootState *rs, Relids relids,
											   double native_rows);

/* ---- execution feedback (feedback.cpp; the plan's map: plan_map.cpp) ---- */
extern void pilot_install_executor_hooks(void);
/* qs NULL: planned without pg_pilot (the guard's native arm); guard_arm: proto::GuardArm */
extern void pilot_feedback_remember(PilotQueryState *qs, struct PlannedStmt *stmt, double planning_ms,
									uint32 guard_arm, bool guard_must_report);

/* ---- the plan guard (guard.cpp) ---- */
/* Which estimates this planning of template query_id uses (proto::GuardArm):
 * ARM_NATIVE means plan without pg_pilot; ARM_UNKNOWN: not guarded.
 * *must_report: the guard needs this run's time (exploring, probing); other
 * runs report it only when sampled (pg_pilot.feedback_sample_rate).  Never
 * raises an error, never waits. */
extern uint32 pilot_guard_arm(uint64 query_id, bool *must_report);
/* the arm a template's cached plans should have been made with: its pin, or
 * its decision once decided; ARM_UNKNOWN while it explores or is unknown */
extern uint32 pilot_guard_settled_arm(uint64 query_id);
extern void pilot_install_guard_hooks(void);

/* Plans `query` (one statement) in the given mode; returns the state it left
 * (allocated in CurrentMemoryContext).  Raises the query's own errors. */
typedef enum PilotRecording
{
	PR_NONE = 0,
	PR_ESTIMATES,				/* a PilotRecord per relation set sized */
	PR_KEY_TEXTS,				/* ... with its canonical key text */
} PilotRecording;

extern PilotQueryState *pilot_plan_query_in_mode(const char *query, PilotMode mode,
												 PilotRecording record);

/* ---- relation-set keys (relset_key.cpp) ---- */
typedef struct RelsetKey
{
	uint64		key;
	uint64		template_key;
	char	   *text;			/* palloc'd canonical text, or NULL if not asked */
	char	   *template_text;
	const char *problem;		/* why no key (static string), when key == 0 */
} RelsetKey;

extern struct RelsetCatalog *relset_catalog_build(PlannerInfo *root, const char **problem);
/* parts: which of the key and the template key to compute (KEY_PART_KEY,
 * KEY_PART_TEMPLATE: each costs as much as the other; asks need the key,
 * execution feedback the template of the chosen plan's sets) */
#define RELSET_KEY 1			/* = pilot::KEY_PART_KEY */
#define RELSET_TEMPLATE 2		/* = pilot::KEY_PART_TEMPLATE */
#define RELSET_TEXT_IF_COMPUTED 4	/* with want_text: a key found in the backend's
									 * memo of keys comes without its text (text
									 * NULL); a key computed comes with it */
extern bool relset_key_for(struct RelsetCatalog *cat, Relids relids, bool want_text,
						   unsigned parts, RelsetKey *out);
/* relset_key_for() with the key text only when pilotd has not had it from
 * this backend (pilotd_text_sent()): out->text NULL otherwise;
 * out->template_text always NULL.  A repeated statement's key comes from
 * the backend's memo of keys. */
extern bool relset_key_text_once(struct RelsetCatalog *cat, Relids relids, unsigned parts, RelsetKey *out);
extern char *relset_label(PlannerInfo *root, Relids relids);
/* Keys (RELSET_KEY) computed since the last call (pg_pilot.stats keys_computed). */
extern uint64 relset_keys_take(void);
/* The set's tables as one number (proto::table_set_finish()); 0 when some
 * relation cannot be keyed.  _bits: range-table indexes < 64 as bits. */
extern uint64 relset_table_set(struct RelsetCatalog *cat, Relids relids);
extern uint64 relset_table_set_bits(struct RelsetCatalog *cat, uint64 bits);
extern bool relset_join_graph(struct RelsetCatalog *cat, uint64 *adjacency, uint64 *present);

/* ---- PostgreSQL's estimate of a join not built yet (native_join_size.cpp) ---- */
extern bool pilot_native_join_sizable(PlannerInfo *root);
extern double pilot_native_join_rows(PlannerInfo *root, Relids outer, double outer_rows,
									 int inner_relid, double inner_rows);

/* ---- round trips to pilotd (pilotd_client.cpp) ---- */

/* One relation set to estimate, and its answer. */
typedef struct PilotAsk
{
	uint64		key;
	uint64		template_key;
	double		native_rows;
	uint32		nrels;
	const char *text;			/* canonical key text (not copied), or NULL */
	uint32		text_len;
	/* out */
	bool		answered;
	double		rows;
	uint32		source;
	double		keep_native_within;	/* see EstimateAnswer */
	PilotFallback reason;
} PilotAsk;

/* Asks pilotd for n relation sets, waiting at most timeout_us in total.
 * Never raises an error; fills every ask's out fields.  Key texts are packed
 * into the request while they fit (64 KiB per round trip). */
extern void pilotd_estimate(PilotAsk *asks, int n, int64 timeout_us);

/* May pilotd answer sets of these tables (relset_table_set(); 0: unknown)?
 * may[i] false only when pilotd says it knows no set of table_sets[i] (its
 * known-sets filter) or the estimator is native: such a set is neither keyed
 * nor asked.  One look at the segment for all n.  Never raises an error. */
extern void pilotd_may_answer(const uint64 *table_sets, bool *may, int n);

/* Has pilotd received this key's text from this backend already? */
extern bool pilotd_text_sent(uint64 key);
/* Does the learned model answer this session's asks (it needs every ask's
 * key text)?  Never raises an error. */
extern bool pilotd_model_needs_text(void);

/* Are key texts worth computing and sending with this session's asks?  While
 * execution feedback is collected (pilotd catalogs the texts to train on), or
 * for pg_pilot.estimator auto or learned while a model is serving.  Never
 * raises an error. */
extern bool pilotd_wants_text(void);

/* The model table (pg_pilot.models): fills values/nulls (natts columns) per
 * row through emit; no rows when pilotd is not there. */
typedef void (*PilotModelRowFn) (void *arg, Datum *values, bool *nulls);
extern void pilotd_models(PilotModelRowFn emit, void *arg, int natts);

/* MSG_MODEL_PIN (0 = unpin); raises a clear ERROR when it fails. */
extern void pilotd_pin_model(uint32 version);
/* MSG_ADVISOR: queues an index-advisor job, returns its id; ERROR when refused */
extern uint64 pilotd_advisor_request(int32 action, double budget_mb, int32 max_indexes,
									 int64 recommendation, bool drop_unhelpful);

/* Oracle loading; these raise clear ERRORs (admin functions, not planning). */
extern uint64 pilotd_oracle_load(const uint64 *keys, const double *rows,
								 const uint64 *table_sets, int n, bool replace);
extern uint64 pilotd_oracle_clear(void);

extern void pilotd_status(Datum *values, bool *nulls, int natts);

namespace pilot { namespace proto { struct FeedbackRecord; struct GuardEntry; } }
/* The guard table's row of a template of this database / row `index`; false
 * when there is none or pilotd is not there.  Never raise an error. */
extern bool pilotd_guard_entry(uint64 query_id, pilot::proto::GuardEntry *out);
extern bool pilotd_guard_row(uint32 index, pilot::proto::GuardEntry *out);
/* MSG_GUARD_PIN (arm: proto::GuardArm, ARM_UNKNOWN = unpin); a clear ERROR when it fails. */
extern void pilotd_pin_template(uint64 query_id, uint32 arm);
/* MSG_GUARD_RESET for this database; a clear ERROR when it fails. */
extern void pilotd_reset_guard(void);
/* Pushes feedback records into this backend's ring; never waits, never errors. */
extern void pilotd_push_feedback(const pilot::proto::FeedbackRecord *recs, int n);

/* ---- statistics (pilot_stats.cpp) ---- */
extern void pilot_stats_shmem_request(void);
extern void pilot_stats_shmem_startup(void);
extern void pilot_stats_count_request(uint64 latency_us);
extern void pilot_stats_count_items(int requested, int answered);
extern void pilot_stats_count_fallback(PilotFallback reason, int n);
/* relation sets the known-sets filter kept from being keyed and asked; keys computed */
extern void pilot_stats_count_planning_work(int not_asked, int keys_computed);
extern void pilot_stats_count_feedback(uint32 sent, uint32 dropped, uint64 lost);
/* ERROR with a hint unless pg_pilot was loaded by shared_preload_libraries */
extern void pilot_require_preloaded(void);

#endif
