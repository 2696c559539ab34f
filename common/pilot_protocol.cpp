/* pilot_protocol.cpp — validation and naming helpers of the shared protocol. */
#include "pilot_protocol.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace pilot {
namespace proto {

const char *estimator_name(uint32_t id) {
    switch (id) {
    case EST_AUTO: return "auto";
    case EST_NATIVE: return "native";
    case EST_ORACLE: return "oracle";
    case EST_MEMO: return "memo";
    case EST_LEARNED: return "learned";
    default: return "invalid";
    }
}

const char *source_name(uint32_t src) {
    switch (src) {
    case SRC_NONE: return "none";
    case SRC_ORACLE: return "oracle";
    case SRC_MEMO: return "memo";
    case SRC_MODEL: return "model";
    default: return "invalid";
    }
}

const char *model_state_name(uint32_t s) {
    switch (s) {
    case MODEL_TRAINING: return "training";
    case MODEL_VALIDATED: return "validated";
    case MODEL_SERVING: return "serving";
    case MODEL_RETIRED: return "retired";
    case MODEL_REJECTED: return "rejected";
    default: return "invalid";
    }
}

const char *guard_arm_name(uint32_t a) {
    switch (a) {
    case ARM_UNKNOWN: return "auto";
    case ARM_PILOT: return "pilot";
    case ARM_NATIVE: return "native";
    default: return "invalid";
    }
}

const char *guard_decision_name(uint32_t d) {
    switch (d) {
    case GUARD_EXPLORE: return "explore";
    case GUARD_PILOT: return "pilot";
    case GUARD_NATIVE: return "native";
    default: return "invalid";
    }
}

bool guard_entry_valid(const GuardEntry &e) {
    return e.query_id != 0 && e.decision <= GUARD_DECISION_MAX && e.pinned <= ARM_MAX &&
           std::isfinite(e.pilot_median_ms) && std::isfinite(e.native_median_ms) &&
           e.decided_unix <= 253402300799ULL; /* 9999-12-31 */
}

bool guard_copy_row(const GuardEntry &e, GuardEntry *out, int attempts) {
    for (int attempt = 0; attempt < attempts; attempt++) {
        const uint32_t before = e.seq.load(std::memory_order_acquire);
        if (before & 1u)
            continue;
        memcpy(static_cast<void *>(out), static_cast<const void *>(&e), sizeof *out);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (e.seq.load(std::memory_order_relaxed) == before)
            return true;
    }
    return false;
}

namespace {
uint64_t mix64(uint64_t h) {
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}
} // namespace

uint64_t table_set_finish(uint64_t acc) {
    uint64_t h = mix64(acc ^ 0x7461626c65736574ULL /* "tableset" */);
    return h == 0 ? 1 : h;
}

uint64_t model_database_mark(uint32_t dboid) {
    uint64_t h = mix64((static_cast<uint64_t>(dboid) << 8) ^ 0x6d6f64656cULL /* "model" */);
    return h == 0 ? 1 : h;
}

void known_set_positions(uint64_t table_set, uint32_t pos[kKnownSetHashes]) {
    /* three 21-bit slices of a well-mixed 64-bit number */
    static_assert(kKnownSetBits <= (1u << 21), "positions come from 21-bit slices");
    for (uint32_t i = 0; i < kKnownSetHashes; i++)
        pos[i] = static_cast<uint32_t>(table_set >> (21 * i)) & (kKnownSetBits - 1);
}

bool known_sets_may_answer(const KnownSets &k, uint64_t table_set) {
    if (k.state.load(std::memory_order_acquire) != KNOWN_SETS_FILTER)
        return true;
    const uint32_t b = k.active.load(std::memory_order_acquire) & 1u;
    const uint64_t before = k.seq[b].load(std::memory_order_acquire);
    if (before & 1u)
        return true;
    uint32_t pos[kKnownSetHashes];
    known_set_positions(table_set, pos);
    bool all = true;
    for (uint32_t i = 0; i < kKnownSetHashes && all; i++)
        all = (k.bits[b][pos[i] / 64].load(std::memory_order_relaxed) >> (pos[i] % 64)) & 1u;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (k.seq[b].load(std::memory_order_relaxed) != before)
        return true;
    return all;
}

bool key_texts_has(const KeyTexts &t, uint64_t key) {
    if (key == 0)
        return false;
    for (uint32_t i = 0; i < kKeyTextProbes; i++) {
        const uint64_t k = t.keys[(key + i) & (kKeyTextSlots - 1)].load(std::memory_order_acquire);
        if (k == key)
            return true;
        if (k == 0)
            return false; /* an empty slot ends the search */
    }
    return false;
}

bool key_texts_add(KeyTexts &t, uint64_t key) {
    if (key == 0)
        return true; /* never a key: nothing to publish */
    if (t.count.load(std::memory_order_relaxed) >= kKeyTextSlots / 4 * 3)
        return false;
    for (uint32_t i = 0; i < kKeyTextProbes; i++) {
        std::atomic<uint64_t> &slot = t.keys[(key + i) & (kKeyTextSlots - 1)];
        const uint64_t k = slot.load(std::memory_order_relaxed);
        if (k == key)
            return true;
        if (k == 0) {
            slot.store(key, std::memory_order_release);
            t.count.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
    }
    return false; /* a run too long to be found again: not published */
}

bool guard_lookup(const GuardTable &t, uint32_t dboid, uint64_t query_id, GuardEntry *out) {
    if (query_id == 0)
        return false;
    const uint32_t home = guard_home(dboid, query_id);
    for (uint32_t i = 0; i < kGuardProbes; i++) {
        if (!guard_copy_row(t.entries[(home + i) & (kGuardEntries - 1)], out, 4))
            return false; /* being rewritten right now: treat as not guarded */
        if (out->query_id == 0)
            return false; /* an empty row ends the search */
        if (out->query_id != query_id || out->dboid != dboid)
            continue;
        return guard_entry_valid(*out);
    }
    return false;
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
    if (h->pilotd_state.load(std::memory_order_acquire) != PILOTD_READY)
        return HDR_NOT_READY;
    uint64_t hb = h->heartbeat_us.load(std::memory_order_acquire);
    /* a heartbeat from the future (garbage) is as unusable as an old one */
    if (hb > now_us + 1000000 || now_us - (hb < now_us ? hb : now_us) > stale_after_us)
        return HDR_STALE;
    return HDR_OK;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Valid UTF-8 without control characters (newlines allowed if asked). */
static bool clean_utf8(const char *s, size_t len, bool newlines = false) {
    const unsigned char *u = reinterpret_cast<const unsigned char *>(s);
    for (size_t i = 0; i < len;) {
        if ((u[i] < 0x20 && !(newlines && u[i] == '\n')) || u[i] == 0x7F)
            return false;
        size_t k = utf8_seq(u + i, len - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

bool key_text_clean(const char *s, size_t len) { return clean_utf8(s, len, /*newlines=*/true); }

size_t copy_clean_utf8(char *dst, size_t cap, const char *src, size_t len) {
    if (cap == 0)
        return 0;
    const unsigned char *u = reinterpret_cast<const unsigned char *>(src);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = (u[i] < 0x20 || u[i] == 0x7F) ? 0 : utf8_seq(u + i, len - i);
        if (k == 0) {
            if (o + 1 >= cap)
                break;
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + k >= cap)
            break;
        memcpy(dst + o, u + i, k);
        o += k;
        i += k;
    }
    dst[o] = '\0';
    return o;
}

FeedbackCheck feedback_check(const FeedbackRecord &r) {
    if (r.kind == 0 || r.kind > FB_KIND_MAX)
        return FBC_BAD_KIND;
    if (!std::isfinite(r.actual_rows) || r.actual_rows < 0)
        return FBC_BAD_ROWS;
    if (!std::isfinite(r.native_rows) || !std::isfinite(r.pilot_rows))
        return FBC_BAD_ROWS;
    const void *nul = memchr(r.relations, '\0', sizeof r.relations);
    if (nul == nullptr)
        return FBC_BAD_RELATIONS;
    size_t len = static_cast<size_t>(static_cast<const char *>(nul) - r.relations);
    if (!clean_utf8(r.relations, len))
        return FBC_BAD_RELATIONS;
    if (r.kind == FB_RELSET && (r.key == 0 || r.nrels == 0 || len == 0))
        return FBC_NO_KEY;
    if (r.guard_arm > ARM_MAX)
        return FBC_BAD_ARM;
    return FBC_OK;
}

const char *feedback_check_name(uint32_t c) {
    switch (c) {
    case FBC_OK: return "ok";
    case FBC_BAD_KIND: return "unknown record kind";
    case FBC_BAD_ROWS: return "row count negative or not finite";
    case FBC_NO_KEY: return "relation set without key, relation count or relation names";
    case FBC_BAD_RELATIONS: return "relation names not NUL-terminated or not clean UTF-8";
    case FBC_BAD_ARM: return "guard arm out of range";
    default: return "unknown reason";
    }
}

const char *store_state_name(uint32_t s) {
    switch (s) {
    case STORE_DISABLED: return "disabled";
    case STORE_OK: return "ok";
    case STORE_RETRYING: return "retrying";
    default: return "unknown";
    }
}

/* item.text_off + item.text_len <= used, without overflow */
static bool text_in_bounds(const EstimateItem &it, uint32_t used) {
    return it.text_off <= used && it.text_len <= used - it.text_off;
}

bool validate_request(const Request &r) {
    if (r.type == 0 || r.type > MSG_TYPE_MAX)
        return false;
    if (r.count > kMaxItems)
        return false;
    if (r.type == MSG_ESTIMATE) {
        if (r.estimator > EST_MAX)
            return false;
        if (r.text_used > kMaxText)
            return false;
        for (uint32_t i = 0; i < r.count; i++)
            if (r.items[i].key == 0 || !text_in_bounds(r.items[i], r.text_used))
                return false;
    }
    if (r.type == MSG_MODEL_PIN && r.session > UINT32_MAX)
        return false; /* versions are 32-bit */
    if (r.type == MSG_GUARD_PIN && (r.session == 0 || r.flags > ARM_MAX))
        return false; /* a query id, and an arm */
    if (r.type == MSG_ADVISOR) {
        const AdvisorJob &j = r.advisor;
        if (j.action == 0 || j.action > ADVISE_ACTION_MAX || j.max_indexes > 1000)
            return false;
        if (!std::isfinite(j.budget_mb) || j.budget_mb > 1e9)
            return false;
        if (j.action == ADVISE_APPLY && j.recommendation <= 0)
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

uint32_t drop_unclean_texts(Request &r) {
    if (r.type != MSG_ESTIMATE || r.text_used > kMaxText)
        return 0;
    uint32_t n = r.count <= kMaxItems ? r.count : kMaxItems;
    uint32_t dropped = 0;
    for (uint32_t i = 0; i < n; i++) {
        EstimateItem &it = r.items[i];
        if (it.text_len == 0 || !text_in_bounds(it, r.text_used))
            continue; /* nothing to check, or validate_request() refuses it */
        if (!key_text_clean(r.text + it.text_off, it.text_len)) {
            it.text_len = 0;
            dropped++;
        }
    }
    return dropped;
}

/* Makes a fixed-size string field NUL-terminated clean UTF-8 in place. */
template <size_t N> static void clean_field(char (&f)[N]) {
    const void *nul = memchr(f, '\0', N);
    size_t len = nul ? static_cast<size_t>(static_cast<const char *>(nul) - f) : N;
    char tmp[N] = {};
    copy_clean_utf8(tmp, N, f, len);
    memcpy(f, tmp, N);
}

bool clean_model_info(ModelInfo &m) {
    if (m.state == 0 || m.state > MODEL_STATE_MAX)
        return false;
    clean_field(m.checksum);
    clean_field(m.database);
    clean_field(m.note);
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
        if (!std::isfinite(a.keep_native_within) || a.keep_native_within < 0 || a.keep_native_within > 1000)
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
