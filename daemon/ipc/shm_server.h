/*
 * shm_server.h — pilotd's side of the shared-memory protocol (see
 * common/pilot_protocol.h): owns the segment, keeps the heartbeat, runs the
 * worker threads that answer PENDING slots, and the feedback thread that
 * drains every slot's FeedbackRing.
 *
 * Feedback drain, every feedback_interval_ms, for each slot's ring:
 *   t = tail (relaxed: pilotd is its only writer), h = head (acquire);
 *   h < t or h - t > kFeedbackRing: garbage indices, the ring is reset
 *     (tail = h) and counted once in counters.feedback_invalid;
 *   else rec[t..h) are copied out of shared memory and validate_feedback()ed.
 * The records of several rings are collected into one batch (at most
 * kDrainBatch records; those failing feedback_check() separately, with the
 * reason, for the dead-letter table) and handed to on_feedback; only when it returns true
 * (the batch is durable: journaled and fdatasync()ed) are the rings' tails
 * advanced to their h (release), which gives the slots back to the backends,
 * and the records counted (counters.feedback_received, invalid ones in
 * counters.feedback_invalid).  counters.feedback_queued is what the round
 * left unacknowledged.  At a clean stop the rings are drained a last time.  When it returns false nothing of the batch is
 * acknowledged: the records stay in the rings and are read again next round.
 * after_drain runs after every round (the journal's compaction check).
 *
 * Requests are copied out of their slot before anything is read: the fixed
 * fields, at most kMaxItems items, and of the text area only the used part
 * (text_used bytes, at most kMaxText); texts that are not clean UTF-8 are
 * dropped (drop_unclean_texts()) and the rest is validate_request()ed by the
 * handler.
 *
 * The model table (SegmentHeader::models) is written by publish_models()
 * under its sequence counter; backends read it for pg_pilot.models.
 *
 * The segment is created under a temporary name, fully initialised (header,
 * heartbeat, PILOTD_READY) and then renamed to its real name, so a backend
 * never maps a half-initialised segment.
 */
#ifndef PILOTD_SHM_SERVER_H
#define PILOTD_SHM_SERVER_H

#include "feedback_batch.h"
#include "pilot_protocol.h"
#include "request_handler.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace boost {
namespace interprocess {
class shared_memory_object;
class mapped_region;
} // namespace interprocess
} // namespace boost

namespace pilotd {

struct ShmServerOptions {
    std::string segment;           /* proto::segment_name_for_datadir() */
    uint32_t nslots = 512;
    uint32_t workers = 2;
    uint32_t heartbeat_ms = 10;
    uint32_t protocol_version = pilot::proto::kProtocolVersion; /* testing override */
    uint32_t answer_delay_ms = 0;  /* testing: before each MSG_ESTIMATE */
    uint32_t feedback_interval_ms = 5;
    /* receives a batch of valid feedback records (copies, of one or more
     * rings); returns whether it accepted them (see above); called on the
     * feedback thread only; must not throw.  Unset: everything is accepted. */
    std::function<bool(const FeedbackBatch &)> on_feedback;
    /* called on the feedback thread after each drain round; must not throw */
    std::function<void()> after_drain;
    /* called with the initialised header just before the segment is published */
    std::function<void(pilot::proto::SegmentHeader *)> before_publish;
};

class ShmServer {
  public:
    ShmServer(ShmServerOptions opt, RequestHandler &handler);
    ~ShmServer();
    ShmServer(const ShmServer &) = delete;
    ShmServer &operator=(const ShmServer &) = delete;

    /* Creates and publishes the segment and starts the threads.  Throws
     * std::runtime_error with a readable message on failure. */
    void start();
    /* PILOTD_STOPPING, wake every waiter, join the threads, remove the segment.
     * Idempotent; never throws. */
    void stop() noexcept;

    /* Writes the model table (at most kMaxModels rows; strings are cut and
     * NUL-terminated) under its sequence counter, and model_serving (some
     * database has a serving version); bumps model_generation when the
     * serving versions (database oid -> version) changed.
     * Any thread, after start(); a no-op before start() or after stop(). */
    void publish_models(const std::vector<pilot::proto::ModelInfo> &models,
                        const std::map<uint32_t, uint32_t> &serving_versions) noexcept;

    pilot::proto::SegmentHeader *header() const { return header_; }
    uint64_t epoch() const { return epoch_; }
    uint64_t size() const { return size_; }
    /* The heartbeat found the segment damaged by another process (truncated,
     * header overwritten), logged it and sent pilotd SIGTERM: exit failed. */
    bool damaged() const { return damaged_.load(); }

  private:
    void create_segment();
    void heartbeat_loop() noexcept;
    std::string segment_damage() const;
    void feedback_loop() noexcept;
    struct DrainBatch;
    void drain_feedback_once(DrainBatch &b, bool final) noexcept;
    bool flush_batch(DrainBatch &b) noexcept;
    void worker_loop(uint32_t index) noexcept;
    bool scan_once(uint32_t start, pilot::proto::Request &req, pilot::proto::Response &resp);
    /* Serves the slots whose bits are set in the header's pending bitmap. */
    bool serve_pending(pilot::proto::Request &req, pilot::proto::Response &resp);
    /* database oid -> serving model version, as last published (publish_mu_) */
    std::map<uint32_t, uint32_t> published_serving_;
    bool spin_for_work(uint32_t seen) noexcept;
    void serve_slot(uint32_t i, pilot::proto::Request &req, pilot::proto::Response &resp);
    bool sleep_unless_stopping(uint32_t ms);

    ShmServerOptions opt_;
    RequestHandler &handler_;
    std::unique_ptr<boost::interprocess::shared_memory_object> shm_;
    std::unique_ptr<boost::interprocess::mapped_region> region_;
    pilot::proto::SegmentHeader *header_ = nullptr;
    uint64_t size_ = 0;
    uint64_t epoch_ = 0;
    bool published_ = false;

    std::atomic<bool> stopping_{false};
    std::atomic<bool> spinning_{false}; /* one worker polls the doorbell at a time */
    std::mutex stop_mu_;
    std::condition_variable stop_cv_;
    std::thread heartbeat_;
    std::thread feedback_;
    std::vector<std::thread> workers_;
    std::atomic<uint32_t> heartbeat_late_logged_{0};
    std::atomic<bool> damaged_{false};
    std::mutex publish_mu_; /* one writer of the model table at a time */
};

} // namespace pilotd

#endif
