/* Unit tests of the plan guard's pilotd half: the rule (daemon/guard/guard_rule.h),
 * the book that keeps each template's runs and publishes its row in the
 * segment's table (daemon/guard/guard_book.h), the backends' lookup of that row
 * (pilot_protocol.h guard_lookup()), and the pins file. */
#include "guard_book.h"
#include "guard_rule.h"
#include "pilot_protocol.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

using namespace pilot::proto;
using namespace pilotd;

namespace {

FeedbackRecord QueryRun(uint32_t dboid, uint64_t query_id, uint32_t arm, double planning_ms, double execution_ms) {
    FeedbackRecord r{};
    r.kind = FB_QUERY;
    r.query_id = query_id;
    r.dboid = dboid;
    r.guard_arm = arm;
    r.planning_ms = planning_ms;
    r.table_rows_log = -1;
    r.execution_ms = execution_ms;
    return r;
}

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/pp_guard_XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { (void)system(("rm -rf '" + path + "'").c_str()); }
};

std::unique_ptr<GuardTable> NewTable() {
    std::unique_ptr<GuardTable> t(new GuardTable());
    memset(static_cast<void *>(t.get()), 0, sizeof(GuardTable));
    return t;
}

TEST(GuardRule, ExploresUntilEachArmHasItsRuns) {
    GuardRule rule; /* 3 runs, 10 %, 0.5 ms */
    const double pilot[] = {100, 100, 100}, native[] = {10, 10};
    EXPECT_EQ(guard_decide(rule, pilot, 3, native, 2).decision, GUARD_EXPLORE);
    EXPECT_EQ(guard_decide(rule, pilot, 2, native, 2).decision, GUARD_EXPLORE);
    EXPECT_EQ(guard_decide(rule, nullptr, 0, nullptr, 0).decision, GUARD_EXPLORE);
}

TEST(GuardRule, ByDefaultPgPilotMustNotBeSlower) {
    GuardRule rule; /* ratio 1, 0.2 ms */
    const double native[] = {100, 100, 100};
    const double a_bit[] = {101, 101, 102};      /* 1 ms slower: the planning work of a new connection */
    const double faster[] = {99, 99.5, 98};
    EXPECT_EQ(guard_decide(rule, a_bit, 3, native, 3).decision, GUARD_NATIVE);
    EXPECT_EQ(guard_decide(rule, faster, 3, native, 3).decision, GUARD_PILOT);
    const double tiny_native[] = {0.4, 0.4, 0.4}, tiny_pilot[] = {0.5, 0.5, 0.5}; /* within jitter */
    EXPECT_EQ(guard_decide(rule, tiny_pilot, 3, tiny_native, 3).decision, GUARD_PILOT);
}

TEST(GuardRule, NativeOnlyBeyondBothThresholds) {
    GuardRule rule;
    rule.slower_ratio = 1.1;
    rule.min_difference_ms = 0.5;
    const double native[] = {100, 100, 100};
    const double slower[] = {111, 112, 115};   /* > 10 % and > 0.5 ms */
    const double close[] = {105, 108, 109};    /* within 10 % */
    const double faster[] = {50, 60, 55};
    EXPECT_EQ(guard_decide(rule, slower, 3, native, 3).decision, GUARD_NATIVE);
    EXPECT_EQ(guard_decide(rule, close, 3, native, 3).decision, GUARD_PILOT);
    EXPECT_EQ(guard_decide(rule, faster, 3, native, 3).decision, GUARD_PILOT);
    /* sub-millisecond: 50 % slower but only 0.2 ms: noise, stays */
    const double tiny_native[] = {0.4, 0.4, 0.4}, tiny_pilot[] = {0.6, 0.6, 0.6};
    EXPECT_EQ(guard_decide(rule, tiny_pilot, 3, tiny_native, 3).decision, GUARD_PILOT);
}

TEST(GuardRule, OneSlowRunDoesNotDecide) {
    GuardRule rule;
    const double native[] = {100, 101, 99};
    const double pilot[] = {60, 900, 61}; /* one run hit by something else */
    GuardVerdict v = guard_decide(rule, pilot, 3, native, 3);
    EXPECT_EQ(v.decision, GUARD_PILOT);
    EXPECT_DOUBLE_EQ(v.pilot_median_ms, 61);
    EXPECT_DOUBLE_EQ(v.native_median_ms, 100);
    EXPECT_DOUBLE_EQ(median_ms(pilot, 2), 480);
    EXPECT_EQ(median_ms(nullptr, 0), -1);
}

TEST(GuardBook, PublishesWhatBackendsLookUp) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    GuardEntry e;
    EXPECT_FALSE(guard_lookup(*table, 5, 42, &e)); /* a new template: no row */

    /* the first run (pg_pilot's estimates) gives it a row, exploring */
    FeedbackRecord r = QueryRun(5, 42, ARM_PILOT, 0.5, 150);
    book.observe(&r, 1, 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_EXPLORE);
    EXPECT_EQ(e.pilot_runs, 1u);
    EXPECT_EQ(e.native_runs, 0u);
    EXPECT_FALSE(guard_lookup(*table, 6, 42, &e)) << "another database's template";
    EXPECT_FALSE(guard_lookup(*table, 5, 43, &e));

    /* slower with pg_pilot's: 150 ms against 100 ms -> native after 3 + 3 */
    std::vector<FeedbackRecord> runs;
    for (int i = 0; i < 3; i++)
        runs.push_back(QueryRun(5, 42, ARM_NATIVE, 0.4, 100 + i));
    runs.push_back(QueryRun(5, 42, ARM_PILOT, 0.5, 151));
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_EXPLORE) << "2 runs of pg_pilot's so far";
    r = QueryRun(5, 42, ARM_PILOT, 0.5, 149);
    book.observe(&r, 1, 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_NATIVE);
    EXPECT_NEAR(e.pilot_median_ms, 150.5, 0.01);
    EXPECT_NEAR(e.native_median_ms, 101.4, 0.01);
    EXPECT_NE(e.decided_unix, 0u);
    EXPECT_EQ(book.decisions_native(), 1u);

    /* records the guard does not time are ignored */
    FeedbackRecord other[3] = {QueryRun(5, 77, ARM_UNKNOWN, 1, 1), QueryRun(5, 0, ARM_PILOT, 1, 1), QueryRun(5, 78, ARM_PILOT, 1, 1)};
    other[2].kind = FB_RELSET;
    book.observe(other, 3, 0);
    EXPECT_FALSE(guard_lookup(*table, 5, 77, &e));
    EXPECT_FALSE(guard_lookup(*table, 5, 78, &e));
}

TEST(GuardBook, NewEstimatesReopenExploration) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    std::vector<FeedbackRecord> runs;
    for (int i = 0; i < 3; i++) {
        runs.push_back(QueryRun(1, 9, ARM_PILOT, 0, 10));
        runs.push_back(QueryRun(1, 9, ARM_NATIVE, 0, 20));
    }
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 7);
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 1, 9, &e));
    EXPECT_EQ(e.decision, GUARD_PILOT);
    /* a template that went native */
    runs.clear();
    for (int i = 0; i < 3; i++) {
        runs.push_back(QueryRun(1, 10, ARM_PILOT, 0, 90));
        runs.push_back(QueryRun(1, 10, ARM_NATIVE, 0, 20));
    }
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 7);
    ASSERT_TRUE(guard_lookup(*table, 1, 10, &e));
    EXPECT_EQ(e.decision, GUARD_NATIVE);
    /* another model version serves: pg_pilot's runs are forgotten ... */
    book.observe(nullptr, 0, 8);
    ASSERT_TRUE(guard_lookup(*table, 1, 9, &e));
    EXPECT_EQ(e.decision, GUARD_EXPLORE);
    EXPECT_EQ(e.pilot_runs, 0u);
    EXPECT_EQ(e.native_runs, 3u);
    /* ... but a native template keeps its runs (probes bring the new ones in) */
    ASSERT_TRUE(guard_lookup(*table, 1, 10, &e));
    EXPECT_EQ(e.decision, GUARD_NATIVE);
    EXPECT_EQ(e.pilot_runs, 3u);
    FeedbackRecord probe[8];
    for (FeedbackRecord &p : probe)
        p = QueryRun(1, 10, ARM_PILOT, 0, 10);
    book.observe(probe, 8, 8);
    ASSERT_TRUE(guard_lookup(*table, 1, 10, &e));
    EXPECT_EQ(e.decision, GUARD_PILOT) << "the new estimates' probes win it back";
}

FeedbackRecord RelationSet(uint32_t dboid, uint64_t query_id, uint64_t template_key) {
    FeedbackRecord r{};
    r.kind = FB_RELSET;
    r.query_id = query_id;
    r.dboid = dboid;
    r.key = template_key * 7;
    r.template_key = template_key;
    r.nrels = 1;
    r.native_rows = r.pilot_rows = r.actual_rows = 1;
    strcpy(r.relations, "t");
    return r;
}

TEST(GuardBook, ANewPlanWithPgPilotsEstimatesIsExploredAgain) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    /* runs with pg_pilot's estimates over sets 1, 2; one native run */
    std::vector<FeedbackRecord> runs;
    for (int i = 0; i < 2; i++) {
        runs.push_back(RelationSet(1, 5, 1));
        runs.push_back(RelationSet(1, 5, 2));
        runs.push_back(QueryRun(1, 5, ARM_PILOT, 0, 10));
    }
    runs.push_back(QueryRun(1, 5, ARM_NATIVE, 0, 12));
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 1, 5, &e));
    EXPECT_EQ(e.pilot_runs, 2u) << "the same sets: the same plan";
    /* the memo learned them: the next plan executes set 3 */
    runs = {RelationSet(1, 5, 1), RelationSet(1, 5, 3), QueryRun(1, 5, ARM_PILOT, 0, 8)};
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    ASSERT_TRUE(guard_lookup(*table, 1, 5, &e));
    EXPECT_EQ(e.pilot_runs, 1u) << "runs of the earlier plan forgotten, the new plan's kept";
    EXPECT_EQ(e.native_runs, 1u);
    EXPECT_EQ(e.decision, GUARD_EXPLORE);
}

TEST(GuardBook, ResetForgetsTheRunsOfUnpinnedTemplatesOfOneDatabase) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    std::vector<FeedbackRecord> runs;
    for (uint64_t q : {11, 12, 13})
        for (int i = 0; i < 3; i++) {
            runs.push_back(QueryRun(q == 13 ? 2 : 1, q, ARM_PILOT, 0, 10));
            runs.push_back(QueryRun(q == 13 ? 2 : 1, q, ARM_NATIVE, 0, 50));
        }
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    std::string why;
    ASSERT_TRUE(book.pin(GuardTemplateKey{1, 12}, ARM_PILOT, &why)) << why;
    EXPECT_EQ(book.reset(1), 1u);
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 1, 11, &e));
    EXPECT_EQ(e.decision, GUARD_EXPLORE);
    EXPECT_EQ(e.pilot_runs + e.native_runs, 0u);
    ASSERT_TRUE(guard_lookup(*table, 1, 12, &e));
    EXPECT_EQ(e.pinned, static_cast<uint32_t>(ARM_PILOT)) << "pinned: kept";
    EXPECT_EQ(e.pilot_runs, 3u);
    ASSERT_TRUE(guard_lookup(*table, 2, 13, &e));
    EXPECT_EQ(e.decision, GUARD_PILOT) << "another database: kept";
}

TEST(GuardBook, PinsWinAndSurviveARestart) {
    TempDir dir;
    auto table = NewTable();
    {
        GuardBook book(GuardRule{}, dir.path);
        book.load_pins(); /* none yet */
        book.attach(table.get());
        std::string why;
        ASSERT_TRUE(book.pin(GuardTemplateKey{3, 1234567890123ULL}, ARM_NATIVE, &why)) << why;
        ASSERT_TRUE(book.pin(GuardTemplateKey{3, 55}, ARM_PILOT, &why)) << why;
        ASSERT_TRUE(book.pin(GuardTemplateKey{3, 55}, ARM_UNKNOWN, &why)) << why; /* unpinned */
        GuardEntry e;
        ASSERT_TRUE(guard_lookup(*table, 3, 1234567890123ULL, &e));
        EXPECT_EQ(e.pinned, static_cast<uint32_t>(ARM_NATIVE));
    }
    auto table2 = NewTable();
    GuardBook again(GuardRule{}, dir.path);
    again.load_pins();
    again.attach(table2.get());
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table2, 3, 1234567890123ULL, &e));
    EXPECT_EQ(e.pinned, static_cast<uint32_t>(ARM_NATIVE));
    EXPECT_FALSE(guard_lookup(*table2, 3, 55, &e)) << "unpinned: not in the file";

    /* a damaged line is skipped, not fatal */
    std::ofstream(dir.path + "/guard.pins", std::ios::app) << "garbage line\n3 0 native\n";
    GuardBook third(GuardRule{}, dir.path);
    EXPECT_NO_THROW(third.load_pins());
}

TEST(GuardBook, PinFailsCleanlyWhenTheFileCannotBeWritten) {
    GuardBook book(GuardRule{}, "/nonexistent/pp_guard_dir");
    auto table = NewTable();
    book.attach(table.get());
    std::string why;
    EXPECT_FALSE(book.pin(GuardTemplateKey{1, 2}, ARM_NATIVE, &why));
    EXPECT_NE(why.find("guard.pins"), std::string::npos) << why;
    GuardEntry e;
    EXPECT_FALSE(guard_lookup(*table, 1, 2, &e) && e.pinned != ARM_UNKNOWN);
}

TEST(GuardBook, AFullNeighbourhoodEvictsTheLeastRunTemplate) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    /* kGuardProbes + 1 templates with the same home row */
    const uint32_t home = guard_home(1, 1);
    std::vector<uint64_t> ids{1};
    for (uint64_t q = 2; ids.size() < kGuardProbes + 1; q++)
        if (guard_home(1, q) == home)
            ids.push_back(q);
    for (size_t i = 0; i < kGuardProbes; i++) {
        std::vector<FeedbackRecord> runs(i == 0 ? 1 : 3, QueryRun(1, ids[i], ARM_PILOT, 0, 1));
        book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    }
    GuardEntry e;
    for (size_t i = 0; i < kGuardProbes; i++)
        EXPECT_TRUE(guard_lookup(*table, 1, ids[i], &e)) << i;
    FeedbackRecord r = QueryRun(1, ids[kGuardProbes], ARM_PILOT, 0, 1);
    book.observe(&r, 1, 0);
    EXPECT_TRUE(guard_lookup(*table, 1, ids[kGuardProbes], &e));
    EXPECT_FALSE(guard_lookup(*table, 1, ids[0], &e)) << "the template with the fewest runs gave its row";
    EXPECT_EQ(table->evicted.load(), 1u);
}

TEST(GuardBook, RestoredRunsComeBeforeNewOnes) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    FeedbackRecord now = QueryRun(2, 7, ARM_PILOT, 0, 300);
    book.observe(&now, 1, 0);
    std::vector<GuardRun> past;
    for (int i = 0; i < 3; i++) {
        past.push_back(GuardRun{GuardTemplateKey{2, 7}, ARM_NATIVE, 100});
        past.push_back(GuardRun{GuardTemplateKey{2, 7}, ARM_PILOT, 300});
    }
    past.push_back(GuardRun{GuardTemplateKey{2, 7}, 9, 1});                 /* invalid arm */
    past.push_back(GuardRun{GuardTemplateKey{2, 7}, ARM_NATIVE, -5});       /* invalid time */
    EXPECT_EQ(book.restore(past), 6u);
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 2, 7, &e));
    EXPECT_EQ(e.pilot_runs, 4u);
    EXPECT_EQ(e.native_runs, 3u);
    EXPECT_EQ(e.decision, GUARD_NATIVE);
}

TEST(GuardLookup, RejectsInvalidRows) {
    auto table = NewTable();
    GuardEntry &row = table->entries[guard_home(1, 5)];
    row.dboid = 1;
    row.query_id = 5;
    row.decision = 7; /* out of range */
    GuardEntry e;
    EXPECT_FALSE(guard_lookup(*table, 1, 5, &e));
    row.decision = GUARD_PILOT;
    row.pilot_median_ms = std::nanf("");
    EXPECT_FALSE(guard_lookup(*table, 1, 5, &e));
    row.pilot_median_ms = 1;
    EXPECT_TRUE(guard_lookup(*table, 1, 5, &e));
    row.seq.store(1); /* being written: the reader gives up, does not wait */
    EXPECT_FALSE(guard_lookup(*table, 1, 5, &e));
    EXPECT_FALSE(guard_lookup(*table, 1, 0, &e)) << "query id 0 is never guarded";
}

} // namespace

/* A run planned with other table statistics (ANALYZE found a table 4 times
 * larger): both arms' runs are forgotten and the template explores again;
 * smaller changes do not; runs planned before the change that finish after
 * it are not counted; a pinned template keeps its pin. */
TEST(GuardBook, ALargeChangeOfTableStatisticsExploresAgain) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path); /* factor 2 */
    auto table = NewTable();
    book.attach(table.get());
    auto run = [](uint32_t arm, double ms, double table_rows_log) {
        FeedbackRecord r = QueryRun(5, 42, arm, 0.5, ms);
        r.table_rows_log = table_rows_log;
        return r;
    };
    const double before = std::log1p(10000.0) + std::log1p(500.0);
    std::vector<FeedbackRecord> runs;
    for (int i = 0; i < 3; i++) {
        runs.push_back(run(ARM_PILOT, 150, before));
        runs.push_back(run(ARM_NATIVE, 100, before));
    }
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_NATIVE);

    /* 1.5 times the rows (autovacuum's ANALYZE after some growth): kept */
    FeedbackRecord r = run(ARM_NATIVE, 101, before + std::log(1.5));
    book.observe(&r, 1, 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_NATIVE);
    EXPECT_EQ(e.native_runs, 4u);
    EXPECT_EQ(book.reopened_by_statistics(), 0u);

    /* 4 times the rows: explores again, with no runs of either arm */
    r = run(ARM_NATIVE, 300, before + std::log(4.0));
    book.observe(&r, 1, 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_EXPLORE);
    EXPECT_EQ(e.pilot_runs, 0u);
    EXPECT_EQ(e.native_runs, 1u) << "the run that saw the change counts";
    EXPECT_EQ(book.reopened_by_statistics(), 1u);

    /* a run planned before ANALYZE that finishes after it: not counted, and
     * it does not send the template back */
    r = run(ARM_PILOT, 150, before);
    book.observe(&r, 1, 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.pilot_runs, 0u);
    EXPECT_EQ(e.native_runs, 1u);
    EXPECT_EQ(book.reopened_by_statistics(), 1u);

    /* the runs under the new statistics decide again */
    runs.clear();
    for (int i = 0; i < 3; i++) {
        runs.push_back(run(ARM_PILOT, 200, before + std::log(4.0)));
        runs.push_back(run(ARM_NATIVE, 300, before + std::log(4.0)));
    }
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_PILOT);

    /* an unknown number (a backend of an older version): no effect */
    r = run(ARM_NATIVE, 300, -1);
    book.observe(&r, 1, 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_PILOT);

    /* pinned: the pin wins, runs are kept */
    std::string why;
    ASSERT_TRUE(book.pin(GuardTemplateKey{5, 42}, ARM_PILOT, &why)) << why;
    r = run(ARM_NATIVE, 300, before + std::log(64.0));
    book.observe(&r, 1, 0);
    EXPECT_EQ(book.reopened_by_statistics(), 1u);
}

TEST(GuardBook, TheFirstRunsStatisticsCount) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    FeedbackRecord r = QueryRun(5, 42, ARM_PILOT, 0.5, 150);
    r.table_rows_log = 10.0;
    book.observe(&r, 1, 0);
    r = QueryRun(5, 42, ARM_NATIVE, 0.5, 100);
    r.table_rows_log = 10.0 + std::log(3.0); /* ANALYZE between the first and the second run */
    book.observe(&r, 1, 0);
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.pilot_runs, 0u);
    EXPECT_EQ(e.native_runs, 1u);
    EXPECT_EQ(book.reopened_by_statistics(), 1u);
}

TEST(GuardBook, TheStatisticsCheckCanBeTurnedOff) {
    TempDir dir;
    GuardRule rule;
    rule.stats_change_factor = 0; /* guard-stats-change-pct = 0 */
    GuardBook book(rule, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    std::vector<FeedbackRecord> runs;
    for (int i = 0; i < 4; i++)
        for (uint32_t arm : {ARM_PILOT, ARM_NATIVE}) {
            FeedbackRecord r = QueryRun(5, 42, arm, 0.5, arm == ARM_PILOT ? 150 : 100);
            r.table_rows_log = i < 3 ? 10.0 : 20.0;
            runs.push_back(r);
        }
    book.observe(runs.data(), static_cast<uint32_t>(runs.size()), 0);
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.decision, GUARD_NATIVE);
    EXPECT_EQ(e.native_runs, 4u);
    EXPECT_EQ(book.reopened_by_statistics(), 0u);
}

/* Restarted, pilotd replays the runs the store kept (pg_pilot.query_log)
 * through the same check: only those of the latest table sizes count. */
TEST(GuardBook, RestoredRunsOfOtherTableSizesDoNotCount) {
    TempDir dir;
    GuardBook book(GuardRule{}, dir.path);
    auto table = NewTable();
    book.attach(table.get());
    std::vector<GuardRun> runs;
    auto past = [&](uint32_t arm, double ms, double table_rows_log) {
        GuardRun g;
        g.key = GuardTemplateKey{5, 42};
        g.arm = arm;
        g.ms = ms;
        g.table_rows_log = table_rows_log;
        runs.push_back(g);
    };
    for (int i = 0; i < 3; i++) {
        past(ARM_PILOT, 150, 10.0);
        past(ARM_NATIVE, 100, 10.0);
    }
    past(ARM_PILOT, 90, -1);   /* from before 0.9: unknown, counted */
    past(ARM_NATIVE, 120, 12.0); /* ANALYZE: e^2 = 7.4 times the rows */
    past(ARM_PILOT, 80, 12.0);
    EXPECT_EQ(book.restore(runs), runs.size());
    GuardEntry e;
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.pilot_runs, 1u);
    EXPECT_EQ(e.native_runs, 1u);
    EXPECT_EQ(e.decision, GUARD_EXPLORE);

    /* and a run of the new sizes after the restart is no change */
    FeedbackRecord r = QueryRun(5, 42, ARM_NATIVE, 0.5, 110);
    r.table_rows_log = 12.1;
    book.observe(&r, 1, 0);
    ASSERT_TRUE(guard_lookup(*table, 5, 42, &e));
    EXPECT_EQ(e.native_runs, 2u);
    EXPECT_EQ(book.reopened_by_statistics(), 0u);
}
