/*
 * log.h — pilotd's log: one line per event,
 *
 *   2026-11-23 12:00:00.123 UTC [4242] INFO: message
 *
 * written with a single write(2) to the log file (or stderr).  reopen() (on
 * SIGHUP) opens the file again under its name, so logrotate can move it away.
 * Thread-safe; never throws.
 */
#ifndef PILOTD_LOG_H
#define PILOTD_LOG_H

#include <string>

namespace pilotd {

enum class LogLevel { Debug = 0, Info = 1, Warning = 2, Error = 3 };

const char *log_level_name(LogLevel l); /* "INFO", as in log lines */
const char *log_level_key(LogLevel l);  /* "info", as in the settings */
/* "debug" | "info" | "warning" | "error" (also "warn"); false if unknown */
bool parse_log_level(const std::string &s, LogLevel *out);

/* Empty path = stderr.  Returns false (and sets *error) if the file cannot be
 * opened; the log then keeps writing to stderr. */
bool log_open(const std::string &path, LogLevel level, std::string *error);
/* Reopens the log file (SIGHUP); a no-op when logging to stderr. */
void log_reopen();
/* After daemonizing: make fd 2 the log file too, so stray output is kept. */
void log_redirect_stderr();
void log_close();

bool log_enabled(LogLevel l);
void log_write(LogLevel l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

} // namespace pilotd

#define LOG_DEBUG(...) ::pilotd::log_write(::pilotd::LogLevel::Debug, __VA_ARGS__)
#define LOG_INFO(...) ::pilotd::log_write(::pilotd::LogLevel::Info, __VA_ARGS__)
#define LOG_WARNING(...) ::pilotd::log_write(::pilotd::LogLevel::Warning, __VA_ARGS__)
#define LOG_ERROR(...) ::pilotd::log_write(::pilotd::LogLevel::Error, __VA_ARGS__)

#endif
