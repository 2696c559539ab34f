/*
 * trainer.h — trains one learned-model version from the feedback store.
 *
 *   1. claim the next version number (an exclusive STATE_DIR/models/N.training
 *      marker: pilotd lists it as "training");
 *   2. read the newest observation of every relation set from pg_pilot.feedback
 *      (the store) and join it with the key catalog's texts of the model's
 *      database;
 *   3. snapshot that database's tables (columns, ranges, samples), collect
 *      the join vocabulary, featurize;
 *   4. hold out ~15 % of the query templates (whole templates, so validation
 *      queries are never seen in training) and ~10 % more for early stopping
 *      (the weights of the best epoch on them are kept), train, and measure
 *      q-error p50/p90/p99 of the model and of PostgreSQL's own estimates on
 *      the held-out records (and of the serving version, when given);
 *   5. write N.model atomically and drop the marker.
 * Whether version N serves is pilotd's decision (model_registry.h).
 *
 * Used by `pilotd train` (a process) and by the serving pilotd's threshold
 * trigger (a low-priority thread).  Never throws; failures come back in
 * TrainResult.
 */
#ifndef PILOTD_TRAINER_H
#define PILOTD_TRAINER_H

#include "model_file.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <functional>
#include <memory>
#include <string>

namespace pilotd {

struct LoadedModel; /* model_registry.h */

struct TrainRequest {
    std::string model_dsn;     /* the database the model is for */
    std::string store_dsn;     /* the feedback store */
    std::string pgdata;        /* -D: DSNs naming no host or port go to its server (conninfo.h) */
    std::string catalog_path;  /* STATE_DIR/keys.catalog */
    std::string models_dir;    /* STATE_DIR/models */
    uint32_t sample_rows = 256;
    uint32_t hidden = 128;
    uint32_t epochs = 300;
    double max_seconds = 120;
    double validation_share = 0.15;
    uint64_t max_records = 200000;
    uint64_t seed = 42;
    /* the version serving a database (by oid), if any: the new version is
     * compared with its database's */
    std::function<std::shared_ptr<const LoadedModel>(uint32_t)> compare_with;
    std::function<void(const std::string &)> progress;  /* human-readable lines */
    /* each epoch (epoch of epochs, training loss; epoch 0: training starts);
     * when set, the epochs are not also reported as progress lines */
    std::function<void(uint32_t, uint32_t, double)> epoch_progress;
    const std::atomic<bool> *cancel = nullptr;         /* set: stop soon, write nothing */
};

struct TrainResult {
    bool ok = false;
    std::string error;
    uint32_t version = 0;
    std::string path;
    pilot::model::ModelMeta meta;
    uint64_t size_bytes = 0;
};

TrainResult train_model(const TrainRequest &r) noexcept;

/*
 * The serving pilotd's threshold trigger: a thread that trains a new version
 * whenever `every` feedback records arrived since the last training (counted by
 * `received`), at the lowest CPU priority, then calls `done` (the registry's
 * rescan).  Serving never waits on it.
 */
class AutoTrainer {
  public:
    /* databases: config model-databases ("": base's model DSN; "all": each
     * database with the extension; or names separated by commas) */
    AutoTrainer(TrainRequest base, std::string databases, uint64_t every, std::function<uint64_t()> received,
                std::function<std::shared_ptr<const LoadedModel>(uint32_t)> serving, std::function<void()> done)
        : base_(std::move(base)), databases_(std::move(databases)), every_(every), received_(std::move(received)),
          serving_(std::move(serving)), done_(std::move(done)) {}
    ~AutoTrainer() { stop(); }
    void start();
    void stop() noexcept; /* cancels a training in progress */

  private:
    void run() noexcept;
    TrainRequest base_;
    std::string databases_;
    uint64_t every_;
    std::function<uint64_t()> received_;
    std::function<std::shared_ptr<const LoadedModel>(uint32_t)> serving_;
    std::function<void()> done_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
};

/* The databases of model_dsn's server (on the server of pgdata unless it
 * names another) that have the extension pg_pilot and that model_dsn's role
 * may connect to.  False with *error when they cannot be listed. */
bool discover_model_databases(const std::string &model_dsn, const std::string &pgdata,
                              std::vector<std::string> *names, std::string *error);

/* The next free version number in dir, claimed by creating N.training. */
bool claim_version(const std::string &dir, uint32_t *version, std::string *error);

} // namespace pilotd

#endif
