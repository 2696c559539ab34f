/* feedback_spool.cpp — see feedback_spool.h. */
#include "feedback_spool.h"

#include "crc32.h"
#include "durable_file.h"
#include "log.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <cstddef>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <random>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace pilotd {

using pilot::proto::FeedbackRecord;
using pilot::proto::monotonic_us;

namespace {

constexpr char kMagic[8] = {'P', 'L', 'T', 'S', 'P', 'O', 'O', 'L'};
constexpr uint32_t kTag = 0x31455053u; /* "SPE1" */
constexpr size_t kCrcOffset = FeedbackSpool::kEntryBytes - 4;
constexpr size_t kTagOffset = FeedbackSpool::kEntryBytes - 8;
constexpr uint64_t kFailureLogIntervalUs = 10ull * 1000 * 1000;

static_assert(24 + sizeof(FeedbackRecord) == kTagOffset, "spool entry layout");

void encode_entry(unsigned char *p, const FeedbackSpool::Entry &e) {
    memcpy(p, &e.seq, 8);
    memcpy(p + 8, &e.received_us, 8);
    memcpy(p + 16, &e.type, 4);
    memcpy(p + 20, &e.reason, 4);
    memcpy(p + 24, &e.rec, sizeof e.rec);
    memcpy(p + kTagOffset, &kTag, 4);
    uint32_t crc = crc32(p, kCrcOffset);
    memcpy(p + kCrcOffset, &crc, 4);
}

/* A record written by an older spool in today's layout.  Version 1
 * (protocol 6): relations[72] where protocol 7 has dboid, guard_arm and
 * relations[64]: the database unknown (0), not guarded.  Version 2 (protocol
 * 7): relations[64] where protocol 8 has table_set and relations[56].  The
 * table set is unknown (0), the names are cut at a character boundary. */
void upgrade_record(pilot::proto::FeedbackRecord *r, uint32_t version) {
    constexpr size_t kV1Offset = offsetof(pilot::proto::FeedbackRecord, dboid);     /* 56 */
    constexpr size_t kV2Offset = offsetof(pilot::proto::FeedbackRecord, table_set); /* 64 */
    static_assert(kV2Offset == kV1Offset + 8, "protocol 7 added dboid and guard_arm");
    const size_t offset = version == 1 ? kV1Offset : kV2Offset;
    const size_t old_len = sizeof(pilot::proto::FeedbackRecord) - offset;
    char old[sizeof(pilot::proto::FeedbackRecord)];
    memcpy(old, reinterpret_cast<const char *>(r) + offset, old_len);
    if (version == 1) {
        r->dboid = 0;
        r->guard_arm = pilot::proto::ARM_UNKNOWN;
    }
    r->table_set = 0;
    pilot::proto::copy_clean_utf8(r->relations, sizeof r->relations, old, strnlen(old, old_len));
}

/* False when the entry's tag, CRC or seq is wrong. */
bool decode_entry(const unsigned char *p, uint64_t expect_seq, uint32_t version, FeedbackSpool::Entry *e) {
    uint32_t tag, crc;
    memcpy(&tag, p + kTagOffset, 4);
    memcpy(&crc, p + kCrcOffset, 4);
    memcpy(&e->seq, p, 8);
    if (tag != kTag || crc != crc32(p, kCrcOffset) || e->seq != expect_seq)
        return false;
    memcpy(&e->received_us, p + 8, 8);
    memcpy(&e->type, p + 16, 4);
    memcpy(&e->reason, p + 20, 4);
    memcpy(static_cast<void *>(&e->rec), p + 24, sizeof e->rec);
    if (version < FeedbackSpool::kVersion)
        upgrade_record(&e->rec, version);
    return e->type == FeedbackSpool::FEEDBACK || e->type == FeedbackSpool::DEAD;
}

/* A damaged entry, read back for the dead-letter table with its bytes. */
void corrupt_entry(const unsigned char *p, uint64_t seq, FeedbackSpool::Entry *e) {
    e->seq = seq;
    e->received_us = 0;
    e->type = FeedbackSpool::DEAD;
    e->reason = FeedbackSpool::kCorruptEntry;
    memcpy(static_cast<void *>(&e->rec), p + 24, sizeof e->rec);
}

void encode_header(unsigned char *p, uint64_t first_seq) {
    memset(p, 0, FeedbackSpool::kHeaderBytes);
    memcpy(p, kMagic, 8);
    uint32_t v = FeedbackSpool::kVersion, sz = FeedbackSpool::kEntryBytes;
    memcpy(p + 8, &v, 4);
    memcpy(p + 12, &sz, 4);
    memcpy(p + 16, &first_seq, 8);
}

std::string segment_name(uint64_t first_seq) {
    char buf[32];
    snprintf(buf, sizeof buf, "%016" PRIx64 ".seg", first_seq);
    return buf;
}

/* pread()/pwrite() until all n bytes are done (EINTR retried); false on an
 * error or a short file. */
template <typename Buf, typename Op>
bool positional_io_all(Op op, int fd, Buf *buf, size_t n, off_t off) {
    Buf *p = buf;
    while (n > 0) {
        ssize_t r = op(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= static_cast<size_t>(r);
        off += r;
    }
    return true;
}

bool pread_all(int fd, void *buf, size_t n, off_t off) {
    return positional_io_all(::pread, fd, static_cast<char *>(buf), n, off);
}

bool pwrite_all(int fd, const void *buf, size_t n, off_t off) {
    return positional_io_all(::pwrite, fd, static_cast<const char *>(buf), n, off);
}

bool fsync_dir(const std::string &dir) {
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

} // namespace

FeedbackSpool::FeedbackSpool(const std::string &state_dir, uint64_t max_bytes, uint64_t segment_bytes)
    : dir_(state_dir + "/spool"), max_bytes_(max_bytes),
      segment_bytes_(std::max<uint64_t>(segment_bytes, kHeaderBytes + kEntryBytes)) {}

namespace {
/* pg_basebackup and pg_rewind copy everything of a data directory except a
 * few runtime files and those named pgsql_tmp*: this marker stays behind */
constexpr const char *kOwnMarker = "/pgsql_tmp.spool_of_this_server";
} // namespace

bool FeedbackSpool::set_aside_if_copied(const std::string &state_dir, const std::string &pgdata) {
    if (pgdata.empty())
        return false;
    const std::string spool = state_dir + "/spool";
    struct stat st;
    if (stat((spool + "/id").c_str(), &st) != 0 || stat((spool + kOwnMarker).c_str(), &st) == 0)
        return false; /* no spool yet, or this server's own */
    /* only a state directory inside the data directory is copied with it,
     * and only a data directory made by a base backup has a backup label */
    char real_spool[PATH_MAX], real_pgdata[PATH_MAX];
    if (realpath(spool.c_str(), real_spool) == nullptr || realpath(pgdata.c_str(), real_pgdata) == nullptr)
        return false;
    const std::string inside = std::string(real_pgdata) + "/";
    if (std::string(real_spool).compare(0, inside.size(), inside) != 0)
        return false;
    if (stat((pgdata + "/backup_label").c_str(), &st) != 0 && stat((pgdata + "/backup_label.old").c_str(), &st) != 0)
        return false; /* a spool of an older pilotd, without the marker: adopted by recover() */
    const std::string aside = spool + ".copied-" + std::to_string(static_cast<long long>(time(nullptr)));
    if (rename(spool.c_str(), aside.c_str()) != 0)
        throw std::runtime_error(errno_text("cannot move the copied spool aside", spool + " -> " + aside));
    LOG_WARNING("spool: %s came with the base backup that made data directory %s (pg_basebackup copies "
                "DATADIR/pg_pilot): another pilotd's spool, whose records are that pilotd's to commit. Moved "
                "aside to %s (kept, never committed); this pilotd starts a spool of its own",
                spool.c_str(), pgdata.c_str(), aside.c_str());
    return true;
}

void FeedbackSpool::recover() {
    if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::runtime_error(errno_text("cannot create spool directory", dir_));

    /* identity: created once, durable before any segment exists */
    const std::string id_path = dir_ + "/id";
    FILE *f = fopen(id_path.c_str(), "r");
    if (f != nullptr) {
        char buf[64] = {0};
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        id_ = buf;
        if (id_.size() != 32 || id_.find_first_not_of("0123456789abcdef") != std::string::npos)
            throw std::runtime_error("spool identity \"" + id_path + "\" is damaged (expected 32 hex digits); "
                                     "move the spool directory away to start a new spool");
    } else {
        if (errno != ENOENT)
            throw std::runtime_error(errno_text("cannot read", id_path));
        std::random_device rd;
        char buf[40];
        snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
        id_ = buf;
        std::string line = id_ + "\n", error;
        if (replace_file(dir_, id_path, line.data(), line.size(), &error) != Replaced::Done)
            throw std::runtime_error("cannot create spool identity: " + error);
    }
    /* the marker a base backup leaves behind (set_aside_if_copied()) */
    struct stat marker_st;
    if (stat((dir_ + kOwnMarker).c_str(), &marker_st) != 0) {
        const std::string text = "This spool was created for this server. pg_basebackup and pg_rewind do not copy "
                                 "files named pgsql_tmp*: a spool without this file, inside a data directory made by "
                                 "a base backup, is a copy of another server's.\n";
        std::string error;
        if (replace_file(dir_, dir_ + kOwnMarker, text.data(), text.size(), &error) == Replaced::Failed)
            throw std::runtime_error("cannot mark the spool as this server's: " + error);
    }

    /* segments, oldest first */
    std::vector<std::pair<uint64_t, std::string>> files;
    DIR *d = opendir(dir_.c_str());
    if (d == nullptr)
        throw std::runtime_error(errno_text("cannot list", dir_));
    while (struct dirent *de = readdir(d)) {
        std::string name = de->d_name;
        if (name.size() != 20 || name.compare(16, 4, ".seg") != 0 ||
            name.find_first_not_of("0123456789abcdef") < 16)
            continue;
        files.emplace_back(std::stoull(name.substr(0, 16), nullptr, 16), dir_ + "/" + name);
    }
    closedir(d);
    std::sort(files.begin(), files.end());

    std::vector<unsigned char> buf;
    for (size_t i = 0; i < files.size(); i++) {
        const std::string &path = files[i].second;
        const bool newest = i + 1 == files.size();
        int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            std::string e = errno_text("cannot open spool segment", path);
            if (fd >= 0)
                close(fd);
            throw std::runtime_error(e);
        }
        unsigned char hdr[kHeaderBytes];
        uint32_t version = 0, entry_size = 0;
        uint64_t first = 0;
        bool hdr_ok = st.st_size >= static_cast<off_t>(kHeaderBytes) && pread_all(fd, hdr, kHeaderBytes, 0);
        if (hdr_ok) {
            memcpy(&version, hdr + 8, 4);
            memcpy(&entry_size, hdr + 12, 4);
            memcpy(&first, hdr + 16, 8);
            hdr_ok = memcmp(hdr, kMagic, 8) == 0 && (version >= 1 && version <= kVersion) &&
                     entry_size == kEntryBytes &&
                     first == files[i].first;
        }
        if (!hdr_ok) {
            close(fd);
            if (newest && st.st_size < static_cast<off_t>(kHeaderBytes)) {
                /* a crash while creating it: nothing was ever acknowledged in it */
                LOG_WARNING("spool: removing unfinished segment \"%s\" (%lld bytes)", path.c_str(),
                            static_cast<long long>(st.st_size));
                unlink(path.c_str());
                continue;
            }
            std::string moved = path + ".corrupt";
            LOG_ERROR("spool: segment \"%s\" has a bad header; renamed to \"%s\", its entries are NOT replayed",
                      path.c_str(), moved.c_str());
            if (rename(path.c_str(), moved.c_str()) != 0)
                throw std::runtime_error(errno_text("cannot rename damaged spool segment", path));
            continue;
        }
        uint64_t n = static_cast<uint64_t>(st.st_size - kHeaderBytes) / kEntryBytes;
        uint64_t valid_end = 0; /* entries up to the last valid one */
        uint64_t corrupt = 0;
        buf.resize(kEntryBytes);
        for (uint64_t k = 0; k < n; k++) {
            Entry e;
            if (!pread_all(fd, buf.data(), kEntryBytes, static_cast<off_t>(kHeaderBytes + k * kEntryBytes))) {
                n = k;
                break;
            }
            if (decode_entry(buf.data(), first + k, version, &e))
                valid_end = k + 1;
            else
                corrupt++;
        }
        uint64_t keep = newest ? valid_end : n;
        uint64_t good_bytes = kHeaderBytes + keep * kEntryBytes;
        if (newest && static_cast<uint64_t>(st.st_size) != good_bytes) {
            LOG_WARNING("spool: cutting a torn tail of %llu bytes off \"%s\" (a crash during an append; "
                        "those entries were never acknowledged)",
                        static_cast<unsigned long long>(st.st_size - good_bytes), path.c_str());
            if (ftruncate(fd, static_cast<off_t>(good_bytes)) != 0 || fdatasync(fd) != 0) {
                std::string e = errno_text("cannot truncate", path);
                close(fd);
                throw std::runtime_error(e);
            }
            corrupt -= std::min(corrupt, n - keep);
        }
        if (corrupt > 0) {
            LOG_ERROR("spool: %llu damaged entries in \"%s\"; they go to the dead-letter table",
                      static_cast<unsigned long long>(corrupt), path.c_str());
            recovered_corrupt_ += corrupt;
        }
        close(fd);
        /* entries past the next segment's first seq were never acknowledged
         * (written by a failed append, then the segment rolled over) */
        if (!newest) {
            uint64_t next_first = files[i + 1].first;
            if (next_first >= first && keep > next_first - first) {
                LOG_WARNING("spool: ignoring %llu unacknowledged entries at the end of \"%s\"",
                            static_cast<unsigned long long>(keep - (next_first - first)), path.c_str());
                keep = next_first - first;
            }
        }
        segments_.push_back({first, keep, path, version});
    }
    if (segments_.empty()) {
        std::string error;
        if (!open_new_segment(0, &error))
            throw std::runtime_error(error);
    } else {
        const Segment &last = segments_.back();
        next_seq_ = last.first_seq + last.count;
        if (last.version != kVersion) {
            /* written by an older pilotd: read as it is, appends go to a new one */
            std::string error;
            if (last.count == 0) {
                unlink(last.path.c_str());
                segments_.pop_back();
            }
            if (!open_new_segment(next_seq_, &error))
                throw std::runtime_error(error);
        } else {
            fd_ = open(last.path.c_str(), O_RDWR | O_CLOEXEC);
            if (fd_ < 0)
                throw std::runtime_error(errno_text("cannot open spool segment", last.path));
        }
    }
    LOG_INFO("spool \"%s\" (id %s): %zu segments, entries %llu..%llu", dir_.c_str(), id_.c_str(),
             segments_.size(), static_cast<unsigned long long>(segments_.front().first_seq),
             static_cast<unsigned long long>(next_seq_));
}

/* With mu_ held (or before any other thread runs). */
bool FeedbackSpool::open_new_segment(uint64_t first_seq, std::string *error) noexcept {
    try {
        std::string path = dir_ + "/" + segment_name(first_seq);
        int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            *error = errno_text("cannot create spool segment", path);
            return false;
        }
        unsigned char hdr[kHeaderBytes];
        encode_header(hdr, first_seq);
        if (!pwrite_all(fd, hdr, kHeaderBytes, 0) || fdatasync(fd) != 0 || !fsync_dir(dir_)) {
            *error = errno_text("cannot write spool segment", path);
            close(fd);
            unlink(path.c_str());
            return false;
        }
        if (fd_ >= 0)
            close(fd_);
        fd_ = fd;
        segments_.push_back({first_seq, 0, path, kVersion});
        next_seq_ = first_seq;
        return true;
    } catch (const std::exception &e) {
        *error = e.what();
        return false;
    }
}

void FeedbackSpool::note_failure(const std::string &what) noexcept {
    uint64_t now = monotonic_us();
    if (last_failure_log_us_ == 0 || now - last_failure_log_us_ >= kFailureLogIntervalUs) {
        LOG_ERROR("spool: %s; feedback is not acknowledged and stays in the queues (%llu similar failures "
                  "not logged)",
                  what.c_str(), static_cast<unsigned long long>(failures_unlogged_));
        last_failure_log_us_ = now;
        failures_unlogged_ = 0;
    } else {
        failures_unlogged_++;
    }
}

bool FeedbackSpool::append(const FeedbackBatch &b, uint64_t now_unix_us) noexcept {
    const uint64_t n = static_cast<uint64_t>(b.n) + b.ndead;
    if (n == 0)
        return true;
    std::unique_lock<std::mutex> lock(mu_);
    if (!room_locked(n))
        return false;
    std::string error;
    Segment *seg = &segments_.back();
    if (kHeaderBytes + seg->count * kEntryBytes >= segment_bytes_) {
        if (!open_new_segment(next_seq_, &error)) {
            note_failure(error);
            return false;
        }
        seg = &segments_.back();
    }
    std::vector<unsigned char> buf;
    try {
        buf.resize(n * kEntryBytes);
    } catch (...) {
        note_failure("out of memory");
        return false;
    }
    uint64_t seq = next_seq_;
    unsigned char *p = buf.data();
    for (uint32_t i = 0; i < b.n; i++, p += kEntryBytes)
        encode_entry(p, Entry{seq++, now_unix_us, FEEDBACK, 0, b.rec[i]});
    for (uint32_t i = 0; i < b.ndead; i++, p += kEntryBytes)
        encode_entry(p, Entry{seq++, now_unix_us, DEAD, b.dead_reason[i], b.dead[i]});
    /* written at the known-good end, so a failed write is overwritten next time */
    off_t off = static_cast<off_t>(kHeaderBytes + seg->count * kEntryBytes);
    if (!pwrite_all(fd_, buf.data(), buf.size(), off) || fdatasync(fd_) != 0) {
        note_failure(errno_text("cannot append to", seg->path));
        /* nothing of it may look acknowledged later: cut it off now, or
         * after the next append that works */
        fd_suspect_ = ftruncate(fd_, off) != 0;
        return false;
    }
    if (fd_suspect_) {
        off_t end = off + static_cast<off_t>(buf.size());
        if (ftruncate(fd_, end) != 0 || fdatasync(fd_) != 0) {
            note_failure(errno_text("cannot cut the end of", seg->path));
            return false;
        }
        fd_suspect_ = false;
    }
    seg->count += n;
    next_seq_ = seq;
    appended_ += n;
    if (std::atomic<uint64_t> *c = appended_ctr_.load())
        c->store(appended_, std::memory_order_relaxed);
    if (std::atomic<uint64_t> *c = next_seq_ctr_.load())
        c->store(next_seq_, std::memory_order_release);
    lock.unlock();
    cv_.notify_all();
    return true;
}

/* With mu_ held.  The limit counts what waits for the store, not the
 * committed entries still in the newest segment. */
bool FeedbackSpool::room_locked(uint64_t n) noexcept {
    uint64_t oldest = segments_.empty() ? next_seq_ : segments_.front().first_seq;
    uint64_t base = std::max(oldest, released_);
    uint64_t pending = next_seq_ > base ? next_seq_ - base : 0;
    uint64_t need = (pending + n) * kEntryBytes + kHeaderBytes;
    if (need <= max_bytes_) {
        full_logged_ = false;
        return true;
    }
    refused_ += n;
    if (!full_logged_) {
        LOG_WARNING("spool is full (%llu entries wait for the store, limit %llu bytes; is the store "
                    "unreachable?): feedback is not acknowledged until it drains, backends drop and count "
                    "what does not fit",
                    static_cast<unsigned long long>(pending), static_cast<unsigned long long>(max_bytes_));
        full_logged_ = true;
    }
    return false;
}

bool FeedbackSpool::has_room(uint64_t n) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    return room_locked(n);
}

bool FeedbackSpool::advance_to(uint64_t seq) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    if (seq <= next_seq_)
        return true;
    std::string error;
    if (!open_new_segment(seq, &error)) {
        LOG_ERROR("spool: %s", error.c_str());
        return false;
    }
    LOG_WARNING("spool: numbering continues at %llu", static_cast<unsigned long long>(seq));
    return true;
}

void FeedbackSpool::read(uint64_t from, size_t max, std::vector<Entry> *out) {
    out->clear();
    std::vector<Segment> segs;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (const Segment &s : segments_)
            if (s.first_seq + s.count > from && s.count > 0)
                segs.push_back(s);
    }
    std::vector<unsigned char> buf;
    for (const Segment &s : segs) {
        if (out->size() >= max)
            break;
        uint64_t start = std::max(from, s.first_seq);
        uint64_t k = start - s.first_seq;
        uint64_t n = std::min<uint64_t>(s.count - k, max - out->size());
        int fd = open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            throw std::runtime_error(errno_text("cannot open spool segment", s.path));
        buf.resize(n * kEntryBytes);
        bool ok = pread_all(fd, buf.data(), buf.size(), static_cast<off_t>(kHeaderBytes + k * kEntryBytes));
        int saved = errno;
        close(fd);
        if (!ok) {
            errno = saved;
            throw std::runtime_error(errno_text("cannot read spool segment", s.path));
        }
        for (uint64_t i = 0; i < n; i++) {
            Entry e;
            const unsigned char *p = &buf[i * kEntryBytes];
            if (!decode_entry(p, start + i, s.version, &e))
                corrupt_entry(p, start + i, &e);
            out->push_back(e);
        }
        from = start + n;
    }
}

void FeedbackSpool::release(uint64_t watermark) noexcept {
    std::vector<std::string> doomed;
    {
        std::lock_guard<std::mutex> g(mu_);
        released_ = std::max(released_, watermark);
        while (segments_.size() > 1 && segments_.front().first_seq + segments_.front().count <= watermark) {
            try {
                doomed.push_back(segments_.front().path);
            } catch (...) {
                return;
            }
            segments_.erase(segments_.begin());
        }
    }
    for (const std::string &p : doomed)
        if (unlink(p.c_str()) != 0)
            LOG_WARNING("spool: cannot remove committed segment \"%s\": %s", p.c_str(), strerror(errno));
    if (!doomed.empty())
        fsync_dir(dir_);
}

void FeedbackSpool::set_counters(std::atomic<uint64_t> *appended, std::atomic<uint64_t> *next_seq) {
    std::lock_guard<std::mutex> g(mu_);
    appended_ctr_.store(appended);
    next_seq_ctr_.store(next_seq);
    if (next_seq != nullptr)
        next_seq->store(next_seq_, std::memory_order_release);
}

void FeedbackSpool::wait_for(uint64_t from, uint32_t timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return next_seq_ > from || woken_; });
    woken_ = false;
}

void FeedbackSpool::wake() {
    {
        std::lock_guard<std::mutex> g(mu_);
        woken_ = true;
    }
    cv_.notify_all();
}

uint64_t FeedbackSpool::next_seq() {
    std::lock_guard<std::mutex> g(mu_);
    return next_seq_;
}

uint64_t FeedbackSpool::first_seq() {
    std::lock_guard<std::mutex> g(mu_);
    return segments_.empty() ? next_seq_ : segments_.front().first_seq;
}

} // namespace pilotd
