/*
 * metrics.h — pilotd's Prometheus endpoint (off by default; --metrics-address
 * HOST:PORT, e.g. 127.0.0.1:9187).
 *
 * prometheus-cpp serves the HTTP and writes the exposition format.  The values
 * are read when Prometheus scrapes, from what pilotd publishes anyway (the
 * segment's counters and model table, the guard's decisions, the key
 * catalog): nothing is counted twice, and between scrapes the endpoint costs
 * pilotd nothing.  Counters restart from zero with pilotd, as Prometheus
 * expects of a process's counters.
 *
 * prometheus-cpp's headers stay in metrics.cpp.
 */
#ifndef PILOTD_METRICS_H
#define PILOTD_METRICS_H

#include "latency_buckets.h"
#include "pilot_protocol.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pilotd {

/* Where the values come from; any may be empty (that part is left out). */
struct MetricsSources {
    /* the segment pilotd serves (nullptr while there is none) */
    std::function<const pilot::proto::SegmentHeader *()> segment;
    /* templates the plan guard switched to PostgreSQL's / to pg_pilot's estimates */
    std::function<uint64_t()> guard_decisions_native, guard_decisions_pilot, guard_reopened_by_statistics;
    /* relation-set texts in the key catalog, and those it could not write */
    std::function<uint64_t()> catalog_entries, catalog_dropped;
    /* relation sets answered per source (pilot::proto::Source; SRC_NONE:
     * not answered) */
    std::function<uint64_t(uint32_t source)> answers_by_source;
    /* time to answer one estimate request; one planning batch's inference */
    const LatencyBuckets *estimate_times = nullptr, *inference_times = nullptr;
};

class MetricsEndpoint {
  public:
    explicit MetricsEndpoint(MetricsSources sources);
    ~MetricsEndpoint();

    /* Listens on address ("HOST:PORT").  False (and *error) when it cannot
     * bind; never throws. */
    bool start(const std::string &address, std::string *error) noexcept;
    void stop() noexcept;

    /* The exposition text of one scrape (what /metrics serves). */
    std::string render() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace pilotd

#endif
