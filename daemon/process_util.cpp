/* process_util.cpp — see process_util.h. */
#include "process_util.h"

#include "log.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <pwd.h>
#include <stdexcept>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pilotd {

namespace {

std::runtime_error sys_error(const std::string &what) {
    return std::runtime_error(what + ": " + strerror(errno));
}

int g_ready_fd = -1; /* daemon side of the readiness pipe */

} // namespace

namespace {

/* /proc/PID/comm without its newline; false when it cannot be read (gone, or
 * no /proc) */
bool read_comm(pid_t pid, std::string *out) {
    char path[64], comm[64] = {0};
    snprintf(path, sizeof path, "/proc/%d/comm", static_cast<int>(pid));
    FILE *f = fopen(path, "r");
    if (f == nullptr)
        return false;
    bool ok = fgets(comm, sizeof comm, f) != nullptr;
    fclose(f);
    if (!ok)
        return false;
    comm[strcspn(comm, "\n")] = '\0';
    *out = comm;
    return true;
}

} // namespace

std::string process_name(pid_t pid) {
    if (pid <= 0)
        return pid == 0 ? "the kernel" : "unknown";
    std::string comm;
    return read_comm(pid, &comm) && !comm.empty() ? comm : "unknown";
}

std::string describe_uid(uid_t uid) {
    std::string s = "uid " + std::to_string(uid);
    struct passwd pw, *res = nullptr;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res != nullptr)
        s += std::string(" (") + res->pw_name + ")";
    return s;
}

void check_not_root() {
    if (geteuid() == 0 || getuid() == 0)
        throw std::runtime_error(
            "pilotd must not run as root: run it as the PostgreSQL server's OS user (the owner of the data "
            "directory, usually \"postgres\"), e.g. with sudo -u postgres or User=postgres in systemd");
}

void check_data_directory(const std::string &dir) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0)
        throw sys_error("cannot access the data directory \"" + dir + "\"");
    if (!S_ISDIR(st.st_mode))
        throw std::runtime_error("\"" + dir + "\" is not a directory (-D must name the PostgreSQL data directory)");
    if (st.st_uid != geteuid())
        throw std::runtime_error("the data directory \"" + dir + "\" is owned by " + describe_uid(st.st_uid) +
                                 ", but pilotd runs as " + describe_uid(geteuid()) +
                                 ": run pilotd as the PostgreSQL server's OS user");
}

void prepare_state_dir(const std::string &dir) {
    if (mkdir(dir.c_str(), 0700) == 0) {
        LOG_INFO("created state directory \"%s\"", dir.c_str());
    } else if (errno != EEXIST) {
        throw sys_error("cannot create the state directory \"" + dir + "\"");
    }
    struct stat st;
    if (stat(dir.c_str(), &st) != 0)
        throw sys_error("cannot access the state directory \"" + dir + "\"");
    if (!S_ISDIR(st.st_mode))
        throw std::runtime_error("the state directory \"" + dir + "\" is not a directory");
    if (st.st_uid != geteuid())
        throw std::runtime_error("the state directory \"" + dir + "\" is owned by " + describe_uid(st.st_uid) +
                                 ", but pilotd runs as " + describe_uid(geteuid()));
    /* read-only (a file system remounted read-only, a wrong mode): nothing
     * could be made durable, so nothing would ever be acknowledged; say so
     * now rather than fail on every write */
    if (access(dir.c_str(), W_OK | X_OK) != 0) {
        const std::string why = strerror(errno); /* before describe_uid() sets errno */
        throw std::runtime_error("the state directory \"" + dir + "\" is not writable: " + why +
                                 " (it holds the feedback spool, the memo journal and the models; make it "
                                 "writable by " + describe_uid(geteuid()) + " or choose another with --state-dir)");
    }
    if ((st.st_mode & 077) != 0) {
        if (chmod(dir.c_str(), 0700) != 0)
            throw sys_error("cannot chmod the state directory \"" + dir + "\" to 0700");
        LOG_WARNING("state directory \"%s\" was accessible to other users: mode set to 0700", dir.c_str());
    }
}

bool is_live_pilotd(pid_t pid) {
    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    std::string comm;
    if (!read_comm(pid, &comm))
        return false; /* gone (or no /proc): not provably a pilotd */
    if (comm == "pilotd")
        return true;
    /* zombies and renamed binaries: look at the executable's name */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", static_cast<int>(pid));
    char exe[PATH_MAX];
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    return strncmp(base, "pilotd", 6) == 0;
}

PidFile::~PidFile() { release(); }

void PidFile::acquire(const std::string &path) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        throw sys_error("cannot open the pid file \"" + path + "\"");
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long old = n > 0 ? strtol(buf, nullptr, 10) : 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK)
            throw std::runtime_error("the pid file \"" + path + "\" is held by a running pilotd" +
                                     (old > 0 ? " (pid " + std::to_string(old) + ")" : std::string()) +
                                     ": is pilotd already running for this cluster?");
        errno = err;
        throw sys_error("cannot lock the pid file \"" + path + "\"");
    }
    if (old > 0 && old != getpid() && is_live_pilotd(static_cast<pid_t>(old))) {
        close(fd);
        throw std::runtime_error("the pid file \"" + path + "\" names a running pilotd (pid " +
                                 std::to_string(old) + "): is pilotd already running for this cluster?");
    }
    if (old > 0)
        LOG_INFO("replacing stale pid file \"%s\" (pid %ld is not running)", path.c_str(), old);
    std::string text = std::to_string(getpid()) + "\n";
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
        int err = errno;
        close(fd);
        errno = err;
        throw sys_error("cannot write the pid file \"" + path + "\"");
    }
    fsync(fd);
    fd_ = fd;
    path_ = path;
}

void PidFile::release() noexcept {
    if (fd_ < 0)
        return;
    char buf[32] = {0};
    ssize_t n = pread(fd_, buf, sizeof buf - 1, 0);
    if (n > 0 && strtol(buf, nullptr, 10) == getpid())
        unlink(path_.c_str());
    close(fd_);
    fd_ = -1;
}

InstanceLock::~InstanceLock() { release(); }

void InstanceLock::acquire(const std::string &segment) {
    std::string path = "/dev/shm/" + segment + ".lock";
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            throw sys_error("cannot open the instance lock \"" + path + "\"");
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            char buf[32] = {0};
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            close(fd);
            if (err == EWOULDBLOCK)
                throw std::runtime_error("another pilotd" +
                                         (n > 0 ? " (pid " + std::to_string(strtol(buf, nullptr, 10)) + ")"
                                                : std::string()) +
                                         " is already serving this data directory (instance lock \"" + path +
                                         "\" is held)");
            errno = err;
            throw sys_error("cannot lock \"" + path + "\"");
        }
        /* the holder may have unlinked the file between our open and flock */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            std::string text = std::to_string(getpid()) + "\n";
            if (ftruncate(fd, 0) != 0 ||
                pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
                LOG_WARNING("cannot write the instance lock \"%s\": %s", path.c_str(), strerror(errno));
            fd_ = fd;
            path_ = path;
            return;
        }
        close(fd);
    }
    throw std::runtime_error("cannot take the instance lock \"" + path + "\" (it keeps changing)");
}

void InstanceLock::release() noexcept {
    if (fd_ < 0)
        return;
    unlink(path_.c_str()); /* while still locked: the next pilotd re-checks the inode */
    close(fd_);
    fd_ = -1;
}

void daemonize() {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        throw sys_error("pipe");
    fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0)
        throw sys_error("fork");
    if (pid > 0) {
        /* original process: wait for "R" (ready), "E<message>" (failed) or
         * EOF (the daemon died) */
        close(pfd[1]);
        std::string msg;
        char buf[512];
        for (;;) {
            ssize_t r = read(pfd[0], buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            msg.append(buf, static_cast<size_t>(r));
        }
        int st;
        waitpid(pid, &st, 0); /* the intermediate child exits at once */
        if (msg == "R")
            _exit(0);
        if (!msg.empty() && msg[0] == 'E')
            fprintf(stderr, "pilotd: %s\n", msg.c_str() + 1);
        else
            fprintf(stderr, "pilotd: the daemon exited during startup (see its log)\n");
        _exit(1);
    }
    close(pfd[0]);
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    g_ready_fd = pfd[1];
    umask(077);
    if (chdir("/") != 0) {
        /* nothing to do: every path is absolute already */
    }
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    log_redirect_stderr(); /* stderr to the log file, if there is one */
}

void daemon_ready() noexcept {
    if (g_ready_fd < 0)
        return;
    char c = 'R';
    ssize_t r;
    do {
        r = write(g_ready_fd, &c, 1);
    } while (r < 0 && errno == EINTR);
    close(g_ready_fd);
    g_ready_fd = -1;
}

void daemon_failed(const std::string &message) noexcept {
    if (g_ready_fd < 0)
        return;
    std::string m = "E" + message;
    const char *p = m.data();
    size_t n = m.size();
    while (n > 0) {
        ssize_t w = write(g_ready_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= static_cast<size_t>(w);
    }
    close(g_ready_fd);
    g_ready_fd = -1;
}

} // namespace pilotd
