/*
 * test_key_catalog.cpp — the key catalog (daemon/state/key_catalog.h) on a real file
 * system: texts noted from estimate batches are appended and read back, a text
 * that is not its key's is never kept, a key is written once, and a torn tail
 * is cut when the catalog is opened again; the keys on disk are published in
 * the segment's key-texts set, and only those.
 */
#include "key_catalog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <fcntl.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace pilotd;
namespace pp = pilot::proto;

namespace {

struct Batch {
    std::vector<pp::EstimateItem> items;
    std::string text;
    EstimateBatch view(uint32_t dboid) const {
        return EstimateBatch{items.data(), static_cast<uint32_t>(items.size()), dboid, text.data(),
                             static_cast<uint32_t>(text.size())};
    }
    /* an item whose text is `t`; key = its hash unless given */
    void add(const std::string &t, uint64_t key = 0) {
        pp::EstimateItem it{};
        it.key = key ? key : pp::stable_hash64(t.data(), t.size());
        it.text_off = static_cast<uint32_t>(text.size());
        it.text_len = static_cast<uint32_t>(t.size());
        text += t;
        items.push_back(it);
    }
};

/* a directory of its own, removed with what it holds */
struct ScopedDir {
    std::string path;
    ScopedDir() {
        char tmpl[] = "/tmp/test_key_catalog.XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~ScopedDir() { std::filesystem::remove_all(path); }
};

std::unordered_map<uint64_t, KeyCatalog::Entry> Load(const std::string &path) {
    std::unordered_map<uint64_t, KeyCatalog::Entry> m;
    std::string error;
    EXPECT_TRUE(KeyCatalog::load(path, &m, &error)) << error;
    return m;
}

bool WaitEntries(const KeyCatalog &c, uint64_t n) {
    for (int i = 0; i < 300 && c.entries() < n; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return c.entries() >= n;
}

const std::string kA = "pgpk1\nR t1 public.a\nC (t1.x pg_catalog.=(integer,integer) '1'::integer)\n";
const std::string kB = "pgpk1\nR t1 public.b\n";

} // namespace

TEST(KeyCatalog, NotedTextsAreAppendedOnceAndReadBack) {
    ScopedDir dir;
    std::string path = dir.path + "/keys.catalog", error;
    {
        KeyCatalog c(path, 1 << 20);
        ASSERT_TRUE(c.open(&error)) << error;
        c.start();
        Batch b;
        b.add(kA);
        b.add(kB);
        b.add(kA); /* the same key twice in a batch */
        c.note(b.view(16384));
        c.note(b.view(16384)); /* and again */
        ASSERT_TRUE(WaitEntries(c, 2));
        c.stop();
        EXPECT_EQ(c.entries(), 2u);
    }
    auto m = Load(path);
    ASSERT_EQ(m.size(), 2u);
    uint64_t ka = pp::stable_hash64(kA.data(), kA.size());
    EXPECT_EQ(m[ka].text, kA);
    EXPECT_EQ(m[ka].dboid, 16384u);
    /* reopened: known keys are not appended again */
    KeyCatalog c(path, 1 << 20);
    ASSERT_TRUE(c.open(&error)) << error;
    EXPECT_EQ(c.entries(), 2u);
    c.start();
    Batch b;
    b.add(kA);
    c.note(b.view(16384));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    c.stop();
    EXPECT_EQ(Load(path).size(), 2u);
}

TEST(KeyCatalog, TextsThatAreNotTheirKeysAreNeverKept) {
    ScopedDir dir;
    std::string path = dir.path + "/keys.catalog", error;
    KeyCatalog c(path, 1 << 20);
    ASSERT_TRUE(c.open(&error)) << error;
    c.start();
    Batch b;
    b.add(kA, 12345);  /* wrong key: garbage from shared memory */
    b.add("", 777);    /* no text */
    b.add(kB);
    c.note(b.view(1));
    ASSERT_TRUE(WaitEntries(c, 1));
    c.stop();
    auto m = Load(path);
    EXPECT_EQ(m.size(), 1u);
    EXPECT_EQ(m.count(12345), 0u);
}

TEST(KeyCatalog, ATornTailIsCut) {
    ScopedDir dir;
    std::string path = dir.path + "/keys.catalog", error;
    {
        KeyCatalog c(path, 1 << 20);
        ASSERT_TRUE(c.open(&error)) << error;
        c.start();
        Batch b;
        b.add(kA);
        b.add(kB);
        c.note(b.view(1));
        ASSERT_TRUE(WaitEntries(c, 2));
        c.stop();
    }
    /* a crash in the middle of an append: half an entry at the end */
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "PLPK\x10\x00\x00", 7), 7);
    ::close(fd);
    EXPECT_EQ(Load(path).size(), 2u); /* a reader skips it */
    KeyCatalog c(path, 1 << 20);
    ASSERT_TRUE(c.open(&error)) << error;
    EXPECT_EQ(c.entries(), 2u);
    c.start();
    const std::string kC = "pgpk1\nR t1 public.c\n";
    Batch b;
    b.add(kC);
    c.note(b.view(1));
    ASSERT_TRUE(WaitEntries(c, 3));
    c.stop();
    EXPECT_EQ(Load(path).size(), 3u); /* appended after the cut, readable */
}

TEST(KeyCatalog, TheSizeLimitHolds) {
    ScopedDir dir;
    std::string path = dir.path + "/keys.catalog", error;
    KeyCatalog c(path, 200); /* room for about two entries */
    ASSERT_TRUE(c.open(&error)) << error;
    c.start();
    Batch b;
    for (int i = 0; i < 10; i++)
        b.add("pgpk1\nR t1 public.t" + std::to_string(i) + "\n");
    c.note(b.view(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    c.stop();
    EXPECT_LE(Load(path).size(), 5u);
    EXPECT_GT(c.dropped(), 0u);
}

/* The segment's set (pilot_protocol.h, KeyTexts): exact, bounded, add-only. */
TEST(KeyTexts, AddedKeysAreFoundOthersAreNot) {
    auto t = std::make_unique<pp::KeyTexts>();
    EXPECT_FALSE(pp::key_texts_has(*t, 42));
    EXPECT_TRUE(pp::key_texts_add(*t, 42));
    EXPECT_TRUE(pp::key_texts_add(*t, 42)); /* twice: once in the set */
    EXPECT_EQ(t->count.load(), 1u);
    /* keys of the same home slot probe on */
    const uint64_t same_home = 42 + pp::kKeyTextSlots;
    EXPECT_FALSE(pp::key_texts_has(*t, same_home));
    EXPECT_TRUE(pp::key_texts_add(*t, same_home));
    EXPECT_TRUE(pp::key_texts_has(*t, 42));
    EXPECT_TRUE(pp::key_texts_has(*t, same_home));
    EXPECT_FALSE(pp::key_texts_has(*t, 43));
    EXPECT_FALSE(pp::key_texts_has(*t, 0)) << "0 marks an empty slot, never a key";
}

TEST(KeyTexts, FullOrGarbageMeansNotFoundNeverAWait) {
    auto t = std::make_unique<pp::KeyTexts>();
    /* a run of kKeyTextProbes occupied slots: a key homed there is not
     * published (a lookup would stop before it) */
    for (uint64_t i = 0; i < pp::kKeyTextProbes; i++)
        ASSERT_TRUE(pp::key_texts_add(*t, 1000 + i + i * pp::kKeyTextSlots));
    EXPECT_FALSE(pp::key_texts_add(*t, 1000 + 77 * pp::kKeyTextSlots));
    EXPECT_FALSE(pp::key_texts_has(*t, 1000 + 77 * pp::kKeyTextSlots));
    /* every slot garbage: lookups end after kKeyTextProbes slots */
    for (auto &k : t->keys)
        k.store(0xdeadbeefULL);
    EXPECT_FALSE(pp::key_texts_has(*t, 5));
    EXPECT_TRUE(pp::key_texts_has(*t, 0xdeadbeefULL));
    /* full: three quarters of the slots */
    auto f = std::make_unique<pp::KeyTexts>();
    f->count.store(pp::kKeyTextSlots / 4 * 3);
    EXPECT_FALSE(pp::key_texts_add(*f, 7));
    EXPECT_FALSE(pp::key_texts_has(*f, 7));
}

TEST(KeyCatalog, KeysOnDiskArePublishedAndOnlyThose) {
    ScopedDir dir;
    std::string path = dir.path + "/keys.catalog", error;
    const uint64_t ka = pp::stable_hash64(kA.data(), kA.size());
    const uint64_t kb = pp::stable_hash64(kB.data(), kB.size());
    {
        KeyCatalog c(path, 1 << 20);
        ASSERT_TRUE(c.open(&error)) << error;
        c.start();
        Batch b;
        b.add(kA);
        c.note(b.view(1));
        ASSERT_TRUE(WaitEntries(c, 1));
        c.stop();
    }
    auto seg = std::make_unique<pp::KeyTexts>();
    KeyCatalog c(path, 1 << 20);
    ASSERT_TRUE(c.open(&error)) << error;
    c.start();
    c.attach(seg.get());
    EXPECT_TRUE(pp::key_texts_has(*seg, ka)) << "on disk before: published at attach";
    EXPECT_FALSE(pp::key_texts_has(*seg, kb));
    Batch b;
    b.add(kB);
    b.add(kB + "C garbage\n", kb + 1); /* not its key's text: never written, never published */
    c.note(b.view(1));
    ASSERT_TRUE(WaitEntries(c, 2));
    for (int i = 0; i < 300 && !pp::key_texts_has(*seg, kb); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(pp::key_texts_has(*seg, kb)) << "published once written";
    EXPECT_FALSE(pp::key_texts_has(*seg, kb + 1));
    EXPECT_EQ(seg->count.load(), 2u);
    /* detached: nothing more is published */
    c.attach(nullptr);
    Batch later;
    later.add(kB + "R t2 public.c\n");
    c.note(later.view(1));
    ASSERT_TRUE(WaitEntries(c, 3));
    c.stop();
    EXPECT_EQ(seg->count.load(), 2u);
    EXPECT_EQ(c.unpublished(), 0u);
}

TEST(KeyCatalog, TextsNotWrittenAreNotPublished) {
    ScopedDir dir;
    std::string path = dir.path + "/keys.catalog", error;
    auto seg = std::make_unique<pp::KeyTexts>();
    KeyCatalog c(path, 200); /* room for about two entries */
    ASSERT_TRUE(c.open(&error)) << error;
    c.attach(seg.get());
    c.start();
    Batch b;
    for (int i = 0; i < 10; i++)
        b.add("pgpk1\nR t1 public.t" + std::to_string(i) + "\n");
    c.note(b.view(1));
    ASSERT_TRUE(WaitEntries(c, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    c.stop();
    EXPECT_GT(c.dropped(), 0u);
    EXPECT_EQ(seg->count.load(), c.entries()) << "exactly the texts written";
    const auto on_disk = Load(path);
    for (const auto &e : on_disk)
        EXPECT_TRUE(pp::key_texts_has(*seg, e.first));
}
