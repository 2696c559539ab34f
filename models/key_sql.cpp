/* key_sql.cpp — see key_sql.h. */
#include "key_sql.h"

#include "featurize.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace pilot {
namespace model {

namespace {

std::string quote_literal(const std::string &s) {
    std::string out = s.find('\\') != std::string::npos ? "E'" : "'";
    for (char c : s) {
        if (c == '\'')
            out += "''";
        else if (c == '\\')
            out += "\\\\";
        else
            out += c;
    }
    return out + "'";
}

/* A constant of the key as SQL: 'literal'::type, or its binary send form
 * written back as an expression of the same type. */
bool constant_sql(const KeyInfo::Pred &p, std::string *out, std::string *why) {
    if (!p.binary) {
        *out = quote_literal(p.literal) + "::" + p.type;
        return true;
    }
    std::vector<uint8_t> b;
    if (!hex_bytes(p.literal, &b)) {
        *why = "unreadable binary constant";
        return false;
    }
    char buf[128];
    if (p.type == "date" && b.size() == 4) {
        int32_t days = static_cast<int32_t>(static_cast<uint32_t>(big_endian(b)));
        snprintf(buf, sizeof buf, "(DATE '2000-01-01' + %" PRId32 ")", days);
    } else if ((p.type == "timestamp without time zone" || p.type == "timestamp with time zone") && b.size() == 8) {
        int64_t us = static_cast<int64_t>(big_endian(b));
        snprintf(buf, sizeof buf, "(%s + %" PRId64 " * INTERVAL '1 microsecond')",
                 p.type == "timestamp without time zone" ? "TIMESTAMP '2000-01-01 00:00:00'"
                                                         : "TIMESTAMPTZ '2000-01-01 00:00:00+00'",
                 us);
    } else if (p.type == "double precision" && b.size() == 8) {
        uint64_t bits = big_endian(b);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!std::isfinite(d)) {
            *why = "a non-finite float constant";
            return false;
        }
        snprintf(buf, sizeof buf, "'%.17g'::double precision", d);
    } else if (p.type == "real" && b.size() == 4) {
        uint32_t bits = static_cast<uint32_t>(big_endian(b));
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!std::isfinite(f)) {
            *why = "a non-finite float constant";
            return false;
        }
        snprintf(buf, sizeof buf, "'%.9g'::real", static_cast<double>(f));
    } else {
        *why = "a constant of type " + p.type + " in binary form";
        return false;
    }
    *out = buf;
    return true;
}

} // namespace

bool key_count_sql(const std::string &key_text, std::string *sql, std::string *why) {
    KeyInfo k;
    if (!parse_key(key_text, &k, why))
        return false;
    if (k.rels.empty()) {
        *why = "no relation";
        return false;
    }
    auto alias = [](int rel) { return "t" + std::to_string(rel + 1); };
    std::string from;
    for (size_t i = 0; i < k.rels.size(); i++) {
        std::string table = k.rels[i].table;
        /* "t*": the set includes inheritance children (a plain FROM t) */
        bool children = !table.empty() && table.back() == '*';
        if (children)
            table.pop_back();
        from += (i ? ", " : "") + std::string(children ? "" : "ONLY ") + table + " " + alias(static_cast<int>(i));
    }
    std::vector<std::string> where;
    for (const KeyInfo::Join &j : k.joins)
        where.push_back(alias(j.rel_a) + "." + j.col_a + " = " + alias(j.rel_b) + "." + j.col_b);
    for (const KeyInfo::Pred &p : k.preds) {
        const std::string col = alias(p.rel) + "." + p.column;
        if (p.op == "IS NULL" || p.op == "IS NOT NULL") {
            where.push_back(col + " " + p.op);
            continue;
        }
        std::string c;
        if (!constant_sql(p, &c, why))
            return false;
        if (p.op == "ANY")
            where.push_back(col + " = ANY(" + c + ")");
        else if (p.op == "LIKE" || p.op == "NOT LIKE")
            where.push_back(col + (p.op == "LIKE" ? "" : " NOT") + (p.case_insensitive ? " ILIKE " : " LIKE ") + c);
        else
            where.push_back(col + " " + p.op + " " + c);
    }
    *sql = "SELECT count(*) FROM " + from;
    for (size_t i = 0; i < where.size(); i++)
        *sql += (i ? " AND " : " WHERE ") + where[i];
    return true;
}

} // namespace model
} // namespace pilot
