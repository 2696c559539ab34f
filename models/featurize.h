/*
 * featurize.h — turns a relation set (its canonical subplan key text, see
 * common/subplan_key.h) into the sets an MSCN-style network reads (Kipf et al.,
 * "Learned Cardinalities", CIDR 2019): a set of tables, a set of joins and a
 * set of predicates.  Shared by training and serving: both call featurize()
 * with the Schema a model was trained with, so they cannot disagree.
 *
 * Beyond the paper:
 *   - every table instance carries a sample bitmap: the schema holds a small
 *     random sample of each table and the instance's predicates are evaluated
 *     on it (bit i = sample row i qualifies), plus the qualifying fraction;
 *   - range predicates on one column are folded into one interval [lo, hi]
 *     (normalized with the column's min/max), so "a >= 3 AND a <= 9" is one
 *     predicate, not two;
 *   - PostgreSQL's own estimate is a global input when known (base relations,
 *     and joins sized by the backend before the planner builds them:
 *     extension/native_join_size.cpp; absent for outer joins and the like);
 *   - an independence estimate computed here (each relation's rows by its
 *     sample, multiplied, divided by the larger table of each join): the
 *     network learns a correction to PostgreSQL's estimate where it is known,
 *     to this one elsewhere, so a model with little training data starts from
 *     a sensible guess instead of from nothing.
 *
 * Predicates the featurizer understands: comparisons of a column with a
 * constant (=, <>, <, <=, >, >=), IN / = ANY(array), IS [NOT] NULL,
 * [NOT] LIKE / ILIKE (evaluated on the sample only: the value itself is not a
 * feature), and equi-joins between columns (equivalence classes).  Anything
 * else — OR, NOT, functions or casts around a column, column-to-column
 * comparisons that are not equi-joins, outer/semi/anti joins, tables, columns
 * or joins the model never saw — makes featurize() decline with a reason, and
 * the planner keeps PostgreSQL's estimate.
 *
 * Value domains: numeric types, boolean (0/1), date (days since 2000-01-01),
 * timestamp[tz] (seconds since 2000-01-01 UTC) compare as doubles; text types
 * compare bytewise (C collation: an approximation for other collations, used
 * for sample evaluation only).
 *
 * No libtorch here: features are plain float vectors (models/mscn.h turns
 * them into tensors).
 */
#ifndef PILOT_MODELS_FEATURIZE_H
#define PILOT_MODELS_FEATURIZE_H

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace pilot {
namespace model {

enum class ValueKind : uint8_t {
    Numeric = 0, /* numbers, booleans, dates, timestamps: compared as double */
    Text = 1,    /* text, varchar, char, name: compared bytewise */
    Other = 2,   /* anything else: predicates on it decline */
};

struct ColumnInfo {
    std::string name;  /* as the key text writes it: quote_ident(attname) */
    std::string type;  /* format_type() of the column, e.g. "timestamp without time zone" */
    ValueKind kind = ValueKind::Other;
    double min = 0, max = 0; /* Numeric: range of the column's values (normalization) */
};

struct TableInfo {
    std::string name; /* as the key text writes it: "public.posts" */
    double reltuples = 0;
    std::vector<ColumnInfo> columns;
    /* the sample: sample_rows rows; per column (same order as columns) */
    uint32_t sample_rows = 0;
    std::vector<std::vector<double>> num;       /* [column][row]: Numeric columns, else empty */
    std::vector<std::vector<std::string>> text; /* [column][row]: Text columns, else empty */
    std::vector<std::vector<uint8_t>> null;     /* [column][row]: 1 = NULL (every column) */
};

/* Everything a model knows about its database.  Saved inside the model file. */
struct Schema {
    std::vector<TableInfo> tables;
    std::vector<std::string> joins; /* vocabulary: join_name() of each equi-join seen in training */
    uint32_t sample_size = 0;       /* bitmap width: max sample_rows */
    double max_log_rows = 1;        /* log(rows) normalization: ln of the largest label + 1 */

    /* lookups; call index() after filling or changing the vectors */
    void index();
    int table_index(const std::string &name) const;
    int column_index(int table, const std::string &column) const; /* within the table */
    int global_column(int table, int column) const;               /* across tables */
    int join_index(const std::string &join) const;
    uint32_t ncolumns() const { return ncolumns_; }

  private:
    std::unordered_map<std::string, int> table_ix_;
    std::vector<std::unordered_map<std::string, int>> column_ix_;
    std::vector<int> column_base_;
    std::unordered_map<std::string, int> join_ix_;
    uint32_t ncolumns_ = 0;
};

/* Canonical name of an equi-join between two columns: the two sides
 * "table.column" sorted and joined with '='. */
std::string join_name(const std::string &table_a, const std::string &col_a,
                      const std::string &table_b, const std::string &col_b);

/* Predicate kinds (one-hot in the predicate vector). */
enum PredKind : int {
    PK_RANGE = 0,  /* folded <, <=, >, >= (and = as lo == hi) on a Numeric column */
    PK_EQ,         /* = constant (Text columns; Numeric ones fold into PK_RANGE) */
    PK_NE,         /* <> constant */
    PK_IN,         /* = ANY(array) */
    PK_LIKE,       /* LIKE / ILIKE (sample only) */
    PK_NOT_LIKE,   /* NOT LIKE / NOT ILIKE (sample only) */
    PK_IS_NULL,
    PK_NOT_NULL,
    PK_COUNT
};

struct Dims {
    uint32_t table = 0; /* one-hot table + bitmap + qualifying fraction + log reltuples */
    uint32_t join = 0;  /* one-hot join (+1: a bias slot so an empty join set has one zero row) */
    uint32_t pred = 0;  /* one-hot column + one-hot kind + lo + hi + log(list length) */
    uint32_t global = 0; /* has native, native label, number of relations, independence estimate label, is a join */
};

Dims dims_of(const Schema &s);

/* The featurized relation set: row-major [n][dim] per set.  Each set has at
 * least one row (an empty join or predicate set gets one all-zero row with
 * its mask 0), so a batch pads cleanly. */
struct Features {
    std::vector<float> tables, joins, preds, global;
    uint32_t ntables = 0, njoins = 0, npreds = 0;           /* rows */
    uint32_t real_joins = 0, real_preds = 0;                /* rows that are not padding */
    uint32_t nrels = 0;                                     /* relations in the set (> 1: a join) */
    uint32_t fewest_hits = 0; /* fewest sample rows a relation of the set keeps (answer_rule.h) */
};

/* Whether f has the shape a network of these dimensions reads (inline: the
 * libtorch runtime library, which does not link this file, uses it too). */
inline bool features_fit(const Features &f, const Dims &d) {
    return f.tables.size() == static_cast<size_t>(f.ntables) * d.table &&
           f.joins.size() == static_cast<size_t>(f.njoins) * d.join &&
           f.preds.size() == static_cast<size_t>(f.npreds) * d.pred && f.global.size() == d.global &&
           f.real_joins <= f.njoins && f.real_preds <= f.npreds && f.ntables >= 1;
}

/* The parsed form of a key text (useful on its own: training collects the
 * join vocabulary with it). */
struct KeyInfo {
    struct Rel { std::string table; };
    struct Join { int rel_a, rel_b; std::string col_a, col_b; };
    struct Pred {
        int rel;
        std::string column;
        std::string op;      /* "=", "<>", "<", "<=", ">", ">=", "ANY", "LIKE", "NOT LIKE", "IS NULL", "IS NOT NULL" */
        std::string type;    /* the constant's type as written after "::" ("" for IS [NOT] NULL) */
        std::string literal; /* the constant's text: the quoted literal decoded, or hex bytes for X'..' */
        bool binary = false; /* literal came as X'..' (send format) */
        bool case_insensitive = false; /* ILIKE */
    };
    std::vector<Rel> rels; /* index = tN - 1 */
    std::vector<Join> joins;
    std::vector<Pred> preds;
    /* EQ of two columns of one table (rel_a == rel_b) without a constant:
     * described only when "=" predicates give both columns the same constant
     * (PostgreSQL writes "a = 0 AND b = 0" so), checked at the end of
     * parse_key() and then dropped */
    std::vector<Join> same_table_equalities;
};

/* A constant written in binary form in a key text (X'..', the type's send
 * form): its bytes, and the big-endian integer they hold. */
bool hex_bytes(const std::string &hex, std::vector<uint8_t> *out);
uint64_t big_endian(const std::vector<uint8_t> &b);

/* Parses a key text.  False with *why for a clause outside the understood
 * forms (see the header comment). */
bool parse_key(const std::string &text, KeyInfo *out, std::string *why);

/* What featurize() learned of a relation's predicates on the sample, kept for
 * the other sets of one batch: the sub-plans of a query share their base
 * relations, and each (table, predicates) pair is evaluated on the sample
 * once.  One per batch and thread; it grows with the batch. */
class SampleCache {
  public:
    struct Hits {
        std::vector<uint32_t> rows; /* sample rows that satisfy every predicate */
    };
    const Hits *find(const std::string &key) const {
        auto it = hits_.find(key);
        return it == hits_.end() ? nullptr : &it->second;
    }
    const Hits &put(std::string key, Hits h) { return hits_.emplace(std::move(key), std::move(h)).first->second; }
    size_t size() const { return hits_.size(); }
    uint64_t evaluations = 0; /* (table, predicates) pairs evaluated on the sample */

  private:
    std::unordered_map<std::string, Hits> hits_;
};

/* Featurizes a key text.  native_rows < 0: not known.  False with *why when
 * the model cannot describe the set (the caller keeps PostgreSQL's estimate).
 * cache: optional, shared by the calls of one batch.  Never throws (returns
 * false on allocation failure). */
bool featurize(const Schema &s, const std::string &key_text, double native_rows, Features *out,
               std::string *why, SampleCache *cache = nullptr) noexcept;

/* Normalized label: ln(max(rows, 1)) / schema.max_log_rows, and back. */
float rows_to_label(const Schema &s, double rows);
double label_to_rows(const Schema &s, float label);

} // namespace model
} // namespace pilot

#endif
