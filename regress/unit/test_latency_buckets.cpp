/*
 * test_latency_buckets.cpp — the metrics endpoint's latency histogram
 * (daemon/ipc/latency_buckets.h): each observation in the first bucket whose
 * bound holds it, counts cumulated when read, the rest past the last bound.
 */
#include "latency_buckets.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using pilotd::LatencyBuckets;

TEST(LatencyBuckets, ObservationsLandAtOrBelowTheirBound) {
    LatencyBuckets b;
    b.add(0);       /* <= 10 */
    b.add(10);      /* <= 10: a bound holds its own value */
    b.add(11);      /* <= 25 */
    b.add(1000);    /* <= 1000 */
    b.add(200000);  /* past the last bound: +Inf only */
    const auto s = b.snapshot();
    EXPECT_EQ(s.cumulative[0], 2u);
    EXPECT_EQ(s.cumulative[1], 3u);
    EXPECT_EQ(s.cumulative[5], 3u) << "500 us: nothing new";
    EXPECT_EQ(s.cumulative[6], 4u) << "1000 us";
    EXPECT_EQ(s.cumulative[LatencyBuckets::kUpperUs.size() - 1], 4u);
    EXPECT_EQ(s.cumulative.back(), 5u) << "+Inf counts everything";
    EXPECT_EQ(s.sum_us, 0u + 10 + 11 + 1000 + 200000);
}

TEST(LatencyBuckets, ConcurrentAddsAreAllCounted) {
    LatencyBuckets b;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([&b, t] {
            for (int i = 0; i < 10000; i++)
                b.add(static_cast<uint64_t>((i * 7 + t) % 3000));
        });
    for (auto &t : ts)
        t.join();
    EXPECT_EQ(b.snapshot().cumulative.back(), 40000u);
}
