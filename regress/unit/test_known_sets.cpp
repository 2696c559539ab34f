/*
 * test_known_sets.cpp — the known-sets filter: table-set numbers
 * (pilot_protocol.h), what pilotd publishes
 * (daemon/ipc/known_sets.h) and how the memo journal and the oracle file keep the
 * table sets across restarts, also when written by an older pilotd.
 */
#include "known_sets.h"
#include "memo_journal.h"
#include "memo_store.h"
#include "oracle_store.h"
#include "crc32.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

using namespace pilotd;
namespace pp = pilot::proto;

namespace {

uint64_t table_hash(const std::string &name) { return pp::stable_hash64(name.data(), name.size()); }

uint64_t table_set(const std::vector<std::string> &tables) {
    uint64_t acc = 0;
    for (const auto &t : tables)
        acc = pp::table_set_add(acc, table_hash(t));
    return pp::table_set_finish(acc);
}

std::unique_ptr<pp::KnownSets> segment_filter() {
    return std::unique_ptr<pp::KnownSets>(new pp::KnownSets()); /* zeroed, as a new segment */
}

class TempDir : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pp_known_sets.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { (void)!system(("rm -rf " + dir_).c_str()); }
    std::string dir_;
};

pp::FeedbackRecord observation(uint64_t key, double rows, uint64_t tables) {
    pp::FeedbackRecord r;
    memset(static_cast<void *>(&r), 0, sizeof r);
    r.key = key;
    r.template_key = key + 1;
    r.native_rows = 10;
    r.pilot_rows = -1;
    r.actual_rows = rows;
    r.kind = pp::FB_RELSET;
    r.nrels = 2;
    r.table_set = tables;
    snprintf(r.relations, sizeof r.relations, "a, b");
    return r;
}

} // namespace

TEST(TableSet, OrderOfTablesDoesNotMatterTheirCountDoes) {
    EXPECT_EQ(table_set({"public.a", "public.b"}), table_set({"public.b", "public.a"}));
    EXPECT_NE(table_set({"public.a", "public.a"}), table_set({"public.a"})) << "a self-join is another set";
    EXPECT_NE(table_set({"public.a"}), table_set({"public.a*"})) << "with inheritance children is another table";
    EXPECT_NE(table_set({"public.a", "public.b"}), table_set({"public.a", "public.c"}));
    EXPECT_NE(table_set({}), 0u);
}

TEST(KnownSetsFilter, AnswersOnlyWhatIsKnown) {
    auto seg = segment_filter();
    const uint64_t ab = table_set({"public.a", "public.b"}), bc = table_set({"public.b", "public.c"}),
                   cd = table_set({"public.c", "public.d"});
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, ab)) << "a new segment asks for everything until published";
    KnownSetsFilter f;
    f.attach(seg.get());
    EXPECT_EQ(seg->state.load(), static_cast<uint32_t>(pp::KNOWN_SETS_FILTER));
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, ab)) << "nothing known yet";

    EXPECT_TRUE(f.add_memo(ab));
    EXPECT_FALSE(f.add_memo(ab)) << "known already";
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, ab));
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, bc));

    f.set_oracle({bc}, true);
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, ab)) << "the memo's part stays through an oracle rebuild";
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, bc));
    f.set_oracle({cd}, true); /* loaded with replace */
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, bc)) << "the oracle's old sets are gone";
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, cd));

    EXPECT_FALSE(pp::known_sets_may_answer(*seg, pp::model_database_mark(5)));
    f.set_model_databases({5});
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, pp::model_database_mark(5)));
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, pp::model_database_mark(6)));
    f.set_model_databases({7, 5}); /* each database with a serving version of its own */
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, pp::model_database_mark(5)));
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, pp::model_database_mark(7)));
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, pp::model_database_mark(6)));
    f.set_model_databases({});
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, pp::model_database_mark(5)));
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, pp::model_database_mark(7)));
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, ab));
}

TEST(KnownSetsFilter, AnUnknownTableSetTurnsTheFilterOff) {
    auto seg = segment_filter();
    const uint64_t ab = table_set({"public.a", "public.b"});
    KnownSetsFilter f;
    f.attach(seg.get());
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, ab));
    EXPECT_FALSE(f.add_memo(0)) << "0 is no table set";
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, ab));
    f.restore_memo({}, false); /* memo entries of unknown tables */
    EXPECT_EQ(seg->state.load(), static_cast<uint32_t>(pp::KNOWN_SETS_ASK_ALL));
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, ab));
    EXPECT_FALSE(f.filtering());
    f.restore_memo({ab}, true); /* observed again */
    EXPECT_TRUE(f.filtering());
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, table_set({"public.x"})));

    KnownSetsFilter g;
    g.restore_memo({ab}, true);
    g.set_oracle({}, false); /* an oracle file of an older pilotd */
    g.attach(seg.get());
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, table_set({"public.x"})));
    g.set_oracle({}, true); /* cleared */
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, table_set({"public.x"})));
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, ab));
    g.detach(); /* pilotd stops: backends ask for everything */
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, table_set({"public.x"})));
}

TEST(KnownSetsFilter, ABufferBeingRewrittenIsNotTrusted) {
    auto seg = segment_filter();
    KnownSetsFilter f;
    f.attach(seg.get());
    const uint64_t unknown = table_set({"public.u"});
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, unknown));
    const uint32_t b = seg->active.load() & 1u;
    seg->seq[b].fetch_add(1); /* odd: pilotd is writing it */
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, unknown));
    seg->seq[b].fetch_add(1);
    EXPECT_FALSE(pp::known_sets_may_answer(*seg, unknown));
    seg->state.store(77); /* garbage: ask */
    EXPECT_TRUE(pp::known_sets_may_answer(*seg, unknown));
}

TEST(KnownSetsFilter, FewFalsePositivesAtTenThousandSets) {
    auto seg = segment_filter();
    KnownSetsFilter f;
    f.attach(seg.get());
    for (int i = 0; i < 10000; i++)
        f.add_memo(table_set({"public.t" + std::to_string(i), "public.u"}));
    for (int i = 0; i < 10000; i++)
        ASSERT_TRUE(pp::known_sets_may_answer(*seg, table_set({"public.t" + std::to_string(i), "public.u"})));
    int wrong = 0;
    for (int i = 0; i < 10000; i++)
        wrong += pp::known_sets_may_answer(*seg, table_set({"public.t" + std::to_string(i), "public.v"}));
    EXPECT_LT(wrong, 20) << "expected about 0.002 % at 3 bits of 1M per set";
}

TEST_F(TempDir, MemoJournalKeepsTheTableSets) {
    const uint64_t ab = table_set({"public.a", "public.b"}), bc = table_set({"public.b", "public.c"});
    {
        MemoStore memo(100);
        MemoJournal j(dir_, 1 << 20, memo);
        j.recover();
        std::vector<pp::FeedbackRecord> recs = {observation(1, 10, ab), observation(2, 20, ab),
                                                observation(3, 30, bc)};
        ASSERT_TRUE(j.append(recs.data(), static_cast<uint32_t>(recs.size())));
        memo.observe(recs.data(), static_cast<uint32_t>(recs.size()));
        EXPECT_EQ(memo.without_table_set(), 0u);
    }
    for (int restart = 0; restart < 2; restart++) { /* replayed, then compacted and replayed */
        MemoStore memo(100);
        MemoJournal j(dir_, 1 << 20, memo);
        j.recover();
        std::vector<uint64_t> sets = memo.table_sets();
        std::sort(sets.begin(), sets.end());
        std::vector<uint64_t> want = {ab, bc};
        std::sort(want.begin(), want.end());
        EXPECT_EQ(sets, want) << restart;
        EXPECT_EQ(memo.without_table_set(), 0u) << restart;
        MemoStore::Entry e;
        ASSERT_TRUE(memo.lookup(0, 3, &e));
        EXPECT_EQ(e.table_set, bc);
        EXPECT_EQ(e.rows, 30);
    }
}

TEST_F(TempDir, VersionOneMemoJournalIsReadWithoutTableSets) {
    /* as pilotd of protocol 7 wrote it: version 1, 32-byte records, no table set */
    std::string bytes("PLTMEMOJ", 8);
    const uint32_t v1 = 1, zero = 0, tag = 0x31524A4Du; /* "MJR1" */
    bytes.append(reinterpret_cast<const char *>(&v1), 4);
    bytes.append(reinterpret_cast<const char *>(&zero), 4);
    for (uint64_t key = 9; key <= 10; key++) {
        unsigned char r[32];
        const double rows = static_cast<double>(key * 10);
        const uint64_t count = 1;
        memcpy(r, &key, 8);
        memcpy(r + 8, &rows, 8);
        memcpy(r + 16, &count, 8);
        memcpy(r + 24, &tag, 4);
        const uint32_t crc = crc32(r, 28);
        memcpy(r + 28, &crc, 4);
        bytes.append(reinterpret_cast<const char *>(r), 32);
    }
    {
        std::ofstream out(dir_ + "/memo.journal", std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    const uint64_t ab = table_set({"public.a", "public.b"});
    {
        MemoStore memo(100);
        MemoJournal j(dir_, 1 << 20, memo);
        j.recover();
        MemoStore::Entry e;
        ASSERT_TRUE(memo.lookup(0, 9, &e)) << "nothing acknowledged is lost";
        EXPECT_EQ(e.rows, 90);
        EXPECT_EQ(memo.without_table_set(), 2u) << "their tables are unknown: the filter must stay off";
        /* observed again: its table set is known from now on, also after a restart */
        pp::FeedbackRecord again = observation(9, 91, ab);
        ASSERT_TRUE(j.append(&again, 1));
        memo.observe(&again, 1);
        EXPECT_EQ(memo.without_table_set(), 1u);
        pp::FeedbackRecord other = observation(10, 101, ab);
        ASSERT_TRUE(j.append(&other, 1));
        memo.observe(&other, 1);
        EXPECT_EQ(memo.without_table_set(), 0u) << "every set observed again: the filter can work";
    }
    MemoStore memo(100);
    MemoJournal j(dir_, 1 << 20, memo);
    j.recover();
    EXPECT_EQ(memo.without_table_set(), 0u);
    EXPECT_EQ(memo.table_sets(), std::vector<uint64_t>{ab});
    EXPECT_EQ(memo.size(), 2u);
}

/* Two databases with the same tables and queries have the same subplan
 * keys: the memo answers each with its own observations, also after a
 * replay of its journal; an entry without a database (a journal of an older
 * pilotd) answers every database, as it did. */
TEST_F(TempDir, MemoAnswersEachDatabaseWithItsOwnObservations) {
    const uint64_t ab = table_set({"public.a", "public.b"});
    pp::FeedbackRecord in_a = observation(7, 100, ab), in_b = observation(7, 5, ab), old = observation(8, 42, ab);
    in_a.dboid = 16384;
    in_b.dboid = 16385;
    old.dboid = 0;
    {
        MemoStore memo(100);
        MemoJournal j(dir_, 1 << 20, memo);
        j.recover();
        for (pp::FeedbackRecord *r : {&in_a, &in_b, &old}) {
            ASSERT_TRUE(j.append(r, 1));
            memo.observe(r, 1);
        }
    }
    for (int restart = 0; restart < 2; restart++) { /* replayed, then compacted and replayed */
        MemoStore memo(100);
        MemoJournal j(dir_, 1 << 20, memo);
        j.recover();
        EXPECT_EQ(memo.size(), 3u) << restart;
        MemoStore::Entry e;
        ASSERT_TRUE(memo.lookup(16384, 7, &e));
        EXPECT_EQ(e.rows, 100) << "database A's count";
        ASSERT_TRUE(memo.lookup(16385, 7, &e));
        EXPECT_EQ(e.rows, 5) << "database B's count, not A's";
        EXPECT_FALSE(memo.lookup(16386, 7, &e)) << "a third database never saw the set";
        pp::EstimateItem items[2];
        memset(static_cast<void *>(items), 0, sizeof items);
        items[0].key = 7;
        items[1].key = 8;
        double rows[2];
        bool known[2];
        memo.lookup(16385, items, 2, rows, known);
        EXPECT_TRUE(known[0] && known[1]);
        EXPECT_EQ(rows[0], 5);
        EXPECT_EQ(rows[1], 42) << "an entry without a database answers every database";
        memo.lookup(16386, items, 2, rows, known);
        EXPECT_FALSE(known[0]);
        EXPECT_TRUE(known[1]);
    }
}

TEST(OracleFile, TableSetsRoundTripAndOldFilesAreIncomplete) {
    OracleMap m = {{11, 1.5}, {12, 2.5}};
    OracleTableSets sets;
    sets.sets = {table_set({"public.a"}), table_set({"public.a", "public.b"})};
    sets.complete = true;
    const std::string bytes = oracle_encode(m, sets);
    OracleMap back;
    OracleTableSets back_sets;
    std::string error;
    ASSERT_TRUE(oracle_decode(bytes, &back, &back_sets, &error)) << error;
    EXPECT_EQ(back, m);
    EXPECT_EQ(back_sets.sets, sets.sets);
    EXPECT_TRUE(back_sets.complete);
    /* truncated inside the table sets: refused */
    std::string cut = bytes.substr(0, bytes.size() - 16);
    EXPECT_FALSE(oracle_decode(cut, &back, &back_sets, &error));

    /* version 1: entries only */
    std::string v1(bytes.data(), 24 + 2 * 16);
    const uint32_t one = 1, zero = 0;
    memcpy(&v1[8], &one, 4);
    memcpy(&v1[12], &zero, 4);
    const uint32_t crc = crc32(v1.data(), v1.size());
    v1.append(reinterpret_cast<const char *>(&crc), 4);
    v1.append(reinterpret_cast<const char *>(&zero), 4);
    ASSERT_TRUE(oracle_decode(v1, &back, &back_sets, &error)) << error;
    EXPECT_EQ(back, m);
    EXPECT_TRUE(back_sets.sets.empty());
    EXPECT_FALSE(back_sets.complete) << "entries of unknown tables";
}

TEST_F(TempDir, OracleCommitsPublishTheirTableSets) {
    OracleStore oracle(dir_);
    oracle.load();
    OracleTableSets seen;
    int calls = 0;
    oracle.set_table_sets_listener([&](const OracleTableSets &s) {
        seen = s;
        calls++;
    });
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(seen.complete);
    const uint64_t a = table_set({"public.a"}), ab = table_set({"public.a", "public.b"});
    uint64_t n;
    std::string error;
    ASSERT_TRUE(oracle.commit({{1, 10, a}, {2, 20, a}}, true, &n, &error)) << error;
    EXPECT_EQ(seen.sets, std::vector<uint64_t>{a});
    ASSERT_TRUE(oracle.commit({{3, 30, ab}}, false, &n, &error)) << error;
    EXPECT_EQ(seen.sets.size(), 2u) << "a merge keeps the old sets";
    ASSERT_TRUE(oracle.commit({{4, 40, 0}}, false, &n, &error)) << error;
    EXPECT_FALSE(seen.complete);
    /* after a restart */
    OracleStore again(dir_);
    again.load();
    OracleTableSets reloaded;
    again.set_table_sets_listener([&](const OracleTableSets &s) { reloaded = s; });
    EXPECT_EQ(reloaded.sets.size(), 2u);
    EXPECT_FALSE(reloaded.complete);
    ASSERT_TRUE(again.clear(&error)) << error;
    EXPECT_TRUE(reloaded.complete) << "cleared: nothing unknown is left";
    EXPECT_TRUE(reloaded.sets.empty());
}
