/* answer_rule.cpp — see answer_rule.h. */
#include "answer_rule.h"

#include "featurize.h"
#include "model_file.h"
#include "pilot_protocol.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pilot {
namespace model {

int AnswerRule::rel_bucket(uint32_t nrels) {
    if (nrels <= 1)
        return 0;
    return static_cast<int>(std::min<uint32_t>(nrels, kRelBuckets) - 1);
}

int AnswerRule::hit_bucket(uint32_t fewest_hits) {
    if (fewest_hits == 0)
        return 0;
    return fewest_hits < 10 ? 1 : 2; /* kNoSampleHits: no evidence of few rows */
}

AnswerRule AnswerRule::bands(double base_within, double join_within) {
    AnswerRule r;
    for (int b = 0; b < kRelBuckets; b++)
        for (int h = 0; h < kHitBuckets; h++)
            r.cells[b][h].keep_native_within = b == 0 ? base_within : join_within;
    return r;
}

bool AnswerRule::plausible() const {
    for (const auto &row : cells)
        for (const RuleCell &c : row)
            if (!std::isfinite(c.keep_native_within) || !std::isfinite(c.keep_native_beyond) ||
                c.keep_native_within < 0 || c.keep_native_within > kNoLimit || c.keep_native_beyond < 0 ||
                c.keep_native_beyond > kNoLimit)
                return false;
    return true;
}

namespace {

/* the rule with one cell's thresholds */
RuleOutcome apply_cell(const RuleCell &c, double ceiling_rows, uint32_t fewest_hits, double model_rows,
                       double native_rows) {
    RuleOutcome out;
    if (!std::isfinite(model_rows) || model_rows < 0)
        return out;
    if (ceiling_rows > 0 && model_rows > ceiling_rows)
        return out; /* beyond anything it was trained on */
    const double m = std::max(1.0, model_rows);
    if (!std::isfinite(native_rows) || native_rows < 0) {
        /* nothing to compare with here: the backend applies the band */
        out.answer = true;
        out.rows = m;
        out.band = c.keep_native_within;
        return out;
    }
    const double n = std::max(1.0, native_rows);
    if (fewest_hits == 0 && m <= n)
        return out; /* not below PostgreSQL's: its estimate stands */
    if (pilot::proto::within_unsure_band(m, n, c.keep_native_within) ||
        std::fabs(std::log(m / n)) > c.keep_native_beyond)
        return out;
    out.answer = true;
    out.rows = m;
    return out;
}

} // namespace

RuleOutcome apply_rule(const AnswerRule &rule, uint32_t nrels, uint32_t fewest_hits, double model_rows,
                       double native_rows) {
    return apply_cell(rule.cell(nrels, fewest_hits), rule.ceiling_rows, fewest_hits, model_rows, native_rows);
}

RuleOutcome apply_rule(const AnswerRule &rule, const Features &f, double model_rows, double native_rows) {
    return apply_rule(rule, f.nrels, f.fewest_hits, model_rows, native_rows);
}

double qerror(double est, double truth) {
    const double a = std::max(1.0, est), t = std::max(1.0, truth);
    return std::max(a / t, t / a);
}

std::string rule_text(const AnswerRule &rule) {
    static const char *rels[] = {"1", "2", "3", "4+"};
    static const char *hits[] = {"0 hits", "1-9 hits", "10+ hits"};
    auto factor = [](double ln) {
        char b[32];
        if (ln >= kNoLimit)
            snprintf(b, sizeof b, "any");
        else
            snprintf(b, sizeof b, "%.3gx", std::exp(ln));
        return std::string(b);
    };
    std::string out;
    for (int b = 0; b < AnswerRule::kRelBuckets; b++) {
        out += std::string("  ") + rels[b] + (b == 0 ? " relation: " : " relations: ");
        for (int h = 0; h < AnswerRule::kHitBuckets; h++) {
            const RuleCell &c = rule.cells[b][h];
            if (h)
                out += "; ";
            out += std::string(hits[h]) + " ";
            if (c.keep_native_within >= kNoLimit)
                out += "never";
            else
                out += "corrections " + factor(c.keep_native_within) + ".." + factor(c.keep_native_beyond);
            out += c.calibrated_on ? " (" + std::to_string(c.calibrated_on) + ")" : " (inherited)";
        }
        if (b + 1 < AnswerRule::kRelBuckets)
            out += "\n";
    }
    return out;
}

namespace {

/* the thresholds chosen for one group of records */
struct Choice {
    bool qualified = false;
    RuleCell cell;
};

Choice choose(const std::vector<const CalibrationRecord *> &recs, double ceiling_rows, double worse_weight,
              size_t min_records) {
    Choice out;
    out.cell.keep_native_within = kNoLimit; /* decline every correction */
    out.cell.calibrated_on = static_cast<uint32_t>(recs.size());
    if (recs.size() < min_records)
        return out;
    out.qualified = true;
    std::vector<double> native(recs.size()), truth(recs.size()), native_q(recs.size());
    for (size_t k = 0; k < recs.size(); k++) {
        native[k] = recs[k]->native_rows;
        truth[k] = recs[k]->true_rows;
        native_q[k] = qerror(native[k], truth[k]);
    }
    const QErrors nq = summarize_qerrors(native, truth);
    /* always declining scores PostgreSQL's own quantiles and no worse record */
    double best = std::log(nq.p50) + std::log(nq.p90) + std::log(nq.p99) - 1e-9;
    static const double kWithin[] = {0, 0.35, 0.7, 1.1, 1.6, 2.3, 3.0, 4.6, 6.9};
    static const double kBeyond[] = {0.7, 1.1, 1.6, 2.3, 3.0, 4.6, 6.9, 9.2, 13.8, kNoLimit};
    /* the trust region: no larger correction than the model made well
     * (halving PostgreSQL's q-error at least) on these records */
    double shown = 0;
    for (size_t k = 0; k < recs.size(); k++)
        if (2 * qerror(recs[k]->model_rows, truth[k]) <= native_q[k])
            shown = std::max(shown, std::fabs(std::log(std::max(1.0, recs[k]->model_rows) / std::max(1.0, native[k]))));
    std::vector<double> est(recs.size());
    for (double w : kWithin)
        for (double b : kBeyond) {
            b = std::min(b, shown);
            if (b <= w)
                continue;
            RuleCell c;
            c.keep_native_within = w;
            c.keep_native_beyond = b;
            size_t worse = 0;
            for (size_t k = 0; k < recs.size(); k++) {
                const CalibrationRecord &r = *recs[k];
                const RuleOutcome o = apply_cell(c, ceiling_rows, r.fewest_hits, r.model_rows, r.native_rows);
                est[k] = o.answer ? o.rows : r.native_rows;
                worse += qerror(est[k], r.true_rows) > 2 * native_q[k];
            }
            const QErrors q = summarize_qerrors(est, truth);
            if (q.p50 > nq.p50 * 1.001 || q.p90 > nq.p90 * 1.001 || q.p99 > nq.p99 * 1.001)
                continue; /* worse than PostgreSQL somewhere */
            const double score = std::log(q.p50) + std::log(q.p90) + std::log(q.p99) +
                                 worse_weight * static_cast<double>(worse) / static_cast<double>(recs.size());
            if (score < best) {
                best = score;
                out.cell.keep_native_within = w;
                out.cell.keep_native_beyond = b;
            }
        }
    return out;
}

} // namespace

AnswerRule calibrate_rule(const std::vector<CalibrationRecord> &records, double ceiling_rows, double worse_weight,
                          size_t min_records) {
    AnswerRule rule;
    rule.ceiling_rows = ceiling_rows;
    /* every join together: what a number of relations with too few records inherits */
    auto usable = [](const CalibrationRecord &r) { return r.native_rows > 0 && std::isfinite(r.model_rows); };
    std::vector<const CalibrationRecord *> joins;
    for (const CalibrationRecord &r : records)
        if (r.nrels > 1 && usable(r))
            joins.push_back(&r);
    const Choice all_joins = choose(joins, ceiling_rows, worse_weight, min_records);
    for (int b = 0; b < AnswerRule::kRelBuckets; b++) {
        std::vector<const CalibrationRecord *> by_rels;
        for (const CalibrationRecord &r : records)
            if (AnswerRule::rel_bucket(r.nrels) == b && usable(r))
                by_rels.push_back(&r);
        Choice whole = choose(by_rels, ceiling_rows, worse_weight, min_records);
        if (!whole.qualified && b > 0)
            whole = all_joins;
        for (int h = 0; h < AnswerRule::kHitBuckets; h++) {
            std::vector<const CalibrationRecord *> mine;
            for (const CalibrationRecord *r : by_rels)
                if (AnswerRule::hit_bucket(r->fewest_hits) == h)
                    mine.push_back(r);
            Choice c = choose(mine, ceiling_rows, worse_weight, min_records);
            if (!c.qualified) {
                c.cell = whole.cell;
                c.cell.calibrated_on = 0; /* inherited */
            }
            rule.cells[b][h] = c.cell;
        }
    }
    return rule;
}

} // namespace model
} // namespace pilot
