/*
 * key_catalog.h — the canonical text of every relation set pilotd was asked
 * about, by subplan key: what the learned model is trained from.  Feedback
 * (pg_pilot.feedback) carries only keys; the text — tables, joins, predicates
 * with constants — arrives with estimate requests.
 *
 * STATE_DIR/keys.catalog is append-only: one entry per key,
 *   u32 magic | u32 len | u64 key | u32 dboid | u32 crc32(key, dboid, text) | text
 * An entry is accepted only if stable_hash64(text) == key (garbage in shared
 * memory never enters).  Request workers only queue new keys (bounded, no
 * I/O); a writer thread appends and syncs.  A torn tail (crash mid-append) is
 * cut when the catalog is opened.  The catalog is not feedback: an entry lost
 * with a crash is written again the next time the key is asked.
 *
 * The keys on disk are published in the segment (attach(); pilot_protocol.h,
 * KeyTexts): backends send a key's text only when pilotd lacks it.
 */
#ifndef PILOTD_KEY_CATALOG_H
#define PILOTD_KEY_CATALOG_H

#include "estimator.h"
#include "pilot_protocol.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pilotd {

class KeyCatalog final : public KeyTextSink {
  public:
    KeyCatalog(std::string path, uint64_t max_bytes) : path_(std::move(path)), max_bytes_(max_bytes) {}
    ~KeyCatalog() override { stop(); }

    /* Reads the keys already there (cutting a torn tail) and opens for append. */
    bool open(std::string *error);
    void start();
    void stop() noexcept;

    void note(const EstimateBatch &b) noexcept override;

    /* Publishes the keys on disk into seg, and each key once written
     * (nullptr: stop publishing, before the segment goes). */
    void attach(pilot::proto::KeyTexts *seg) noexcept;
    uint64_t unpublished() const { return unpublished_.load(std::memory_order_relaxed); }

    uint64_t entries() const { return entries_.load(std::memory_order_relaxed); }
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

    struct Entry {
        uint32_t dboid = 0;
        std::string text;
    };
    /* Reads a catalog file (any process; a concurrent writer's torn tail is skipped). */
    static bool load(const std::string &path, std::unordered_map<uint64_t, Entry> *out, std::string *error);

  private:
    void run() noexcept;
    void publish_locked(uint64_t key) noexcept;

    const std::string path_;
    const uint64_t max_bytes_;
    int fd_ = -1;
    uint64_t size_ = 0;

    std::mutex mu_;
    std::condition_variable cv_;
    std::unordered_set<uint64_t> known_; /* on disk or queued */
    struct Pending {
        uint64_t key;
        uint32_t dboid;
        std::string text;
    };
    std::vector<Pending> queue_;
    uint64_t queued_bytes_ = 0;
    bool stopping_ = false;
    bool full_logged_ = false;
    std::thread writer_;
    std::atomic<uint64_t> entries_{0};
    std::atomic<uint64_t> dropped_{0};
    pilot::proto::KeyTexts *seg_ = nullptr; /* under mu_ */
    std::atomic<uint64_t> unpublished_{0};  /* written, but the segment's set was full */
};

} // namespace pilotd

#endif
