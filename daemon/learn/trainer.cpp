/* trainer.cpp — see trainer.h. */
#include "trainer.h"

#include "config.h"
#include "durable_file.h"
#include "key_catalog.h"
#include "pilot_protocol.h"
#include "log.h"
#include "model_registry.h"
#include "mscn.h"
#include "pg_store.h"
#include "conninfo.h"
#include "pq_session.h"
#include "schema_snapshot.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <limits>
#include <map>
#include <set>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pilotd {

namespace pm = pilot::model;

namespace {

struct Record {
    uint64_t key, template_key;
    uint32_t dboid; /* where it was observed; 0: unknown (stored before extension 0.8) */
    uint32_t nrels;
    double native, actual;
    const std::string *text;
};

void say(const TrainRequest &r, const std::string &line) {
    if (r.progress)
        r.progress(line);
}

/* The newest observation of every relation set of database dboid in the
 * store (and of those stored without their database, before extension 0.8). */
bool read_feedback(const TrainRequest &r, uint32_t dboid, std::vector<Record> *out, std::string *error) {
    PGconn *c = PQconnectdb(dsn_for_server_of(r.store_dsn, r.pgdata).c_str());
    if (PQstatus(c) != CONNECTION_OK) {
        *error = "cannot connect to the feedback store (" + redacted_dsn(r.store_dsn) + "): " +
                 std::string(PQerrorMessage(c)).substr(0, 200);
        PQfinish(c);
        return false;
    }
    std::string limit = std::to_string(r.max_records);
    if (!pilotd_own_session(c, error)) {
        PQfinish(c);
        return false;
    }
    const bool has_dboid = store_has_columns(c, "pg_pilot.feedback", {"dboid"}); /* extension 0.8 */
    const std::string db = std::to_string(dboid);
    std::string sql =
        has_dboid ? "SELECT subplan_key, template_key, nrels, coalesce(native_rows, -1), actual_rows, "
                    "coalesce(dboid, 0) FROM (SELECT DISTINCT ON (subplan_key) * FROM pg_pilot.feedback "
                    "      WHERE dboid = " + db + " OR dboid IS NULL "
                    "      ORDER BY subplan_key, id DESC) f ORDER BY id DESC LIMIT " + limit
                  : "SELECT subplan_key, template_key, nrels, coalesce(native_rows, -1), actual_rows, 0 "
                    "FROM (SELECT DISTINCT ON (subplan_key) * FROM pg_pilot.feedback "
                    "      ORDER BY subplan_key, id DESC) f ORDER BY id DESC LIMIT " + limit;
    PGresult *res = PQexec(c, sql.c_str());
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *error = "cannot read pg_pilot.feedback: " + std::string(PQerrorMessage(c)).substr(0, 200);
        PQclear(res);
        PQfinish(c);
        return false;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        Record rec;
        rec.key = static_cast<uint64_t>(strtoll(PQgetvalue(res, i, 0), nullptr, 10));
        rec.template_key = static_cast<uint64_t>(strtoll(PQgetvalue(res, i, 1), nullptr, 10));
        rec.nrels = static_cast<uint32_t>(atoi(PQgetvalue(res, i, 2)));
        rec.native = strtod(PQgetvalue(res, i, 3), nullptr);
        rec.actual = strtod(PQgetvalue(res, i, 4), nullptr);
        rec.dboid = static_cast<uint32_t>(strtoul(PQgetvalue(res, i, 5), nullptr, 10));
        rec.text = nullptr;
        if (std::isfinite(rec.actual) && rec.actual >= 0)
            out->push_back(rec);
    }
    PQclear(res);
    PQfinish(c);
    return true;
}

bool held_out(uint64_t template_key, double share) {
    /* a fixed mix of the template hash: the same templates every time */
    uint64_t h = template_key * 0x9E3779B97F4A7C15ULL;
    return static_cast<double>((h >> 11) % 10000) < share * 10000.0;
}


} // namespace

bool claim_version(const std::string &dir, uint32_t *version, std::string *error) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        *error = errno_text("cannot create", dir);
        return false;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        uint32_t top = 0;
        DIR *d = opendir(dir.c_str());
        if (!d) {
            *error = errno_text("cannot read", dir);
            return false;
        }
        while (struct dirent *e = readdir(d)) {
            char *end = nullptr;
            unsigned long v = strtoul(e->d_name, &end, 10);
            if (end != e->d_name && (strcmp(end, ".model") == 0 || strcmp(end, ".training") == 0 ||
                                     strcmp(end, ".model.tmp") == 0))
                top = std::max<uint32_t>(top, static_cast<uint32_t>(v));
        }
        closedir(d);
        std::string marker = dir + "/" + std::to_string(top + 1) + ".training";
        int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            std::string pid = std::to_string(getpid()) + "\n";
            (void)write_all(fd, pid.data(), pid.size());
            ::close(fd);
            *version = top + 1;
            return true;
        }
        if (errno != EEXIST) {
            *error = errno_text("cannot create", marker);
            return false;
        }
    }
    *error = "cannot claim a model version number in " + dir;
    return false;
}

TrainResult train_model(const TrainRequest &r) noexcept {
    TrainResult out;
    uint32_t version = 0;
    std::string marker;
    try {
        const auto t0 = std::chrono::steady_clock::now();
        if (!claim_version(r.models_dir, &version, &out.error))
            return out;
        out.version = version;
        marker = r.models_dir + "/" + std::to_string(version) + ".training";
        say(r, "training model version " + std::to_string(version) + " for " + redacted_dsn(r.model_dsn) + " (seed " +
                   std::to_string(r.seed) + ")");

        /* connections go to the server of -D unless the DSN names another;
         * the version records the DSN as given (pilotd completes it the same
         * way when it verifies the version's database) */
        const std::string model_dsn = dsn_for_server_of(r.model_dsn, r.pgdata);
        DatabaseIdentity id;
        if (!database_identity(model_dsn, {}, &id, &out.error))
            throw std::runtime_error(out.error);

        std::unordered_map<uint64_t, KeyCatalog::Entry> catalog;
        if (!KeyCatalog::load(r.catalog_path, &catalog, &out.error))
            throw std::runtime_error(out.error);
        std::vector<Record> all;
        if (!read_feedback(r, id.dboid, &all, &out.error))
            throw std::runtime_error(out.error);
        std::vector<Record> recs;
        uint64_t no_text = 0;
        for (Record &rec : all) {
            /* the text describes the set whichever database sent it (the key
             * is its hash); where the record does not say its database, the
             * catalog's says it */
            auto it = catalog.find(rec.key);
            if (it == catalog.end() || (rec.dboid == 0 && it->second.dboid != id.dboid)) {
                no_text++;
                continue;
            }
            rec.text = &it->second.text;
            recs.push_back(rec);
        }
        say(r, std::to_string(all.size()) + " relation sets in the feedback store, " + std::to_string(recs.size()) +
                   " of database " + id.database + " with a known description (" + std::to_string(no_text) +
                   " without)");
        if (recs.size() < 20)
            throw std::runtime_error("too little feedback to train on: " + std::to_string(recs.size()) +
                                     " relation sets of database " + id.database +
                                     " (run queries with pg_pilot.collect_feedback = on, or `pilotd collect`)");

        /* tables and joins the feedback mentions; feedback on tables that
         * are gone or temporary (nothing to sample) is left out */
        std::set<std::string> mentioned;
        std::vector<pm::KeyInfo> parsed(recs.size());
        std::vector<bool> readable(recs.size(), false);
        for (size_t i = 0; i < recs.size(); i++) {
            std::string why;
            if (!pm::parse_key(*recs[i].text, &parsed[i], &why))
                continue;
            readable[i] = true;
            for (const auto &rel : parsed[i].rels)
                mentioned.insert(rel.table);
        }
        std::vector<std::string> samplable;
        if (!samplable_tables(model_dsn, std::vector<std::string>(mentioned.begin(), mentioned.end()), &samplable,
                              &out.error))
            throw std::runtime_error(out.error);
        const std::set<std::string> present(samplable.begin(), samplable.end());
        size_t gone = 0;
        std::vector<bool> left_out(recs.size(), false);
        for (size_t i = 0; i < recs.size(); i++) {
            if (!readable[i])
                continue;
            for (const auto &rel : parsed[i].rels)
                if (!present.count(rel.table)) {
                    readable[i] = false;
                    left_out[i] = true;
                    gone++;
                    break;
                }
        }
        if (gone > 0)
            say(r, std::to_string(gone) + " relation sets left out: " +
                       std::to_string(mentioned.size() - present.size()) +
                       " of their tables are gone or temporary");
        std::set<std::string> tables, joins;
        double max_rows = 1;
        for (size_t i = 0; i < recs.size(); i++) {
            if (!readable[i])
                continue;
            for (const auto &rel : parsed[i].rels)
                tables.insert(rel.table);
            for (const auto &j : parsed[i].joins)
                joins.insert(pm::join_name(parsed[i].rels[j.rel_a].table, j.col_a, parsed[i].rels[j.rel_b].table,
                                           j.col_b));
            max_rows = std::max(max_rows, recs[i].actual);
            max_rows = std::max(max_rows, recs[i].native);
        }
        say(r, "sampling " + std::to_string(tables.size()) + " tables (" + std::to_string(r.sample_rows) +
                   " rows each)");
        pm::Schema schema;
        if (!snapshot_schema(model_dsn, std::vector<std::string>(tables.begin(), tables.end()), r.sample_rows,
                             &schema, &id, &out.error))
            throw std::runtime_error(out.error);
        schema.joins.assign(joins.begin(), joins.end());
        schema.max_log_rows = std::log(max_rows) + 1.0;
        schema.index();

        /* featurize with PostgreSQL's estimate where the feedback has it: the
         * backend sends the same number (for joins: native_join_size.cpp) */
        std::vector<pm::Features> feats(recs.size());
        std::vector<const pm::Features *> tx, vx, dx;
        std::vector<float> dy;
        std::vector<const pm::Features *> cx;
        std::vector<double> c_actual, c_native, d_actual, d_native;
        std::vector<float> ty;
        std::vector<double> v_actual, v_native;
        std::vector<size_t> v_index;
        uint64_t declined = 0;
        for (size_t i = 0; i < recs.size(); i++) {
            std::string why;
            if (left_out[i])
                continue; /* counted above */
            if (!readable[i] || !pm::featurize(schema, *recs[i].text, recs[i].native, &feats[i], &why)) {
                declined++;
                continue;
            }
            /* the split follows the seed: another seed, other held-out templates */
            const uint64_t tkey = recs[i].template_key ^ (r.seed * 0xD6E8FEB86659FD93ULL);
            const bool validation = held_out(tkey, r.validation_share);
            if (!validation && held_out(tkey ^ 0x5bd1e9955bd1e995ULL, 0.1)) {
                /* another ~10 % of the templates: early stopping, not training */
                dx.push_back(&feats[i]);
                dy.push_back(pm::rows_to_label(schema, recs[i].actual));
                d_actual.push_back(recs[i].actual);
                d_native.push_back(recs[i].native);
            } else if (!validation && held_out(tkey ^ 0x2545f4914f6cdd1dULL, 0.15)) {
                /* and ~15 % more: when to decline (calibration) */
                cx.push_back(&feats[i]);
                c_actual.push_back(recs[i].actual);
                c_native.push_back(recs[i].native);
            } else if (validation) {
                vx.push_back(&feats[i]);
                v_actual.push_back(recs[i].actual);
                v_native.push_back(recs[i].native);
                v_index.push_back(i);
            } else {
                tx.push_back(&feats[i]);
                ty.push_back(pm::rows_to_label(schema, recs[i].actual));
            }
        }
        if (tx.size() < 10 || vx.empty())
            throw std::runtime_error("too few describable relation sets: " + std::to_string(tx.size()) +
                                     " to train on, " + std::to_string(vx.size()) + " to validate with (" +
                                     std::to_string(declined) + " declined by the featurizer)");
        say(r, std::to_string(tx.size()) + " relation sets to train on, " + std::to_string(dx.size()) +
                   " for early stopping, " + std::to_string(cx.size()) + " to calibrate when to decline, " +
                   std::to_string(vx.size()) + " held out for validation (whole query templates), " +
                   std::to_string(declined) + " the featurizer declines");

        pm::Dims dims = pm::dims_of(schema);
        auto net = pm::Mscn::create(dims, r.hidden, r.seed);
        pm::TrainOptions o;
        o.epochs = r.epochs;
        o.max_seconds = r.max_seconds;
        o.seed = r.seed;
        o.cancel = r.cancel;
        uint32_t best_epoch = 0;
        if (!dx.empty()) {
            o.dev_x = &dx;
            o.dev_y = &dy;
            o.best_epoch = &best_epoch;
        }
        uint32_t report_every = std::max<uint32_t>(1, r.epochs / 10);
        o.progress = [&](uint32_t epoch, double loss) {
            if (r.epoch_progress)
                r.epoch_progress(epoch, r.epochs, loss);
            else if (epoch % report_every == 0 || epoch == r.epochs) {
                char b[96];
                snprintf(b, sizeof b, "epoch %u/%u: loss %.5f", epoch, r.epochs, loss);
                say(r, b);
            }
        };
        if (r.epoch_progress)
            r.epoch_progress(0, r.epochs, 0.0); /* the epochs start now */
        net->train(tx, ty, o);
        if (best_epoch)
            say(r, "kept the weights of epoch " + std::to_string(best_epoch) + " (best on " +
                       std::to_string(dx.size()) + " early-stopping records)");

        std::vector<float> pred;
        std::string why;
        if (!net->predict(vx, &pred, &why))
            throw std::runtime_error(why);
        /* When PostgreSQL's estimate stands (models/answer_rule.h): each
         * cell's thresholds chosen on the calibration and early-stopping
         * records together (neither trained on), then judged on the held-out
         * templates as served. */
        pm::AnswerRule rule;
        {
            std::vector<const pm::Features *> jx(cx);
            jx.insert(jx.end(), dx.begin(), dx.end());
            std::vector<double> j_native(c_native), j_actual(c_actual);
            j_native.insert(j_native.end(), d_native.begin(), d_native.end());
            j_actual.insert(j_actual.end(), d_actual.begin(), d_actual.end());
            std::vector<float> dpred;
            if (!jx.empty() && !net->predict(jx, &dpred, &why))
                throw std::runtime_error(why);
            std::vector<pm::CalibrationRecord> cal;
            for (size_t k = 0; k < jx.size(); k++) {
                if (!(j_native[k] > 0))
                    continue;
                pm::CalibrationRecord c;
                c.nrels = jx[k]->nrels;
                c.fewest_hits = jx[k]->fewest_hits;
                c.model_rows = pm::label_to_rows(schema, dpred[k]);
                c.native_rows = j_native[k];
                c.true_rows = j_actual[k];
                cal.push_back(c);
            }
            rule = pm::calibrate_rule(cal, max_rows);
            say(r, "when the model answers, by number of relations and fewest sample hits (" +
                       std::to_string(cal.size()) + " calibration records):\n" + pm::rule_text(rule));
        }
        std::vector<double> v_model(pred.size());
        uint64_t v_declined = 0, v_worse = 0, v_better = 0;
        for (size_t i = 0; i < pred.size(); i++) {
            const pm::RuleOutcome o =
                pm::apply_rule(rule, *vx[i], pm::label_to_rows(schema, pred[i]), v_native[i]);
            if (o.answer && (v_native[i] >= 0 || o.band < pm::kNoLimit)) {
                v_model[i] = o.rows;
            } else {
                v_model[i] = v_native[i] >= 0 ? v_native[i] : 1; /* as the backend would */
                v_declined++;
            }
            if (v_native[i] >= 0) {
                const double qm = pm::qerror(v_model[i], v_actual[i]), qn = pm::qerror(v_native[i], v_actual[i]);
                v_worse += qm > 2 * qn;
                v_better += qn > 2 * qm;
            }
        }
        char dmsg[240];
        snprintf(dmsg, sizeof dmsg,
                 "held out: PostgreSQL's estimate kept for %llu of %zu records; the model's is more than 2x "
                 "worse than PostgreSQL's on %llu, more than 2x better on %llu",
                 static_cast<unsigned long long>(v_declined), vx.size(), static_cast<unsigned long long>(v_worse),
                 static_cast<unsigned long long>(v_better));
        say(r, dmsg);

        pm::ModelMeta &m = out.meta;
        m.version = version;
        m.created_unix = static_cast<uint64_t>(time(nullptr));
        m.hidden = r.hidden;
        m.system_identifier = id.system_identifier;
        m.database = id.database;
        m.dboid = id.dboid;
        m.fingerprint = id.fingerprint;
        m.dsn = redacted_dsn(r.model_dsn);
        m.train_records = tx.size();
        m.validation_records = vx.size();
        m.seed = r.seed;
        m.answer_rule = rule;
        m.validation_worse_2x = v_worse;
        m.validation_better_2x = v_better;
        m.declined_records = declined;
        m.model_q = pm::summarize_qerrors(v_model, v_actual);
        /* PostgreSQL's estimate where the record has one (it always should) */
        std::vector<double> nat, nat_truth;
        for (size_t i = 0; i < v_native.size(); i++)
            if (v_native[i] >= 0) {
                nat.push_back(v_native[i]);
                nat_truth.push_back(v_actual[i]);
            }
        m.native_q = pm::summarize_qerrors(nat, nat_truth);
        std::shared_ptr<const LoadedModel> compare_with = r.compare_with ? r.compare_with(id.dboid) : nullptr;
        if (compare_with) {
            /* the serving version on the same records (what it cannot describe
             * it leaves to PostgreSQL, as when serving) */
            std::vector<std::string> texts;
            std::vector<double> natives;
            for (size_t k = 0; k < v_index.size(); k++) {
                texts.push_back(*recs[v_index[k]].text);
                natives.push_back(recs[v_index[k]].native);
            }
            std::vector<double> rows;
            std::vector<bool> ok;
            std::vector<float> band;
            compare_with->estimate(texts, natives, &rows, &ok, &band);
            for (size_t k = 0; k < rows.size(); k++)
                if (!ok[k] || pilot::proto::within_unsure_band(rows[k], v_native[k], band[k]))
                    rows[k] = v_native[k] >= 0 ? v_native[k] : 1; /* as the backend would */
            m.compared_version = compare_with->meta.version;
            m.compared_q = pm::summarize_qerrors(rows, v_actual);
        }
        /* the same by number of relations: where the model helps and where not */
        {
            std::map<uint32_t, std::vector<size_t>> by_nrels;
            for (size_t k = 0; k < v_index.size(); k++)
                by_nrels[recs[v_index[k]].nrels].push_back(k);
            for (const auto &[nrels, ks] : by_nrels) {
                std::vector<double> me, pg, truth;
                for (size_t k : ks) {
                    me.push_back(v_model[k]);
                    pg.push_back(v_native[k] >= 0 ? v_native[k] : 1);
                    truth.push_back(v_actual[k]);
                }
                say(r, "  " + std::to_string(nrels) + " relation(s), " + std::to_string(ks.size()) +
                           " held out: q-error p50/p90/p99 model " + pm::qerrors_text(pm::summarize_qerrors(me, truth)) +
                           ", PostgreSQL " + pm::qerrors_text(pm::summarize_qerrors(pg, truth)));
            }
        }
        m.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        say(r, "held-out q-error p50/p90/p99: model " + pm::qerrors_text(m.model_q) + ", PostgreSQL " + pm::qerrors_text(m.native_q) +
                   (m.compared_version ? ", serving version " + std::to_string(m.compared_version) + " " +
                                             pm::qerrors_text(m.compared_q)
                                       : std::string()));

        std::string bytes = pm::encode_model(m, schema, net->save());
        out.path = r.models_dir + "/" + std::to_string(version) + ".model";
        if (replace_file(r.models_dir, out.path, bytes.data(), bytes.size(), &out.error) == Replaced::Failed)
            throw std::runtime_error(out.error);
        out.size_bytes = bytes.size();
        ::unlink(marker.c_str());
        say(r, "wrote " + out.path + " (" + std::to_string(bytes.size() / 1024) + " KiB, " +
                   std::to_string(net->parameters()) + " parameters) in " +
                   std::to_string(static_cast<int>(m.train_seconds)) + " s");
        out.ok = true;
        out.error.clear();
        return out;
    } catch (const std::exception &e) {
        out.error = e.what();
    } catch (...) {
        out.error = "training failed";
    }
    if (!marker.empty())
        ::unlink(marker.c_str());
    out.ok = false;
    return out;
}

bool discover_model_databases(const std::string &model_dsn, const std::string &pgdata,
                              std::vector<std::string> *names, std::string *error) {
    auto connect = [&](const std::string &dsn) { return PQconnectdb(dsn_for_server_of(dsn, pgdata).c_str()); };
    PGconn *c = connect(model_dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        *error = "cannot connect to list the databases (" + redacted_dsn(model_dsn) +
                 "): " + std::string(PQerrorMessage(c)).substr(0, 200);
        PQfinish(c);
        return false;
    }
    PGresult *r = PQexec(c, "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate "
                            "ORDER BY datname");
    std::vector<std::string> all;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r); i++)
            all.emplace_back(PQgetvalue(r, i, 0));
    else
        *error = "cannot list the databases: " + std::string(PQerrorMessage(c)).substr(0, 200);
    PQclear(r);
    PQfinish(c);
    if (all.empty())
        return error->empty();
    for (const std::string &name : all) {
        PGconn *d = connect(dsn_with_dbname(model_dsn, name));
        if (PQstatus(d) == CONNECTION_OK) {
            PGresult *e = PQexec(d, "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_pilot'");
            if (PQresultStatus(e) == PGRES_TUPLES_OK && PQntuples(e) == 1)
                names->push_back(name);
            PQclear(e);
        }
        PQfinish(d); /* a database this role may not enter is not one to model */
    }
    return true;
}

void AutoTrainer::start() { thread_ = std::thread([this] { run(); }); }

void AutoTrainer::stop() noexcept {
    stop_.store(true);
    cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void AutoTrainer::run() noexcept {
    /* the lowest priority for this thread only (Linux: nice is per thread) */
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) != 0)
        LOG_WARNING("models: cannot lower the training thread's priority: %s", strerror(errno));
    uint64_t last = received_();
    LOG_INFO("models: a new version is trained after every %llu feedback records (model database%s %s)",
             static_cast<unsigned long long>(every_), databases_.empty() ? "" : "s",
             databases_.empty() ? redacted_dsn(base_.model_dsn).c_str()
                                : (databases_ == "all" ? "all with the extension" : databases_.c_str()));
    for (;;) {
        {
            std::unique_lock<std::mutex> g(mu_);
            cv_.wait_for(g, std::chrono::seconds(5), [&] { return stop_.load(); });
        }
        if (stop_.load())
            return;
        uint64_t now = received_();
        if (now - last < every_)
            continue;
        last = now;
        /* one version per database, one after the other; serving goes on */
        std::vector<std::string> names;
        std::string error;
        if (databases_ == "all") {
            if (!discover_model_databases(base_.model_dsn, base_.pgdata, &names, &error)) {
                LOG_WARNING("models: %s", error.c_str());
                continue;
            }
            if (names.empty())
                LOG_INFO("models: no database has the extension pg_pilot: nothing to train");
        } else {
            names = split_database_list(databases_);
        }
        std::vector<std::string> dsns;
        for (const std::string &name : names)
            dsns.push_back(dsn_with_dbname(base_.model_dsn, name));
        if (databases_.empty())
            dsns.push_back(base_.model_dsn);
        for (const std::string &dsn : dsns) {
            TrainRequest r = base_;
            r.model_dsn = dsn;
            r.cancel = &stop_;
            r.compare_with = serving_;
            r.progress = [](const std::string &line) { LOG_INFO("models: %s", line.c_str()); };
            TrainResult res = train_model(r);
            if (stop_.load())
                return;
            if (!res.ok)
                LOG_WARNING("models: background training for %s failed: %s", redacted_dsn(dsn).c_str(),
                            res.error.c_str());
            done_();
        }
    }
}

} // namespace pilotd
