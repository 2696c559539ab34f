/*
 * test_grow_cache.cpp — the backend's growing cache (extension/grow_cache.h):
 * nothing allocated before the first entry, a small table first, colliding
 * hashes kept side by side, growth in steps up to the bound (dropping what
 * it held), entries found where they were stored.
 */
#include "grow_cache.h"

#include <gtest/gtest.h>

namespace {

struct Entry {
    uint64_t key;
    uint64_t value;
};
using Cache = GrowCache<Entry, 4096>;

} // namespace

TEST(GrowCache, StartsEmptyAndSmall) {
    Cache c;
    EXPECT_EQ(c.find(7), nullptr) << "nothing allocated before the first entry";
    EXPECT_EQ(c.capacity(), 0u);
    Entry *e = c.claim(7);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->key, 0u) << "a claimed entry is zeroed";
    e->key = 7;
    e->value = 70;
    EXPECT_EQ(c.capacity(), 256u);
    ASSERT_NE(c.find(7), nullptr);
    EXPECT_EQ(c.find(7)->value, 70u);
    EXPECT_EQ(c.find(8), nullptr);
    EXPECT_EQ(c.find(7 + 256), nullptr) << "another hash of the same slot is not this entry";
    /* claimed again under the same hash: the same slot, zeroed */
    EXPECT_EQ(c.claim(7), e);
    EXPECT_EQ(e->value, 0u);
    /* hash 0 is an ordinary hash */
    c.claim(0)->value = 5;
    EXPECT_EQ(c.find(0)->value, 5u);
}

TEST(GrowCache, CollidingHashesStaySideBySide) {
    Cache c;
    for (uint64_t i = 0; i < Cache::kWays; i++)
        c.claim(3 + i * 256)->value = i + 1;
    for (uint64_t i = 0; i < Cache::kWays; i++) {
        ASSERT_NE(c.find(3 + i * 256), nullptr) << i;
        EXPECT_EQ(c.find(3 + i * 256)->value, i + 1);
    }
    /* one more than the ways: one of them makes room, the newest is there */
    c.claim(3 + Cache::kWays * 256)->value = 99;
    EXPECT_EQ(c.find(3 + Cache::kWays * 256)->value, 99u);
    int kept = 0;
    for (uint64_t i = 0; i < Cache::kWays; i++)
        kept += c.find(3 + i * 256) != nullptr;
    EXPECT_EQ(kept, static_cast<int>(Cache::kWays) - 1);
}

TEST(GrowCache, GrowsFourfoldUpToItsBoundDroppingWhatItHeld) {
    Cache c;
    uint64_t h = 0;
    for (; h < 128; h++) /* half of 256 slots taken: the next claim grows */
        c.claim(h)->key = h + 1;
    EXPECT_EQ(c.capacity(), 256u);
    EXPECT_EQ(c.find(5)->key, 6u);
    c.claim(h)->key = h + 1;
    EXPECT_EQ(c.capacity(), 1024u);
    EXPECT_EQ(c.find(5), nullptr) << "growing drops the old entries";
    EXPECT_EQ(c.find(h)->key, h + 1);
    for (int i = 0; i < 100000; i++)
        c.claim(static_cast<uint64_t>(i) * 7919)->key = 1;
    EXPECT_EQ(c.capacity(), 4096u) << "never beyond the bound";
}
