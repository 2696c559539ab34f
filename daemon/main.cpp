/*
 * main.cpp — pilotd's command line: run the service, `pilotd status`,
 * `pilotd train`, `pilotd collect`, `pilotd advise`, --help, --version.  Exit status: 0 ok, 1 runtime error, 2 usage or
 * configuration error, 3 (status) not running.
 */
#include "collect.h"
#include "config.h"
#include "progress.h"
#include "estimator.h"
#include "advisor_service.h"
#include "feedback_spool.h"
#include "index_advisor.h"
#include "key_catalog.h"
#include "log.h"
#include "known_sets.h"
#include "memo_journal.h"
#include "memo_store.h"
#include "metrics.h"
#include "model_registry.h"
#include "model_replication.h"
#include "mscn.h"
#include "oracle_store.h"
#include "conninfo.h"
#include "pg_store.h"
#include "pilot_protocol.h"
#include "process_util.h"
#include "request_handler.h"
#include "shm_server.h"
#include "status.h"
#include "trainer.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <pthread.h>
#include <unistd.h>

using namespace pilotd;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

/* Errors before the log exists (or before daemonizing) go to stderr. */
int fail_early(const std::string &msg) {
    fprintf(stderr, "pilotd: %s\n", msg.c_str());
    return kExitFailure;
}

constexpr uint64_t kKeyCatalogMaxBytes = 256ull << 20;

std::string models_dir(const Config &cfg) { return cfg.state_dir + "/models"; }
std::string catalog_path(const Config &cfg) { return cfg.state_dir + "/keys.catalog"; }

TrainRequest train_request(const Config &cfg) {
    TrainRequest r;
    r.model_dsn = cfg.model_dsn;
    r.store_dsn = cfg.store_dsn;
    r.pgdata = cfg.pgdata;
    r.catalog_path = catalog_path(cfg);
    r.models_dir = models_dir(cfg);
    r.sample_rows = cfg.model_sample_rows;
    r.epochs = cfg.train_epochs;
    r.seed = cfg.train_seed;
    r.max_seconds = cfg.train_seconds;
    return r;
}

/* `pilotd train`: one version, now, in this process. */
int run_train(const Config &cfg) {
    if (cfg.model_dsn.empty())
        throw ConfigError("pilotd train needs the database to model: --model-dsn DSN (or \"model-dsn\" in the "
                          "config file, or a pilotd service of this data directory started with one)");
    if (cfg.store_dsn.empty() || cfg.store_dsn == "none")
        throw ConfigError("pilotd train reads the feedback store: --store-dsn must name it (not \"none\")");
    TrainRequest r = train_request(cfg);
    /* compared with the version serving now, if the registry names one */
    ModelRegistry current(r.models_dir, nullptr, /*read_only=*/true, cfg.pgdata);
    current.open();
    r.compare_with = [&current](uint32_t dboid) { return current.serving(dboid); };
    Progress bar("pilotd train", r.epochs, "epochs");
    bar.set_deadline(r.max_seconds); /* the time budget ends a training early */
    r.progress = [&bar](const std::string &line) { bar.note("pilotd train: %s", line.c_str()); };
    r.epoch_progress = [&bar](uint32_t epoch, uint32_t epochs, double loss) {
        bar.set_total(epochs);
        if (epoch == 0) {
            bar.restart(); /* rate and time left of the epochs alone */
            return;
        }
        char detail[48];
        snprintf(detail, sizeof detail, "loss %.5f", loss);
        bar.update(epoch, detail);
    };
    TrainResult res = train_model(r);
    bar.clear();
    if (!res.ok) {
        fprintf(stderr, "pilotd train: failed: %s\n", res.error.c_str());
        return kExitFailure;
    }
    fprintf(stderr, "pilotd train: version %u written to %s; the running pilotd decides within %u ms whether "
                    "it serves (see pg_pilot.models)\n",
            res.version, res.path.c_str(), cfg.model_poll_ms);
    return kExitOk;
}

int run_service(const Config &cfg) {
    try {
        check_not_root();
        check_data_directory(cfg.pgdata);
    } catch (const std::exception &e) {
        return fail_early(e.what());
    }
    const std::string segment = pilot::proto::segment_name_for_datadir(cfg.pgdata);
    if (segment.empty())
        return fail_early("cannot resolve the data directory \"" + cfg.pgdata + "\"");

    std::string error;
    if (!log_open(cfg.log_file, cfg.log_level, &error))
        return fail_early(error);

    /* signals are handled by sigwait() below; every thread inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit makes a growing write fail (EFBIG), handled like a
     * full disk: feedback is not acknowledged and waits; not a kill */
    signal(SIGXFSZ, SIG_IGN);

    if (cfg.daemon) {
        try {
            daemonize();
        } catch (const std::exception &e) {
            return fail_early(std::string("cannot daemonize: ") + e.what());
        }
    }

    LOG_INFO("pilotd %s starting (protocol version %u, pid %d, %s)", kPilotdVersion,
             cfg.debug_protocol_version_set ? cfg.debug_protocol_version : pilot::proto::kProtocolVersion,
             static_cast<int>(getpid()), describe_uid(geteuid()).c_str());
    {
        Config shown = cfg; /* no password in the log */
        if (shown.store_dsn != "none" && !shown.store_dsn.empty())
            shown.store_dsn = redacted_dsn(shown.store_dsn);
        if (!shown.model_dsn.empty())
            shown.model_dsn = redacted_dsn(shown.model_dsn);
        if (!shown.advisor_dsn.empty())
            shown.advisor_dsn = redacted_dsn(shown.advisor_dsn);
        LOG_INFO("config: %s", config_summary(shown).c_str());
    }
    if (cfg.debug_protocol_version_set && cfg.debug_protocol_version != pilot::proto::kProtocolVersion)
        LOG_WARNING("testing option: advertising protocol version %u instead of %u", cfg.debug_protocol_version,
                    pilot::proto::kProtocolVersion);
    if (cfg.debug_answer_delay_ms)
        LOG_WARNING("testing option: every estimate is answered %u ms late", cfg.debug_answer_delay_ms);

    InstanceLock instance;
    PidFile pid_file;
    bool segment_damaged = false; /* by another process: exit failed, to be restarted */
    try {
        prepare_state_dir(cfg.state_dir);
        instance.acquire(segment);
        pid_file.acquire(cfg.pid_file);
        {
            std::string settings_error; /* `pilotd train -D` next to us starts from these */
            if (!write_service_settings(cfg, &settings_error))
                LOG_WARNING("cannot write the settings pilotd train shares: %s", settings_error.c_str());
        }

        /* what backends may ask for at all: the table sets of the oracle's
         * and the memo's entries, and the database a model serves */
        KnownSetsFilter known;
        OracleStore oracle(cfg.state_dir);
        oracle.load();
        oracle.set_table_sets_listener(
            [&known](const OracleTableSets &s) { known.set_oracle(s.sets, s.complete); });
        MemoStore memo(cfg.memo_max_entries);
        MemoJournal journal(cfg.state_dir, static_cast<uint64_t>(cfg.memo_journal_max_mb) << 20, memo);
        journal.recover();
        known.restore_memo(memo.table_sets(), memo.without_table_set() == 0);
        EstimatorRegistry registry(oracle, memo);
        RequestHandler handler(registry, oracle);
        GuardRule guard_rule;
        guard_rule.min_runs = cfg.guard_min_runs;
        guard_rule.slower_ratio = 1.0 + cfg.guard_slower_pct / 100.0;
        guard_rule.min_difference_ms = cfg.guard_min_difference_us / 1000.0;
        guard_rule.stats_change_factor = cfg.guard_stats_change_pct ? 1.0 + cfg.guard_stats_change_pct / 100.0 : 0.0;
        GuardBook guard(guard_rule, cfg.state_dir);
        guard.load_pins();
        handler.set_guard(&guard);

        /* the learned model: versions in STATE_DIR/models, the serving one
         * answers EST_LEARNED and last in EST_AUTO's chain (after oracle and
         * memo); key texts of asked relation sets are cataloged to train on */
        KeyCatalog catalog(catalog_path(cfg), kKeyCatalogMaxBytes);
        if (!catalog.open(&error))
            throw std::runtime_error("key catalog: " + error);
        catalog.start();
        handler.set_key_text_sink(&catalog);
        std::atomic<ShmServer *> server_p{nullptr}; /* set while the segment exists */
        ModelRegistry models(models_dir(cfg), [&server_p, &known](const std::vector<pilot::proto::ModelInfo> &m,
                                                                  const ModelRegistry::ServingVersions &serving) {
            std::vector<uint32_t> databases;
            for (const auto &[dboid, version] : serving)
                databases.push_back(dboid);
            known.set_model_databases(databases);
            if (ShmServer *srv = server_p.load())
                srv->publish_models(m, serving);
        }, /*read_only=*/false, cfg.pgdata);
        models.open();
        Estimator *learned = registry.serve(pilot::proto::EST_LEARNED, std::make_unique<LearnedEstimator>(models));
        registry.append_to_auto(learned);
        handler.set_model_control(&models);
        /* declared before the server: outlives the handler's use of it */
        std::unique_ptr<AdvisorService> advisor;
        if (!cfg.advisor_dsn.empty()) {
            AdvisorServiceOptions ao;
            ao.dsn = cfg.advisor_dsn;
            ao.store_dsn = cfg.store_dsn;
            ao.every_s = cfg.advisor_every_s;
            ao.defaults = advisor_options(cfg);
            advisor.reset(new AdvisorService(ao));
            advisor->start();
            handler.set_advisor_control(advisor.get());
        }

        ShmServerOptions opt;
        opt.segment = segment;
        opt.nslots = cfg.slots;
        opt.workers = cfg.workers;
        opt.heartbeat_ms = cfg.heartbeat_ms;
        opt.protocol_version =
            cfg.debug_protocol_version_set ? cfg.debug_protocol_version : pilot::proto::kProtocolVersion;
        opt.answer_delay_ms = cfg.debug_answer_delay_ms;
        opt.feedback_interval_ms = cfg.feedback_interval_ms;
        /* The store: feedback is spooled (durable) and acknowledged, and the
         * store thread commits the spool into PostgreSQL's tables. */
        const bool store_on = cfg.store_dsn != "none" && !cfg.store_dsn.empty();
        std::unique_ptr<FeedbackSpool> spool;
        if (store_on) {
            const uint64_t max_bytes = static_cast<uint64_t>(cfg.spool_max_mb) << 20;
            spool.reset(new FeedbackSpool(cfg.state_dir, max_bytes, std::min<uint64_t>(64ull << 20, max_bytes / 8)));
            FeedbackSpool::set_aside_if_copied(cfg.state_dir, cfg.pgdata);
            spool->recover();
        } else {
            LOG_INFO("no feedback store (store-dsn \"none\"): feedback feeds the memo only");
        }
        /* journaled (memo) and spooled (store), each fdatasync()ed, and only
         * then applied and acknowledged.  Journal first: when the spool then
         * fails, the retry journals the batch again, which the memo absorbs
         * (the latest observation wins); the reverse would store it twice. */
        FeedbackSpool *spool_p = spool.get();
        /* the segment, for the guard to see the estimates' generations (set
         * by before_publish, before the segment is published: no feedback
         * arrives before that) */
        std::atomic<pilot::proto::SegmentHeader *> guard_segment{nullptr};
        opt.on_feedback = [&memo, &journal, spool_p, &guard, &guard_segment, &known](const FeedbackBatch &b) {
            /* a full spool refuses before anything is journaled (no fsync
             * storm while the store is away) */
            if (spool_p != nullptr && !spool_p->has_room(static_cast<uint64_t>(b.n) + b.ndead))
                return false;
            if (!journal.append(b.rec, b.n))
                return false;
            if (spool_p != nullptr) {
                auto now = std::chrono::system_clock::now().time_since_epoch();
                if (!spool_p->append(b, static_cast<uint64_t>(
                                            std::chrono::duration_cast<std::chrono::microseconds>(now).count())))
                    return false;
            }
            /* known before the memo answers for it */
            for (uint32_t i = 0; i < b.n; i++)
                if (b.rec[i].kind == pilot::proto::FB_RELSET)
                    known.add_memo(b.rec[i].table_set);
            memo.observe(b.rec, b.n);
            /* entries of unknown tables (from an older journal) turn the
             * filter off until each was observed again */
            const bool memo_complete = memo.without_table_set() == 0;
            if (memo_complete != known.memo_complete())
                known.restore_memo(memo.table_sets(), memo_complete);
            if (pilot::proto::SegmentHeader *h = guard_segment.load(std::memory_order_acquire))
                guard.observe(b.rec, b.n,
                              h->model_generation.load(std::memory_order_acquire) +
                                  h->oracle_generation.load(std::memory_order_acquire));
            return true;
        };
        opt.after_drain = [&journal] { journal.maybe_compact(); };
        opt.before_publish = [&oracle, &memo, spool_p, &guard, &guard_segment, &known,
                              &catalog](pilot::proto::SegmentHeader *h) {
            guard.attach(&h->guard);
            known.attach(&h->known_sets);
            catalog.attach(&h->key_texts);
            guard_segment.store(h, std::memory_order_release);
            oracle.set_counter(&h->counters.oracle_entries);
            memo.set_counter(&h->counters.memo_entries);
            memo.set_generation(&h->memo_generation);
            if (spool_p != nullptr)
                spool_p->set_counters(&h->counters.spool_appended, &h->counters.spool_next_seq);
        };
        /* the guard's runs logged before this moment come back from the store */
        const uint64_t started_unix_us = static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count());
        ShmServer server(opt, handler);
        server.start();
        server_p = &server;
        /* on every way out (also an exception): the catalog's writer
         * publishes no more into a segment that is gone */
        struct DetachCatalog {
            KeyCatalog &c;
            ~DetachCatalog() { c.attach(nullptr); }
        } detach_catalog{catalog};
        /* on every way out (also an exception): no publishing into a segment that is gone */
        struct StopModels {
            ModelRegistry &m;
            std::atomic<ShmServer *> &p;
            ~StopModels() {
                m.stop();
                p = nullptr;
            }
        } stop_models{models, server_p};
        models.rescan(); /* publishes the model table */
        models.start(cfg.model_poll_ms);
        /* the serving versions in the store's database, for standbys; on a
         * standby, the versions its primary serves (model_replication.h) */
        std::unique_ptr<ModelReplication> replication;
        if (store_on) {
            replication.reset(new ModelReplication(cfg.store_dsn, cfg.pgdata, models_dir(cfg), models,
                                                   std::max<uint32_t>(cfg.model_poll_ms, 1000)));
            replication->start();
        }
        std::unique_ptr<AutoTrainer> trainer;
        if (!cfg.model_dsn.empty() && cfg.train_every > 0 && store_on) {
            pilotd::ShmServer *srv = &server;
            trainer.reset(new AutoTrainer(
                train_request(cfg), cfg.model_databases, cfg.train_every,
                [srv] { return srv->header()->counters.feedback_received.load(std::memory_order_relaxed); },
                [&models](uint32_t dboid) { return models.serving(dboid); }, [&models] { models.rescan(); }));
            trainer->start();
        } else if (!cfg.model_dsn.empty() && cfg.train_every > 0) {
            LOG_WARNING("models: no background training without a feedback store (store-dsn \"none\")");
        }
        /* declared after the server: destroyed (its thread joined) before the
         * segment it publishes counters in is unmapped, even on an exception */
        std::unique_ptr<PgStore> store;
        if (spool) {
            PgStoreOptions so;
            so.dsn = cfg.store_dsn;
            so.pgdata = cfg.pgdata;
            so.retention_days = cfg.store_retention_days;
            so.max_rows = cfg.store_max_rows;
            so.retention_interval_s = cfg.store_retention_interval_s;
            so.backoff_max_ms = cfg.store_backoff_max_ms;
            so.started_unix_us = started_unix_us;
            so.restore_guard = [&guard](const std::vector<GuardRun> &runs) { guard.restore(runs); };
            store.reset(new PgStore(so, *spool));
            store->start(&server.header()->counters);
        }
        /* Prometheus metrics, read at scrape time; declared after the server:
         * stopped (its HTTP threads joined) before the segment is unmapped */
        MetricsSources metrics_sources;
        metrics_sources.segment = [&guard_segment]() -> const pilot::proto::SegmentHeader * {
            return guard_segment.load(std::memory_order_acquire);
        };
        metrics_sources.guard_decisions_native = [&guard] { return guard.decisions_native(); };
        metrics_sources.guard_decisions_pilot = [&guard] { return guard.decisions_pilot(); };
        metrics_sources.guard_reopened_by_statistics = [&guard] { return guard.reopened_by_statistics(); };
        metrics_sources.catalog_entries = [&catalog] { return catalog.entries(); };
        metrics_sources.catalog_dropped = [&catalog] { return catalog.dropped(); };
        metrics_sources.answers_by_source = [&handler](uint32_t src) { return handler.answers_by_source(src); };
        metrics_sources.estimate_times = &handler.estimate_times();
        metrics_sources.inference_times = &models.inference_times();
        MetricsEndpoint metrics(metrics_sources);
        if (!cfg.metrics_address.empty()) {
            std::string metrics_error;
            if (metrics.start(cfg.metrics_address, &metrics_error))
                LOG_INFO("metrics: http://%s/metrics", cfg.metrics_address.c_str());
            else /* estimates matter more than their metrics: serve on */
                LOG_WARNING("metrics: %s; serving without metrics", metrics_error.c_str());
        }
        LOG_INFO("ready: segment /dev/shm/%s (%llu bytes, %u slots of %zu bytes), epoch %016llx, state dir "
                 "\"%s\", %llu oracle entries, %u workers",
                 segment.c_str(), static_cast<unsigned long long>(server.size()), cfg.slots,
                 sizeof(pilot::proto::Slot), static_cast<unsigned long long>(server.epoch()),
                 cfg.state_dir.c_str(), static_cast<unsigned long long>(oracle.size()), cfg.workers);
        daemon_ready();

        int sig = 0;
        siginfo_t from = {};
        for (;;) {
            sig = sigwaitinfo(&set, &from);
            if (sig < 0)
                continue;
            if (sig == SIGHUP) {
                log_reopen();
                continue;
            }
            break;
        }
        segment_damaged = server.damaged();
        if (segment_damaged)
            LOG_INFO("shutting down: the segment is damaged (exit status %d: a service manager restarts pilotd)",
                     kExitFailure);
        else /* who asked: a DBA wants to know what stopped pilotd */
            LOG_INFO("received %s from pid %d (%s): shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM",
                     static_cast<int>(from.si_pid), process_name(from.si_pid).c_str());
        metrics.stop(); /* no scrape reads the segment from here on */
        /* before the segment goes: these publish into it */
        if (trainer)
            trainer->stop();
        if (advisor)
            advisor->stop(); /* a running job is waited for */
        models.stop();
        server_p = nullptr;
        catalog.attach(nullptr);
        catalog.stop();
        LOG_INFO("key catalog: %llu relation sets described, %llu not written, %llu not published (segment set full)",
                 static_cast<unsigned long long>(catalog.entries()),
                 static_cast<unsigned long long>(catalog.dropped()),
                 static_cast<unsigned long long>(catalog.unpublished()));
        oracle.set_counter(nullptr);
        memo.set_counter(nullptr);
        memo.set_generation(nullptr);
        if (store) {
            /* before the segment goes: the store thread publishes counters there */
            store->stop();
            LOG_INFO("feedback store: %llu records committed this run; spool: %llu appended, %llu refused (full), "
                     "%llu waiting for the store",
                     static_cast<unsigned long long>(store->committed()),
                     static_cast<unsigned long long>(spool->appended()),
                     static_cast<unsigned long long>(spool->refused()),
                     static_cast<unsigned long long>(store->pending()));
        }
        if (spool)
            spool->set_counters(nullptr, nullptr);
        known.detach(); /* backends ask for everything until the next pilotd publishes */
        server.stop(); /* drains the rings a last time (into the spool: committed next run) */
        LOG_INFO("memo: %zu relation sets (%llu observations of new ones not stored: memo full), "
                 "%llu query records",
                 memo.size(), static_cast<unsigned long long>(memo.rejected()),
                 static_cast<unsigned long long>(memo.query_records()));
        LOG_INFO("memo journal: %llu records appended, %llu failed appends, %llu compactions, %llu bytes",
                 static_cast<unsigned long long>(journal.appended()),
                 static_cast<unsigned long long>(journal.failures()),
                 static_cast<unsigned long long>(journal.compactions()),
                 static_cast<unsigned long long>(journal.bytes()));
    } catch (const std::exception &e) {
        LOG_ERROR("%s", e.what());
        daemon_failed(e.what());
        if (!cfg.log_file.empty() && !cfg.daemon)
            fprintf(stderr, "pilotd: %s\n", e.what());
        return kExitFailure;
    }
    pid_file.release();
    instance.release();
    LOG_INFO("shut down");
    log_close();
    return segment_damaged ? kExitFailure : kExitOk;
}

} // namespace

int main(int argc, char **argv) {
    Invocation inv;
    try {
        inv = parse_command_line(argc, argv);
        switch (inv.command) {
        case Command::Help:
            print_help("pilotd");
            return kExitOk;
        case Command::Version:
            printf("pilotd %s (pg_pilot shared-memory protocol version %u)\n", kPilotdVersion,
                   pilot::proto::kProtocolVersion);
            return kExitOk;
        case Command::Status:
            return run_status(inv);
        case Command::Collect: {
            const CommandDefaults d = command_defaults(inv);
            CollectOptions co;
            co.dsn = d.config.model_dsn;
            std::string why;
            if (!parse_collect_args(inv.collect_args, &co, &why)) {
                fprintf(stderr, "pilotd collect: %s\n", why.c_str());
                return kExitUsage;
            }
            co.dsn = dsn_for_server_of(co.dsn, d.config.pgdata);
            return run_collect(co);
        }
        case Command::Advise:
            return run_advise_command(inv.collect_args, command_defaults(inv));
        case Command::Train: {
            const std::string service = layer_service_settings(inv);
            finish_config(inv.config);
            if (!service.empty())
                fprintf(stderr, "pilotd train: settings of the service of %s (%s) under the command line: "
                                "model-dsn \"%s\", store-dsn \"%s\"\n",
                        inv.config.pgdata.c_str(), service.c_str(), redacted_dsn(inv.config.model_dsn).c_str(),
                        redacted_dsn(inv.config.store_dsn).c_str());
            return run_train(inv.config);
        }
        case Command::Run:
            finish_config(inv.config);
            break;
        }
    } catch (const ConfigError &e) {
        fprintf(stderr, "pilotd: %s\n", e.what());
        return kExitUsage;
    } catch (const std::exception &e) {
        fprintf(stderr, "pilotd: %s\n", e.what());
        return kExitFailure;
    }
    return run_service(inv.config);
}
