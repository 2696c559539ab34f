/* featurize.cpp — see featurize.h. */
#include "featurize.h"

#include "answer_rule.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

namespace pilot {
namespace model {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kLogTuplesScale = 25.0f; /* ln(7e10): log reltuples lands in [0, 1] */
constexpr float kMaxRelsScale = 16.0f;

/* ------------------------------------------------------------------ */
/* Terms of a clause: a column, a constant, or something else.        */

struct Term {
    enum Kind { VAR, CONST, NULLCONST, OTHER } kind = OTHER;
    int rel = -1;         /* VAR: relation index (tN - 1) */
    std::string column;   /* VAR */
    std::string type;     /* CONST: type after "::" */
    std::string literal;  /* CONST: decoded literal, or hex digits when binary */
    bool binary = false;
    std::string what;     /* OTHER: for the decline reason */
};

/* Multi-word type names format_type() writes (longest first). */
const char *const kMultiWordTypes[] = {
    "timestamp without time zone", "timestamp with time zone", "time without time zone",
    "time with time zone", "character varying", "double precision", "bit varying",
};

class Parser {
  public:
    explicit Parser(const std::string &s) : s_(s) {}

    bool at_end() const { return pos_ >= s_.size(); }
    size_t pos() const { return pos_; }
    bool eat(const char *lit) {
        size_t n = strlen(lit);
        if (s_.compare(pos_, n, lit) == 0) {
            pos_ += n;
            return true;
        }
        return false;
    }
    bool starts(const char *lit) const { return s_.compare(pos_, strlen(lit), lit) == 0; }
    char peek() const { return at_end() ? '\0' : s_[pos_]; }

    /* Skips a balanced run up to a depth-0 ' ', ',' or ')'. */
    std::string skip_term() {
        size_t start = pos_;
        int depth = 0;
        bool quoted = false;
        while (!at_end()) {
            char c = s_[pos_];
            if (quoted) {
                if (c == '\'') {
                    if (pos_ + 1 < s_.size() && s_[pos_ + 1] == '\'')
                        pos_++;
                    else
                        quoted = false;
                }
            } else if (c == '\'') {
                quoted = true;
            } else if (c == '(') {
                depth++;
            } else if (c == ')') {
                if (depth == 0)
                    break;
                depth--;
            } else if ((c == ' ' || c == ',') && depth == 0) {
                break;
            }
            pos_++;
        }
        return s_.substr(start, pos_ - start);
    }

    /* An operator or call name: up to a depth-0 space or the opening '(' of
     * its argument list (for calls); operator names carry "(type,type)". */
    std::string read_opname() {
        size_t start = pos_;
        int depth = 0;
        while (!at_end()) {
            char c = s_[pos_];
            if (c == '(')
                depth++;
            else if (c == ')') {
                if (depth == 0)
                    break;
                depth--;
            } else if (c == ' ' && depth == 0)
                break;
            pos_++;
        }
        return s_.substr(start, pos_ - start);
    }

    bool read_identifier(std::string *out) {
        size_t start = pos_;
        if (peek() == '"') {
            pos_++;
            while (!at_end()) {
                if (s_[pos_] == '"') {
                    if (pos_ + 1 < s_.size() && s_[pos_ + 1] == '"') {
                        pos_ += 2;
                        continue;
                    }
                    pos_++;
                    *out = s_.substr(start, pos_ - start);
                    return true;
                }
                pos_++;
            }
            return false;
        }
        while (!at_end()) {
            unsigned char c = static_cast<unsigned char>(s_[pos_]);
            if (!(std::isalnum(c) || c == '_' || c == '$' || c >= 0x80))
                break;
            pos_++;
        }
        *out = s_.substr(start, pos_ - start);
        return pos_ > start;
    }

    bool read_type(std::string *out) {
        for (const char *t : kMultiWordTypes) {
            if (starts(t)) {
                pos_ += strlen(t);
                *out = t;
                goto suffix;
            }
        }
        {
            size_t start = pos_;
            while (!at_end()) {
                char c = s_[pos_];
                if (c == ' ' || c == ',' || c == ')' || c == '[')
                    break;
                if (c == '"') { /* quoted part of a qualified name */
                    std::string ident;
                    if (!read_identifier(&ident))
                        return false;
                    continue;
                }
                pos_++;
            }
            *out = s_.substr(start, pos_ - start);
        }
    suffix:
        /* built-in types may come schema-qualified: one spelling */
        if (out->compare(0, 11, "pg_catalog.") == 0)
            out->erase(0, 11);
        while (eat("[]"))
            *out += "[]";
        return !out->empty();
    }

    /* A quoted literal at pos ('...' or E'...'): decoded into *out. */
    bool read_literal(std::string *out) {
        bool escapes = false;
        if (eat("E'"))
            escapes = true;
        else if (!eat("'"))
            return false;
        out->clear();
        while (!at_end()) {
            char c = s_[pos_++];
            if (c == '\'') {
                if (peek() == '\'') {
                    out->push_back('\'');
                    pos_++;
                    continue;
                }
                return true;
            }
            if (escapes && c == '\\' && !at_end()) {
                out->push_back(s_[pos_++]);
                continue;
            }
            out->push_back(c);
        }
        return false;
    }

    Term read_term() {
        Term t;
        size_t start = pos_;
        if (peek() == 't') {
            /* tN.column */
            size_t p = pos_ + 1;
            int n = 0;
            while (p < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p])))
                n = n * 10 + (s_[p++] - '0');
            if (p > pos_ + 1 && p < s_.size() && s_[p] == '.' && n >= 1) {
                pos_ = p + 1;
                if (read_identifier(&t.column)) {
                    t.kind = Term::VAR;
                    t.rel = n - 1;
                    return t;
                }
            }
            pos_ = start;
        }
        if (starts("NULL::")) {
            pos_ += 6;
            t.kind = Term::NULLCONST;
            read_type(&t.type);
            return t;
        }
        if (starts("X'")) {
            pos_ += 2;
            size_t hex = pos_;
            while (!at_end() && s_[pos_] != '\'')
                pos_++;
            t.literal = s_.substr(hex, pos_ - hex);
            if (eat("'::") && read_type(&t.type)) {
                t.kind = Term::CONST;
                t.binary = true;
                return t;
            }
            pos_ = start;
        }
        if (peek() == '\'' || starts("E'")) {
            if (read_literal(&t.literal) && eat("::") && read_type(&t.type)) {
                t.kind = Term::CONST;
                return t;
            }
            pos_ = start;
        }
        if (starts("::")) {
            /* a cast around a term: "::type(term)"; casts of a column keep the
             * column (its values compare the same way in the domains we use) */
            pos_ += 2;
            std::string type;
            size_t open = s_.find('(', pos_);
            if (open != std::string::npos) {
                pos_ = open + 1;
                Term inner = read_term();
                if (eat(")") && (inner.kind == Term::VAR || inner.kind == Term::CONST))
                    return inner;
            }
            pos_ = start;
        }
        t.kind = Term::OTHER;
        t.what = skip_term();
        return t;
    }

  private:
    const std::string &s_;
    size_t pos_ = 0;
};

/* "pg_catalog.<=(integer,integer)" -> "<="; "" for anything not in pg_catalog */
std::string operator_symbol(const std::string &name) {
    static const char kPrefix[] = "pg_catalog.";
    if (name.compare(0, sizeof kPrefix - 1, kPrefix) != 0)
        return "";
    size_t open = name.find('(', sizeof kPrefix - 1);
    return name.substr(sizeof kPrefix - 1, open == std::string::npos ? std::string::npos
                                                                      : open - (sizeof kPrefix - 1));
}

std::string flip(const std::string &op) {
    if (op == "<") return ">";
    if (op == "<=") return ">=";
    if (op == ">") return "<";
    if (op == ">=") return "<=";
    return op;
}

bool decline(std::string *why, std::string reason) {
    if (why)
        *why = std::move(reason);
    return false;
}

/* One clause line (after "C "). */
bool parse_clause(const std::string &c, KeyInfo *out, std::string *why) {
    Parser p(c);
    if (p.eat("(")) {
        Term a = p.read_term();
        if (!p.eat(" "))
            return decline(why, "unreadable clause: " + c);
        std::string op = p.read_opname();
        if (p.eat(" COLLATE ")) {
            std::string coll;
            p.read_identifier(&coll);
        }
        if (!p.eat(" "))
            return decline(why, "unreadable clause: " + c);
        Term b = p.read_term();
        if (!p.eat(")") || !p.at_end())
            return decline(why, "unreadable clause: " + c);
        std::string sym = operator_symbol(op);
        if (sym.empty())
            return decline(why, "operator " + op);
        if (a.kind == Term::VAR && b.kind == Term::VAR) {
            if (sym != "=" || a.rel == b.rel)
                return decline(why, "column-to-column comparison " + c);
            out->joins.push_back({a.rel, b.rel, a.column, b.column});
            return true;
        }
        if (a.kind == Term::CONST && b.kind == Term::VAR) {
            std::swap(a, b);
            sym = flip(sym);
        }
        if (a.kind != Term::VAR || b.kind != Term::CONST)
            return decline(why, "clause not of the form column-operator-constant: " + c);
        KeyInfo::Pred pr;
        pr.rel = a.rel;
        pr.column = a.column;
        pr.type = b.type;
        pr.literal = b.literal;
        pr.binary = b.binary;
        if (sym == "~~" || sym == "~~*") {
            pr.op = "LIKE";
            pr.case_insensitive = sym == "~~*";
        } else if (sym == "!~~" || sym == "!~~*") {
            pr.op = "NOT LIKE";
            pr.case_insensitive = sym == "!~~*";
        } else if (sym == "=" || sym == "<>" || sym == "<" || sym == "<=" || sym == ">" || sym == ">=") {
            pr.op = sym;
        } else {
            return decline(why, "operator " + sym);
        }
        out->preds.push_back(std::move(pr));
        return true;
    }
    if (p.eat("EQ(")) {
        std::vector<Term> vars, consts;
        for (;;) {
            Term t = p.read_term();
            if (t.kind == Term::VAR)
                vars.push_back(t);
            else if (t.kind == Term::CONST)
                consts.push_back(t);
            else
                return decline(why, "equivalence member " + (t.what.empty() ? std::string("NULL") : t.what));
            if (p.eat(", "))
                continue;
            if (p.eat(")") && p.at_end())
                break;
            return decline(why, "unreadable clause: " + c);
        }
        if (consts.size() > 1)
            return decline(why, "equivalence class with two constants");
        for (size_t i = 0; i < vars.size(); i++)
            for (size_t j = i + 1; j < vars.size(); j++) {
                if (vars[i].rel == vars[j].rel) {
                    /* "a = 5 AND b = 5": PostgreSQL puts a, b and 5 in one
                     * class; a = b then follows from the two predicates */
                    if (consts.empty())
                        out->same_table_equalities.push_back({vars[i].rel, vars[j].rel, vars[i].column, vars[j].column});
                    continue;
                }
                out->joins.push_back({vars[i].rel, vars[j].rel, vars[i].column, vars[j].column});
            }
        for (const Term &v : vars)
            if (!consts.empty()) {
                KeyInfo::Pred pr;
                pr.rel = v.rel;
                pr.column = v.column;
                pr.op = "=";
                pr.type = consts[0].type;
                pr.literal = consts[0].literal;
                pr.binary = consts[0].binary;
                out->preds.push_back(std::move(pr));
            }
        return true;
    }
    if (p.eat("IS NULL(") || p.eat("IS NOT NULL(")) {
        bool is_null = c.compare(0, 8, "IS NULL(") == 0;
        Term t = p.read_term();
        if (t.kind != Term::VAR || !p.eat(")") || !p.at_end())
            return decline(why, "null test on an expression");
        KeyInfo::Pred pr;
        pr.rel = t.rel;
        pr.column = t.column;
        pr.op = is_null ? "IS NULL" : "IS NOT NULL";
        out->preds.push_back(std::move(pr));
        return true;
    }
    if (p.starts("pg_catalog.")) {
        std::string op = p.read_opname();
        if (p.eat(" COLLATE ")) {
            std::string coll;
            p.read_identifier(&coll);
        }
        if (p.eat(" ANY(")) {
            std::string sym = operator_symbol(op);
            Term a = p.read_term();
            if (sym != "=" || a.kind != Term::VAR || !p.eat(", "))
                return decline(why, "array comparison " + c);
            Term b = p.read_term();
            if (b.kind != Term::CONST || b.binary || !p.eat(")") || !p.at_end())
                return decline(why, "array comparison " + c);
            KeyInfo::Pred pr;
            pr.rel = a.rel;
            pr.column = a.column;
            pr.op = "ANY";
            pr.type = b.type;
            pr.literal = b.literal;
            out->preds.push_back(std::move(pr));
            return true;
        }
        return decline(why, "clause " + c.substr(0, 60));
    }
    /* AND, OR, NOT, functions, outer/semi/anti joins, ... */
    size_t open = c.find('(');
    return decline(why, "clause " + c.substr(0, open == std::string::npos ? 40 : std::min<size_t>(open, 40)));
}

} // namespace

/* ------------------------------------------------------------------ */
/* Constants as values of a column's domain.                           */

bool hex_bytes(const std::string &hex, std::vector<uint8_t> *out) {
    if (hex.size() % 2)
        return false;
    out->clear();
    for (size_t i = 0; i < hex.size(); i += 2) {
        auto nib = [](char ch) -> int {
            if (ch >= '0' && ch <= '9') return ch - '0';
            if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
            if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
            return -1;
        };
        int h = nib(hex[i]), l = nib(hex[i + 1]);
        if (h < 0 || l < 0)
            return false;
        out->push_back(static_cast<uint8_t>(h * 16 + l));
    }
    return true;
}

uint64_t big_endian(const std::vector<uint8_t> &b) {
    uint64_t v = 0;
    for (uint8_t x : b)
        v = (v << 8) | x;
    return v;
}

namespace {

bool is_text_type(const std::string &t) {
    return t == "text" || t == "character varying" || t == "character" || t == "name" ||
           t == "bpchar" || t == "unknown";
}

/* A constant as a double; false if it is not a number in our domains. */
bool numeric_value(const std::string &type, const std::string &literal, bool binary, double *v) {
    if (binary) {
        std::vector<uint8_t> b;
        if (!hex_bytes(literal, &b))
            return false;
        if ((type == "timestamp without time zone" || type == "timestamp with time zone") && b.size() == 8) {
            *v = static_cast<double>(static_cast<int64_t>(big_endian(b))) / 1e6;
            return true;
        }
        if (type == "date" && b.size() == 4) {
            *v = static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(big_endian(b))));
            return true;
        }
        if (type == "double precision" && b.size() == 8) {
            uint64_t bits = big_endian(b);
            double d;
            memcpy(&d, &bits, sizeof d);
            *v = d;
            return std::isfinite(d);
        }
        if (type == "real" && b.size() == 4) {
            uint32_t bits = static_cast<uint32_t>(big_endian(b));
            float f;
            memcpy(&f, &bits, sizeof f);
            *v = f;
            return std::isfinite(f);
        }
        return false;
    }
    if (type == "boolean") {
        if (literal == "t" || literal == "true") { *v = 1; return true; }
        if (literal == "f" || literal == "false") { *v = 0; return true; }
        return false;
    }
    if (type == "integer" || type == "bigint" || type == "smallint" || type == "numeric" || type == "oid") {
        char *end = nullptr;
        *v = strtod(literal.c_str(), &end);
        return end && *end == '\0' && !literal.empty() && std::isfinite(*v);
    }
    return false;
}

/* '{1,2,"x y"}' -> elements (no nesting, no NULLs) */
bool array_elements(const std::string &lit, std::vector<std::string> *out) {
    if (lit.size() < 2 || lit.front() != '{' || lit.back() != '}')
        return false;
    out->clear();
    size_t i = 1;
    while (i < lit.size() - 1) {
        std::string e;
        if (lit[i] == '"') {
            i++;
            while (i < lit.size() - 1 && lit[i] != '"') {
                if (lit[i] == '\\' && i + 1 < lit.size() - 1)
                    i++;
                e.push_back(lit[i++]);
            }
            i++; /* closing quote */
        } else {
            while (i < lit.size() - 1 && lit[i] != ',')
                e.push_back(lit[i++]);
            if (e == "NULL")
                return false;
        }
        out->push_back(std::move(e));
        if (i < lit.size() - 1) {
            if (lit[i] != ',')
                return false;
            i++;
        }
    }
    return true;
}

/* SQL LIKE: % any run, _ one character (bytes), backslash escapes. */
bool like_match(const char *s, const char *p, bool ci) {
    auto eq = [ci](char a, char b) {
        return ci ? std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b))
                  : a == b;
    };
    const char *star_p = nullptr, *star_s = nullptr;
    while (*s) {
        if (*p == '%') {
            star_p = ++p;
            star_s = s;
            continue;
        }
        if (*p == '\\' && p[1]) {
            if (eq(*s, p[1])) {
                s++;
                p += 2;
                continue;
            }
        } else if (*p && (*p == '_' || eq(*s, *p))) {
            s++;
            p++;
            continue;
        }
        if (!star_p)
            return false;
        p = star_p;
        s = ++star_s;
    }
    while (*p == '%')
        p++;
    return *p == '\0';
}

enum Op : uint8_t { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_ANY, OP_LIKE, OP_NOT_LIKE, OP_IS_NULL, OP_NOT_NULL };

Op op_code(const std::string &op) {
    if (op == "=") return OP_EQ;
    if (op == "<>") return OP_NE;
    if (op == "<") return OP_LT;
    if (op == "<=") return OP_LE;
    if (op == ">") return OP_GT;
    if (op == ">=") return OP_GE;
    if (op == "ANY") return OP_ANY;
    if (op == "LIKE") return OP_LIKE;
    if (op == "NOT LIKE") return OP_NOT_LIKE;
    if (op == "IS NULL") return OP_IS_NULL;
    return OP_NOT_NULL;
}

/* A predicate bound to a schema column, ready to evaluate on the sample. */
struct BoundPred {
    int rel, table, column;
    int kind;                      /* PredKind of the raw predicate */
    Op code = OP_EQ;
    double num = 0;                /* Numeric comparisons */
    std::string text;              /* Text comparisons, LIKE pattern */
    std::vector<double> nums;      /* IN (Numeric) */
    std::vector<std::string> texts; /* IN (Text) */
    bool ci = false;
};

bool matches(const TableInfo &t, const BoundPred &b, uint32_t row) {
    const ColumnInfo &col = t.columns[b.column];
    bool is_null = b.column < static_cast<int>(t.null.size()) && row < t.null[b.column].size() &&
                   t.null[b.column][row];
    if (b.code == OP_IS_NULL)
        return is_null;
    if (b.code == OP_NOT_NULL)
        return !is_null;
    if (is_null)
        return false;
    if (col.kind == ValueKind::Numeric) {
        if (b.column >= static_cast<int>(t.num.size()) || row >= t.num[b.column].size())
            return false;
        double x = t.num[b.column][row];
        switch (b.code) {
        case OP_EQ: return x == b.num;
        case OP_NE: return x != b.num;
        case OP_LT: return x < b.num;
        case OP_LE: return x <= b.num;
        case OP_GT: return x > b.num;
        case OP_GE: return x >= b.num;
        case OP_ANY: return std::find(b.nums.begin(), b.nums.end(), x) != b.nums.end();
        default: return false;
        }
    }
    if (b.column >= static_cast<int>(t.text.size()) || row >= t.text[b.column].size())
        return false;
    const std::string &x = t.text[b.column][row];
    switch (b.code) {
    case OP_EQ: return x == b.text;
    case OP_NE: return x != b.text;
    case OP_LT: return x < b.text;
    case OP_LE: return x <= b.text;
    case OP_GT: return x > b.text;
    case OP_GE: return x >= b.text;
    case OP_ANY: return std::find(b.texts.begin(), b.texts.end(), x) != b.texts.end();
    case OP_LIKE: return like_match(x.c_str(), b.text.c_str(), b.ci);
    case OP_NOT_LIKE: return !like_match(x.c_str(), b.text.c_str(), b.ci);
    default: return false;
    }
}

float normalize(const ColumnInfo &c, double v) {
    if (v == -kInf) return 0.0f;
    if (v == kInf) return 1.0f;
    double span = c.max - c.min;
    if (!(span > 0))
        return v < c.min ? 0.0f : (v > c.max ? 1.0f : 0.5f);
    double x = (v - c.min) / span;
    return static_cast<float>(std::min(1.0, std::max(0.0, x)));
}

/* The cache key of a relation's predicates: the table and each predicate
 * without its relation's name (t1 here is t3 in a larger set), sorted. */
std::string sample_key(int table, const KeyInfo &k, size_t rel) {
    std::vector<std::string> parts;
    for (const KeyInfo::Pred &p : k.preds)
        if (p.rel == static_cast<int>(rel)) {
            std::string one = p.column;
            for (const std::string *f : {&p.op, &p.type, &p.literal}) {
                one += '\x1f';
                one += *f;
            }
            one += '\x1f';
            one += p.binary ? "b" : "";
            one += p.case_insensitive ? "i" : "";
            parts.push_back(std::move(one));
        }
    std::sort(parts.begin(), parts.end());
    std::string key = std::to_string(table);
    for (const std::string &one : parts) {
        key += '\x1e';
        key += one;
    }
    return key;
}

bool featurize_impl(const Schema &s, const std::string &key_text, double native_rows, Features *out,
                    std::string *why, SampleCache *cache) {
    KeyInfo k;
    if (!parse_key(key_text, &k, why))
        return false;
    const Dims d = dims_of(s);
    const uint32_t T = static_cast<uint32_t>(s.tables.size());

    /* relations */
    std::vector<int> table_of(k.rels.size());
    for (size_t r = 0; r < k.rels.size(); r++) {
        table_of[r] = s.table_index(k.rels[r].table);
        if (table_of[r] < 0)
            return decline(why, "table " + k.rels[r].table + " unknown to the model");
    }

    /* predicates, bound to columns */
    std::vector<BoundPred> bound;
    for (const KeyInfo::Pred &p : k.preds) {
        if (p.rel < 0 || p.rel >= static_cast<int>(k.rels.size()))
            return decline(why, "column of an unknown relation");
        BoundPred b;
        b.rel = p.rel;
        b.table = table_of[p.rel];
        b.column = s.column_index(b.table, p.column);
        if (b.column < 0)
            return decline(why, "column " + k.rels[p.rel].table + "." + p.column + " unknown to the model");
        const ColumnInfo &col = s.tables[b.table].columns[b.column];
        b.code = op_code(p.op);
        b.ci = p.case_insensitive;
        if (p.op == "IS NULL") b.kind = PK_IS_NULL;
        else if (p.op == "IS NOT NULL") b.kind = PK_NOT_NULL;
        else if (col.kind == ValueKind::Other)
            return decline(why, "predicate on column " + p.column + " of type " + col.type);
        else if (p.op == "LIKE" || p.op == "NOT LIKE") {
            if (col.kind != ValueKind::Text || p.binary)
                return decline(why, "LIKE on a non-text column");
            b.kind = p.op == "LIKE" ? PK_LIKE : PK_NOT_LIKE;
            b.text = p.literal;
        } else if (p.op == "ANY") {
            std::string elem_type = p.type.size() > 2 ? p.type.substr(0, p.type.size() - 2) : "";
            std::vector<std::string> elems;
            if (!array_elements(p.literal, &elems) || elems.empty())
                return decline(why, "array constant " + p.literal.substr(0, 40));
            b.kind = PK_IN;
            if (col.kind == ValueKind::Numeric) {
                for (const std::string &e : elems) {
                    double v;
                    if (!numeric_value(elem_type, e, false, &v))
                        return decline(why, "array element of type " + elem_type);
                    b.nums.push_back(v);
                }
            } else {
                if (!is_text_type(elem_type))
                    return decline(why, "array of " + elem_type + " compared with text");
                b.texts = std::move(elems);
            }
        } else if (col.kind == ValueKind::Numeric) {
            if (!numeric_value(p.type, p.literal, p.binary, &b.num))
                return decline(why, "constant of type " + p.type + " on a numeric column");
            b.kind = p.op == "<>" ? PK_NE : PK_RANGE;
        } else {
            if (p.binary || !is_text_type(p.type))
                return decline(why, "constant of type " + p.type + " on a text column");
            b.kind = p.op == "=" ? PK_EQ : p.op == "<>" ? PK_NE : PK_RANGE;
            b.text = p.literal;
        }
        bound.push_back(std::move(b));
    }

    /* joins */
    std::vector<int> join_ix;
    for (const KeyInfo::Join &j : k.joins) {
        if (j.rel_a < 0 || j.rel_b < 0 || j.rel_a >= static_cast<int>(k.rels.size()) ||
            j.rel_b >= static_cast<int>(k.rels.size()))
            return decline(why, "join of an unknown relation");
        std::string name = join_name(k.rels[j.rel_a].table, j.col_a, k.rels[j.rel_b].table, j.col_b);
        int ix = s.join_index(name);
        if (ix < 0)
            return decline(why, "join " + name + " unknown to the model");
        join_ix.push_back(ix);
    }

    /* table set: one-hot, sample bitmap, qualifying fraction, size; and the
     * rows each relation keeps by its sample, for the independence estimate */
    std::vector<double> rel_rows(k.rels.size());
    out->fewest_hits = kNoSampleHits;
    out->ntables = static_cast<uint32_t>(k.rels.size());
    out->tables.assign(static_cast<size_t>(out->ntables) * d.table, 0.0f);
    for (size_t r = 0; r < k.rels.size(); r++) {
        float *row = &out->tables[r * d.table];
        const TableInfo &t = s.tables[table_of[r]];
        row[table_of[r]] = 1.0f;
        uint32_t n = std::min(t.sample_rows, s.sample_size);
        SampleCache::Hits local;
        const SampleCache::Hits *found = nullptr;
        std::string cache_key;
        if (cache) {
            cache_key = sample_key(table_of[r], k, r);
            found = cache->find(cache_key);
        }
        if (!found) {
            std::vector<const BoundPred *> mine;
            for (const BoundPred &b : bound)
                if (b.rel == static_cast<int>(r))
                    mine.push_back(&b);
            for (uint32_t i = 0; i < n; i++) {
                bool ok = true;
                for (const BoundPred *b : mine)
                    if (!matches(t, *b, i)) {
                        ok = false;
                        break;
                    }
                if (ok)
                    local.rows.push_back(i);
            }
            found = &local;
            if (cache) {
                cache->evaluations++;
                found = &cache->put(std::move(cache_key), std::move(local));
            }
        }
        for (uint32_t i : found->rows)
            row[T + i] = 1.0f;
        const uint32_t hits = static_cast<uint32_t>(found->rows.size());
        if (n > 0)
            out->fewest_hits = std::min(out->fewest_hits, hits);
        row[T + s.sample_size] = n ? static_cast<float>(hits) / static_cast<float>(n) : 0.0f;
        /* no sample row qualifies: half a row's worth, not zero */
        double sel = n == 0 ? 1.0 : hits > 0 ? static_cast<double>(hits) / n : 0.5 / n;
        rel_rows[r] = std::max(1.0, t.reltuples) * sel;
        row[T + s.sample_size + 1] =
            std::log(std::max(1.0, t.reltuples) + 1.0) / kLogTuplesScale;
    }

    /* join set */
    out->real_joins = static_cast<uint32_t>(join_ix.size());
    out->njoins = std::max<uint32_t>(1, out->real_joins);
    out->joins.assign(static_cast<size_t>(out->njoins) * d.join, 0.0f);
    for (size_t i = 0; i < join_ix.size(); i++)
        out->joins[i * d.join + join_ix[i]] = 1.0f;

    /* predicate set: one per (relation, column, kind), ranges folded */
    struct Folded {
        int rel, table, column, kind;
        double lo = -kInf, hi = kInf;
        size_t list = 0;
    };
    std::vector<Folded> folded;
    for (const BoundPred &b : bound) {
        auto it = std::find_if(folded.begin(), folded.end(), [&](const Folded &f) {
            return f.rel == b.rel && f.column == b.column && f.kind == b.kind;
        });
        if (it == folded.end()) {
            Folded f;
            f.rel = b.rel;
            f.table = b.table;
            f.column = b.column;
            f.kind = b.kind;
            folded.push_back(f);
            it = folded.end() - 1;
        }
        const ColumnInfo &col = s.tables[b.table].columns[b.column];
        if (col.kind == ValueKind::Numeric) {
            if (b.kind == PK_RANGE || b.kind == PK_NE) {
                if (b.code == OP_EQ || b.code == OP_NE) {
                    it->lo = std::max(it->lo, b.num);
                    it->hi = std::min(it->hi, b.num);
                } else if (b.code == OP_GT || b.code == OP_GE) {
                    it->lo = std::max(it->lo, b.num);
                } else {
                    it->hi = std::min(it->hi, b.num);
                }
            } else if (b.kind == PK_IN) {
                auto mm = std::minmax_element(b.nums.begin(), b.nums.end());
                it->lo = std::max(it->lo, *mm.first);
                it->hi = std::min(it->hi, *mm.second);
                it->list += b.nums.size();
            }
        } else if (b.kind == PK_IN) {
            it->list += b.texts.size();
        }
    }
    out->real_preds = static_cast<uint32_t>(folded.size());
    out->npreds = std::max<uint32_t>(1, out->real_preds);
    out->preds.assign(static_cast<size_t>(out->npreds) * d.pred, 0.0f);
    const uint32_t C = s.ncolumns();
    for (size_t i = 0; i < folded.size(); i++) {
        const Folded &f = folded[i];
        float *row = &out->preds[i * d.pred];
        const ColumnInfo &col = s.tables[f.table].columns[f.column];
        row[s.global_column(f.table, f.column)] = 1.0f;
        row[C + f.kind] = 1.0f;
        if (col.kind == ValueKind::Numeric) {
            row[C + PK_COUNT] = normalize(col, f.lo);
            row[C + PK_COUNT + 1] = normalize(col, f.hi);
        }
        row[C + PK_COUNT + 2] = std::log1p(static_cast<float>(f.list)) / 5.0f;
    }

    /* The independence estimate: what each relation keeps by its sample,
     * multiplied, divided by the larger table of each join that connects two
     * parts (a key / foreign-key guess, as textbooks and PostgreSQL without
     * statistics would; each relation pair joined once).  The network learns
     * a correction to it (see mscn.h). */
    std::vector<int> part(k.rels.size());
    for (size_t r = 0; r < part.size(); r++)
        part[r] = static_cast<int>(r);
    auto find = [&part](int x) {
        while (part[x] != x)
            x = part[x] = part[part[x]];
        return x;
    };
    double est = 1;
    for (double v : rel_rows)
        est *= v;
    for (const KeyInfo::Join &j : k.joins) {
        int a = find(j.rel_a), b = find(j.rel_b);
        if (a == b)
            continue;
        part[a] = b;
        est /= std::max({1.0, s.tables[table_of[j.rel_a]].reltuples, s.tables[table_of[j.rel_b]].reltuples});
    }

    /* global */
    out->global.assign(d.global, 0.0f);
    if (native_rows >= 0 && std::isfinite(native_rows)) {
        out->global[0] = 1.0f;
        out->global[1] = rows_to_label(s, native_rows);
    }
    out->global[2] = static_cast<float>(k.rels.size()) / kMaxRelsScale;
    out->nrels = static_cast<uint32_t>(k.rels.size());
    out->global[4] = k.rels.size() > 1 ? 1.0f : 0.0f;
    out->global[3] = rows_to_label(s, std::isfinite(est) ? est : 1.0);
    return true;
}

} // namespace

/* ------------------------------------------------------------------ */

void Schema::index() {
    table_ix_.clear();
    column_ix_.assign(tables.size(), {});
    column_base_.assign(tables.size(), 0);
    join_ix_.clear();
    ncolumns_ = 0;
    for (size_t t = 0; t < tables.size(); t++) {
        table_ix_[tables[t].name] = static_cast<int>(t);
        column_base_[t] = static_cast<int>(ncolumns_);
        for (size_t c = 0; c < tables[t].columns.size(); c++)
            column_ix_[t][tables[t].columns[c].name] = static_cast<int>(c);
        ncolumns_ += static_cast<uint32_t>(tables[t].columns.size());
    }
    for (size_t j = 0; j < joins.size(); j++)
        join_ix_[joins[j]] = static_cast<int>(j);
}

int Schema::table_index(const std::string &name) const {
    auto it = table_ix_.find(name);
    return it == table_ix_.end() ? -1 : it->second;
}

int Schema::column_index(int table, const std::string &column) const {
    if (table < 0 || table >= static_cast<int>(column_ix_.size()))
        return -1;
    auto it = column_ix_[table].find(column);
    return it == column_ix_[table].end() ? -1 : it->second;
}

int Schema::global_column(int table, int column) const { return column_base_[table] + column; }

int Schema::join_index(const std::string &join) const {
    auto it = join_ix_.find(join);
    return it == join_ix_.end() ? -1 : it->second;
}

std::string join_name(const std::string &table_a, const std::string &col_a, const std::string &table_b,
                      const std::string &col_b) {
    std::string a = table_a + "." + col_a, b = table_b + "." + col_b;
    return a < b ? a + "=" + b : b + "=" + a;
}

Dims dims_of(const Schema &s) {
    Dims d;
    d.table = static_cast<uint32_t>(s.tables.size()) + s.sample_size + 2;
    d.join = std::max<uint32_t>(1, static_cast<uint32_t>(s.joins.size()));
    d.pred = s.ncolumns() + PK_COUNT + 3;
    d.global = 5;
    return d;
}

bool parse_key(const std::string &text, KeyInfo *out, std::string *why) {
    out->rels.clear();
    out->joins.clear();
    out->preds.clear();
    out->same_table_equalities.clear();
    size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        if (first) {
            if (line != "pgpk1")
                return decline(why, "unknown key format");
            first = false;
            continue;
        }
        if (line.empty())
            continue;
        if (line.compare(0, 3, "R t") == 0) {
            size_t sp = line.find(' ', 3);
            if (sp == std::string::npos)
                return decline(why, "unreadable relation line");
            int n = atoi(line.substr(3, sp - 3).c_str());
            if (n != static_cast<int>(out->rels.size()) + 1)
                return decline(why, "relations out of order");
            out->rels.push_back({line.substr(sp + 1)});
            continue;
        }
        if (line.compare(0, 2, "C ") == 0) {
            if (!parse_clause(line.substr(2), out, why))
                return false;
            continue;
        }
        return decline(why, "unreadable key line");
    }
    if (first || out->rels.empty())
        return decline(why, "empty key");
    /* a = b on one table: implied when "=" gives both the same constant */
    auto equal_to = [&](int rel, const std::string &column) -> const KeyInfo::Pred * {
        for (const auto &p : out->preds)
            if (p.rel == rel && p.column == column && p.op == "=")
                return &p;
        return nullptr;
    };
    for (const auto &e : out->same_table_equalities) {
        const KeyInfo::Pred *a = equal_to(e.rel_a, e.col_a), *b = equal_to(e.rel_b, e.col_b);
        if (a == nullptr || b == nullptr || a->type != b->type || a->literal != b->literal || a->binary != b->binary)
            return decline(why, "equality of two columns of one table");
    }
    out->same_table_equalities.clear();
    for (const auto &p : out->preds)
        if (p.rel >= static_cast<int>(out->rels.size()))
            return decline(why, "column of an unknown relation");
    for (const auto &j : out->joins)
        if (j.rel_a >= static_cast<int>(out->rels.size()) || j.rel_b >= static_cast<int>(out->rels.size()))
            return decline(why, "join of an unknown relation");
    return true;
}

bool featurize(const Schema &s, const std::string &key_text, double native_rows, Features *out,
               std::string *why, SampleCache *cache) noexcept {
    try {
        return featurize_impl(s, key_text, native_rows, out, why, cache);
    } catch (const std::bad_alloc &) {
        return decline(why, "out of memory");
    } catch (...) {
        return decline(why, "featurization failed");
    }
}

float rows_to_label(const Schema &s, double rows) {
    double l = std::log(std::max(1.0, rows)) / std::max(1.0, s.max_log_rows);
    return static_cast<float>(std::min(1.0, std::max(0.0, l)));
}

double label_to_rows(const Schema &s, float label) {
    return std::exp(static_cast<double>(label) * std::max(1.0, s.max_log_rows));
}

} // namespace model
} // namespace pilot
