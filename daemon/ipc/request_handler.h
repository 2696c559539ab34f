/*
 * request_handler.h — answers one request already copied out of shared memory:
 * PING, ESTIMATE (through the estimator registry), the oracle load sessions
 * (BEGIN / ADD / COMMIT / CLEAR), MODEL_PIN (through the ModelControl, if
 * one is set: else ST_FAILED) and ADVISOR (queued with the AdvisorControl, if
 * one is set: else ST_FAILED).  Knows nothing about the segment.
 *
 * An ESTIMATE that carried key texts is handed to the KeyTextSink (if set)
 * after it was answered: the caller calls note_key_texts() once the response
 * is published (HandleResult::key_texts), so the backend never waits on it.
 *
 * Oracle load sessions are per slot: the session id is the seq of the BEGIN
 * request, ADD and COMMIT carry it in Request::session, and a new BEGIN on a
 * slot discards that slot's earlier staging.
 */
#ifndef PILOTD_REQUEST_HANDLER_H
#define PILOTD_REQUEST_HANDLER_H

#include "advisor_service.h"
#include "estimator.h"
#include "guard_book.h"
#include "latency_buckets.h"
#include "oracle_store.h"
#include "pilot_protocol.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace pilotd {

struct HandleResult {
    bool bad_request = false; /* failed validate_request() */
    uint32_t items = 0;       /* relation sets estimated */
    uint32_t answered = 0;    /* of which answered (source != SRC_NONE) */
    bool key_texts = false;   /* an answered estimate with key texts: call note_key_texts() */
};

class RequestHandler {
  public:
    RequestHandler(EstimatorRegistry &registry, OracleStore &oracle);

    /* req: a private copy (count may be anything: it is validated here).
     * Fills resp completely (seq, status, count, oracle_entries, answers[0..count)).
     * Never throws. */
    HandleResult handle(uint32_t slot, uint32_t client_pid, const pilot::proto::Request &req,
                        pilot::proto::Response &resp) noexcept;

    /* Hands an estimate request that handle() answered with key_texts set to
     * the KeyTextSink (if any).  Never throws. */
    void note_key_texts(const pilot::proto::Request &req) noexcept;

    /* Set before the server starts (nullptr: none, the default). */
    void set_key_text_sink(KeyTextSink *sink) { sink_ = sink; }
    void set_model_control(ModelControl *control) { model_control_ = control; }
    void set_advisor_control(AdvisorControl *control) { advisor_control_ = control; }
    void set_guard(GuardBook *guard) { guard_ = guard; }

    /* For the metrics endpoint: relation sets answered per source
     * (SRC_NONE: not answered, PostgreSQL's estimate stands), and the time
     * one ESTIMATE request took pilotd to answer. */
    uint64_t answers_by_source(uint32_t source) const noexcept {
        return source <= pilot::proto::SRC_MAX ? by_source_[source].load(std::memory_order_relaxed) : 0;
    }
    const LatencyBuckets &estimate_times() const noexcept { return estimate_times_; }

    /* Upper bound on the entries one load session may stage. */
    static constexpr size_t kMaxStagedEntries = 50u * 1000u * 1000u;

  private:
    std::array<std::atomic<uint64_t>, pilot::proto::SRC_MAX + 1> by_source_{};
    LatencyBuckets estimate_times_;

    struct Session {
        uint64_t id = 0;
        bool replace = false;
        std::vector<pilot::proto::OracleEntry> entries;
    };

    void estimate(const pilot::proto::Request &req, pilot::proto::Response &resp, HandleResult &r);
    void oracle(uint32_t slot, uint32_t client_pid, const pilot::proto::Request &req,
                pilot::proto::Response &resp);
    void guard_pin(uint32_t slot, uint32_t client_pid, const pilot::proto::Request &req,
                   pilot::proto::Response &resp);
    void model_pin(uint32_t slot, uint32_t client_pid, const pilot::proto::Request &req,
                   pilot::proto::Response &resp);
    void advisor(uint32_t slot, uint32_t client_pid, const pilot::proto::Request &req,
                 pilot::proto::Response &resp);
    void log_bad_request(uint32_t slot, uint32_t client_pid, const pilot::proto::Request &req);

    EstimatorRegistry &registry_;
    OracleStore &oracle_;
    KeyTextSink *sink_ = nullptr;
    ModelControl *model_control_ = nullptr;
    GuardBook *guard_ = nullptr;
    AdvisorControl *advisor_control_ = nullptr;
    std::mutex sessions_mu_;
    std::unordered_map<uint32_t, Session> sessions_; /* by slot index */

    std::mutex bad_log_mu_;
    uint64_t bad_log_window_start_us_ = 0;
    uint32_t bad_logged_in_window_ = 0;
    uint64_t bad_suppressed_ = 0;
};

} // namespace pilotd

#endif
