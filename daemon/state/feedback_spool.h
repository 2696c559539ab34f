/*
 * feedback_spool.h — the local append-only log of acknowledged feedback,
 * STATE_DIR/spool/, between the feedback rings and the PostgreSQL store
 * (pg_store.h).
 *
 * Why a log first: a backend's records are acknowledged (the ring slot given
 * back) as soon as they are durable HERE, so neither a slow nor an unreachable
 * PostgreSQL ever holds up the drain; the store thread commits the log to the
 * feedback tables in order, exactly once, at its own pace (see pg_store.h for
 * the watermark that makes it exactly once).  "Acknowledged" therefore means
 * "fdatasync()ed in the spool, and committed to the store later".
 *
 * Every entry has a sequence number (consecutive, never reused: the newest
 * segment is never deleted, so the numbering survives restarts).  Files:
 *   id                     this spool's identity (random hex), the key of its
 *                          watermark in pg_pilot.store_progress
 *   pgsql_tmp.spool_of_this_server
 *                          the marker that a base backup does not copy
 *                          (set_aside_if_copied())
 *   <16 hex first seq>.seg segments, appended; a new one when the current is
 *                          larger than segment_bytes
 * Segment: header, 32 bytes: "PLTSPOOL" | u32 version (2; segments of version 1,
 *   protocol-6 records, are still read and converted) | u32 entry size |
 *   u64 first seq | u64 0;  entries, 160 bytes each:
 *   u64 seq | u64 received (unix us) | u32 type | u32 reason |
 *   FeedbackRecord (128) | u32 tag "SPE1" | u32 CRC-32 of the 156 bytes before.
 *
 * Recovery: a torn tail (partial entry, or invalid entries after the last
 * valid one) of the newest segment is cut off; an invalid entry before a
 * valid one is read back as a DEAD entry (reason kCorruptEntry) with its
 * bytes, never skipped silently.  A segment with a bad header is renamed
 * *.corrupt and logged.
 *
 * Bounded: append() refuses when the entries not yet committed to the store
 * would exceed max_bytes (the rings then fill and the backends drop and
 * count).  Committed entries still in the newest segment do not count; the
 * disk may hold up to one segment more.
 *
 * A failed append is cut off (ftruncate) so that nothing unacknowledged looks
 * valid later; recovery also ignores entries of a segment that overlap the
 * next one.
 *
 * Threads: append() on the feedback thread, read()/release() on the store
 * thread; one mutex guards the segment list.
 */
#ifndef PILOTD_FEEDBACK_SPOOL_H
#define PILOTD_FEEDBACK_SPOOL_H

#include "feedback_batch.h"
#include "pilot_protocol.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace pilotd {

class FeedbackSpool {
  public:
    static constexpr uint32_t kVersion = 3; /* 3: protocol 8 records; 1 and 2 are still read */
    static constexpr size_t kHeaderBytes = 32;
    static constexpr size_t kEntryBytes = 160;

    enum Type : uint32_t {
        FEEDBACK = 1, /* a valid record */
        DEAD = 2,     /* a record for the dead-letter table; reason says why */
    };
    /* reasons of DEAD entries: a pilot::proto::FeedbackCheck, or */
    static constexpr uint32_t kCorruptEntry = 100; /* spool entry failed its CRC */

    struct Entry {
        uint64_t seq;
        uint64_t received_us; /* wall clock, unix microseconds */
        uint32_t type;
        uint32_t reason;
        pilot::proto::FeedbackRecord rec; /* DEAD: the bytes as found */
    };

    FeedbackSpool(const std::string &state_dir, uint64_t max_bytes, uint64_t segment_bytes);

    /* Creates the directory and id, scans the segments.  Throws
     * std::runtime_error when the spool cannot be read or created. */
    void recover();

    /* A spool without this server's marker (a pgsql_tmp* file, which
     * pg_basebackup and pg_rewind do not copy), inside data directory pgdata
     * made by a base backup (backup_label or backup_label.old), was copied with
     * it: pg_basebackup copies DATADIR/pg_pilot, the default state directory.
     * Its records are the original pilotd's to commit, and its identity is
     * that pilotd's watermark: two pilotds must never share one.  Moves such a
     * spool aside (spool.copied-UNIXTIME, kept, never committed) and returns
     * true; false when the spool is this server's own, or there is none.
     * Before recover(), which marks the spool it opens or creates. */
    static bool set_aside_if_copied(const std::string &state_dir, const std::string &pgdata);

    /* Makes the batch durable (one fdatasync).  False on failure or when the
     * spool is full (counted, logged rate-limited): nothing is acknowledged. */
    bool append(const FeedbackBatch &b, uint64_t now_unix_us) noexcept;

    /* Would n more entries fit (see the limit above)?  Counted as refused
     * when not. */
    bool has_room(uint64_t n) noexcept;

    /* The store has committed up to seq, beyond this spool's newest entry
     * (the spool lost entries, or was restored): numbering continues at seq
     * in a new segment, so no new entry is taken for a committed one. */
    bool advance_to(uint64_t seq) noexcept;

    /* Up to max entries with seq >= from (durable ones only), in order.
     * Entries below the oldest segment are gone: reading starts there. */
    void read(uint64_t from, size_t max, std::vector<Entry> *out);

    /* Everything below `watermark` is committed: deletes the segments that
     * hold only such entries (never the newest). */
    void release(uint64_t watermark) noexcept;

    /* Waits until an entry with seq >= from exists, at most timeout_ms. */
    void wait_for(uint64_t from, uint32_t timeout_ms);
    /* Wakes wait_for() (shutdown). */
    void wake();

    /* Where appended() and next_seq() are published (the segment's
     * counters); may be null. */
    void set_counters(std::atomic<uint64_t> *appended, std::atomic<uint64_t> *next_seq);

    const std::string &id() const { return id_; }
    std::string dir() const { return dir_; }
    uint64_t next_seq();      /* the seq the next entry gets */
    uint64_t first_seq();     /* the oldest entry still in the spool */
    uint64_t appended() const { return appended_; }
    uint64_t refused() const { return refused_; }
    uint64_t recovered_corrupt() const { return recovered_corrupt_; }

  private:
    struct Segment {
        uint64_t first_seq;
        uint64_t count; /* durable entries */
        std::string path;
        uint32_t version; /* of its header: 1 (protocol 6 records), 2 (protocol 7) or kVersion */
    };
    bool open_new_segment(uint64_t first_seq, std::string *error) noexcept;
    void note_failure(const std::string &what) noexcept;
    bool room_locked(uint64_t n) noexcept;

    std::string dir_, id_;
    uint64_t max_bytes_, segment_bytes_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Segment> segments_; /* oldest first; never empty after recover() */
    uint64_t next_seq_ = 0;
    int fd_ = -1;            /* the newest segment, for appends */
    bool fd_suspect_ = false; /* a failed append may have left bytes past count */
    uint64_t appended_ = 0, refused_ = 0, recovered_corrupt_ = 0;
    uint64_t last_failure_log_us_ = 0, failures_unlogged_ = 0;
    bool full_logged_ = false;
    bool woken_ = false;
    uint64_t released_ = 0; /* highest watermark given to release() */
    std::atomic<std::atomic<uint64_t> *> appended_ctr_{nullptr}, next_seq_ctr_{nullptr};
};

} // namespace pilotd

#endif
