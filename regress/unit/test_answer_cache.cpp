/* Unit tests of the learned model's answer cache (daemon/learn/answer_cache.h). */
#include "answer_cache.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using namespace pilotd;

namespace {

CachedAnswer Answer(double rows, bool ok = true, float band = 0.5f) {
    CachedAnswer a;
    a.ok = ok;
    a.rows = rows;
    a.band = band;
    return a;
}

} // namespace

TEST(AnswerCache, FindsWhatWasPutByKeyAndPostgresEstimate) {
    AnswerCache c;
    const uint64_t keys[] = {11, 12, 11};
    const double natives[] = {100, -1, 250}; /* the same set with another estimate: another answer */
    const CachedAnswer answers[] = {Answer(7), Answer(0, false), Answer(9)};
    c.put(keys, natives, answers, 3);
    EXPECT_EQ(c.size(), 3u);

    const uint64_t ask[] = {11, 12, 11, 13, 12};
    const double ask_natives[] = {100, -1, 250, 100, 5};
    bool found[5];
    CachedAnswer out[5];
    EXPECT_EQ(c.find(ask, ask_natives, 5, found, out), 3u);
    EXPECT_TRUE(found[0]);
    EXPECT_EQ(out[0].rows, 7);
    EXPECT_EQ(out[0].band, 0.5f);
    EXPECT_TRUE(found[1]);
    EXPECT_FALSE(out[1].ok); /* a decline is an answer too */
    EXPECT_TRUE(found[2]);
    EXPECT_EQ(out[2].rows, 9);
    EXPECT_FALSE(found[3]);
    EXPECT_FALSE(found[4]);
    EXPECT_EQ(c.hits(), 3u);
}

TEST(AnswerCache, BoundedStartsOverWhenFull) {
    AnswerCache c(4);
    for (uint64_t k = 1; k <= 10; k++) {
        const double native = 1;
        const CachedAnswer a = Answer(static_cast<double>(k));
        c.put(&k, &native, &a, 1);
        EXPECT_LE(c.size(), 4u);
    }
    EXPECT_EQ(c.resets(), 2u);
    /* the newest is there, the oldest not */
    const uint64_t ask[] = {10, 1};
    const double natives[] = {1, 1};
    bool found[2];
    CachedAnswer out[2];
    c.find(ask, natives, 2, found, out);
    EXPECT_TRUE(found[0]);
    EXPECT_EQ(out[0].rows, 10);
    EXPECT_FALSE(found[1]);
}

/* pilotd's workers share a version's cache: what one finds is what was put
 * for that key (200 keys: every thread meets each again, no reset). */
TEST(AnswerCache, ConcurrentWorkers) {
    AnswerCache c(1000);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&c, t] {
            for (uint64_t i = 0; i < 5000; i++) {
                const uint64_t k = (i * 7 + t) % 200;
                const double native = static_cast<double>(k % 3);
                bool found;
                CachedAnswer out;
                if (c.find(&k, &native, 1, &found, &out) && out.rows != static_cast<double>(k))
                    ADD_FAILURE() << "key " << k << " answered " << out.rows;
                const CachedAnswer a = Answer(static_cast<double>(k));
                c.put(&k, &native, &a, 1);
            }
        });
    for (auto &th : threads)
        th.join();
    EXPECT_EQ(c.size(), 200u);
    EXPECT_GT(c.hits(), 0u);
    EXPECT_EQ(c.resets(), 0u);
}
