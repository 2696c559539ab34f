/*
 * oracle_store.h — the oracle's known cardinalities: subplan key -> rows.
 *
 * Readers (estimator workers) take an immutable snapshot with std::atomic_load
 * on a shared_ptr and never wait for a writer; a commit builds a new map,
 * persists it durably and only then swaps it in.  Commits are serialised.
 *
 * On disk: STATE_DIR/oracle.bin, written to a temp file, fsync'ed, renamed over
 * the old one and the directory fsync'ed, so an acknowledged load survives a
 * crash.  Format (little endian):
 *
 *   char[8]  magic "PLTORCL1"
 *   uint32   format version (2)
 *   uint32   flags: 1 = every entry's table set is listed below
 *   uint64   count
 *   { uint64 key; float64 rows; } [count]
 *   uint64   nsets                                  (version 2)
 *   uint64   table set [nsets]                      (version 2)
 *   uint32   CRC-32 (IEEE) of every byte before it
 *   uint32   reserved (0)
 *
 * The table sets (pilot_protocol.h, table_set_finish()) of the entries feed
 * the known-sets filter (known_sets.h).  A version-1 file is read; its
 * entries' table sets are unknown (the filter stays off until the oracle is
 * loaded with replace or cleared).
 */
#ifndef PILOTD_ORACLE_STORE_H
#define PILOTD_ORACLE_STORE_H

#include "pilot_protocol.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace pilotd {

using OracleMap = std::unordered_map<uint64_t, double>;
using OracleSnapshot = std::shared_ptr<const OracleMap>;

/* The distinct table sets of the oracle's entries; complete is false when
 * some entry's is unknown. */
struct OracleTableSets {
    std::vector<uint64_t> sets;
    bool complete = true;
};

/* Serialisation, exposed for tests and tools. */
std::string oracle_encode(const OracleMap &m, const OracleTableSets &sets);
/* false (and *error) when the bytes are not a valid oracle file */
bool oracle_decode(const std::string &bytes, OracleMap *out, OracleTableSets *sets, std::string *error);

class OracleStore {
  public:
    /* dir: the state directory; the file is dir/oracle.bin */
    explicit OracleStore(std::string dir);

    /* Loads oracle.bin.  A missing file is an empty table; a corrupt one is
     * logged, renamed to oracle.bin.corrupt.<unix time> and ignored.  Never throws. */
    void load() noexcept;

    OracleSnapshot snapshot() const { return std::atomic_load(&current_); }
    uint64_t size() const { return snapshot()->size(); }

    /* Builds the new table (replace: only `entries`; else the current table with
     * `entries` merged over it), persists it, then swaps it in.  Returns false
     * and sets *error (the old table stays) if it could not be persisted. */
    bool commit(const std::vector<pilot::proto::OracleEntry> &entries, bool replace, uint64_t *new_size,
                std::string *error);
    bool clear(std::string *error) { uint64_t n; return commit({}, true, &n, error); }

    /* Where the entry count is published (the segment's counter); may be null. */
    void set_counter(std::atomic<uint64_t> *counter);
    /* Called with the table sets after load() and every commit (and now). */
    void set_table_sets_listener(std::function<void(const OracleTableSets &)> f);

    const std::string &path() const { return path_; }

  private:
    bool persist(const OracleMap &m, const OracleTableSets &sets, std::string *error);

    std::string dir_, path_;
    OracleSnapshot current_;
    std::mutex commit_mu_; /* one commit at a time; readers never take it */
    std::atomic<std::atomic<uint64_t> *> counter_{nullptr};
    OracleTableSets sets_; /* of current_; under commit_mu_ */
    std::function<void(const OracleTableSets &)> listener_;
};

} // namespace pilotd

#endif
