/* pilotd_client.cpp — attach, validate, send, wait; see pilotd_client.h. */
#include "pilotd_client.h"

#include "futex.h"
#include "segment_guard.h"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bip = boost::interprocess;

namespace pilot {

using namespace proto;

/* How long call() polls for the answer before it sleeps on the futex. */
constexpr uint64_t kSpinUs = 30;

const char *outcome_name(Outcome o) {
    switch (o) {
    case Outcome::OK: return "ok";
    case Outcome::PILOTD_DOWN: return "daemon_down";
    case Outcome::VERSION_MISMATCH: return "version_mismatch";
    case Outcome::NO_SLOT: return "no_slot";
    case Outcome::SLOT_BUSY: return "slot_busy";
    case Outcome::TIMEOUT: return "timeout";
    case Outcome::INVALID: return "invalid";
    case Outcome::REFUSED: return "refused";
    }
    return "unknown";
}

struct PilotdClient::Mapping {
    bip::shared_memory_object shm;
    bip::mapped_region region;
    SegmentHeader *header = nullptr;
    uint64_t size = 0;
    uint64_t epoch = 0;
    uint32_t nslots = 0; /* as validated at attach: the header may change under us */
};

PilotdClient::PilotdClient(std::string segment, uint32_t slot_index, uint64_t stale_after_us,
                           uint64_t reattach_interval_us)
    : segment_(std::move(segment)), slot_index_(slot_index), stale_after_us_(stale_after_us),
      reattach_interval_us_(reattach_interval_us), expected_owner_(geteuid()) {
    /* seq values must differ from any earlier process that used this slot */
    seq_ = (static_cast<uint64_t>(getpid()) << 32) ^ (monotonic_us() << 8);
}

PilotdClient::~PilotdClient() { detach(); }

void PilotdClient::set_problem(const char *a, const char *b) noexcept {
    snprintf(last_problem_, sizeof last_problem_, "%s%s", a ? a : "", b ? b : "");
}

void PilotdClient::detach() noexcept {
    segment_guard_disarm();
    try {
        map_.reset();
    } catch (...) {
        map_.release(); /* leak rather than throw */
    }
}

/* pilotd was killed: its pid is gone and its heartbeat stopped (the heartbeat
 * condition keeps a pilotd in another pid namespace usable) */
static bool pilotd_dead(const SegmentHeader *h, uint64_t now_us) {
    if (h->pilotd_pid == 0 || kill(static_cast<pid_t>(h->pilotd_pid), 0) == 0 || errno != ESRCH)
        return false;
    uint64_t hb = h->heartbeat_us.load(std::memory_order_acquire);
    uint64_t limit = 4ull * h->heartbeat_interval_ms * 1000;
    if (limit < 100000)
        limit = 100000;
    return now_us > hb && now_us - hb > limit;
}

static Outcome outcome_for(HeaderCheck c) {
    switch (c) {
    case HDR_OK: return Outcome::OK;
    case HDR_BAD_MAGIC:
    case HDR_BAD_VERSION:
    case HDR_BAD_LAYOUT: return Outcome::VERSION_MISMATCH;
    default: return Outcome::PILOTD_DOWN;
    }
}

Outcome PilotdClient::ensure_attached(uint64_t now_us) noexcept {
    if (map_) {
        /* Shrunk under us (never pilotd's doing: a restarted pilotd makes a
         * new segment): the lost pages would fault with SIGBUS, so leave
         * without reading anything in it.  One fstat() per use. */
        bip::offset_t now_size = 0;
        if (segment_guard_tripped() || !map_->shm.get_size(now_size) ||
            now_size < static_cast<bip::offset_t>(map_->size)) {
            set_problem(header_check_name(HDR_TOO_SMALL));
            /* no one can read the ring any more: lost now (not at the next
             * attach: this backend may exit first) is what it held at our
             * last push, at most; pilotd may have acknowledged some since,
             * so lost is counted high, never low */
            uint64_t held = pushed_head_ >= seen_tail_ ? pushed_head_ - seen_tail_ : 0;
            lost_feedback_ += held < kFeedbackRing ? held : kFeedbackRing;
            orphan_count_ = 0;
            detach();
            last_attempt_us_ = now_us;
            return last_outcome_ = Outcome::PILOTD_DOWN;
        }
        HeaderCheck c = validate_header(map_->header, map_->size, now_us, stale_after_us_);
        if (c == HDR_OK)
            return Outcome::OK;
        /* a restarted pilotd lives in a new segment under the same name */
        set_problem(header_check_name(c));
        note_unacknowledged();
        last_outcome_ = outcome_for(c);
        detach();
        last_attempt_us_ = 0; /* try the new segment at once */
    }
    if (last_attempt_us_ != 0 && now_us - last_attempt_us_ < reattach_interval_us_)
        return last_outcome_;
    last_attempt_us_ = now_us;
    if (segment_.empty()) {
        set_problem("no segment name (data directory unresolved)");
        return last_outcome_ = Outcome::PILOTD_DOWN;
    }
    try {
        std::unique_ptr<Mapping> m(new Mapping());
        m->shm = bip::shared_memory_object(bip::open_only, segment_.c_str(), bip::read_write);
        /* Only a segment of the server's own OS user, closed to others: the
         * name is predictable, and a segment someone else created first
         * would let them choose our estimates and read our feedback. */
        struct stat st;
        if (fstat(m->shm.get_mapping_handle().handle, &st) != 0) {
            set_problem("cannot stat the segment: ", strerror(errno));
            return last_outcome_ = Outcome::PILOTD_DOWN;
        }
        if (st.st_uid != expected_owner_) {
            snprintf(last_problem_, sizeof last_problem_,
                     "segment owned by uid %u, not by the server's user (uid %u): refused",
                     static_cast<unsigned>(st.st_uid), static_cast<unsigned>(expected_owner_));
            return last_outcome_ = Outcome::PILOTD_DOWN;
        }
        if ((st.st_mode & 077) != 0) {
            snprintf(last_problem_, sizeof last_problem_,
                     "segment accessible to other users (mode %04o): refused", static_cast<unsigned>(st.st_mode & 07777));
            return last_outcome_ = Outcome::PILOTD_DOWN;
        }
        bip::offset_t size = 0;
        if (!m->shm.get_size(size) || size < static_cast<bip::offset_t>(sizeof(SegmentHeader))) {
            set_problem(header_check_name(HDR_TOO_SMALL));
            return last_outcome_ = Outcome::VERSION_MISMATCH;
        }
        m->region = bip::mapped_region(m->shm, bip::read_write, 0, static_cast<size_t>(size));
        m->size = static_cast<uint64_t>(size);
        m->header = static_cast<SegmentHeader *>(m->region.get_address());
        HeaderCheck c = validate_header(m->header, m->size, now_us, stale_after_us_);
        if (c != HDR_OK) {
            set_problem(header_check_name(c));
            return last_outcome_ = outcome_for(c);
        }
        if (pilotd_dead(m->header, now_us)) {
            set_problem("pilotd process is gone");
            return last_outcome_ = Outcome::PILOTD_DOWN;
        }
        m->epoch = m->header->epoch;
        m->nslots = m->header->nslots;
        if (orphan_count_ > 0 && m->epoch != orphan_epoch_)
            lost_feedback_ += orphan_count_;
        orphan_count_ = 0;
        pushed_head_ = seen_tail_ = 0;
        /* a truncation in the middle of a round trip: zero pages, not SIGBUS */
        segment_guard_arm(m->region.get_address(), static_cast<size_t>(m->size));
        map_ = std::move(m);
        last_problem_[0] = '\0';
        return last_outcome_ = Outcome::OK;
    } catch (const std::exception &e) {
        set_problem("cannot open segment: ", e.what());
    } catch (...) {
        set_problem("cannot open segment");
    }
    return last_outcome_ = Outcome::PILOTD_DOWN;
}

/* Records still in our ring when we leave a segment are not acknowledged
 * yet.  Whether they ever will be is known at the next attach: a pilotd of
 * the same epoch still has them (it was only late); a new epoch means the
 * old pilotd is gone (killed: a clean stop drains the rings first), and they
 * are counted as lost, so that every record sent is either acknowledged or
 * counted. */
void PilotdClient::note_unacknowledged() noexcept {
    orphan_epoch_ = map_->epoch;
    orphan_count_ = 0;
    if (slot_index_ >= map_->nslots)
        return;
    const FeedbackRing &ring = slot_at(map_->header, slot_index_)->feedback;
    uint64_t head = ring.head.load(std::memory_order_acquire);
    uint64_t tail = ring.tail.load(std::memory_order_acquire);
    if (head >= tail && head - tail <= kFeedbackRing)
        orphan_count_ = head - tail;
}

Outcome PilotdClient::probe() noexcept { return ensure_attached(monotonic_us()); }

bool PilotdClient::answers_generation(uint32_t estimator, uint64_t *epoch, uint64_t *generation) noexcept {
    if (ensure_attached(monotonic_us()) != Outcome::OK)
        return false;
    const SegmentHeader *h = map_->header;
    *generation = proto::answers_generation(h, estimator);
    *epoch = h->epoch;
    return true;
}

bool PilotdClient::may_answer(uint32_t dboid, bool model_counts, const uint64_t *table_sets, bool *may,
                              int n) noexcept {
    if (!attached_for_lookup())
        return false;
    const KnownSets &k = map_->header->known_sets;
    const bool all = model_counts && known_sets_may_answer(k, model_database_mark(dboid));
    for (int i = 0; i < n; i++)
        may[i] = all || table_sets[i] == 0 || known_sets_may_answer(k, table_sets[i]);
    return true;
}

bool PilotdClient::has_key_text(uint64_t key) noexcept {
    return attached_for_lookup() && key_texts_has(map_->header->key_texts, key);
}

bool PilotdClient::attached_for_lookup() noexcept {
    /* no fstat() per call (GEQO asks per set): an attached segment stays
     * mapped; only its header is checked (a pilotd that stopped or went
     * stale is looked for again, in a new segment) */
    const uint64_t now = monotonic_us();
    if (map_ && validate_header(map_->header, map_->size, now, stale_after_us_) == HDR_OK)
        return true;
    return ensure_attached(now) == Outcome::OK;
}

bool PilotdClient::model_serving() noexcept {
    if (ensure_attached(monotonic_us()) != Outcome::OK)
        return false;
    return map_->header->model_serving.load(std::memory_order_acquire) != 0;
}

bool PilotdClient::guard_entry(uint32_t dboid, uint64_t query_id, GuardEntry *out) noexcept {
    if (ensure_attached(monotonic_us()) != Outcome::OK)
        return false;
    return guard_lookup(map_->header->guard, dboid, query_id, out);
}

bool PilotdClient::guard_row(uint32_t index, GuardEntry *out) noexcept {
    if (index >= kGuardEntries || ensure_attached(monotonic_us()) != Outcome::OK)
        return false;
    return guard_copy_row(map_->header->guard.entries[index], out, 100) && guard_entry_valid(*out);
}

int PilotdClient::read_models(ModelInfo *out, uint32_t cap) noexcept {
    if (ensure_attached(monotonic_us()) != Outcome::OK)
        return -1;
    const ModelTable &t = map_->header->models;
    ModelInfo copy[kMaxModels]; /* ~6 KB */
    for (int attempt = 0; attempt < 1000; attempt++) {
        uint32_t s1 = t.seq.load(std::memory_order_acquire);
        if (s1 & 1) {
            if (attempt > 10)
                usleep(100);
            continue;
        }
        uint32_t count = t.count;
        memcpy(static_cast<void *>(copy), t.models, sizeof copy);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (t.seq.load(std::memory_order_relaxed) != s1)
            continue;
        if (count > kMaxModels)
            return -1; /* garbage */
        uint32_t n = 0;
        for (uint32_t i = 0; i < count && n < cap; i++) {
            ModelInfo m = copy[i];
            if (clean_model_info(m))
                out[n++] = m;
        }
        return static_cast<int>(n);
    }
    return -1;
}

uint32_t PilotdClient::push_feedback(const FeedbackRecord *recs, uint32_t n) noexcept {
    if (n == 0 || ensure_attached(monotonic_us()) != Outcome::OK || slot_index_ >= map_->nslots)
        return 0;
    FeedbackRing &ring = slot_at(map_->header, slot_index_)->feedback;
    uint64_t head = ring.head.load(std::memory_order_relaxed);
    uint64_t tail = ring.tail.load(std::memory_order_acquire);
    uint32_t accepted = 0;
    if (tail > head || head - tail > kFeedbackRing)
        tail = head - kFeedbackRing; /* garbage from the other side: treat as full */
    for (uint32_t i = 0; i < n; i++) {
        if (head - tail >= kFeedbackRing)
            break;
        ring.rec[head % kFeedbackRing] = recs[i];
        head++;
        accepted++;
    }
    ring.head.store(head, std::memory_order_release);
    if (segment_guard_tripped())
        return 0; /* truncated under us: those were zero pages; keep what the ring held before */
    pushed_head_ = head;
    seen_tail_ = tail;
    if (accepted < n)
        ring.dropped.fetch_add(n - accepted, std::memory_order_relaxed);
    return accepted;
}

Outcome PilotdClient::call(Request &req, Response &resp, int64_t timeout_us) noexcept {
    if (req.count > kMaxItems || (req.type == MSG_ESTIMATE && req.text_used > kMaxText))
        return Outcome::INVALID; /* caller error: split batches of kMaxItems */
    uint64_t start = monotonic_us();
    Outcome o = ensure_attached(start);
    if (o != Outcome::OK)
        return o;
    SegmentHeader *h = map_->header;
    if (slot_index_ >= map_->nslots || h->nslots != map_->nslots)
        return slot_index_ >= map_->nslots ? Outcome::NO_SLOT : Outcome::VERSION_MISMATCH;
    Slot *slot = slot_at(h, slot_index_);

    /* take the slot: ours from any state but BUSY (see pilot_protocol.h) */
    uint32_t s = slot->state.load(std::memory_order_acquire);
    if (s == SLOT_BUSY || !slot->state.compare_exchange_strong(s, SLOT_WRITING,
                                                               std::memory_order_acq_rel))
        return Outcome::SLOT_BUSY;

    req.seq = ++seq_;
    uint32_t n = req.count <= kMaxItems ? req.count : kMaxItems;
    Request &dst = slot->req;
    dst.seq = req.seq;
    dst.session = req.session;
    dst.type = req.type;
    dst.estimator = req.estimator;
    dst.count = n;
    dst.flags = req.flags;
    dst.dboid = req.dboid;
    if (req.type == MSG_ORACLE_ADD)
        memcpy(dst.entries, req.entries, n * sizeof(OracleEntry));
    else if (req.type == MSG_ADVISOR)
        memcpy(&dst.advisor, &req.advisor, sizeof(AdvisorJob));
    else
        memcpy(dst.items, req.items, n * sizeof(EstimateItem));
    /* only the used part of the text area: usually a few KB of 64 */
    uint32_t tu = req.type == MSG_ESTIMATE ? req.text_used : 0;
    dst.text_used = tu;
    if (tu > 0)
        memcpy(dst.text, req.text, tu);
    slot->owner_pid.store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed);
    slot->state.store(SLOT_PENDING, std::memory_order_release);
    h->pending[slot_index_ / 64].fetch_or(uint64_t{1} << (slot_index_ % 64), std::memory_order_seq_cst);

    h->doorbell.fetch_add(1, std::memory_order_seq_cst);
    if (h->sleeping_workers.load(std::memory_order_seq_cst) > 0)
        futex_wake(&h->doorbell, 1);

    /* wait: short spin (answers usually take a few microseconds), then futex
     * sleeps of at most 1 ms so a stopping or dead pilotd is noticed early */
    uint64_t deadline = start + static_cast<uint64_t>(timeout_us > 0 ? timeout_us : 0);
    for (;;) {
        s = slot->state.load(std::memory_order_acquire);
        if (s == SLOT_DONE)
            break;
        uint64_t now = monotonic_us();
        if (now >= deadline) {
            uint32_t expect = SLOT_PENDING; /* withdraw if pilotd has not picked it up */
            slot->state.compare_exchange_strong(expect, SLOT_FREE, std::memory_order_acq_rel);
            if (pilotd_dead(h, monotonic_us())) {
                set_problem("pilotd process is gone");
                detach();
                last_attempt_us_ = 0;
                return Outcome::PILOTD_DOWN;
            }
            return Outcome::TIMEOUT;
        }
        uint64_t hb = h->heartbeat_us.load(std::memory_order_acquire);
        if (h->pilotd_state.load(std::memory_order_acquire) != PILOTD_READY ||
            (now > hb && now - hb > stale_after_us_)) {
            uint32_t expect = SLOT_PENDING;
            slot->state.compare_exchange_strong(expect, SLOT_FREE, std::memory_order_acq_rel);
            return Outcome::PILOTD_DOWN;
        }
        /* poll first: an awake pilotd answers in a few microseconds, a futex
         * sleep costs a wake-up of tens */
        if (now - start < kSpinUs) {
            for (int i = 0; i < 32; i++) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
            continue;
        }
        uint64_t left = deadline - now;
        futex_wait(&slot->state, s, static_cast<int64_t>(left < 1000 ? left : 1000));
    }

    /* copy the response out before validating: the other side may be garbage */
    const Response &src = slot->resp;
    resp.seq = src.seq;
    resp.status = src.status;
    resp.count = src.count;
    resp.oracle_entries = src.oracle_entries;
    uint32_t rc = resp.count <= kMaxItems ? resp.count : 0;
    memcpy(resp.answers, src.answers, rc * sizeof(EstimateAnswer));
    uint32_t done = SLOT_DONE;
    slot->state.compare_exchange_strong(done, SLOT_FREE, std::memory_order_acq_rel);

    if (!validate_response(req, resp))
        return Outcome::INVALID;
    if (resp.status != ST_OK)
        return Outcome::REFUSED;
    return Outcome::OK;
}

PilotdInfo PilotdClient::info() {
    PilotdInfo d;
    d.segment = segment_;
    uint64_t now = monotonic_us();
    last_attempt_us_ = 0; /* an explicit status request always looks again */
    if (ensure_attached(now) != Outcome::OK) {
        d.last_problem = last_problem_;
        return d;
    }
    const SegmentHeader *h = map_->header;
    d.attached = true;
    d.version = h->version;
    d.nslots = h->nslots;
    d.pilotd_pid = h->pilotd_pid;
    d.epoch = h->epoch;
    uint64_t hb = h->heartbeat_us.load(std::memory_order_acquire);
    d.heartbeat_age_us = now > hb ? now - hb : 0;
    d.started_at_unix = h->started_at_unix;
    d.requests = h->counters.requests.load(std::memory_order_relaxed);
    d.items = h->counters.items.load(std::memory_order_relaxed);
    d.answered = h->counters.answered.load(std::memory_order_relaxed);
    d.bad_requests = h->counters.bad_requests.load(std::memory_order_relaxed);
    d.oracle_entries = h->counters.oracle_entries.load(std::memory_order_relaxed);
    d.feedback_received = h->counters.feedback_received.load(std::memory_order_relaxed);
    d.feedback_invalid = h->counters.feedback_invalid.load(std::memory_order_relaxed);
    d.memo_entries = h->counters.memo_entries.load(std::memory_order_relaxed);
    d.key_texts = h->key_texts.count.load(std::memory_order_relaxed);
    const PilotdCounters &c = h->counters;
    d.feedback_queued = c.feedback_queued.load(std::memory_order_relaxed);
    d.spool_appended = c.spool_appended.load(std::memory_order_relaxed);
    {
        uint64_t w = c.store_watermark.load(std::memory_order_acquire);
        uint64_t next = c.spool_next_seq.load(std::memory_order_acquire);
        d.spool_pending = next > w ? next - w : 0;
    }
    d.store_committed = c.store_committed.load(std::memory_order_relaxed);
    d.store_replayed = c.store_replayed.load(std::memory_order_relaxed);
    d.store_dead_letter = c.store_dead_letter.load(std::memory_order_relaxed);
    d.store_failures = c.store_failures.load(std::memory_order_relaxed);
    d.store_state = c.store_state.load(std::memory_order_relaxed);
    /* the error text is written under a sequence counter (odd: being
     * written); pilotd's bytes are cleaned like any other input */
    for (int attempt = 0; attempt < 4; attempt++) {
        uint32_t s1 = c.store_error_seq.load(std::memory_order_acquire);
        char buf[sizeof c.store_error];
        memcpy(buf, c.store_error, sizeof buf);
        std::atomic_thread_fence(std::memory_order_acquire);
        if ((s1 & 1) == 0 && c.store_error_seq.load(std::memory_order_relaxed) == s1) {
            const void *nul = memchr(buf, '\0', sizeof buf);
            size_t len = nul ? static_cast<size_t>(static_cast<const char *>(nul) - buf) : sizeof buf;
            char clean[sizeof buf];
            copy_clean_utf8(clean, sizeof clean, buf, len);
            d.store_error = clean;
            break;
        }
    }
    {
        ModelInfo models[kMaxModels];
        int n = read_models(models, kMaxModels);
        d.models = n < 0 ? UINT32_MAX : static_cast<uint32_t>(n);
        for (int i = 0; i < n; i++)
            if (models[i].state == MODEL_SERVING)
                d.serving_version = models[i].version;
    }
    return d;
}

} // namespace pilot
