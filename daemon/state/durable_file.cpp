/* durable_file.cpp — see durable_file.h. */
#include "durable_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace pilotd {

bool write_all(int fd, const void *data, size_t n) noexcept {
    const char *p = static_cast<const char *>(data);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (w == 0) {
            errno = EIO;
            return false;
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

bool read_file(const std::string &path, std::string *out, std::string *error, bool *missing) {
    out->clear();
    if (missing != nullptr)
        *missing = false;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (missing != nullptr && errno == ENOENT) {
            *missing = true;
            return false;
        }
        *error = errno_text("cannot open", path);
        return false;
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *error = errno_text("cannot read", path);
            ::close(fd);
            return false;
        }
        if (n == 0)
            break;
        out->append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return true;
}

std::string errno_text(const char *what, const std::string &path) {
    return std::string(what) + " \"" + path + "\": " + strerror(errno);
}

Replaced replace_file(const std::string &dir, const std::string &path, const void *bytes, size_t n,
                      std::string *error) {
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        *error = errno_text("cannot create", tmp);
        return Replaced::Failed;
    }
    if (!write_all(fd, bytes, n) || fsync(fd) != 0) {
        *error = errno_text("cannot write", tmp);
        close(fd);
        unlink(tmp.c_str());
        return Replaced::Failed;
    }
    if (close(fd) != 0) {
        *error = errno_text("cannot close", tmp);
        unlink(tmp.c_str());
        return Replaced::Failed;
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        *error = errno_text("cannot rename the temp file to", path);
        unlink(tmp.c_str());
        return Replaced::Failed;
    }
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        *error = errno_text("cannot fsync the directory", dir);
        if (dfd >= 0)
            close(dfd);
        return Replaced::NotDurable;
    }
    close(dfd);
    return Replaced::Done;
}

} // namespace pilotd
