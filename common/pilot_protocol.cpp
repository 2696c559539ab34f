/* pilot_protocol.cpp — validation and naming helpers of the shared protocol. */
#include "pilot_protocol.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace pilot {
namespace proto {

const char *estimator_name(uint32_t id) {
    switch (id) {
    case EST_AUTO: return "auto";
    case EST_NATIVE: return "native";
    case EST_ORACLE: return "oracle";
    case EST_MEMO: return "memo";
    default: return "invalid";
    }
}

const char *source_name(uint32_t src) {
    switch (src) {
    case SRC_NONE: return "none";
    case SRC_ORACLE: return "oracle";
    case SRC_MEMO: return "memo";
    default: return "invalid";
    }
}

const char *header_check_name(HeaderCheck c) {
    switch (c) {
    case HDR_OK: return "ok";
    case HDR_TOO_SMALL: return "segment too small";
    case HDR_BAD_MAGIC: return "not a pg_pilot segment";
    case HDR_BAD_VERSION: return "protocol version mismatch";
    case HDR_BAD_LAYOUT: return "segment layout mismatch";
    case HDR_NOT_READY: return "pilotd not ready";
    case HDR_STALE: return "pilotd heartbeat stale";
    }
    return "unknown";
}

HeaderCheck validate_header(const SegmentHeader *h, uint64_t mapped_size, uint64_t now_us,
                            uint64_t stale_after_us) {
    if (h == nullptr || mapped_size < sizeof(SegmentHeader))
        return HDR_TOO_SMALL;
    if (h->magic != kMagic)
        return HDR_BAD_MAGIC;
    if (h->version != kProtocolVersion)
        return HDR_BAD_VERSION;
    if (h->header_size != sizeof(SegmentHeader) || h->slot_size != sizeof(Slot) ||
        h->nslots == 0 || h->nslots > kMaxSlots || h->total_size != segment_size(h->nslots) ||
        h->total_size > mapped_size)
        return HDR_BAD_LAYOUT;
    if (h->daemon_state.load(std::memory_order_acquire) != DAEMON_READY)
        return HDR_NOT_READY;
    uint64_t hb = h->heartbeat_us.load(std::memory_order_acquire);
    /* a heartbeat from the future (garbage) is as unusable as an old one */
    if (hb > now_us + 1000000 || now_us - (hb < now_us ? hb : now_us) > stale_after_us)
        return HDR_STALE;
    return HDR_OK;
}

bool validate_feedback(const FeedbackRecord &r) {
    if (r.kind == 0 || r.kind > FB_KIND_MAX)
        return false;
    if (!std::isfinite(r.actual_rows) || r.actual_rows < 0)
        return false;
    if (!std::isfinite(r.native_rows) || !std::isfinite(r.pilot_rows))
        return false;
    if (r.kind == FB_RELSET && (r.key == 0 || r.nrels == 0))
        return false;
    return true;
}

bool validate_request(const Request &r) {
    if (r.type == 0 || r.type > MSG_TYPE_MAX)
        return false;
    if (r.count > kMaxItems)
        return false;
    if (r.type == MSG_ESTIMATE) {
        if (r.estimator > EST_MAX)
            return false;
        for (uint32_t i = 0; i < r.count; i++)
            if (r.items[i].key == 0)
                return false;
    }
    if (r.type == MSG_ORACLE_ADD) {
        for (uint32_t i = 0; i < r.count; i++) {
            double v = r.entries[i].rows;
            if (r.entries[i].key == 0 || !std::isfinite(v) || v < 0)
                return false;
        }
    }
    return true;
}

bool validate_response(const Request &req, const Response &resp) {
    if (resp.seq != req.seq || resp.status > ST_MAX)
        return false;
    if (resp.status != ST_OK)
        return true; /* a well-formed refusal */
    if (req.type != MSG_ESTIMATE)
        return true;
    if (resp.count != req.count)
        return false;
    for (uint32_t i = 0; i < resp.count; i++) {
        const EstimateAnswer &a = resp.answers[i];
        if (a.source > SRC_MAX)
            return false;
        if (a.source != SRC_NONE && (!std::isfinite(a.rows) || a.rows < 0))
            return false;
    }
    return true;
}

uint64_t monotonic_us() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000ULL + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

uint64_t stable_hash64(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = static_cast<const unsigned char *>(data);
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    /* splitmix64 finaliser: spreads FNV's weak low bits */
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h == 0 ? 1 : h; /* 0 means "no key" on the wire */
}

std::string segment_name_for_datadir(const std::string &datadir) {
    char resolved[PATH_MAX];
    if (datadir.empty() || realpath(datadir.c_str(), resolved) == nullptr)
        return std::string();
    std::string path(resolved);
    char buf[64];
    snprintf(buf, sizeof buf, "pg_pilot.%016llx",
             static_cast<unsigned long long>(stable_hash64(path.data(), path.size())));
    return std::string(buf);
}

} // namespace proto
} // namespace pilot
