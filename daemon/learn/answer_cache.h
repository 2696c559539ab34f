/*
 * answer_cache.h — the learned model's answers, kept per model version by
 * relation set (its subplan key) and PostgreSQL's estimate of it.
 *
 * Why: the same statement is planned again and again (no prepared statement,
 * a new connection, GEQO revisiting sets), and its relation sets get the same
 * answer each time, since an answer depends only on the key text, PostgreSQL's
 * estimate and the version.  A hit costs a hash lookup instead of parsing,
 * featurizing and a forward pass.  The subplan key is the 64-bit hash of the
 * key text that the memo and the oracle already trust; pilotd checks that it
 * matches the text before anything is cached.
 *
 * Bounded: when full, it starts over (a version serves one database, whose
 * workload's sets fit many times over).  Thread-safe: one short lock per batch.
 */
#ifndef PILOTD_ANSWER_CACHE_H
#define PILOTD_ANSWER_CACHE_H

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace pilotd {

struct CachedAnswer {
    bool ok = false;   /* false: the model declined this set */
    double rows = 0;   /* when ok */
    float band = 0;    /* EstimateAnswer::keep_native_within */
};

class AnswerCache {
  public:
    explicit AnswerCache(size_t capacity = 65536) : capacity_(capacity) {}

    /* One lookup per set of a batch, under one lock: found[i] and out[i] for
     * each (keys[i], natives[i]).  Returns how many were found. */
    size_t find(const uint64_t *keys, const double *natives, size_t n, bool *found, CachedAnswer *out) const;
    /* Stores the answers of sets computed now. */
    void put(const uint64_t *keys, const double *natives, const CachedAnswer *answers, size_t n);

    size_t size() const;
    uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
    uint64_t resets() const { return resets_.load(std::memory_order_relaxed); }

  private:
    struct Key {
        uint64_t subplan_key;
        uint64_t native_bits; /* PostgreSQL's estimate, bit for bit (-1: none) */
        bool operator==(const Key &o) const { return subplan_key == o.subplan_key && native_bits == o.native_bits; }
    };
    struct KeyHash {
        size_t operator()(const Key &k) const noexcept {
            return static_cast<size_t>(k.subplan_key ^ (k.native_bits * 0x9E3779B97F4A7C15ULL));
        }
    };
    static Key key_of(uint64_t subplan_key, double native);

    const size_t capacity_;
    mutable std::mutex mu_;
    std::unordered_map<Key, CachedAnswer, KeyHash> map_;
    mutable std::atomic<uint64_t> hits_{0};
    std::atomic<uint64_t> resets_{0};
};

} // namespace pilotd

#endif
