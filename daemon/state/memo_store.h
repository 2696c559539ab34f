/*
 * memo_store.h — what execution feedback observed: subplan key -> actual rows.
 *
 * Fed by the feedback drain (ShmServer's feedback thread) with FB_RELSET
 * records; read by MemoEstimator on the worker threads.
 *
 * Aggregation: the LATEST observation of a key wins (plus how many times the
 * key was observed).  A robust aggregate (median / decayed mean over recent
 * observations, outlier rejection) is future work.
 *
 * Bounded: at most max_entries keys.  When full, observations of NEW keys are
 * not stored (counted in rejected(), logged once); known keys still update.
 * Durability is MemoJournal's job (memo_journal.h): the drain journals a
 * batch before observe()s it, and startup restore()s the replayed journal.
 *
 * Thread safety: one std::shared_mutex; lookups take it shared (one lock per
 * estimate batch), the drain takes it exclusively once per batch of records.
 * FB_QUERY records are only counted for now.
 */
#ifndef PILOTD_MEMO_STORE_H
#define PILOTD_MEMO_STORE_H

#include "pilot_protocol.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pilotd {

/* The memo's key of a relation set observed in database dboid: two databases
 * with the same tables and queries have the same subplan keys, and neither
 * may be answered with the other's counts.  dboid 0 (records of a backend
 * before protocol 7, journals of a pilotd before per-database memo keys)
 * gives the subplan key itself: such entries answer every database, as they
 * did. */
inline uint64_t memo_key(uint32_t dboid, uint64_t subplan_key) {
    uint64_t h = static_cast<uint64_t>(dboid) * 0x9E3779B97F4A7C15ULL;
    return subplan_key ^ (h ^ (h >> 29));
}

class MemoStore {
  public:
    struct Entry {
        double rows = 0;        /* latest observation */
        uint64_t count = 0;     /* observations so far */
        uint64_t table_set = 0; /* the set's tables (FeedbackRecord::table_set); 0 unknown */
    };

    explicit MemoStore(size_t max_entries);

    /* Applies validated records (validate_feedback() passed).  Never throws:
     * an allocation failure drops the record (counted in rejected()). */
    void observe(const pilot::proto::FeedbackRecord *recs, uint32_t n) noexcept;

    /* For each of n items of database dboid: rows[i] = observed rows of
     * items[i].key there (or, failing that, of an entry without a database)
     * and known[i] = true, or known[i] = false.  One shared lock for the
     * batch. */
    void lookup(uint32_t dboid, const pilot::proto::EstimateItem *items, uint32_t n, double *rows,
                bool *known) const;
    bool lookup(uint32_t dboid, uint64_t subplan_key, Entry *out) const;

    /* Startup: loads replayed entries (at most max_entries; the rest are
     * counted in rejected()).  Returns how many were loaded. */
    size_t restore(const std::unordered_map<uint64_t, Entry> &entries);
    /* A consistent copy of every entry (one shared lock). */
    std::vector<std::pair<uint64_t, Entry>> snapshot() const;

    size_t size() const;
    size_t max_entries() const { return max_entries_; }
    /* Entries whose table set is unknown (restored from a journal of an
     * older pilotd, until they are observed again). */
    size_t without_table_set() const;
    /* The distinct table sets of the entries (a scan: not for every batch). */
    std::vector<uint64_t> table_sets() const;
    uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
    uint64_t query_records() const { return query_records_.load(std::memory_order_relaxed); }

    /* Where the entry count is published (the segment's counter); may be null. */
    void set_counter(std::atomic<uint64_t> *counter);
    /* Bumped whenever an answer of the memo changes (a new set, other rows):
     * the segment's memo_generation (backends reuse answers while it holds);
     * may be null. */
    void set_generation(std::atomic<uint64_t> *generation) { generation_.store(generation); }

  private:
    const size_t max_entries_;
    mutable std::shared_mutex mu_;
    std::unordered_map<uint64_t, Entry> map_;
    std::atomic<std::atomic<uint64_t> *> counter_{nullptr};
    std::atomic<std::atomic<uint64_t> *> generation_{nullptr};
    std::atomic<uint64_t> rejected_{0};
    std::atomic<uint64_t> query_records_{0};
    bool full_logged_ = false; /* under mu_ */
    size_t without_table_set_ = 0; /* under mu_ */
};

} // namespace pilotd

#endif
