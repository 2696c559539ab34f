/* known_sets.cpp — see known_sets.h. */
#include "known_sets.h"

#include <algorithm>

namespace pilotd {

namespace pp = pilot::proto;

void KnownSetsFilter::set_bits_locked(uint32_t buffer, uint64_t table_set) {
    uint32_t pos[pp::kKnownSetHashes];
    pp::known_set_positions(table_set, pos);
    for (uint32_t p : pos)
        seg_->bits[buffer][p / 64].fetch_or(uint64_t{1} << (p % 64), std::memory_order_relaxed);
}

void KnownSetsFilter::rebuild_locked() {
    if (seg_ == nullptr)
        return;
    const bool filter = memo_complete_ && oracle_complete_;
    const uint32_t next = (seg_->active.load(std::memory_order_relaxed) & 1u) ^ 1u;
    /* readers of `next` (they read active before the last switch) see the
     * counter odd or moved and treat every set as known */
    seg_->seq[next].fetch_add(1, std::memory_order_acq_rel);
    std::atomic_thread_fence(std::memory_order_release);
    for (auto &w : seg_->bits[next])
        w.store(0, std::memory_order_relaxed);
    for (uint64_t t : memo_)
        set_bits_locked(next, t);
    for (uint64_t t : oracle_)
        set_bits_locked(next, t);
    for (uint32_t dboid : model_dboids_)
        set_bits_locked(next, pp::model_database_mark(dboid));
    seg_->seq[next].fetch_add(1, std::memory_order_release);
    seg_->active.store(next, std::memory_order_release);
    seg_->state.store(filter ? pp::KNOWN_SETS_FILTER : pp::KNOWN_SETS_ASK_ALL, std::memory_order_release);
}

void KnownSetsFilter::attach(pp::KnownSets *seg) {
    std::lock_guard<std::mutex> g(mu_);
    seg_ = seg;
    rebuild_locked();
}

void KnownSetsFilter::detach() {
    std::lock_guard<std::mutex> g(mu_);
    if (seg_ != nullptr)
        seg_->state.store(pp::KNOWN_SETS_ASK_ALL, std::memory_order_release);
    seg_ = nullptr;
}

void KnownSetsFilter::replace_locked(std::unordered_set<uint64_t> &part, bool &part_complete,
                                     const std::vector<uint64_t> &sets, bool complete) {
    part.clear();
    part.insert(sets.begin(), sets.end());
    part.erase(0);
    part_complete = complete;
    rebuild_locked();
}

void KnownSetsFilter::restore_memo(const std::vector<uint64_t> &sets, bool complete) {
    std::lock_guard<std::mutex> g(mu_);
    replace_locked(memo_, memo_complete_, sets, complete);
}

bool KnownSetsFilter::add_memo(uint64_t table_set) {
    std::lock_guard<std::mutex> g(mu_);
    if (table_set == 0)
        return false; /* the memo's completeness is restore_memo()'s business */
    if (!memo_.insert(table_set).second)
        return false;
    if (seg_ != nullptr)
        set_bits_locked(seg_->active.load(std::memory_order_relaxed) & 1u, table_set);
    return true;
}

void KnownSetsFilter::set_oracle(const std::vector<uint64_t> &sets, bool complete) {
    std::lock_guard<std::mutex> g(mu_);
    replace_locked(oracle_, oracle_complete_, sets, complete);
}

void KnownSetsFilter::set_model_databases(std::vector<uint32_t> dboids) {
    std::sort(dboids.begin(), dboids.end());
    std::lock_guard<std::mutex> g(mu_);
    if (dboids == model_dboids_)
        return;
    model_dboids_ = std::move(dboids);
    rebuild_locked();
}

std::vector<uint64_t> KnownSetsFilter::memo_sets() const {
    std::lock_guard<std::mutex> g(mu_);
    return std::vector<uint64_t>(memo_.begin(), memo_.end());
}

bool KnownSetsFilter::memo_complete() const {
    std::lock_guard<std::mutex> g(mu_);
    return memo_complete_;
}

bool KnownSetsFilter::filtering() const {
    std::lock_guard<std::mutex> g(mu_);
    return memo_complete_ && oracle_complete_;
}

size_t KnownSetsFilter::table_sets() const {
    std::lock_guard<std::mutex> g(mu_);
    return memo_.size() + oracle_.size();
}

} // namespace pilotd
