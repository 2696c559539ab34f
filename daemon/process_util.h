/*
 * process_util.h — the process around the service: safety checks before
 * start, the state directory, the pid file, the per-cluster instance lock and
 * daemonizing.  Errors are thrown as std::runtime_error with the message to
 * print.
 */
#ifndef PILOTD_PROCESS_UTIL_H
#define PILOTD_PROCESS_UTIL_H

#include <string>
#include <sys/types.h>

namespace pilotd {

/* "uid 101 (postgres)" */
std::string describe_uid(uid_t uid);
/* A process's command name from /proc (e.g. "systemd", "pg_ctl"), or
 * "unknown" when it is gone or /proc is not readable. */
std::string process_name(pid_t pid);

/* Refuses to run as root (effective or real uid 0). */
void check_not_root();

/* DIR must be an existing directory owned by the current user. */
void check_data_directory(const std::string &dir);

/* Creates the state directory (mode 0700) or checks an existing one: a
 * directory owned by us; group/other permissions are removed. */
void prepare_state_dir(const std::string &dir);

/* A pid file held with flock() for the life of the process.  acquire()
 * refuses when the file is locked by, or names, a live pilotd. */
class PidFile {
  public:
    PidFile() = default;
    ~PidFile();
    PidFile(const PidFile &) = delete;
    PidFile &operator=(const PidFile &) = delete;
    void acquire(const std::string &path);
    /* Removes the file if it is still ours. */
    void release() noexcept;

  private:
    std::string path_;
    int fd_ = -1;
};

/* One pilotd per cluster, whatever pid file or state dir it is given: an
 * flock() on /dev/shm/<segment>.lock. */
class InstanceLock {
  public:
    InstanceLock() = default;
    ~InstanceLock();
    InstanceLock(const InstanceLock &) = delete;
    InstanceLock &operator=(const InstanceLock &) = delete;
    void acquire(const std::string &segment);
    void release() noexcept;

  private:
    std::string path_;
    int fd_ = -1;
};

/* True if `pid` is a running process whose executable is called "pilotd". */
bool is_live_pilotd(pid_t pid);

/* Double fork + setsid + chdir("/") + stdio to /dev/null.  Returns in the final
 * daemon process only; the original process waits until daemon_ready() or the
 * daemon's death and exits 0 (ready) or 1.  Throws if forking fails. */
void daemonize();
/* Tells the waiting original process that the service is up. */
void daemon_ready() noexcept;
/* Tells it that startup failed: it prints `message` to its stderr, exits 1. */
void daemon_failed(const std::string &message) noexcept;

} // namespace pilotd

#endif
