/*
 * model_registry.h — the learned model's versions and which one serves.
 *
 * Versions are files STATE_DIR/models/N.model (written by the trainer; see
 * trainer.h) plus N.training markers while one is being trained.  Their
 * lifecycle, persisted in STATE_DIR/models/registry.json (this class is its
 * only writer):
 *
 *   training -> validated -> serving -> retired
 *            \-> rejected   (damaged or incompatible file, bound to a database
 *                            that changed, or not better than PostgreSQL and
 *                            the serving version on held-out feedback)
 *
 * Every model is bound to its database (system identifier, database oid and
 * a fingerprint of its tables): it is verified at load, and answers only
 * requests from that database.  Each database of the cluster has its own
 * serving version (or none): versions of different databases never compete,
 * and a backend's request is looked up by its database.  A new version
 * serves only if, on its held-out records, its mean log q-error beats
 * PostgreSQL's and (when it was compared with one) that of its database's
 * serving version.  A DBA can pin any intact, compatible version of the
 * database they are in (pg_pilot.pin_model(N)); unpinning lets the registry
 * choose again for that database.  A swap is one shared_ptr exchange: a
 * request in flight keeps the version it started with, no request is
 * dropped.
 */
#ifndef PILOTD_MODEL_REGISTRY_H
#define PILOTD_MODEL_REGISTRY_H

#include "answer_cache.h"
#include "estimator.h"
#include "latency_buckets.h"
#include "model_file.h"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace pilot {
namespace model {
class MscnForward;
}
} // namespace pilot

namespace pilotd {

/* Lock-free histogram of durations (buckets 1.2x wide, 1 us .. ~10 s). */
class LatencyHistogram {
  public:
    static constexpr int kBuckets = 96;
    void add(double us) noexcept;
    /* p-th percentile in microseconds (bucket upper bound); < 0 when empty */
    double percentile(double p) const noexcept;
    uint64_t count() const noexcept;

  private:
    std::atomic<uint64_t> b_[kBuckets] = {};
};

/* A decoded, checked model version, ready to answer. */
struct LoadedModel {
    pilot::model::ModelMeta meta;
    pilot::model::Schema schema;
    /* the network's serving forward pass (libtorch only reads the weights at load) */
    std::unique_ptr<pilot::model::MscnForward> forward;
    std::string checksum;
    uint64_t size_bytes = 0;
    mutable std::atomic<uint64_t> served{0}, declined{0};
    mutable LatencyHistogram inference; /* per planning batch that computed a set (not all cached) */
    mutable AnswerCache answers;        /* sets answered already (answer_cache.h) */

    ~LoadedModel();
    /* rows[i] valid where ok[i]; one forward pass.  band[i]: keep PostgreSQL's
     * estimate within this (natural log) of it (EstimateAnswer).  Base
     * relations inside their band are declined here already.  False when the
     * model could not run (out of memory ...): nothing answered.  Never throws. */
    bool estimate(const std::vector<std::string> &texts, const std::vector<double> &natives,
                  std::vector<double> *rows, std::vector<bool> *ok, std::vector<float> *band = nullptr) const noexcept;
};

/* Reads and checks a model file; nullptr and *why when it cannot serve. */
std::shared_ptr<LoadedModel> load_model_file(const std::string &path, std::string *why) noexcept;

class ModelRegistry final : public ModelControl {
  public:
    /* database oid -> its serving version */
    using ServingVersions = std::map<uint32_t, uint32_t>;
    /* the model table, and the serving version of each database that has one */
    using Publish = std::function<void(const std::vector<pilot::proto::ModelInfo> &, const ServingVersions &)>;

    /* read_only: never writes registry.json (`pilotd train` reads what serves);
     * pgdata: a version's DSN naming no host or port is verified on the
     * server of this data directory (conninfo.h), as it was trained */
    ModelRegistry(std::string dir, Publish publish, bool read_only = false, std::string pgdata = "")
        : dir_(std::move(dir)), pgdata_(std::move(pgdata)), publish_(std::move(publish)), read_only_(read_only) {}
    ~ModelRegistry() override { stop(); }

    /* Loads registry.json and the versions, picks the serving one. */
    void open() noexcept;
    /* Polls the directory every poll_ms for new versions. */
    void start(uint32_t poll_ms);
    void stop() noexcept;
    /* Looks at the directory now (after training in this process). */
    void rescan() noexcept;

    /* version 0: unpins database dboid; else pins version, which must be
     * bound to database dboid (a DBA's pin: it replaces a followed one) */
    bool pin(uint32_t version, uint32_t dboid, std::string *why) noexcept override;
    /* A standby's pin (model_replication.h): the version its primary serves.
     * It lasts while this server is a standby: release_followed() drops it. */
    bool follow(uint32_t version, uint32_t dboid, std::string *why) noexcept;
    /* This server is a primary now (promoted): the followed pins go, so that
     * newer versions trained here can serve.  The followed version keeps
     * serving until one beats it (decide_database_locked).  Returns how
     * many databases were released. */
    size_t release_followed() noexcept;
    /* is database dboid's pin a followed one? */
    bool follows(uint32_t dboid) const;

    /* Database dboid's serving version (nullptr: none).  Cheap; safe from
     * any thread. */
    std::shared_ptr<const LoadedModel> serving(uint32_t dboid) const;
    ServingVersions serving_versions() const;

    /* One planning batch's inference, whatever the version (the metrics
     * endpoint's histogram; each version keeps its own percentiles). */
    void note_inference(uint64_t us) const noexcept { inference_times_.add(us); }
    const LatencyBuckets &inference_times() const noexcept { return inference_times_; }

  private:
    mutable LatencyBuckets inference_times_;
    struct Version {
        uint32_t state = pilot::proto::MODEL_VALIDATED;
        std::string note;
        pilot::model::ModelMeta meta;
        bool meta_known = false;
        std::string checksum;
        uint64_t size_bytes = 0;
        bool verified = false; /* bound database checked */
        std::shared_ptr<LoadedModel> loaded;
    };

    void scan_locked();
    void decide_locked();
    void decide_database_locked(uint32_t dboid);
    void verify_locked(uint32_t v, Version &ver);
    void save_locked();
    void publish_locked();
    /* database dboid serves version v (0: none) */
    void serve_locked(uint32_t dboid, uint32_t v, const char *why);
    bool pin_locked(uint32_t version, uint32_t dboid, std::string *why);
    uint32_t serving_version_locked(uint32_t dboid) const;

    const std::string dir_;
    const std::string pgdata_;
    Publish publish_;
    const bool read_only_;
    std::string last_saved_;
    mutable std::mutex mu_;
    std::map<uint32_t, Version> versions_;
    std::map<uint32_t, bool> training_; /* N.training markers seen */
    ServingVersions pinned_;          /* database oid -> pinned version */
    std::set<uint32_t> followed_;     /* databases whose pin follows the primary's version */
    ServingVersions serving_versions_; /* database oid -> serving version */
    std::map<uint32_t, std::shared_ptr<const LoadedModel>> serving_; /* database oid -> model */
    mutable std::mutex serving_mu_;

    std::thread poller_;
    std::condition_variable cv_;
    std::mutex poll_mu_;
    bool stopping_ = false;
};

/* Estimator over the registry's serving version (SRC_MODEL). */
class LearnedEstimator final : public Estimator {
  public:
    explicit LearnedEstimator(const ModelRegistry &registry) : registry_(registry) {}
    const char *name() const override { return "learned"; }
    void estimate(const EstimateBatch &batch, pilot::proto::EstimateAnswer *out) override;

  private:
    const ModelRegistry &registry_;
};

} // namespace pilotd

#endif
