/*
 * pilot_protocol.h — the shared-memory protocol between the pg_pilot extension
 * (every PostgreSQL backend) and pilotd.  ONE header, used by both
 * sides; bump kProtocolVersion whenever a byte of the layout changes.
 *
 * Layout of the segment (created by pilotd, mode 0600, named after the cluster's
 * data directory, see segment_name_for_datadir()):
 *
 *   SegmentHeader                         (magic, version, sizes, epoch, heartbeat,
 *                                          counters, the model table)
 *   Slot[nslots]                          (one per backend: MyBackendId - 1):
 *       request/response                  (estimates, oracle loads)
 *       FeedbackRing                      (execution feedback, backend -> pilotd)
 *
 * Slot life cycle (state word, all transitions by CAS / release stores):
 *
 *   backend:  FREE|DONE|PENDING|WRITING --CAS--> WRITING --write req--> PENDING
 *             then sets its bit in SegmentHeader::pending and rings the doorbell
 *   pilotd:   takes the bits (exchange), PENDING --CAS--> BUSY --write resp-->
 *             DONE (futex wake)
 *   backend:  waits for DONE with resp.seq == req.seq, at most its time budget.
 *
 * A slot belongs to exactly one live backend (its backend id), so a backend may
 * take over its slot from any state except BUSY (pilotd is using it right now):
 * a backend killed mid-request therefore never leaves a stuck slot.  Nothing
 * here uses a lock, so no process can die holding one.
 *
 * Every field read from the other side is validated before use
 * (validate_header(), validate_request(), validate_response()).
 *
 * Plain standard C++17 only: no PostgreSQL, Boost or libtorch includes.
 */
#ifndef PG_PILOT_PROTOCOL_H
#define PG_PILOT_PROTOCOL_H

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

namespace pilot {
namespace proto {

constexpr uint64_t kMagic = 0x314D53544F4C4950ULL; /* "PILOTSM1" little endian */
constexpr uint32_t kProtocolVersion = 9;
constexpr uint32_t kMaxItems = 256;     /* relation sets (or oracle entries) per message */
constexpr uint32_t kMaxSlots = 65536;   /* sanity bound for a header read from memory */
constexpr uint32_t kFeedbackRing = 128;  /* feedback records per slot (a power of two) */
constexpr uint32_t kMaxText = 65536;     /* bytes of key text per estimate request */
constexpr uint32_t kMaxModels = 16;      /* rows of the model table */
constexpr uint32_t kGuardEntries = 16384; /* rows of the plan guard's table (a power of two) */
constexpr uint32_t kGuardProbes = 8;      /* rows a template may sit in, from its home row on */
constexpr uint32_t kKnownSetBits = 1u << 20; /* bits of one buffer of the known-sets filter (a power of two) */
constexpr uint32_t kKeyTextSlots = 1u << 16; /* keys in the published key-texts set (a power of two) */
constexpr uint32_t kKeyTextProbes = 32;      /* slots a lookup visits at most */

enum SlotState : uint32_t {
    SLOT_FREE = 0,
    SLOT_WRITING = 1, /* backend is filling the request */
    SLOT_PENDING = 2, /* request ready for pilotd */
    SLOT_BUSY = 3,    /* pilotd is answering */
    SLOT_DONE = 4,    /* response ready */
};

enum PilotdState : uint32_t {
    PILOTD_STARTING = 0,
    PILOTD_READY = 1,
    PILOTD_STOPPING = 2, /* clean shutdown in progress: treat as down */
};

enum MsgType : uint32_t {
    MSG_PING = 1,          /* no payload; answers ST_OK */
    MSG_ESTIMATE = 2,      /* items[] -> answers[] */
    MSG_ORACLE_BEGIN = 3,  /* start a load session; flags & ORACLE_REPLACE clears first */
    MSG_ORACLE_ADD = 4,    /* entries[] staged in the session */
    MSG_ORACLE_COMMIT = 5, /* staged entries become visible and durable, then ST_OK */
    MSG_ORACLE_CLEAR = 6,  /* drop every oracle entry (durably) */
    MSG_MODEL_PIN = 7,     /* Request::session = the model version to serve (0 = unpin:
                            * pilotd chooses again); ST_OK, or ST_FAILED when that
                            * version cannot be pinned */
    MSG_ADVISOR = 8,       /* Request::advisor: a job for the index advisor, run
                            * asynchronously; ST_OK with Response::oracle_entries =
                            * the job id (it appears in pg_pilot.advisor_run of the
                            * requesting database), or ST_FAILED when pilotd has no
                            * advisor (--advisor-dsn) or its queue is full */
    MSG_GUARD_PIN = 9,     /* pin a query template for the plan guard: Request::session =
                            * the query id, Request::flags = GuardArm (ARM_UNKNOWN: unpin,
                            * the guard decides again), Request::dboid its database;
                            * ST_OK once the pin is durable, else ST_FAILED */
    MSG_GUARD_RESET = 10,  /* the plan guard forgets the runs of every unpinned template of
                            * Request::dboid (they explore again); ST_OK */
    MSG_TYPE_MAX = 10,
};

constexpr uint32_t ORACLE_REPLACE = 1u;

enum Status : uint32_t {
    ST_OK = 0,
    ST_BAD_REQUEST = 1,       /* failed validate_request() */
    ST_UNKNOWN_ESTIMATOR = 2, /* estimator id not served by this pilotd */
    ST_NO_SESSION = 3,        /* ORACLE_ADD/COMMIT without a matching BEGIN */
    ST_FAILED = 4,            /* pilotd could not do it (e.g. disk error); nothing acknowledged */
    ST_MAX = 4,
};

/* Which estimator a backend asks for (the pg_pilot.estimator parameter). */
enum EstimatorId : uint32_t {
    EST_AUTO = 0,   /* pilotd's chain: oracle, memo, learned model */
    EST_NATIVE = 1, /* answers nothing: PostgreSQL's own estimates (backends do not ask) */
    EST_ORACLE = 2, /* only cardinalities loaded with pg_pilot.load_cardinalities() */
    EST_MEMO = 3,   /* only cardinalities observed by execution feedback */
    EST_LEARNED = 4, /* only the learned model */
    EST_MAX = 4,
};

/* Where an answered estimate came from; SRC_NONE means "don't know". */
enum Source : uint32_t {
    SRC_NONE = 0,
    SRC_ORACLE = 1,
    SRC_MEMO = 2,
    SRC_MODEL = 3,
    SRC_MAX = 3,
};

const char *estimator_name(uint32_t id);
const char *source_name(uint32_t src);

/* Life cycle of a learned model version (ModelInfo::state). */
enum ModelState : uint32_t {
    MODEL_TRAINING = 1,
    MODEL_VALIDATED = 2,
    MODEL_SERVING = 3,
    MODEL_RETIRED = 4,
    MODEL_REJECTED = 5,
    MODEL_STATE_MAX = 5,
};

/* "training", "validated", "serving", "retired", "rejected"; "invalid" otherwise */
const char *model_state_name(uint32_t s);

/* One relation set to estimate: its subplan key (see subplan_key.h). */
struct EstimateItem {
    uint64_t key;         /* hash of the canonical key with constants */
    uint64_t template_key; /* hash of the canonical key without constants */
    double native_rows;   /* PostgreSQL's estimate, for logging/learning; < 0: not known yet
                           * (join sets asked before the planner built them) */
    uint32_t nrels;       /* number of base relations in the set */
    uint32_t text_len;    /* bytes of the set's canonical key text in Request::text; 0 = none */
    uint32_t text_off;    /* where it starts in Request::text */
    uint32_t reserved;
};

struct EstimateAnswer {
    double rows;     /* valid only when source != SRC_NONE: finite, >= 0 */
    uint32_t source; /* Source */
    /* SRC_MODEL: keep PostgreSQL's own estimate when rows is within a factor
     * exp(keep_native_within) of it (the model is unsure there); 0: never.
     * For join sets, whose PostgreSQL estimate pilotd does not know yet, the
     * backend applies it once the planner has sized the join. */
    float keep_native_within;
};

/* The model's "unsure" rule, decided here once for pilotd's answer rule
 * (models/answer_rule.cpp), the trainer's comparison with the serving version
 * and the backend (which applies it to join sets once it knows PostgreSQL's
 * estimate): PostgreSQL's estimate stands when the model's differs from it by
 * less than a factor exp(keep_native_within), both counted as at least one
 * row.  False when either is unknown (not positive, not finite). */
inline bool within_unsure_band(double model_rows, double native_rows, double keep_native_within) {
    if (!(keep_native_within > 0) || !(native_rows > 0) || !(model_rows >= 0) || !std::isfinite(model_rows))
        return false;
    const double correction = std::log((model_rows > 1 ? model_rows : 1) / (native_rows > 1 ? native_rows : 1));
    return (correction < 0 ? -correction : correction) < keep_native_within;
}

struct OracleEntry {
    uint64_t key;
    double rows;
    uint64_t table_set; /* table_set_finish() of the set's tables; 0 unknown */
};

/* An index-advisor job (MSG_ADVISOR), for the requesting backend's database. */
enum AdvisorAction : uint32_t {
    ADVISE_RUN = 1,    /* recommend: budget_mb (<= 0: pilotd's setting), max_indexes (0: pilotd's) */
    ADVISE_APPLY = 2,  /* create recommendation `recommendation` (pg_pilot.index_advice.id) */
    ADVISE_VERIFY = 3, /* verify applied recommendations; drop_unhelpful */
    ADVISE_ACTION_MAX = 3,
};

struct AdvisorJob {
    uint32_t action; /* AdvisorAction */
    uint32_t max_indexes;
    double budget_mb;
    int64_t recommendation;
    uint32_t drop_unhelpful;
    uint32_t reserved;
};

/*
 * Key texts (MSG_ESTIMATE only): item i's canonical key text (SubplanKey::text,
 * see subplan_key.h) is text[text_off, text_off + text_len), not NUL-terminated;
 * text_used bytes of text are in use.  Backends send texts only when they may
 * be worth it (a model is serving, or feedback is collected for training); an
 * item whose text did not fit has text_len 0 and is still estimated by its key.
 * pilotd copies only text[0, text_used) and uses a text only when it is valid
 * UTF-8 without control characters other than '\n' (key_text_clean()).
 */
struct Request {
    uint64_t seq;       /* copied into Response::seq */
    uint64_t session;   /* oracle load session id (seq of its BEGIN); MSG_MODEL_PIN: version */
    uint32_t type;      /* MsgType */
    uint32_t estimator; /* EstimatorId */
    uint32_t count;     /* items/entries used, <= kMaxItems */
    uint32_t flags;
    uint32_t dboid;     /* the asking backend's database (MyDatabaseId) */
    uint32_t text_used; /* bytes of text in use, <= kMaxText */
    union {
        EstimateItem items[kMaxItems];
        OracleEntry entries[kMaxItems];
        AdvisorJob advisor; /* MSG_ADVISOR */
    };
    char text[kMaxText]; /* key texts of items (see above); must stay last */
};

struct Response {
    uint64_t seq;
    uint32_t status; /* Status */
    uint32_t count;  /* answers used: == request count for MSG_ESTIMATE */
    uint64_t oracle_entries; /* size of the oracle table after an oracle message */
    EstimateAnswer answers[kMaxItems];
};

/*
 * Execution feedback: what a plan node of a finished query produced.  A
 * backend appends records to the ring of its slot and never waits: when the
 * ring is full the record is dropped and counted.  Single producer (the slot's
 * backend), single consumer (pilotd): the backend fills rec[head % N], then
 * publishes head (release); pilotd reads up to head, then publishes tail.  A
 * backend killed mid-write never published its record; the next backend of
 * the slot continues at head.  pilotd validates head - tail <= N and every
 * record before use.
 */
enum FeedbackKind : uint32_t {
    FB_RELSET = 1, /* a relation set: key, template, estimates, actual rows */
    FB_QUERY = 2,  /* a whole query: planning_ms, execution_ms,
                    * table_rows_log; nrels = how many relation sets of the
                    * query were reported */
    FB_KIND_MAX = 2,
};

constexpr size_t kRelationsLen = 56; /* FeedbackRecord::relations, NUL included */

struct FeedbackRecord {
    uint64_t key;          /* FB_RELSET: subplan key; FB_QUERY: 0 */
    uint64_t template_key; /* FB_RELSET: key without constants; FB_QUERY: 0 */
    uint64_t query_id;     /* the query's queryId (as in pg_stat_statements); 0 unknown */
    /* three numbers whose meaning depends on the kind (same bytes) */
    union {
        double native_rows; /* FB_RELSET: PostgreSQL's estimate; < 0 unknown */
        double planning_ms; /* FB_QUERY: < 0 unknown (a cached plan) */
    };
    union {
        double pilot_rows;     /* FB_RELSET: the estimate pg_pilot supplied; < 0 none */
        double table_rows_log; /* FB_QUERY: sum over the plan's tables of ln(1 + pg_class.reltuples)
                                * when it was planned (the plan guard's statistics check); < 0 unknown */
    };
    union {
        double actual_rows;  /* FB_RELSET: observed (per loop, parallel workers added) */
        double execution_ms; /* FB_QUERY */
    };
    uint32_t kind;         /* FeedbackKind */
    uint32_t nrels;
    uint32_t dboid;        /* the backend's database */
    uint32_t guard_arm;    /* FB_QUERY: GuardArm of this execution; FB_RELSET: ARM_UNKNOWN */
    uint64_t table_set;    /* FB_RELSET: table_set_finish() of the set's tables (0 unknown); FB_QUERY: 0 */
    /* FB_RELSET: the set's relations for people ("a, b, c": table names in
     * the order of the set, cut with "..." when longer); NUL-terminated, valid
     * UTF-8 without control characters.  FB_QUERY: empty. */
    char relations[kRelationsLen];
};

/*
 * The plan guard (daemon/guard/guard_book.h): per query template, which estimates
 * its executions are planned with.  An arm is what one execution used; a
 * decision is what pilotd tells the backends to use for the template.
 */
enum GuardArm : uint32_t {
    ARM_UNKNOWN = 0, /* not guarded (the guard is off, no query id, a relation set's record) */
    ARM_PILOT = 1,   /* planned with pg_pilot's estimates */
    ARM_NATIVE = 2,  /* planned with PostgreSQL's own (pg_pilot asked nothing) */
    ARM_MAX = 2,
};

enum GuardDecision : uint32_t {
    GUARD_EXPLORE = 0, /* not enough runs of each arm yet: alternate */
    GUARD_PILOT = 1,   /* pg_pilot's estimates are not measurably slower: use them */
    GUARD_NATIVE = 2,  /* pg_pilot's estimates were measurably slower: PostgreSQL's */
    GUARD_DECISION_MAX = 2,
};

const char *guard_arm_name(uint32_t a);           /* "pilot", "native"; "auto" for ARM_UNKNOWN */
const char *guard_decision_name(uint32_t d);      /* "explore", "pilot", "native"; "invalid" */

/* Why a feedback record is unusable (feedback_check()); FBC_OK when usable. */
enum FeedbackCheck {
    FBC_OK = 0,
    FBC_BAD_KIND,       /* kind out of range */
    FBC_BAD_ROWS,       /* actual rows negative or not finite, estimates not finite */
    FBC_NO_KEY,         /* a relation set without key or relations */
    FBC_BAD_RELATIONS,  /* relations not NUL-terminated, not UTF-8, or control characters */
    FBC_BAD_ARM,        /* guard_arm out of range */
    FBC_MAX = FBC_BAD_ARM,
};

const char *feedback_check_name(uint32_t c);

struct FeedbackRing {
    std::atomic<uint64_t> head;    /* next record the backend writes */
    std::atomic<uint64_t> tail;    /* next record pilotd reads */
    std::atomic<uint64_t> dropped; /* records the backend dropped: ring full */
    FeedbackRecord rec[kFeedbackRing];
};

struct alignas(64) Slot {
    std::atomic<uint32_t> state; /* SlotState; also the futex word backends wait on */
    std::atomic<uint32_t> owner_pid;
    Request req;
    Response resp;
    FeedbackRing feedback;
};

/* Counters pilotd keeps in the segment for pg_pilot_status(). */
struct PilotdCounters {
    std::atomic<uint64_t> requests;
    std::atomic<uint64_t> items;
    std::atomic<uint64_t> answered;
    std::atomic<uint64_t> bad_requests;
    std::atomic<uint64_t> oracle_entries;
    std::atomic<uint64_t> feedback_received;  /* valid records drained from the rings */
    std::atomic<uint64_t> feedback_invalid;   /* records (or rings) that failed validation */
    std::atomic<uint64_t> memo_entries;       /* relation sets the memo knows */
    /* feedback store (see daemon/state/feedback_spool.h, daemon/store/pg_store.h) */
    std::atomic<uint64_t> feedback_queued;    /* records in the rings not yet acknowledged (last drain) */
    std::atomic<uint64_t> spool_appended;     /* records made durable in the spool: acknowledged */
    std::atomic<uint64_t> spool_next_seq;     /* the seq the spool's next entry gets */
    std::atomic<uint64_t> store_watermark;    /* spool entries below it are committed; pending =
                                               * spool_next_seq - store_watermark (read the
                                               * watermark first: never under-counts) */
    std::atomic<uint64_t> store_committed;    /* records committed into the store tables */
    std::atomic<uint64_t> store_replayed;     /* of those, records that waited out a store outage or restart */
    std::atomic<uint64_t> store_dead_letter;  /* records stored in pg_pilot.feedback_dead_letter */
    std::atomic<uint64_t> store_failures;     /* failed store transactions (each retried with backoff) */
    std::atomic<uint32_t> store_state;        /* StoreState */
    std::atomic<uint32_t> store_error_seq;    /* odd while store_error is being written */
    char store_error[128];                    /* last store error, NUL-terminated */
};

/*
 * The model table: pilotd publishes the model versions it knows; backends read
 * it for pg_pilot.models.  Written by pilotd only, under a sequence counter
 * (odd while being written); a reader copies the table, then checks that seq
 * was even and unchanged, else tries again.  Every field is validated by the
 * reader (count <= kMaxModels, state in range, strings NUL-terminated and
 * cleaned with copy_clean_utf8()).
 */
struct ModelInfo {
    uint32_t version;
    uint32_t state;  /* ModelState */
    uint32_t dboid;  /* database the model was trained for */
    uint32_t pinned; /* non-zero: pinned with MSG_MODEL_PIN */
    uint64_t created_unix;
    uint64_t train_records;
    uint64_t validation_records;
    uint64_t size_bytes;
    double model_qerror[3];  /* p50 p90 p99 on held-out records */
    double native_qerror[3]; /* PostgreSQL's, on the same records */
    uint64_t served;         /* estimates answered */
    uint64_t declined;
    uint64_t batches;        /* planning batches it ran inference for */
    double inference_us[2];  /* p50, p99 of one batch's inference (featurize + forward), < 0: none */
    char checksum[24]; /* hex, NUL-terminated */
    char database[64];
    char note[160];    /* why rejected/retired etc. */
};

struct ModelTable {
    std::atomic<uint32_t> seq; /* odd while pilotd writes the table */
    uint32_t count;            /* models in use, <= kMaxModels */
    ModelInfo models[kMaxModels];
};

/*
 * The plan guard's table: pilotd publishes a row per query template it
 * guards; a backend looks its template up when planning (guard_lookup(), a few
 * cache lines, never a wait).  Open addressing: a template sits in one of the
 * kGuardProbes rows from guard_home() on; pilotd never empties a row, it only
 * gives it to another template, so a reader stops at the first empty row.
 * Each row has its own sequence counter (odd while pilotd writes it); a reader
 * copies the row and retries when the counter moved.  Written by pilotd only.
 */
struct GuardEntry {
    std::atomic<uint32_t> seq;
    uint32_t dboid;
    uint64_t query_id;        /* 0: an empty row */
    uint32_t decision;        /* GuardDecision */
    uint32_t pinned;          /* GuardArm pinned by the DBA; ARM_UNKNOWN: none */
    uint32_t pilot_runs;      /* runs in the decision's window, per arm */
    uint32_t native_runs;
    float pilot_median_ms;    /* median planning + execution time of the window; < 0 none */
    float native_median_ms;
    uint64_t decided_unix;    /* when the decision was taken; 0: never */
};

struct GuardTable {
    std::atomic<uint64_t> templates; /* rows in use */
    std::atomic<uint64_t> evicted;   /* templates that lost their row to another (table full) */
    GuardEntry entries[kGuardEntries];
};

/* The row a template's search starts at. */
inline uint32_t guard_home(uint32_t dboid, uint64_t query_id) {
    uint64_t x = query_id ^ (static_cast<uint64_t>(dboid) << 32) ^ 0x9E3779B97F4A7C15ULL;
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return static_cast<uint32_t>(x) & (kGuardEntries - 1);
}

/* A backend's lookup: copies the template's row into *out when it is there and
 * valid (decision and pin in range, medians finite).  False: not guarded yet
 * (or the row kept changing under the reader). */
bool guard_lookup(const GuardTable &t, uint32_t dboid, uint64_t query_id, GuardEntry *out);

/* Copies row e into *out under its sequence counter, trying at most
 * `attempts` times (never waits); false when it kept changing. */
bool guard_copy_row(const GuardEntry &e, GuardEntry *out, int attempts);

/* A row copied out of the table: in use, decision and pin in range, medians
 * finite, decision time plausible. */
bool guard_entry_valid(const GuardEntry &e);

/*
 * The known-sets filter: which relation sets pilotd may answer, told by their
 * tables alone, so a backend learns it without computing a set's key (the
 * expensive part of asking).  A Bloom filter of the table sets of the
 * oracle's and the memo's keys, plus one mark per database a learned model
 * serves (model_database_mark(): every set of that database may be answered).
 * A "no" is certain, a "yes" may be wrong (then pilotd answers "unknown").
 *
 * Two buffers: pilotd adds bits to the active one in place (bits are only
 * added, so a reader never misses what was known before); a rebuild (the
 * oracle replaced or cleared, another model serving) fills the other one
 * under its sequence counter (odd while written) and then makes it active.
 * A reader that sees the counter odd or moved treats the set as known.
 * state KNOWN_SETS_ASK_ALL (also any value out of range): pilotd cannot tell
 * (entries from before protocol 8 carry no table set): backends ask for
 * every set, as without the filter.  Written by pilotd only.
 */
enum KnownSetsState : uint32_t {
    KNOWN_SETS_ASK_ALL = 0,
    KNOWN_SETS_FILTER = 1,
};

constexpr uint32_t kKnownSetHashes = 3; /* bits per table set */

struct KnownSets {
    std::atomic<uint32_t> state;  /* KnownSetsState */
    std::atomic<uint32_t> active; /* the buffer readers probe: 0 or 1 */
    std::atomic<uint64_t> seq[2]; /* per buffer: odd while it is rebuilt */
    std::atomic<uint64_t> bits[2][kKnownSetBits / 64];
};

/* A relation set's tables as one number, independent of their order and of
 * aliases: table hashes (stable_hash64 of the schema-qualified, quoted name as
 * in the key text's "R" lines, "*" appended for a table with inheritance
 * children) added up, then mixed; never 0. */
inline uint64_t table_set_add(uint64_t acc, uint64_t table_hash) { return acc + table_hash; }
uint64_t table_set_finish(uint64_t acc);
/* The mark of "a model serves database dboid" in the filter. */
uint64_t model_database_mark(uint32_t dboid);
/* The filter's bit positions of a table set. */
void known_set_positions(uint64_t table_set, uint32_t pos[kKnownSetHashes]);
/* A backend's question: may pilotd answer a set of these tables?  True also
 * when the filter is off, being rebuilt, or in an unknown state. */
bool known_sets_may_answer(const KnownSets &k, uint64_t table_set);

/*
 * The keys whose texts pilotd's key catalog holds, so that a backend sends a
 * relation set's text only when pilotd lacks it: a new backend planning a
 * statement that some backend planned before makes no round trip for texts.
 * An open-addressing set of keys (0: empty), linear probing from
 * key % kKeyTextSlots; keys are only added, by pilotd's catalog writer after
 * the text is on disk (a text that failed to be written is never published),
 * and a new pilotd makes a new segment.  A lookup visits at most
 * kKeyTextProbes slots: garbage costs a text sent again, never a wait.  Full
 * (count at 3/4 of the slots): no more keys are published and their texts
 * are sent as before.  Written by pilotd only.
 */
struct KeyTexts {
    std::atomic<uint64_t> count; /* keys published */
    std::atomic<uint64_t> keys[kKeyTextSlots];
};

/* A backend's question: does pilotd hold the text of key? */
bool key_texts_has(const KeyTexts &t, uint64_t key);
/* pilotd (one writer): publishes key; false when the set is full. */
bool key_texts_add(KeyTexts &t, uint64_t key);

enum StoreState : uint32_t {
    STORE_DISABLED = 0, /* no store configured: feedback feeds the memo only */
    STORE_OK = 1,       /* the last store transaction committed */
    STORE_RETRYING = 2, /* the store is unreachable or refused: spooling, retrying */
    STORE_STATE_MAX = 2,
};

const char *store_state_name(uint32_t s);

struct alignas(64) SegmentHeader {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size; /* sizeof(SegmentHeader) */
    uint32_t slot_size;   /* sizeof(Slot) */
    uint32_t nslots;
    uint64_t total_size;  /* header + nslots * slot_size */
    uint64_t epoch;       /* random per pilotd start */
    uint32_t pilotd_pid;
    std::atomic<uint32_t> pilotd_state;    /* PilotdState */
    std::atomic<uint64_t> heartbeat_us;    /* CLOCK_MONOTONIC microseconds, every heartbeat_ms */
    uint32_t heartbeat_interval_ms;
    std::atomic<uint32_t> doorbell;        /* futex word pilotd's workers sleep on */
    std::atomic<uint32_t> sleeping_workers; /* ring the doorbell only if > 0 */
    uint64_t started_at_unix;
    PilotdCounters counters;
    ModelTable models;
    /* non-zero while some model version is serving: backends then send key
     * texts with their estimate requests */
    std::atomic<uint32_t> model_serving;
    /* Each changes when the answers of its source may change: the memo
     * learned an observation, the oracle was loaded or cleared, another model
     * version serves.  A backend reuses an answer only while the generations
     * of the sources its estimator consults (answers_generation()) and the
     * epoch are unchanged: a statement planned again makes no round trip. */
    std::atomic<uint64_t> memo_generation;
    std::atomic<uint64_t> oracle_generation;
    std::atomic<uint64_t> model_generation;
    GuardTable guard;
    KnownSets known_sets;
    KeyTexts key_texts;
    /* bit i of word i / 64: slot i has a request PENDING.  pilotd's workers
     * find requests here instead of visiting every slot (each slot is on
     * pages of its own: a scan of all of them costs tens of microseconds);
     * a full scan, rarely, still serves a slot whose bit was never set */
    alignas(64) std::atomic<uint64_t> pending[kMaxSlots / 64];
};

static_assert(std::atomic<uint32_t>::is_always_lock_free, "futex words must be lock free");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "64-bit atomics must be lock free");
static_assert(sizeof(EstimateItem) == 40, "EstimateItem layout");
static_assert(sizeof(ModelInfo) == 384, "ModelInfo layout");
static_assert(offsetof(Request, text) + kMaxText == sizeof(Request), "Request::text must be last");
static_assert(sizeof(EstimateAnswer) == 16, "EstimateAnswer layout");
static_assert(sizeof(FeedbackRecord) == 128, "FeedbackRecord layout");
static_assert(sizeof(GuardEntry) == 48, "GuardEntry layout");
static_assert((kGuardEntries & (kGuardEntries - 1)) == 0, "guard table size must be a power of two");
static_assert(static_cast<uint32_t>(GUARD_PILOT) == static_cast<uint32_t>(ARM_PILOT) &&
                  static_cast<uint32_t>(GUARD_NATIVE) == static_cast<uint32_t>(ARM_NATIVE),
              "a decision names the arm it chooses");
static_assert((kFeedbackRing & (kFeedbackRing - 1)) == 0, "ring size must be a power of two");

/* The generation of the answers an estimator gives (EstimatorId): the sum of
 * the generations of the sources it consults (each only grows). */
inline uint64_t answers_generation(const SegmentHeader *h, uint32_t estimator) {
    const uint64_t memo = h->memo_generation.load(std::memory_order_acquire);
    const uint64_t oracle = h->oracle_generation.load(std::memory_order_acquire);
    const uint64_t model = h->model_generation.load(std::memory_order_acquire);
    switch (estimator) {
    case EST_NATIVE: return 0;
    case EST_ORACLE: return oracle;
    case EST_MEMO: return memo;
    case EST_LEARNED: return model;
    default: return memo + oracle + model;
    }
}

inline uint64_t segment_size(uint32_t nslots) {
    return sizeof(SegmentHeader) + static_cast<uint64_t>(nslots) * sizeof(Slot);
}

inline Slot *slot_at(SegmentHeader *h, uint32_t i) {
    return reinterpret_cast<Slot *>(reinterpret_cast<char *>(h) + sizeof(SegmentHeader)) + i;
}

/* Why a header is unusable; HDR_OK when it can be talked to. */
enum HeaderCheck {
    HDR_OK = 0,
    HDR_TOO_SMALL,     /* mapping smaller than a header */
    HDR_BAD_MAGIC,     /* not a pg_pilot segment (or not initialised yet) */
    HDR_BAD_VERSION,   /* pilotd speaks another protocol version */
    HDR_BAD_LAYOUT,    /* sizes disagree with this build or with the mapping */
    HDR_NOT_READY,     /* pilotd starting or stopping */
    HDR_STALE,         /* heartbeat older than the staleness limit: pilotd is gone or hung */
};

const char *header_check_name(HeaderCheck c);

/* Checks everything a backend needs before it may write a request. */
HeaderCheck validate_header(const SegmentHeader *h, uint64_t mapped_size, uint64_t now_us,
                            uint64_t stale_after_us);

/* pilotd's check of a feedback record copied out of a ring. */
FeedbackCheck feedback_check(const FeedbackRecord &r);
inline bool validate_feedback(const FeedbackRecord &r) { return feedback_check(r) == FBC_OK; }

/* Copies name into dst (cap bytes, NUL-terminated) as valid UTF-8 without
 * control characters: invalid bytes become '?'; cut at a character boundary.
 * Returns the bytes written (without the NUL). */
size_t copy_clean_utf8(char *dst, size_t cap, const char *src, size_t len);

/* Is s[0, len) usable as key text: valid UTF-8, no NUL and no control
 * character except '\n' (the canonical text is one item per line). */
bool key_text_clean(const char *s, size_t len);

/* pilotd's check of a request it is about to answer.  MSG_ESTIMATE: also
 * text_used <= kMaxText and every item's text within text[0, text_used). */
bool validate_request(const Request &r);

/* pilotd, on its private copy of a request that passed the bounds checks of
 * validate_request(): the texts that are not key_text_clean() are dropped
 * (text_len = 0; the item is still estimated by its key).  Returns how many. */
uint32_t drop_unclean_texts(Request &r);

/* A model table row copied out of the segment, checked and cleaned: false
 * when the state is out of range; strings are NUL-terminated clean UTF-8
 * afterwards. */
bool clean_model_info(ModelInfo &m);

/* A backend's check of a response to request `req`; on success every answer is
 * usable (finite, non-negative rows, known source). */
bool validate_response(const Request &req, const Response &resp);

/* CLOCK_MONOTONIC in microseconds: comparable across processes on one host. */
uint64_t monotonic_us();

/* "pg_pilot.<16 hex digits>" from the real path of the data directory;
 * empty string when the path cannot be resolved. */
std::string segment_name_for_datadir(const std::string &datadir);

/* 64-bit FNV-1a with a splitmix finaliser: stable across builds and hosts. */
uint64_t stable_hash64(const void *data, size_t len, uint64_t seed = 0);

} // namespace proto
} // namespace pilot

#endif
