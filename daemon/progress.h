/*
 * progress.h — how a long command (`pilotd collect`, `train`, `advise`)
 * shows how far it is: done/total, rate and time left.
 *
 * On a terminal one status line is redrawn in place (at most 5 times a
 * second), so a DBA watching a 20-minute collect sees it move; into a file
 * or a pipe (a log, a CI job) it writes a line only at every 10 % and at
 * most once a minute otherwise, so the log stays readable.  Anything else
 * the command prints goes through note(), which clears the status line
 * first.
 */
#ifndef PILOTD_PROGRESS_H
#define PILOTD_PROGRESS_H

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace pilotd {

/* "4.2 s", "3m07s", "1h02m" */
std::string format_duration(double seconds);

/* "collect: 120/500 queries (24%), 3.1/s, 2m03s left; 118 ok, 2 failed".
 * rate and time left only when elapsed > 0 and 0 < done; time left is
 * capped at deadline_s - elapsed when deadline_s > 0 (a time budget). */
std::string progress_line(const std::string &label, uint64_t done, uint64_t total, const std::string &unit,
                          double elapsed_s, double deadline_s, const std::string &detail);

class Progress {
public:
    /* label: "collect"; unit: "queries"; out: where the lines go.
     * terminal: redraw in place (default: isatty(out)). */
    Progress(std::string label, uint64_t total, std::string unit, FILE *out = stderr);
    Progress(std::string label, uint64_t total, std::string unit, FILE *out, bool terminal);
    ~Progress() { clear(); }
    Progress(const Progress &) = delete;
    Progress &operator=(const Progress &) = delete;

    /* a time budget: the time left never exceeds it */
    void set_deadline(double seconds) { deadline_s_ = seconds; }
    void set_total(uint64_t total) { total_ = total; }
    /* the clock starts again (rate and time left from now) */
    void restart();
    /* done of total, with a short detail ("118 ok, 2 failed") */
    void update(uint64_t done, const std::string &detail = "");
    /* prints a line of its own (no newline needed), under the status line */
    void note(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    /* removes the status line (terminal); nothing otherwise */
    void clear();
    bool terminal() const { return terminal_; }

private:
    double elapsed() const;
    std::string label_, unit_;
    uint64_t total_;
    FILE *out_;
    bool terminal_;
    double deadline_s_ = 0;
    std::chrono::steady_clock::time_point start_;
    double last_draw_s_ = -1;  /* terminal: when the line was last drawn */
    double last_line_s_ = 0;   /* log: when the last line was written */
    int next_tenth_ = 1;       /* log: the next 10 % step that gets a line */
    bool line_shown_ = false;  /* terminal: a status line is on screen */
};

} // namespace pilotd

#endif
