/*
 * pilotd_client.cpp — round trips from this backend to pilotd.
 *
 * All C++ work (the client object, Boost, exceptions) stays inside the
 * noexcept helpers of this file; they return plain codes and fill plain
 * buffers, and only the outer functions call PostgreSQL code that may raise
 * an ERROR (the admin functions do, on purpose; the planner path never does).
 * The request/response buffers are static: nothing is allocated per request.
 */
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "storage/backendid.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include "grow_cache.h"
#include "pg_pilot.h"
#include "pilot_protocol.h"
#include "pilotd_client.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>

using namespace pilot;
using namespace pilot::proto;

static PilotdClient *client = nullptr;
static bool client_failed = false;
static Request request_buf;
static Response response_buf;

/* Oracle loads and clears wait this long: pilotd fsyncs before it answers. */
static const int64 ADMIN_TIMEOUT_US = 30 * 1000000LL;

static PilotdClient *
get_client() noexcept
{
	if (client != nullptr || client_failed)
		return client;
	try
	{
		std::string name = segment_name_for_datadir(DataDir ? DataDir : "");
		uint32_t slot = MyBackendId > 0 ? static_cast<uint32_t>(MyBackendId - 1) : UINT32_MAX;

		client = new (std::nothrow) PilotdClient(name, slot,
												 static_cast<uint64_t>(pilot_daemon_stale_ms) * 1000,
												 static_cast<uint64_t>(pilot_reattach_interval_ms) * 1000);
	}
	catch (...)
	{
		client = nullptr;
	}
	if (client == nullptr)
		client_failed = true;
	return client;
}

static PilotFallback
fallback_for(Outcome o)
{
	switch (o)
	{
		case Outcome::OK: return PF_NONE;
		case Outcome::PILOTD_DOWN: return PF_PILOTD_DOWN;
		case Outcome::VERSION_MISMATCH: return PF_VERSION_MISMATCH;
		case Outcome::NO_SLOT: return PF_NO_SLOT;
		case Outcome::SLOT_BUSY: return PF_BUSY;
		case Outcome::TIMEOUT: return PF_TIMEOUT;
		case Outcome::INVALID: return PF_INVALID;
		case Outcome::REFUSED: return PF_INVALID;
	}
	return PF_ERROR;
}

/*
 * Answers this backend received, reused while the segment's epoch and the
 * generation of the estimator's sources are unchanged (SegmentHeader::
 * memo_generation and the others): a statement planned again
 * in this session (a connection pool's usual work) makes no round trip.
 * Direct-mapped by key and PostgreSQL's estimate (grow_cache.h); a
 * collision only costs a round trip.
 */
#define LOCAL_ANSWERS 2048		/* a power of two */

typedef struct LocalAnswer
{
	uint64		key;
	uint64		native_bits;	/* PostgreSQL's estimate, bit for bit */
	uint64		epoch;
	uint64		generation;
	uint32		estimator;
	bool		valid;
	bool		answered;		/* false: pilotd knew nothing (PF_UNKNOWN) */
	uint32		source;
	double		rows;
	double		keep_native_within;
} LocalAnswer;

static GrowCache<LocalAnswer, LOCAL_ANSWERS> local_answers;

/* The slot of (key, PostgreSQL's estimate): to read, or with `claim` to
 * store a new answer into (nullptr: none) */
static LocalAnswer *
local_answer(uint64 key, double native_rows, uint64 *native_bits, bool claim) noexcept
{
	uint64		h;

	memcpy(native_bits, &native_rows, sizeof *native_bits);
	h = key ^ (*native_bits * UINT64CONST(0x9E3779B97F4A7C15));
	h ^= h >> 29;
	return claim ? local_answers.claim(h) : local_answers.find(h);
}

/*
 * The keys whose texts pilotd received from this backend (a request carried
 * them and came back): a text need not be sent again for pilotd's catalog
 * (the learned model still needs it with every ask).  Direct-mapped
 * (grow_cache.h).
 */
#define SENT_TEXTS 4096
typedef struct SentText
{
	uint64		key;
	uint64		epoch;			/* of the pilotd that received it */
} SentText;
static GrowCache<SentText, SENT_TEXTS> sent_texts;
static uint64 sent_texts_epoch = 0;	/* the segment epoch last seen by an ask */

bool
pilotd_text_sent(uint64 key)
{
	const SentText *s = sent_texts.find(key);
	PilotdClient *c;

	/* a restarted pilotd (another epoch) may have lost texts not written yet */
	if (s != nullptr && s->key == key && s->epoch == sent_texts_epoch && sent_texts_epoch != 0)
		return true;
	/* written by pilotd, from any backend's request (published per segment) */
	c = get_client();
	return c != nullptr && c->has_key_text(key);
}

/* One round trip for up to kMaxItems asks, or none when every answer is known
 * from an earlier one (see LocalAnswer). */
static void
estimate_chunk(PilotAsk *asks, int n, int64 timeout_us) noexcept
{
	PilotdClient *c = get_client();
	Outcome		o;
	uint64_t	start;
	int			answered = 0;
	uint64_t	epoch = 0,
				generation = 0;
	bool		reuse;
	int			miss[kMaxItems];
	int			nmiss = 0;
	bool		model_text;

	for (int i = 0; i < n; i++)
	{
		asks[i].answered = false;
		asks[i].rows = 0;
		asks[i].source = SRC_NONE;
		asks[i].reason = PF_ERROR;
	}
	if (c == nullptr)
		return;
	c->set_stale_after_us(static_cast<uint64_t>(pilot_daemon_stale_ms) * 1000);

	reuse = c->answers_generation(static_cast<uint32_t>(pilot_estimator), &epoch, &generation);
	if (reuse)
		sent_texts_epoch = epoch;
	for (int i = 0; i < n; i++)
	{
		uint64		bits;
		const LocalAnswer *la = local_answer(asks[i].key, asks[i].native_rows, &bits, false);

		if (!reuse || la == nullptr || !la->valid || la->key != asks[i].key || la->native_bits != bits ||
			la->estimator != static_cast<uint32>(pilot_estimator) || la->epoch != epoch ||
			la->generation != generation)
		{
			miss[nmiss++] = i;
			continue;
		}
		asks[i].answered = la->answered;
		asks[i].reason = la->answered ? PF_NONE : PF_UNKNOWN;
		if (la->answered)
		{
			asks[i].rows = la->rows;
			asks[i].source = la->source;
			asks[i].keep_native_within = la->keep_native_within;
			answered++;
		}
	}
	if (nmiss == 0)
	{
		pilot_stats_count_items(n, answered);
		return;
	}
	/* an unknown answer to an ask without its text is reused only when no
	 * model needs texts (a model that starts serving bumps the generation) */
	model_text = pilotd_model_needs_text();

	request_buf.type = MSG_ESTIMATE;
	request_buf.estimator = static_cast<uint32_t>(pilot_estimator);
	request_buf.count = static_cast<uint32_t>(nmiss);
	request_buf.flags = 0;
	request_buf.session = 0;
	request_buf.dboid = static_cast<uint32_t>(MyDatabaseId);
	request_buf.text_used = 0;
	for (int k = 0; k < nmiss; k++)
	{
		const PilotAsk &ask = asks[miss[k]];
		EstimateItem &it = request_buf.items[k];
		uint32_t	len = ask.text != nullptr ? ask.text_len : 0;

		it.key = ask.key;
		it.template_key = ask.template_key;
		it.native_rows = ask.native_rows;
		it.nrels = ask.nrels;
		it.text_len = 0;
		it.text_off = 0;
		it.reserved = 0;
		/* texts while they fit; the others are still asked, by key */
		if (len > 0 && len <= kMaxText - request_buf.text_used)
		{
			memcpy(request_buf.text + request_buf.text_used, ask.text, len);
			it.text_off = request_buf.text_used;
			it.text_len = len;
			request_buf.text_used += len;
		}
	}
	start = monotonic_us();
	o = c->call(request_buf, response_buf, timeout_us);
	if (o == Outcome::OK)
	{
		for (int k = 0; k < nmiss; k++)
		{
			PilotAsk   &ask = asks[miss[k]];
			const EstimateAnswer &a = response_buf.answers[k];
			uint64		bits;

			/* validate_response() checked finiteness and range already */
			if (a.source != SRC_NONE)
			{
				ask.answered = true;
				ask.rows = a.rows;
				ask.source = a.source;
				ask.keep_native_within = a.keep_native_within;
				ask.reason = PF_NONE;
				answered++;
			}
			else
				ask.reason = PF_UNKNOWN;
			if (request_buf.items[k].text_len > 0 && reuse)
			{
				SentText   *s = sent_texts.claim(ask.key);

				if (s != nullptr)
				{
					s->key = ask.key;
					s->epoch = epoch;
				}
			}
			/* stamped with the generation read before asking: an answer
			 * that raced with a change is not reused.  An unknown set asked
			 * without its text (none was wanted then, or it did not fit) is
			 * asked again: the learned model needs the text to answer */
			LocalAnswer *la;

			if (reuse && (ask.answered || request_buf.items[k].text_len > 0 || !model_text) &&
				(la = local_answer(ask.key, ask.native_rows, &bits, true)) != nullptr)
			{
				la->key = ask.key;
				la->native_bits = bits;
				la->epoch = epoch;
				la->generation = generation;
				la->estimator = static_cast<uint32>(pilot_estimator);
				la->answered = ask.answered;
				la->source = ask.source;
				la->rows = ask.rows;
				la->keep_native_within = ask.keep_native_within;
				la->valid = true;
			}
		}
		pilot_stats_count_request(monotonic_us() - start);
	}
	else
	{
		PilotFallback f = fallback_for(o);

		/* an estimator this pilotd does not serve (e.g. learned, before any
		 * model): it knows none of the relation sets */
		if (o == Outcome::REFUSED && response_buf.status == ST_UNKNOWN_ESTIMATOR)
			f = PF_UNKNOWN;

		for (int k = 0; k < nmiss; k++)
			asks[miss[k]].reason = f;
		/* only attempts that reached pilotd count as requests */
		if (o == Outcome::TIMEOUT || o == Outcome::INVALID || o == Outcome::REFUSED)
			pilot_stats_count_request(monotonic_us() - start);
	}
	pilot_stats_count_items(n, answered);
}

void
pilotd_estimate(PilotAsk *asks, int n, int64 timeout_us)
{
	uint64_t	deadline = monotonic_us() + (timeout_us > 0 ? (uint64_t) timeout_us : 0);

	for (int off = 0; off < n; off += (int) kMaxItems)
	{
		int			m = n - off < (int) kMaxItems ? n - off : (int) kMaxItems;
		uint64_t	now = monotonic_us();

		if (now >= deadline)
		{
			for (int i = off; i < n; i++)
			{
				asks[i].answered = false;
				asks[i].reason = PF_TIMEOUT;
			}
			return;
		}
		estimate_chunk(asks + off, m, (int64) (deadline - now));
	}
}

void
pilotd_may_answer(const uint64 *table_sets, bool *may, int n)
{
	PilotdClient *c;

	if (pilot_estimator == EST_NATIVE)
	{
		/* pilotd would answer nothing: no key, no round trip */
		for (int i = 0; i < n; i++)
			may[i] = false;
		return;
	}
	c = get_client();
	if (c == nullptr ||
		!c->may_answer(static_cast<uint32_t>(MyDatabaseId),
					   pilot_estimator == EST_AUTO || pilot_estimator == EST_LEARNED,
					   reinterpret_cast<const uint64_t *>(table_sets), may, n))
	{
		/* not there: ask, and fall back as always */
		for (int i = 0; i < n; i++)
			may[i] = true;
	}
}

bool
pilotd_model_needs_text(void)
{
	PilotdClient *c;

	if (pilot_estimator != EST_AUTO && pilot_estimator != EST_LEARNED)
		return false;
	c = get_client();
	return c != nullptr && c->model_serving();
}

bool
pilotd_wants_text(void)
{
	PilotdClient *c;

	/* collected feedback is what the model trains on: pilotd needs the
	 * texts of the relation sets it will observe, whatever the estimator */
	if (pilot_collect_feedback)
		return true;
	if (pilot_estimator != EST_AUTO && pilot_estimator != EST_LEARNED)
		return false;
	c = get_client();
	return c != nullptr && c->model_serving();
}

void
pilotd_push_feedback(const FeedbackRecord *recs, int n)
{
	PilotdClient *c = get_client();
	uint32_t	accepted;

	if (c == nullptr || n <= 0)
		return;
	accepted = c->push_feedback(recs, static_cast<uint32_t>(n));
	pilot_stats_count_feedback(accepted, static_cast<uint32_t>(n) - accepted, c->take_lost_feedback());
}

/* ---------------------------------------------------------------------
 * Admin messages (oracle loading): clear ERRORs, raised outside C++ frames.
 * --------------------------------------------------------------------- */

static char admin_problem[256];

static Outcome
admin_call(uint32_t type, uint64_t session, uint32_t flags) noexcept
{
	PilotdClient *c = get_client();

	if (c == nullptr)
	{
		snprintf(admin_problem, sizeof admin_problem, "cannot create the pilotd client");
		return Outcome::PILOTD_DOWN;
	}
	request_buf.type = type;
	request_buf.session = session;
	request_buf.flags = flags;
	request_buf.estimator = 0;
	request_buf.dboid = static_cast<uint32_t>(MyDatabaseId);
	request_buf.text_used = 0;
	if (type != MSG_ORACLE_ADD)
		request_buf.count = 0;
	Outcome		o = c->call(request_buf, response_buf, ADMIN_TIMEOUT_US);

	if (o != Outcome::OK)
	{
		const char *why = c->last_problem();

		snprintf(admin_problem, sizeof admin_problem, "%s%s%s", outcome_name(o),
				 why[0] ? ": " : "", why);
		if (o == Outcome::REFUSED)
			snprintf(admin_problem, sizeof admin_problem, "pilotd refused the request (status %u)",
					 response_buf.status);
	}
	return o;
}

static void
admin_check(Outcome o, const char *what)
{
	if (o == Outcome::OK)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("pg_pilot: %s failed: %s", what, admin_problem),
			 errhint("Is pilotd running for this cluster? Start it with \"pilotd -D %s\" "
					 "and check its log.", DataDir ? DataDir : "$PGDATA")));
}

uint64
pilotd_oracle_load(const uint64 *keys, const double *rows, const uint64 *table_sets, int n,
				   bool replace)
{
	Outcome		o;
	uint64_t	session;

	o = admin_call(MSG_ORACLE_BEGIN, 0, replace ? ORACLE_REPLACE : 0);
	admin_check(o, "starting the cardinality load");
	session = request_buf.seq;
	for (int off = 0; off < n; off += (int) kMaxItems)
	{
		int			m = n - off < (int) kMaxItems ? n - off : (int) kMaxItems;

		for (int i = 0; i < m; i++)
		{
			request_buf.entries[i].key = keys[off + i];
			request_buf.entries[i].rows = rows[off + i];
			request_buf.entries[i].table_set = table_sets[off + i];
		}
		request_buf.count = (uint32) m;
		o = admin_call(MSG_ORACLE_ADD, session, 0);
		admin_check(o, "sending cardinalities");
		CHECK_FOR_INTERRUPTS();
	}
	o = admin_call(MSG_ORACLE_COMMIT, session, 0);
	admin_check(o, "committing the cardinality load");
	return response_buf.oracle_entries;
}

uint64
pilotd_oracle_clear(void)
{
	Outcome		o = admin_call(MSG_ORACLE_CLEAR, 0, 0);

	admin_check(o, "clearing the oracle");
	return response_buf.oracle_entries;
}

void
pilotd_pin_model(uint32 version)
{
	Outcome		o = admin_call(MSG_MODEL_PIN, version, 0);

	if (o == Outcome::REFUSED && response_buf.status == ST_FAILED)
	{
		if (version == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pg_pilot: pilotd cannot unpin its model"),
					 errhint("see pg_pilot.models for the versions pilotd knows")));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pilot: pilotd cannot pin model version %u", version),
				 errhint("see pg_pilot.models for the versions pilotd knows")));
	}
	admin_check(o, version == 0 ? "unpinning the model" : "pinning the model version");
}

bool
pilotd_guard_entry(uint64 query_id, GuardEntry *out)
{
	PilotdClient *c = get_client();

	return c != nullptr && c->guard_entry(static_cast<uint32_t>(MyDatabaseId), query_id, out);
}

bool
pilotd_guard_row(uint32 index, GuardEntry *out)
{
	PilotdClient *c = get_client();

	return c != nullptr && c->guard_row(index, out);
}

void
pilotd_pin_template(uint64 query_id, uint32 arm)
{
	Outcome		o = admin_call(MSG_GUARD_PIN, query_id, arm);

	if (o == Outcome::REFUSED && response_buf.status == ST_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pilot: pilotd could not store the pin of query %lld", (long long) query_id),
				 errhint("See pilotd's log (its state directory must be writable).")));
	admin_check(o, "pinning the query template");
}

void
pilotd_reset_guard(void)
{
	admin_check(admin_call(MSG_GUARD_RESET, 0, 0), "resetting the plan guard");
}

uint64
pilotd_advisor_request(int32 action, double budget_mb, int32 max_indexes, int64 recommendation,
					   bool drop_unhelpful)
{
	Outcome		o;

	if (action < (int32) ADVISE_RUN || action > (int32) ADVISE_ACTION_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: advisor action must be 1 (advise), 2 (apply) or 3 (verify), got %d", action)));
	if (!(budget_mb >= 0 && budget_mb <= 1e9))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: budget_mb must be between 0 and 1e9 megabytes, got %g", budget_mb)));
	if (max_indexes < 0 || max_indexes > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: max_indexes must be between 1 and 1000 (0: pilotd's setting), got %d", max_indexes)));
	if (action == (int32) ADVISE_APPLY && recommendation <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: apply needs a recommendation id (see pg_pilot.index_recommendations)")));

	memset(&request_buf.advisor, 0, sizeof request_buf.advisor);
	request_buf.advisor.action = (uint32_t) action;
	request_buf.advisor.budget_mb = budget_mb;
	request_buf.advisor.max_indexes = (uint32_t) max_indexes;
	request_buf.advisor.recommendation = recommendation;
	request_buf.advisor.drop_unhelpful = drop_unhelpful ? 1 : 0;
	o = admin_call(MSG_ADVISOR, 0, 0);
	if (o == Outcome::REFUSED && (response_buf.status == ST_FAILED || response_buf.status == ST_BAD_REQUEST))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pilot: pilotd refused the index advisor job"),
				 errhint("pilotd runs jobs only when started with --advisor-dsn, one at a time with a short "
						 "queue; an older pilotd does not know them.  See pilotd's log.")));
	admin_check(o, "handing the job to the index advisor");
	return response_buf.oracle_entries;
}

/* ---------------------------------------------------------------------
 * The model table (pg_pilot.models)
 * --------------------------------------------------------------------- */

static ModelInfo model_buf[kMaxModels];

static int
read_models_plain(void) noexcept
{
	PilotdClient *c = get_client();

	if (c == nullptr)
		return -1;
	return c->read_models(model_buf, kMaxModels);
}

static Datum
u64_datum(uint64_t v)
{
	return Int64GetDatum(v > (uint64_t) PG_INT64_MAX ? PG_INT64_MAX : (int64) v);
}

void
pilotd_models(PilotModelRowFn emit, void *arg, int natts)
{
	int			n = read_models_plain();
	Datum		values[22];
	bool		nulls[22];

	if (natts != 22)
		elog(ERROR, "pg_pilot.models: expected 22 columns, got %d", natts);
	for (int r = 0; r < n; r++)
	{
		const ModelInfo &m = model_buf[r];	/* checked by clean_model_info() */
		int			i = 0;

		for (int k = 0; k < natts; k++)
			nulls[k] = false;
		values[i++] = Int32GetDatum(m.version > (uint32) PG_INT32_MAX ? PG_INT32_MAX : (int32) m.version);
		values[i++] = CStringGetTextDatum(model_state_name(m.state));
		if (m.database[0] != '\0')
			values[i++] = CStringGetTextDatum(m.database);
		else
			nulls[i++] = true;
		values[i++] = ObjectIdGetDatum((Oid) m.dboid);
		values[i++] = BoolGetDatum(m.pinned != 0);
		if (m.created_unix != 0)
			values[i++] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) m.created_unix));
		else
			nulls[i++] = true;
		values[i++] = u64_datum(m.train_records);
		values[i++] = u64_datum(m.validation_records);
		for (int q = 0; q < 3; q++)
		{
			/* a q-error is >= 1; anything else means "not measured" */
			if (std::isfinite(m.model_qerror[q]) && m.model_qerror[q] >= 1.0)
				values[i++] = Float8GetDatum(m.model_qerror[q]);
			else
				nulls[i++] = true;
		}
		for (int q = 0; q < 3; q++)
		{
			if (std::isfinite(m.native_qerror[q]) && m.native_qerror[q] >= 1.0)
				values[i++] = Float8GetDatum(m.native_qerror[q]);
			else
				nulls[i++] = true;
		}
		values[i++] = u64_datum(m.served);
		values[i++] = u64_datum(m.declined);
		values[i++] = u64_datum(m.batches);
		for (int q = 0; q < 2; q++)
		{
			if (std::isfinite(m.inference_us[q]) && m.inference_us[q] >= 0)
				values[i++] = Float8GetDatum(m.inference_us[q]);
			else
				nulls[i++] = true;
		}
		values[i++] = u64_datum(m.size_bytes);
		if (m.checksum[0] != '\0')
			values[i++] = CStringGetTextDatum(m.checksum);
		else
			nulls[i++] = true;
		if (m.note[0] != '\0')
			values[i++] = CStringGetTextDatum(m.note);
		else
			nulls[i++] = true;
		Assert(i == natts);
		emit(arg, values, nulls);
	}
}

/* ---------------------------------------------------------------------
 * Status (pg_pilot.pilotd)
 * --------------------------------------------------------------------- */

typedef struct PlainInfo
{
	bool		attached;
	char		segment[64];
	char		problem[256];
	uint32		version, nslots, pid;
	uint64		epoch, heartbeat_age_us, started_at_unix;
	uint64		requests, items, answered, bad_requests, oracle_entries;
	uint64		feedback_received, feedback_invalid, memo_entries;
	uint64		feedback_queued, spool_appended, spool_pending, store_committed,
				store_replayed, store_dead_letter, store_failures;
	uint32		store_state;
	char		store_error[128];
	uint64		key_texts;
} PlainInfo;

static void
read_info(PlainInfo *p) noexcept
{
	PilotdClient *c = get_client();

	memset(p, 0, sizeof(*p));
	if (c == nullptr)
	{
		snprintf(p->problem, sizeof p->problem, "cannot create the pilotd client");
		return;
	}
	try
	{
		PilotdInfo	d = c->info();

		p->attached = d.attached;
		snprintf(p->segment, sizeof p->segment, "%s", d.segment.c_str());
		snprintf(p->problem, sizeof p->problem, "%s", d.last_problem.c_str());
		p->version = d.version;
		p->nslots = d.nslots;
		p->pid = d.pilotd_pid;
		p->epoch = d.epoch;
		p->heartbeat_age_us = d.heartbeat_age_us;
		p->started_at_unix = d.started_at_unix;
		p->requests = d.requests;
		p->items = d.items;
		p->answered = d.answered;
		p->bad_requests = d.bad_requests;
		p->oracle_entries = d.oracle_entries;
		p->feedback_received = d.feedback_received;
		p->feedback_invalid = d.feedback_invalid;
		p->memo_entries = d.memo_entries;
		p->feedback_queued = d.feedback_queued;
		p->spool_appended = d.spool_appended;
		p->spool_pending = d.spool_pending;
		p->store_committed = d.store_committed;
		p->store_replayed = d.store_replayed;
		p->store_dead_letter = d.store_dead_letter;
		p->store_failures = d.store_failures;
		p->store_state = d.store_state;
		p->key_texts = d.key_texts;
		snprintf(p->store_error, sizeof p->store_error, "%s", d.store_error.c_str());
	}
	catch (...)
	{
		snprintf(p->problem, sizeof p->problem, "status unavailable");
	}
}

void
pilotd_status(Datum *values, bool *nulls, int natts)
{
	PlainInfo	p;
	int			i = 0;

	read_info(&p);
	for (int k = 0; k < natts; k++)
		nulls[k] = false;
	values[i++] = BoolGetDatum(p.attached);
	values[i++] = CStringGetTextDatum(p.segment);
	if (p.problem[0] != '\0')
		values[i++] = CStringGetTextDatum(p.problem);
	else
		nulls[i++] = true;
	if (!p.attached)
	{
		for (; i < natts; i++)
			nulls[i] = true;
		return;
	}
	values[i++] = Int32GetDatum((int32) p.pid);
	values[i++] = Int32GetDatum((int32) p.version);
	values[i++] = CStringGetTextDatum(psprintf("%016llx", (unsigned long long) p.epoch));
	values[i++] = Int32GetDatum((int32) p.nslots);
	values[i++] = Float8GetDatum((double) p.heartbeat_age_us / 1000.0);
	values[i++] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) p.started_at_unix));
	values[i++] = Int64GetDatum((int64) p.requests);
	values[i++] = Int64GetDatum((int64) p.items);
	values[i++] = Int64GetDatum((int64) p.answered);
	values[i++] = Int64GetDatum((int64) p.bad_requests);
	values[i++] = Int64GetDatum((int64) p.oracle_entries);
	values[i++] = Int64GetDatum((int64) p.feedback_received);
	values[i++] = Int64GetDatum((int64) p.feedback_invalid);
	values[i++] = Int64GetDatum((int64) p.memo_entries);
	values[i++] = Int64GetDatum((int64) p.feedback_queued);
	values[i++] = CStringGetTextDatum(pilot::proto::store_state_name(p.store_state));
	values[i++] = Int64GetDatum((int64) p.spool_appended);
	values[i++] = Int64GetDatum((int64) p.spool_pending);
	values[i++] = Int64GetDatum((int64) p.store_committed);
	values[i++] = Int64GetDatum((int64) p.store_replayed);
	values[i++] = Int64GetDatum((int64) p.store_dead_letter);
	values[i++] = Int64GetDatum((int64) p.store_failures);
	if (p.store_error[0] != '\0')
		values[i++] = CStringGetTextDatum(p.store_error);
	else
		nulls[i++] = true;
	if (i < natts)				/* extension 0.7 */
		values[i++] = Int64GetDatum((int64) p.key_texts);
	Assert(i == natts);
}
