/*
 * advise_command.cpp — `pilotd advise`: one index-advisor run from the
 * command line (see index_advisor.h), its report on stdout, progress on
 * stderr; with --apply, the recommended indexes are created.
 */
#include "config.h"
#include "conninfo.h"
#include "index_advisor.h"
#include "progress.h"
#include "pq_session.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace pilotd {

namespace {

constexpr int kExitOk = 0, kExitFailure = 1, kExitUsage = 2;

const char *kUsage =
    "usage: pilotd advise [-c FILE] [-D DIR] [--dsn DSN] [--workload FILE] [options]\n"
    "Recommends btree indexes for a database's workload, costed with HypoPG\n"
    "hypothetical indexes while pg_pilot's learned cardinalities are in force.\n"
    "  -c, --config FILE     pilotd's JSON config (default: /etc/pg_pilot/pilotd.json\n"
    "                          or $PILOTD_CONFIG): model-dsn, store-dsn and the\n"
    "                          advisor-* settings are this command's defaults\n"
    "  -D, --pgdata DIR      the server's data directory: DSNs without host and port\n"
    "                          go to it, and the settings of its pilotd service apply\n"
    "  --dsn DSN             the database to advise (libpq connection string;\n"
    "                          default: model-dsn)\n"
    "  --workload FILE       one query per line (\"N||query\" allowed; identical lines\n"
    "                          add up); each distinct query is measured once with\n"
    "                          EXPLAIN ANALYZE.  Default: pg_stat_statements of the\n"
    "                          database, with calls and times from pg_pilot.query_log\n"
    "                          when --store-dsn names the feedback store\n"
    "  --store-dsn DSN       the feedback store (pg_pilot.query_log; default: store-dsn\n"
    "                          when a config or service settings file names it)\n"
    "  --budget-mb MB        total size of the recommended indexes\n"
    "                          (default: advisor-budget-mb, 1024)\n"
    "  --max-indexes N       at most N recommendations (default: advisor-max-indexes, 5)\n"
    "  --width N             columns per index, 1..3 (default: advisor-width, 2)\n"
    "  --min-benefit PCT     an index must save PCT % of the workload's time\n"
    "                          (default: advisor-min-benefit-pct, 1)\n"
    "  --write-cost-us US    maintenance cost per changed table row and index\n"
    "                          (default: advisor-write-cost-us, 20)\n"
    "  --max-queries N       the N heaviest queries (default 200)\n"
    "  --timeout-ms MS       statement timeout of a measuring run (default 10000)\n"
    "  --plain               cost with PostgreSQL's own estimates (pg_pilot off)\n"
    "  --apply               create the recommended indexes (CREATE INDEX CONCURRENTLY)\n"
    "  --no-store            do not write pg_pilot.index_advice\n"
    "The database needs the hypopg extension (created when missing and permitted).\n";

bool parse_number(const std::string &v, double lo, double hi, double *out) {
    char *end = nullptr;
    double d = strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(d) || d < lo || d > hi)
        return false;
    *out = d;
    return true;
}

} // namespace

AdvisorOptions advisor_options(const Config &c) {
    AdvisorOptions o;
    o.budget_mb = c.advisor_budget_mb;
    o.max_indexes = c.advisor_max_indexes;
    o.width = c.advisor_width;
    o.min_benefit_pct = c.advisor_min_benefit_pct;
    o.write_cost_us = c.advisor_write_cost_us;
    return o;
}

int run_advise_command(const std::vector<std::string> &args, const CommandDefaults &d) {
    AdvisorOptions o = advisor_options(d.config);
    o.dsn = d.config.model_dsn;
    o.store_dsn = d.store_dsn;
    bool apply = false, no_store = false;
    for (size_t i = 0; i < args.size(); i++) {
        std::string key = args[i], value;
        bool has_value = false;
        size_t eq = key.find('=');
        if (key.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = key.substr(eq + 1);
            key = key.substr(0, eq);
            has_value = true;
        }
        if (key == "--help" || key == "-h") {
            fputs(kUsage, stdout);
            return kExitOk;
        }
        if (key == "--plain" || key == "--apply" || key == "--no-store") {
            (key == "--plain" ? o.plain : key == "--apply" ? apply : no_store) = true;
            continue;
        }
        static const char *const valued[] = {"--dsn", "--workload", "--store-dsn", "--budget-mb", "--max-indexes",
                                             "--width", "--min-benefit", "--write-cost-us", "--max-queries",
                                             "--timeout-ms"};
        bool known = false;
        for (const char *v : valued)
            known |= key == v;
        if (!known) {
            fprintf(stderr, "pilotd advise: unknown argument \"%s\"\n%s", args[i].c_str(), kUsage);
            return kExitUsage;
        }
        if (!has_value) {
            if (i + 1 >= args.size()) {
                fprintf(stderr, "pilotd advise: %s needs a value\n", key.c_str());
                return kExitUsage;
            }
            value = args[++i];
        }
        double d = 0;
        bool ok = true;
        if (key == "--dsn")
            o.dsn = value;
        else if (key == "--workload")
            o.workload = value;
        else if (key == "--store-dsn")
            o.store_dsn = value;
        else if (key == "--budget-mb")
            ok = parse_number(value, 0.001, 1e9, &o.budget_mb);
        else if (key == "--min-benefit")
            ok = parse_number(value, 0, 100, &o.min_benefit_pct);
        else if (key == "--write-cost-us")
            ok = parse_number(value, 0, 1e6, &o.write_cost_us);
        else if ((ok = parse_number(value, 1, 1e6, &d) && d == std::floor(d))) {
            uint32_t n = static_cast<uint32_t>(d);
            if (key == "--max-indexes")
                o.max_indexes = n;
            else if (key == "--width")
                ok = (o.width = n) <= 3;
            else if (key == "--max-queries")
                o.max_queries = n;
            else
                o.timeout_ms = n;
        }
        if (!ok) {
            fprintf(stderr, "pilotd advise: bad value \"%s\" for %s (see pilotd advise --help)\n", value.c_str(),
                    key.c_str());
            return kExitUsage;
        }
    }
    if (o.dsn.empty()) {
        fprintf(stderr, "pilotd advise: the database to advise is required: --dsn DSN (or \"model-dsn\" in the "
                        "config file)\n%s", kUsage);
        return kExitUsage;
    }
    o.dsn = dsn_for_server_of(o.dsn, d.config.pgdata);
    if (!o.store_dsn.empty())
        o.store_dsn = dsn_for_server_of(o.store_dsn, d.config.pgdata);
    /* one progress line per counted step (planned, measured), other news under it */
    std::unique_ptr<Progress> bar;
    std::string step;
    o.counted = [&](const char *what, size_t done, size_t total) {
        if (!bar || step != what) {
            step = what;
            bar = std::make_unique<Progress>(std::string("advise: ") + what, total, "queries");
        }
        bar->update(done);
    };
    o.progress = [&](const std::string &s) {
        if (bar)
            bar->note("advise: %s", s.c_str());
        else
            fprintf(stderr, "advise: %s\n", s.c_str());
    };

    PqSession db;
    std::string err;
    if (!db.connect(o.dsn, "pilotd index advisor", &err)) {
        fprintf(stderr, "pilotd advise: %s\n", err.c_str());
        return kExitFailure;
    }
    AdviceResult res = advise(db, o);
    bar.reset();
    if (!res.ok) {
        fprintf(stderr, "pilotd advise: %s\n", res.error.c_str());
        return kExitFailure;
    }
    for (const std::string &s : res.skipped_examples)
        fprintf(stderr, "advise: skipped %s\n", s.c_str());
    for (const IndexRecommendation &r : res.recommendations) {
        printf("recommend: %s; -- %.1f MB, benefit %.1f ms (%.1f%%), write cost %.1f ms, %zu queries: %s\n",
               r.statement.c_str(), r.size_bytes / 1048576.0, r.benefit_ms,
               res.workload_ms > 0 ? 100 * r.benefit_ms / res.workload_ms : 0.0, r.write_cost_ms, r.queries.size(),
               r.reason.c_str());
    }
    for (const RedundantIndex &f : res.redundant)
        printf("redundant: %s; -- %s, %.1f MB: %s\n", f.statement.c_str(), f.kind.c_str(), f.size_bytes / 1048576.0,
               f.reason.c_str());
    double mb = 0, benefit = 0;
    for (const IndexRecommendation &r : res.recommendations) {
        mb += r.size_bytes / 1048576.0;
        benefit += r.benefit_ms;
    }
    if (!res.note.empty())
        printf("advise: %s\n", res.note.c_str());
    printf("advise: %zu index%s, %.1f MB, estimated benefit %.1f ms of %.1f ms workload time (%s cardinalities); "
           "%u queries costed, %u skipped, %u candidates, %llu what-if plans (%llu cached), %.1f s\n",
           res.recommendations.size(), res.recommendations.size() == 1 ? "" : "es", mb, benefit, res.workload_ms, res.learned ? "learned" : "PostgreSQL's",
           res.queries, res.skipped, res.candidates, static_cast<unsigned long long>(res.whatif_plans),
           static_cast<unsigned long long>(res.whatif_cache_hits), res.seconds);
    const uint64_t run_id = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    bool stored = false;
    if (!no_store) {
        stored = store_advice(db, res, o, run_id, &err);
        if (!stored)
            fprintf(stderr, "advise: not stored: %s\n", err.c_str());
    }
    int rc = kExitOk;
    if (apply) {
        for (const IndexRecommendation &r : res.recommendations) {
            uint32_t using_it = 0;
            auto t0 = std::chrono::steady_clock::now();
            bool ok = apply_recommendation(db, r, &using_it, &err);
            double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (ok)
                printf("applied: %s in %.1f s; %u of %zu affected queries now plan with it\n", r.index_name.c_str(), s,
                       using_it, r.queries.size());
            else {
                printf("apply failed: %s\n", err.c_str());
                rc = kExitFailure;
            }
            if (stored)
                db.query("UPDATE pg_pilot.index_advice SET status = $3, applied_at = CASE WHEN $3 = 'applied' THEN "
                         "now() END, note = $4 WHERE run_id = $1 AND index_name = $2 AND kind = 'create'",
                         {std::to_string(run_id), r.index_name, ok ? "applied" : "failed",
                          ok ? std::to_string(using_it) + " of " + std::to_string(r.queries.size()) +
                                   " affected queries plan with it"
                             : err},
                         &err);
        }
    }
    return rc;
}

} // namespace pilotd
