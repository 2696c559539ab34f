/*
 * pilotd_client.h — the backend's side of the shared-memory protocol, in plain
 * C++ (no PostgreSQL headers) so it is unit-tested against a real pilotd.
 *
 * One client per process.  call() never throws and never waits longer than the
 * time it is given; every way pilotd can be unusable (no segment, another
 * protocol version, stale heartbeat, slot busy, garbage response) comes back as
 * an Outcome the caller turns into PostgreSQL's native estimate plus a counter.
 */
#ifndef PG_PILOT_PILOTD_CLIENT_H
#define PG_PILOT_PILOTD_CLIENT_H

#include "pilot_protocol.h"

#include <cstdint>
#include <memory>
#include <string>

namespace pilot {

enum class Outcome {
    OK = 0,           /* response valid and ST_OK */
    PILOTD_DOWN,      /* no segment, stale heartbeat, pilotd stopping */
    VERSION_MISMATCH, /* segment of another protocol version or layout */
    NO_SLOT,          /* this backend's slot index is beyond pilotd's slots */
    SLOT_BUSY,        /* pilotd is still answering an abandoned request in our slot */
    TIMEOUT,          /* no answer within the time given */
    INVALID,          /* response failed validation */
    REFUSED,          /* pilotd answered with a non-OK status */
};

const char *outcome_name(Outcome o);

struct PilotdInfo {
    bool attached = false;
    std::string segment;
    std::string last_problem; /* why not attached, for status output */
    uint32_t version = 0;
    uint32_t nslots = 0;
    uint32_t pilotd_pid = 0;
    uint64_t epoch = 0;
    uint64_t heartbeat_age_us = 0;
    uint64_t started_at_unix = 0;
    uint64_t requests = 0, items = 0, answered = 0, bad_requests = 0, oracle_entries = 0;
    uint64_t feedback_received = 0, feedback_invalid = 0, memo_entries = 0;
    uint64_t key_texts = 0; /* keys whose texts pilotd published (KeyTexts) */
    uint64_t feedback_queued = 0, spool_appended = 0, spool_pending = 0, store_committed = 0,
             store_replayed = 0, store_dead_letter = 0, store_failures = 0;
    uint32_t store_state = 0;
    std::string store_error;
    uint32_t models = 0;          /* rows of the model table (-1u: unreadable) */
    uint32_t serving_version = 0; /* the version serving, 0 none */
};

class PilotdClient {
  public:
    /* slot_index: this process's slot (backend id - 1); stale_after_us: a heartbeat
     * older than this means pilotd is gone; reattach_interval_us: how often an
     * unattached client retries opening the segment (keeps a down pilotd cheap). */
    PilotdClient(std::string segment, uint32_t slot_index, uint64_t stale_after_us,
                 uint64_t reattach_interval_us);
    ~PilotdClient();
    PilotdClient(const PilotdClient &) = delete;
    PilotdClient &operator=(const PilotdClient &) = delete;

    /* Sends req (seq is assigned here) and waits at most timeout_us for the answer.
     * MSG_ESTIMATE: req.text[0, req.text_used) is sent too (text_used must be
     * <= kMaxText); other types send no text. */
    Outcome call(proto::Request &req, proto::Response &resp, int64_t timeout_us) noexcept;

    /* Appends feedback records to this backend's ring; never waits.  Returns
     * how many were accepted (the rest were dropped: ring full, or no pilotd). */
    uint32_t push_feedback(const proto::FeedbackRecord *recs, uint32_t n) noexcept;

    /* Records pushed but never acknowledged because their pilotd was killed
     * (known when this client attaches to its successor); returns the count
     * and resets it. */
    uint64_t take_lost_feedback() noexcept {
        uint64_t n = lost_feedback_;
        lost_feedback_ = 0;
        return n;
    }

    /* Cheap check without sending anything: is pilotd there right now? */
    Outcome probe() noexcept;

    /* The segment's epoch and the generation of this estimator's answers
     * (proto::answers_generation()): answers received while both stay the
     * same are still pilotd's answers.  False when pilotd is not there. */
    bool answers_generation(uint32_t estimator, uint64_t *epoch, uint64_t *generation) noexcept;

    /* Is some model version serving (SegmentHeader::model_serving)?  False
     * when pilotd is not there. */
    bool model_serving() noexcept;

    /* The known-sets filter (proto::known_sets_may_answer()) for n table
     * sets of database dboid: may[i] false when pilotd knows no set of those
     * tables; table set 0 (unknown) is always true, and every set is when
     * model_counts and a model serves dboid.  False (may untouched) when
     * pilotd is not there.  An attached segment's header is checked, without
     * the fstat() of a round trip. */
    bool may_answer(uint32_t dboid, bool model_counts, const uint64_t *table_sets, bool *may, int n) noexcept;

    /* Does pilotd hold the text of key (proto::key_texts_has())?  False when
     * pilotd is not there.  Checked like may_answer(), without an fstat(). */
    bool has_key_text(uint64_t key) noexcept;

    /* Copies the model table (consistent: retried while pilotd rewrites it)
     * into out[0, cap), each row checked with clean_model_info() (bad rows are
     * left out).  Returns the rows copied, or -1 when pilotd is not there or
     * the table never read consistently. */
    int read_models(proto::ModelInfo *out, uint32_t cap) noexcept;

    /* The plan guard's row of a template (proto::guard_lookup()).  False when
     * pilotd is not there or the template has no valid row. */
    bool guard_entry(uint32_t dboid, uint64_t query_id, proto::GuardEntry *out) noexcept;

    /* Row `index` (< kGuardEntries) of the guard table, copied consistently
     * and checked; false when it is empty, invalid, kept changing, or pilotd
     * is not there. */
    bool guard_row(uint32_t index, proto::GuardEntry *out) noexcept;

    /* The segment's state, for status output.  May throw std::bad_alloc (it
     * builds strings): not for the planner path. */
    PilotdInfo info();

    /* Why the client is not attached (empty when it is). */
    const char *last_problem() const noexcept { return last_problem_; }

    void set_stale_after_us(uint64_t v) { stale_after_us_ = v; }
    /* The uid a segment must belong to (default: this process's effective
     * uid, the server's OS user); tests set another to see the refusal. */
    void set_expected_owner(unsigned uid) { expected_owner_ = uid; }

  private:
    struct Mapping;
    Outcome ensure_attached(uint64_t now_us) noexcept;
    /* Attached, for a lookup in the segment's header (the known-sets
     * filter, the key texts): the header checked, no fstat(). */
    bool attached_for_lookup() noexcept;
    void detach() noexcept;
    void note_unacknowledged() noexcept;

    std::string segment_;
    uint32_t slot_index_;
    uint64_t stale_after_us_;
    uint64_t reattach_interval_us_;
    unsigned expected_owner_;
    std::unique_ptr<Mapping> map_;
    uint64_t last_attempt_us_ = 0;
    Outcome last_outcome_ = Outcome::PILOTD_DOWN;
    /* why not attached; a fixed buffer: nothing on these paths may allocate,
     * since the functions are noexcept and run inside PostgreSQL backends */
    char last_problem_[160] = "not attached yet";
    void set_problem(const char *a, const char *b = "") noexcept;
    uint64_t seq_ = 0;
    uint64_t lost_feedback_ = 0;
    uint64_t orphan_epoch_ = 0; /* the segment we left with records unacknowledged */
    uint64_t orphan_count_ = 0;
    /* the ring's head after our last push and the tail we saw then: what a
     * truncated segment (unreadable) may have held unacknowledged */
    uint64_t pushed_head_ = 0;
    uint64_t seen_tail_ = 0;
};

} // namespace pilot

#endif
