/* key_catalog.cpp — see key_catalog.h. */
#include "key_catalog.h"

#include "crc32.h"
#include "durable_file.h"
#include "log.h"
#include "pilot_protocol.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pilotd {

namespace {

constexpr uint32_t kEntryMagic = 0x4b504c50; /* "PLPK" */
constexpr size_t kHeader = 4 + 4 + 8 + 4 + 4;
constexpr uint32_t kMaxText = pilot::proto::kMaxText;
constexpr uint64_t kMaxQueuedBytes = 16u << 20; /* bytes waiting for the writer */

uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

uint32_t entry_crc(uint64_t key, uint32_t dboid, const char *text, size_t len) {
    uint32_t c = crc32(&key, sizeof key);
    c = crc32(&dboid, sizeof dboid, c);
    return crc32(text, len, c);
}

/* Calls f(key, dboid, text) for each valid entry; returns the length of the
 * valid prefix. */
template <class F>
size_t scan(const std::string &bytes, F f) {
    const uint8_t *p = reinterpret_cast<const uint8_t *>(bytes.data());
    size_t at = 0;
    while (bytes.size() - at >= kHeader) {
        uint32_t magic = rd32(p + at), len = rd32(p + at + 4);
        if (magic != kEntryMagic || len > kMaxText || bytes.size() - at - kHeader < len)
            break;
        uint64_t key = rd64(p + at + 8);
        uint32_t dboid = rd32(p + at + 16), crc = rd32(p + at + 20);
        const char *text = bytes.data() + at + kHeader;
        if (crc != entry_crc(key, dboid, text, len))
            break;
        f(key, dboid, text, len);
        at += kHeader + len;
    }
    return at;
}

} // namespace

bool KeyCatalog::load(const std::string &path, std::unordered_map<uint64_t, Entry> *out, std::string *error) {
    std::string bytes;
    bool missing = false;
    if (!read_file(path, &bytes, error, &missing))
        return missing; /* no catalog yet: nothing in it */
    scan(bytes, [&](uint64_t key, uint32_t dboid, const char *text, size_t len) {
        Entry &e = (*out)[key];
        e.dboid = dboid;
        e.text.assign(text, len);
    });
    return true;
}

bool KeyCatalog::open(std::string *error) {
    std::string bytes;
    bool missing = false;
    if (!read_file(path_, &bytes, error, &missing) && !missing)
        return false;
    size_t valid = scan(bytes, [&](uint64_t key, uint32_t, const char *, size_t) { known_.insert(key); });
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
        *error = errno_text("cannot open", path_);
        return false;
    }
    if (valid < bytes.size()) {
        LOG_WARNING("key catalog %s: cut %zu bytes of a torn or damaged tail", path_.c_str(), bytes.size() - valid);
        if (::ftruncate(fd_, static_cast<off_t>(valid)) != 0) {
            *error = errno_text("cannot truncate", path_);
            return false;
        }
    }
    if (::lseek(fd_, static_cast<off_t>(valid), SEEK_SET) < 0) {
        *error = errno_text("cannot seek", path_);
        return false;
    }
    size_ = valid;
    entries_.store(known_.size(), std::memory_order_relaxed);
    return true;
}

void KeyCatalog::publish_locked(uint64_t key) noexcept {
    if (seg_ != nullptr && !pilot::proto::key_texts_add(*seg_, key))
        unpublished_.fetch_add(1, std::memory_order_relaxed);
}

void KeyCatalog::attach(pilot::proto::KeyTexts *seg) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    seg_ = seg;
    if (seg_ == nullptr)
        return;
    /* what is on disk: known, except what still waits for the writer (the
     * segment is attached before it takes requests: none is being written) */
    std::unordered_set<uint64_t> queued;
    try {
        for (const Pending &p : queue_)
            queued.insert(p.key);
    } catch (...) {
        return; /* published as they are written; the older ones are sent again */
    }
    for (uint64_t key : known_)
        if (!queued.count(key))
            publish_locked(key);
}

void KeyCatalog::start() { writer_ = std::thread([this] { run(); }); }

void KeyCatalog::stop() noexcept {
    {
        std::lock_guard<std::mutex> g(mu_);
        if (stopping_ && !writer_.joinable())
            return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable())
        writer_.join();
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

void KeyCatalog::note(const EstimateBatch &b) noexcept {
    try {
        bool wake = false;
        std::lock_guard<std::mutex> g(mu_);
        if (stopping_)
            return;
        for (uint32_t i = 0; i < b.n; i++) {
            std::string_view t = b.item_text(i);
            if (t.empty() || known_.count(b.items[i].key))
                continue;
            if (pilot::proto::stable_hash64(t.data(), t.size()) != b.items[i].key)
                continue; /* not the text of this key: never catalog garbage */
            if (queued_bytes_ + t.size() > kMaxQueuedBytes || size_ + queued_bytes_ + kHeader + t.size() > max_bytes_) {
                dropped_.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            known_.insert(b.items[i].key);
            queue_.push_back({b.items[i].key, b.dboid, std::string(t)});
            queued_bytes_ += kHeader + t.size();
            wake = true;
        }
        if (wake)
            cv_.notify_one();
    } catch (...) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
    }
}

void KeyCatalog::run() noexcept {
    std::vector<Pending> batch;
    for (;;) {
        {
            std::unique_lock<std::mutex> g(mu_);
            cv_.wait(g, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty() && stopping_)
                return;
            batch.swap(queue_);
            queued_bytes_ = 0;
        }
        try {
            std::string buf;
            for (const Pending &p : batch) {
                uint32_t len = static_cast<uint32_t>(p.text.size());
                uint32_t crc = entry_crc(p.key, p.dboid, p.text.data(), len);
                buf.append(reinterpret_cast<const char *>(&kEntryMagic), 4);
                buf.append(reinterpret_cast<const char *>(&len), 4);
                buf.append(reinterpret_cast<const char *>(&p.key), 8);
                buf.append(reinterpret_cast<const char *>(&p.dboid), 4);
                buf.append(reinterpret_cast<const char *>(&crc), 4);
                buf += p.text;
            }
            if (!write_all(fd_, buf.data(), buf.size()) || ::fdatasync(fd_) != 0) {
                std::string err = errno_text("cannot append to", path_);
                /* keep the file whole: cut what may have been half written */
                if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0 ||
                    ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0)
                    LOG_WARNING("key catalog: %s; and cannot cut the partial append", err.c_str());
                else
                    LOG_WARNING("key catalog: %s (%zu entries not written)", err.c_str(), batch.size());
                std::lock_guard<std::mutex> g(mu_);
                for (const Pending &p : batch)
                    known_.erase(p.key); /* asked again later: written again */
                dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
            } else {
                size_ += buf.size();
                entries_.fetch_add(batch.size(), std::memory_order_relaxed);
                std::lock_guard<std::mutex> g(mu_);
                for (const Pending &p : batch)
                    publish_locked(p.key);
            }
        } catch (...) {
            dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
        }
        batch.clear();
        /* batch appends: at most ~5 syncs a second */
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait_for(g, std::chrono::milliseconds(200), [&] { return stopping_; });
    }
}

} // namespace pilotd
