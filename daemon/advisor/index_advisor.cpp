/*
 * index_advisor.cpp — see index_advisor.h for what a run does and why.
 */
#include "index_advisor.h"

#include "collect.h" /* read_workload */
#include "pq_session.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <unordered_map>

namespace pilotd {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

enum Role : unsigned { ROLE_FILTER = 1, ROLE_JOIN = 2, ROLE_ORDER = 4 };

struct Table {
    std::string schema, name;
    uint32_t oid = 0;
    double change_rate = 0; /* rows inserted+updated+deleted per second */
    std::set<std::string> columns;
    std::vector<std::vector<std::string>> btree_keys; /* existing valid, non-partial btree indexes */
};

struct Query {
    std::string sql;
    int64_t queryid = 0;
    double calls = 0;
    double time_ms = 0; /* all calls */
    int nparams = -1;   /* >= 0: a normalized text planned as a generic plan */
    double base_cost = 0;
    std::set<int> tables;
    std::map<int, std::map<std::string, unsigned>> uses; /* table -> column -> Role bits */
};

struct Candidate {
    int table = 0;
    std::vector<std::string> cols;
    double size = -1;
    std::vector<int> queries;
};

constexpr int kMaxExamples = 5;
constexpr uint32_t kMaxPairsPerTable = 24;
/* "never scanned" means something only after the statistics ran this long */
constexpr double kMinUnusedDays = 1.0;

std::string lower(std::string s) {
    for (char &c : s)
        c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return s;
}

/* The first word of a statement, lower case. */
std::string first_word(const std::string &sql) {
    size_t i = 0;
    while (i < sql.size() && (isspace(static_cast<unsigned char>(sql[i])) || sql[i] == '('))
        i++;
    size_t j = i;
    while (j < sql.size() && isalpha(static_cast<unsigned char>(sql[j])))
        j++;
    return lower(sql.substr(i, j - i));
}

bool is_read_only_query(const std::string &sql) {
    std::string w = first_word(sql);
    return w == "select" || w == "with" || w == "table" || w == "values";
}

/* An identifier as EXPLAIN prints it: "quoted" or plain. */
std::string unquote(const std::string &s) {
    if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
        std::string out;
        for (size_t i = 1; i + 1 < s.size(); i++) {
            out += s[i];
            if (s[i] == '"' && i + 2 < s.size() && s[i + 1] == '"')
                i++;
        }
        return out;
    }
    return s;
}

/* Expression text without its string literals (they may look like
 * columns); "quoted identifiers" are kept whole (they may hold a quote). */
std::string strip_literals(const std::string &e) {
    std::string out;
    for (size_t i = 0; i < e.size(); i++) {
        char c = e[i];
        if (c == '"') { /* copy the identifier, "" included */
            size_t j = i + 1;
            while (j < e.size() && !(e[j] == '"' && (j + 1 >= e.size() || e[j + 1] != '"')))
                j += e[j] == '"' ? 2 : 1;
            out.append(e, i, j + 1 - i);
            i = j;
            continue;
        }
        if (c == '\'') { /* skip the literal, '' included */
            size_t j = i + 1;
            while (j < e.size() && !(e[j] == '\'' && (j + 1 >= e.size() || e[j + 1] != '\'')))
                j += e[j] == '\'' ? 2 : 1;
            out += "''";
            i = j;
            continue;
        }
        out += c;
    }
    return out;
}

std::vector<std::string> split_conjuncts(const std::string &e) {
    std::vector<std::string> out;
    static const std::regex sep(" (AND|OR) ");
    std::sregex_token_iterator it(e.begin(), e.end(), sep, -1), end;
    for (; it != end; ++it)
        out.push_back(*it);
    return out;
}

std::string join(const std::vector<std::string> &v, const std::string &sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); i++)
        s += (i ? sep : "") + v[i];
    return s;
}

/* a text[] literal: {"a","b\"c"} */
std::string text_array_literal(const std::vector<std::string> &v) {
    std::string a = "{";
    for (size_t i = 0; i < v.size(); i++) {
        a += i ? ",\"" : "\"";
        for (char ch : v[i]) {
            if (ch == '"' || ch == '\\')
                a += '\\';
            a += ch;
        }
        a += '"';
    }
    return a + "}";
}

std::string fmt(const char *f, double v) {
    char b[64];
    snprintf(b, sizeof b, f, v);
    return b;
}

std::string human_bytes(double b) {
    if (b >= 1 << 30)
        return fmt("%.1f GB", b / (1 << 30));
    if (b >= 1 << 20)
        return fmt("%.1f MB", b / (1 << 20));
    return fmt("%.0f kB", b / 1024);
}

/* A normalized text ($1, ... as pg_stat_statements keeps it) is planned as a
 * generic plan: PREPAREd (which infers the parameters' types) and EXPLAINed
 * with NULL arguments under plan_cache_mode = force_generic_plan.  Returns -1
 * for a text without parameters, else their count; false with *err when it
 * cannot be prepared. */
bool parameter_count(PqSession &db, const std::string &sql, int *nparams, std::string *err) {
    static const std::regex param("\\$[0-9]+");
    *nparams = -1;
    if (!std::regex_search(sql, param))
        return true;
    db.exec_quiet("DEALLOCATE pilot_advisor_q");
    if (!db.exec("PREPARE pilot_advisor_q AS " + sql, err))
        return false;
    PgResult r = db.query("SELECT cardinality(parameter_types) FROM pg_catalog.pg_prepared_statements "
                          "WHERE name = 'pilot_advisor_q'",
                          {}, err);
    *nparams = r && pq_rows(r.get()) == 1 ? static_cast<int>(pq_int(r.get(), 0, 0)) : 0;
    db.exec_quiet("DEALLOCATE pilot_advisor_q");
    return true;
}

/* The plan (EXPLAIN's "Plan" object) of sql as the session would plan it now,
 * hypothetical indexes included; nparams from parameter_count().  A generic
 * plan is prepared afresh each time: a cached one would not see new
 * hypothetical indexes.  False with *err. */
bool explain_plan(PqSession &db, const std::string &sql, int nparams, bool verbose, json *plan, std::string *err) {
    const std::string opts = verbose ? "(VERBOSE, FORMAT JSON) " : "(FORMAT JSON) ";
    PgResult r;
    if (nparams < 0) {
        r = db.query("EXPLAIN " + opts + sql, {}, err);
    } else {
        db.exec_quiet("DEALLOCATE pilot_advisor_q");
        if (!db.exec("PREPARE pilot_advisor_q AS " + sql, err))
            return false;
        std::string args;
        for (int i = 0; i < nparams; i++)
            args += i ? ", NULL" : "NULL";
        r = db.query("EXPLAIN " + opts + "EXECUTE pilot_advisor_q" + (nparams ? "(" + args + ")" : ""), {}, err);
        db.exec_quiet("DEALLOCATE pilot_advisor_q");
    }
    if (!r || pq_rows(r.get()) != 1)
        return false;
    json j = json::parse(pq_text(r.get(), 0, 0), nullptr, false);
    if (!j.is_array() || j.empty() || !j[0].is_object() || !j[0].contains("Plan")) {
        *err = "unexpected EXPLAIN output";
        return false;
    }
    *plan = j[0]["Plan"];
    return true;
}

class Advisor {
  public:
    Advisor(PqSession &db, const AdvisorOptions &o) : db_(db), o_(o) {}

    AdviceResult run() {
        auto t0 = Clock::now();
        res_.ok = setup() && load_workload() && plan_queries() && make_candidates() && select();
        if (res_.ok)
            find_redundant();
        if (!hypopg_.empty())
            exec_quiet("SELECT " + hypopg_ + ".hypopg_reset()");
        res_.seconds = seconds_since(t0);
        return std::move(res_);
    }

  private:
    PqSession &db_;
    const AdvisorOptions &o_;
    AdviceResult res_;
    std::vector<Table> tables_;
    std::map<std::pair<std::string, std::string>, int> table_ix_;
    std::vector<Query> queries_;
    std::vector<Candidate> cands_;
    std::unordered_map<std::string, double> cost_cache_;
    double window_s_ = 0; /* the workload's time window, for write costs */
    std::string hypopg_;  /* HypoPG's schema, quoted: its functions are called qualified */

    void progress(const std::string &s) {
        if (o_.progress)
            o_.progress(s);
    }
    void counted(const char *what, size_t done, size_t total) {
        if (o_.counted)
            o_.counted(what, done, total);
    }
    bool fail(const std::string &e) {
        res_.error = e;
        return false;
    }
    bool stopping() const { return o_.stop != nullptr && o_.stop->load(); }
    void exec_quiet(const std::string &sql) { db_.exec_quiet(sql); }

    void skip(const std::string &why, const std::string &sql) {
        res_.skipped++;
        if (res_.skipped_examples.size() < kMaxExamples)
            res_.skipped_examples.push_back(why + ": " + sql.substr(0, 160));
    }

    bool setup() {
        std::string err;
        static const char *const settings[] = {
            "SET statement_timeout = '60s'", "SET lock_timeout = '10s'", "SET plan_cache_mode = force_generic_plan",
            "SET idle_in_transaction_session_timeout = 0"};
        for (const char *s : settings)
            if (!db_.exec(s, &err))
                return fail(std::string("session setup (") + s + "): " + err);
        PgResult r = db_.query("SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'pg_pilot.enabled'", {}, &err);
        bool loaded = r && pq_rows(r.get()) == 1;
        if (loaded) {
            if (!db_.exec(o_.plain ? "SET pg_pilot.enabled = off" : "SET pg_pilot.enabled = on", &err))
                return fail("SET pg_pilot.enabled: " + err);
        } else if (!o_.plain) {
            progress("pg_pilot is not loaded by this server: costing with PostgreSQL's own estimates");
        }
        res_.learned = loaded && !o_.plain;
        static const char *const find_hypopg =
            "SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'hypopg'";
        r = db_.query(find_hypopg, {}, &err);
        if (!r)
            return fail("reading pg_extension: " + err);
        if (pq_rows(r.get()) == 0) {
            if (!db_.exec("CREATE EXTENSION IF NOT EXISTS hypopg SCHEMA public", &err))
                return fail("the index advisor needs HypoPG in this database: run CREATE EXTENSION hypopg "
                            "(Debian package postgresql-15-hypopg); creating it failed: " +
                            err);
            progress("created extension hypopg (hypothetical indexes) in this database");
            r = db_.query(find_hypopg, {}, &err);
            if (!r || pq_rows(r.get()) != 1)
                return fail("HypoPG: " + err);
        }
        hypopg_ = pq_text(r.get(), 0, 0);
        if (!db_.exec("SELECT " + hypopg_ + ".hypopg_reset()", &err))
            return fail("hypopg_reset(): " + err);
        return true;
    }

    /* ---- 1. workload ------------------------------------------------- */

    bool load_workload() {
        return o_.workload.empty() ? load_from_statistics() : load_from_file();
    }

    bool load_from_file() {
        std::vector<WorkloadQuery> lines;
        std::string err;
        if (!read_workload(o_.workload, &lines, &err))
            return fail(err);
        std::map<std::string, size_t> seen;
        for (const WorkloadQuery &w : lines) {
            if (!is_read_only_query(w.sql)) {
                skip("not a query (only SELECT is advised on)", w.sql);
                continue;
            }
            auto it = seen.find(w.sql);
            if (it != seen.end()) {
                queries_[it->second].calls += 1;
                continue;
            }
            seen.emplace(w.sql, queries_.size());
            Query q;
            q.sql = w.sql;
            q.calls = 1;
            queries_.push_back(std::move(q));
        }
        /* each distinct query measured once: its weight in the workload */
        const std::string timeout = "SET statement_timeout = " + std::to_string(o_.timeout_ms);
        if (!db_.exec(timeout, &err))
            return fail(err);
        size_t done = 0, next_report = 1;
        std::vector<Query> kept;
        for (Query &q : queries_) {
            if (stopping())
                return fail("stopped");
            std::string state;
            /* read only and rolled back: a query that writes (a data-modifying
             * WITH, nextval(), FOR UPDATE) fails instead of changing data */
            if (!db_.exec("BEGIN READ ONLY", &err))
                return fail(err);
            PgResult r = db_.query("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + q.sql, {}, &err, &state);
            double ms = -1;
            if (r && pq_rows(r.get()) == 1) {
                json j = json::parse(pq_text(r.get(), 0, 0), nullptr, false);
                if (j.is_array() && !j.empty() && j[0].is_object())
                    ms = j[0].value("Execution Time", -1.0) + j[0].value("Planning Time", 0.0);
            } else if (state == "57014") {
                ms = o_.timeout_ms; /* at least this long */
            }
            exec_quiet("ROLLBACK");
            if (ms < 0)
                skip("cannot be measured (" + err + ")", q.sql);
            else {
                q.time_ms = ms * q.calls;
                res_.workload_ms += q.time_ms;
                window_s_ += q.time_ms / 1000.0;
                kept.push_back(std::move(q));
            }
            done++;
            counted("measured", done, queries_.size());
            if (!o_.counted && done * 10 >= next_report * queries_.size()) {
                progress("measured " + std::to_string(done) + " of " + std::to_string(queries_.size()) +
                         " distinct queries");
                next_report = done * 10 / queries_.size() + 1;
            }
        }
        queries_ = std::move(kept);
        if (!db_.exec("SET statement_timeout = '60s'", &err))
            return fail(err);
        keep_heaviest();
        return true;
    }

    bool load_from_statistics() {
        std::string err;
        PgResult r = db_.query("SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e JOIN "
                               "pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = "
                               "'pg_stat_statements'",
                               {}, &err);
        if (!r)
            return fail("reading pg_extension: " + err);
        if (pq_rows(r.get()) == 0)
            return fail("no workload: this database has no pg_stat_statements (add it to "
                        "shared_preload_libraries and run CREATE EXTENSION pg_stat_statements), or pass a "
                        "workload file");
        const std::string schema = pq_text(r.get(), 0, 0);
        r = db_.query("SELECT s.queryid, s.query, s.calls, s.total_exec_time, "
                      "  extract(epoch FROM now() - coalesce((SELECT stats_reset FROM " + schema +
                          ".pg_stat_statements_info), pg_catalog.pg_postmaster_start_time())) "
                          "FROM " + schema + ".pg_stat_statements s "
                          "WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = "
                          "pg_catalog.current_database()) AND s.toplevel AND s.calls > 0 "
                          "AND s.query ~* '^\\s*(select|with)\\M' "
                          "AND s.query !~* '(pg_pilot|hypopg|pg_stat_statements|pg_catalog|information_schema)' "
                          "AND s.userid <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
                          "ORDER BY s.total_exec_time DESC LIMIT $1",
                      {std::to_string(o_.max_queries)}, &err);
        if (!r)
            return fail("reading pg_stat_statements: " + err);
        for (int i = 0; i < pq_rows(r.get()); i++) {
            Query q;
            q.queryid = pq_int(r.get(), i, 0);
            q.sql = pq_text(r.get(), i, 1);
            q.calls = pq_double(r.get(), i, 2);
            q.time_ms = pq_double(r.get(), i, 3);
            window_s_ = std::max(window_s_, pq_double(r.get(), i, 4));
            if (q.sql.empty() || q.sql[0] == '<') { /* "<insufficient privilege>" */
                skip("query text hidden (the advisor's login needs pg_read_all_stats)", q.sql);
                continue;
            }
            queries_.push_back(std::move(q));
        }
        weights_from_query_log();
        for (const Query &q : queries_)
            res_.workload_ms += q.time_ms;
        return true;
    }

    /* calls and time as pg_pilot measured them, where the store has them */
    void weights_from_query_log() {
        if (o_.store_dsn.empty() || o_.store_dsn == "none" || queries_.empty())
            return;
        PqSession store;
        std::string err;
        if (!store.connect(o_.store_dsn, "pilotd index advisor", &err)) {
            progress("feedback store not used for weights: " + err);
            return;
        }
        std::string ids = "{";
        for (size_t i = 0; i < queries_.size(); i++)
            ids += (i ? "," : "") + std::to_string(queries_[i].queryid);
        ids += "}";
        PgResult r = store.query("SELECT query_id, count(*), sum(execution_ms) FROM pg_pilot.query_log "
                                 "WHERE query_id = ANY($1::bigint[]) GROUP BY query_id",
                                 {ids}, &err);
        if (!r) {
            progress("feedback store not used for weights: " + err);
            return;
        }
        std::map<int64_t, std::pair<double, double>> w;
        for (int i = 0; i < pq_rows(r.get()); i++)
            w[pq_int(r.get(), i, 0)] = {pq_double(r.get(), i, 1), pq_double(r.get(), i, 2)};
        for (Query &q : queries_) {
            auto it = w.find(q.queryid);
            if (it != w.end() && it->second.first > 0) {
                q.calls = it->second.first;
                q.time_ms = it->second.second;
            }
        }
    }

    void keep_heaviest() {
        std::stable_sort(queries_.begin(), queries_.end(),
                         [](const Query &a, const Query &b) { return a.time_ms > b.time_ms; });
        if (queries_.size() > o_.max_queries)
            queries_.resize(o_.max_queries);
    }

    /* ---- 2. plans and columns ------------------------------------------ */

    bool explain(const Query &q, bool verbose, json *plan, std::string *err) {
        return explain_plan(db_, q.sql, q.nparams, verbose, plan, err);
    }

    int table_index(const std::string &schema, const std::string &name) {
        auto key = std::make_pair(schema, name);
        auto it = table_ix_.find(key);
        if (it != table_ix_.end())
            return it->second;
        int ix = -1;
        std::string err;
        PgResult r = db_.query(
            "SELECT c.oid, coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::float8 / greatest(1, extract(epoch "
            "FROM now() - coalesce((SELECT stats_reset FROM pg_catalog.pg_stat_database WHERE datname = "
            "pg_catalog.current_database()), pg_catalog.pg_postmaster_start_time()))) "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'm')",
            {schema, name}, &err);
        if (r && pq_rows(r.get()) == 1) {
            Table t;
            t.schema = schema;
            t.name = name;
            t.oid = static_cast<uint32_t>(pq_int(r.get(), 0, 0));
            t.change_rate = pq_double(r.get(), 0, 1);
            const std::string oid = std::to_string(t.oid);
            PgResult c = db_.query("SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 "
                                   "AND NOT attisdropped",
                                   {oid}, &err);
            for (int i = 0; c && i < pq_rows(c.get()); i++)
                t.columns.insert(pq_text(c.get(), i, 0));
            PgResult k = db_.query(
                "SELECT (SELECT string_agg(a.attname, E'\\x1f' ORDER BY k) FROM generate_series(0, i.indnkeyatts - 1) "
                "k JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k]) "
                "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
                "JOIN pg_catalog.pg_am am ON am.oid = ic.relam "
                "WHERE i.indrelid = $1 AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL "
                "AND i.indexprs IS NULL",
                {oid}, &err);
            for (int i = 0; k && i < pq_rows(k.get()); i++) {
                std::vector<std::string> cols;
                std::string s = pq_text(k.get(), i, 0), cur;
                for (char ch : s) {
                    if (ch == '\x1f') {
                        cols.push_back(cur);
                        cur.clear();
                    } else {
                        cur += ch;
                    }
                }
                cols.push_back(cur);
                t.btree_keys.push_back(cols);
            }
            ix = static_cast<int>(tables_.size());
            tables_.push_back(std::move(t));
        }
        table_ix_[key] = ix;
        return ix;
    }

    void collect_uses(const json &node, std::map<std::string, int> &aliases, Query &q,
                      std::vector<std::pair<std::string, unsigned>> &exprs) {
        if (!node.is_object())
            return;
        if (node.contains("Relation Name") && node.contains("Alias")) {
            std::string schema = node.value("Schema", "public");
            int t = table_index(schema, node.value("Relation Name", ""));
            if (t >= 0) {
                aliases[node.value("Alias", "")] = t;
                q.tables.insert(t);
            }
        }
        static const char *const conds[] = {"Filter", "Index Cond", "Recheck Cond", "Join Filter", "Hash Cond",
                                            "Merge Cond"};
        for (const char *c : conds)
            if (node.contains(c) && node[c].is_string()) {
                unsigned role = strstr(c, "Join") || strstr(c, "Hash") || strstr(c, "Merge") ? ROLE_JOIN : ROLE_FILTER;
                exprs.emplace_back(node[c].get<std::string>(), role);
            }
        static const char *const keys[] = {"Sort Key", "Group Key", "Presorted Key"};
        for (const char *k : keys)
            if (node.contains(k) && node[k].is_array())
                for (const json &e : node[k])
                    if (e.is_string())
                        exprs.emplace_back(e.get<std::string>(), ROLE_ORDER);
        if (node.contains("Plans") && node["Plans"].is_array())
            for (const json &child : node["Plans"])
                collect_uses(child, aliases, q, exprs);
    }

    void classify(const std::string &expr, unsigned role, const std::map<std::string, int> &aliases, Query &q) {
        static const std::regex ref("((?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*))\\."
                                    "((?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*))");
        for (const std::string &part : split_conjuncts(strip_literals(expr))) {
            std::vector<std::pair<int, std::string>> refs;
            std::set<std::string> seen_aliases;
            for (std::sregex_iterator it(part.begin(), part.end(), ref), end; it != end; ++it) {
                std::string alias = unquote((*it)[1].str()), col = unquote((*it)[2].str());
                auto a = aliases.find(alias);
                if (a == aliases.end() || !tables_[a->second].columns.count(col))
                    continue;
                refs.emplace_back(a->second, col);
                seen_aliases.insert(alias);
            }
            unsigned r = role;
            if (role == ROLE_FILTER && seen_aliases.size() > 1)
                r = ROLE_JOIN; /* a join clause pushed into a scan (parameterized path) */
            for (auto &rc : refs)
                q.uses[rc.first][rc.second] |= r;
        }
    }

    bool plan_queries() {
        std::string err;
        size_t done = 0, next_report = 1, total = queries_.size();
        std::vector<Query> kept;
        for (Query &q : queries_) {
            if (stopping())
                return fail("stopped");
            done++;
            counted("planned", done, total);
            if (!parameter_count(db_, q.sql, &q.nparams, &err)) {
                skip("cannot be prepared (" + err + ")", q.sql);
                continue;
            }
            json plan;
            if (!explain(q, true, &plan, &err)) {
                exec_quiet("ROLLBACK");
                skip("cannot be planned (" + err + ")", q.sql);
                continue;
            }
            q.base_cost = plan.value("Total Cost", 0.0);
            std::map<std::string, int> aliases;
            std::vector<std::pair<std::string, unsigned>> exprs;
            collect_uses(plan, aliases, q, exprs);
            for (auto &e : exprs)
                classify(e.first, e.second, aliases, q);
            if (q.base_cost <= 0 || q.uses.empty()) {
                skip("no indexable column", q.sql);
                continue;
            }
            kept.push_back(std::move(q));
            if (!o_.counted && done * 10 >= next_report * total) {
                progress("planned " + std::to_string(done) + " of " + std::to_string(total) + " queries");
                next_report = done * 10 / total + 1;
            }
        }
        queries_ = std::move(kept);
        res_.queries = static_cast<uint32_t>(queries_.size());
        return true;
    }

    /* ---- 3. candidates and what-if ---------------------------------------- */

    bool covered_by_existing(const Table &t, const std::vector<std::string> &cols) const {
        for (const auto &k : t.btree_keys)
            if (k.size() >= cols.size() && std::equal(cols.begin(), cols.end(), k.begin()))
                return true;
        return false;
    }

    bool make_candidates() {
        std::map<std::pair<int, std::vector<std::string>>, int> ix;
        auto add = [&](int t, const std::vector<std::string> &cols) {
            if (cols.size() > std::max<uint32_t>(1, std::min<uint32_t>(o_.width, 3)))
                return;
            if (covered_by_existing(tables_[t], cols))
                return;
            auto key = std::make_pair(t, cols);
            if (ix.count(key) || cands_.size() >= o_.max_candidates)
                return;
            ix[key] = static_cast<int>(cands_.size());
            Candidate c;
            c.table = t;
            c.cols = cols;
            cands_.push_back(std::move(c));
        };
        /* by width, over all queries: the cap never starves a query of its
         * single-column candidates */
        for (uint32_t width = 1; width <= std::min<uint32_t>(std::max<uint32_t>(o_.width, 1), 3); width++)
            for (const Query &q : queries_)
                for (const auto &tu : q.uses) {
                    std::vector<std::string> lead, any; /* filter/join columns lead */
                    for (const auto &cu : tu.second) {
                        any.push_back(cu.first);
                        if (cu.second & (ROLE_FILTER | ROLE_JOIN))
                            lead.push_back(cu.first);
                    }
                    if (width == 1) {
                        for (const std::string &c : any)
                            add(tu.first, {c});
                        continue;
                    }
                    uint32_t pairs = 0;
                    for (const std::string &a : lead)
                        for (const std::string &b : any) {
                            if (a == b || pairs >= kMaxPairsPerTable)
                                continue;
                            pairs++;
                            if (width == 2)
                                add(tu.first, {a, b});
                            else
                                for (const std::string &c : lead)
                                    if (c != a && c != b)
                                        add(tu.first, {a, b, c});
                        }
                }
        for (size_t qi = 0; qi < queries_.size(); qi++)
            for (Candidate &c : cands_)
                if (queries_[qi].tables.count(c.table))
                    c.queries.push_back(static_cast<int>(qi));
        res_.candidates = static_cast<uint32_t>(cands_.size());
        std::string names;
        for (size_t i = 0; i < cands_.size() && i < 12; i++)
            names += std::string(i ? ", " : ": ") + tables_[cands_[i].table].name + "(" + join(cands_[i].cols, ",") + ")";
        progress(std::to_string(queries_.size()) + " queries, " + std::to_string(cands_.size()) +
                 " candidate indexes on " + std::to_string(tables_.size()) + " tables" + names +
                 (cands_.size() > 12 ? ", ..." : ""));
        return true;
    }

    std::string create_statement(const Candidate &c) const {
        std::vector<std::string> q;
        for (const std::string &col : c.cols)
            q.push_back(quote_ident(col));
        const Table &t = tables_[c.table];
        return "ON " + quote_ident(t.schema) + "." + quote_ident(t.name) + " USING btree (" + join(q, ", ") + ")";
    }

    /* q's planner cost with the hypothetical indexes set (those on q's tables) */
    double cost_with(int qi, const std::vector<int> &set) {
        Query &q = queries_[static_cast<size_t>(qi)];
        std::vector<int> mine;
        for (int c : set)
            if (q.tables.count(cands_[static_cast<size_t>(c)].table))
                mine.push_back(c);
        if (mine.empty())
            return q.base_cost;
        std::sort(mine.begin(), mine.end());
        std::string key = std::to_string(qi);
        for (int c : mine)
            key += "," + std::to_string(c);
        auto it = cost_cache_.find(key);
        if (it != cost_cache_.end()) {
            res_.whatif_cache_hits++;
            return it->second;
        }
        std::string err;
        exec_quiet("SELECT " + hypopg_ + ".hypopg_reset()");
        double cost = q.base_cost;
        bool ok = true;
        for (int ci : mine) {
            Candidate &c = cands_[static_cast<size_t>(ci)];
            PgResult r = db_.query("SELECT indexrelid, " + hypopg_ + ".hypopg_relation_size(indexrelid) FROM " +
                                       hypopg_ + ".hypopg_create_index($1)",
                                   {"CREATE INDEX " + create_statement(c)}, &err);
            if (!r || pq_rows(r.get()) != 1) {
                ok = false;
                break;
            }
            if (c.size < 0)
                c.size = pq_double(r.get(), 0, 1);
        }
        json plan;
        if (ok && explain(q, false, &plan, &err)) {
            cost = plan.value("Total Cost", q.base_cost);
            res_.whatif_plans++;
        } else {
            exec_quiet("ROLLBACK");
        }
        exec_quiet("SELECT " + hypopg_ + ".hypopg_reset()");
        cost_cache_[key] = cost;
        return cost;
    }

    double write_cost_ms(const Candidate &c) const {
        return tables_[c.table].change_rate * window_s_ * o_.write_cost_us / 1000.0;
    }

    /* ---- 4. greedy selection ---------------------------------------------- */

    bool select() {
        std::vector<int> chosen;
        std::vector<double> cur(queries_.size());
        for (size_t i = 0; i < queries_.size(); i++)
            cur[i] = queries_[i].base_cost;
        const double budget = o_.budget_mb * 1024.0 * 1024.0;
        const double min_gain = o_.min_benefit_pct / 100.0 * res_.workload_ms;
        double used = 0;
        std::vector<bool> taken(cands_.size(), false);
        /* the best candidate turned down, to explain an empty result */
        int rejected = -1;
        double rejected_gain = 0, rejected_write = 0;
        while (chosen.size() < o_.max_indexes) {
            if (stopping())
                return fail("stopped");
            int best = -1;
            double best_score = 0, best_net = 0, best_gain = 0;
            for (size_t ci = 0; ci < cands_.size(); ci++) {
                if (taken[ci])
                    continue;
                if (stopping())
                    return fail("stopped");
                /* once its size is known, one that no longer fits is not costed again */
                if (cands_[ci].size >= 0 && used + cands_[ci].size > budget)
                    continue;
                std::vector<int> with = chosen;
                with.push_back(static_cast<int>(ci));
                double gain = 0;
                for (int qi : cands_[ci].queries) {
                    const Query &q = queries_[static_cast<size_t>(qi)];
                    double after = cost_with(qi, with);
                    if (after < cur[static_cast<size_t>(qi)])
                        gain += q.time_ms * (cur[static_cast<size_t>(qi)] - after) / q.base_cost;
                }
                const Candidate &c = cands_[ci];
                if (c.size < 0 || used + c.size > budget)
                    continue;
                double net = gain - write_cost_ms(c);
                if (net <= 0 || net < min_gain) {
                    if (gain > rejected_gain) {
                        rejected = static_cast<int>(ci);
                        rejected_gain = gain;
                        rejected_write = write_cost_ms(c);
                    }
                    continue;
                }
                double score = net / std::max(c.size, 8192.0);
                if (score > best_score) {
                    best = static_cast<int>(ci);
                    best_score = score;
                    best_net = net;
                    best_gain = gain;
                }
            }
            if (best < 0) {
                if (chosen.empty() && rejected >= 0) {
                    const Candidate &c = cands_[static_cast<size_t>(rejected)];
                    res_.note = "no candidate gains enough: the best, " + tables_[c.table].name + "(" +
                                join(c.cols, ",") + "), saves " + fmt("%.1f", rejected_gain) +
                                " ms against a write cost of " + fmt("%.1f", rejected_write) +
                                " ms (at least " + fmt("%.1f", min_gain) +
                                " ms net needed; after a bulk load, SELECT pg_stat_reset())";
                } else if (chosen.empty()) {
                    res_.note = cands_.empty() ? "no candidate index" : "no candidate lowers a query's cost";
                }
                break;
            }
            taken[static_cast<size_t>(best)] = true;
            chosen.push_back(best);
            const Candidate &c = cands_[static_cast<size_t>(best)];
            used += c.size;
            IndexRecommendation rec;
            rec.schema = tables_[c.table].schema;
            rec.table = tables_[c.table].name;
            rec.columns = c.cols;
            rec.size_bytes = c.size;
            rec.benefit_ms = best_gain;
            rec.write_cost_ms = best_gain - best_net;
            for (int qi : c.queries) {
                double after = cost_with(qi, chosen);
                double &before = cur[static_cast<size_t>(qi)];
                if (after < before * 0.999) {
                    const Query &q = queries_[static_cast<size_t>(qi)];
                    QueryGain g;
                    g.query = q.sql;
                    g.queryid = q.queryid;
                    g.calls = q.calls;
                    g.time_ms = q.time_ms;
                    g.cost_before = before;
                    g.cost_after = after;
                    rec.queries.push_back(g);
                    before = after;
                }
            }
            std::sort(rec.queries.begin(), rec.queries.end(), [](const QueryGain &a, const QueryGain &b) {
                return a.time_ms * (1 - a.cost_after / a.cost_before) > b.time_ms * (1 - b.cost_after / b.cost_before);
            });
            rec.reason = reason(c, rec);
            name_and_statement(rec);
            progress("chose " + rec.statement + " (" + human_bytes(rec.size_bytes) + ", " +
                     fmt("%.1f", rec.benefit_ms) + " ms of " + fmt("%.1f", res_.workload_ms) + " ms)");
            res_.recommendations.push_back(std::move(rec));
        }
        return true;
    }

    std::string reason(const Candidate &c, const IndexRecommendation &rec) const {
        unsigned roles = 0;
        for (const QueryGain &g : rec.queries)
            for (const Query &q : queries_)
                if (q.sql == g.query) {
                    auto t = q.uses.find(c.table);
                    if (t != q.uses.end() && t->second.count(c.cols[0]))
                        roles |= t->second.at(c.cols[0]);
                }
        std::vector<std::string> how;
        if (roles & ROLE_FILTER)
            how.push_back("filter");
        if (roles & ROLE_JOIN)
            how.push_back("join");
        if (roles & ROLE_ORDER)
            how.push_back("sort/group");
        std::string s = join(how, " and ") + " on " + rec.table + "." + c.cols[0] + " in " +
                        std::to_string(rec.queries.size()) + (rec.queries.size() == 1 ? " query" : " queries");
        if (!rec.queries.empty()) {
            const QueryGain &g = rec.queries.front();
            s += fmt("; top query's cost %.0f", g.cost_before) + fmt(" -> %.0f", g.cost_after);
        }
        s += fmt("; saves about %.1f%% of the workload's time",
                 res_.workload_ms > 0 ? 100.0 * rec.benefit_ms / res_.workload_ms : 0.0);
        return s;
    }

    void name_and_statement(IndexRecommendation &rec) {
        std::string base = "pilot_" + rec.table + "_" + join(rec.columns, "_");
        for (char &ch : base)
            if (!isalnum(static_cast<unsigned char>(ch)) && ch != '_')
                ch = '_';
        base = lower(base);
        /* 63 bytes at most with the longest suffix ("_idx99"), else
         * PostgreSQL would truncate it into another name */
        if (base.size() > 57)
            base.resize(57);
        std::string name = base + "_idx";
        std::string err;
        for (int n = 2; n <= 100; n++) {
            PgResult r = db_.query("SELECT to_regclass($1)", {quote_ident(rec.schema) + "." + quote_ident(name)}, &err);
            bool taken_by_run = false;
            for (const IndexRecommendation &o : res_.recommendations)
                taken_by_run |= o.index_name == name;
            if (r && pq_rows(r.get()) == 1 && pq_isnull(r.get(), 0, 0) && !taken_by_run)
                break;
            name = base + "_idx" + std::to_string(n); /* n == 100: apply refuses a taken name */
        }
        rec.index_name = name;
        std::vector<std::string> q;
        for (const std::string &col : rec.columns)
            q.push_back(quote_ident(col));
        rec.statement = "CREATE INDEX CONCURRENTLY " + quote_ident(name) + " ON " + quote_ident(rec.schema) + "." +
                        quote_ident(rec.table) + " (" + join(q, ", ") + ")";
    }

    /* ---- 5. redundant existing indexes ---------------------------------- */

    void find_redundant() {
        std::string err;
        PgResult r = db_.query(
            "SELECT n.nspname, t.relname, ic.relname, pg_catalog.pg_relation_size(i.indexrelid)::float8, "
            "  coalesce(s.idx_scan, -1), i.indisunique OR i.indisprimary OR i.indisexclusion OR EXISTS (SELECT 1 "
            "  FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid), "
            "  am.amname = 'btree' AND i.indpred IS NULL AND i.indexprs IS NULL, i.indrelid, "
            "  (SELECT string_agg(i.indkey[k] || '/' || i.indclass[k] || '/' || i.indcollation[k] || '/' || "
            "   i.indoption[k], ',' ORDER BY k) FROM generate_series(0, i.indnkeyatts - 1) k), "
            "  i.indexrelid, "
            "  extract(epoch FROM now() - coalesce((SELECT stats_reset FROM pg_catalog.pg_stat_database WHERE datname "
            "  = pg_catalog.current_database()), pg_catalog.pg_postmaster_start_time())) / 86400, "
            "  i.indnatts = i.indnkeyatts "
            "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_catalog.pg_class t ON t.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace "
            "JOIN pg_catalog.pg_am am ON am.oid = ic.relam "
            "LEFT JOIN pg_catalog.pg_stat_user_indexes s ON s.indexrelid = i.indexrelid "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'pg_pilot') AND i.indisvalid "
            "  AND ic.relkind = 'i' AND t.relkind IN ('r', 'm') AND t.relpersistence <> 't' AND NOT t.relispartition "
            "ORDER BY n.nspname, t.relname, ic.relname",
            {}, &err);
        if (!r) {
            progress("redundant indexes not checked: " + err);
            return;
        }
        struct Ix {
            std::string schema, table, name, key;
            double size;
            long long scans;
            bool constraint, plain;
            long long rel, oid;
            bool no_include;
        };
        std::vector<Ix> ixs;
        double days = 0;
        for (int i = 0; i < pq_rows(r.get()); i++) {
            ixs.push_back({pq_text(r.get(), i, 0), pq_text(r.get(), i, 1), pq_text(r.get(), i, 2),
                           pq_text(r.get(), i, 8), pq_double(r.get(), i, 3), pq_int(r.get(), i, 4),
                           pq_text(r.get(), i, 5) == "t", pq_text(r.get(), i, 6) == "t", pq_int(r.get(), i, 7),
                           pq_int(r.get(), i, 9), pq_text(r.get(), i, 11) == "t"});
            days = pq_double(r.get(), i, 10);
        }
        for (const Ix &a : ixs) {
            if (a.constraint)
                continue;
            RedundantIndex f;
            f.schema = a.schema;
            f.table = a.table;
            f.index_name = a.name;
            f.size_bytes = a.size;
            f.statement = "DROP INDEX CONCURRENTLY " + quote_ident(a.schema) + "." + quote_ident(a.name);
            const Ix *dup = nullptr;
            if (a.plain && a.no_include) /* INCLUDE columns give index-only scans the other may not */
                for (const Ix &b : ixs) {
                    if (&a == &b || b.rel != a.rel || !b.plain || b.key.size() < a.key.size())
                        continue;
                    bool prefix = b.key.compare(0, a.key.size(), a.key) == 0 &&
                                  (b.key.size() == a.key.size() || b.key[a.key.size()] == ',');
                    if (prefix && (b.key.size() > a.key.size() || b.constraint || b.oid < a.oid)) {
                        dup = &b;
                        break;
                    }
                }
            if (dup != nullptr) {
                f.kind = "duplicate";
                f.reason = "its columns lead index " + dup->name + ", which serves the same scans";
            } else if (a.scans == 0 && days >= kMinUnusedDays) {
                f.kind = "unused";
                f.reason = fmt("never scanned in the %.1f days since the statistics were reset", days);
            } else {
                continue;
            }
            res_.redundant.push_back(std::move(f));
        }
    }
};

json queries_json(const std::vector<QueryGain> &qs) {
    json a = json::array();
    for (const QueryGain &g : qs)
        a.push_back({{"query", g.query},
                     {"queryid", g.queryid},
                     {"calls", g.calls},
                     {"time_ms", g.time_ms},
                     {"cost_before", g.cost_before},
                     {"cost_after", g.cost_after}});
    return a;
}

} // namespace

AdviceResult advise(PqSession &db, const AdvisorOptions &o) {
    try {
        Advisor a(db, o);
        return a.run();
    } catch (const std::exception &e) {
        AdviceResult r;
        r.error = std::string("index advisor: ") + e.what();
        return r;
    }
}

bool apply_recommendation(PqSession &db, const IndexRecommendation &rec, uint32_t *using_it, std::string *error) {
    *using_it = 0;
    std::string err;
    if (rec.columns.empty() || rec.index_name.empty() || rec.index_name.size() > 63) {
        *error = "not a valid recommendation (columns or index name)";
        return false;
    }
    /* the statement is rebuilt from checked names, never taken as stored */
    const std::string table = quote_ident(rec.schema) + "." + quote_ident(rec.table);
    const std::string index = quote_ident(rec.schema) + "." + quote_ident(rec.index_name);
    std::vector<std::string> cols;
    for (const std::string &c : rec.columns)
        cols.push_back(quote_ident(c));
    const std::string create = "CREATE INDEX CONCURRENTLY " + quote_ident(rec.index_name) + " ON " + table + " (" +
                               join(cols, ", ") + ")";
    db.exec_quiet("SET lock_timeout = '60s'");
    db.exec_quiet("SET statement_timeout = '60s'");
    PgResult r = db.query("SELECT to_regclass($1) IS NULL, to_regclass($2) IS NOT NULL", {index, table}, &err);
    if (!r || pq_rows(r.get()) != 1) {
        *error = err;
        return false;
    }
    if (pq_text(r.get(), 0, 1) != "t") {
        *error = "table " + table + " does not exist";
        return false;
    }
    if (pq_text(r.get(), 0, 0) != "t") {
        *error = "an index named " + index + " exists already (run the advisor again for a fresh recommendation)";
        return false;
    }
    /* an existing valid btree index that leads with these columns makes it redundant */
    r = db.query("SELECT ic.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
                 "JOIN pg_catalog.pg_am am ON am.oid = ic.relam WHERE i.indrelid = $1::regclass AND am.amname = "
                 "'btree' AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts >= $3 "
                 "AND (SELECT array_agg(a.attname::text ORDER BY k) FROM generate_series(0, $3 - 1) k JOIN "
                 "pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k]) = $2::text[] "
                 "LIMIT 1",
                 {table, text_array_literal(rec.columns),
                  std::to_string(rec.columns.size())},
                 &err);
    if (r && pq_rows(r.get()) == 1) {
        *error = "index " + pq_text(r.get(), 0, 0) + " already serves these columns";
        return false;
    }
    /* building may take long on a big table; pilotd's shutdown cancels it */
    db.exec_quiet("SET statement_timeout = 0");
    if (!db.exec(create, &err)) {
        *error = create + ": " + err;
        /* a failed concurrent build leaves an invalid index behind: drop
         * exactly that one (the name was free before we began) */
        db.exec_quiet("SET statement_timeout = '60s'");
        PgResult inv = db.query("SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = to_regclass($1) AND NOT "
                                "indisvalid",
                                {index}, &err);
        std::string ignored;
        if (inv && pq_rows(inv.get()) == 1)
            db.exec("DROP INDEX CONCURRENTLY IF EXISTS " + index, &ignored);
        return false;
    }
    db.exec_quiet("SET statement_timeout = '60s'");
    db.exec_quiet("SET plan_cache_mode = force_generic_plan"); /* NULL arguments would fold a custom plan */
    const std::string uses_it = "\"Index Name\":\"" + rec.index_name + "\"";
    for (const QueryGain &g : rec.queries) {
        int nparams = -1;
        json plan;
        if (parameter_count(db, g.query, &nparams, &err) && explain_plan(db, g.query, nparams, false, &plan, &err) &&
            plan.dump().find(uses_it) != std::string::npos)
            (*using_it)++;
    }
    return true;
}

bool store_advice(PqSession &db, const AdviceResult &res, const AdvisorOptions &o, uint64_t run_id,
                  std::string *error) {
    (void)o;
    std::string err;
    PgResult r = db.query("SELECT to_regclass('pg_pilot.index_advice') IS NOT NULL", {}, &err);
    if (!r || pq_rows(r.get()) != 1 || pq_text(r.get(), 0, 0) != "t") {
        *error = "this database has no pg_pilot.index_advice (CREATE EXTENSION pg_pilot, version 0.3 or later)";
        return false;
    }
    if (!db.exec("BEGIN", &err)) {
        *error = err;
        return false;
    }
    bool ok = db.exec("UPDATE pg_pilot.index_advice SET status = 'superseded' WHERE status = 'proposed'", &err);
    const std::string learned = res.learned ? "t" : "f";
    for (const IndexRecommendation &rec : res.recommendations) {
        if (!ok)
            break;
        const std::string cols = text_array_literal(rec.columns);
        ok = db.query("INSERT INTO pg_pilot.index_advice (run_id, kind, schema_name, table_name, columns, index_name, "
                      "statement, size_bytes, benefit_ms, write_cost_ms, learned, queries, reason) "
                      "VALUES ($1, 'create', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12)",
                      {std::to_string(run_id), rec.schema, rec.table, cols, rec.index_name, rec.statement,
                       fmt("%.0f", rec.size_bytes), fmt("%.6g", rec.benefit_ms), fmt("%.6g", rec.write_cost_ms),
                       learned, queries_json(rec.queries).dump(-1, ' ', false, json::error_handler_t::replace),
                       rec.reason},
                      &err) != nullptr;
    }
    for (const RedundantIndex &f : res.redundant) {
        if (!ok)
            break;
        ok = db.query("INSERT INTO pg_pilot.index_advice (run_id, kind, schema_name, table_name, columns, index_name, "
                      "statement, size_bytes, learned, reason) "
                      "VALUES ($1, $2, $3, $4, '{}', $5, $6, $7, $8, $9)",
                      {std::to_string(run_id), f.kind, f.schema, f.table, f.index_name, f.statement,
                       fmt("%.0f", f.size_bytes), learned, f.reason},
                      &err) != nullptr;
    }
    if (!ok) {
        db.exec_quiet("ROLLBACK");
        *error = "writing pg_pilot.index_advice: " + err;
        return false;
    }
    if (!db.exec("COMMIT", &err)) {
        *error = "writing pg_pilot.index_advice: " + err;
        return false;
    }
    return true;
}

} // namespace pilotd
