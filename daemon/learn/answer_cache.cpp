/* answer_cache.cpp — see answer_cache.h. */
#include "answer_cache.h"

#include <cstring>

namespace pilotd {

AnswerCache::Key AnswerCache::key_of(uint64_t subplan_key, double native) {
    Key k{subplan_key, 0};
    static_assert(sizeof native == sizeof k.native_bits, "double is 64 bits");
    std::memcpy(&k.native_bits, &native, sizeof native);
    return k;
}

size_t AnswerCache::find(const uint64_t *keys, const double *natives, size_t n, bool *found,
                         CachedAnswer *out) const {
    size_t hits = 0;
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < n; i++) {
        auto it = map_.find(key_of(keys[i], natives[i]));
        found[i] = it != map_.end();
        if (found[i]) {
            out[i] = it->second;
            hits++;
        }
    }
    hits_.fetch_add(hits, std::memory_order_relaxed);
    return hits;
}

void AnswerCache::put(const uint64_t *keys, const double *natives, const CachedAnswer *answers, size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < n; i++) {
        if (map_.size() >= capacity_) {
            map_.clear();
            resets_.fetch_add(1, std::memory_order_relaxed);
        }
        map_[key_of(keys[i], natives[i])] = answers[i];
    }
}

size_t AnswerCache::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
}

} // namespace pilotd
