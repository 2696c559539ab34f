/* memo_store.cpp — see memo_store.h. */
#include "memo_store.h"

#include "log.h"

#include <mutex>
#include <unordered_set>

namespace pilotd {

using namespace pilot::proto;

MemoStore::MemoStore(size_t max_entries) : max_entries_(max_entries) {}

void MemoStore::observe(const FeedbackRecord *recs, uint32_t n) noexcept {
    uint64_t queries = 0, rejected = 0;
    bool log_full = false, changed = false;
    size_t size;
    {
        std::unique_lock<std::shared_mutex> g(mu_);
        for (uint32_t i = 0; i < n; i++) {
            const FeedbackRecord &r = recs[i];
            if (r.kind == FB_QUERY) {
                queries++; /* stored by a later change */
                continue;
            }
            if (r.kind != FB_RELSET)
                continue;
            const uint64_t key = memo_key(r.dboid, r.key);
            auto it = map_.find(key);
            if (it == map_.end()) {
                if (map_.size() >= max_entries_) {
                    rejected++;
                    if (!full_logged_)
                        log_full = full_logged_ = true;
                    continue;
                }
                try {
                    it = map_.emplace(key, Entry()).first;
                } catch (...) {
                    rejected++;
                    continue;
                }
                without_table_set_++; /* until set below */
            }
            if (it->second.table_set == 0 && r.table_set != 0) {
                it->second.table_set = r.table_set;
                without_table_set_--;
            }
            changed = changed || it->second.count == 0 || it->second.rows != r.actual_rows;
            it->second.rows = r.actual_rows;
            it->second.count++;
        }
        if (changed)
            if (std::atomic<uint64_t> *gen = generation_.load())
                gen->fetch_add(1, std::memory_order_release);
        size = map_.size();
        /* under the lock: a concurrent set_counter() cannot interleave */
        if (std::atomic<uint64_t> *c = counter_.load())
            c->store(size, std::memory_order_relaxed);
    }
    if (queries)
        query_records_.fetch_add(queries, std::memory_order_relaxed);
    if (rejected)
        rejected_.fetch_add(rejected, std::memory_order_relaxed);
    if (log_full)
        LOG_WARNING("memo is full (%zu entries, --memo-max-entries): observations of new relation sets "
                    "are not stored from now on (logged once)",
                    max_entries_);
}

void MemoStore::lookup(uint32_t dboid, const EstimateItem *items, uint32_t n, double *rows, bool *known) const {
    std::shared_lock<std::shared_mutex> g(mu_);
    for (uint32_t i = 0; i < n; i++) {
        auto it = map_.find(memo_key(dboid, items[i].key));
        if (it == map_.end() && dboid != 0)
            it = map_.find(items[i].key); /* an entry without its database */
        known[i] = it != map_.end();
        rows[i] = known[i] ? it->second.rows : 0;
    }
}

bool MemoStore::lookup(uint32_t dboid, uint64_t subplan_key, Entry *out) const {
    std::shared_lock<std::shared_mutex> g(mu_);
    auto it = map_.find(memo_key(dboid, subplan_key));
    if (it == map_.end() && dboid != 0)
        it = map_.find(subplan_key);
    if (it == map_.end())
        return false;
    *out = it->second;
    return true;
}

size_t MemoStore::restore(const std::unordered_map<uint64_t, Entry> &entries) {
    size_t loaded = 0, rejected = 0;
    {
        std::unique_lock<std::shared_mutex> g(mu_);
        for (const auto &kv : entries) {
            if (map_.size() >= max_entries_ && map_.find(kv.first) == map_.end()) {
                rejected++;
                continue;
            }
            auto it = map_.find(kv.first);
            if (it != map_.end() && it->second.table_set == 0)
                without_table_set_--;
            map_[kv.first] = kv.second;
            if (kv.second.table_set == 0)
                without_table_set_++;
            loaded++;
        }
        if (std::atomic<uint64_t> *c = counter_.load())
            c->store(map_.size(), std::memory_order_relaxed);
    }
    if (rejected) {
        rejected_.fetch_add(rejected, std::memory_order_relaxed);
        LOG_WARNING("memo journal holds %zu more relation sets than --memo-max-entries (%zu): not loaded", rejected,
                    max_entries_);
    }
    return loaded;
}

std::vector<std::pair<uint64_t, MemoStore::Entry>> MemoStore::snapshot() const {
    std::shared_lock<std::shared_mutex> g(mu_);
    return std::vector<std::pair<uint64_t, Entry>>(map_.begin(), map_.end());
}

size_t MemoStore::without_table_set() const {
    std::shared_lock<std::shared_mutex> g(mu_);
    return without_table_set_;
}

std::vector<uint64_t> MemoStore::table_sets() const {
    std::unordered_set<uint64_t> distinct;
    {
        std::shared_lock<std::shared_mutex> g(mu_);
        for (const auto &kv : map_)
            if (kv.second.table_set != 0)
                distinct.insert(kv.second.table_set);
    }
    return std::vector<uint64_t>(distinct.begin(), distinct.end());
}

size_t MemoStore::size() const {
    std::shared_lock<std::shared_mutex> g(mu_);
    return map_.size();
}

void MemoStore::set_counter(std::atomic<uint64_t> *counter) {
    std::unique_lock<std::shared_mutex> g(mu_);
    counter_.store(counter);
    if (counter)
        counter->store(map_.size(), std::memory_order_relaxed);
}

} // namespace pilotd
