/*
 * guard_book.h — the plan guard's book: per query template (database, query
 * id), the recent run times of its executions planned with pg_pilot's
 * estimates and with PostgreSQL's, the decision guard_rule.h takes from them,
 * and the DBA's pins; published to the backends in the segment's GuardTable.
 *
 * How a template moves:
 *   new (no row)  -> its first execution uses pg_pilot's estimates; pilotd
 *                    gives it a row, decision "explore"
 *   explore       -> backends alternate the arms (the one with fewer runs
 *                    goes next) until each has min_runs runs, then
 *   pilot/native  -> per guard_decide(); a fraction of executions (the
 *                    backends' pg_pilot.guard_probe_rate) runs the other arm,
 *                    so each new run can revise the decision
 *   explore/pilot -> explore again, pg_pilot's runs forgotten, when another
 *                    model version serves or the oracle changes (its
 *                    estimates, hence its plans, may change); a native
 *                    template keeps its runs, and its probes bring runs of
 *                    the new estimates in
 *   explore/pilot -> the same when a run with pg_pilot's estimates executed
 *                    relation sets the template's earlier runs did not (the
 *                    memo learned them, the plan changed): note_relation_sets()
 *   any unpinned  -> explore, the runs of both arms forgotten, when a run was
 *                    planned with table statistics (FB_QUERY table_rows_log)
 *                    that differ from those of the earlier runs by the rule's
 *                    stats_change_factor: both arms' plans may differ now.
 *                    Runs planned before such a change that finish within
 *                    kStatsGraceSeconds after it are not counted
 *                    (note_table_rows())
 *   pinned        -> the pinned arm always, no probing (guard_pin())
 *
 * Durability: pins are written to STATE_DIR/guard.pins (replace_file: the old
 * or the new file, never a torn one) before a pin is acknowledged.  Run times
 * come from the executions' FB_QUERY records, which the feedback store keeps
 * (pg_pilot.query_log); restore() reloads them after a restart.
 *
 * Thread safety: one mutex.  The feedback thread calls observe(); request
 * workers call pin() and reset().
 */
#ifndef PILOTD_GUARD_BOOK_H
#define PILOTD_GUARD_BOOK_H

#include "feedback_batch.h"
#include "guard_rule.h"
#include "pilot_protocol.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace pilotd {

struct GuardTemplateKey {
    uint32_t dboid = 0;
    uint64_t query_id = 0;
    bool operator==(const GuardTemplateKey &o) const { return dboid == o.dboid && query_id == o.query_id; }
};

struct GuardTemplateKeyHash {
    size_t operator()(const GuardTemplateKey &k) const noexcept {
        return static_cast<size_t>(pilot::proto::guard_home(k.dboid, k.query_id)) ^
               static_cast<size_t>(k.query_id >> 17);
    }
};

/* One past run of a template (restore()). */
struct GuardRun {
    GuardTemplateKey key;
    uint32_t arm = pilot::proto::ARM_UNKNOWN; /* GuardArm */
    double ms = 0;                            /* planning + execution */
    double table_rows_log = -1;               /* FB_QUERY's; < 0 unknown */
};

class GuardBook {
  public:
    static constexpr unsigned kWindow = 8; /* runs per arm the decision looks at */
    static constexpr size_t kMaxTemplates = 4 * pilot::proto::kGuardEntries; /* in memory; see prune() */

    GuardBook(const GuardRule &rule, const std::string &state_dir);

    /* Reads STATE_DIR/guard.pins.  Throws std::runtime_error when the file
     * exists but cannot be read (starting without the pins would drop them). */
    void load_pins();

    /* Where to publish (the segment's table, zeroed); publishes everything
     * known so far.  nullptr: stop publishing (the segment is going). */
    void attach(pilot::proto::GuardTable *table);

    /* FB_QUERY records of an acknowledged batch; the other records are
     * ignored.  `sources_generation` is the segment's model + oracle
     * generation: when it moved, every unpinned template explores again. */
    void observe(const pilot::proto::FeedbackRecord *recs, uint32_t n, uint64_t sources_generation) noexcept;

    /* Runs from before this start (oldest first), added before the runs
     * observed since.  Returns how many were used. */
    size_t restore(const std::vector<GuardRun> &runs) noexcept;

    /* Pins (ARM_PILOT / ARM_NATIVE) or unpins (ARM_UNKNOWN) a template,
     * durably.  False with *why when the pin file could not be written
     * (nothing changed then). */
    bool pin(const GuardTemplateKey &key, uint32_t arm, std::string *why);

    /* Forgets the runs of every unpinned template of database dboid: they
     * explore again.  Returns how many templates were reset. */
    size_t reset(uint32_t dboid) noexcept;

    uint64_t decisions_native() const;
    uint64_t decisions_pilot() const;
    /* templates sent back to explore by a change of their tables' statistics */
    uint64_t reopened_by_statistics() const;

  private:
    struct Window {
        double ms[kWindow] = {};
        unsigned n = 0;    /* runs held, <= kWindow */
        unsigned next = 0; /* where the next run goes */
        void add(double v) {
            ms[next] = v;
            next = (next + 1) % kWindow;
            if (n < kWindow)
                n++;
        }
        void clear() { n = next = 0; }
    };
    struct Template {
        Window pilot, native;
        uint64_t pilot_calls = 0, native_calls = 0;
        GuardVerdict verdict;
        uint64_t decided_unix = 0;
        uint32_t pinned = pilot::proto::ARM_UNKNOWN;
        int32_t row = -1; /* in the table; -1: none */
        std::vector<uint64_t> known_sets; /* template keys of the relation sets its pilot runs executed */
        double table_rows_log = -1;          /* the statistics its runs were planned with; < 0 unknown */
        double table_rows_log_before = -1;   /* ... before the last change */
        uint64_t statistics_changed_unix = 0;
    };
    static constexpr uint64_t kStatsGraceSeconds = 60;
    static constexpr size_t kMaxKnownSets = 64;

    void add_run(const GuardTemplateKey &key, uint32_t arm, double ms, bool decide_now);
    void prune();
    void note_relation_sets(const GuardTemplateKey &key, const std::vector<uint64_t> &sets);
    /* false: the run was planned before its tables' statistics changed */
    bool note_table_rows(const GuardTemplateKey &key, double table_rows_log);
    bool other_table_sizes(double table_rows_log, double than) const;
    void decide(const GuardTemplateKey &key, Template &t);
    void publish(const GuardTemplateKey &key, Template &t);
    void write_row(uint32_t row, const GuardTemplateKey &key, const Template &t);
    std::string pins_text() const; /* with mu_ held */
    bool save_pins(const std::string &text, std::string *why) const;

    mutable std::mutex mu_;
    std::mutex pin_mu_; /* serializes pin(): taken before mu_, never inside it */
    GuardRule rule_;
    std::string state_dir_, pins_path_;
    std::unordered_map<GuardTemplateKey, Template, GuardTemplateKeyHash> templates_;
    std::vector<GuardTemplateKey> row_owner_; /* kGuardEntries; query_id 0: free */
    pilot::proto::GuardTable *table_ = nullptr;
    uint64_t sources_generation_ = 0;
    bool generation_known_ = false;
    uint64_t to_native_ = 0, to_pilot_ = 0, reopened_by_statistics_ = 0;
};

} // namespace pilotd

#endif
