/*
 * guard_rule.h — the plan guard's rule: given the recent run times of a query
 * template planned with pg_pilot's estimates and with PostgreSQL's, which
 * should its next executions use.
 *
 * Why this rule:
 *   - Run times are compared by their MEDIAN over a window of the latest runs
 *     per arm: one slow run (a checkpoint, a cold cache, another backend's burst
 *     on a 2-core machine) moves a median of three or more runs very little,
 *     while a plan that is really slower is slower in most runs.
 *   - pg_pilot's estimates lose the template when their median is both
 *     `slower_ratio` times and `min_difference_ms` above PostgreSQL's.  By
 *     default the ratio is 1 and the difference 0.2 ms: they must not be
 *     slower at all, beyond the jitter of sub-millisecond runs.  Where both
 *     sides plan alike, pg_pilot's side is slower by its planning work (most
 *     of a millisecond on a new connection), so such templates go native and
 *     save it; where the arms differ by noise only, either choice costs
 *     nothing.  A wrong "native" only gives up a gain smaller than the noise;
 *     a wrong "pilot" keeps a regression: hence no tolerance by default.
 *     A larger ratio (guard-slower-pct) keeps pg_pilot's estimates where they
 *     cost a little, e.g. to keep learning from their feedback.
 *   - Until each arm has `min_runs` runs the template explores (the backends
 *     alternate the arms).
 * Pure: no clock, no I/O; unit-tested in regress/unit/test_guard_rule.cpp.
 */
#ifndef PILOTD_GUARD_RULE_H
#define PILOTD_GUARD_RULE_H

#include "pilot_protocol.h"

#include <cstddef>
#include <string>

namespace pilotd {

struct GuardRule {
    unsigned min_runs = 3;          /* runs per arm before deciding */
    double slower_ratio = 1.0;      /* pg_pilot's median above PostgreSQL's by this factor ... */
    double min_difference_ms = 0.2; /* ... and by this much: native */
    /* a template whose runs see its tables' sizes change by this factor (the
     * product of their pg_class.reltuples, after ANALYZE or VACUUM) explores
     * again, both arms' runs forgotten; <= 1: never */
    double stats_change_factor = 2.0;
};

struct GuardVerdict {
    pilot::proto::GuardDecision decision = pilot::proto::GUARD_EXPLORE;
    double pilot_median_ms = -1; /* < 0: no runs */
    double native_median_ms = -1;
};

/* The median of n run times (n > 0; the mean of the two middle ones when n is
 * even); -1 when n == 0. */
double median_ms(const double *ms, size_t n);

GuardVerdict guard_decide(const GuardRule &rule, const double *pilot_ms, size_t pilot_n, const double *native_ms,
                          size_t native_n);

/* "pg_pilot's median 192.0 ms vs PostgreSQL's 145.0 ms over 3 and 3 runs" */
std::string guard_reason(const GuardVerdict &v, size_t pilot_n, size_t native_n);

} // namespace pilotd

#endif
