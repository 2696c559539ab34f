/*
 * test_progress.cpp — what long pilotd commands show of their progress
 * (daemon/progress.h): the line's numbers (done/total, rate, time left capped
 * by a time budget), a redrawn line on a terminal, and only the 10 % steps in
 * a log.
 */
#include "progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

using pilotd::format_duration;
using pilotd::Progress;
using pilotd::progress_line;

namespace {
/* what a Progress wrote into a memory stream */
struct Captured {
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ~Captured() { free(buf); }
    std::string text() {
        fflush(f);
        return std::string(buf, len);
    }
    void close() { fclose(f); }
};
size_t count(const std::string &s, const std::string &what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
        n++;
    return n;
}
} // namespace

TEST(Progress, DurationsReadLikeAClock) {
    EXPECT_EQ(format_duration(4.24), "4.2 s");
    EXPECT_EQ(format_duration(187), "3m07s");
    EXPECT_EQ(format_duration(3720), "1h02m");
    EXPECT_EQ(format_duration(-1), "0.0 s");
}

TEST(Progress, LineSaysDoneTotalRateAndTimeLeft) {
    const std::string l = progress_line("collect", 120, 500, "queries", 40.0, 0, "118 ok, 2 failed");
    EXPECT_EQ(l, "collect: 120/500 queries (24%), 3/s, 2m07s left, 40.0 s so far; 118 ok, 2 failed") << l;
    /* a time budget caps the time left: 300 epochs at 1/s would take 4m20s more, the budget ends it in 20 s */
    const std::string t = progress_line("pilotd train", 40, 300, "epochs", 40.0, 60.0, "");
    EXPECT_NE(t.find("20.0 s left"), std::string::npos) << t;
    /* nothing done yet: no rate, no guess */
    const std::string z = progress_line("advise: measured", 0, 10, "queries", 1.0, 0, "");
    EXPECT_EQ(z.find("/s"), std::string::npos) << z;
    EXPECT_EQ(z.find("left"), std::string::npos) << z;
    /* done: no time left */
    EXPECT_EQ(progress_line("x", 10, 10, "queries", 2.0, 0, "").find("left"), std::string::npos);
}

TEST(Progress, LogGetsTheTenPercentStepsOnly) {
    Captured out;
    {
        Progress p("collect", 100, "queries", out.f, /*terminal=*/false);
        for (uint64_t i = 1; i <= 100; i++)
            p.update(i, "detail");
    }
    const std::string s = out.text();
    EXPECT_EQ(count(s, "\n"), 9u) << s;       /* 10 % .. 90 %; the command's summary says 100 % */
    EXPECT_EQ(s.find('\r'), std::string::npos) << "no redrawing in a log";
    EXPECT_NE(s.find("collect: 10/100 queries (10%)"), std::string::npos) << s;
    EXPECT_NE(s.find("collect: 90/100 queries (90%)"), std::string::npos) << s;
    out.close();
}

TEST(Progress, TerminalRedrawsOneLineAndClearsItForNotes) {
    Captured out;
    {
        Progress p("collect", 1000, "queries", out.f, /*terminal=*/true);
        for (uint64_t i = 1; i <= 999; i++)
            p.update(i);
        /* redrawn at most 5 times a second, not once per update: 999 updates
         * would have to take 10 s to draw 50 times */
        EXPECT_LT(count(out.text(), "\r\033[K"), 50u) << out.text();
        p.note("collect: line %d failed: %s", 7, "boom");
        const std::string s = out.text();
        EXPECT_NE(s.find("\r\033[Kcollect: line 7 failed: boom\n"), std::string::npos) << "the note clears the line";
        p.update(1000); /* the last step is always drawn */
        EXPECT_NE(out.text().find("1000/1000 queries (100%)"), std::string::npos) << out.text();
    }
    const std::string s = out.text();
    EXPECT_EQ(s.substr(s.size() - 4), "\r\033[K") << "the status line is removed at the end";
    out.close();
}
