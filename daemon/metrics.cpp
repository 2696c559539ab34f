/*
 * metrics.cpp — see metrics.h.  One Collectable builds every family at scrape
 * time from MetricsSources.
 */
#include "metrics.h"

#include "config.h"
#include "log.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace pilotd {

namespace pm = prometheus;
namespace pp = pilot::proto;

namespace {

using Labels = std::vector<pm::ClientMetric::Label>;

struct Families {
    std::vector<pm::MetricFamily> list;

    pm::MetricFamily &family(const std::string &name, const std::string &help, pm::MetricType type) {
        for (auto &f : list)
            if (f.name == name)
                return f;
        list.push_back(pm::MetricFamily{name, help, type, {}});
        return list.back();
    }
    void counter(const std::string &name, const std::string &help, double v, Labels labels = {}) {
        pm::ClientMetric m;
        m.label = std::move(labels);
        m.counter.value = v;
        family(name, help, pm::MetricType::Counter).metric.push_back(std::move(m));
    }
    void histogram(const std::string &name, const std::string &help, const LatencyBuckets &b) {
        const LatencyBuckets::Snapshot s = b.snapshot();
        pm::ClientMetric m;
        for (size_t i = 0; i < LatencyBuckets::kUpperUs.size(); i++)
            m.histogram.bucket.push_back({s.cumulative[i], static_cast<double>(LatencyBuckets::kUpperUs[i]) / 1e6});
        m.histogram.bucket.push_back({s.cumulative.back(), std::numeric_limits<double>::infinity()});
        m.histogram.sample_count = s.cumulative.back();
        m.histogram.sample_sum = static_cast<double>(s.sum_us) / 1e6;
        family(name, help, pm::MetricType::Histogram).metric.push_back(std::move(m));
    }
    void gauge(const std::string &name, const std::string &help, double v, Labels labels = {}) {
        pm::ClientMetric m;
        m.label = std::move(labels);
        m.gauge.value = v;
        family(name, help, pm::MetricType::Gauge).metric.push_back(std::move(m));
    }
};

double load(const std::atomic<uint64_t> &a) { return static_cast<double>(a.load(std::memory_order_relaxed)); }

/* The model table as backends read it: consistent under its sequence
 * counter, each row cleaned; empty when it never read consistently. */
std::vector<pp::ModelInfo> copy_models(const pp::ModelTable &t) {
    static pp::ModelInfo copy[pp::kMaxModels];
    static std::mutex copy_mu; /* one scrape at a time uses the buffer */
    std::lock_guard<std::mutex> g(copy_mu);
    for (int attempt = 0; attempt < 100; attempt++) {
        const uint32_t s1 = t.seq.load(std::memory_order_acquire);
        if (s1 & 1u) {
            std::this_thread::yield();
            continue;
        }
        const uint32_t count = t.count;
        std::memcpy(static_cast<void *>(copy), t.models, sizeof copy);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (t.seq.load(std::memory_order_relaxed) != s1)
            continue;
        std::vector<pp::ModelInfo> out;
        for (uint32_t i = 0; i < count && i < pp::kMaxModels; i++) {
            pp::ModelInfo m = copy[i];
            if (pp::clean_model_info(m))
                out.push_back(m);
        }
        return out;
    }
    return {};
}

void segment_families(Families &f, const pp::SegmentHeader &h) {
    const pp::PilotdCounters &c = h.counters;
    f.gauge("pilotd_start_time_seconds", "When this pilotd started (Unix time).",
            static_cast<double>(h.started_at_unix));
    f.counter("pilotd_requests_total", "Round trips backends made to pilotd.", load(c.requests));
    f.counter("pilotd_estimate_items_total", "Relation sets backends asked pilotd to estimate.", load(c.items));
    f.counter("pilotd_estimate_answered_total", "Relation sets pilotd gave rows for (the rest: PostgreSQL's estimate).",
              load(c.answered));
    f.counter("pilotd_bad_requests_total", "Requests that failed validation (answered with nothing).",
              load(c.bad_requests));
    f.gauge("pilotd_oracle_entries", "Relation sets with a loaded true count (oracle files).", load(c.oracle_entries));
    f.gauge("pilotd_memo_entries", "Relation sets with an observed count (the memo).", load(c.memo_entries));
    f.gauge("pilotd_key_texts", "Relation-set texts pilotd holds and has told the backends of.",
            load(h.key_texts.count));
    f.counter("pilotd_feedback_received_total", "Execution feedback records taken from the backends' queues.",
              load(c.feedback_received));
    f.counter("pilotd_feedback_invalid_total", "Feedback records (or queues) that failed validation.",
              load(c.feedback_invalid));
    f.gauge("pilotd_feedback_queued", "Feedback records in the queues, not yet acknowledged (last drain).",
            load(c.feedback_queued));
    f.counter("pilotd_spool_appended_total", "Feedback records made durable in the local spool (acknowledged).",
              load(c.spool_appended));
    /* the watermark first: never under-counts (pilot_protocol.h) */
    const uint64_t watermark = c.store_watermark.load(std::memory_order_acquire);
    const uint64_t next = c.spool_next_seq.load(std::memory_order_acquire);
    f.gauge("pilotd_spool_pending", "Spooled feedback records not yet committed to the feedback store.",
            static_cast<double>(next > watermark ? next - watermark : 0));
    f.counter("pilotd_store_committed_total", "Feedback records committed into the store tables.",
              load(c.store_committed));
    f.counter("pilotd_store_replayed_total",
              "Of the committed records, those that waited out a store outage or a restart.", load(c.store_replayed));
    f.counter("pilotd_store_dead_letter_total", "Feedback records stored in pg_pilot.feedback_dead_letter.",
              load(c.store_dead_letter));
    f.counter("pilotd_store_failures_total", "Failed feedback-store transactions (each retried with backoff).",
              load(c.store_failures));
    const uint32_t state = c.store_state.load(std::memory_order_relaxed);
    for (uint32_t s = 0; s <= pp::STORE_STATE_MAX; s++)
        f.gauge("pilotd_store_state", "The feedback store's state (1 for the current one).", state == s ? 1 : 0,
                {{"state", pp::store_state_name(s)}});

    for (const pp::ModelInfo &m : copy_models(h.models)) {
        const std::string version = std::to_string(m.version);
        const Labels id{{"database", m.database}, {"version", version}};
        Labels info = id;
        info.push_back({"state", pp::model_state_name(m.state)});
        f.gauge("pilotd_model_info", "A model version pilotd knows (1), its database and state.", 1, info);
        f.gauge("pilotd_model_serving", "1 while this version answers for its database.",
                m.state == pp::MODEL_SERVING ? 1 : 0, id);
        f.counter("pilotd_model_served_total", "Estimates this version answered.", static_cast<double>(m.served), id);
        f.counter("pilotd_model_declined_total", "Estimates this version declined (PostgreSQL's stands).",
                  static_cast<double>(m.declined), id);
        f.counter("pilotd_model_batches_total", "Planning batches this version ran inference for.",
                  static_cast<double>(m.batches), id);
        static const char *const kQuantiles[3] = {"0.5", "0.9", "0.99"};
        for (int q = 0; q < 3; q++) {
            Labels model = id, native = id;
            model.push_back({"estimator", "model"});
            model.push_back({"quantile", kQuantiles[q]});
            native.push_back({"estimator", "postgresql"});
            native.push_back({"quantile", kQuantiles[q]});
            f.gauge("pilotd_model_validation_qerror", "Q-error on the version's held-out records, and PostgreSQL's.",
                    m.model_qerror[q], model);
            f.gauge("pilotd_model_validation_qerror", "", m.native_qerror[q], native);
        }
        for (int q = 0; q < 2; q++) {
            if (m.inference_us[q] < 0)
                continue;
            Labels l = id;
            l.push_back({"quantile", q == 0 ? "0.5" : "0.99"});
            f.gauge("pilotd_model_inference_seconds", "One planning batch's inference (featurize + forward pass).",
                    m.inference_us[q] / 1e6, l);
        }
    }
}

} // namespace

struct MetricsEndpoint::Impl : pm::Collectable {
    MetricsSources sources;
    std::unique_ptr<pm::Exposer> exposer;
    /* the Exposer keeps a weak_ptr: this one owns nothing (no-op deleter) */
    std::shared_ptr<pm::Collectable> handle;

    std::vector<pm::MetricFamily> Collect() const override {
        Families f;
        f.gauge("pilotd_info", "pilotd's version and protocol (always 1).", 1,
                {{"version", kPilotdVersion}, {"protocol", std::to_string(pp::kProtocolVersion)}});
        const pp::SegmentHeader *h = sources.segment ? sources.segment() : nullptr;
        f.gauge("pilotd_segment_published", "1 while pilotd serves its shared-memory segment.", h != nullptr ? 1 : 0);
        if (h != nullptr)
            segment_families(f, *h);
        if (sources.guard_decisions_native)
            f.counter("pilotd_guard_decisions_total",
                      "Query templates the plan guard decided for (arm: whose estimates they plan with).",
                      static_cast<double>(sources.guard_decisions_native()), {{"arm", "native"}});
        if (sources.guard_decisions_pilot)
            f.counter("pilotd_guard_decisions_total", "", static_cast<double>(sources.guard_decisions_pilot()),
                      {{"arm", "pilot"}});
        if (sources.guard_reopened_by_statistics)
            f.counter("pilotd_guard_statistics_reopened_total",
                      "Query templates the plan guard sent back to explore because their tables' row counts changed.",
                      static_cast<double>(sources.guard_reopened_by_statistics()));
        if (sources.catalog_entries)
            f.gauge("pilotd_key_catalog_entries", "Relation-set texts in the key catalog (what the model trains on).",
                    static_cast<double>(sources.catalog_entries()));
        if (sources.answers_by_source)
            for (uint32_t src = 0; src <= pp::SRC_MAX; src++)
                f.counter("pilotd_estimate_answers_total",
                          "Relation sets answered, by source (none: pilotd knew nothing, PostgreSQL's estimate "
                          "stands).",
                          static_cast<double>(sources.answers_by_source(src)),
                          {{"source", pp::source_name(src)}});
        if (sources.estimate_times)
            f.histogram("pilotd_estimate_request_seconds",
                        "Time pilotd took to answer one estimate request (from taking it to answering).",
                        *sources.estimate_times);
        if (sources.inference_times)
            f.histogram("pilotd_model_inference_batch_seconds",
                        "One planning batch's inference by the learned model (featurize + forward pass).",
                        *sources.inference_times);
        if (sources.catalog_dropped)
            f.counter("pilotd_key_catalog_dropped_total", "Relation-set texts not written (catalog full or I/O error).",
                      static_cast<double>(sources.catalog_dropped()));
        return std::move(f.list);
    }
};

MetricsEndpoint::MetricsEndpoint(MetricsSources sources) : impl_(new Impl) {
    impl_->sources = std::move(sources);
}

MetricsEndpoint::~MetricsEndpoint() { stop(); }

bool MetricsEndpoint::start(const std::string &address, std::string *error) noexcept {
    try {
        impl_->handle.reset(impl_.get(), [](pm::Collectable *) {});
        impl_->exposer.reset(new pm::Exposer(address, 1));
        impl_->exposer->RegisterCollectable(impl_->handle);
        return true;
    } catch (const std::exception &e) {
        *error = "cannot listen on " + address + ": " + e.what();
    } catch (...) {
        *error = "cannot listen on " + address;
    }
    impl_->exposer.reset();
    return false;
}

void MetricsEndpoint::stop() noexcept {
    try {
        impl_->exposer.reset(); /* joins the HTTP threads: no scrape runs after this */
    } catch (...) {
    }
}

std::string MetricsEndpoint::render() const {
    return pm::TextSerializer().Serialize(impl_->Collect());
}

} // namespace pilotd
