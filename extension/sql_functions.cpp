/*
 * sql_functions.cpp — the SQL interface (see sql/pg_pilot--*.sql for docs).
 *
 *   pg_pilot.load_cardinalities(path, replace)  oracle file -> keys -> pilotd
 *   pg_pilot.clear_cardinalities()
 *   pg_pilot.explain_estimates(query)           per relation set: native, pilot, used
 *   pg_pilot.subplan_key(query)                 the key of a query's whole relation set
 *   pg_pilot.daemon_status()                    what the segment says about pilotd
 *   pg_pilot.models()                           pilotd's model table (0.2)
 *   pg_pilot.pin_model(version), unpin_model()  MSG_MODEL_PIN (0.2)
 *   pg_pilot.advisor_request(...)               MSG_ADVISOR (0.3)
 *
 * These are administrative or diagnostic calls made on purpose, so a user's
 * mistake (missing file, bad line, pilotd not running) is a clear ERROR or
 * WARNING saying what to do.
 */
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "common/string.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

PG_FUNCTION_INFO_V1(pg_pilot_load_cardinalities);
PG_FUNCTION_INFO_V1(pg_pilot_clear_cardinalities);
PG_FUNCTION_INFO_V1(pg_pilot_explain_estimates);
PG_FUNCTION_INFO_V1(pg_pilot_subplan_key);
PG_FUNCTION_INFO_V1(pg_pilot_subplans);
PG_FUNCTION_INFO_V1(pg_pilot_daemon_status);
PG_FUNCTION_INFO_V1(pg_pilot_models);
PG_FUNCTION_INFO_V1(pg_pilot_pin_model);
PG_FUNCTION_INFO_V1(pg_pilot_unpin_model);
PG_FUNCTION_INFO_V1(pg_pilot_advisor_request);
}

#include "pg_pilot.h"
#include "pilot_protocol.h"

#include <cmath>

/* At most this many failing lines are reported one by one. */
#define MAX_LINE_WARNINGS 50

/* The text argument argno of a pg_pilot function, which must not be NULL. */
static char *
required_text_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	pilot_require_preloaded();
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pg_pilot: %s must not be NULL", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

static char *
key_hex(uint64 key)
{
	return psprintf("%016llx", (unsigned long long) key);
}

/*
 * Plans `sql` in capture mode inside a subtransaction; returns NULL and sets
 * *problem when the query fails to parse/plan or has no keyable relation set.
 */
static PilotQueryState *
capture_in_subxact(const char *sql, char **problem)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	PilotQueryState *volatile qs = NULL;

	*problem = NULL;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		qs = pilot_plan_query_in_mode(sql, PM_CAPTURE, PR_NONE);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		*problem = pstrdup(edata->message);
		FreeErrorData(edata);
		qs = NULL;
	}
	PG_END_TRY();
	if (qs != NULL && !qs->captured)
	{
		*problem = qs->capture_problem ? qs->capture_problem
			: pstrdup("no relation set to key (the query reads no table, or is provably empty)");
		return NULL;
	}
	return qs;
}

/* "rows||query": false when the line is not of that shape. */
static bool
split_line(char *line, double *rows, char **sql, const char **problem)
{
	char	   *sep = strstr(line, "||");
	char	   *end;

	if (sep == NULL)
	{
		*problem = "expected \"rows||SELECT ...\"";
		return false;
	}
	*sep = '\0';
	errno = 0;
	*rows = strtod(line, &end);
	while (*end == ' ' || *end == '\t')
		end++;
	if (end == line || *end != '\0' || errno != 0 || !std::isfinite(*rows) || *rows < 0)
	{
		*problem = "the row count before \"||\" is not a non-negative number";
		return false;
	}
	*sql = sep + 2;
	return true;
}

Datum
pg_pilot_load_cardinalities(PG_FUNCTION_ARGS)
{
	char	   *path;
	const char *file_name;
	MemoryContext fn_cxt;
	MemoryContext line_cxt;
	bool		replace = PG_GETARG_BOOL(1);
	FILE	   *file;
	StringInfoData buf;
	int			lineno = 0;
	int64		nlines = 0;
	int64		failed = 0;
	int			cap = 1024;
	int			n = 0;
	uint64	   *keys;
	uint64	   *table_sets;
	double	   *rows;
	uint64		total;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	path = required_text_arg(fcinfo, 0, "the path of the cardinality file");
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read a server file with pg_pilot.load_cardinalities"),
				 errhint("Only roles with the privileges of pg_read_server_files may load "
						 "cardinality files.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	file = AllocateFile(path, "r");
	if (file == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open cardinality file \"%s\": %m", path),
				 errhint("The path is read by the server process; give an absolute path "
						 "the server's OS user can read.")));

	/* warnings name the file without its directory: short, and stable in tests */
	file_name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	keys = (uint64 *) palloc(sizeof(uint64) * cap);
	table_sets = (uint64 *) palloc(sizeof(uint64) * cap);
	rows = (double *) palloc(sizeof(double) * cap);
	initStringInfo(&buf);
	fn_cxt = CurrentMemoryContext;
	line_cxt = AllocSetContextCreate(fn_cxt, "pg_pilot load line", ALLOCSET_DEFAULT_SIZES);
	while (pg_get_line_buf(file, &buf))
	{
		char	   *line;
		char	   *sql;
		double		r;
		const char *problem = NULL;
		char	   *plan_problem = NULL;
		PilotQueryState *qs;

		lineno++;
		CHECK_FOR_INTERRUPTS();
		line = buf.data;
		while (*line == ' ' || *line == '\t')
			line++;
		pg_strip_crlf(line);
		if (*line == '\0' || *line == '#' || strncmp(line, "--", 2) == 0)
			continue;
		nlines++;
		/* each line's parse, plan and key live in line_cxt, reset per line */
		MemoryContextSwitchTo(line_cxt);
		if (!split_line(line, &r, &sql, &problem))
			qs = NULL;
		else
		{
			qs = capture_in_subxact(sql, &plan_problem);
			problem = plan_problem;
		}
		MemoryContextSwitchTo(fn_cxt);
		if (qs == NULL)
		{
			failed++;
			if (failed <= MAX_LINE_WARNINGS)
				ereport(WARNING,
						(errmsg("pg_pilot: line %d of \"%s\" skipped: %s",
								lineno, file_name, problem)));
			MemoryContextReset(line_cxt);
			continue;
		}
		if (n == cap)
		{
			cap *= 2;
			keys = (uint64 *) repalloc(keys, sizeof(uint64) * cap);
			table_sets = (uint64 *) repalloc(table_sets, sizeof(uint64) * cap);
			rows = (double *) repalloc(rows, sizeof(double) * cap);
		}
		keys[n] = qs->captured_key;
		/* the known-sets filter learns the entry's tables */
		table_sets[n] = qs->captured_table_set;
		rows[n] = r;
		n++;
		MemoryContextReset(line_cxt);
	}
	if (ferror(file))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read cardinality file \"%s\": %m", path)));
	FreeFile(file);
	MemoryContextDelete(line_cxt);
	if (failed > MAX_LINE_WARNINGS)
		ereport(WARNING,
				(errmsg("pg_pilot: %lld more lines of \"%s\" skipped (not shown)",
						(long long) (failed - MAX_LINE_WARNINGS), file_name)));

	total = pilotd_oracle_load(keys, rows, table_sets, n, replace);

	values[0] = Int64GetDatum(nlines);
	values[1] = Int64GetDatum((int64) n);
	values[2] = Int64GetDatum(failed);
	values[3] = Int64GetDatum((int64) total);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
pg_pilot_clear_cardinalities(PG_FUNCTION_ARGS)
{
	pilot_require_preloaded();
	PG_RETURN_INT64((int64) pilotd_oracle_clear());
}

Datum
pg_pilot_explain_estimates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query;
	PilotQueryState *qs;
	ListCell   *lc;

	query = required_text_arg(fcinfo, 0, "the query");
	InitMaterializedSRF(fcinfo, 0);
	if (!pilot_enabled || pilot_timeout_ms <= 0)
		ereport(NOTICE,
				(errmsg("pg_pilot is off in this session (pg_pilot.enabled = off or "
						"pg_pilot.timeout_ms = 0): every estimate is PostgreSQL's")));
	qs = pilot_plan_query_in_mode(query, PM_PLAN, PR_ESTIMATES);
	foreach(lc, qs->records)
	{
		PilotRecord *r = (PilotRecord *) lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		values[0] = CStringGetTextDatum(r->relations);
		values[1] = Int32GetDatum(r->nrels);
		values[2] = Float8GetDatum(r->native_rows);
		if (r->pilot_rows >= 0)
			values[3] = Float8GetDatum(r->pilot_rows);
		else
			nulls[3] = true;
		values[4] = Float8GetDatum(r->used_rows);
		values[5] = CStringGetTextDatum(r->source);
		if (r->key != 0)
			values[6] = CStringGetTextDatum(key_hex(r->key));
		else
			nulls[6] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Every relation set the planner sizes for the query, with its canonical key
 * text: what `pilotd collect --subplans` counts to give the model labels for
 * sub-plans the chosen plans never execute.
 */
Datum
pg_pilot_subplans(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query;
	PilotQueryState *qs;
	ListCell   *lc;

	query = required_text_arg(fcinfo, 0, "the query");
	if (!pilot_enabled || pilot_timeout_ms <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pilot is off in this session: it sees no relation sets"),
				 errhint("SET pg_pilot.enabled = on (and pg_pilot.timeout_ms > 0) first.")));
	InitMaterializedSRF(fcinfo, 0);
	qs = pilot_plan_query_in_mode(query, PM_PLAN, PR_KEY_TEXTS);
	foreach(lc, qs->records)
	{
		PilotRecord *r = (PilotRecord *) lfirst(lc);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(r->relations);
		values[1] = Int32GetDatum(r->nrels);
		if (r->key != 0)
			values[2] = CStringGetTextDatum(key_hex(r->key));
		else
			nulls[2] = true;
		if (r->key_text != NULL)
			values[3] = CStringGetTextDatum(r->key_text);
		else
			nulls[3] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
pg_pilot_subplan_key(PG_FUNCTION_ARGS)
{
	char	   *query;
	PilotQueryState *qs;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	query = required_text_arg(fcinfo, 0, "the query");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	qs = pilot_plan_query_in_mode(query, PM_CAPTURE, PR_NONE);
	if (!qs->captured)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pg_pilot: cannot derive a subplan key for this query: %s",
						qs->capture_problem ? qs->capture_problem
						: "no relation set (the query reads no table, or is provably empty)")));
	values[0] = CStringGetTextDatum(key_hex(qs->captured_key));
	values[1] = CStringGetTextDatum(key_hex(qs->captured_template));
	values[2] = CStringGetTextDatum(qs->captured_text);
	values[3] = CStringGetTextDatum(qs->captured_template_text);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
pg_pilot_daemon_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[32];
	bool		nulls[32];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts > 32)
		elog(ERROR, "pg_pilot.daemon_status: too many columns");
	pilotd_status(values, nulls, tupdesc->natts);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

static void
emit_model_row(void *arg, Datum *values, bool *nulls)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* pilotd's model table; no rows (and no error) when pilotd is not there. */
Datum
pg_pilot_models(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	pilot_require_preloaded();
	InitMaterializedSRF(fcinfo, 0);
	pilotd_models(emit_model_row, rsinfo, rsinfo->setDesc->natts);
	return (Datum) 0;
}

Datum
pg_pilot_pin_model(PG_FUNCTION_ARGS)
{
	int32		version;

	pilot_require_preloaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pg_pilot: the model version must not be NULL")));
	version = PG_GETARG_INT32(0);
	if (version <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_pilot: model versions are positive, got %d", version),
				 errhint("pg_pilot.unpin_model() lets pilotd choose the model again.")));
	pilotd_pin_model((uint32) version);
	PG_RETURN_VOID();
}

Datum
pg_pilot_unpin_model(PG_FUNCTION_ARGS)
{
	pilot_require_preloaded();
	pilotd_pin_model(0);
	PG_RETURN_VOID();
}

/* advisor_request(action, budget_mb, max_indexes, recommendation,
 * drop_unhelpful): the job id (the arguments are checked next to the
 * protocol, in pilotd_advisor_request()). */
Datum
pg_pilot_advisor_request(PG_FUNCTION_ARGS)
{
	pilot_require_preloaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pg_pilot: the advisor action must not be NULL")));
	PG_RETURN_INT64((int64) pilotd_advisor_request(PG_GETARG_INT32(0),
												   PG_ARGISNULL(1) ? 0 : PG_GETARG_FLOAT8(1),
												   PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2),
												   PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3),
												   PG_ARGISNULL(4) ? false : PG_GETARG_BOOL(4)));
}
