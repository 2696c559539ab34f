/*
 * test_spool.cpp — the feedback spool (daemon/state/feedback_spool.h) on a real
 * file system: numbering across restarts, torn tails, damaged entries, segment
 * rolling and release, the size limit.
 */
#include "feedback_spool.h"
#include "feedback_batch.h"
#include "crc32.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace pilotd;
using pilot::proto::FeedbackRecord;

namespace {

FeedbackRecord rec(uint64_t key, double rows) {
    FeedbackRecord r;
    memset(static_cast<void *>(&r), 0, sizeof r);
    r.key = key;
    r.template_key = key + 1;
    r.native_rows = 10;
    r.pilot_rows = -1;
    r.actual_rows = rows;
    r.kind = pilot::proto::FB_RELSET;
    r.nrels = 2;
    snprintf(r.relations, sizeof r.relations, "a, b");
    return r;
}

bool append(FeedbackSpool &s, const std::vector<FeedbackRecord> &v, const std::vector<FeedbackRecord> &dead = {}) {
    std::vector<uint32_t> reasons(dead.size(), pilot::proto::FBC_BAD_ROWS);
    FeedbackBatch b{v.data(), static_cast<uint32_t>(v.size()), dead.data(), reasons.data(),
                    static_cast<uint32_t>(dead.size())};
    return s.append(b, 1700000000000000ull);
}

std::vector<std::string> segments(const std::string &dir) {
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    for (dirent *de = d ? readdir(d) : nullptr; de != nullptr; de = readdir(d)) {
        std::string n = de->d_name;
        if (n.size() > 4 && n.compare(n.size() - 4, 4, ".seg") == 0)
            out.push_back(dir + "/" + n);
    }
    if (d)
        closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

off_t file_size(const std::string &p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 ? st.st_size : -1;
}

class SpoolTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pg_pilot_spool.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { (void)!system(("rm -rf " + dir_).c_str()); }
    std::string dir_;
};

TEST_F(SpoolTest, EntriesKeepTheirNumbersAcrossRestarts) {
    std::string id;
    {
        FeedbackSpool s(dir_, 1 << 20, 1 << 20);
        s.recover();
        id = s.id();
        EXPECT_EQ(id.size(), 32u);
        EXPECT_EQ(s.next_seq(), 0u);
        ASSERT_TRUE(append(s, {rec(1, 10), rec(2, 20)}, {rec(3, -1)}));
        ASSERT_TRUE(append(s, {rec(4, 40)}));
        EXPECT_EQ(s.next_seq(), 4u);
        EXPECT_EQ(s.appended(), 4u);
    }
    FeedbackSpool s(dir_, 1 << 20, 1 << 20);
    s.recover();
    EXPECT_EQ(s.id(), id);
    EXPECT_EQ(s.next_seq(), 4u);
    std::vector<FeedbackSpool::Entry> e;
    s.read(0, 100, &e);
    ASSERT_EQ(e.size(), 4u);
    for (uint64_t i = 0; i < 4; i++)
        EXPECT_EQ(e[i].seq, i);
    EXPECT_EQ(e[0].type, FeedbackSpool::FEEDBACK);
    EXPECT_EQ(e[0].rec.key, 1u);
    EXPECT_EQ(e[1].rec.actual_rows, 20);
    EXPECT_EQ(e[2].type, FeedbackSpool::DEAD); /* dead records follow the batch's valid ones */
    EXPECT_EQ(e[2].reason, static_cast<uint32_t>(pilot::proto::FBC_BAD_ROWS));
    EXPECT_EQ(e[3].rec.key, 4u);
    EXPECT_EQ(e[3].received_us, 1700000000000000ull);
    EXPECT_STREQ(e[3].rec.relations, "a, b");
    s.read(3, 100, &e);
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].seq, 3u);
    s.read(1, 2, &e);
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(e[1].seq, 2u);
}

TEST_F(SpoolTest, TornTailIsCutOffAndNumberingContinues) {
    {
        FeedbackSpool s(dir_, 1 << 20, 1 << 20);
        s.recover();
        ASSERT_TRUE(append(s, {rec(1, 1), rec(2, 2)}));
    }
    auto segs = segments(dir_ + "/spool");
    ASSERT_EQ(segs.size(), 1u);
    off_t good = file_size(segs[0]);
    /* a crash in the middle of the next append: a whole garbage entry and half of another */
    int fd = open(segs[0].c_str(), O_WRONLY | O_APPEND);
    std::vector<char> junk(FeedbackSpool::kEntryBytes + 70, 'x');
    ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    close(fd);
    FeedbackSpool s(dir_, 1 << 20, 1 << 20);
    s.recover();
    EXPECT_EQ(file_size(segs[0]), good);
    EXPECT_EQ(s.next_seq(), 2u);
    EXPECT_EQ(s.recovered_corrupt(), 0u);
    ASSERT_TRUE(append(s, {rec(3, 3)}));
    std::vector<FeedbackSpool::Entry> e;
    s.read(0, 10, &e);
    ASSERT_EQ(e.size(), 3u);
    EXPECT_EQ(e[2].rec.key, 3u);
    EXPECT_EQ(e[2].type, FeedbackSpool::FEEDBACK);
}

/* A spool written by an older pilotd is read after an upgrade, converted,
 * and appended to in a new segment: nothing acknowledged before the upgrade
 * is lost.  Version 1 (protocol 6): relations[72] where protocol 7 has dboid,
 * guard_arm and relations[64]; version 2 (protocol 7): relations[64] where
 * protocol 8 has table_set and relations[56]. */
class SpoolUpgradeTest : public SpoolTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(SpoolUpgradeTest, OlderSegmentsAreReadAfterAnUpgrade) {
    const uint32_t version = GetParam();
    const size_t names_len = version == 1 ? 72 : 64;
    const std::string long_names(names_len - 2, 'x'); /* fitted then, not in today's 56 bytes */
    {
        FeedbackSpool s(dir_, 1 << 20, 1 << 20);
        s.recover();
        FeedbackRecord first = rec(1, 1), longer = rec(2, 2);
        first.dboid = longer.dboid = 7;
        ASSERT_TRUE(append(s, {first, longer}));
    }
    /* rewrite the segment as that version would have written it */
    auto segs = segments(dir_ + "/spool");
    ASSERT_EQ(segs.size(), 1u);
    int fd = open(segs[0].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, &version, 4, 8), 4);
    const size_t rec_at = 24;
    const size_t names_at =
        rec_at + (version == 1 ? offsetof(FeedbackRecord, dboid) : offsetof(FeedbackRecord, table_set));
    for (int k = 0; k < 2; k++) {
        unsigned char e[FeedbackSpool::kEntryBytes];
        const off_t off = static_cast<off_t>(FeedbackSpool::kHeaderBytes + k * FeedbackSpool::kEntryBytes);
        ASSERT_EQ(pread(fd, e, sizeof e, off), static_cast<ssize_t>(sizeof e));
        memset(e + names_at, 0, names_len);
        memcpy(e + names_at, k == 0 ? "a, b" : long_names.c_str(), k == 0 ? 4 : long_names.size());
        const uint32_t crc = crc32(e, 156);
        memcpy(e + 156, &crc, 4);
        ASSERT_EQ(pwrite(fd, e, sizeof e, off), static_cast<ssize_t>(sizeof e));
    }
    close(fd);
    {
        FeedbackSpool s(dir_, 1 << 20, 1 << 20);
        s.recover();
        EXPECT_EQ(s.recovered_corrupt(), 0u);
        EXPECT_EQ(s.next_seq(), 2u);
        ASSERT_TRUE(append(s, {rec(3, 3)}));
        EXPECT_EQ(segments(dir_ + "/spool").size(), 2u) << "appends go to a segment of today's version";
    }
    FeedbackSpool s(dir_, 1 << 20, 1 << 20);
    s.recover();
    std::vector<FeedbackSpool::Entry> e;
    s.read(0, 10, &e);
    ASSERT_EQ(e.size(), 3u);
    EXPECT_EQ(e[0].type, FeedbackSpool::FEEDBACK);
    EXPECT_STREQ(e[0].rec.relations, "a, b");
    EXPECT_EQ(e[0].rec.dboid, version == 1 ? 0u : 7u) << "version 1 did not know the database";
    EXPECT_EQ(e[0].rec.guard_arm, 0u);
    EXPECT_EQ(e[0].rec.table_set, 0u) << "no table set before protocol 8";
    EXPECT_EQ(std::string(e[1].rec.relations), long_names.substr(0, pilot::proto::kRelationsLen - 1))
        << "cut to fit";
    EXPECT_EQ(e[1].rec.actual_rows, 2);
    EXPECT_EQ(e[2].rec.key, 3u);
    EXPECT_STREQ(e[2].rec.relations, "a, b");
}

INSTANTIATE_TEST_SUITE_P(Versions, SpoolUpgradeTest, ::testing::Values(1u, 2u));

TEST_F(SpoolTest, DamagedEntryIsReadBackAsDeadLetter) {
    {
        FeedbackSpool s(dir_, 1 << 20, 1 << 20);
        s.recover();
        ASSERT_TRUE(append(s, {rec(1, 1), rec(2, 2), rec(3, 3)}));
    }
    auto segs = segments(dir_ + "/spool");
    ASSERT_EQ(segs.size(), 1u);
    int fd = open(segs[0].c_str(), O_WRONLY);
    char bad = 0x5a;
    /* a byte inside the second entry's record */
    ASSERT_EQ(pwrite(fd, &bad, 1, FeedbackSpool::kHeaderBytes + FeedbackSpool::kEntryBytes + 40), 1);
    close(fd);
    FeedbackSpool s(dir_, 1 << 20, 1 << 20);
    s.recover();
    EXPECT_EQ(s.recovered_corrupt(), 1u);
    EXPECT_EQ(s.next_seq(), 3u);
    std::vector<FeedbackSpool::Entry> e;
    s.read(0, 10, &e);
    ASSERT_EQ(e.size(), 3u);
    EXPECT_EQ(e[0].type, FeedbackSpool::FEEDBACK);
    EXPECT_EQ(e[1].type, FeedbackSpool::DEAD);
    EXPECT_EQ(e[1].reason, FeedbackSpool::kCorruptEntry);
    EXPECT_EQ(e[1].seq, 1u);
    EXPECT_EQ(e[2].type, FeedbackSpool::FEEDBACK);
    EXPECT_EQ(e[2].rec.key, 3u);
}

TEST_F(SpoolTest, SegmentsRollAndCommittedOnesAreReleasedButNotTheNewest) {
    const uint64_t seg_bytes = FeedbackSpool::kHeaderBytes + 4 * FeedbackSpool::kEntryBytes;
    {
        FeedbackSpool s(dir_, 1 << 20, seg_bytes);
        s.recover();
        for (int i = 0; i < 5; i++)
            ASSERT_TRUE(append(s, {rec(10 + 2 * i, 1), rec(11 + 2 * i, 2)}));
        EXPECT_EQ(s.next_seq(), 10u);
        EXPECT_GE(segments(dir_ + "/spool").size(), 3u);
        std::vector<FeedbackSpool::Entry> e;
        s.read(0, 100, &e); /* across segments, in order */
        ASSERT_EQ(e.size(), 10u);
        for (uint64_t i = 0; i < 10; i++)
            EXPECT_EQ(e[i].seq, i);
        s.release(5);
        EXPECT_LE(s.first_seq(), 5u);
        EXPECT_GT(s.first_seq(), 0u);
        s.read(0, 100, &e); /* what is gone is gone: reading starts at the oldest kept */
        EXPECT_EQ(e.front().seq, s.first_seq());
        s.release(10); /* everything committed: the newest segment stays */
        EXPECT_EQ(segments(dir_ + "/spool").size(), 1u);
    }
    FeedbackSpool s(dir_, 1 << 20, seg_bytes);
    s.recover();
    EXPECT_EQ(s.next_seq(), 10u); /* numbers are never reused */
    ASSERT_TRUE(append(s, {rec(99, 1)}));
    std::vector<FeedbackSpool::Entry> e;
    s.read(10, 10, &e);
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].rec.key, 99u);
}

TEST_F(SpoolTest, FullSpoolRefusesAndAcknowledgesNothing) {
    const uint64_t max = FeedbackSpool::kHeaderBytes + 3 * FeedbackSpool::kEntryBytes;
    FeedbackSpool s(dir_, max, 1 << 20);
    s.recover();
    ASSERT_TRUE(append(s, {rec(1, 1), rec(2, 2)}));
    EXPECT_FALSE(append(s, {rec(3, 3), rec(4, 4)}));
    EXPECT_EQ(s.refused(), 2u);
    EXPECT_EQ(s.next_seq(), 2u);
    ASSERT_TRUE(append(s, {rec(3, 3)}));
    EXPECT_EQ(s.next_seq(), 3u);
}

TEST_F(SpoolTest, CommittedEntriesFreeRoomEvenInTheNewestSegment) {
    const uint64_t max = FeedbackSpool::kHeaderBytes + 3 * FeedbackSpool::kEntryBytes;
    FeedbackSpool s(dir_, max, 1 << 20);
    s.recover();
    ASSERT_TRUE(append(s, {rec(1, 1), rec(2, 2), rec(3, 3)}));
    EXPECT_FALSE(s.has_room(1));
    s.release(3); /* all committed; the segment itself stays */
    EXPECT_TRUE(s.has_room(3));
    ASSERT_TRUE(append(s, {rec(4, 4), rec(5, 5)}));
    EXPECT_EQ(s.next_seq(), 5u);
}

TEST_F(SpoolTest, AdvanceToContinuesNumberingAboveTheStoresWatermark) {
    {
        FeedbackSpool s(dir_, 1 << 20, 1 << 20);
        s.recover();
        ASSERT_TRUE(append(s, {rec(1, 1)}));
        ASSERT_TRUE(s.advance_to(100));
        EXPECT_EQ(s.next_seq(), 100u);
        ASSERT_TRUE(s.advance_to(50)); /* never backwards */
        EXPECT_EQ(s.next_seq(), 100u);
        ASSERT_TRUE(append(s, {rec(2, 2)}));
    }
    FeedbackSpool s(dir_, 1 << 20, 1 << 20);
    s.recover();
    EXPECT_EQ(s.next_seq(), 101u);
    std::vector<FeedbackSpool::Entry> e;
    s.read(100, 10, &e);
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(e[0].seq, 100u);
    EXPECT_EQ(e[0].rec.key, 2u);
    s.read(0, 10, &e); /* the old entry, then the jump */
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(e[0].seq, 0u);
    EXPECT_EQ(e[1].seq, 100u);
}

TEST_F(SpoolTest, DamagedIdentityIsAnErrorNotANewSpool) {
    {
        FeedbackSpool s(dir_, 1 << 20, 1 << 20);
        s.recover();
    }
    FILE *f = fopen((dir_ + "/spool/id").c_str(), "w");
    fputs("not-an-id\n", f);
    fclose(f);
    FeedbackSpool s(dir_, 1 << 20, 1 << 20);
    EXPECT_THROW(s.recover(), std::runtime_error);
}

/* A base backup copies DATADIR/pg_pilot but not the spool's pgsql_tmp*
 * marker: such a spool is another server's, set aside; this server's own
 * (marked), one outside the data directory, or one of an older pilotd in a
 * data directory not made by a base backup stay. */
TEST_F(SpoolTest, ASpoolCopiedByABaseBackupIsSetAside) {
    const std::string pgdata = dir_ + "/data", state = pgdata + "/pg_pilot";
    ASSERT_EQ(system(("mkdir -p " + state).c_str()), 0);
    std::string original;
    {
        FeedbackSpool s(state, 1 << 20, 1 << 20);
        s.recover();
        original = s.id();
        ASSERT_TRUE(append(s, {rec(1, 10)}));
    }
    const std::string marker = state + "/spool/pgsql_tmp.spool_of_this_server";
    EXPECT_EQ(file_size(marker) > 0, true) << "recover() marks the spool";
    /* its own server, even made by a base backup: kept */
    ASSERT_EQ(system(("touch " + pgdata + "/backup_label.old").c_str()), 0);
    EXPECT_FALSE(FeedbackSpool::set_aside_if_copied(state, pgdata));
    /* a copy: what pg_basebackup leaves (no marker) */
    ASSERT_EQ(unlink(marker.c_str()), 0);
    EXPECT_FALSE(FeedbackSpool::set_aside_if_copied(state, "")) << "no data directory known";
    EXPECT_FALSE(FeedbackSpool::set_aside_if_copied(state, dir_ + "/elsewhere")) << "not inside that one";
    EXPECT_TRUE(FeedbackSpool::set_aside_if_copied(state, pgdata));
    FeedbackSpool s(state, 1 << 20, 1 << 20);
    s.recover();
    EXPECT_NE(s.id(), original) << "an identity of its own";
    EXPECT_EQ(s.next_seq(), 0u) << "none of the copied records";
    EXPECT_GT(file_size(marker), 0);
    EXPECT_EQ(system(("ls -d " + state + "/spool.copied-* >/dev/null").c_str()), 0) << "the copy is kept";
}

TEST_F(SpoolTest, AnOlderPilotdsSpoolWithoutTheMarkerIsAdopted) {
    const std::string pgdata = dir_ + "/data", state = pgdata + "/pg_pilot";
    ASSERT_EQ(system(("mkdir -p " + state).c_str()), 0);
    std::string id;
    {
        FeedbackSpool s(state, 1 << 20, 1 << 20);
        s.recover();
        id = s.id();
        ASSERT_TRUE(append(s, {rec(1, 10)}));
    }
    ASSERT_EQ(unlink((state + "/spool/pgsql_tmp.spool_of_this_server").c_str()), 0);
    EXPECT_FALSE(FeedbackSpool::set_aside_if_copied(state, pgdata)) << "no backup label: not a copy";
    FeedbackSpool s(state, 1 << 20, 1 << 20);
    s.recover();
    EXPECT_EQ(s.id(), id);
    EXPECT_EQ(s.next_seq(), 1u);
    EXPECT_GT(file_size(state + "/spool/pgsql_tmp.spool_of_this_server"), 0) << "marked now";
}

} // namespace
