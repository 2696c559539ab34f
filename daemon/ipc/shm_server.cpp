/* shm_server.cpp — see shm_server.h. */
#include "shm_server.h"

#include "futex.h"
#include "log.h"
#include "process_util.h"
#include "segment_guard.h"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace bip = boost::interprocess;

namespace pilotd {

using namespace pilot::proto;
using pilot::futex_wait;
using pilot::futex_wake;
using pilot::segment_guard_arm;
using pilot::segment_guard_disarm;
using pilot::segment_guard_tripped;

namespace {

constexpr int64_t kWorkerIdleWaitUs = 100 * 1000;
/* After serving, one worker at a time polls the doorbell this long before it
 * sleeps: a planning asks in bursts (base relations, then joins), and a sleeping
 * worker costs each round trip a futex wake-up (tens of microseconds). */
constexpr uint64_t kWorkerSpinUs = 200;

uint64_t random_epoch() {
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, &v, sizeof v);
        close(fd);
        if (r != static_cast<ssize_t>(sizeof v))
            v = 0;
    }
    if (v == 0) /* no /dev/urandom: still different per start */
        v = stable_hash64(nullptr, 0, monotonic_us() ^ (static_cast<uint64_t>(getpid()) << 40));
    return v == 0 ? 1 : v;
}

std::string shm_path(const std::string &name) { return "/dev/shm/" + name; }

} // namespace

ShmServer::ShmServer(ShmServerOptions opt, RequestHandler &handler) : opt_(std::move(opt)), handler_(handler) {}

ShmServer::~ShmServer() { stop(); }

void ShmServer::create_segment() {
    const std::string &name = opt_.segment;
    if (name.empty())
        throw std::runtime_error("no segment name");
    if (opt_.nslots == 0 || opt_.nslots > kMaxSlots)
        throw std::runtime_error("slots must be 1.." + std::to_string(kMaxSlots));
    size_ = segment_size(opt_.nslots);

    /* the name is predictable: one that another user created first is not
     * ours to replace (and backends refuse it) */
    struct stat existing;
    if (lstat(shm_path(name).c_str(), &existing) == 0 && existing.st_uid != geteuid())
        throw std::runtime_error(shm_path(name) + " exists and belongs to " + describe_uid(existing.st_uid) +
                                 ", not to " + describe_uid(geteuid()) +
                                 ": someone may be trying to intercept pg_pilot; find out who created it, "
                                 "then remove it as root");
    /* a segment left by a killed pilotd: backends still mapping it see its
     * heartbeat go stale and re-attach to ours */
    if (bip::shared_memory_object::remove(name.c_str()))
        LOG_INFO("removed stale segment %s", name.c_str());

    const std::string tmp = name + ".init." + std::to_string(getpid());
    bip::shared_memory_object::remove(tmp.c_str());
    bip::permissions perm;
    perm.set_permissions(0600);
    try {
        shm_.reset(new bip::shared_memory_object(bip::create_only, tmp.c_str(), bip::read_write, perm));
    } catch (const bip::interprocess_exception &e) {
        throw std::runtime_error("cannot create shared memory segment " + tmp + ": " + e.what());
    }
    try {
        /* owner only, whatever umask or boost did */
        int fd = shm_->get_mapping_handle().handle;
        if (fchmod(fd, 0600) != 0)
            throw std::runtime_error(std::string("cannot chmod the segment to 0600: ") + strerror(errno));
        shm_->truncate(static_cast<bip::offset_t>(size_));
        /* reserve the pages now (zero-filled), so a full /dev/shm is an error
         * here and not a SIGBUS later */
        int rc = posix_fallocate(fd, 0, static_cast<off_t>(size_));
        if (rc != 0)
            throw std::runtime_error("cannot allocate " + std::to_string(size_ >> 20) +
                                     " MB of shared memory for " + std::to_string(opt_.nslots) +
                                     " slots: " + strerror(rc) + " (is /dev/shm large enough?)");
        region_.reset(new bip::mapped_region(*shm_, bip::read_write, 0, static_cast<size_t>(size_)));
        void *base = region_->get_address();
        segment_guard_arm(base, static_cast<size_t>(size_));
        memset(base, 0, static_cast<size_t>(size_));
        header_ = static_cast<SegmentHeader *>(base);

        SegmentHeader *h = header_;
        h->version = opt_.protocol_version;
        h->header_size = sizeof(SegmentHeader);
        h->slot_size = sizeof(Slot);
        h->nslots = opt_.nslots;
        h->total_size = size_;
        epoch_ = random_epoch();
        h->epoch = epoch_;
        h->pilotd_pid = static_cast<uint32_t>(getpid());
        h->heartbeat_interval_ms = opt_.heartbeat_ms;
        h->started_at_unix = static_cast<uint64_t>(time(nullptr));
        h->heartbeat_us.store(monotonic_us(), std::memory_order_relaxed);
        h->doorbell.store(0, std::memory_order_relaxed);
        h->sleeping_workers.store(0, std::memory_order_relaxed);
        for (uint32_t i = 0; i < opt_.nslots; i++) {
            slot_at(h, i)->state.store(SLOT_FREE, std::memory_order_relaxed);
            slot_at(h, i)->owner_pid.store(0, std::memory_order_relaxed);
        }
        h->magic = kMagic;
        h->pilotd_state.store(PILOTD_READY, std::memory_order_release);
    } catch (...) {
        segment_guard_disarm();
        region_.reset();
        shm_.reset();
        header_ = nullptr;
        bip::shared_memory_object::remove(tmp.c_str());
        throw;
    }
}

void ShmServer::start() {
    create_segment();
    const std::string tmp = opt_.segment + ".init." + std::to_string(getpid());
    try {
        heartbeat_ = std::thread([this] { heartbeat_loop(); });
        feedback_ = std::thread([this] { feedback_loop(); });
        for (uint32_t i = 0; i < opt_.workers; i++)
            workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (const std::exception &e) {
        stop();
        bip::shared_memory_object::remove(tmp.c_str());
        throw std::runtime_error(std::string("cannot start threads: ") + e.what());
    }
    if (opt_.before_publish) {
        try {
            opt_.before_publish(header_);
        } catch (...) {
            stop();
            bip::shared_memory_object::remove(tmp.c_str());
            throw;
        }
    }
    /* publish: backends can open it from now on */
    header_->heartbeat_us.store(monotonic_us(), std::memory_order_release);
    if (rename(shm_path(tmp).c_str(), shm_path(opt_.segment).c_str()) != 0) {
        int err = errno;
        stop();
        bip::shared_memory_object::remove(tmp.c_str());
        throw std::runtime_error("cannot publish the segment (rename " + shm_path(tmp) + " to " +
                                 shm_path(opt_.segment) + "): " + strerror(err));
    }
    published_ = true;
    struct stat st;
    if (stat(shm_path(opt_.segment).c_str(), &st) == 0 && (st.st_mode & 077) != 0 &&
        chmod(shm_path(opt_.segment).c_str(), 0600) != 0)
        LOG_WARNING("cannot chmod %s to 0600: %s", shm_path(opt_.segment).c_str(), strerror(errno));
}

bool ShmServer::sleep_unless_stopping(uint32_t ms) {
    std::unique_lock<std::mutex> lk(stop_mu_);
    return !stop_cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stopping_.load(); });
}

void ShmServer::heartbeat_loop() noexcept {
    const uint64_t interval_us = static_cast<uint64_t>(opt_.heartbeat_ms) * 1000;
    uint64_t last = monotonic_us();
    for (;;) {
        uint64_t now = monotonic_us();
        header_->heartbeat_us.store(now, std::memory_order_release);
        if (now - last > 50 * interval_us + 1000000 && heartbeat_late_logged_.fetch_add(1) < 10)
            LOG_WARNING("heartbeat was %llu ms late (machine overloaded or pilotd suspended?)",
                        static_cast<unsigned long long>((now - last) / 1000));
        last = now;
        const std::string damage = segment_damage();
        if (!damage.empty()) {
            /* backends already refuse it (they validate the header and the
             * size on every use); a new segment needs a new pilotd */
            LOG_ERROR("segment %s was damaged by another process: %s; pilotd shuts down so that its restart "
                      "creates a new one (backends plan natively meanwhile)",
                      opt_.segment.c_str(), damage.c_str());
            damaged_.store(true);
            kill(getpid(), SIGTERM);
            return;
        }
        if (!sleep_unless_stopping(opt_.heartbeat_ms))
            return;
    }
}

/* What another process did to the segment, or "" (only pilotd writes the
 * header's layout fields, once, before publishing). */
std::string ShmServer::segment_damage() const {
    struct stat st;
    if (fstat(shm_->get_mapping_handle().handle, &st) == 0) {
        if (static_cast<uint64_t>(st.st_size) < size_)
            return "truncated to " + std::to_string(st.st_size) + " of " + std::to_string(size_) + " bytes";
        if ((st.st_mode & 077) != 0) {
            char mode[8];
            snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
            return std::string("opened to other users (mode ") + mode + ")";
        }
    }
    if (segment_guard_tripped())
        return "an access past its end faulted (it was truncated)";
    const SegmentHeader *h = header_;
    if (h->magic != kMagic || h->version != opt_.protocol_version || h->header_size != sizeof(SegmentHeader) ||
        h->slot_size != sizeof(Slot) || h->nslots != opt_.nslots || h->total_size != size_ || h->epoch != epoch_ ||
        h->pilotd_pid != static_cast<uint32_t>(getpid()))
        return "its header was overwritten";
    return "";
}

/* Records of several rings, acknowledged together (one fdatasync). */
struct ShmServer::DrainBatch {
    static constexpr uint32_t kRecords = 32 * kFeedbackRing; /* kDrainBatch */
    std::unique_ptr<FeedbackRecord[]> rec{new FeedbackRecord[kRecords]};   /* valid: 512 KB */
    std::unique_ptr<FeedbackRecord[]> dead{new FeedbackRecord[kRecords]};  /* failed feedback_check() */
    std::unique_ptr<uint32_t[]> dead_reason{new uint32_t[kRecords]};
    uint32_t n = 0;
    uint32_t ndead = 0;
    uint64_t bad_rings = 0;
    uint64_t seen = 0;  /* records found in the rings this round */
    uint64_t acked = 0; /* of those, acknowledged */
    struct Ack {
        FeedbackRing *ring;
        uint64_t head;
    };
    std::vector<Ack> acks; /* rings whose tail moves to head on success */
};

void ShmServer::feedback_loop() noexcept {
    std::unique_ptr<DrainBatch> b;
    try {
        b.reset(new DrainBatch);
        b->acks.reserve(opt_.nslots);
    } catch (...) {
        LOG_ERROR("feedback thread: out of memory; no feedback is collected");
        return;
    }
    const uint32_t interval = opt_.feedback_interval_ms ? opt_.feedback_interval_ms : 1;
    do {
        drain_feedback_once(*b, false);
        if (opt_.after_drain)
            opt_.after_drain();
    } while (sleep_unless_stopping(interval));
    /* clean stop: backends no longer push (PILOTD_STOPPING); what is in the
     * rings is acknowledged now rather than lost with the segment */
    drain_feedback_once(*b, true);
}

/* Hands the batch over; on acceptance gives the rings' slots back. */
bool ShmServer::flush_batch(DrainBatch &b) noexcept {
    if (segment_guard_tripped()) {
        /* copied (partly) from zero pages after a truncation: not records;
         * the backends count what their rings held as lost */
        b.n = b.ndead = 0;
        b.acks.clear();
        return true;
    }
    PilotdCounters &ctr = header_->counters;
    FeedbackBatch fb{b.rec.get(), b.n, b.dead.get(), b.dead_reason.get(), b.ndead};
    bool ok = (b.n == 0 && b.ndead == 0) || !opt_.on_feedback || opt_.on_feedback(fb);
    if (ok) {
        for (const DrainBatch::Ack &a : b.acks)
            a.ring->tail.store(a.head, std::memory_order_release);
        if (b.ndead + b.bad_rings)
            ctr.feedback_invalid.fetch_add(b.ndead + b.bad_rings, std::memory_order_relaxed);
        if (b.n)
            ctr.feedback_received.fetch_add(b.n, std::memory_order_relaxed);
        b.acked += b.n + b.ndead;
    }
    b.n = 0;
    b.ndead = 0;
    b.bad_rings = 0;
    b.acks.clear();
    return ok;
}

void ShmServer::drain_feedback_once(DrainBatch &b, bool final) noexcept {
    SegmentHeader *h = header_;
    PilotdCounters &ctr = h->counters;
    b.seen = 0;
    b.acked = 0;
    bool accepted = true;
    for (uint32_t i = 0; i < opt_.nslots && (final || !stopping_.load(std::memory_order_relaxed)); i++) {
        FeedbackRing &ring = slot_at(h, i)->feedback;
        const uint64_t tail = ring.tail.load(std::memory_order_relaxed);
        const uint64_t head = ring.head.load(std::memory_order_acquire);
        if (head == tail)
            continue;
        if (head < tail || head - tail > kFeedbackRing) {
            /* garbage indices (a broken or hostile writer): give up on whatever
             * is in the ring; the backend continues at head */
            ring.tail.store(head, std::memory_order_release);
            ctr.feedback_invalid.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        b.seen += head - tail;
        if (!accepted)
            continue; /* only counting the queue */
        if ((b.n + kFeedbackRing > DrainBatch::kRecords || b.ndead + kFeedbackRing > DrainBatch::kRecords) &&
            !flush_batch(b)) {
            accepted = false; /* not accepted: the rest waits for the next round */
            continue;
        }
        for (uint64_t k = tail; k != head; k++) {
            /* copy first: the other side may change it while we look */
            FeedbackRecord r;
            memcpy(static_cast<void *>(&r), static_cast<const void *>(&ring.rec[k % kFeedbackRing]), sizeof r);
            FeedbackCheck c = feedback_check(r);
            if (c == FBC_OK) {
                b.rec[b.n++] = r;
            } else {
                /* kept for the dead-letter table, never silently away */
                b.dead_reason[b.ndead] = c;
                b.dead[b.ndead++] = r;
            }
        }
        /* the records stay in the ring (tail unchanged) until accepted */
        b.acks.push_back({&ring, head}); /* reserved: nslots */
    }
    if (accepted)
        flush_batch(b);
    ctr.feedback_queued.store(b.seen - b.acked, std::memory_order_relaxed);
}

void ShmServer::worker_loop(uint32_t index) noexcept {
    /* private copies of a request and its response (~12 KB: not on the stack) */
    std::unique_ptr<Request> req;
    std::unique_ptr<Response> resp;
    try {
        req.reset(new Request());
        resp.reset(new Response());
    } catch (...) {
        LOG_ERROR("worker %u: out of memory, not started", index);
        return;
    }
    SegmentHeader *h = header_;
    const uint32_t start = static_cast<uint32_t>(static_cast<uint64_t>(index) * opt_.nslots /
                                                 (opt_.workers ? opt_.workers : 1));
    LOG_DEBUG("worker %u started (first slot %u)", index, start);
    bool full_scan = true; /* at start and after an idle wait: see SegmentHeader::pending */
    while (!stopping_.load(std::memory_order_acquire)) {
        bool found = false;
        uint32_t v = h->doorbell.load(std::memory_order_seq_cst);
        try {
            found = serve_pending(*req, *resp);
            if (full_scan)
                found = scan_once(start, *req, *resp) || found;
            full_scan = false;
        } catch (const std::exception &e) {
            LOG_ERROR("worker %u: %s (still serving)", index, e.what());
            full_scan = true; /* a request taken from the bitmap may be left */
        } catch (...) {
            LOG_ERROR("worker %u: unknown exception (still serving)", index);
            full_scan = true;
        }
        if (found)
            continue;
        if (spin_for_work(v))
            continue;
        h->sleeping_workers.fetch_add(1, std::memory_order_seq_cst);
        if (h->doorbell.load(std::memory_order_seq_cst) == v && !stopping_.load(std::memory_order_acquire))
            full_scan = !futex_wait(&h->doorbell, v, kWorkerIdleWaitUs); /* idle: a full scan */
        h->sleeping_workers.fetch_sub(1, std::memory_order_seq_cst);
    }
    LOG_DEBUG("worker %u stopped", index);
}

/* Polls the doorbell for kWorkerSpinUs if no other worker is polling; true when
 * it rang (work may be waiting).  Bounded, and one spinner at most, so an idle
 * pilotd takes no CPU and a busy machine loses at most one core briefly. */
bool ShmServer::spin_for_work(uint32_t seen) noexcept {
    bool expected = false;
    if (!spinning_.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
        return false;
    const uint64_t until = monotonic_us() + kWorkerSpinUs;
    bool rang = false;
    for (uint32_t i = 0; !stopping_.load(std::memory_order_relaxed); i++) {
        if (header_->doorbell.load(std::memory_order_acquire) != seen) {
            rang = true;
            break;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if ((i & 63) == 63 && monotonic_us() >= until)
            break;
    }
    spinning_.store(false, std::memory_order_release);
    return rang;
}

bool ShmServer::serve_pending(Request &req, Response &resp) {
    SegmentHeader *h = header_;
    const uint32_t n = opt_.nslots;
    bool found = false;
    for (uint32_t w = 0; w < (n + 63) / 64 && !stopping_.load(std::memory_order_relaxed); w++) {
        /* one bit at a time: another worker takes the other requests of the
         * word meanwhile, so none waits behind a slow one (a model pin, an
         * oracle commit's fsync) */
        for (uint64_t bits; (bits = h->pending[w].load(std::memory_order_acquire)) != 0;) {
            const uint64_t bit = bits & (~bits + 1);
            if ((h->pending[w].fetch_and(~bit, std::memory_order_acq_rel) & bit) == 0)
                continue; /* another worker took it */
            const uint32_t i = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bit));
            if (i >= n)
                continue; /* a bit beyond the slots: a broken writer */
            Slot *slot = slot_at(h, i);
            uint32_t s = SLOT_PENDING;
            if (!slot->state.compare_exchange_strong(s, SLOT_BUSY, std::memory_order_acquire,
                                                     std::memory_order_relaxed))
                continue; /* withdrawn, or served by a full scan already */
            found = true;
            serve_slot(i, req, resp);
        }
    }
    return found;
}

bool ShmServer::scan_once(uint32_t start, Request &req, Response &resp) {
    SegmentHeader *h = header_;
    const uint32_t n = opt_.nslots;
    bool found = false;
    for (uint32_t k = 0; k < n && !stopping_.load(std::memory_order_relaxed); k++) {
        uint32_t i = start + k;
        if (i >= n)
            i -= n;
        Slot *slot = slot_at(h, i);
        uint32_t s = slot->state.load(std::memory_order_relaxed);
        if (s != SLOT_PENDING)
            continue;
        if (!slot->state.compare_exchange_strong(s, SLOT_BUSY, std::memory_order_acquire,
                                                 std::memory_order_relaxed))
            continue; /* another worker took it, or its backend took it back */
        found = true;
        serve_slot(i, req, resp);
    }
    return found;
}

void ShmServer::serve_slot(uint32_t i, Request &req, Response &resp) {
    SegmentHeader *h = header_;
    Slot *slot = slot_at(h, i);

    /* copy the request out: the fixed fields, then at most kMaxItems items;
     * `count` is kept as written so validate_request() sees a bad one */
    const Request &src = slot->req;
    req.seq = src.seq;
    req.session = src.session;
    req.type = src.type;
    req.estimator = src.estimator;
    req.count = src.count;
    req.flags = src.flags;
    req.dboid = src.dboid;
    req.text_used = src.text_used; /* as written: validate_request() checks it */
    uint32_t n = req.count <= kMaxItems ? req.count : kMaxItems;
    if (req.type == MSG_ORACLE_ADD)
        memcpy(req.entries, src.entries, n * sizeof(OracleEntry));
    else if (req.type == MSG_ADVISOR)
        memcpy(&req.advisor, &src.advisor, sizeof(AdvisorJob));
    else
        memcpy(req.items, src.items, n * sizeof(EstimateItem));
    /* only the used part of the 64 KB text area, and only for estimates */
    if (req.type == MSG_ESTIMATE && req.text_used > 0 && req.text_used <= kMaxText) {
        memcpy(req.text, src.text, req.text_used);
        drop_unclean_texts(req);
    }
    uint32_t client_pid = slot->owner_pid.load(std::memory_order_relaxed);

    if (opt_.answer_delay_ms > 0 && req.type == MSG_ESTIMATE && !sleep_unless_stopping(opt_.answer_delay_ms))
        return; /* shutting down: the backend already sees PILOTD_STOPPING */

    HandleResult r = handler_.handle(i, client_pid, req, resp);
    if (req.type == MSG_ORACLE_COMMIT || req.type == MSG_ORACLE_CLEAR)
        h->oracle_generation.fetch_add(1, std::memory_order_release); /* answers may differ now */

    h->counters.requests.fetch_add(1, std::memory_order_relaxed);
    if (r.bad_request)
        h->counters.bad_requests.fetch_add(1, std::memory_order_relaxed);
    if (r.items) {
        h->counters.items.fetch_add(r.items, std::memory_order_relaxed);
        h->counters.answered.fetch_add(r.answered, std::memory_order_relaxed);
    }

    Response &dst = slot->resp;
    uint32_t rc = resp.count <= kMaxItems ? resp.count : 0;
    dst.seq = resp.seq;
    dst.status = resp.status;
    dst.count = rc;
    dst.oracle_entries = resp.oracle_entries;
    memcpy(dst.answers, resp.answers, rc * sizeof(EstimateAnswer));
    slot->state.store(SLOT_DONE, std::memory_order_release);
    futex_wake(&slot->state, 1);
    /* the backend has its answer: now the key texts (our private copy) */
    if (r.key_texts)
        handler_.note_key_texts(req);
}

void ShmServer::publish_models(const std::vector<ModelInfo> &models,
                               const std::map<uint32_t, uint32_t> &serving_versions) noexcept {
    try {
        std::lock_guard<std::mutex> g(publish_mu_);
        SegmentHeader *h = header_;
        if (h == nullptr)
            return;
        ModelTable &t = h->models;
        uint32_t n = models.size() < kMaxModels ? static_cast<uint32_t>(models.size()) : kMaxModels;
        uint32_t s = t.seq.load(std::memory_order_relaxed);
        if (s & 1)
            s++; /* never left odd, but be safe */
        t.seq.store(s + 1, std::memory_order_relaxed); /* odd: being written */
        std::atomic_thread_fence(std::memory_order_release);
        t.count = n;
        for (uint32_t i = 0; i < kMaxModels; i++) {
            ModelInfo &dst = t.models[i];
            if (i < n) {
                dst = models[i];
                dst.checksum[sizeof dst.checksum - 1] = '\0';
                dst.database[sizeof dst.database - 1] = '\0';
                dst.note[sizeof dst.note - 1] = '\0';
            } else {
                memset(static_cast<void *>(&dst), 0, sizeof dst);
            }
        }
        t.seq.store(s + 2, std::memory_order_release);
        h->model_serving.store(serving_versions.empty() ? 0u : 1u, std::memory_order_release);
        /* after model_serving: a backend that sees the new generation also
         * sees whether to send key texts */
        if (serving_versions != published_serving_) {
            published_serving_ = serving_versions;
            h->model_generation.fetch_add(1, std::memory_order_release); /* another model answers */
        }
    } catch (...) {
        LOG_ERROR("cannot publish the model table");
    }
}

void ShmServer::stop() noexcept {
    if (header_ != nullptr)
        header_->pilotd_state.store(PILOTD_STOPPING, std::memory_order_seq_cst);
    {
        std::lock_guard<std::mutex> g(stop_mu_);
        stopping_.store(true);
    }
    stop_cv_.notify_all();
    if (header_ != nullptr) {
        /* backends waiting for an answer see PILOTD_STOPPING at once */
        for (uint32_t i = 0; i < opt_.nslots; i++)
            futex_wake(&slot_at(header_, i)->state, INT_MAX);
        header_->doorbell.fetch_add(1, std::memory_order_seq_cst);
        futex_wake(&header_->doorbell, INT_MAX);
    }
    for (auto &t : workers_)
        if (t.joinable())
            t.join();
    workers_.clear();
    if (feedback_.joinable())
        feedback_.join();
    if (heartbeat_.joinable())
        heartbeat_.join();
    {
        /* publish_models() from another thread sees either the mapping or nullptr */
        std::lock_guard<std::mutex> g(publish_mu_);
        header_ = nullptr;
        segment_guard_disarm();
        try {
            region_.reset();
            shm_.reset();
        } catch (...) {
        }
    }
    if (published_) {
        published_ = false;
        if (bip::shared_memory_object::remove(opt_.segment.c_str()))
            LOG_INFO("removed segment %s", opt_.segment.c_str());
        else
            LOG_WARNING("could not remove segment %s", opt_.segment.c_str());
    }
}

} // namespace pilotd
