/*
 * estimator.h — pluggable estimators.
 *
 * An Estimator answers a batch of relation sets.  `out` comes pre-set to
 * SRC_NONE ("don't know"); an estimator writes only the answers it knows
 * (finite rows >= 0 and its source), and must not throw for any input.
 *
 *   NativeEstimator   answers nothing: the control (PostgreSQL's own estimates,
 *                     but with the full round trip)
 *   OracleEstimator   keys loaded with pg_pilot.load_cardinalities(), SRC_ORACLE
 *   MemoEstimator     keys observed by execution feedback (MemoStore), SRC_MEMO
 *   ChainEstimator    asks a list of estimators in order; the first answer wins
 *
 * EstimatorRegistry maps proto::EstimatorId to the estimator serving it; an id
 * without an entry is answered ST_UNKNOWN_ESTIMATOR.
 */
#ifndef PILOTD_ESTIMATOR_H
#define PILOTD_ESTIMATOR_H

#include "memo_store.h"
#include "oracle_store.h"
#include "pilot_protocol.h"

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace pilotd {

class Estimator {
  public:
    virtual ~Estimator() = default;
    virtual const char *name() const = 0;
    virtual void estimate(const pilot::proto::EstimateItem *items, uint32_t n,
                          pilot::proto::EstimateAnswer *out) = 0;
};

class NativeEstimator final : public Estimator {
  public:
    const char *name() const override { return "native"; }
    void estimate(const pilot::proto::EstimateItem *, uint32_t, pilot::proto::EstimateAnswer *) override {}
};

class OracleEstimator final : public Estimator {
  public:
    explicit OracleEstimator(const OracleStore &store) : store_(store) {}
    const char *name() const override { return "oracle"; }
    void estimate(const pilot::proto::EstimateItem *items, uint32_t n,
                  pilot::proto::EstimateAnswer *out) override;

  private:
    const OracleStore &store_;
};

class MemoEstimator final : public Estimator {
  public:
    explicit MemoEstimator(const MemoStore &store) : store_(store) {}
    const char *name() const override { return "memo"; }
    void estimate(const pilot::proto::EstimateItem *items, uint32_t n,
                  pilot::proto::EstimateAnswer *out) override;

  private:
    const MemoStore &store_;
};

class ChainEstimator final : public Estimator {
  public:
    ChainEstimator(const char *name, std::vector<Estimator *> chain) : name_(name), chain_(std::move(chain)) {}
    const char *name() const override { return name_; }
    void estimate(const pilot::proto::EstimateItem *items, uint32_t n,
                  pilot::proto::EstimateAnswer *out) override;

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

  private:
    Estimator *add(std::unique_ptr<Estimator> e);
    std::vector<std::unique_ptr<Estimator>> owned_;
    std::array<Estimator *, pilot::proto::EST_MAX + 1> by_id_{};
};

} // namespace pilotd

#endif
