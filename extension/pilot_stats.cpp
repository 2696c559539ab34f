/*
 * pilot_stats.cpp — cluster-wide counters behind the pg_pilot.stats view.
 *
 * One struct in the server's shared memory, updated with atomic adds (no
 * lock): round trips, relation sets asked and answered, fallbacks by reason,
 * and a log-linear histogram of round-trip latency (16 buckets per power of
 * two, about 6 % resolution) from which the view reports percentiles.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(pg_pilot_stats);
PG_FUNCTION_INFO_V1(pg_pilot_reset_stats);
}

#include "pg_pilot.h"

#include <cmath>

#define LAT_SUB 16				/* buckets per power of two */
#define LAT_EXP_MAX 26			/* up to 2^26 us (about a minute) */
#define LAT_BUCKETS (LAT_SUB + (LAT_EXP_MAX - 4 + 1) * LAT_SUB)

typedef struct PilotSharedStats
{
	pg_atomic_uint64 requests;
	pg_atomic_uint64 items;
	pg_atomic_uint64 answered;
	pg_atomic_uint64 fallbacks[PF_NUM_REASONS];
	pg_atomic_uint64 feedback_sent;		/* records pushed into pilotd's rings */
	pg_atomic_uint64 feedback_dropped;	/* records dropped: ring full or no pilotd */
	pg_atomic_uint64 feedback_lost;		/* sent, but pilotd was killed before acknowledging */
	pg_atomic_uint64 not_asked;		/* relation sets the known-sets filter kept from asking */
	pg_atomic_uint64 keys_computed;	/* subplan keys computed */
	pg_atomic_uint64 latency[LAT_BUCKETS];
	pg_atomic_uint64 reset_time;	/* TimestampTz */
} PilotSharedStats;

static PilotSharedStats *stats = NULL;

void
pilot_stats_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(PilotSharedStats)));
}

void
pilot_stats_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats = (PilotSharedStats *) ShmemInitStruct("pg_pilot stats", sizeof(PilotSharedStats),
												 &found);
	if (!found)
	{
		pg_atomic_init_u64(&stats->requests, 0);
		pg_atomic_init_u64(&stats->items, 0);
		pg_atomic_init_u64(&stats->answered, 0);
		for (int i = 0; i < PF_NUM_REASONS; i++)
			pg_atomic_init_u64(&stats->fallbacks[i], 0);
		pg_atomic_init_u64(&stats->feedback_sent, 0);
		pg_atomic_init_u64(&stats->feedback_dropped, 0);
		pg_atomic_init_u64(&stats->feedback_lost, 0);
		pg_atomic_init_u64(&stats->not_asked, 0);
		pg_atomic_init_u64(&stats->keys_computed, 0);
		for (int i = 0; i < LAT_BUCKETS; i++)
			pg_atomic_init_u64(&stats->latency[i], 0);
		pg_atomic_init_u64(&stats->reset_time, (uint64) GetCurrentTimestamp());
	}
	LWLockRelease(AddinShmemInitLock);
}

static int
latency_bucket(uint64 us)
{
	int			e;

	if (us < LAT_SUB)
		return (int) us;
	e = 63 - __builtin_clzll(us);	/* floor(log2(us)) >= 4 */
	if (e > LAT_EXP_MAX)
		return LAT_BUCKETS - 1;
	return LAT_SUB + (e - 4) * LAT_SUB + (int) ((us >> (e - 4)) & (LAT_SUB - 1));
}

/* Lower bound of a bucket, in microseconds. */
static double
bucket_value(int b)
{
	int			e;
	int			sub;

	if (b < LAT_SUB)
		return b;
	e = (b - LAT_SUB) / LAT_SUB + 4;
	sub = (b - LAT_SUB) % LAT_SUB;
	return (double) ((uint64) (LAT_SUB + sub) << (e - 4));
}

void
pilot_stats_count_request(uint64 latency_us)
{
	if (stats == NULL)
		return;
	pg_atomic_fetch_add_u64(&stats->requests, 1);
	pg_atomic_fetch_add_u64(&stats->latency[latency_bucket(latency_us)], 1);
}

void
pilot_stats_count_items(int requested, int answered)
{
	if (stats == NULL)
		return;
	pg_atomic_fetch_add_u64(&stats->items, (uint64) requested);
	pg_atomic_fetch_add_u64(&stats->answered, (uint64) answered);
}

void
pilot_stats_count_feedback(uint32 sent, uint32 dropped, uint64 lost)
{
	if (stats == NULL)
		return;
	if (lost)
		pg_atomic_fetch_add_u64(&stats->feedback_lost, lost);
	if (sent)
		pg_atomic_fetch_add_u64(&stats->feedback_sent, sent);
	if (dropped)
		pg_atomic_fetch_add_u64(&stats->feedback_dropped, dropped);
}

void
pilot_stats_count_planning_work(int not_asked, int keys_computed)
{
	if (stats == NULL)
		return;
	if (not_asked > 0)
		pg_atomic_fetch_add_u64(&stats->not_asked, (uint64) not_asked);
	if (keys_computed > 0)
		pg_atomic_fetch_add_u64(&stats->keys_computed, (uint64) keys_computed);
}

void
pilot_stats_count_fallback(PilotFallback reason, int n)
{
	if (stats == NULL || reason <= PF_NONE || reason >= PF_NUM_REASONS || n <= 0)
		return;
	pg_atomic_fetch_add_u64(&stats->fallbacks[reason], (uint64) n);
}

void
pilot_require_preloaded(void)
{
	if (stats == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pilot must be loaded via shared_preload_libraries"),
				 errhint("Add pg_pilot to shared_preload_libraries in postgresql.conf "
						 "and restart the server.")));
}

static double
percentile(const uint64 *counts, uint64 total, double q)
{
	uint64		target;
	uint64		acc = 0;

	if (total == 0)
		return -1;
	target = (uint64) std::ceil(q * (double) total);
	if (target < 1)
		target = 1;
	for (int b = 0; b < LAT_BUCKETS; b++)
	{
		acc += counts[b];
		if (acc >= target)
			return bucket_value(b);
	}
	return bucket_value(LAT_BUCKETS - 1);
}

/* pg_pilot.stats: one row */
Datum
pg_pilot_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[22];
	bool		nulls[22];
	uint64		counts[LAT_BUCKETS];
	uint64		total = 0;
	int			i = 0;

	pilot_require_preloaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));

	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->requests));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->items));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->answered));
	for (int r = PF_TIMEOUT; r < PF_NUM_REASONS; r++)
		values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->fallbacks[r]));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->feedback_sent));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->feedback_dropped));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->feedback_lost));
	for (int b = 0; b < LAT_BUCKETS; b++)
	{
		counts[b] = pg_atomic_read_u64(&stats->latency[b]);
		total += counts[b];
	}
	{
		double		qs[] = {0.5, 0.9, 0.99};

		for (double q : qs)
		{
			double		v = percentile(counts, total, q);

			if (v < 0)
				nulls[i++] = true;
			else
				values[i++] = Float8GetDatum(v);
		}
	}
	values[i++] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&stats->reset_time));
	/* extension 0.6 added these two; an older SQL definition has no room for them */
	if (tupdesc->natts >= i + 2)
	{
		values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->not_asked));
		values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&stats->keys_computed));
	}
	if (i != tupdesc->natts)
		elog(ERROR, "pg_pilot.stats: %d columns expected, %d built", tupdesc->natts, i);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
pg_pilot_reset_stats(PG_FUNCTION_ARGS)
{
	pilot_require_preloaded();
	pg_atomic_write_u64(&stats->requests, 0);
	pg_atomic_write_u64(&stats->items, 0);
	pg_atomic_write_u64(&stats->answered, 0);
	for (int r = 0; r < PF_NUM_REASONS; r++)
		pg_atomic_write_u64(&stats->fallbacks[r], 0);
	pg_atomic_write_u64(&stats->feedback_sent, 0);
	pg_atomic_write_u64(&stats->feedback_dropped, 0);
	pg_atomic_write_u64(&stats->feedback_lost, 0);
	pg_atomic_write_u64(&stats->not_asked, 0);
	pg_atomic_write_u64(&stats->keys_computed, 0);
	for (int b = 0; b < LAT_BUCKETS; b++)
		pg_atomic_write_u64(&stats->latency[b], 0);
	pg_atomic_write_u64(&stats->reset_time, (uint64) GetCurrentTimestamp());
	PG_RETURN_VOID();
}
