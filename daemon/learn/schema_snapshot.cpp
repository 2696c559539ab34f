/* schema_snapshot.cpp — see schema_snapshot.h. */
#include "schema_snapshot.h"

#include "pq_session.h"

#include "log.h"
#include "conninfo.h"
#include "pilot_protocol.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <set>

namespace pilotd {

using pilot::model::ColumnInfo;
using pilot::model::Schema;
using pilot::model::TableInfo;
using pilot::model::ValueKind;

namespace {

/* pg_type OIDs (src/include/catalog/pg_type.dat: fixed, never renumbered) */
constexpr uint32_t kBoolOid = 16, kNameOid = 19, kInt8Oid = 20, kInt2Oid = 21, kInt4Oid = 23, kTextOid = 25,
                   kOidOid = 26, kFloat4Oid = 700, kFloat8Oid = 701, kBpcharOid = 1042, kVarcharOid = 1043,
                   kDateOid = 1082, kTimestampOid = 1114, kTimestamptzOid = 1184, kNumericOid = 1700;

/* sampling strategy thresholds (rows, from the exact count) */
constexpr double kSmallTable = 100000;   /* up to: ORDER BY random() over the whole table */
constexpr double kMediumTable = 10000000; /* up to: BERNOULLI; beyond: SYSTEM */

using Result = PgResult;

/* One snapshot session: a read-only REPEATABLE READ transaction. */
class Session {
  public:
    bool connect(const std::string &dsn, std::string *error) {
        if (!pq_.connect(dsn, "pilotd schema snapshot", error)) {
            *error = "schema snapshot: " + *error;
            return false;
        }
        if (!pilotd_own_session(pq_.conn(), error)) {
            *error = "schema snapshot: " + *error;
            return false;
        }
        /* deterministic scans: no parallel workers (random() runs in the
         * leader in scan order), no synchronized seqscans (a scan starting
         * mid-table) */
        static const char *const setup[] = {
            "SET search_path = pg_catalog",
            "SET statement_timeout = '5min'",
            "SET lock_timeout = '30s'",
            "SET idle_in_transaction_session_timeout = 0",
            "SET extra_float_digits = 3",
            "SET max_parallel_workers_per_gather = 0",
            "SET synchronize_seqscans = off",
            "SELECT pg_catalog.set_config('client_encoding', pg_catalog.current_setting('server_encoding'), false)",
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        for (const char *sql : setup) {
            std::string err;
            if (!pq_.exec(sql, &err)) {
                *error = std::string("schema snapshot: session setup (") + sql + ") failed: " + err;
                return false;
            }
        }
        return true;
    }

    /* SELECT with text parameters; null result on error (*error set to
     * what + the server's message). */
    Result query(const std::string &sql, const std::vector<std::string> &params, const std::string &what,
                 std::string *error) {
        std::string err, state;
        Result r = pq_.query(sql, params, &err, &state);
        if (!r) {
            *error = "schema snapshot: " + what + " failed: " + err;
            if (state == "42501" && err.find("pg_control_system") != std::string::npos)
                *error += " (reading the system identifier needs superuser or membership in pg_monitor)";
        }
        return r;
    }

  private:
    PqSession pq_;
};

struct TableRef {
    std::string oid;   /* decimal, for parameters */
    std::string name;  /* canonical: quote_ident(nspname) || '.' || quote_ident(relname), server-quoted */
    double reltuples = -1;
    char relkind = 'r';
    TableInfo info;
    std::vector<uint32_t> base_type; /* per column: type OID below any domains */
};

ValueKind kind_of(uint32_t base) {
    switch (base) {
    case kInt2Oid: case kInt4Oid: case kInt8Oid: case kNumericOid: case kFloat4Oid: case kFloat8Oid:
    case kOidOid: case kBoolOid: case kDateOid: case kTimestampOid: case kTimestamptzOid:
        return ValueKind::Numeric;
    case kTextOid: case kVarcharOid: case kBpcharOid: case kNameOid:
        return ValueKind::Text;
    default:
        return ValueKind::Other;
    }
}

/* A Numeric column's value as float8 in featurize.h's units.  col is a
 * server-quoted identifier (quote_ident), safe to splice. */
std::string numeric_expr(const std::string &col, uint32_t base) {
    switch (base) {
    case kOidOid: return "(" + col + ")::oid::int8::float8";
    case kBoolOid: return "(" + col + ")::bool::int4::float8";
    /* extract(epoch) is numeric (exact) and keeps ±infinity; a date's epoch
     * is a multiple of 86400: days since 2000-01-01 = epoch / 86400 - 10957 */
    case kDateOid: return "(extract(epoch FROM (" + col + ")::date) / 86400 - 10957)::float8";
    /* timestamp without time zone: extract(epoch) reads it as UTC */
    case kTimestampOid: return "(extract(epoch FROM (" + col + ")::timestamp) - 946684800)::float8";
    case kTimestamptzOid: return "(extract(epoch FROM (" + col + ")::timestamptz) - 946684800)::float8";
    case kInt2Oid: return "(" + col + ")::int2::float8";
    case kInt4Oid: return "(" + col + ")::int4::float8";
    case kInt8Oid: return "(" + col + ")::int8::float8";
    case kFloat4Oid: return "(" + col + ")::float4::float8";
    /* numeric beyond float8's range would make the cast fail: ±Infinity / 0 */
    case kNumericOid: {
        const std::string v = "(" + col + ")::numeric";
        return "(CASE WHEN abs(" + v + ") >= 1e308 THEN sign(" + v + ")::float8 * 'Infinity'::float8 WHEN abs(" + v +
               ") < 1e-300 THEN 0::float8 ELSE " + v + "::float8 END)";
    }
    default: return "(" + col + ")::float8";
    }
}

double to_double(const char *s) {
    char *end = nullptr;
    double v = strtod(s, &end);
    return end == s ? 0 : v;
}

/* Resolves names, reads columns; dedups and sorts by canonical name. */
bool load_tables(Session &db, const std::vector<std::string> &names, std::vector<TableRef> *out,
                 std::string *error) {
    static const char *const kResolve =
        "SELECT c.oid::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text, "
        "c.reltuples::float8 "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)";
    /* the type below any domains: typbasetype followed while typtype = 'd' */
    static const char *const kColumns =
        "SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), "
        "  (WITH RECURSIVE b(oid, typtype, typbasetype) AS ("
        "     SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t WHERE t.oid = a.atttypid"
        "     UNION ALL"
        "     SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t JOIN b ON t.oid = b.typbasetype"
        "     WHERE b.typtype = 'd')"
        "   SELECT b.oid::text FROM b WHERE b.typtype <> 'd' LIMIT 1) "
        "FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum";
    std::set<std::string> seen;
    std::vector<TableRef> tables;
    for (const std::string &name : names) {
        Result r = db.query(kResolve, {name}, "resolving table " + name, error);
        if (!r)
            return false;
        if (PQntuples(r.get()) != 1) {
            *error = "schema snapshot: table " + name +
                     " not found (names are schema-qualified and quoted as in subplan keys, e.g. public.posts)";
            return false;
        }
        TableRef t;
        t.oid = PQgetvalue(r.get(), 0, 0);
        t.name = PQgetvalue(r.get(), 0, 1);
        t.relkind = PQgetvalue(r.get(), 0, 2)[0];
        t.reltuples = to_double(PQgetvalue(r.get(), 0, 3));
        if (t.relkind != 'r' && t.relkind != 'p' && t.relkind != 'm' && t.relkind != 'f') {
            *error = "schema snapshot: " + name + " is not a table (relkind '" + std::string(1, t.relkind) + "')";
            return false;
        }
        if (!seen.insert(t.name).second)
            continue;
        Result c = db.query(kColumns, {t.oid}, "reading the columns of " + t.name, error);
        if (!c)
            return false;
        t.info.name = t.name;
        for (int i = 0; i < PQntuples(c.get()); i++) {
            ColumnInfo col;
            col.name = PQgetvalue(c.get(), i, 0);
            col.type = PQgetvalue(c.get(), i, 1);
            uint32_t base = static_cast<uint32_t>(strtoul(PQgetvalue(c.get(), i, 2), nullptr, 10));
            col.kind = kind_of(base);
            t.info.columns.push_back(std::move(col));
            t.base_type.push_back(base);
        }
        tables.push_back(std::move(t));
    }
    std::sort(tables.begin(), tables.end(),
              [](const TableRef &a, const TableRef &b) { return a.name < b.name; });
    *out = std::move(tables);
    return true;
}

std::string fingerprint_of(const std::vector<TableRef> &tables) {
    std::string s;
    for (const TableRef &t : tables) {
        s += t.name;
        s += '\0';
        for (const ColumnInfo &c : t.info.columns) {
            s += c.name;
            s += '\0';
            s += c.type;
            s += '\0';
        }
        s += '\1';
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, pilot::proto::stable_hash64(s.data(), s.size()));
    return hex;
}

bool read_identity(Session &db, const std::vector<TableRef> &tables, DatabaseIdentity *id, std::string *error) {
    Result r = db.query("SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database(), "
                        "(SELECT d.oid::text FROM pg_database d WHERE d.datname = current_database())",
                        {}, "reading the database identity", error);
    if (!r)
        return false;
    DatabaseIdentity d;
    d.system_identifier = PQgetvalue(r.get(), 0, 0);
    d.database = PQgetvalue(r.get(), 0, 1);
    d.dboid = static_cast<uint32_t>(strtoul(PQgetvalue(r.get(), 0, 2), nullptr, 10));
    d.fingerprint = fingerprint_of(tables);
    for (const TableRef &t : tables)
        d.reltuples.emplace_back(t.name, t.reltuples);
    *id = std::move(d);
    return true;
}

/* count(*) and min/max of every Numeric column: one scan. */
bool scan_ranges(Session &db, TableRef &t, double *count, std::string *error) {
    std::string inner, outer = "count(*)::float8";
    int nnum = 0;
    for (size_t i = 0; i < t.info.columns.size(); i++) {
        if (t.info.columns[i].kind != ValueKind::Numeric)
            continue;
        std::string v = "v" + std::to_string(i);
        inner += (inner.empty() ? "" : ", ") + numeric_expr(t.info.columns[i].name, t.base_type[i]) + " AS " + v;
        const std::string finite = " FILTER (WHERE " + v + " > '-Infinity'::float8 AND " + v + " < 'Infinity'::float8)";
        outer += ", min(" + v + ")" + finite + ", max(" + v + ")" + finite;
        nnum++;
    }
    std::string sql = "SELECT " + outer + " FROM ";
    if (nnum > 0)
        sql += "(SELECT " + inner + " FROM " + t.name + ") s";
    else
        sql += t.name;
    Result r = db.query(sql, {}, "min/max scan of " + t.name, error);
    if (!r)
        return false;
    *count = to_double(PQgetvalue(r.get(), 0, 0));
    int f = 1;
    for (ColumnInfo &c : t.info.columns) {
        if (c.kind != ValueKind::Numeric)
            continue;
        if (PQgetisnull(r.get(), 0, f) || PQgetisnull(r.get(), 0, f + 1)) {
            c.min = c.max = 0;
        } else {
            c.min = to_double(PQgetvalue(r.get(), 0, f));
            c.max = to_double(PQgetvalue(r.get(), 0, f + 1));
        }
        f += 2;
    }
    return true;
}

/* Up to n sample rows (see the header for the strategy). */
bool sample(Session &db, TableRef &t, double count, uint32_t n, std::string *error) {
    TableInfo &ti = t.info;
    const size_t ncol = ti.columns.size();
    ti.num.assign(ncol, {});
    ti.text.assign(ncol, {});
    ti.null.assign(ncol, {});
    ti.sample_rows = 0;
    if (n == 0 || count <= 0)
        return true;

    std::string list;
    for (size_t i = 0; i < ncol; i++) {
        const ColumnInfo &c = ti.columns[i];
        if (!list.empty())
            list += ", ";
        switch (c.kind) {
        case ValueKind::Numeric: list += numeric_expr(c.name, t.base_type[i]); break;
        case ValueKind::Text: list += "(" + c.name + ")::text"; break; /* bpchar: without padding */
        default: list += "(" + c.name + ") IS NULL"; break;             /* only whether it is NULL */
        }
    }
    if (list.empty())
        list = "1"; /* a table without columns */

    /* deterministic per table: the seeds come from its name */
    const uint64_t h = pilot::proto::stable_hash64(t.name.data(), t.name.size(), 0x5eed);
    char seed_random[32], seed_sample[32], limit[32], pct[40];
    snprintf(seed_random, sizeof seed_random, "%.6f", static_cast<double>(h % 2000001) / 1000000.0 - 1.0);
    snprintf(seed_sample, sizeof seed_sample, "%" PRIu64, (h >> 32) % 2147483647);
    snprintf(limit, sizeof limit, "%" PRIu32, n);
    if (db.query("SELECT setseed($1::float8)", {seed_random}, "setseed for " + t.name, error) ==
        nullptr)
        return false;

    std::string sql = "SELECT " + list + " FROM " + t.name;
    std::vector<std::string> params;
    const char *how = "ORDER BY random()";
    /* foreign tables: TABLESAMPLE depends on the wrapper; read them whole */
    if (count > kSmallTable && t.relkind != 'f') {
        const bool system = count > kMediumTable;
        const double want = system ? 10.0 * n : 2.0 * n + 100;
        double p = std::min(100.0, 100.0 * want / count);
        snprintf(pct, sizeof pct, "%.9g", p);
        sql += system ? " TABLESAMPLE SYSTEM ($1::float4) REPEATABLE ($2::float8)"
                      : " TABLESAMPLE BERNOULLI ($1::float4) REPEATABLE ($2::float8)";
        params = {pct, seed_sample};
        how = system ? "TABLESAMPLE SYSTEM" : "TABLESAMPLE BERNOULLI";
    }
    sql += " ORDER BY random() LIMIT " + std::string(limit);
    Result r = db.query(sql, params, std::string("sampling ") + t.name + " (" + how + ")", error);
    if (!r)
        return false;

    const int rows = PQntuples(r.get());
    for (size_t i = 0; i < ncol; i++) {
        const ValueKind k = ti.columns[i].kind;
        if (k == ValueKind::Numeric)
            ti.num[i].resize(rows, 0.0);
        else if (k == ValueKind::Text)
            ti.text[i].resize(rows);
        ti.null[i].resize(rows, 0);
        for (int row = 0; row < rows; row++) {
            const int f = static_cast<int>(i);
            if (PQgetisnull(r.get(), row, f)) {
                ti.null[i][row] = 1;
                continue;
            }
            const char *v = PQgetvalue(r.get(), row, f);
            if (k == ValueKind::Numeric)
                ti.num[i][row] = to_double(v);
            else if (k == ValueKind::Text)
                ti.text[i][row].assign(v, PQgetlength(r.get(), row, f));
            else
                ti.null[i][row] = v[0] == 't' ? 1 : 0;
        }
    }
    ti.sample_rows = static_cast<uint32_t>(rows);
    LOG_DEBUG("schema snapshot: %s: %.0f rows, %d sampled (%s)", t.name.c_str(), count, rows, how);
    return true;
}

/* Connects, resolves the tables and reads the identity: both entry points. */
/* The frame of both entry points: connects, resolves the tables, reads the
 * identity, then body(db, refs, ident, error); no exception leaves it. */
template <class Body>
bool with_tables(const std::string &dsn, const std::vector<std::string> &tables, std::string *error, Body body) {
    std::string scratch;
    if (error == nullptr)
        error = &scratch;
    try {
        Session db;
        std::vector<TableRef> refs;
        DatabaseIdentity ident;
        return db.connect(dsn, error) && load_tables(db, tables, &refs, error) &&
               read_identity(db, refs, &ident, error) && body(db, refs, ident, error);
    } catch (const std::bad_alloc &) {
        *error = "schema snapshot: out of memory";
        return false;
    }
}

} // namespace

bool samplable_tables(const std::string &dsn, const std::vector<std::string> &tables,
                      std::vector<std::string> *out, std::string *error) {
    /* by name, not to_regclass(): that raises an error for a schema the
     * role may not use, as another session's pg_temp_N */
    static const char *const kSamplable =
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, parse_ident($1) p "
        "WHERE cardinality(p) = 2 AND n.nspname = p[1] AND c.relname = p[2] AND c.relpersistence <> 't' "
        "AND c.relkind IN ('r', 'p', 'm', 'f')";
    try {
        Session db;
        if (!db.connect(dsn, error))
            return false;
        out->clear();
        for (const std::string &name : tables) {
            Result r = db.query(kSamplable, {name}, "looking for table " + name, error);
            if (!r)
                return false;
            if (PQntuples(r.get()) == 1)
                out->push_back(name);
        }
        return true;
    } catch (const std::bad_alloc &) {
        *error = "schema snapshot: out of memory";
        return false;
    }
}

bool snapshot_schema(const std::string &dsn, const std::vector<std::string> &tables, uint32_t sample_rows,
                     Schema *out, DatabaseIdentity *id, std::string *error) {
    return with_tables(dsn, tables, error,
                       [&](Session &db, std::vector<TableRef> &refs, DatabaseIdentity &ident, std::string *err) {
                           uint32_t sample_size = 0;
                           for (TableRef &t : refs) {
                               double count = 0;
                               if (!scan_ranges(db, t, &count, err))
                                   return false;
                               /* never analyzed (-1): the exact count we just made */
                               t.info.reltuples = t.reltuples >= 0 ? t.reltuples : count;
                               if (!sample(db, t, count, sample_rows, err))
                                   return false;
                               sample_size = std::max(sample_size, t.info.sample_rows);
                           }
                           out->tables.clear();
                           for (TableRef &t : refs)
                               out->tables.push_back(std::move(t.info));
                           out->sample_size = sample_size;
                           out->index();
                           if (id != nullptr)
                               *id = std::move(ident);
                           return true;
                       });
}

bool database_identity(const std::string &dsn, const std::vector<std::string> &tables, DatabaseIdentity *id,
                       std::string *error) {
    return with_tables(dsn, tables, error,
                       [&](Session &, std::vector<TableRef> &, DatabaseIdentity &ident, std::string *) {
                           if (id != nullptr)
                               *id = std::move(ident);
                           return true;
                       });
}

} // namespace pilotd
