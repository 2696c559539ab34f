/*
 * estimator.h — pluggable estimators.
 *
 * An Estimator answers a batch of relation sets (EstimateBatch: the items,
 * the asking backend's database and the items' canonical key texts, when the
 * backend sent them).  `out` comes pre-set to
 * SRC_NONE ("don't know"); an estimator writes only the answers it knows
 * (finite rows >= 0 and its source), and must not throw for any input.
 *
 *   NativeEstimator   answers nothing: the control (PostgreSQL's own estimates;
 *                     backends do not ask it, only send key texts to catalog)
 *   OracleEstimator   keys loaded with pg_pilot.load_cardinalities(), SRC_ORACLE
 *   MemoEstimator     keys observed by execution feedback (MemoStore), SRC_MEMO
 *   ChainEstimator    asks a list of estimators in order; the first answer wins
 *
 * EstimatorRegistry maps proto::EstimatorId to the estimator serving it; an id
 * without an entry (EST_LEARNED until a model is registered) is answered
 * ST_UNKNOWN_ESTIMATOR.
 *
 * KeyTextSink receives every estimate batch that carried key texts (after it
 * was answered): the model's key catalog learns texts from it.  ModelControl
 * pins a model version (MSG_MODEL_PIN).
 */
#ifndef PILOTD_ESTIMATOR_H
#define PILOTD_ESTIMATOR_H

#include "memo_store.h"
#include "oracle_store.h"
#include "pilot_protocol.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pilotd {

/* One estimate request as the estimators see it (a view of pilotd's private
 * copy of the request, valid during estimate() / note() only). */
struct EstimateBatch {
    const pilot::proto::EstimateItem *items;
    uint32_t n;
    uint32_t dboid;   /* the asking backend's database */
    const char *text; /* the request's text area */
    uint32_t text_used;
    /* item i's canonical key text; empty when it has none (or i >= n) */
    std::string_view item_text(uint32_t i) const;
};

class Estimator {
  public:
    virtual ~Estimator() = default;
    virtual const char *name() const = 0;
    virtual void estimate(const EstimateBatch &batch, pilot::proto::EstimateAnswer *out) = 0;
};

/* Receives the estimate batches that carried key texts; must not block long
 * (it runs on a worker thread, after the answer was written). */
class KeyTextSink {
  public:
    virtual ~KeyTextSink() = default;
    virtual void note(const EstimateBatch &b) noexcept = 0;
};

/* Pins a model version (0: unpin, pilotd chooses again); false and *why when
 * that version cannot be pinned. */
class ModelControl {
  public:
    virtual ~ModelControl() = default;
    /* version 0: unpin database dboid's model; else pin version (of dboid) */
    virtual bool pin(uint32_t version, uint32_t dboid, std::string *why) noexcept = 0;
};

class NativeEstimator final : public Estimator {
  public:
    const char *name() const override { return "native"; }
    void estimate(const EstimateBatch &, pilot::proto::EstimateAnswer *) override {}
};

class OracleEstimator final : public Estimator {
  public:
    explicit OracleEstimator(const OracleStore &store) : store_(store) {}
    const char *name() const override { return "oracle"; }
    void estimate(const EstimateBatch &batch, pilot::proto::EstimateAnswer *out) override;

  private:
    const OracleStore &store_;
};

class MemoEstimator final : public Estimator {
  public:
    explicit MemoEstimator(const MemoStore &store) : store_(store) {}
    const char *name() const override { return "memo"; }
    void estimate(const EstimateBatch &batch, pilot::proto::EstimateAnswer *out) override;

  private:
    const MemoStore &store_;
};

class ChainEstimator final : public Estimator {
  public:
    ChainEstimator(const char *name, std::vector<Estimator *> chain) : name_(name), chain_(std::move(chain)) {}
    const char *name() const override { return name_; }
    void estimate(const EstimateBatch &batch, pilot::proto::EstimateAnswer *out) override;
    /* asked after the estimators already in the chain */
    void append(Estimator *e) { chain_.push_back(e); }

  private:
    const char *name_;
    std::vector<Estimator *> chain_;
};

/* Sets every answer to "don't know". */
void clear_answers(pilot::proto::EstimateAnswer *out, uint32_t n);
/* Turns any answer an estimator got wrong (unknown source, NaN, negative) into
 * "don't know"; returns how many answers remain (source != SRC_NONE). */
uint32_t sanitize_answers(pilot::proto::EstimateAnswer *out, uint32_t n);

class EstimatorRegistry {
  public:
    /* Builds the estimators this pilotd serves.  EST_AUTO is the chain oracle,
     * then memo: explicitly loaded cardinalities win, the memo answers what the
     * oracle does not know. */
    EstimatorRegistry(const OracleStore &oracle, const MemoStore &memo);
    /* nullptr when `id` is not served */
    Estimator *find(uint32_t id) const;

    /* Before the server starts (not thread-safe with find()): serves `id`
     * (e.g. EST_LEARNED) with e, owned by the registry; returns e, or nullptr
     * when id is out of range. */
    Estimator *serve(uint32_t id, std::unique_ptr<Estimator> e);
    /* Before the server starts: asks e at the end of EST_AUTO's chain
     * (after oracle and memo).  e must stay alive as long as the registry
     * (e.g. the one given to serve()). */
    void append_to_auto(Estimator *e);

  private:
    Estimator *add(std::unique_ptr<Estimator> e);
    ChainEstimator *auto_chain_ = nullptr;
    std::vector<std::unique_ptr<Estimator>> owned_;
    std::array<Estimator *, pilot::proto::EST_MAX + 1> by_id_{};
};

} // namespace pilotd

#endif
