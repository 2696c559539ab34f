/*
 * memo_journal.h — the memo's write-ahead journal, STATE_DIR/memo.journal:
 * feedback pilotd accepted survives kill -9 of pilotd.
 *
 * File format (host byte order, like oracle.bin):
 *   header, 16 bytes:  "PLTMEMOJ" (8) | uint32 version = 2 | uint32 0
 *   records, 40 bytes each, appended:
 *     uint64 key | double rows | uint64 count | uint64 table set |
 *     uint32 tag 'MJR2' | uint32 CRC-32 of the 36 bytes before it
 *   key is the memo's key (memo_store.h, memo_key(): the subplan key mixed
 *   with the database; a journal of a pilotd before per-database memo keys
 *   holds plain subplan keys, which memo_key() of database 0 gives: read as
 *   entries of no particular database).
 *   count is how many observations the record stands for: 1 for a record the
 *   drain appended, the key's total for a record written by compaction.  The
 *   table set (FeedbackRecord::table_set) feeds the known-sets filter
 *   (known_sets.h); 0 is unknown.  A version-1 journal (32-byte records
 *   without the table set, tag 'MJR1') is read, its sets' tables unknown
 *   until they are observed again; compaction writes version 2.
 *
 * Replay: records in file order, the latest rows of a key win, counts add up.
 * A record with a bad CRC/tag followed by a valid one is skipped and counted
 * (corrupt); bad records and a partial record after the last valid one are a
 * torn tail from a crash: cut off (the bytes are logged).  A wrong magic or
 * version: the file is renamed to memo.journal.corrupt.<time> and the memo
 * starts empty.  After replay the journal is compacted.
 *
 * Compaction: the memo's entries, one record per key, into a temp file,
 * fsync, rename over memo.journal, fsync the directory.  At startup, when the
 * journal grows past max_bytes (checked by the drain between batches), and
 * before the next append after an append whose outcome is uncertain.
 *
 * append() opens the journal per batch (O_APPEND), writes and fdatasync()s:
 * only after it returned true may the batch be applied to the memo and the
 * ring tails advanced.  Only the feedback thread calls append() and
 * maybe_compact(); recover() runs before it starts.
 */
#ifndef PILOTD_MEMO_JOURNAL_H
#define PILOTD_MEMO_JOURNAL_H

#include "memo_store.h"
#include "pilot_protocol.h"

#include <cstdint>
#include <string>

namespace pilotd {

class MemoJournal {
  public:
    static constexpr uint32_t kVersion = 2;
    static constexpr size_t kHeaderBytes = 16;
    static constexpr size_t kRecordBytes = 40;
    static constexpr size_t kV1RecordBytes = 32;

    MemoJournal(const std::string &state_dir, uint64_t max_bytes, MemoStore &memo);

    /* Replays the journal into the memo, then compacts it.  Throws
     * std::runtime_error when an existing journal cannot be read (starting
     * empty would lose it); a failed compaction is only logged (appends then
     * retry it first). */
    void recover();

    /* Makes the FB_RELSET records among recs durable.  True when they are
     * (or there are none); false on any failure (counted, logged rate-limited):
     * the caller must not apply the batch nor advance the ring tails. */
    bool append(const pilot::proto::FeedbackRecord *recs, uint32_t n) noexcept;

    /* Compacts when the journal is larger than max_bytes. */
    void maybe_compact() noexcept;

    const std::string &path() const { return path_; }
    uint64_t bytes() const { return size_; }
    uint64_t appended() const { return appended_; }
    uint64_t failures() const { return failures_; }
    uint64_t compactions() const { return compactions_; }

  private:
    bool compact(std::string *error) noexcept;
    void note_failure(const std::string &what) noexcept;

    std::string dir_, path_;
    uint64_t max_bytes_;
    MemoStore &memo_;
    uint64_t retry_at_ = 0;       /* after a failed compaction */
    uint64_t size_ = 0;           /* bytes in the journal (known good) */
    bool needs_compact_ = false;  /* the file's end is not known good */
    uint64_t appended_ = 0;       /* records made durable */
    uint64_t failures_ = 0;       /* failed append attempts */
    uint64_t failures_unlogged_ = 0;
    uint64_t last_failure_log_us_ = 0;
    bool failing_ = false;
    uint64_t compactions_ = 0;
};

} // namespace pilotd

#endif
