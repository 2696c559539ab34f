/* log.cpp — see log.h. */
#include "log.h"

#include "durable_file.h"

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <mutex>
#include <sys/time.h>
#include <unistd.h>

namespace pilotd {

namespace {
std::mutex g_mu;
int g_fd = 2;            /* guarded by g_mu */
std::string g_path;      /* empty: stderr */
bool g_redirect_stderr = false;
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};

int open_log_file(const std::string &path) {
    return open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

} // namespace

const char *log_level_name(LogLevel l) {
    switch (l) {
    case LogLevel::Debug: return "DEBUG";
    case LogLevel::Info: return "INFO";
    case LogLevel::Warning: return "WARNING";
    case LogLevel::Error: return "ERROR";
    }
    return "LOG";
}

const char *log_level_key(LogLevel l) {
    switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warning: return "warning";
    case LogLevel::Error: return "error";
    }
    return "info";
}

bool parse_log_level(const std::string &s, LogLevel *out) {
    if (s == "debug") *out = LogLevel::Debug;
    else if (s == "info") *out = LogLevel::Info;
    else if (s == "warning" || s == "warn") *out = LogLevel::Warning;
    else if (s == "error") *out = LogLevel::Error;
    else return false;
    return true;
}

bool log_open(const std::string &path, LogLevel level, std::string *error) {
    g_level.store(static_cast<int>(level));
    std::lock_guard<std::mutex> g(g_mu);
    if (path.empty()) {
        g_path.clear();
        g_fd = 2;
        return true;
    }
    int fd = open_log_file(path);
    if (fd < 0) {
        if (error)
            *error = "cannot open log file \"" + path + "\": " + strerror(errno);
        return false;
    }
    if (g_fd > 2)
        close(g_fd);
    g_fd = fd;
    g_path = path;
    return true;
}

void log_reopen() {
    std::string failure;
    {
        std::lock_guard<std::mutex> g(g_mu);
        if (g_path.empty())
            return;
        int fd = open_log_file(g_path);
        if (fd < 0) {
            failure = strerror(errno); /* keep the old file */
        } else {
            if (g_fd > 2)
                close(g_fd);
            g_fd = fd;
            if (g_redirect_stderr)
                dup2(fd, 2);
        }
    }
    if (!failure.empty())
        LOG_ERROR("cannot reopen log file: %s (still writing to the old one)", failure.c_str());
    else
        LOG_INFO("log file reopened");
}

void log_redirect_stderr() {
    std::lock_guard<std::mutex> g(g_mu);
    if (g_fd > 2) {
        dup2(g_fd, 2);
        g_redirect_stderr = true;
    }
}

void log_close() {
    std::lock_guard<std::mutex> g(g_mu);
    if (g_fd > 2)
        close(g_fd);
    g_fd = 2;
    g_path.clear();
}

bool log_enabled(LogLevel l) { return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed); }

void log_write(LogLevel l, const char *fmt, ...) {
    if (!log_enabled(l))
        return;
    char line[4096];
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm tm;
    time_t secs = tv.tv_sec;
    gmtime_r(&secs, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC [%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     static_cast<int>(tv.tv_usec / 1000), static_cast<int>(getpid()),
                     log_level_name(l));
    if (n < 0)
        return;
    size_t len = static_cast<size_t>(n);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + len, sizeof line - len - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    len += static_cast<size_t>(m);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated message */
    /* one event = one line: no embedded newlines */
    for (size_t i = static_cast<size_t>(n); i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    std::lock_guard<std::mutex> g(g_mu);
    (void) write_all(g_fd, line, len);
}

} // namespace pilotd
