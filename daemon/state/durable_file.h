/*
 * durable_file.h — the few file operations pilotd's durability rests on, in one
 * place: write everything, and replace a file so that a crash at any moment
 * leaves either the old or the new content (temp file, fsync, rename, fsync of
 * the directory).
 */
#ifndef PILOTD_DURABLE_FILE_H
#define PILOTD_DURABLE_FILE_H

#include <cstddef>
#include <string>

namespace pilotd {

/* write() until all n bytes are written (EINTR retried); false with errno set. */
bool write_all(int fd, const void *data, size_t n) noexcept;

/* Reads a whole file into *out.  False with *error on failure; when the file
 * does not exist and `missing` is given, false with *missing set instead. */
bool read_file(const std::string &path, std::string *out, std::string *error, bool *missing = nullptr);

/* "what \"path\": strerror(errno)" */
std::string errno_text(const char *what, const std::string &path);

enum class Replaced {
    Done,       /* the new content is in place and durable */
    Failed,     /* nothing changed; *error says why */
    NotDurable, /* the new content is in place, but the directory fsync failed */
};

/* Replaces path (in directory dir) with bytes. */
Replaced replace_file(const std::string &dir, const std::string &path, const void *bytes, size_t n,
                      std::string *error);

} // namespace pilotd

#endif
