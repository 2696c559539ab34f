/*
 * known_sets.h — what pilotd publishes in the segment's known-sets filter
 * (pilot_protocol.h, KnownSets): the table sets it may answer, so that
 * backends skip keying and asking for every other relation set.
 *
 * Three sources, kept apart so each can change on its own:
 *   - the memo: table sets of the relation sets execution feedback observed
 *     (add_memo(), from the feedback drain, before the memo learns them);
 *   - the oracle: table sets of its entries (set_oracle(), after a commit);
 *   - the learned model: the databases it serves (set_model_databases()):
 *     every set of those databases passes.
 * A source that holds entries without a table set (written before protocol 8)
 * is incomplete: the filter is then off (KNOWN_SETS_ASK_ALL) and backends
 * ask for every set, as before.
 *
 * Adding a memo table set sets its bits in the active buffer; replacing the
 * oracle's or the model's part rebuilds the other buffer and switches.
 * Thread-safe (one mutex); readers in backends never wait for it.
 */
#ifndef PILOTD_KNOWN_SETS_H
#define PILOTD_KNOWN_SETS_H

#include "pilot_protocol.h"

#include <cstdint>
#include <mutex>
#include <unordered_set>
#include <vector>

namespace pilotd {

class KnownSetsFilter {
  public:
    /* Publishes into seg from now on (nullptr: stop); writes it whole. */
    void attach(pilot::proto::KnownSets *seg);
    /* pilotd stops: backends still attached ask for every set (and so find
     * the next pilotd); publishes nothing more. */
    void detach();

    /* The memo's table sets (MemoStore::table_sets()); complete = false
     * when some memo entry has none (MemoStore::without_table_set()). */
    void restore_memo(const std::vector<uint64_t> &sets, bool complete);
    /* A table set the memo is about to learn (0: ignored).  Returns true
     * when it was new. */
    bool add_memo(uint64_t table_set);
    void set_oracle(const std::vector<uint64_t> &sets, bool complete);
    /* The databases a model version serves (empty: none). */
    void set_model_databases(std::vector<uint32_t> dboids);

    std::vector<uint64_t> memo_sets() const;
    bool memo_complete() const;
    bool filtering() const; /* false: backends ask for every set */
    size_t table_sets() const;

  private:
    void rebuild_locked();
    /* one source's part replaced, then the filter rebuilt */
    void replace_locked(std::unordered_set<uint64_t> &part, bool &part_complete, const std::vector<uint64_t> &sets,
                        bool complete);
    void set_bits_locked(uint32_t buffer, uint64_t table_set);

    mutable std::mutex mu_;
    pilot::proto::KnownSets *seg_ = nullptr;
    std::unordered_set<uint64_t> memo_, oracle_;
    bool memo_complete_ = true, oracle_complete_ = true;
    std::vector<uint32_t> model_dboids_; /* sorted */
};

} // namespace pilotd

#endif
