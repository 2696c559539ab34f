/* guard_book.cpp — see guard_book.h */
#include "guard_book.h"

#include "durable_file.h"
#include "log.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cinttypes>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <stdexcept>

namespace pilotd {

using namespace pilot::proto;

namespace {
const char kPinsHeader[] = "# pg_pilot guard pins v1: database oid, query id, arm (pilot|native)";

uint64_t now_unix() { return static_cast<uint64_t>(time(nullptr)); }

/* the window's runs, oldest first */
template <typename W> std::vector<double> in_order(const W &w, unsigned cap) {
    std::vector<double> v;
    v.reserve(w.n);
    const unsigned start = (w.next + cap - w.n) % cap;
    for (unsigned i = 0; i < w.n; i++)
        v.push_back(w.ms[(start + i) % cap]);
    return v;
}
} // namespace

GuardBook::GuardBook(const GuardRule &rule, const std::string &state_dir)
    : rule_(rule), state_dir_(state_dir), pins_path_(state_dir + "/guard.pins"), row_owner_(kGuardEntries) {}

void GuardBook::load_pins() {
    std::string text, error;
    bool missing = false;
    if (!read_file(pins_path_, &text, &error, &missing)) {
        if (missing)
            return;
        throw std::runtime_error("guard: cannot read the pins: " + error);
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::istringstream in(text);
    std::string line;
    size_t lineno = 0, loaded = 0;
    while (std::getline(in, line)) {
        lineno++;
        if (line.empty() || line[0] == '#')
            continue;
        char arm[16] = {};
        unsigned long long dboid = 0, qid = 0;
        if (sscanf(line.c_str(), "%llu %llu %15s", &dboid, &qid, arm) != 3 || dboid > UINT32_MAX || qid == 0 ||
            (strcmp(arm, "pilot") != 0 && strcmp(arm, "native") != 0)) {
            LOG_WARNING("guard: %s line %zu is not \"database-oid query-id pilot|native\": ignored",
                        pins_path_.c_str(), lineno);
            continue;
        }
        GuardTemplateKey key{static_cast<uint32_t>(dboid), static_cast<uint64_t>(qid)};
        templates_[key].pinned = strcmp(arm, "pilot") == 0 ? ARM_PILOT : ARM_NATIVE;
        loaded++;
    }
    if (loaded)
        LOG_INFO("guard: %zu pinned query templates (%s)", loaded, pins_path_.c_str());
}

void GuardBook::attach(GuardTable *table) {
    std::lock_guard<std::mutex> lock(mu_);
    table_ = table;
    std::fill(row_owner_.begin(), row_owner_.end(), GuardTemplateKey{});
    for (auto &kv : templates_)
        kv.second.row = -1;
    if (table_ == nullptr)
        return;
    for (auto &kv : templates_)
        publish(kv.first, kv.second);
}

void GuardBook::observe(const FeedbackRecord *recs, uint32_t n, uint64_t sources_generation) noexcept {
    try {
        std::lock_guard<std::mutex> lock(mu_);
        if (generation_known_ && sources_generation != sources_generation_) {
            /* a template that went native keeps its runs: its probes bring
             * runs of the new estimates in and may revise it, without sending
             * every run back to a plan known to be slower */
            size_t reopened = 0;
            for (auto &kv : templates_) {
                Template &t = kv.second;
                if (t.pinned != ARM_UNKNOWN || t.pilot.n == 0 || t.verdict.decision == GUARD_NATIVE)
                    continue;
                t.pilot.clear();
                decide(kv.first, t);
                publish(kv.first, t);
                reopened++;
            }
            if (reopened)
                LOG_INFO("guard: pg_pilot's estimates changed (another model version or oracle): %zu query "
                         "templates explore again",
                         reopened);
        }
        sources_generation_ = sources_generation;
        generation_known_ = true;
        /* a run's records are consecutive: its relation sets, then its FB_QUERY */
        std::vector<uint64_t> run_sets;
        GuardTemplateKey run_of;
        for (uint32_t i = 0; i < n; i++) {
            const FeedbackRecord &r = recs[i];
            const GuardTemplateKey key{r.dboid, r.query_id};
            if (!(key == run_of)) {
                run_sets.clear();
                run_of = key;
            }
            if (r.kind == FB_RELSET && r.template_key != 0) {
                run_sets.push_back(r.template_key);
                continue;
            }
            if (r.kind != FB_QUERY || r.query_id == 0 || (r.guard_arm != ARM_PILOT && r.guard_arm != ARM_NATIVE))
                continue;
            if (r.guard_arm == ARM_PILOT && !run_sets.empty())
                note_relation_sets(key, run_sets);
            run_sets.clear();
            if (!note_table_rows(key, r.table_rows_log))
                continue;
            const double ms = std::max(r.planning_ms, 0.0) + r.execution_ms; /* planning (< 0: cached) + execution */
            add_run(key, r.guard_arm, ms, true);
            /* a template's first run: its statistics are the first known */
            auto it = templates_.find(key);
            if (it != templates_.end() && it->second.table_rows_log < 0 && r.table_rows_log >= 0)
                it->second.table_rows_log = r.table_rows_log;
        }
    } catch (const std::exception &e) {
        LOG_ERROR("guard: %s (runs of this batch not counted)", e.what());
    }
}

size_t GuardBook::restore(const std::vector<GuardRun> &runs) noexcept {
    try {
        std::lock_guard<std::mutex> lock(mu_);
        std::unordered_map<GuardTemplateKey, std::vector<const GuardRun *>, GuardTemplateKeyHash> by_key;
        size_t used = 0;
        for (const GuardRun &r : runs)
            if (r.key.query_id != 0 && (r.arm == ARM_PILOT || r.arm == ARM_NATIVE) && std::isfinite(r.ms) && r.ms >= 0)
                by_key[r.key].push_back(&r);
        for (auto &kv : by_key) {
            Template &t = templates_[kv.first];
            /* older runs first, then those observed since this start */
            const std::vector<double> pilot_now = in_order(t.pilot, kWindow);
            const std::vector<double> native_now = in_order(t.native, kWindow);
            t.pilot.clear();
            t.native.clear();
            /* runs planned for other table sizes than the current ones (those
             * of the runs since this start, else of the latest runs) are not
             * evidence: the same check as observe()'s */
            const bool current_known = t.table_rows_log >= 0;
            for (const GuardRun *r : kv.second) {
                if (rule_.stats_change_factor > 1 && r->table_rows_log >= 0) {
                    if (current_known) {
                        if (other_table_sizes(r->table_rows_log, t.table_rows_log))
                            continue;
                    } else if (t.table_rows_log < 0) {
                        t.table_rows_log = r->table_rows_log;
                    } else if (other_table_sizes(r->table_rows_log, t.table_rows_log)) {
                        t.table_rows_log = r->table_rows_log; /* changed: what came before is not evidence */
                        t.pilot.clear();
                        t.native.clear();
                    }
                }
                (r->arm == ARM_PILOT ? t.pilot : t.native).add(r->ms);
                (r->arm == ARM_PILOT ? t.pilot_calls : t.native_calls)++;
                used++;
            }
            for (double v : pilot_now)
                t.pilot.add(v);
            for (double v : native_now)
                t.native.add(v);
            decide(kv.first, t);
            publish(kv.first, t);
        }
        return used;
    } catch (const std::exception &e) {
        LOG_ERROR("guard: restoring past runs failed: %s", e.what());
        return 0;
    }
}

bool GuardBook::pin(const GuardTemplateKey &key, uint32_t arm, std::string *why) {
    /* one pin at a time; the file is written without mu_ held, so that the
     * feedback thread's observe() never waits for an fsync */
    std::lock_guard<std::mutex> one_pin(pin_mu_);
    std::string text;
    uint32_t before;
    {
        std::lock_guard<std::mutex> lock(mu_);
        Template &t = templates_[key];
        before = t.pinned;
        t.pinned = arm;
        text = pins_text();
        t.pinned = before;
    }
    if (!save_pins(text, why))
        return false;
    std::lock_guard<std::mutex> lock(mu_);
    Template &t = templates_[key];
    t.pinned = arm;
    publish(key, t);
    return true;
}

size_t GuardBook::reset(uint32_t dboid) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto &kv : templates_) {
        Template &t = kv.second;
        if (kv.first.dboid != dboid || t.pinned != ARM_UNKNOWN)
            continue;
        t.pilot.clear();
        t.native.clear();
        t.pilot_calls = t.native_calls = 0;
        decide(kv.first, t);
        publish(kv.first, t);
        n++;
    }
    return n;
}

uint64_t GuardBook::decisions_native() const {
    std::lock_guard<std::mutex> lock(mu_);
    return to_native_;
}

uint64_t GuardBook::decisions_pilot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return to_pilot_;
}

uint64_t GuardBook::reopened_by_statistics() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reopened_by_statistics_;
}

/* The table statistics a run was planned with (FB_QUERY table_rows_log: the
 * log of the product of its tables' row counts).  Run times measured for
 * other table sizes do not tell which estimates plan better now: when the
 * number moves by the rule's factor, both arms' runs are forgotten and the
 * template explores again.  A run planned just before the change (started
 * before ANALYZE, finished after) is not counted, and does not move the
 * template back. */
/* Were two runs planned for table sizes that differ by the rule's factor
 * (both known, the check on)? */
bool GuardBook::other_table_sizes(double table_rows_log, double than) const {
    return rule_.stats_change_factor > 1 && table_rows_log >= 0 && than >= 0 &&
           std::fabs(table_rows_log - than) >= std::log(rule_.stats_change_factor);
}

bool GuardBook::note_table_rows(const GuardTemplateKey &key, double table_rows_log) {
    if (!(table_rows_log >= 0) || !(rule_.stats_change_factor > 1))
        return true; /* unknown (an older backend), or the check is off */
    auto it = templates_.find(key);
    if (it == templates_.end())
        return true; /* its first run: add_run() creates it */
    Template &t = it->second;
    if (t.table_rows_log < 0) {
        t.table_rows_log = table_rows_log;
        return true;
    }
    if (!other_table_sizes(table_rows_log, t.table_rows_log))
        return true;
    const uint64_t now = now_unix();
    if (t.table_rows_log_before >= 0 && !other_table_sizes(table_rows_log, t.table_rows_log_before) &&
        now < t.statistics_changed_unix + kStatsGraceSeconds)
        return false;
    const double factor = std::exp(table_rows_log - t.table_rows_log);
    t.table_rows_log_before = t.table_rows_log;
    t.table_rows_log = table_rows_log;
    t.statistics_changed_unix = now;
    if (t.pinned != ARM_UNKNOWN || (t.pilot.n == 0 && t.native.n == 0))
        return true;
    t.pilot.clear();
    t.native.clear();
    t.known_sets.clear();
    reopened_by_statistics_++;
    LOG_INFO("guard: query %" PRId64 " (database %u): its tables' row counts changed %.3gx since its earlier runs "
             "(ANALYZE or VACUUM): it explores again",
             static_cast<int64_t>(key.query_id), key.dboid, factor);
    decide(key, t);
    publish(key, t);
    return true;
}

/* The relation sets a run with pg_pilot's estimates executed.  Sets the
 * template never ran before mean its plan changed with what pg_pilot knows
 * (the memo learns the sets of every run): its earlier runs with pg_pilot's
 * estimates were of other plans and are forgotten, so that it explores the
 * current one (a native template keeps them: its probes bring the new plan's
 * runs in).  The first run only records its sets. */
void GuardBook::note_relation_sets(const GuardTemplateKey &key, const std::vector<uint64_t> &sets) {
    auto it = templates_.find(key);
    if (it == templates_.end())
        return; /* its first run: add_run() creates it next */
    Template &t = it->second;
    const bool first = t.known_sets.empty();
    bool changed = false;
    for (uint64_t s : sets) {
        if (std::find(t.known_sets.begin(), t.known_sets.end(), s) != t.known_sets.end())
            continue;
        if (t.known_sets.size() < kMaxKnownSets)
            t.known_sets.push_back(s);
        changed = true;
    }
    if (!changed || first || t.pinned != ARM_UNKNOWN || t.verdict.decision == GUARD_NATIVE || t.pilot.n == 0)
        return;
    t.pilot.clear();
    LOG_DEBUG("guard: query %" PRId64 " (database %u) planned other relation sets with pg_pilot's estimates: "
              "its earlier runs with them are forgotten",
              static_cast<int64_t>(key.query_id), key.dboid);
}

void GuardBook::add_run(const GuardTemplateKey &key, uint32_t arm, double ms, bool decide_now) {
    if (templates_.size() >= kMaxTemplates && templates_.find(key) == templates_.end())
        prune();
    Template &t = templates_[key];
    if (arm == ARM_PILOT) {
        t.pilot.add(ms);
        t.pilot_calls++;
    } else {
        t.native.add(ms);
        t.native_calls++;
    }
    if (decide_now) {
        decide(key, t);
        publish(key, t);
    }
}

/* Too many templates in memory (query ids that keep changing: temporary
 * tables, IN lists of varying length): forget those that lost their row in
 * the table (evicted) and are not pinned.  What remains is bounded by the
 * table's rows plus the pins. */
void GuardBook::prune() {
    const size_t before = templates_.size();
    for (auto it = templates_.begin(); it != templates_.end();)
        it = it->second.row < 0 && it->second.pinned == ARM_UNKNOWN ? templates_.erase(it) : std::next(it);
    LOG_INFO("guard: %zu query templates in memory, %zu forgotten (limit %zu)", templates_.size(),
             before - templates_.size(), kMaxTemplates);
}

void GuardBook::decide(const GuardTemplateKey &key, Template &t) {
    const GuardDecision before = t.verdict.decision;
    t.verdict = guard_decide(rule_, t.pilot.ms, t.pilot.n, t.native.ms, t.native.n);
    if (t.verdict.decision == before)
        return;
    if (t.verdict.decision == GUARD_EXPLORE) {
        t.decided_unix = 0;
        return;
    }
    t.decided_unix = now_unix();
    if (t.verdict.decision == GUARD_NATIVE)
        to_native_++;
    else
        to_pilot_++;
    LOG_INFO("guard: query %" PRId64 " (database %u) uses %s estimates: %s", static_cast<int64_t>(key.query_id),
             key.dboid, t.verdict.decision == GUARD_NATIVE ? "PostgreSQL's" : "pg_pilot's",
             guard_reason(t.verdict, t.pilot.n, t.native.n).c_str());
}

void GuardBook::publish(const GuardTemplateKey &key, Template &t) {
    if (table_ == nullptr)
        return;
    if (t.row < 0) {
        const uint32_t home = guard_home(key.dboid, key.query_id);
        int32_t victim = -1;
        uint64_t victim_calls = UINT64_MAX;
        for (uint32_t i = 0; i < kGuardProbes && t.row < 0; i++) {
            const uint32_t r = (home + i) & (kGuardEntries - 1);
            const GuardTemplateKey &owner = row_owner_[r];
            if (owner.query_id == 0) {
                t.row = static_cast<int32_t>(r);
                table_->templates.fetch_add(1, std::memory_order_relaxed);
                break;
            }
            auto it = templates_.find(owner);
            if (it == templates_.end())
                continue;
            /* the fewest runs goes first; a template decided native last (losing
             * its row sends it back to pg_pilot's slower estimates) */
            const uint64_t calls = it->second.pilot_calls + it->second.native_calls +
                                   (it->second.verdict.decision == GUARD_NATIVE ? (1ull << 40) : 0);
            if (it->second.pinned == ARM_UNKNOWN && calls < victim_calls) {
                victim = static_cast<int32_t>(r);
                victim_calls = calls;
            }
        }
        if (t.row < 0) {
            if (victim < 0)
                return; /* every row around is pinned: the template stays unguarded */
            templates_[row_owner_[victim]].row = -1;
            table_->evicted.fetch_add(1, std::memory_order_relaxed);
            t.row = victim;
        }
        row_owner_[t.row] = key;
    }
    write_row(static_cast<uint32_t>(t.row), key, t);
}

void GuardBook::write_row(uint32_t row, const GuardTemplateKey &key, const Template &t) {
    GuardEntry &e = table_->entries[row];
    const uint32_t s = e.seq.load(std::memory_order_relaxed);
    e.seq.store(s + 1, std::memory_order_relaxed); /* odd: being written */
    std::atomic_thread_fence(std::memory_order_release);
    e.dboid = key.dboid;
    e.query_id = key.query_id;
    e.decision = t.verdict.decision;
    e.pinned = t.pinned;
    e.pilot_runs = t.pilot.n;
    e.native_runs = t.native.n;
    e.pilot_median_ms = static_cast<float>(t.verdict.pilot_median_ms);
    e.native_median_ms = static_cast<float>(t.verdict.native_median_ms);
    e.decided_unix = t.decided_unix;
    e.seq.store(s + 2, std::memory_order_release);
}

std::string GuardBook::pins_text() const {
    std::string text = std::string(kPinsHeader) + "\n";
    for (const auto &kv : templates_) {
        if (kv.second.pinned == ARM_UNKNOWN)
            continue;
        char line[96];
        snprintf(line, sizeof line, "%u %" PRIu64 " %s\n", kv.first.dboid, kv.first.query_id,
                 guard_arm_name(kv.second.pinned));
        text += line;
    }
    return text;
}

bool GuardBook::save_pins(const std::string &text, std::string *why) const {
    std::string error;
    switch (replace_file(state_dir_, pins_path_, text.data(), text.size(), &error)) {
    case Replaced::Done: return true;
    case Replaced::NotDurable:
        LOG_WARNING("guard: %s written, but its directory could not be synced: %s", pins_path_.c_str(),
                    error.c_str());
        return true;
    case Replaced::Failed:
    default: *why = "cannot write " + pins_path_ + ": " + error; return false;
    }
}

} // namespace pilotd
