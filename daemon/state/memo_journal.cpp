/* memo_journal.cpp — see memo_journal.h. */
#include "memo_journal.h"

#include "durable_file.h"

#include "log.h"
#include "crc32.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace pilotd {

using namespace pilot::proto;

namespace {

constexpr char kMagic[8] = {'P', 'L', 'T', 'M', 'E', 'M', 'O', 'J'};
constexpr uint32_t kTag = 0x32524A4Du;   /* "MJR2" */
constexpr uint32_t kV1Tag = 0x31524A4Du; /* "MJR1" */
constexpr uint64_t kFailureLogIntervalUs = 10ull * 1000 * 1000;


void encode_header(unsigned char *p) {
    memcpy(p, kMagic, 8);
    uint32_t v = MemoJournal::kVersion, z = 0;
    memcpy(p + 8, &v, 4);
    memcpy(p + 12, &z, 4);
}

void encode_record(unsigned char *p, uint64_t key, double rows, uint64_t count, uint64_t table_set) {
    memcpy(p, &key, 8);
    memcpy(p + 8, &rows, 8);
    memcpy(p + 16, &count, 8);
    memcpy(p + 24, &table_set, 8);
    memcpy(p + 32, &kTag, 4);
    uint32_t crc = crc32(p, 36);
    memcpy(p + 36, &crc, 4);
}

/* A record of a journal of `version` (1: 32 bytes, no table set). */
bool decode_record(const unsigned char *p, uint32_t version, uint64_t *key, double *rows, uint64_t *count,
                   uint64_t *table_set) {
    const size_t body = version == 1 ? 28 : 36;
    const uint32_t want = version == 1 ? kV1Tag : kTag;
    uint32_t tag, crc;
    memcpy(&tag, p + body - 4, 4);
    memcpy(&crc, p + body, 4);
    if (tag != want || crc != crc32(p, body))
        return false;
    memcpy(key, p, 8);
    memcpy(rows, p + 8, 8);
    memcpy(count, p + 16, 8);
    *table_set = 0;
    if (version != 1)
        memcpy(table_set, p + 24, 8);
    return *count > 0 && *rows >= 0 && *rows == *rows;
}



} // namespace

MemoJournal::MemoJournal(const std::string &state_dir, uint64_t max_bytes, MemoStore &memo)
    : dir_(state_dir), path_(state_dir + "/memo.journal"), max_bytes_(max_bytes), memo_(memo) {}

void MemoJournal::recover() {
    std::string b, error;
    bool missing = false;
    if (!read_file(path_, &b, &error, &missing)) {
        if (!missing)
            throw std::runtime_error("memo journal: " + error);
        LOG_INFO("memo journal \"%s\" does not exist yet: starting with an empty memo", path_.c_str());
    } else if (!b.empty() && (b.size() < kHeaderBytes || memcmp(b.data(), kMagic, 8) != 0 ||
                              [&] {
                                  uint32_t v;
                                  memcpy(&v, b.data() + 8, 4);
                                  return v != kVersion && v != 1;
                              }())) {
        std::string dest = path_ + ".corrupt." + std::to_string(static_cast<long long>(time(nullptr)));
        if (rename(path_.c_str(), dest.c_str()) != 0)
            throw std::runtime_error("memo journal \"" + path_ +
                                     "\" has a wrong magic or version and cannot be renamed to \"" + dest +
                                     "\": " + strerror(errno));
        LOG_ERROR("memo journal \"%s\" has a wrong magic or version (not a version %u memo journal): renamed it "
                  "to \"%s\"; starting with an empty memo",
                  path_.c_str(), kVersion, dest.c_str());
    } else if (!b.empty()) {
        std::unordered_map<uint64_t, MemoStore::Entry> m;
        uint32_t version;
        memcpy(&version, b.data() + 8, 4);
        const size_t record_bytes = version == 1 ? kV1RecordBytes : kRecordBytes;
        const size_t nrec = (b.size() - kHeaderBytes) / record_bytes;
        size_t replayed = 0, bad_pending = 0, corrupt = 0;
        size_t good_end = kHeaderBytes; /* just past the last valid record */
        for (size_t i = 0; i < nrec; i++) {
            const unsigned char *p = reinterpret_cast<const unsigned char *>(b.data()) + kHeaderBytes + i * record_bytes;
            uint64_t key, count, table_set;
            double rows;
            if (!decode_record(p, version, &key, &rows, &count, &table_set)) {
                bad_pending++;
                continue;
            }
            corrupt += bad_pending; /* bad records followed by a good one */
            bad_pending = 0;
            MemoStore::Entry &e = m[key];
            e.rows = rows;
            e.count += count;
            if (table_set != 0)
                e.table_set = table_set;
            replayed++;
            good_end = kHeaderBytes + (i + 1) * record_bytes;
        }
        const size_t torn = b.size() - good_end;
        if (version == 1 && !m.empty())
            LOG_WARNING("memo journal \"%s\" was written by an older pilotd: the tables of its %zu relation sets "
                        "are unknown until each is observed again, and until then backends ask pilotd for every "
                        "relation set (the known-sets filter is off)",
                        path_.c_str(), m.size());
        size_t loaded = memo_.restore(m);
        LOG_INFO("memo journal \"%s\": replayed %zu records into %zu relation sets (%zu loaded), skipped %zu "
                 "corrupt records, discarded a torn tail of %zu bytes",
                 path_.c_str(), replayed, m.size(), loaded, corrupt, torn);
        if (corrupt)
            LOG_WARNING("memo journal \"%s\": %zu corrupt records in the middle were skipped", path_.c_str(),
                        corrupt);
        if (torn)
            LOG_WARNING("memo journal \"%s\": discarded %zu bytes of a torn tail (an interrupted write)",
                        path_.c_str(), torn);
    }
    error.clear();
    if (!compact(&error)) {
        needs_compact_ = true;
        LOG_WARNING("memo journal: cannot compact at startup (%s): feedback is not accepted until it can be "
                    "written",
                    error.c_str());
    }
}

bool MemoJournal::compact(std::string *error) noexcept {
    try {
        std::vector<std::pair<uint64_t, MemoStore::Entry>> entries = memo_.snapshot();
        std::vector<unsigned char> bytes(kHeaderBytes + entries.size() * kRecordBytes);
        encode_header(bytes.data());
        unsigned char *p = bytes.data() + kHeaderBytes;
        for (const auto &kv : entries) {
            encode_record(p, kv.first, kv.second.rows, kv.second.count ? kv.second.count : 1, kv.second.table_set);
            p += kRecordBytes;
        }
        Replaced r = replace_file(dir_, path_, bytes.data(), bytes.size(), error);
        if (r == Replaced::Failed)
            return false;
        if (r == Replaced::NotDurable) {
            /* the new file is in place, its name maybe not durable yet:
             * compaction is retried before the next append */
            size_ = bytes.size();
            needs_compact_ = true;
            return false;
        }
        LOG_DEBUG("memo journal compacted: %llu bytes -> %zu bytes (%zu relation sets)",
                  static_cast<unsigned long long>(size_), bytes.size(), entries.size());
        size_ = bytes.size();
        needs_compact_ = false;
        compactions_++;
        return true;
    } catch (const std::exception &e) {
        *error = e.what();
        return false;
    }
}

void MemoJournal::note_failure(const std::string &what) noexcept {
    failures_++;
    failures_unlogged_++;
    uint64_t now = monotonic_us();
    if (!failing_ || now - last_failure_log_us_ >= kFailureLogIntervalUs) {
        LOG_ERROR("memo journal: %s; feedback is not accepted (it stays in the rings and is retried) "
                  "[%llu failed attempts since the last message, %llu in all]",
                  what.c_str(), static_cast<unsigned long long>(failures_unlogged_),
                  static_cast<unsigned long long>(failures_));
        failures_unlogged_ = 0;
        last_failure_log_us_ = now;
    }
    failing_ = true;
}

bool MemoJournal::append(const FeedbackRecord *recs, uint32_t n) noexcept {
    try {
        std::vector<unsigned char> bytes;
        bytes.reserve(static_cast<size_t>(n) * kRecordBytes);
        for (uint32_t i = 0; i < n; i++) {
            if (recs[i].kind != FB_RELSET)
                continue;
            size_t off = bytes.size();
            bytes.resize(off + kRecordBytes);
            encode_record(bytes.data() + off, memo_key(recs[i].dboid, recs[i].key), recs[i].actual_rows, 1,
                          recs[i].table_set);
        }
        if (bytes.empty())
            return true;
        std::string error;
        if (needs_compact_ && !compact(&error)) {
            note_failure(error);
            return false;
        }
        int fd = open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                needs_compact_ = true; /* recreated (with its header) next time */
            note_failure(errno_text("cannot open", path_));
            return false;
        }
        struct stat st;
        bool ok = fstat(fd, &st) == 0;
        const off_t before = ok ? st.st_size : 0;
        if (ok && !write_all(fd, bytes.data(), bytes.size())) {
            error = errno_text("cannot write to", path_);
            ok = false;
        } else if (ok && fdatasync(fd) != 0) {
            error = errno_text("cannot fdatasync", path_);
            ok = false;
        } else if (!ok) {
            error = errno_text("cannot stat", path_);
        }
        if (!ok) {
            /* the file's end is uncertain: cut back to what was there, or
             * rewrite the whole journal from the memo before the next append */
            if (ftruncate(fd, before) != 0 || fdatasync(fd) != 0)
                needs_compact_ = true;
            close(fd);
            note_failure(error);
            return false;
        }
        close(fd);
        size_ = static_cast<uint64_t>(before) + bytes.size();
        appended_ += bytes.size() / kRecordBytes;
        if (failing_) {
            LOG_INFO("memo journal \"%s\" is writable again after %llu failed attempts",
                     path_.c_str(), static_cast<unsigned long long>(failures_));
            failing_ = false;
            failures_unlogged_ = 0;
        }
        return true;
    } catch (const std::exception &e) {
        note_failure(e.what());
        return false;
    }
}

void MemoJournal::maybe_compact() noexcept {
    if (size_ <= max_bytes_ || size_ < retry_at_ || needs_compact_)
        return; /* needs_compact_: append() retries it */
    uint64_t before = size_;
    std::string error;
    if (compact(&error)) {
        LOG_INFO("memo journal compacted: %llu bytes -> %llu bytes", static_cast<unsigned long long>(before),
                 static_cast<unsigned long long>(size_));
    } else {
        /* retried when the journal has grown by another max_bytes */
        LOG_WARNING("memo journal: cannot compact (%s)", error.c_str());
        retry_at_ = size_ + max_bytes_;
    }
}

} // namespace pilotd
