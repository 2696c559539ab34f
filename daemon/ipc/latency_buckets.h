/*
 * latency_buckets.h — a latency histogram with fixed buckets, what the
 * metrics endpoint exposes as a Prometheus histogram (a count per upper
 * bound, cumulated when read, a sum and a count).  One relaxed atomic add
 * per observation: cheap enough for every request.
 */
#ifndef PILOTD_LATENCY_BUCKETS_H
#define PILOTD_LATENCY_BUCKETS_H

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pilotd {

class LatencyBuckets {
  public:
    /* upper bounds in microseconds; one more bucket holds the rest (+Inf) */
    static constexpr std::array<uint64_t, 12> kUpperUs = {10,   25,   50,    100,   250,   500,
                                                          1000, 2500, 5000, 10000, 25000, 100000};

    void add(uint64_t us) noexcept {
        size_t b = 0;
        while (b < kUpperUs.size() && us > kUpperUs[b])
            b++;
        counts_[b].fetch_add(1, std::memory_order_relaxed);
        sum_us_.fetch_add(us, std::memory_order_relaxed);
    }

    struct Snapshot {
        std::array<uint64_t, kUpperUs.size() + 1> cumulative{}; /* last: every observation */
        uint64_t sum_us = 0;
    };
    /* Cumulative counts (each bound counts what is at or below it). */
    Snapshot snapshot() const noexcept {
        Snapshot s;
        uint64_t acc = 0;
        for (size_t b = 0; b < counts_.size(); b++) {
            acc += counts_[b].load(std::memory_order_relaxed);
            s.cumulative[b] = acc;
        }
        s.sum_us = sum_us_.load(std::memory_order_relaxed);
        return s;
    }

  private:
    std::array<std::atomic<uint64_t>, kUpperUs.size() + 1> counts_{};
    std::atomic<uint64_t> sum_us_{0};
};

} // namespace pilotd

#endif
