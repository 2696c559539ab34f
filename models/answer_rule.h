/*
 * answer_rule.h — when the learned model's number is used and when
 * PostgreSQL's estimate stands.  One rule for training (calibration and the
 * gate) and for serving (pilotd), calibrated per model version on records it
 * never trained on and saved in the version's metadata (model_file.h):
 *
 *   - zero-hit floor: a set with a relation none of whose sampled rows
 *     satisfies its predicates is not estimated below PostgreSQL's estimate.
 *     An empty sample is weak evidence of "few rows", not proof of one row;
 *     the joins built on such a relation inherit the floor the same way;
 *   - keep_native_within: a correction smaller than this (natural log of the
 *     ratio to PostgreSQL's estimate) is declined: there the model was no
 *     better than PostgreSQL on held-out records;
 *   - ceiling: a prediction above the largest count the model was trained on
 *     is declined (extrapolation, where the network saturates);
 *   - keep_native_beyond (the trust region): a correction larger than the
 *     model has shown it can make on held-out records of the same kind is
 *     declined, so one confident mistake cannot become a plan's worst number.
 *
 * "Of the same kind" is a cell: number of relations (1, 2, 3, 4 or more) by
 * the fewest sample rows any relation of the set keeps (0, 1-9, 10 or more).
 * A set asked without PostgreSQL's estimate (outer joins and the like) gets
 * the model's number and its cell's keep_native_within, which the backend
 * applies once the planner has sized the join (EstimateAnswer).
 */
#ifndef PILOT_MODELS_ANSWER_RULE_H
#define PILOT_MODELS_ANSWER_RULE_H

#include <cstdint>
#include <string>
#include <vector>

namespace pilot {
namespace model {

struct Features;

/* a correction factor no calibration can allow: ln of 1e30 */
constexpr double kNoLimit = 69.0;
/* Features::fewest_hits of a set none of whose relations has a sample */
constexpr uint32_t kNoSampleHits = 0xffffffffu;

struct RuleCell {
    double keep_native_within = 0;        /* ln: smaller corrections declined */
    double keep_native_beyond = kNoLimit; /* ln: larger corrections declined */
    uint32_t calibrated_on = 0;           /* held-out records the cell was chosen on (0: inherited) */
};

struct AnswerRule {
    static constexpr int kRelBuckets = 4; /* 1, 2, 3, 4+ relations */
    static constexpr int kHitBuckets = 3; /* fewest sample hits 0, 1-9, 10+ */
    RuleCell cells[kRelBuckets][kHitBuckets];
    /* the largest count the model was trained on (0: none): a larger
     * prediction is extrapolation (the network's output saturates at e times
     * it) and is declined.  Derived from the schema, not stored. */
    double ceiling_rows = 0;

    static int rel_bucket(uint32_t nrels);
    static int hit_bucket(uint32_t fewest_hits);
    const RuleCell &cell(uint32_t nrels, uint32_t fewest_hits) const {
        return cells[rel_bucket(nrels)][hit_bucket(fewest_hits)];
    }
    /* every cell: the same band, no trust limit (model files written before
     * the trust region had one band for base relations and one for joins) */
    static AnswerRule bands(double base_within, double join_within);
    /* whether every threshold is finite and within [0, kNoLimit] */
    bool plausible() const;
};

/* What the rule makes of one estimate. */
struct RuleOutcome {
    bool answer = false; /* false: PostgreSQL's estimate stands */
    double rows = 0;     /* when answer: the rows to use */
    double band = 0;     /* when answer without native_rows: keep_native_within for the backend */
};

/* native_rows < 0: PostgreSQL's estimate is not known.  Rows compare as the
 * planner compares them: clamped to at least one. */
RuleOutcome apply_rule(const AnswerRule &rule, uint32_t nrels, uint32_t fewest_hits, double model_rows,
                       double native_rows);
RuleOutcome apply_rule(const AnswerRule &rule, const Features &f, double model_rows, double native_rows);

/* max(est/truth, truth/est), both clamped to at least one row */
double qerror(double est, double truth);

/* The cells as a small table, one line per number of relations: what
 * `pilotd train` shows. */
std::string rule_text(const AnswerRule &rule);

/* One held-out record for calibration: the model's rows, PostgreSQL's (> 0)
 * and the truth. */
struct CalibrationRecord {
    uint32_t nrels = 1;
    uint32_t fewest_hits = kNoSampleHits;
    double model_rows = 0, native_rows = 0, true_rows = 0;
};

/* Chooses each cell's thresholds on held-out records: per cell, the pair
 * (within, beyond) from a fixed grid, beyond capped at the largest correction
 * the model made well on the cell's records (at least halving PostgreSQL's
 * q-error), with the smallest
 *   ln p50 + ln p90 + ln p99 of the q-error + worse_weight x (share of the
 *   records the model makes more than 2x worse than PostgreSQL)
 * among those whose p50, p90 and p99 are each no worse than PostgreSQL's; it
 * must beat always declining (PostgreSQL's own quantiles), else the cell
 * declines every correction.  The quantiles reward fixing large errors, the
 * penalty charges each answer that makes a good estimate bad (10: one record
 * in a hundred made 2x worse costs as much as a 10 % larger quantile).  A
 * cell with fewer than min_records records takes the thresholds chosen over
 * its number of relations; a number of relations with too few, those chosen
 * over every join (base relations: none, it declines).  ceiling_rows: see
 * AnswerRule; the calibration sees it as serving will. */
AnswerRule calibrate_rule(const std::vector<CalibrationRecord> &records, double ceiling_rows, double worse_weight = 10.0,
                          size_t min_records = 30);

} // namespace model
} // namespace pilot

#endif
