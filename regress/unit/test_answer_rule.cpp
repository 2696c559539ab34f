/* Unit tests of when the learned model's number is used (models/answer_rule.h):
 * the zero-hit floor, the band around PostgreSQL's estimate, the trust region,
 * the calibration that chooses them, and their round trip through a model
 * file's metadata. */
#include "answer_rule.h"
#include "model_file.h"
#include "pilot_protocol.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace pilot::model;

namespace {

AnswerRule Rule(double within, double beyond) {
    AnswerRule r = AnswerRule::bands(within, within);
    for (auto &row : r.cells)
        for (RuleCell &c : row)
            c.keep_native_beyond = beyond;
    return r;
}

TEST(AnswerRule, Buckets) {
    EXPECT_EQ(AnswerRule::rel_bucket(0), 0);
    EXPECT_EQ(AnswerRule::rel_bucket(1), 0);
    EXPECT_EQ(AnswerRule::rel_bucket(2), 1);
    EXPECT_EQ(AnswerRule::rel_bucket(3), 2);
    EXPECT_EQ(AnswerRule::rel_bucket(4), 3);
    EXPECT_EQ(AnswerRule::rel_bucket(17), 3);
    EXPECT_EQ(AnswerRule::hit_bucket(0), 0);
    EXPECT_EQ(AnswerRule::hit_bucket(1), 1);
    EXPECT_EQ(AnswerRule::hit_bucket(9), 1);
    EXPECT_EQ(AnswerRule::hit_bucket(10), 2);
    EXPECT_EQ(AnswerRule::hit_bucket(kNoSampleHits), 2);
}

TEST(AnswerRule, BandAndTrustRegion) {
    const AnswerRule r = Rule(std::log(2.0), std::log(100.0));
    /* within a factor 2 of PostgreSQL's estimate: PostgreSQL's stands */
    EXPECT_FALSE(apply_rule(r, 1, 50, 150, 100).answer);
    EXPECT_FALSE(apply_rule(r, 1, 50, 60, 100).answer);
    /* a correction between 2x and 100x: the model's number */
    RuleOutcome o = apply_rule(r, 2, 50, 2500, 100);
    EXPECT_TRUE(o.answer);
    EXPECT_DOUBLE_EQ(o.rows, 2500);
    EXPECT_TRUE(apply_rule(r, 2, 50, 2, 100).answer);
    /* beyond 100x in either direction: declined (trust region) */
    EXPECT_FALSE(apply_rule(r, 2, 50, 20000, 100).answer);
    EXPECT_FALSE(apply_rule(r, 2, 50, 1, 1000).answer);
    /* rows compare clamped to one row, as the planner's do */
    EXPECT_FALSE(apply_rule(r, 1, 50, 0.2, 1.5).answer);
    /* not a number: never an answer */
    EXPECT_FALSE(apply_rule(r, 1, 50, std::nan(""), 100).answer);
    EXPECT_FALSE(apply_rule(r, 1, 50, -3, 100).answer);
    EXPECT_FALSE(apply_rule(r, 1, 50, INFINITY, 100).answer);
}

TEST(AnswerRule, ZeroHitFloorKeepsAtLeastPostgreSQLsEstimate) {
    const AnswerRule r = Rule(0, kNoLimit); /* every correction allowed */
    /* a relation with predicates no sampled row satisfies: true 879,
     * PostgreSQL 173, the model 1 (issue 20's case): PostgreSQL's stands */
    EXPECT_FALSE(apply_rule(r, 1, 0, 1, 173).answer);
    /* the joins built on it inherit the floor */
    EXPECT_FALSE(apply_rule(r, 2, 0, 1, 866).answer);
    EXPECT_FALSE(apply_rule(r, 3, 0, 40, 8897).answer);
    /* above PostgreSQL's estimate the model may still correct it */
    RuleOutcome up = apply_rule(r, 1, 0, 900, 173);
    EXPECT_TRUE(up.answer);
    EXPECT_DOUBLE_EQ(up.rows, 900);
    /* with sample hits the same correction down is allowed */
    EXPECT_TRUE(apply_rule(r, 1, 1, 1, 173).answer);
}

TEST(AnswerRule, WithoutPostgreSQLsEstimateTheBackendGetsTheBand) {
    AnswerRule r = Rule(std::log(4.0), std::log(10.0));
    r.cells[1][2].keep_native_within = std::log(3.0);
    RuleOutcome o = apply_rule(r, 2, 50, 5000, -1);
    EXPECT_TRUE(o.answer);
    EXPECT_DOUBLE_EQ(o.rows, 5000);
    EXPECT_DOUBLE_EQ(o.band, std::log(3.0)); /* the cell's own band */
    EXPECT_DOUBLE_EQ(apply_rule(r, 3, 50, 5000, -1).band, std::log(4.0));
}

TEST(AnswerRule, CellsAreIndependent) {
    AnswerRule r = Rule(0, kNoLimit);
    r.cells[0][1].keep_native_within = kNoLimit; /* base relations with 1-9 hits: never */
    EXPECT_FALSE(apply_rule(r, 1, 5, 1000, 10).answer);
    EXPECT_TRUE(apply_rule(r, 1, 50, 1000, 10).answer);
    EXPECT_TRUE(apply_rule(r, 2, 5, 1000, 10).answer);
}

/* Records where the model corrects PostgreSQL by 5-50x and is right, and a
 * tenth where it "corrects" a right estimate by more than 20,000x: the
 * calibration must answer the first and decline the second. */
std::vector<CalibrationRecord> Synthetic(uint32_t nrels, uint32_t hits, size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<CalibrationRecord> out;
    for (size_t i = 0; i < n; i++) {
        CalibrationRecord c;
        c.nrels = nrels;
        c.fewest_hits = hits;
        c.true_rows = std::exp(2 + 8 * u(rng));
        if (i % 10 == 0) {
            /* PostgreSQL right, the model claims 1 row: a catastrophic correction */
            c.true_rows = 20000 * (1 + u(rng));
            c.native_rows = c.true_rows;
            c.model_rows = 1;
        } else {
            /* PostgreSQL off by 5-50x, the model within 1.3x */
            const double off = std::exp(std::log(5.0) + u(rng) * std::log(10.0));
            c.native_rows = u(rng) < 0.5 ? c.true_rows * off : c.true_rows / off;
            c.model_rows = c.true_rows * (0.8 + 0.5 * u(rng));
        }
        out.push_back(c);
    }
    return out;
}

TEST(AnswerRule, CalibrationAnswersGoodCorrectionsAndDeclinesCatastrophicOnes) {
    std::vector<CalibrationRecord> recs = Synthetic(2, 50, 400, 7);
    const AnswerRule r = calibrate_rule(recs, 0);
    const RuleCell &c = r.cell(2, 50);
    EXPECT_EQ(c.calibrated_on, 400u);
    EXPECT_LT(c.keep_native_within, kNoLimit); /* it answers somewhere */
    EXPECT_LT(c.keep_native_beyond, std::log(20000.0)) << rule_text(r);
    size_t worse = 0, answered = 0;
    for (const CalibrationRecord &x : recs) {
        RuleOutcome o = apply_rule(r, x.nrels, x.fewest_hits, x.model_rows, x.native_rows);
        const double est = o.answer ? o.rows : x.native_rows;
        answered += o.answer;
        worse += qerror(est, x.true_rows) > 2 * qerror(x.native_rows, x.true_rows);
    }
    EXPECT_LE(worse, 4u); /* at most 1 % of the cell */
    EXPECT_GE(answered, 300u);
    /* the same records as a whole held-out set (another seed) hold up too */
    std::vector<CalibrationRecord> other = Synthetic(2, 50, 400, 8);
    worse = 0;
    for (const CalibrationRecord &x : other) {
        RuleOutcome o = apply_rule(r, x.nrels, x.fewest_hits, x.model_rows, x.native_rows);
        worse += qerror(o.answer ? o.rows : x.native_rows, x.true_rows) > 2 * qerror(x.native_rows, x.true_rows);
    }
    EXPECT_LE(worse, 4u);
}

TEST(AnswerRule, CalibrationDeclinesWhereTheModelIsNoBetter) {
    /* the model is PostgreSQL's estimate times noise: nothing to gain */
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<CalibrationRecord> recs;
    for (int i = 0; i < 200; i++) {
        CalibrationRecord c;
        c.nrels = 1;
        c.fewest_hits = 100;
        c.true_rows = 1000 * (0.9 + 0.2 * u(rng));
        c.native_rows = 1000;
        c.model_rows = 1000 * std::exp(3 * (u(rng) - 0.5));
        recs.push_back(c);
    }
    const AnswerRule r = calibrate_rule(recs, 0);
    EXPECT_GE(r.cell(1, 100).keep_native_within, kNoLimit) << rule_text(r);
}

TEST(AnswerRule, SmallCellsInheritTheirRowOrDecline) {
    std::vector<CalibrationRecord> recs = Synthetic(3, 50, 200, 11);
    std::vector<CalibrationRecord> few = Synthetic(3, 5, 10, 12); /* 10 records with 1-9 hits */
    recs.insert(recs.end(), few.begin(), few.end());
    const AnswerRule r = calibrate_rule(recs, 0);
    EXPECT_EQ(r.cell(3, 50).calibrated_on, 200u);
    EXPECT_EQ(r.cell(3, 5).calibrated_on, 0u); /* inherited from all 3-relation records */
    EXPECT_LT(r.cell(3, 5).keep_native_within, kNoLimit);
    /* no records at all for 4+ relations: what every join chose */
    EXPECT_EQ(r.cell(5, 50).calibrated_on, 0u);
    EXPECT_DOUBLE_EQ(r.cell(5, 50).keep_native_within, r.cell(3, 50).keep_native_within);
    EXPECT_DOUBLE_EQ(r.cell(5, 50).keep_native_beyond, r.cell(3, 50).keep_native_beyond);
    /* none for base relations: never answers */
    EXPECT_GE(r.cell(1, 50).keep_native_within, kNoLimit);
}

TEST(AnswerRule, CeilingDeclinesPredictionsBeyondTraining) {
    AnswerRule r = Rule(0, kNoLimit);
    r.ceiling_rows = 4.7e6; /* the largest count trained on */
    /* the network saturated at e times it: extrapolation, PostgreSQL's stands */
    EXPECT_FALSE(apply_rule(r, 3, 50, 12.8e6, 220000).answer);
    EXPECT_FALSE(apply_rule(r, 3, 50, 12.8e6, -1).answer);
    EXPECT_TRUE(apply_rule(r, 3, 50, 4.0e6, 220000).answer);
    /* and the calibration sees it as serving will */
    std::vector<CalibrationRecord> recs = Synthetic(2, 50, 200, 5);
    EXPECT_DOUBLE_EQ(calibrate_rule(recs, 123.0).ceiling_rows, 123.0);
}

TEST(AnswerRule, SurvivesTheModelFile) {
    ModelMeta m;
    m.version = 3;
    m.hidden = 8;
    m.seed = 12345;
    m.answer_rule = Rule(std::log(2.0), std::log(50.0));
    m.answer_rule.cells[2][0].keep_native_within = kNoLimit;
    m.answer_rule.cells[2][0].calibrated_on = 77;
    m.validation_worse_2x = 4;
    m.validation_better_2x = 40;
    Schema s;
    s.sample_size = 0;
    s.max_log_rows = 10;
    s.index();
    const std::string bytes = encode_model(m, s, "weights");
    ModelMeta back;
    Schema s2;
    std::string w, why;
    ASSERT_TRUE(decode_model(bytes, &back, &s2, &w, &why)) << why;
    EXPECT_EQ(back.seed, 12345u);
    /* the ceiling is the schema's largest trained count, not stored */
    EXPECT_NEAR(back.answer_rule.ceiling_rows, std::exp(9.0), 1e-6);
    EXPECT_EQ(back.validation_worse_2x, 4u);
    EXPECT_EQ(back.validation_better_2x, 40u);
    for (int b = 0; b < AnswerRule::kRelBuckets; b++)
        for (int h = 0; h < AnswerRule::kHitBuckets; h++) {
            EXPECT_DOUBLE_EQ(back.answer_rule.cells[b][h].keep_native_within,
                             m.answer_rule.cells[b][h].keep_native_within);
            EXPECT_DOUBLE_EQ(back.answer_rule.cells[b][h].keep_native_beyond,
                             m.answer_rule.cells[b][h].keep_native_beyond);
            EXPECT_EQ(back.answer_rule.cells[b][h].calibrated_on, m.answer_rule.cells[b][h].calibrated_on);
        }
    /* an implausible threshold is refused with the file */
    m.answer_rule.cells[1][1].keep_native_beyond = -1;
    EXPECT_FALSE(decode_model(encode_model(m, s, "weights"), &back, &s2, &w, &why));
}

} // namespace

/* The unsure band, one rule for pilotd, the trainer and the backend
 * (pilot_protocol.h): PostgreSQL's estimate stands for smaller corrections. */
TEST(UnsureBand, SmallerCorrectionsKeepPostgresEstimate) {
    using pilot::proto::within_unsure_band;
    EXPECT_TRUE(within_unsure_band(12, 10, std::log(2.0)));
    EXPECT_FALSE(within_unsure_band(100, 10, std::log(5.0)));
    EXPECT_TRUE(within_unsure_band(3, 10, std::log(5.0))) << "both directions";
    EXPECT_FALSE(within_unsure_band(100, 10, 0)) << "0: never";
    EXPECT_TRUE(within_unsure_band(0.2, 0.5, 0.1)) << "both counted as at least one row";
    EXPECT_FALSE(within_unsure_band(12, -1, std::log(2.0))) << "PostgreSQL's estimate unknown";
    EXPECT_FALSE(within_unsure_band(std::nan(""), 10, std::log(2.0)));
    EXPECT_TRUE(within_unsure_band(1e6, 10, pilot::model::kNoLimit)) << "kNoLimit: always PostgreSQL's";
}
