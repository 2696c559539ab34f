/* progress.cpp — see progress.h. */
#include "progress.h"

#include <cmath>
#include <cstdarg>
#include <unistd.h>

namespace pilotd {

namespace {
constexpr double kRedrawSeconds = 0.2;   /* terminal: at most 5 redraws a second */
constexpr double kLogLineSeconds = 60.0; /* log: a line at least this often between 10 % steps */
} // namespace

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0)
        seconds = 0;
    char b[32];
    if (seconds < 60) {
        snprintf(b, sizeof b, "%.1f s", seconds);
    } else if (seconds < 3600) {
        const unsigned s = static_cast<unsigned>(seconds + 0.5);
        snprintf(b, sizeof b, "%um%02us", s / 60, s % 60);
    } else {
        const unsigned m = static_cast<unsigned>(seconds / 60 + 0.5);
        snprintf(b, sizeof b, "%uh%02um", m / 60, m % 60);
    }
    return b;
}

std::string progress_line(const std::string &label, uint64_t done, uint64_t total, const std::string &unit,
                          double elapsed_s, double deadline_s, const std::string &detail) {
    char b[160];
    std::string s = label + ": ";
    if (total > 0) {
        snprintf(b, sizeof b, "%llu/%llu %s (%.0f%%)", static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(total), unit.c_str(),
                 100.0 * static_cast<double>(std::min(done, total)) / static_cast<double>(total));
    } else {
        snprintf(b, sizeof b, "%llu %s", static_cast<unsigned long long>(done), unit.c_str());
    }
    s += b;
    if (done > 0 && elapsed_s > 0) {
        const double rate = static_cast<double>(done) / elapsed_s;
        snprintf(b, sizeof b, rate >= 10 ? ", %.0f/s" : ", %.2g/s", rate);
        s += b;
        if (total > done) {
            double left = static_cast<double>(total - done) / rate;
            if (deadline_s > 0)
                left = std::min(left, std::max(0.0, deadline_s - elapsed_s));
            s += ", " + format_duration(left) + " left";
        }
    }
    s += ", " + format_duration(elapsed_s) + " so far";
    if (!detail.empty())
        s += "; " + detail;
    return s;
}

Progress::Progress(std::string label, uint64_t total, std::string unit, FILE *out)
    : Progress(std::move(label), total, std::move(unit), out, isatty(fileno(out)) == 1) {}

Progress::Progress(std::string label, uint64_t total, std::string unit, FILE *out, bool terminal)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out), terminal_(terminal),
      start_(std::chrono::steady_clock::now()) {}

void Progress::restart() {
    start_ = std::chrono::steady_clock::now();
    last_line_s_ = 0;
    last_draw_s_ = -1;
}

double Progress::elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(uint64_t done, const std::string &detail) {
    const double now = elapsed();
    if (terminal_) {
        if (line_shown_ && now - last_draw_s_ < kRedrawSeconds && done < total_)
            return;
        /* \r and erase-to-end-of-line: the line is redrawn in place */
        fprintf(out_, "\r\033[K%s",
                progress_line(label_, done, total_, unit_, now, deadline_s_, detail).c_str());
        fflush(out_);
        last_draw_s_ = now;
        line_shown_ = true;
        return;
    }
    if (total_ == 0 || done >= total_)
        return; /* the command's own summary says the end */
    const bool tenth = done * 10 >= static_cast<uint64_t>(next_tenth_) * total_;
    while (done * 10 >= static_cast<uint64_t>(next_tenth_) * total_)
        next_tenth_++;
    if (!tenth && now - last_line_s_ < kLogLineSeconds)
        return;
    fprintf(out_, "%s\n", progress_line(label_, done, total_, unit_, now, deadline_s_, detail).c_str());
    fflush(out_);
    last_line_s_ = now;
}

void Progress::note(const char *fmt, ...) {
    clear();
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out_, fmt, ap);
    va_end(ap);
    fputc('\n', out_);
    fflush(out_);
}

void Progress::clear() {
    if (!line_shown_)
        return;
    fputs("\r\033[K", out_);
    fflush(out_);
    line_shown_ = false;
    last_draw_s_ = -1;
}

} // namespace pilotd
