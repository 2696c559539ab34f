/*
 * schema_snapshot.h — what a cardinality model needs to know about its
 * database (models/featurize.h, pilot::model::Schema), read through libpq:
 * per table reltuples, columns (name, type, value kind), min/max of every
 * Numeric column, and a small random sample of rows.
 *
 * Tables are named as subplan key texts write them (common/subplan_key.h, the
 * extension's quote_qualified_identifier): schema-qualified, each part quoted
 * only when needed, e.g. "public.posts", "public.\"MyTable\"".  Names are
 * resolved on the server with to_regclass($1) (a parameter, never spliced into
 * SQL); the session's search_path is pg_catalog, so unqualified names resolve
 * only to catalog tables and effectively must be qualified.
 *
 * Value kinds and units (see featurize.h):
 *   Numeric  int2/int4/int8/numeric/float4/float8/oid/bool/date/timestamp/
 *            timestamptz, and domains over them; doubles: numbers as is,
 *            boolean 0/1, date = days since 2000-01-01, timestamp[tz] =
 *            seconds since 2000-01-01 00:00 UTC (timestamp without time zone
 *            read as UTC).  Converted on the server; ±infinity dates and
 *            timestamps come as ±Infinity, NaN as NaN in the sample.
 *   Text     text/varchar/bpchar/name (and domains over them); the value's
 *            ::text form (bpchar without its trailing padding) in the
 *            database's encoding.
 *   Other    anything else: no values fetched (num/text stay empty).
 *
 * One snapshot:
 *   - one connection; pg_pilot.enabled/collect_feedback off (errors ignored:
 *     the library may not be loaded), statement_timeout 5 min,
 *     lock_timeout 30 s, one REPEATABLE READ READ ONLY transaction (so the
 *     sample is drawn from the same data as min/max);
 *   - per table one scan for count(*) and min/max of every Numeric column
 *     (non-finite values ignored; no finite value: min = max = 0);
 *   - per table one sample query of up to sample_rows rows, deterministic
 *     for unchanged table contents (setseed + REPEATABLE):
 *       count <= 100000 rows:          ORDER BY random() LIMIT n (uniform);
 *       count <= 10000000 rows:        TABLESAMPLE BERNOULLI (p) REPEATABLE,
 *                                      p for about 2n rows, then ORDER BY
 *                                      random() LIMIT n;
 *       larger:                        TABLESAMPLE SYSTEM (p) REPEATABLE, p for
 *                                      about 10n rows (whole pages: rows are
 *                                      clustered), then ORDER BY random()
 *                                      LIMIT n.
 *     A table sampled with TABLESAMPLE may yield fewer than n rows (rarely);
 *     TableInfo::sample_rows is what was fetched.
 *
 * Filled in pilot::model::Schema (only on success; *out is untouched on
 * failure): tables (sorted by name, duplicates removed), each with name (the
 * canonical key form built on the server), reltuples (pg_class.reltuples; if
 * the table was never analyzed (< 0), the exact count(*) of the min/max
 * scan), columns (attnum order, not dropped), min/max, sample_rows, and the
 * sample [column][row]: num for Numeric columns (NULL -> 0), text for Text
 * columns (NULL -> ""), null for EVERY column (1 = NULL; Other columns too:
 * their IS NULL is fetched, their values are not).  sample_size = max
 * sample_rows.  joins and max_log_rows are not touched.  index() is called.
 *
 * Errors: false with a one-line *error naming the table and the step that
 * failed; never contains a password (redacted_dsn()).
 */
#ifndef PILOTD_SCHEMA_SNAPSHOT_H
#define PILOTD_SCHEMA_SNAPSHOT_H

#include "featurize.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pilotd {

struct DatabaseIdentity {
    std::string system_identifier; /* pg_control_system().system_identifier, decimal */
    std::string database;          /* current_database() */
    uint32_t dboid = 0;            /* pg_database.oid of it */
    /* 16 hex digits: pilot::proto::stable_hash64 of the tables (canonical
     * names, sorted) with their columns' names and format_type()s in attnum
     * order.  Changes when a table or column is added, dropped, renamed,
     * reordered or retyped; not when data changes. */
    std::string fingerprint;
    /* pg_class.reltuples of each table asked for, by canonical name (-1:
     * never analyzed): the statistics a model is bound to */
    std::vector<std::pair<std::string, double>> reltuples;
};

/* The snapshot described above.  sample_rows = 0: no samples (sample_size 0).
 * id may be null.  Reading pg_control_system() needs superuser or pg_monitor
 * membership: without it this fails with a message saying so. */
bool snapshot_schema(const std::string &dsn, const std::vector<std::string> &tables, uint32_t sample_rows,
                     pilot::model::Schema *out, DatabaseIdentity *id, std::string *error);

/* Of `tables` (names as in subplan keys), those a snapshot can sample: they
 * exist, are tables, and are not temporary (another session's temporary
 * table cannot be read, and it is gone with its session).  Feedback outlives
 * the tables it was observed on; training leaves the rest out.  False (and
 * *error) when the database cannot be asked. */
bool samplable_tables(const std::string &dsn, const std::vector<std::string> &tables,
                      std::vector<std::string> *out, std::string *error);

/* Identity and fingerprint only (catalog queries, no table scans): at model
 * load, to check that the bound database is unchanged.  A table that no
 * longer exists is an error. */
bool database_identity(const std::string &dsn, const std::vector<std::string> &tables, DatabaseIdentity *id,
                       std::string *error);

} // namespace pilotd

#endif
