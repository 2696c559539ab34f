/* advisor_service.cpp — see advisor_service.h. */
#include "advisor_service.h"

#include "log.h"
#include "pq_session.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

namespace pilotd {

using pilot::proto::AdvisorJob;

namespace {

constexpr const char *kAppName = "pilotd index advisor";
constexpr double kHelpedBelow = 0.9;  /* after < 0.9 x before: the index helped */
constexpr long long kMinRuns = 3;     /* executions per query before and after */

const char *action_name(uint32_t a) {
    switch (a) {
    case pilot::proto::ADVISE_RUN: return "advise";
    case pilot::proto::ADVISE_APPLY: return "apply";
    case pilot::proto::ADVISE_VERIFY: return "verify";
    default: return "invalid";
    }
}

uint64_t now_us() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

std::string fmt1(double v) {
    char b[64];
    snprintf(b, sizeof b, "%.1f", v);
    return b;
}

} // namespace

AdvisorService::AdvisorService(AdvisorServiceOptions o) : o_(std::move(o)) {}

AdvisorService::~AdvisorService() { stop(); }

void AdvisorService::start() { thread_ = std::thread([this] { loop(); }); }

void AdvisorService::stop() {
    {
        std::lock_guard<std::mutex> g(mu_);
        stop_ = true;
        stopping_ = true;
    }
    {
        std::lock_guard<std::mutex> g(active_mu_);
        if (active_ != nullptr)
            active_->cancel(); /* a long CREATE INDEX or EXPLAIN ANALYZE ends now */
    }
    cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

/* unique across restarts (pg_pilot.advisor_run's key): microseconds, increasing */
uint64_t AdvisorService::next_id() {
    uint64_t id = now_us();
    if (id <= last_id_)
        id = last_id_ + 1;
    last_id_ = id;
    return id;
}

bool AdvisorService::submit(const AdvisorJob &job, uint32_t dboid, uint64_t *job_id, std::string *why) noexcept {
    try {
        std::lock_guard<std::mutex> g(mu_);
        if (stop_) {
            *why = "pilotd is stopping";
            return false;
        }
        if (queue_.size() >= kMaxQueued) {
            *why = "the advisor's queue is full";
            return false;
        }
        Job j{next_id(), dboid, job};
        queue_.push_back(j);
        *job_id = j.id;
    } catch (const std::exception &e) {
        *why = e.what();
        return false;
    }
    cv_.notify_all();
    return true;
}

void AdvisorService::loop() {
    auto next_scheduled = std::chrono::steady_clock::now() + std::chrono::seconds(o_.every_s);
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
        if (queue_.empty()) {
            if (o_.every_s > 0) {
                if (cv_.wait_until(lk, next_scheduled) == std::cv_status::timeout && queue_.empty() && !stop_) {
                    /* verify what was applied, then advise again */
                    AdvisorJob v{};
                    v.action = pilot::proto::ADVISE_VERIFY;
                    queue_.push_back(Job{next_id(), 0, v});
                    AdvisorJob a{};
                    a.action = pilot::proto::ADVISE_RUN;
                    queue_.push_back(Job{next_id(), 0, a});
                    next_scheduled = std::chrono::steady_clock::now() + std::chrono::seconds(o_.every_s);
                }
            } else {
                cv_.wait(lk);
            }
            continue;
        }
        Job j = queue_.front();
        queue_.pop_front();
        lk.unlock();
        try {
            run(j);
        } catch (const std::exception &e) {
            LOG_ERROR("index advisor: job %llu failed: %s", static_cast<unsigned long long>(j.id), e.what());
        }
        lk.lock();
    }
}

void AdvisorService::run(const Job &j) {
    const auto t0 = std::chrono::steady_clock::now();
    const char *what = action_name(j.job.action);
    std::string err, dbname;
    if (j.dboid != 0) {
        PqSession base;
        if (!base.connect(o_.dsn, kAppName, &err)) {
            LOG_WARNING("index advisor: job %llu (%s): %s", static_cast<unsigned long long>(j.id), what, err.c_str());
            return;
        }
        PgResult r = base.query("SELECT datname FROM pg_catalog.pg_database WHERE oid = $1", {std::to_string(j.dboid)},
                                &err);
        if (!r || pq_rows(r.get()) != 1) {
            LOG_WARNING("index advisor: job %llu (%s): no database with oid %u", static_cast<unsigned long long>(j.id),
                        what, j.dboid);
            return;
        }
        dbname = pq_text(r.get(), 0, 0);
    }
    PqSession db;
    if (!db.connect(o_.dsn, kAppName, &err, dbname)) {
        LOG_WARNING("index advisor: job %llu (%s): %s", static_cast<unsigned long long>(j.id), what, err.c_str());
        return;
    }
    struct Active {
        AdvisorService &s;
        Active(AdvisorService &svc, const PqSession *db) : s(svc) {
            std::lock_guard<std::mutex> g(s.active_mu_);
            s.active_ = db;
        }
        ~Active() {
            std::lock_guard<std::mutex> g(s.active_mu_);
            s.active_ = nullptr;
        }
    } active(*this, &db);
    const std::string id = std::to_string(j.id);
    /* one job at a time: a row still "running" is from a pilotd that died */
    db.query("UPDATE pg_pilot.advisor_run SET state = 'failed', finished_at = now(), message = 'pilotd stopped "
             "before the job finished' WHERE state = 'running'",
             {}, &err);
    if (!db.query("INSERT INTO pg_pilot.advisor_run (id, action, state) VALUES ($1, $2, 'running')", {id, what}, &err)) {
        LOG_WARNING("index advisor: job %llu (%s) in database \"%s\": cannot record it in pg_pilot.advisor_run (%s); "
                    "is pg_pilot 0.3 installed there, and is the advisor's login a member of pilot_advisor?",
                    static_cast<unsigned long long>(j.id), what, dbname.c_str(), err.c_str());
        return;
    }
    /* the advisor plans the workload's queries: functions in them run as
     * this login at planning time, so it should hold no more than it needs */
    static std::atomic<bool> warned_superuser{false};
    PgResult su = db.query("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user", {}, &err);
    if (su && pq_rows(su.get()) == 1 && pq_text(su.get(), 0, 0) == "t" && !warned_superuser.exchange(true))
        LOG_WARNING("index advisor: its login (--advisor-dsn) is a superuser; use a role in pilot_advisor and "
                    "pg_read_all_stats that owns the application's tables (see the README)");
    LOG_INFO("index advisor: job %llu (%s) started in database \"%s\"", static_cast<unsigned long long>(j.id), what,
             dbname.empty() ? "(advisor-dsn's)" : dbname.c_str());
    std::string message;
    bool ok = false;
    try {
        switch (j.job.action) {
        case pilot::proto::ADVISE_RUN: ok = do_advise(db, j, &message); break;
        case pilot::proto::ADVISE_APPLY: ok = do_apply(db, j, &message); break;
        case pilot::proto::ADVISE_VERIFY: ok = do_verify(db, j.job.drop_unhelpful != 0, &message); break;
        default: message = "unknown action"; break;
        }
    } catch (const std::exception &e) {
        ok = false;
        message = std::string("internal error: ") + e.what();
    }
    if (stopping_ && !ok)
        message = "pilotd stopped during the job (" + message + ")";
    db.exec_quiet("ROLLBACK");
    if (!db.query("UPDATE pg_pilot.advisor_run SET state = $2, finished_at = now(), message = $3 WHERE id = $1",
                  {id, ok ? "done" : "failed", message}, &err))
        LOG_WARNING("index advisor: job %llu: cannot record its end: %s", static_cast<unsigned long long>(j.id),
                    err.c_str());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (ok)
        LOG_INFO("index advisor: job %llu (%s) done in %.1f s: %s", static_cast<unsigned long long>(j.id), what, s,
                 message.c_str());
    else
        LOG_WARNING("index advisor: job %llu (%s) failed after %.1f s: %s", static_cast<unsigned long long>(j.id), what,
                    s, message.c_str());
}

bool AdvisorService::do_advise(PqSession &db, const Job &j, std::string *message) {
    AdvisorOptions o = o_.defaults;
    o.store_dsn = o_.store_dsn;
    if (j.job.budget_mb > 0)
        o.budget_mb = j.job.budget_mb;
    if (j.job.max_indexes > 0)
        o.max_indexes = j.job.max_indexes;
    o.stop = &stopping_;
    o.progress = [&j](const std::string &s) {
        LOG_INFO("index advisor: job %llu: %s", static_cast<unsigned long long>(j.id), s.c_str());
    };
    AdviceResult res = advise(db, o);
    if (!res.ok) {
        *message = res.error;
        return false;
    }
    for (const std::string &s : res.skipped_examples)
        LOG_INFO("index advisor: job %llu: skipped %s", static_cast<unsigned long long>(j.id), s.c_str());
    std::string err;
    if (!store_advice(db, res, o, j.id, &err)) {
        *message = err;
        return false;
    }
    *message = std::to_string(res.recommendations.size()) + " recommendations, " +
               std::to_string(res.redundant.size()) + " redundant indexes; " + std::to_string(res.queries) +
               " queries costed, " + std::to_string(res.skipped) + " skipped, " + std::to_string(res.candidates) +
               " candidates, " + std::to_string(res.whatif_plans) + " what-if plans, " + fmt1(res.seconds) + " s (" +
               (res.learned ? "learned" : "PostgreSQL's") + " cardinalities)" +
               (res.note.empty() ? "" : "; " + res.note);
    return true;
}

bool AdvisorService::do_apply(PqSession &db, const Job &j, std::string *message) {
    std::string err;
    const std::string id = std::to_string(j.job.recommendation);
    PgResult r = db.query("SELECT schema_name, table_name, array_to_json(columns)::text, index_name, statement, "
                          "queries::text, status FROM pg_pilot.index_advice WHERE id = $1 AND kind = 'create'",
                          {id}, &err);
    if (!r || pq_rows(r.get()) != 1) {
        *message = r ? "no index recommendation " + id : err;
        return false;
    }
    IndexRecommendation rec;
    rec.schema = pq_text(r.get(), 0, 0);
    rec.table = pq_text(r.get(), 0, 1);
    nlohmann::json cols = nlohmann::json::parse(pq_text(r.get(), 0, 2), nullptr, false);
    if (cols.is_array())
        for (const auto &c : cols)
            if (c.is_string())
                rec.columns.push_back(c.get<std::string>());
    rec.index_name = pq_text(r.get(), 0, 3);
    rec.statement = pq_text(r.get(), 0, 4);
    nlohmann::json qs = nlohmann::json::parse(pq_text(r.get(), 0, 5), nullptr, false);
    if (qs.is_array())
        for (const auto &q : qs)
            if (q.is_object() && q.contains("query") && q["query"].is_string()) {
                QueryGain g;
                g.query = q["query"].get<std::string>();
                rec.queries.push_back(g);
            }
    const std::string status = pq_text(r.get(), 0, 6);
    if (status != "proposed" && status != "failed" && status != "superseded") {
        *message = "recommendation " + id + " is already " + status;
        return false;
    }
    uint32_t using_it = 0;
    bool ok = apply_recommendation(db, rec, &using_it, &err);
    *message = ok ? "created " + rec.index_name + "; " + std::to_string(using_it) + " of " +
                        std::to_string(rec.queries.size()) + " affected queries plan with it"
                  : err;
    std::string err2;
    if (!db.query("UPDATE pg_pilot.index_advice SET status = $2, applied_at = CASE WHEN $2 = 'applied' THEN now() END, "
                  "note = $3 WHERE id = $1",
                  {id, ok ? "applied" : "failed", *message}, &err2))
        LOG_WARNING("index advisor: cannot record recommendation %s as applied: %s", id.c_str(), err2.c_str());
    return ok;
}

bool AdvisorService::do_verify(PqSession &db, bool drop_unhelpful, std::string *message) {
    std::string err;
    PgResult r = db.query("SELECT id, schema_name, index_name, applied_at::text, queries::text FROM "
                          "pg_pilot.index_advice WHERE kind = 'create' AND applied_at IS NOT NULL AND status IN "
                          "('applied', 'helped', 'no gain') ORDER BY id",
                          {}, &err);
    if (!r) {
        *message = err;
        return false;
    }
    if (pq_rows(r.get()) == 0) {
        *message = "no applied index to verify";
        return true;
    }
    PqSession store;
    if (o_.store_dsn.empty() || o_.store_dsn == "none" || !store.connect(o_.store_dsn, kAppName, &err)) {
        *message = "cannot verify without the feedback store (pg_pilot.query_log): " +
                   (o_.store_dsn.empty() || o_.store_dsn == "none" ? std::string("pilotd runs with store-dsn none")
                                                                   : err);
        return false;
    }
    uint32_t helped = 0, no_gain = 0, dropped = 0, waiting = 0;
    for (int i = 0; i < pq_rows(r.get()); i++) {
        const std::string id = pq_text(r.get(), i, 0), schema = pq_text(r.get(), i, 1),
                          index = pq_text(r.get(), i, 2), applied_at = pq_text(r.get(), i, 3);
        std::map<long long, double> weight; /* queryid -> calls */
        nlohmann::json qs = nlohmann::json::parse(pq_text(r.get(), i, 4), nullptr, false);
        if (qs.is_array())
            for (const auto &q : qs)
                if (q.is_object() && q.value("queryid", 0LL) != 0)
                    weight[q.value("queryid", 0LL)] = std::max(1.0, q.value("calls", 1.0));
        std::string note, status;
        double before = 0, after = 0, wsum = 0;
        if (weight.empty()) {
            note = "no query ids to verify with (recommended from a workload file)";
        } else {
            std::string ids = "{";
            for (const auto &w : weight)
                ids += (ids.size() > 1 ? "," : "") + std::to_string(w.first);
            ids += "}";
            PgResult t = store.query(
                "SELECT query_id, count(*) FILTER (WHERE logged_at < $2::timestamptz), avg(execution_ms) FILTER (WHERE "
                "logged_at < $2::timestamptz), count(*) FILTER (WHERE logged_at >= $2::timestamptz), "
                "avg(execution_ms) FILTER (WHERE logged_at >= $2::timestamptz) FROM pg_pilot.query_log "
                "WHERE query_id = ANY($1::bigint[]) GROUP BY query_id",
                {ids, applied_at}, &err);
            if (!t) {
                *message = "reading pg_pilot.query_log: " + err;
                return false;
            }
            long long after_runs = 0;
            for (int k = 0; k < pq_rows(t.get()); k++) {
                long long nb = pq_int(t.get(), k, 1), na = pq_int(t.get(), k, 3);
                after_runs += na;
                if (nb < kMinRuns || na < kMinRuns)
                    continue;
                double w = weight[pq_int(t.get(), k, 0)];
                before += w * pq_double(t.get(), k, 2);
                after += w * pq_double(t.get(), k, 4);
                wsum += w;
            }
            if (wsum == 0)
                note = "waiting for executions: " + std::to_string(after_runs) + " since it was created (" +
                       std::to_string(kMinRuns) + " per query before and after are needed)";
        }
        if (wsum == 0) {
            waiting++;
            db.query("UPDATE pg_pilot.index_advice SET verified_at = now(), note = $2 WHERE id = $1", {id, note}, &err);
            continue;
        }
        before /= wsum;
        after /= wsum;
        if (after < kHelpedBelow * before) {
            status = "helped";
            helped++;
            note = "its queries ran " + fmt1(before / std::max(after, 1e-6)) + "x faster";
        } else {
            status = "no gain";
            no_gain++;
            note = "its queries did not get at least 10% faster";
            if (drop_unhelpful) {
                std::string derr;
                if (db.exec("DROP INDEX CONCURRENTLY IF EXISTS " + quote_ident(schema) + "." + quote_ident(index),
                            &derr)) {
                    status = "dropped";
                    dropped++;
                    note += "; dropped";
                } else {
                    note += "; could not drop it: " + derr;
                }
            }
        }
        db.query("UPDATE pg_pilot.index_advice SET status = $2, verified_at = now(), time_before_ms = $3, "
                 "time_after_ms = $4, note = $5 WHERE id = $1",
                 {id, status, std::to_string(before), std::to_string(after), note}, &err);
    }
    *message = std::to_string(helped) + " helped, " + std::to_string(no_gain) + " no gain (" +
               std::to_string(dropped) + " dropped), " + std::to_string(waiting) + " waiting for executions";
    return true;
}

} // namespace pilotd
