/* guard_rule.cpp — see guard_rule.h */
#include "guard_rule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace pilotd {

double median_ms(const double *ms, size_t n) {
    if (n == 0)
        return -1;
    std::vector<double> v(ms, ms + n);
    std::sort(v.begin(), v.end());
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

GuardVerdict guard_decide(const GuardRule &rule, const double *pilot_ms, size_t pilot_n, const double *native_ms,
                          size_t native_n) {
    GuardVerdict v;
    v.pilot_median_ms = median_ms(pilot_ms, pilot_n);
    v.native_median_ms = median_ms(native_ms, native_n);
    const size_t need = rule.min_runs > 0 ? rule.min_runs : 1;
    if (pilot_n < need || native_n < need) {
        v.decision = pilot::proto::GUARD_EXPLORE;
        return v;
    }
    const bool slower = v.pilot_median_ms > v.native_median_ms * rule.slower_ratio &&
                        v.pilot_median_ms - v.native_median_ms > rule.min_difference_ms;
    v.decision = slower ? pilot::proto::GUARD_NATIVE : pilot::proto::GUARD_PILOT;
    return v;
}

std::string guard_reason(const GuardVerdict &v, size_t pilot_n, size_t native_n) {
    char buf[160];
    snprintf(buf, sizeof buf, "pg_pilot's median %.2f ms vs PostgreSQL's %.2f ms over %zu and %zu runs",
             v.pilot_median_ms, v.native_median_ms, pilot_n, native_n);
    return buf;
}

} // namespace pilotd
