/* oracle_store.cpp — see oracle_store.h. */
#include "oracle_store.h"

#include "crc32.h"
#include "durable_file.h"

#include "log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unordered_set>
#include <unistd.h>

namespace pilotd {

namespace {

constexpr char kFileMagic[8] = {'P', 'L', 'T', 'O', 'R', 'C', 'L', '1'};
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kFlagSetsComplete = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;
constexpr size_t kEntryBytes = 16;
constexpr size_t kTrailerBytes = 8;

template <typename T> void put(std::string &s, T v) { s.append(reinterpret_cast<const char *>(&v), sizeof v); }
template <typename T> T get(const std::string &s, size_t off) {
    T v;
    memcpy(&v, s.data() + off, sizeof v);
    return v;
}

} // namespace

std::string oracle_encode(const OracleMap &m, const OracleTableSets &sets) {
    std::string s;
    s.reserve(kHeaderBytes + m.size() * kEntryBytes + 8 + sets.sets.size() * 8 + kTrailerBytes);
    s.append(kFileMagic, sizeof kFileMagic);
    put<uint32_t>(s, kFormatVersion);
    put<uint32_t>(s, sets.complete ? kFlagSetsComplete : 0);
    put<uint64_t>(s, m.size());
    for (const auto &kv : m) {
        put<uint64_t>(s, kv.first);
        put<double>(s, kv.second);
    }
    put<uint64_t>(s, sets.sets.size());
    for (uint64_t t : sets.sets)
        put<uint64_t>(s, t);
    put<uint32_t>(s, crc32(s.data(), s.size()));
    put<uint32_t>(s, 0);
    return s;
}

bool oracle_decode(const std::string &b, OracleMap *out, OracleTableSets *sets_out, std::string *error) {
    if (b.size() < kHeaderBytes + kTrailerBytes) {
        *error = "file too short (" + std::to_string(b.size()) + " bytes)";
        return false;
    }
    if (memcmp(b.data(), kFileMagic, sizeof kFileMagic) != 0) {
        *error = "bad magic (not an oracle file)";
        return false;
    }
    uint32_t version = get<uint32_t>(b, 8);
    if (version != kFormatVersion && version != 1) {
        *error = "unsupported format version " + std::to_string(version);
        return false;
    }
    const uint32_t flags = get<uint32_t>(b, 12);
    uint64_t count = get<uint64_t>(b, 16);
    uint64_t body = b.size() - kHeaderBytes - kTrailerBytes;
    uint64_t nsets = 0;
    if (version >= 2 && count <= body / kEntryBytes && body - count * kEntryBytes >= 8) {
        nsets = get<uint64_t>(b, kHeaderBytes + count * kEntryBytes);
        body -= 8;
        if (nsets > (body - count * kEntryBytes) / 8) {
            *error = "size " + std::to_string(b.size()) + " bytes does not match " + std::to_string(nsets) +
                     " table sets (truncated?)";
            return false;
        }
        body -= nsets * 8;
    } else if (version >= 2) {
        *error = "size " + std::to_string(b.size()) + " bytes has no room for the table sets (truncated?)";
        return false;
    }
    if (count > body / kEntryBytes || body != count * kEntryBytes) {
        *error = "size " + std::to_string(b.size()) + " bytes does not match " + std::to_string(count) +
                 " entries (truncated?)";
        return false;
    }
    size_t crc_off = b.size() - kTrailerBytes;
    uint32_t want = get<uint32_t>(b, crc_off);
    uint32_t have = crc32(b.data(), crc_off);
    if (want != have) {
        *error = "checksum mismatch";
        return false;
    }
    OracleMap m;
    m.reserve(count);
    for (uint64_t i = 0; i < count; i++) {
        size_t off = kHeaderBytes + i * kEntryBytes;
        uint64_t key = get<uint64_t>(b, off);
        double rows = get<double>(b, off + 8);
        if (key == 0 || !std::isfinite(rows) || rows < 0) {
            *error = "invalid entry " + std::to_string(i);
            return false;
        }
        m[key] = rows;
    }
    OracleTableSets sets;
    sets.complete = version >= 2 ? (flags & kFlagSetsComplete) != 0 : m.empty();
    for (uint64_t i = 0; i < nsets; i++)
        sets.sets.push_back(get<uint64_t>(b, kHeaderBytes + count * kEntryBytes + 8 + i * 8));
    *out = std::move(m);
    if (sets_out)
        *sets_out = std::move(sets);
    return true;
}

OracleStore::OracleStore(std::string dir)
    : dir_(std::move(dir)), path_(dir_ + "/oracle.bin"), current_(std::make_shared<const OracleMap>()) {}

void OracleStore::set_counter(std::atomic<uint64_t> *counter) {
    std::lock_guard<std::mutex> g(commit_mu_);
    counter_.store(counter);
    if (counter)
        counter->store(snapshot()->size(), std::memory_order_relaxed);
}

void OracleStore::load() noexcept {
    try {
        /* temp files of a commit interrupted by a crash were never acknowledged */
        if (DIR *d = opendir(dir_.c_str())) {
            while (struct dirent *e = readdir(d)) {
                if (strncmp(e->d_name, "oracle.bin.tmp.", 15) == 0) {
                    std::string p = dir_ + "/" + e->d_name;
                    if (unlink(p.c_str()) == 0)
                        LOG_INFO("removed unfinished oracle temp file \"%s\"", p.c_str());
                }
            }
            closedir(d);
        }
        std::string bytes, error;
        bool missing = false;
        if (!read_file(path_, &bytes, &error, &missing)) {
            if (missing) {
                LOG_INFO("no oracle file \"%s\": starting with an empty oracle table", path_.c_str());
            } else {
                LOG_ERROR("%s: starting with an empty oracle table", error.c_str());
            }
            return;
        }
        auto m = std::make_shared<OracleMap>();
        OracleTableSets sets;
        if (!oracle_decode(bytes, m.get(), &sets, &error)) {
            std::string dest = path_ + ".corrupt." + std::to_string(static_cast<long long>(time(nullptr)));
            if (rename(path_.c_str(), dest.c_str()) == 0) {
                LOG_ERROR("oracle file \"%s\" is corrupt (%s): renamed it to \"%s\"; starting with an "
                          "empty oracle table",
                          path_.c_str(), error.c_str(), dest.c_str());
            } else {
                LOG_ERROR("oracle file \"%s\" is corrupt (%s) and could not be renamed to \"%s\" (%s); "
                          "starting with an empty oracle table (the next load overwrites it)",
                          path_.c_str(), error.c_str(), dest.c_str(), strerror(errno));
            }
            return;
        }
        std::lock_guard<std::mutex> g(commit_mu_);
        OracleSnapshot snap = std::move(m);
        std::atomic_store(&current_, snap);
        sets_ = std::move(sets);
        if (auto *c = counter_.load())
            c->store(snap->size(), std::memory_order_relaxed);
        if (listener_)
            listener_(sets_);
        LOG_INFO("loaded %zu oracle entries from \"%s\"", snap->size(), path_.c_str());
        if (!sets_.complete)
            LOG_WARNING("oracle file \"%s\": some entries carry no table set (a file of an older pilotd), so "
                        "backends ask pilotd for every relation set (the known-sets filter is off) until the "
                        "oracle is loaded again with replace => true or cleared",
                        path_.c_str());
    } catch (const std::exception &e) {
        LOG_ERROR("cannot load the oracle file \"%s\": %s; starting with an empty oracle table", path_.c_str(),
                  e.what());
    }
}

void OracleStore::set_table_sets_listener(std::function<void(const OracleTableSets &)> f) {
    std::lock_guard<std::mutex> g(commit_mu_);
    listener_ = std::move(f);
    if (listener_)
        listener_(sets_);
}

bool OracleStore::persist(const OracleMap &m, const OracleTableSets &sets, std::string *error) {
    std::string bytes = oracle_encode(m, sets);
    /* a name that is maybe not durable yet counts as a failure: not acknowledged */
    return replace_file(dir_, path_, bytes.data(), bytes.size(), error) == Replaced::Done;
}

bool OracleStore::commit(const std::vector<pilot::proto::OracleEntry> &entries, bool replace, uint64_t *new_size,
                         std::string *error) {
    std::lock_guard<std::mutex> g(commit_mu_);
    try {
        OracleSnapshot old = std::atomic_load(&current_);
        auto m = replace ? std::make_shared<OracleMap>() : std::make_shared<OracleMap>(*old);
        m->reserve(m->size() + entries.size());
        for (const auto &e : entries)
            (*m)[e.key] = e.rows; /* later entries win */
        OracleTableSets sets;
        std::unordered_set<uint64_t> distinct;
        if (!replace) {
            sets.complete = sets_.complete;
            distinct.insert(sets_.sets.begin(), sets_.sets.end());
        }
        for (const auto &e : entries) {
            if (e.table_set == 0)
                sets.complete = false;
            else
                distinct.insert(e.table_set);
        }
        if (m->empty()) { /* cleared: nothing unknown is left */
            sets.complete = true;
            distinct.clear();
        }
        sets.sets.assign(distinct.begin(), distinct.end());
        if (!persist(*m, sets, error))
            return false;
        OracleSnapshot snap = std::move(m);
        std::atomic_store(&current_, snap);
        sets_ = std::move(sets);
        if (listener_)
            listener_(sets_);
        *new_size = snap->size();
        if (auto *c = counter_.load())
            c->store(snap->size(), std::memory_order_relaxed);
        return true;
    } catch (const std::bad_alloc &) {
        *error = "out of memory building the oracle table";
        return false;
    }
}

} // namespace pilotd
