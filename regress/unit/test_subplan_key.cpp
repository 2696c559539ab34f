/*
 * test_subplan_key.cpp — unit tests for common/subplan_key (the canonical
 * "subplan key" of a relation set).
 *
 * The key is the join point of estimates, feedback, memo and models, so these
 * tests check the contract of subplan_key.h hard:
 *   - invariance: aliases (relation ids), relation order, clause order, operand
 *     order of commutative operators, AND/OR/EQ argument order, duplicates;
 *   - sensitivity: anything that changes the query changes the key (and the
 *     template, unless only constants changed);
 *   - self-joins, including symmetric ones and ones colour refinement alone
 *     cannot tell apart;
 *   - templates, errors, a golden value, and a JOB-sized case.
 *
 * Queries are written once as a Query (tables + a function adding the clauses)
 * and "spelled" many ways by a Spelling (ids, listing order, clause order,
 * operand/argument order, duplicates); every spelling must give one key.
 */
#include "subplan_key.h"

#include "pilot_protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

using pilot::KeyDesc;
using pilot::KeyNode;
using pilot::SubplanKey;

namespace {

/* ------------------------------------------------------------------------ */
/* Builder: owns the nodes, strings and arrays of one KeyDesc.               */
/* ------------------------------------------------------------------------ */

/* How a logical query is written down. */
struct Spelling {
    std::vector<int> ids;    /* caller's relation id per logical relation */
    std::vector<int> order;  /* listing order of the logical relations */
    bool swap = false;       /* write commutable binary operators the other way round */
    bool reverse = false;    /* reverse the arguments of set-like calls */
    uint32_t shuffle = 0;    /* != 0: seed for shuffling clauses and set-like arguments */
    uint32_t duplicate = 0;  /* != 0: seed choosing clauses to emit a second time */
    bool cache_hashes = false; /* nodes carry their texts' hashes, as the planner's catalog fills them in */
};

const char *commutator_of(const std::string &op) {
    static const std::map<std::string, std::string> comm = {
        {"=", "="}, {"<>", "<>"}, {"<", ">"}, {">", "<"}, {"<=", ">="}, {">=", "<="},
    };
    auto it = comm.find(op);
    return it == comm.end() ? nullptr : it->second.c_str();
}

class Builder {
public:
    Builder() = default;
    Builder(const Builder &) = delete;
    Builder &operator=(const Builder &) = delete;

    Spelling sp;
    std::mt19937 rng{1};

    /* ---- expression nodes ---- */
    const KeyNode *Var(int logical_rel, const std::string &col) {
        return RawVar(sp.ids.at(static_cast<size_t>(logical_rel)), col);
    }
    /* a Var whose id is used as is (may name a relation outside the set) */
    const KeyNode *RawVar(int id, const std::string &col) {
        KeyNode n{};
        n.kind = pilot::KN_VAR;
        n.rel = id;
        n.text = Str(col);
        return Push(n);
    }
    const KeyNode *Const(const std::string &lit) {
        KeyNode n{};
        n.kind = pilot::KN_CONST;
        n.text = Str(lit);
        return Push(n);
    }
    /* binary operator; the commutator comes from the table above (none for ~~) */
    const KeyNode *Op(const std::string &op, const KeyNode *a, const KeyNode *b) {
        return OpC(op, commutator_of(op), a, b);
    }
    /* binary operator with an explicit commutator (nullptr: none) */
    const KeyNode *OpC(const std::string &op, const char *comm, const KeyNode *a,
                       const KeyNode *b) {
        if (sp.swap && comm != nullptr) /* a op b == b comm a */
            return Raw(pilot::KN_CALL, pilot::KF_INFIX, comm, op.c_str(), {b, a});
        return Raw(pilot::KN_CALL, pilot::KF_INFIX, op.c_str(), comm, {a, b});
    }
    const KeyNode *Like(const KeyNode *a, const KeyNode *b) { return Op("~~", a, b); }
    const KeyNode *NotLike(const KeyNode *a, const KeyNode *b) { return Op("!~~", a, b); }
    /* a.col IN (...): "= ANY" over a Var and an array constant */
    const KeyNode *In(const KeyNode *a, const std::string &array_lit) {
        return Call("= ANY", {a, Const(array_lit)});
    }
    const KeyNode *Not(const KeyNode *a) { return Call("NOT", {a}); }
    const KeyNode *IsNull(const KeyNode *a) { return Call("IS NULL", {a}); }
    const KeyNode *IsNotNull(const KeyNode *a) { return Call("IS NOT NULL", {a}); }
    const KeyNode *And(std::vector<const KeyNode *> a) { return Set("AND", std::move(a)); }
    const KeyNode *Or(std::vector<const KeyNode *> a) { return Set("OR", std::move(a)); }
    /* equivalence class over member Vars */
    const KeyNode *Eq(std::vector<const KeyNode *> a) { return Set("EQ", std::move(a)); }
    /* set-like call: argument order is up to the spelling */
    const KeyNode *Set(const std::string &name, std::vector<const KeyNode *> a) {
        if (sp.reverse)
            std::reverse(a.begin(), a.end());
        if (sp.shuffle)
            std::shuffle(a.begin(), a.end(), rng);
        return Raw(pilot::KN_CALL, pilot::KF_SORT_ARGS, name.c_str(), nullptr, std::move(a));
    }
    /* plain function call: argument order matters */
    const KeyNode *Call(const std::string &name, std::vector<const KeyNode *> a) {
        return Raw(pilot::KN_CALL, 0, name.c_str(), nullptr, std::move(a));
    }
    const KeyNode *Raw(int kind, uint32_t flags, const char *text, const char *comm,
                       std::vector<const KeyNode *> args) {
        KeyNode n{};
        n.kind = kind;
        n.flags = flags;
        n.text = text ? Str(text) : nullptr;
        n.commutator = comm ? Str(comm) : nullptr;
        arglists_.push_back(std::move(args));
        n.nargs = static_cast<int>(arglists_.back().size());
        n.args = arglists_.back().empty() ? nullptr : arglists_.back().data();
        return Push(n);
    }
    /* a node filled by hand (error tests) */
    KeyNode *Mutable(const KeyNode &n) {
        nodes_.push_back(n);
        return &nodes_.back();
    }

    /* ---- the description ---- */
    void AddRel(int id, const std::string &table) {
        rel_ids_.push_back(id);
        table_ptrs_.push_back(Str(table));
    }
    void Where(const KeyNode *c) { clauses_.push_back(c); }
    std::vector<const KeyNode *> &clauses() { return clauses_; }
    std::vector<int> &rel_ids() { return rel_ids_; }
    std::vector<const char *> &table_ptrs() { return table_ptrs_; }

    KeyDesc Desc() const {
        KeyDesc d{};
        d.nrels = static_cast<int>(rel_ids_.size());
        d.rel_ids = rel_ids_.data();
        d.tables = table_ptrs_.data();
        d.nclauses = static_cast<int>(clauses_.size());
        d.clauses = clauses_.data();
        return d;
    }

    const char *Str(const std::string &s) {
        strings_.push_back(s);
        return strings_.back().c_str();
    }

private:
    const KeyNode *Push(const KeyNode &n) {
        nodes_.push_back(n);
        if (sp.cache_hashes) {
            nodes_.back().text_hash = pilot::key_node_text_hash(n.text);
            nodes_.back().commutator_hash = pilot::key_node_text_hash(n.commutator);
        }
        return &nodes_.back();
    }
    std::deque<KeyNode> nodes_;
    std::deque<std::string> strings_;
    std::deque<std::vector<const KeyNode *>> arglists_;
    std::vector<int> rel_ids_;
    std::vector<const char *> table_ptrs_;
    std::vector<const KeyNode *> clauses_;
};

/* ------------------------------------------------------------------------ */
/* Queries and spellings                                                      */
/* ------------------------------------------------------------------------ */

struct Query {
    std::vector<std::string> tables;          /* table of logical relation i */
    std::function<void(Builder &)> where;     /* adds the clauses (b.Where(...)) */
};

struct Result {
    bool ok = false;
    SubplanKey key;
    std::string error;
    uint64_t fingerprint = 0; /* subplan_desc_fingerprint() */
};

Spelling Plain(size_t n) {
    Spelling s;
    s.ids.resize(n);
    s.order.resize(n);
    for (size_t i = 0; i < n; i++) {
        s.ids[i] = static_cast<int>(i + 1);
        s.order[i] = static_cast<int>(i);
    }
    return s;
}

Result Compute(const Query &q, const Spelling &sp) {
    Builder b;
    b.sp = sp;
    b.rng.seed(sp.shuffle ? sp.shuffle : 1);
    for (int i : sp.order)
        b.AddRel(sp.ids.at(static_cast<size_t>(i)), q.tables.at(static_cast<size_t>(i)));
    if (q.where)
        q.where(b);
    if (sp.duplicate && q.where) {
        /* write the clauses a second time, the other way round, and keep some */
        std::vector<const KeyNode *> first = b.clauses();
        b.clauses().clear();
        b.sp.swap = !b.sp.swap;
        b.sp.reverse = !b.sp.reverse;
        q.where(b);
        std::vector<const KeyNode *> second = b.clauses();
        b.clauses() = first;
        std::mt19937 pick(sp.duplicate);
        for (const KeyNode *c : second)
            if (pick() % 2 == 0)
                b.clauses().push_back(c);
    }
    if (sp.shuffle) {
        std::mt19937 r(sp.shuffle * 7919u + 13u);
        std::shuffle(b.clauses().begin(), b.clauses().end(), r);
    }
    Result res;
    res.ok = pilot::subplan_key_compute(b.Desc(), &res.key, &res.error);
    res.fingerprint = pilot::subplan_desc_fingerprint(b.Desc());
    return res;
}

Result Compute(const Query &q) { return Compute(q, Plain(q.tables.size())); }

/* The key of a well-formed query (fails the test if it cannot be computed). */
SubplanKey KeyOf(const Query &q, const Spelling &sp) {
    Result r = Compute(q, sp);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_NE(r.key.key, 0u);
    EXPECT_NE(r.key.template_key, 0u);
    return r.key;
}
SubplanKey KeyOf(const Query &q) { return KeyOf(q, Plain(q.tables.size())); }

std::vector<int> DistinctIds(size_t n, std::mt19937 &rng) {
    std::uniform_int_distribution<int> any(-2000000, 2000000);
    std::set<int> seen;
    std::vector<int> ids;
    while (ids.size() < n) {
        int id;
        switch (rng() % 8) {
        case 0: id = INT_MIN + static_cast<int>(rng() % 3); break;
        case 1: id = INT_MAX - static_cast<int>(rng() % 3); break;
        case 2: id = static_cast<int>(rng() % 20); break; /* small, like range-table indexes */
        default: id = any(rng); break;
        }
        if (seen.insert(id).second)
            ids.push_back(id);
    }
    return ids;
}

Spelling RandomSpelling(size_t n, std::mt19937 &rng, bool with_duplicates) {
    Spelling s;
    s.ids = DistinctIds(n, rng);
    s.order.resize(n);
    std::iota(s.order.begin(), s.order.end(), 0);
    std::shuffle(s.order.begin(), s.order.end(), rng);
    s.swap = rng() % 2;
    s.reverse = rng() % 2;
    s.shuffle = 1 + static_cast<uint32_t>(rng() % 100000);
    s.duplicate = with_duplicates && rng() % 2 ? 1 + static_cast<uint32_t>(rng() % 100000) : 0;
    s.cache_hashes = (s.shuffle & 1) != 0;
    return s;
}

std::string Describe(const Spelling &s) {
    std::string out = "ids/order:";
    for (size_t i = 0; i < s.order.size(); i++)
        out += " L" + std::to_string(s.order[i]) + "=" +
               std::to_string(s.ids[static_cast<size_t>(s.order[i])]);
    out += " swap=" + std::to_string(s.swap) + " reverse=" + std::to_string(s.reverse) +
           " shuffle=" + std::to_string(s.shuffle) + " duplicate=" + std::to_string(s.duplicate) +
           " cache_hashes=" + std::to_string(s.cache_hashes);
    return out;
}

/* true if equal; otherwise adds one failure showing both texts */
bool SameKey(const SubplanKey &want, const SubplanKey &got, const std::string &what) {
    if (want.key == got.key && want.text == got.text && want.template_key == got.template_key &&
        want.template_text == got.template_text)
        return true;
    ADD_FAILURE() << "key differs for " << what << "\n--- expected text:\n"
                  << want.text << "--- got text:\n"
                  << got.text << "--- expected template:\n"
                  << want.template_text << "--- got template:\n"
                  << got.template_text;
    return false;
}

/*
 * Every spelling of q gives the plain spelling's key: all listing orders when
 * there are at most `all_orders_upto` relations (each with fresh random ids,
 * operand/argument/clause order and duplicates), plus `random_rounds` random
 * spellings.  Stops at the first difference.
 */
void ExpectInvariant(const Query &q, int random_rounds = 60, size_t all_orders_upto = 5,
                     uint32_t seed = 12345) {
    const size_t n = q.tables.size();
    const SubplanKey base = KeyOf(q);
    std::mt19937 rng(seed);
    if (n <= all_orders_upto) {
        std::vector<int> order(n);
        std::iota(order.begin(), order.end(), 0);
        int k = 0;
        do {
            /* same ids, only the order changes */
            Spelling s = Plain(n);
            s.order = order;
            if (!SameKey(base, KeyOf(q, s), Describe(s)))
                return;
            /* and a random spelling with this order */
            s = RandomSpelling(n, rng, /*with_duplicates=*/k % 3 == 2);
            s.order = order;
            if (!SameKey(base, KeyOf(q, s), Describe(s)))
                return;
            k++;
        } while (std::next_permutation(order.begin(), order.end()));
    }
    for (int i = 0; i < random_rounds; i++) {
        Spelling s = RandomSpelling(n, rng, /*with_duplicates=*/i % 2 == 1);
        if (!SameKey(base, KeyOf(q, s), Describe(s)))
            return;
    }
}

/* Two different queries: different key and text (and template unless told). */
void ExpectDifferent(const Query &a, const Query &b, bool same_template) {
    SubplanKey ka = KeyOf(a), kb = KeyOf(b);
    EXPECT_NE(ka.text, kb.text);
    EXPECT_NE(ka.key, kb.key) << ka.text << "vs\n" << kb.text;
    if (same_template) {
        EXPECT_EQ(ka.template_text, kb.template_text);
        EXPECT_EQ(ka.template_key, kb.template_key);
    } else {
        EXPECT_NE(ka.template_text, kb.template_text);
        EXPECT_NE(ka.template_key, kb.template_key) << ka.template_text << "vs\n"
                                                    << kb.template_text;
    }
    /* and the difference survives respelling */
    std::mt19937 rng(99);
    for (int i = 0; i < 10; i++) {
        SubplanKey ra = KeyOf(a, RandomSpelling(a.tables.size(), rng, true));
        SubplanKey rb = KeyOf(b, RandomSpelling(b.tables.size(), rng, true));
        EXPECT_EQ(ra.key, ka.key);
        EXPECT_EQ(rb.key, kb.key);
        EXPECT_NE(ra.key, rb.key);
    }
}

/* Two spellings of the same query (written differently by hand). */
void ExpectSame(const Query &a, const Query &b) {
    SubplanKey ka = KeyOf(a), kb = KeyOf(b);
    SameKey(ka, kb, "hand-written equivalent");
}

size_t CountLines(const std::string &text, const std::string &prefix) {
    size_t n = 0, pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string::npos)
            eol = text.size();
        if (text.compare(pos, prefix.size(), prefix) == 0)
            n++;
        pos = eol + 1;
    }
    return n;
}

const char *const kTitle = "public.title";
const char *const kMovieInfo = "public.movie_info";
const char *const kInfoType = "public.info_type";
const char *const kMovieCompanies = "public.movie_companies";
const char *const kCompanyName = "public.company_name";
const char *const kCompanyType = "public.company_type";
const char *const kMovieKeyword = "public.movie_keyword";
const char *const kKeyword = "public.keyword";
const char *const kCastInfo = "public.cast_info";
const char *const kName = "public.name";
const char *const kCharName = "public.char_name";
const char *const kRoleType = "public.role_type";
const char *const kAkaName = "public.aka_name";
const char *const kPersonInfo = "public.person_info";
const char *const kCompleteCast = "public.complete_cast";
const char *const kCompCastType = "public.comp_cast_type";
const char *const kKindType = "public.kind_type";
const char *const kMovieLink = "public.movie_link";
const char *const kLinkType = "public.link_type";

/* A three-table query: title t(0), movie_info mi(1), info_type it(2). */
Query ThreeTables() {
    return Query{{kTitle, kMovieInfo, kInfoType}, [](Builder &b) {
                     b.Where(b.Op("=", b.Var(1, "movie_id"), b.Var(0, "id")));
                     b.Where(b.Op("=", b.Var(1, "info_type_id"), b.Var(2, "id")));
                     b.Where(b.Op("=", b.Var(2, "info"), b.Const("'rating'::text")));
                     b.Where(b.Op(">", b.Var(0, "production_year"), b.Const("'2000'::integer")));
                     b.Where(b.In(b.Var(0, "kind_id"), "'{1,2}'::integer[]"));
                     b.Where(b.Or({b.Like(b.Var(1, "info"), b.Const("'%USA%'::text")),
                                   b.IsNull(b.Var(1, "note"))}));
                 }};
}

/* ======================================================================== */
/* 1. Invariance                                                             */
/* ======================================================================== */

TEST(SubplanKeyInvariance, SingleRelationAnyId) {
    Query q{{kTitle}, [](Builder &b) {
                b.Where(b.Op("=", b.Var(0, "kind_id"), b.Const("'1'::integer")));
                b.Where(b.Op("<", b.Const("'1990'::integer"), b.Var(0, "production_year")));
            }};
    SubplanKey base = KeyOf(q);
    for (int id : {0, 1, 2, 7, 100, -1, -77, INT_MIN, INT_MAX}) {
        Spelling s = Plain(1);
        s.ids[0] = id;
        SameKey(base, KeyOf(q, s), "id " + std::to_string(id));
    }
    ExpectInvariant(q);
}

/* The fingerprint a backend reuses keys by: the same description (the same
 * query planned again) gives the same one, whether the nodes carry their
 * texts' hashes or not; another constant, relation id or clause order gives
 * another; a malformed description none. */
TEST(SubplanDescFingerprint, SameDescriptionSameFingerprint) {
    auto with_year = [](const char *year) {
        return Query{{kTitle, kTitle}, [year](Builder &b) {
                         b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "id")));
                         b.Where(b.Op("<", b.Const(year), b.Var(1, "production_year")));
                     }};
    };
    Spelling plain = Plain(2), cached = Plain(2);
    cached.cache_hashes = true;
    const uint64_t a = Compute(with_year("'1990'::integer"), plain).fingerprint;
    EXPECT_NE(a, 0u);
    EXPECT_EQ(Compute(with_year("'1990'::integer"), plain).fingerprint, a);
    EXPECT_EQ(Compute(with_year("'1990'::integer"), cached).fingerprint, a);
    EXPECT_NE(Compute(with_year("'1991'::integer"), plain).fingerprint, a) << "another constant";
    Spelling other_ids = Plain(2);
    other_ids.ids = {5, 9};
    EXPECT_NE(Compute(with_year("'1990'::integer"), other_ids).fingerprint, a) << "other relation ids";
    Spelling reversed = Plain(2);
    reversed.order = {1, 0};
    EXPECT_NE(Compute(with_year("'1990'::integer"), reversed).fingerprint, a)
        << "not canonical: another listing is another description";
    EXPECT_EQ(Compute(with_year("'1990'::integer"), reversed).key.key, KeyOf(with_year("'1990'::integer")).key)
        << "while the key is the same";
    EXPECT_EQ(Compute(ThreeTables(), Plain(3)).fingerprint, Compute(ThreeTables(), Plain(3)).fingerprint);

    Builder b;
    b.AddRel(1, kTitle);
    b.Where(nullptr);
    EXPECT_EQ(pilot::subplan_desc_fingerprint(b.Desc()), 0u);
}

TEST(SubplanKeyInvariance, RelationIdsDoNotMatter) {
    Query q = ThreeTables();
    SubplanKey base = KeyOf(q);
    const std::vector<std::vector<int>> idsets = {
        {1, 2, 3}, {3, 2, 1}, {10, 20, 30}, {30, 20, 10}, {5, 1, 9}, {-1, 0, 1}, {INT_MAX, INT_MIN, 0},
    };
    for (const auto &ids : idsets) {
        Spelling s = Plain(3);
        s.ids = ids;
        SameKey(base, KeyOf(q, s), "ids");
    }
    /* the text never mentions the caller's ids */
    EXPECT_EQ(base.text.find("30"), std::string::npos);
}

TEST(SubplanKeyInvariance, AllRelationOrdersThreeTables) { ExpectInvariant(ThreeTables(), 100); }

TEST(SubplanKeyInvariance, AllRelationOrdersFourTables) {
    /* t(0) - mc(1) - cn(2), mc - ct(3) */
    Query q{{kTitle, kMovieCompanies, kCompanyName, kCompanyType}, [](Builder &b) {
                b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                b.Where(b.Op("=", b.Var(1, "company_id"), b.Var(2, "id")));
                b.Where(b.Op("=", b.Var(1, "company_type_id"), b.Var(3, "id")));
                b.Where(b.Op("=", b.Var(2, "country_code"), b.Const("'[us]'::text")));
                b.Where(b.Op("=", b.Var(3, "kind"), b.Const("'production companies'::text")));
                b.Where(b.Not(b.Like(b.Var(1, "note"), b.Const("'%(TV)%'::text"))));
                b.Where(b.Op(">=", b.Var(0, "production_year"), b.Const("'1990'::integer")));
                b.Where(b.Op("<=", b.Var(0, "production_year"), b.Const("'2005'::integer")));
            }};
    ExpectInvariant(q, 100);
}

TEST(SubplanKeyInvariance, ClauseOrderDoesNotMatter) {
    Query q = ThreeTables();
    SubplanKey base = KeyOf(q);
    /* every rotation and the reversal of the clause list */
    Builder ref;
    ref.sp = Plain(3);
    q.where(ref);
    const size_t nc = ref.clauses().size();
    for (size_t rot = 0; rot < nc; rot++) {
        for (bool rev : {false, true}) {
            Builder b;
            b.sp = Plain(3);
            for (int i = 0; i < 3; i++)
                b.AddRel(i + 1, q.tables[static_cast<size_t>(i)]);
            q.where(b);
            auto &c = b.clauses();
            std::rotate(c.begin(), c.begin() + static_cast<long>(rot), c.end());
            if (rev)
                std::reverse(c.begin(), c.end());
            SubplanKey k;
            std::string err;
            ASSERT_TRUE(pilot::subplan_key_compute(b.Desc(), &k, &err)) << err;
            SameKey(base, k, "clause rotation " + std::to_string(rot));
        }
    }
}

TEST(SubplanKeyInvariance, CommutedJoinOperands) {
    /* a.x = b.y vs b.y = a.x; a.x < b.y vs b.y > a.x */
    for (const char *op : {"=", "<", ">", "<=", ">=", "<>"}) {
        Query q1{{kTitle, kMovieLink}, [op](Builder &b) {
                     b.Where(b.Op(op, b.Var(0, "id"), b.Var(1, "linked_movie_id")));
                 }};
        Query q2{{kTitle, kMovieLink}, [op](Builder &b) {
                     b.Where(b.OpC(commutator_of(op), op, b.Var(1, "linked_movie_id"),
                                   b.Var(0, "id")));
                 }};
        ExpectSame(q1, q2);
        ExpectInvariant(q1, 20);
    }
}

TEST(SubplanKeyInvariance, CommutedConstantOperands) {
    /* 5 < a.x == a.x > 5, 5 > a.x == a.x < 5, etc. */
    for (const char *op : {"=", "<", ">", "<=", ">=", "<>"}) {
        Query q1{{kTitle}, [op](Builder &b) {
                     b.Where(b.Op(op, b.Const("'5'::integer"), b.Var(0, "kind_id")));
                 }};
        Query q2{{kTitle}, [op](Builder &b) {
                     b.Where(b.OpC(commutator_of(op), op, b.Var(0, "kind_id"),
                                   b.Const("'5'::integer")));
                 }};
        ExpectSame(q1, q2);
    }
    /* the header's example */
    Query lt{{kTitle}, [](Builder &b) {
                 b.Where(b.Op("<", b.Const("'5'::integer"), b.Var(0, "x")));
             }};
    Query gt{{kTitle}, [](Builder &b) {
                 b.Where(b.Op(">", b.Var(0, "x"), b.Const("'5'::integer")));
             }};
    ExpectSame(lt, gt);
}

TEST(SubplanKeyInvariance, CommutedOperandsInsideExpressions) {
    /* commuted operands deep inside OR / NOT / function calls */
    Query q1{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                 b.Where(b.Or({b.And({b.Op("<", b.Var(0, "production_year"), b.Const("'1950'::integer")),
                                      b.Op("=", b.Var(0, "kind_id"), b.Const("'7'::integer"))}),
                               b.Not(b.Op("<>", b.Var(0, "title"), b.Var(1, "info")))}));
                 b.Where(b.Op("=", b.Call("lower", {b.Var(1, "info")}), b.Const("'drama'::text")));
             }};
    Query q2{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Op("=", b.Var(1, "movie_id"), b.Var(0, "id")));
                 b.Where(b.Or({b.Not(b.Op("<>", b.Var(1, "info"), b.Var(0, "title"))),
                               b.And({b.Op("=", b.Const("'7'::integer"), b.Var(0, "kind_id")),
                                      b.Op(">", b.Const("'1950'::integer"), b.Var(0, "production_year"))})}));
                 b.Where(b.Op("=", b.Const("'drama'::text"), b.Call("lower", {b.Var(1, "info")})));
             }};
    ExpectSame(q1, q2);
    ExpectInvariant(q1);
}

TEST(SubplanKeyInvariance, SetArgumentOrder) {
    /* AND / OR / EQ in every argument order */
    std::vector<int> perm = {0, 1, 2, 3};
    SubplanKey base;
    bool first = true;
    do {
        Query q{{kTitle, kMovieInfo, kMovieCompanies, kMovieKeyword}, [perm](Builder &b) {
                    std::vector<const KeyNode *> members = {
                        b.Var(0, "id"), b.Var(1, "movie_id"), b.Var(2, "movie_id"), b.Var(3, "movie_id")};
                    std::vector<const KeyNode *> ors = {
                        b.Op("=", b.Var(0, "kind_id"), b.Const("'1'::integer")),
                        b.Op(">", b.Var(0, "production_year"), b.Const("'2000'::integer")),
                        b.IsNull(b.Var(0, "episode_nr")),
                        b.Like(b.Var(0, "title"), b.Const("'The %'::text"))};
                    std::vector<const KeyNode *> ands = {
                        b.Op("<>", b.Var(2, "company_id"), b.Const("'3'::integer")),
                        b.IsNotNull(b.Var(2, "note")),
                        b.Op("<", b.Var(2, "company_type_id"), b.Var(2, "company_id")),
                        b.Op("=", b.Var(2, "id"), b.Var(2, "id"))};
                    std::vector<const KeyNode *> m, o, a;
                    for (int i : perm) {
                        m.push_back(members[static_cast<size_t>(i)]);
                        o.push_back(ors[static_cast<size_t>(i)]);
                        a.push_back(ands[static_cast<size_t>(i)]);
                    }
                    b.Where(b.Eq(m));
                    b.Where(b.Or(o));
                    b.Where(b.And(a));
                }};
        SubplanKey k = KeyOf(q);
        if (first)
            base = k;
        else if (!SameKey(base, k, "argument permutation"))
            break;
        first = false;
    } while (std::next_permutation(perm.begin(), perm.end()));
}

TEST(SubplanKeyInvariance, NestedSetArgumentOrder) {
    Query q1{{kTitle}, [](Builder &b) {
                 b.Where(b.Or({b.And({b.Op("=", b.Var(0, "a"), b.Const("'1'::integer")),
                                      b.Op("=", b.Var(0, "b"), b.Const("'2'::integer"))}),
                               b.And({b.Op("=", b.Var(0, "a"), b.Const("'3'::integer")),
                                      b.Or({b.IsNull(b.Var(0, "c")), b.IsNull(b.Var(0, "d"))})})}));
             }};
    Query q2{{kTitle}, [](Builder &b) {
                 b.Where(b.Or({b.And({b.Or({b.IsNull(b.Var(0, "d")), b.IsNull(b.Var(0, "c"))}),
                                      b.Op("=", b.Const("'3'::integer"), b.Var(0, "a"))}),
                               b.And({b.Op("=", b.Var(0, "b"), b.Const("'2'::integer")),
                                      b.Op("=", b.Const("'1'::integer"), b.Var(0, "a"))})}));
             }};
    ExpectSame(q1, q2);
}

TEST(SubplanKeyInvariance, DuplicatedClausesAndArguments) {
    Query once = ThreeTables();
    Query twice{once.tables, [once](Builder &b) {
                    once.where(b);
                    once.where(b); /* every clause twice */
                }};
    ExpectSame(once, twice);
    /* a clause repeated in commuted form */
    Query q1{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                 b.Where(b.Op("<", b.Var(0, "production_year"), b.Const("'2000'::integer")));
             }};
    Query q2{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                 b.Where(b.Op("=", b.Var(1, "movie_id"), b.Var(0, "id")));
                 b.Where(b.Op("<", b.Var(0, "production_year"), b.Const("'2000'::integer")));
                 b.Where(b.Op(">", b.Const("'2000'::integer"), b.Var(0, "production_year")));
             }};
    ExpectSame(q1, q2);
    /* duplicated set members: AND(x, x, y) == AND(x, y); EQ(a, a, b) == EQ(a, b) */
    Query q3{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Eq({b.Var(0, "id"), b.Var(1, "movie_id")}));
                 b.Where(b.Or({b.IsNull(b.Var(1, "note")), b.IsNull(b.Var(1, "info"))}));
             }};
    Query q4{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Eq({b.Var(1, "movie_id"), b.Var(0, "id"), b.Var(1, "movie_id")}));
                 b.Where(b.Or({b.IsNull(b.Var(1, "info")), b.IsNull(b.Var(1, "note")),
                               b.IsNull(b.Var(1, "info"))}));
             }};
    ExpectSame(q3, q4);
}

TEST(SubplanKeyInvariance, DuplicatedClauseDoesNotReorderInstances) {
    /*
     * Two title instances a(0), b(1); b joins two movie_info instances c1(2),
     * c2(3), a joins one, c3(4).  Writing a's join clause twice must not make
     * a look like b (which takes part in two such joins) while relations are
     * being told apart: the key must be that of the clause written once.
     */
    Query once{{kTitle, kTitle, kMovieInfo, kMovieInfo, kMovieInfo}, [](Builder &b) {
                   b.Where(b.Op("=", b.Var(1, "id"), b.Var(2, "movie_id")));
                   b.Where(b.Op("=", b.Var(1, "id"), b.Var(3, "movie_id")));
                   b.Where(b.Op("=", b.Var(0, "id"), b.Var(4, "movie_id")));
               }};
    Query dup{once.tables, [](Builder &b) {
                  b.Where(b.Op("=", b.Var(1, "id"), b.Var(2, "movie_id")));
                  b.Where(b.Op("=", b.Var(1, "id"), b.Var(3, "movie_id")));
                  b.Where(b.Op("=", b.Var(0, "id"), b.Var(4, "movie_id")));
                  b.Where(b.Op("=", b.Var(4, "movie_id"), b.Var(0, "id")));
              }};
    ExpectSame(once, dup);
    ExpectInvariant(once);
    ExpectInvariant(dup);
}

TEST(SubplanKeyInvariance, DuplicatedFilterInSelfJoin) {
    /* the same with a filter: a has kind = 1 once or twice */
    Query once{{kTitle, kTitle, kMovieInfo, kMovieInfo, kMovieInfo}, [](Builder &b) {
                   b.Where(b.Op("=", b.Var(1, "id"), b.Var(2, "movie_id")));
                   b.Where(b.Op("=", b.Var(1, "id"), b.Var(3, "movie_id")));
                   b.Where(b.Op("=", b.Var(0, "id"), b.Var(4, "movie_id")));
                   b.Where(b.Op("=", b.Var(0, "kind_id"), b.Const("'1'::integer")));
                   b.Where(b.Op("=", b.Var(1, "kind_id"), b.Const("'1'::integer")));
                   b.Where(b.Op("=", b.Var(1, "kind_id"), b.Const("'1'::integer")));
               }};
    Query dup{once.tables, [](Builder &b) {
                  b.Where(b.Op("=", b.Var(1, "id"), b.Var(2, "movie_id")));
                  b.Where(b.Op("=", b.Var(1, "id"), b.Var(3, "movie_id")));
                  b.Where(b.Op("=", b.Var(0, "id"), b.Var(4, "movie_id")));
                  b.Where(b.Op("=", b.Var(0, "kind_id"), b.Const("'1'::integer")));
                  b.Where(b.Op("=", b.Var(0, "kind_id"), b.Const("'1'::integer")));
                  b.Where(b.Op("=", b.Const("'1'::integer"), b.Var(0, "kind_id")));
                  b.Where(b.Op("=", b.Var(1, "kind_id"), b.Const("'1'::integer")));
              }};
    ExpectSame(once, dup);
}

TEST(SubplanKeyInvariance, RandomSpellingsOfThreeTables) {
    ExpectInvariant(ThreeTables(), 300, 0, 777);
}

/* ======================================================================== */
/* 2. Sensitivity                                                            */
/* ======================================================================== */

/* t(0) join mi(1), a filter on t written by `filter` */
Query TwoWithFilter(std::function<const KeyNode *(Builder &)> filter) {
    return Query{{kTitle, kMovieInfo}, [filter](Builder &b) {
                     b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                     b.Where(filter(b));
                 }};
}

TEST(SubplanKeySensitivity, DifferentConstantSameTemplate) {
    auto year = [](const char *c) {
        return TwoWithFilter([c](Builder &b) {
            return b.Op(">", b.Var(0, "production_year"), b.Const(c));
        });
    };
    ExpectDifferent(year("'2000'::integer"), year("'2001'::integer"), true);
    ExpectDifferent(year("'2000'::integer"), year("'2000'::bigint"), true);
    ExpectDifferent(year("'2000'::integer"), year("NULL::integer"), true);
    auto like = [](const char *c) {
        return TwoWithFilter([c](Builder &b) { return b.Like(b.Var(1, "info"), b.Const(c)); });
    };
    ExpectDifferent(like("'%USA%'::text"), like("'%usa%'::text"), true);
    ExpectDifferent(like("'x'::text"), like("'x '::text"), true);
}

TEST(SubplanKeySensitivity, DifferentColumn) {
    ExpectDifferent(TwoWithFilter([](Builder &b) {
                        return b.Op("=", b.Var(0, "kind_id"), b.Const("'1'::integer"));
                    }),
                    TwoWithFilter([](Builder &b) {
                        return b.Op("=", b.Var(0, "season_nr"), b.Const("'1'::integer"));
                    }),
                    false);
    /* the same column name, but on the other relation */
    ExpectDifferent(TwoWithFilter([](Builder &b) {
                        return b.IsNull(b.Var(0, "note"));
                    }),
                    TwoWithFilter([](Builder &b) {
                        return b.IsNull(b.Var(1, "note"));
                    }),
                    false);
}

TEST(SubplanKeySensitivity, DifferentOperator) {
    auto op = [](const char *o) {
        return TwoWithFilter([o](Builder &b) {
            return b.Op(o, b.Var(0, "production_year"), b.Const("'2000'::integer"));
        });
    };
    const char *ops[] = {"=", "<>", "<", ">", "<=", ">="};
    for (const char *a : ops)
        for (const char *c : ops)
            if (std::string(a) < std::string(c))
                ExpectDifferent(op(a), op(c), false);
    /* LIKE vs NOT LIKE, IS NULL vs IS NOT NULL, NOT x vs x */
    ExpectDifferent(TwoWithFilter([](Builder &b) {
                        return b.Like(b.Var(0, "title"), b.Const("'A%'::text"));
                    }),
                    TwoWithFilter([](Builder &b) {
                        return b.NotLike(b.Var(0, "title"), b.Const("'A%'::text"));
                    }),
                    false);
    ExpectDifferent(TwoWithFilter([](Builder &b) { return b.IsNull(b.Var(0, "note")); }),
                    TwoWithFilter([](Builder &b) { return b.IsNotNull(b.Var(0, "note")); }),
                    false);
    ExpectDifferent(TwoWithFilter([](Builder &b) {
                        return b.Like(b.Var(0, "title"), b.Const("'A%'::text"));
                    }),
                    TwoWithFilter([](Builder &b) {
                        return b.Not(b.Like(b.Var(0, "title"), b.Const("'A%'::text")));
                    }),
                    false);
    /* AND vs OR */
    ExpectDifferent(TwoWithFilter([](Builder &b) {
                        return b.And({b.IsNull(b.Var(0, "a")), b.IsNull(b.Var(0, "b"))});
                    }),
                    TwoWithFilter([](Builder &b) {
                        return b.Or({b.IsNull(b.Var(0, "a")), b.IsNull(b.Var(0, "b"))});
                    }),
                    false);
}

TEST(SubplanKeySensitivity, LessThanVersusGreaterThan) {
    auto q = [](const char *o) {
        return Query{{kTitle}, [o](Builder &b) {
                         b.Where(b.Op(o, b.Var(0, "x"), b.Const("'5'::integer")));
                     }};
    };
    ExpectDifferent(q("<"), q(">"), false);
    ExpectDifferent(q("<="), q(">="), false);
    /* and with two columns: a.x < b.y vs a.x > b.y */
    auto j = [](const char *o) {
        return Query{{kTitle, kMovieLink}, [o](Builder &b) {
                         b.Where(b.Op(o, b.Var(0, "id"), b.Var(1, "movie_id")));
                     }};
    };
    ExpectDifferent(j("<"), j(">"), false);
}

TEST(SubplanKeySensitivity, OperatorWithoutCommutatorKeepsOperandOrder) {
    Query like{{kTitle}, [](Builder &b) {
                   b.Where(b.Like(b.Var(0, "name"), b.Const("'x%'::text")));
               }};
    Query swapped{{kTitle}, [](Builder &b) {
                      b.Where(b.Like(b.Const("'x%'::text"), b.Var(0, "name")));
                  }};
    ExpectDifferent(like, swapped, false);
    SubplanKey k = KeyOf(like);
    EXPECT_NE(k.text.find("C (t1.name ~~ 'x%'::text)\n"), std::string::npos) << k.text;
    EXPECT_NE(k.template_text.find("C (t1.name ~~ ?)\n"), std::string::npos) << k.template_text;
    EXPECT_NE(KeyOf(swapped).text.find("C ('x%'::text ~~ t1.name)\n"), std::string::npos);
    /* two Vars under an operator without commutator: also kept as written */
    Query j1{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                 b.Where(b.Like(b.Var(0, "title"), b.Var(1, "info")));
             }};
    Query j2{{kTitle, kMovieInfo}, [](Builder &b) {
                 b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                 b.Where(b.Like(b.Var(1, "info"), b.Var(0, "title")));
             }};
    ExpectDifferent(j1, j2, false);
    /* a non-set call keeps its argument order */
    Query f1{{kTitle}, [](Builder &b) {
                 b.Where(b.Call("f", {b.Var(0, "a"), b.Var(0, "b")}));
             }};
    Query f2{{kTitle}, [](Builder &b) {
                 b.Where(b.Call("f", {b.Var(0, "b"), b.Var(0, "a")}));
             }};
    ExpectDifferent(f1, f2, false);
}

TEST(SubplanKeySensitivity, DifferentTable) {
    Query a = ThreeTables();
    Query b = ThreeTables();
    b.tables[0] = "public.aka_title";
    ExpectDifferent(a, b, false);
    Query c = ThreeTables();
    c.tables[0] = "other.title"; /* another schema */
    ExpectDifferent(a, c, false);
    Query d = ThreeTables();
    d.tables[2] = "public.\"Info_Type\"";
    ExpectDifferent(a, d, false);
}

TEST(SubplanKeySensitivity, DifferentJoinPredicate) {
    auto q = [](const char *col) {
        return Query{{kTitle, kMovieLink}, [col](Builder &b) {
                         b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, col)));
                     }};
    };
    ExpectDifferent(q("movie_id"), q("linked_movie_id"), false);
    /* join vs the same two relations unjoined (cross product) */
    Query cross{{kTitle, kMovieLink}, nullptr};
    ExpectDifferent(q("movie_id"), cross, false);
    /* equi-join as an equivalence class vs as an operator */
    Query ec{{kTitle, kMovieLink}, [](Builder &b) {
                 b.Where(b.Eq({b.Var(0, "id"), b.Var(1, "movie_id")}));
             }};
    ExpectDifferent(q("movie_id"), ec, false);
    /* EQ(a, b, c) vs EQ(a, b) + EQ(b, c)? different descriptions, different keys */
    Query ec3{{kTitle, kMovieLink, kMovieInfo}, [](Builder &b) {
                  b.Where(b.Eq({b.Var(0, "id"), b.Var(1, "movie_id"), b.Var(2, "movie_id")}));
              }};
    Query ec2{{kTitle, kMovieLink, kMovieInfo}, [](Builder &b) {
                  b.Where(b.Eq({b.Var(0, "id"), b.Var(1, "movie_id")}));
                  b.Where(b.Eq({b.Var(0, "id"), b.Var(2, "movie_id")}));
              }};
    ExpectDifferent(ec3, ec2, false);
}

TEST(SubplanKeySensitivity, ExtraClauseOrRelation) {
    Query a = ThreeTables();
    Query b{a.tables, [a](Builder &bb) {
                a.where(bb);
                bb.Where(bb.IsNotNull(bb.Var(0, "episode_nr")));
            }};
    ExpectDifferent(a, b, false);
    Query c{{kTitle, kMovieInfo, kInfoType, kKeyword}, a.where};
    ExpectDifferent(a, c, false);
    /* one clause less */
    Query d{a.tables, [](Builder &bb) {
                bb.Where(bb.Op("=", bb.Var(1, "movie_id"), bb.Var(0, "id")));
                bb.Where(bb.Op("=", bb.Var(1, "info_type_id"), bb.Var(2, "id")));
            }};
    ExpectDifferent(a, d, false);
}

TEST(SubplanKeySensitivity, WhichRelationAFilterIsOn) {
    /* the filter moves from title to movie_info (same column name) */
    Query a{{kTitle, kMovieInfo}, [](Builder &b) {
                b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                b.Where(b.Op("=", b.Var(0, "note"), b.Const("'x'::text")));
            }};
    Query c{{kTitle, kMovieInfo}, [](Builder &b) {
                b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                b.Where(b.Op("=", b.Var(1, "note"), b.Const("'x'::text")));
            }};
    ExpectDifferent(a, c, false);
}

/* ======================================================================== */
/* 3. Self-joins                                                             */
/* ======================================================================== */

/* t1.kind = k1, t2.kind = k2, t1.id = t2.parent */
Query ParentChild(const char *k1, const char *k2) {
    return Query{{kTitle, kTitle}, [k1, k2](Builder &b) {
                     b.Where(b.Op("=", b.Var(0, "kind_id"), b.Const(k1)));
                     b.Where(b.Op("=", b.Var(1, "kind_id"), b.Const(k2)));
                     b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "episode_of_id")));
                 }};
}

TEST(SubplanKeySelfJoin, TwoInstancesAnySpelling) {
    ExpectInvariant(ParentChild("'1'::integer", "'2'::integer"), 100);
    ExpectInvariant(ParentChild("'1'::integer", "'1'::integer"), 100);
}

TEST(SubplanKeySelfJoin, SwappedFiltersAreADifferentQuery) {
    /* parent kind 1 / child kind 2  vs  parent kind 2 / child kind 1 */
    ExpectDifferent(ParentChild("'1'::integer", "'2'::integer"),
                    ParentChild("'2'::integer", "'1'::integer"), true);
}

TEST(SubplanKeySelfJoin, SwappingFiltersOfASymmetricJoinIsTheSameQuery) {
    /* t1.id = t2.id: which instance is called t1 does not matter */
    auto q = [](const char *k1, const char *k2) {
        return Query{{kTitle, kTitle}, [k1, k2](Builder &b) {
                         b.Where(b.Op("=", b.Var(0, "kind_id"), b.Const(k1)));
                         b.Where(b.Op("=", b.Var(1, "kind_id"), b.Const(k2)));
                         b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "id")));
                     }};
    };
    ExpectSame(q("'1'::integer", "'2'::integer"), q("'2'::integer", "'1'::integer"));
    ExpectInvariant(q("'1'::integer", "'2'::integer"));
}

TEST(SubplanKeySelfJoin, ThreeInstancesDistinguishedByFilters) {
    /* t0 -> t1 -> t2 (id = episode_of_id), kinds 1, 2, 3 and permutations of them */
    auto chain = [](std::vector<std::string> kinds) {
        return Query{{kTitle, kTitle, kTitle}, [kinds](Builder &b) {
                         for (int i = 0; i < 3; i++)
                             b.Where(b.Op("=", b.Var(i, "kind_id"), b.Const(kinds[static_cast<size_t>(i)])));
                         b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "episode_of_id")));
                         b.Where(b.Op("=", b.Var(1, "id"), b.Var(2, "episode_of_id")));
                     }};
    };
    std::vector<std::string> kinds = {"'1'::integer", "'2'::integer", "'3'::integer"};
    std::set<uint64_t> keys;
    std::set<uint64_t> templates;
    do {
        Query q = chain(kinds);
        ExpectInvariant(q, 20);
        SubplanKey k = KeyOf(q);
        keys.insert(k.key);
        templates.insert(k.template_key);
    } while (std::next_permutation(kinds.begin(), kinds.end()));
    /* a directed chain has no symmetry: 6 assignments, 6 queries, one template */
    EXPECT_EQ(keys.size(), 6u);
    EXPECT_EQ(templates.size(), 1u);
}

TEST(SubplanKeySelfJoin, SymmetricChainOfThreeAllPermutations) {
    /* a - b - c of one table, identical filters, symmetric joins */
    Query q{{kTitle, kTitle, kTitle}, [](Builder &b) {
                for (int i = 0; i < 3; i++)
                    b.Where(b.Op("=", b.Var(i, "kind_id"), b.Const("'1'::integer")));
                b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "id")));
                b.Where(b.Op("=", b.Var(1, "id"), b.Var(2, "id")));
            }};
    SubplanKey base = KeyOf(q);
    std::vector<int> order = {0, 1, 2};
    int n = 0;
    do {
        for (const std::vector<int> &ids : {std::vector<int>{1, 2, 3}, std::vector<int>{3, 2, 1},
                                            std::vector<int>{2, 3, 1}, std::vector<int>{9, 4, 6}}) {
            Spelling s = Plain(3);
            s.order = order;
            s.ids = ids;
            SameKey(base, KeyOf(q, s), Describe(s));
            s.swap = true;
            s.shuffle = 3;
            SameKey(base, KeyOf(q, s), Describe(s));
        }
        n++;
    } while (std::next_permutation(order.begin(), order.end()));
    EXPECT_EQ(n, 6);
    /* the middle instance is t-named the same way whatever the spelling: the
     * text has three R lines of title and both joins */
    EXPECT_EQ(CountLines(base.text, "R "), 3u);
    EXPECT_EQ(CountLines(base.text, "C "), 5u); /* three filters, two joins */
}

TEST(SubplanKeySelfJoin, SymmetricChainAsEquivalenceClass) {
    /* t1.id = t2.id = t3.id as one EQ over three instances */
    Query q{{kTitle, kTitle, kTitle}, [](Builder &b) {
                for (int i = 0; i < 3; i++)
                    b.Where(b.Op(">", b.Var(i, "production_year"), b.Const("'2000'::integer")));
                b.Where(b.Eq({b.Var(0, "id"), b.Var(1, "id"), b.Var(2, "id")}));
            }};
    ExpectInvariant(q, 50);
}

TEST(SubplanKeySelfJoin, FourCycleOfOneTable) {
    /* directed cycle a.id = b.parent, b.id = c.parent, c.id = d.parent, d.id = a.parent */
    Query directed{{kTitle, kTitle, kTitle, kTitle}, [](Builder &b) {
                       for (int i = 0; i < 4; i++)
                           b.Where(b.Op("=", b.Var(i, "id"), b.Var((i + 1) % 4, "episode_of_id")));
                   }};
    ExpectInvariant(directed, 100, 4);
    /* undirected cycle with identical filters */
    Query undirected{{kTitle, kTitle, kTitle, kTitle}, [](Builder &b) {
                         for (int i = 0; i < 4; i++) {
                             b.Where(b.Op("=", b.Var(i, "id"), b.Var((i + 1) % 4, "id")));
                             b.Where(b.Op("=", b.Var(i, "kind_id"), b.Const("'1'::integer")));
                         }
                     }};
    ExpectInvariant(undirected, 100, 4);
    /* the directed and the undirected cycle are different queries */
    ExpectDifferent(directed, undirected, false);
    /* a cycle with one different filter */
    Query marked{{kTitle, kTitle, kTitle, kTitle}, [](Builder &b) {
                     for (int i = 0; i < 4; i++)
                         b.Where(b.Op("=", b.Var(i, "id"), b.Var((i + 1) % 4, "id")));
                     b.Where(b.Op("=", b.Var(2, "kind_id"), b.Const("'1'::integer")));
                 }};
    ExpectInvariant(marked, 100, 4);
}

TEST(SubplanKeySelfJoin, FourCycleVersusChainOfFour) {
    auto q = [](bool cycle) {
        return Query{{kTitle, kTitle, kTitle, kTitle}, [cycle](Builder &b) {
                         for (int i = 0; i < (cycle ? 4 : 3); i++)
                             b.Where(b.Op("=", b.Var(i, "id"), b.Var((i + 1) % 4, "id")));
                     }};
    };
    ExpectDifferent(q(true), q(false), false);
}

TEST(SubplanKeySelfJoin, FilterPositionInAChainMatters) {
    /* chain a - b - c of one table (symmetric joins); the filter on an end
     * instance vs on the middle instance */
    auto q = [](int filtered) {
        return Query{{kTitle, kTitle, kTitle}, [filtered](Builder &b) {
                         b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "id")));
                         b.Where(b.Op("=", b.Var(1, "id"), b.Var(2, "id")));
                         b.Where(b.Op("=", b.Var(filtered, "kind_id"), b.Const("'1'::integer")));
                     }};
    };
    ExpectSame(q(0), q(2));       /* either end: a mirror image */
    ExpectDifferent(q(0), q(1), false);
    ExpectInvariant(q(0));
    ExpectInvariant(q(1));
}

TEST(SubplanKeySelfJoin, JobStyleTwoLinkedMovies) {
    /* JOB 33-like: ml links t1 and t2, each with its own kind and info */
    auto q = [](const char *k1, const char *k2) {
        return Query{{kMovieLink, kTitle, kTitle, kKindType, kKindType, kLinkType},
                     [k1, k2](Builder &b) {
                         b.Where(b.Op("=", b.Var(0, "movie_id"), b.Var(1, "id")));
                         b.Where(b.Op("=", b.Var(0, "linked_movie_id"), b.Var(2, "id")));
                         b.Where(b.Op("=", b.Var(1, "kind_id"), b.Var(3, "id")));
                         b.Where(b.Op("=", b.Var(2, "kind_id"), b.Var(4, "id")));
                         b.Where(b.Op("=", b.Var(0, "link_type_id"), b.Var(5, "id")));
                         b.Where(b.In(b.Var(3, "kind"), k1));
                         b.Where(b.In(b.Var(4, "kind"), k2));
                         b.Where(b.Like(b.Var(5, "link"), b.Const("'%follow%'::text")));
                     }};
    };
    const char *tv = "'{\"tv series\"}'::text[]";
    const char *ep = "'{episode}'::text[]";
    ExpectInvariant(q(tv, ep), 80, 0);
    ExpectInvariant(q(tv, tv), 80, 0);
    ExpectDifferent(q(tv, ep), q(ep, tv), true); /* direction of the link matters */
    ExpectDifferent(q(tv, ep), q(tv, tv), true);
}

TEST(SubplanKeySelfJoin, StarWithIdenticalLeaves) {
    /* one title, four movie_info instances with the same filter: all symmetric */
    Query q{{kMovieInfo, kTitle, kMovieInfo, kMovieInfo, kMovieInfo}, [](Builder &b) {
                for (int i : {0, 2, 3, 4}) {
                    b.Where(b.Op("=", b.Var(1, "id"), b.Var(i, "movie_id")));
                    b.Where(b.Op("=", b.Var(i, "info_type_id"), b.Const("'3'::integer")));
                }
            }};
    ExpectInvariant(q, 100);
}

TEST(SubplanKeySelfJoin, CrossProductOfIdenticalInstances) {
    /* no clauses at all: n interchangeable instances */
    for (size_t n = 1; n <= 6; n++) {
        Query q{std::vector<std::string>(n, kTitle), nullptr};
        ExpectInvariant(q, 20, 4);
        EXPECT_EQ(CountLines(KeyOf(q).text, "R t"), n);
    }
}

TEST(SubplanKeySelfJoin, IdenticalBranchesOfTwoRelations) {
    /*
     * title with four identical branches movie_info -> info_type (same
     * filters): swapping two branches needs swapping two pairs of relations
     * at once, which no single swap of two relations does.
     */
    Query q{{kTitle, kMovieInfo, kInfoType, kMovieInfo, kInfoType, kMovieInfo, kInfoType,
             kMovieInfo, kInfoType},
            [](Builder &b) {
                for (int i = 0; i < 4; i++) {
                    int mi = 1 + 2 * i, it = 2 + 2 * i;
                    b.Where(b.Op("=", b.Var(0, "id"), b.Var(mi, "movie_id")));
                    b.Where(b.Op("=", b.Var(mi, "info_type_id"), b.Var(it, "id")));
                    b.Where(b.Op("=", b.Var(it, "info"), b.Const("'budget'::text")));
                }
            }};
    ExpectInvariant(q, 100, 0);
    /* one branch with another filter: still one key per query, and a different one */
    Query r{q.tables, [](Builder &b) {
                for (int i = 0; i < 4; i++) {
                    int mi = 1 + 2 * i, it = 2 + 2 * i;
                    b.Where(b.Op("=", b.Var(0, "id"), b.Var(mi, "movie_id")));
                    b.Where(b.Op("=", b.Var(mi, "info_type_id"), b.Var(it, "id")));
                    b.Where(b.Op("=", b.Var(it, "info"),
                                 b.Const(i == 2 ? "'votes'::text" : "'budget'::text")));
                }
            }};
    ExpectInvariant(r, 100, 0);
    ExpectDifferent(q, r, true);
}

TEST(SubplanKeySelfJoin, IdenticalDisjointPairs) {
    /* four separate title self-joins (t.id = t'.episode_of_id), no link between them */
    Query q{std::vector<std::string>(8, kTitle), [](Builder &b) {
                for (int i = 0; i < 4; i++)
                    b.Where(b.Op("=", b.Var(2 * i, "id"), b.Var(2 * i + 1, "episode_of_id")));
            }};
    ExpectInvariant(q, 100, 0);
}

TEST(SubplanKeyTemplate, ThreeInstancesOrderedOnlyByConstants) {
    /* three title instances in one equivalence class, each with its own year
     * bound: the text orders them by constant, the template cannot */
    auto q = [](const char *a, const char *b2, const char *c) {
        return Query{{kTitle, kTitle, kTitle}, [=](Builder &b) {
                         b.Where(b.Eq({b.Var(0, "id"), b.Var(1, "id"), b.Var(2, "id")}));
                         b.Where(b.Op(">", b.Var(0, "production_year"), b.Const(a)));
                         b.Where(b.Op(">", b.Var(1, "production_year"), b.Const(b2)));
                         b.Where(b.Op(">", b.Var(2, "production_year"), b.Const(c)));
                     }};
    };
    Query x = q("'1990'::integer", "'2000'::integer", "'2010'::integer");
    Query y = q("'2010'::integer", "'1990'::integer", "'2000'::integer"); /* relabelled x */
    Query z = q("'1980'::integer", "'2000'::integer", "'2010'::integer");
    ExpectSame(x, y);
    ExpectDifferent(x, z, true);
    ExpectInvariant(x, 50);
    ExpectInvariant(z, 50);
}

/*
 * Colour refinement alone cannot tell apart the relations of a regular join
 * graph (every instance "looks the same" locally), even when they are not
 * interchangeable.  Ties must then be broken in a way that does not depend on
 * the listing order.
 */
TEST(SubplanKeySelfJoin, TriangleAndSquareOfOneTable) {
    /* 7 instances of title: a directed 3-cycle and a directed 4-cycle */
    Query q{std::vector<std::string>(7, kTitle), [](Builder &b) {
                for (int i = 0; i < 3; i++)
                    b.Where(b.Op("=", b.Var(i, "id"), b.Var((i + 1) % 3, "episode_of_id")));
                for (int i = 0; i < 4; i++)
                    b.Where(b.Op("=", b.Var(3 + i, "id"), b.Var(3 + (i + 1) % 4, "episode_of_id")));
            }};
    ExpectInvariant(q, 200, 0);
}

TEST(SubplanKeySelfJoin, CubicJoinGraphWithoutFullSymmetry) {
    /*
     * 8 instances of title, each joined to exactly three others (two copies of
     * K4 minus an edge, bridged): every instance has the same local picture,
     * yet instances in a triangle pair are not interchangeable with the
     * others.
     */
    Query q{std::vector<std::string>(8, kTitle), [](Builder &b) {
                const int edges[][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, /* K4 - {2,3} */
                                        {4, 5}, {4, 6}, {4, 7}, {5, 6}, {5, 7}, /* K4 - {6,7} */
                                        {2, 6}, {3, 7}};
                for (auto &e : edges)
                    b.Where(b.Op("=", b.Var(e[0], "id"), b.Var(e[1], "id")));
            }};
    ExpectInvariant(q, 200, 0);
}

/* ======================================================================== */
/* 4. Templates                                                              */
/* ======================================================================== */

std::string ReplaceAll(std::string s, const std::string &from, const std::string &to) {
    for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
        s.replace(pos, from.size(), to);
    return s;
}

TEST(SubplanKeyTemplate, ConstantsBecomeQuestionMarks) {
    SubplanKey k = KeyOf(ThreeTables());
    std::string expect = k.text;
    for (const char *c : {"'rating'::text", "'2000'::integer", "'{1,2}'::integer[]", "'%USA%'::text"}) {
        EXPECT_NE(expect.find(c), std::string::npos) << c;
        expect = ReplaceAll(expect, c, "?");
    }
    EXPECT_EQ(k.template_text, expect);
    EXPECT_EQ(k.template_text.find('\''), std::string::npos) << k.template_text;
    EXPECT_EQ(k.template_key, pilot::proto::stable_hash64(k.template_text.data(), k.template_text.size()));
    EXPECT_EQ(k.key, pilot::proto::stable_hash64(k.text.data(), k.text.size()));
    EXPECT_NE(k.key, k.template_key);
}

TEST(SubplanKeyTemplate, NoConstantsTemplateEqualsText) {
    Query q{{kTitle, kMovieInfo}, [](Builder &b) {
                b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                b.Where(b.IsNull(b.Var(1, "note")));
            }};
    SubplanKey k = KeyOf(q);
    EXPECT_EQ(k.text, k.template_text);
    EXPECT_EQ(k.key, k.template_key);
}

TEST(SubplanKeyTemplate, OnlyConstantsDifferSharesTemplate) {
    auto q = [](const char *year, const char *in, const char *like) {
        return Query{{kTitle, kMovieInfo}, [=](Builder &b) {
                         b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "movie_id")));
                         b.Where(b.Op(">", b.Var(0, "production_year"), b.Const(year)));
                         b.Where(b.In(b.Var(0, "kind_id"), in));
                         b.Where(b.Like(b.Var(1, "info"), b.Const(like)));
                     }};
    };
    Query a = q("'2000'::integer", "'{1,2}'::integer[]", "'%USA%'::text");
    Query b = q("'1990'::integer", "'{1,2,3,4,5,6,7}'::integer[]", "'Germany'::text");
    Query c = q("'2010'::integer", "'{7}'::integer[]", "'%'::text");
    ExpectDifferent(a, b, true);
    ExpectDifferent(a, c, true);
    ExpectDifferent(b, c, true);
    /* IN-list length alone */
    Query d = q("'2000'::integer", "'{1,2,3}'::integer[]", "'%USA%'::text");
    ExpectDifferent(a, d, true);
    EXPECT_NE(KeyOf(a).template_text.find("= ANY(t"), std::string::npos) << KeyOf(a).template_text;
}

TEST(SubplanKeyTemplate, ConstantOnEitherSideOfAnOperator) {
    /* 5 < x and x > 7 share a template; x < 5 does not */
    Query a{{kTitle}, [](Builder &b) { b.Where(b.Op("<", b.Const("'5'::integer"), b.Var(0, "x"))); }};
    Query c{{kTitle}, [](Builder &b) { b.Where(b.Op(">", b.Var(0, "x"), b.Const("'7'::integer"))); }};
    Query d{{kTitle}, [](Builder &b) { b.Where(b.Op("<", b.Var(0, "x"), b.Const("'5'::integer"))); }};
    ExpectDifferent(a, c, true);
    ExpectDifferent(a, d, false);
}

TEST(SubplanKeyTemplate, SelfJoinOrderedByConstantsHasOneTemplate) {
    /*
     * Two title instances joined symmetrically, each with a kind and a title
     * filter.  In the text, the constants decide which instance is t1; in the
     * template the two instances are indistinguishable.  Pairing the filters
     * differently is a different query, with the same template.
     */
    auto q = [](const char *k1, const char *n1, const char *k2, const char *n2) {
        return Query{{kTitle, kTitle}, [=](Builder &b) {
                         b.Where(b.Op("=", b.Var(0, "id"), b.Var(1, "id")));
                         b.Where(b.Op("=", b.Var(0, "kind_id"), b.Const(k1)));
                         b.Where(b.Like(b.Var(0, "title"), b.Const(n1)));
                         b.Where(b.Op("=", b.Var(1, "kind_id"), b.Const(k2)));
                         b.Where(b.Like(b.Var(1, "title"), b.Const(n2)));
                     }};
    };
    Query a = q("'1'::integer", "'A%'::text", "'2'::integer", "'B%'::text");
    Query b = q("'1'::integer", "'B%'::text", "'2'::integer", "'A%'::text");
    Query c = q("'2'::integer", "'B%'::text", "'1'::integer", "'A%'::text"); /* == a, relabelled */
    ExpectDifferent(a, b, true);
    ExpectSame(a, c);
    ExpectInvariant(a);
    ExpectInvariant(b);
    /* the directed version (parent/child): both assignments, one template */
    SubplanKey p1 = KeyOf(ParentChild("'1'::integer", "'2'::integer"));
    SubplanKey p2 = KeyOf(ParentChild("'2'::integer", "'1'::integer"));
    SubplanKey p3 = KeyOf(ParentChild("'9'::integer", "'0'::integer"));
    EXPECT_EQ(p1.template_key, p2.template_key);
    EXPECT_EQ(p1.template_key, p3.template_key);
    EXPECT_EQ(p1.template_text, p3.template_text);
}

TEST(SubplanKeyTemplate, TemplateIndependentOfWhichSideConstantsSortTo) {
    /*
     * A star: title t joined to movie_info a and b (symmetric), a.info = X,
     * b.info = Y.  Whatever X and Y are (and so whichever instance the text
     * calls t1), the template is the same.
     */
    auto q = [](const char *x, const char *y) {
        return Query{{kTitle, kMovieInfo, kMovieInfo}, [=](Builder &b) {
                         b.Where(b.Eq({b.Var(0, "id"), b.Var(1, "movie_id"), b.Var(2, "movie_id")}));
                         b.Where(b.Op("=", b.Var(1, "info"), b.Const(x)));
                         b.Where(b.Op("=", b.Var(2, "info"), b.Const(y)));
                     }};
    };
    std::vector<const char *> lits = {"'a'::text", "'b'::text", "'zzz'::text", "'A'::text",
                                      "'0'::text", "NULL::text"};
    SubplanKey first = KeyOf(q(lits[0], lits[1]));
    for (const char *x : lits)
        for (const char *y : lits) {
            Query qq = q(x, y);
            SubplanKey k = KeyOf(qq);
            EXPECT_EQ(k.template_text, first.template_text) << x << " " << y;
            EXPECT_EQ(k.template_key, first.template_key);
            ExpectSame(qq, q(y, x)); /* a symmetric join: swapping is relabelling */
        }
}

/* ======================================================================== */
/* 5. Errors                                                                 */
/* ======================================================================== */

void ExpectError(const KeyDesc &d, const char *what) {
    SubplanKey k;
    k.key = 42;
    k.template_key = 43;
    k.text = "stale";
    k.template_text = "stale";
    std::string err;
    bool ok = true;
    EXPECT_NO_THROW(ok = pilot::subplan_key_compute(d, &k, &err)) << what;
    EXPECT_FALSE(ok) << what;
    EXPECT_FALSE(err.empty()) << what;
    EXPECT_EQ(k.key, 0u) << what;
    EXPECT_EQ(k.template_key, 0u) << what;
    EXPECT_TRUE(k.text.empty()) << what;
    EXPECT_TRUE(k.template_text.empty()) << what;
    /* no error string wanted: still false, no crash */
    SubplanKey k2;
    EXPECT_FALSE(pilot::subplan_key_compute(d, &k2, nullptr)) << what;
}

TEST(SubplanKeyErrors, VarOutsideTheSet) {
    Builder b;
    b.sp = Plain(2);
    b.AddRel(1, kTitle);
    b.AddRel(2, kMovieInfo);
    b.Where(b.Op("=", b.RawVar(1, "id"), b.RawVar(3, "movie_id")));
    ExpectError(b.Desc(), "join to rel 3");
    /* deep inside an expression */
    Builder c;
    c.sp = Plain(2);
    c.AddRel(1, kTitle);
    c.AddRel(2, kMovieInfo);
    c.Where(c.Op("=", c.RawVar(1, "id"), c.RawVar(2, "movie_id")));
    c.Where(c.Or({c.IsNull(c.RawVar(1, "a")), c.Not(c.And({c.IsNull(c.RawVar(2, "b")),
                                                          c.IsNull(c.RawVar(0, "c"))}))}));
    ExpectError(c.Desc(), "rel 0 deep inside");
    /* in an equivalence class */
    Builder e;
    e.sp = Plain(1);
    e.AddRel(5, kTitle);
    e.Where(e.Eq({e.RawVar(5, "id"), e.RawVar(6, "id")}));
    ExpectError(e.Desc(), "EQ member outside");
}

TEST(SubplanKeyErrors, EmptySet) {
    KeyDesc d{};
    ExpectError(d, "all zero");
    Builder b;
    b.sp = Plain(0);
    ExpectError(b.Desc(), "no relations");
    /* no relations but a constant clause */
    Builder c;
    c.sp = Plain(0);
    c.Where(c.Const("'t'::boolean"));
    ExpectError(c.Desc(), "no relations, a clause");
    int id = 1;
    const char *t = kTitle;
    KeyDesc neg{};
    neg.nrels = -1;
    neg.rel_ids = &id;
    neg.tables = &t;
    ExpectError(neg, "negative nrels");
}

TEST(SubplanKeyErrors, DuplicateRelationIds) {
    Builder b;
    b.sp = Plain(2);
    b.AddRel(4, kTitle);
    b.AddRel(4, kMovieInfo);
    b.Where(b.IsNull(b.RawVar(4, "note")));
    ExpectError(b.Desc(), "id 4 twice");
    Builder c;
    c.sp = Plain(3);
    c.AddRel(1, kTitle);
    c.AddRel(2, kTitle);
    c.AddRel(1, kTitle);
    ExpectError(c.Desc(), "same table, id 1 twice");
}

TEST(SubplanKeyErrors, NullPointers) {
    const KeyNode *null_node = nullptr;
    /* null clause */
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        b.Where(b.IsNull(b.RawVar(1, "note")));
        b.Where(null_node);
        ExpectError(b.Desc(), "null clause");
    }
    /* null argument, nested */
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        b.Where(b.Or({b.IsNull(b.RawVar(1, "note")), b.Not(null_node)}));
        ExpectError(b.Desc(), "null argument");
    }
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        b.Where(b.Op("=", null_node, b.Const("'1'::integer")));
        ExpectError(b.Desc(), "null operand");
    }
    /* nargs > 0 but no argument array */
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        KeyNode bad{};
        bad.kind = pilot::KN_CALL;
        bad.text = "NOT";
        bad.nargs = 1;
        bad.args = nullptr;
        b.Where(b.Mutable(bad));
        ExpectError(b.Desc(), "args == nullptr");
    }
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        KeyNode bad{};
        bad.kind = pilot::KN_CALL;
        bad.flags = pilot::KF_SORT_ARGS;
        bad.text = "AND";
        bad.nargs = 3;
        bad.args = nullptr;
        b.Where(b.Not(b.Mutable(bad)));
        ExpectError(b.Desc(), "nested args == nullptr");
    }
    /* negative nargs */
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        KeyNode bad{};
        bad.kind = pilot::KN_CALL;
        bad.text = "f";
        bad.nargs = -2;
        b.Where(b.Mutable(bad));
        ExpectError(b.Desc(), "nargs < 0");
    }
    /* unknown node kind */
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        KeyNode bad{};
        bad.kind = 99;
        bad.text = "?";
        b.Where(b.IsNull(b.Mutable(bad)));
        ExpectError(b.Desc(), "kind 99");
    }
    /* null table name, null tables array, null ids, null clause array */
    {
        Builder b;
        b.sp = Plain(2);
        b.AddRel(1, kTitle);
        b.AddRel(2, kTitle);
        b.table_ptrs()[1] = nullptr;
        ExpectError(b.Desc(), "null table name");
    }
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        KeyDesc d = b.Desc();
        d.tables = nullptr;
        ExpectError(d, "null tables");
        d = b.Desc();
        d.rel_ids = nullptr;
        ExpectError(d, "null rel_ids");
        d = b.Desc();
        d.nclauses = 2;
        d.clauses = nullptr;
        ExpectError(d, "null clause array");
        d = b.Desc();
        d.nclauses = -1;
        ExpectError(d, "negative nclauses");
    }
    /* out == nullptr: false, no crash */
    {
        Builder b;
        b.sp = Plain(1);
        b.AddRel(1, kTitle);
        std::string err;
        EXPECT_FALSE(pilot::subplan_key_compute(b.Desc(), nullptr, &err));
    }
}

TEST(SubplanKeyErrors, RecoversAfterAnError) {
    /* a failure leaves nothing behind: the next call works as usual */
    Builder bad;
    bad.sp = Plain(1);
    bad.AddRel(1, kTitle);
    bad.Where(bad.RawVar(2, "x"));
    SubplanKey k;
    std::string err;
    EXPECT_FALSE(pilot::subplan_key_compute(bad.Desc(), &k, &err));
    SubplanKey good = KeyOf(ThreeTables());
    SubplanKey again = KeyOf(ThreeTables());
    SameKey(good, again, "after an error");
}

TEST(SubplanKeyErrors, OddButValidDescriptions) {
    /* a call without arguments, a clause without any Var, a whole-row Var */
    Query q{{kTitle}, [](Builder &b) {
                b.Where(b.Op("<", b.Var(0, "production_year"),
                             b.Call("date_part", {b.Const("'year'::text"), b.Call("now", {})})));
                b.Where(b.Const("'t'::boolean"));
                b.Where(b.IsNotNull(b.Var(0, "*")));
            }};
    Result r = Compute(q);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_NE(r.key.text.find("now()"), std::string::npos) << r.key.text;
    EXPECT_NE(r.key.text.find("t1.*"), std::string::npos) << r.key.text;
    ExpectInvariant(q, 10);
    /* null texts do not crash (whatever they render as) */
    Builder b;
    b.sp = Plain(1);
    b.AddRel(1, kTitle);
    KeyNode v{};
    v.kind = pilot::KN_VAR;
    v.rel = 1;
    KeyNode c{};
    c.kind = pilot::KN_CONST;
    KeyNode f{};
    f.kind = pilot::KN_CALL;
    f.flags = pilot::KF_INFIX;
    f.nargs = 0;
    b.Where(b.Raw(pilot::KN_CALL, pilot::KF_INFIX, nullptr, nullptr, {b.Mutable(v), b.Mutable(c)}));
    b.Where(b.Mutable(f));
    SubplanKey k;
    std::string err;
    EXPECT_NO_THROW(pilot::subplan_key_compute(b.Desc(), &k, &err));
}

/* ======================================================================== */
/* 6. Stability (golden values)                                              */
/* ======================================================================== */

/*
 * GOLDEN VALUES.  These pin the canonical text and its 64-bit hash.  Every key
 * stored anywhere (estimates, feedback, memo, trained models) was computed this
 * way: changing the canonical form or stable_hash64 invalidates ALL of them.
 * If this test fails, the change must be deliberate — bump the version line
 * ("pgpk1") and update these values together, knowingly.
 */
TEST(SubplanKeyGolden, ThreeTableExample) {
    const std::string want_text =
        "pgpk1\n"
        "R t1 public.info_type\n"
        "R t2 public.movie_info\n"
        "R t3 public.title\n"
        "C ('2000'::integer < t3.production_year)\n"
        "C ('rating'::text = t1.info)\n" /* "=" is its own commutator: operands sorted */
        "C (t1.id = t2.info_type_id)\n"
        "C (t2.movie_id = t3.id)\n"
        "C = ANY(t3.kind_id, '{1,2}'::integer[])\n"
        "C OR((t2.info ~~ '%USA%'::text), IS NULL(t2.note))\n";
    const std::string want_template =
        "pgpk1\n"
        "R t1 public.info_type\n"
        "R t2 public.movie_info\n"
        "R t3 public.title\n"
        "C (? < t3.production_year)\n"
        "C (? = t1.info)\n"
        "C (t1.id = t2.info_type_id)\n"
        "C (t2.movie_id = t3.id)\n"
        "C = ANY(t3.kind_id, ?)\n"
        "C OR((t2.info ~~ ?), IS NULL(t2.note))\n";
    const uint64_t want_key = 0x954c9cdd799c8753ULL;
    const uint64_t want_template_key = 0xf0ceb1911609aa56ULL;
    SubplanKey k = KeyOf(ThreeTables());
    EXPECT_EQ(k.text, want_text);
    EXPECT_EQ(k.template_text, want_template);
    EXPECT_EQ(k.key, want_key) << std::hex << "0x" << k.key;
    EXPECT_EQ(k.template_key, want_template_key) << std::hex << "0x" << k.template_key;
    /* the hash is stable_hash64 of the text, and pinned on its own too */
    EXPECT_EQ(k.key, pilot::proto::stable_hash64(want_text.data(), want_text.size()));
    EXPECT_EQ(k.template_key,
              pilot::proto::stable_hash64(want_template.data(), want_template.size()));
    EXPECT_EQ(pilot::proto::stable_hash64("pgpk1\n", 6), 0xc7b531c682c2f50fULL);
    /* any spelling gives the golden value */
    std::mt19937 rng(2024);
    for (int i = 0; i < 20; i++)
        EXPECT_EQ(KeyOf(ThreeTables(), RandomSpelling(3, rng, true)).key, want_key);
}

/* ======================================================================== */
/* 7. A JOB-sized query                                                      */
/* ======================================================================== */

/*
 * JOB 29-like: 17 relations, two instances each of info_type and
 * comp_cast_type, equivalence classes over movie and person ids, and 30+
 * clauses (filters, joins, an OR, an IN list, LIKEs).
 */
Query JobLike(bool swap_cct_filters = false) {
    enum { an, cc, cct1, cct2, chn, ci, cn, it, it3, k, mc, mi, mk, n, pi, rt, t };
    std::vector<std::string> tables(17);
    tables[an] = kAkaName;
    tables[cc] = kCompleteCast;
    tables[cct1] = kCompCastType;
    tables[cct2] = kCompCastType;
    tables[chn] = kCharName;
    tables[ci] = kCastInfo;
    tables[cn] = kCompanyName;
    tables[it] = kInfoType;
    tables[it3] = kInfoType;
    tables[k] = kKeyword;
    tables[mc] = kMovieCompanies;
    tables[mi] = kMovieInfo;
    tables[mk] = kMovieKeyword;
    tables[n] = kName;
    tables[pi] = kPersonInfo;
    tables[rt] = kRoleType;
    tables[t] = kTitle;
    return Query{tables, [swap_cct_filters](Builder &b) {
        auto V = [&b](int r, const char *c) { return b.Var(r, c); };
        auto C = [&b](const char *c) { return b.Const(c); };
        /* filters */
        b.Where(b.Op("=", V(swap_cct_filters ? cct2 : cct1, "kind"), C("'cast'::text")));
        b.Where(b.Like(V(swap_cct_filters ? cct1 : cct2, "kind"), C("'complete%'::text")));
        b.Where(b.Op("=", V(chn, "name"), C("'Queen'::text")));
        b.Where(b.In(V(ci, "note"), "'{(voice),\"(voice) (uncredited)\",\"(voice: English version)\"}'::text[]"));
        b.Where(b.Op("=", V(cn, "country_code"), C("'[us]'::text")));
        b.Where(b.Op("=", V(it, "info"), C("'release dates'::text")));
        b.Where(b.Op("=", V(it3, "info"), C("'trivia'::text")));
        b.Where(b.Op("=", V(k, "keyword"), C("'computer-animation'::text")));
        b.Where(b.IsNotNull(V(mi, "info")));
        b.Where(b.Or({b.Like(V(mi, "info"), C("'Japan:%200%'::text")),
                      b.Like(V(mi, "info"), C("'USA:%200%'::text"))}));
        b.Where(b.Op("=", V(n, "gender"), C("'f'::text")));
        b.Where(b.Like(V(n, "name"), C("'%An%'::text")));
        b.Where(b.Op("=", V(rt, "role"), C("'actress'::text")));
        b.Where(b.Op("=", V(t, "title"), C("'Shrek 2'::text")));
        b.Where(b.Op(">=", V(t, "production_year"), C("'2000'::integer")));
        b.Where(b.Op("<=", V(t, "production_year"), C("'2010'::integer")));
        b.Where(b.IsNotNull(V(pi, "note")));
        b.Where(b.Not(b.Like(V(mc, "note"), C("'%(TV)%'::text"))));
        /* joins: equivalence classes */
        b.Where(b.Eq({V(t, "id"), V(mi, "movie_id"), V(mc, "movie_id"), V(ci, "movie_id"),
                      V(mk, "movie_id"), V(cc, "movie_id")}));
        b.Where(b.Eq({V(n, "id"), V(ci, "person_id"), V(an, "person_id"), V(pi, "person_id")}));
        /* joins: one operator each */
        b.Where(b.Op("=", V(mc, "company_id"), V(cn, "id")));
        b.Where(b.Op("=", V(mi, "info_type_id"), V(it, "id")));
        b.Where(b.Op("=", V(ci, "person_role_id"), V(chn, "id")));
        b.Where(b.Op("=", V(rt, "id"), V(ci, "role_id")));
        b.Where(b.Op("=", V(mk, "keyword_id"), V(k, "id")));
        b.Where(b.Op("=", V(cct1, "id"), V(cc, "subject_id")));
        b.Where(b.Op("=", V(cc, "status_id"), V(cct2, "id")));
        b.Where(b.Op("=", V(pi, "info_type_id"), V(it3, "id")));
        /* a few more cross-relation predicates */
        b.Where(b.Op("<", V(an, "id"), V(n, "id")));
        b.Where(b.Op("<>", V(cct1, "id"), V(cct2, "id")));
        b.Where(b.Op(">", V(t, "production_year"), V(mc, "company_type_id")));
        b.Where(b.In(V(it, "id"), "'{1,2,3}'::integer[]"));
        b.Where(b.IsNull(V(an, "imdb_index")));
        b.Where(b.Op("=", b.Call("lower", {V(chn, "name")}), b.Call("lower", {V(n, "name")})));
    }};
}

TEST(SubplanKeyLarge, JobLikeSeventeenRelations) {
    Query q = JobLike();
    ASSERT_EQ(q.tables.size(), 17u);
    Builder probe;
    probe.sp = Plain(17);
    q.where(probe);
    ASSERT_GE(probe.clauses().size(), 30u);

    SubplanKey base = KeyOf(q);
    EXPECT_EQ(CountLines(base.text, "R t"), 17u);
    EXPECT_EQ(CountLines(base.text, "C "), probe.clauses().size());
    /* two random respellings with a fixed seed */
    std::mt19937 rng(20240617);
    SubplanKey p1 = KeyOf(q, RandomSpelling(17, rng, false));
    SubplanKey p2 = KeyOf(q, RandomSpelling(17, rng, true));
    SameKey(base, p1, "permutation 1");
    SameKey(base, p2, "permutation 2");
    /* and a few more */
    ExpectInvariant(q, 30, 0, 31337);
    /* swapping the filters of the two comp_cast_type instances (subject vs
     * status) is a different query; the operators differ (= vs ~~), so the
     * template differs too */
    Query swapped = JobLike(true);
    SubplanKey ks = KeyOf(swapped);
    EXPECT_NE(ks.key, base.key);
    EXPECT_NE(ks.template_key, base.template_key);
    ExpectInvariant(swapped, 10, 0, 4242);
}

TEST(SubplanKeyLarge, JobLikeWithoutOneClause) {
    /* dropping any one clause changes the key */
    Query q = JobLike();
    SubplanKey base = KeyOf(q);
    Builder probe;
    probe.sp = Plain(17);
    q.where(probe);
    const size_t nc = probe.clauses().size();
    std::set<uint64_t> seen = {base.key};
    for (size_t drop = 0; drop < nc; drop++) {
        Query d{q.tables, [q, drop](Builder &b) {
                    q.where(b);
                    b.clauses().erase(b.clauses().begin() + static_cast<long>(drop));
                }};
        SubplanKey k = KeyOf(d);
        EXPECT_TRUE(seen.insert(k.key).second) << "dropping clause " << drop;
    }
}

TEST(SubplanKeyLarge, ChainOfSixteenOneTable) {
    /* a long symmetric chain of one table: mirror symmetry only */
    Query q{std::vector<std::string>(16, kTitle), [](Builder &b) {
                for (int i = 0; i + 1 < 16; i++)
                    b.Where(b.Op("=", b.Var(i, "id"), b.Var(i + 1, "id")));
                for (int i = 0; i < 16; i++)
                    b.Where(b.Op("=", b.Var(i, "kind_id"), b.Const("'1'::integer")));
            }};
    ExpectInvariant(q, 20, 0);
}

TEST(SubplanKeyLarge, ManyIdenticalInstancesInOneClass) {
    /* 12 instances of title in one equivalence class, same filter each */
    Query q{std::vector<std::string>(12, kTitle), [](Builder &b) {
                std::vector<const KeyNode *> m;
                for (int i = 0; i < 12; i++) {
                    m.push_back(b.Var(i, "id"));
                    b.Where(b.Op("=", b.Var(i, "kind_id"), b.Const("'1'::integer")));
                }
                b.Where(b.Eq(m));
            }};
    ExpectInvariant(q, 20, 0);
}

} // namespace

/* The planner's asks key without the template, execution feedback computes
 * the template alone (each costs as much as the other): the same forms as
 * computed together. */
TEST(SubplanKeyTemplate, EachFormAloneIsTheSame) {
    Query q = ThreeTables();
    Builder b;
    b.sp = Plain(3);
    for (int i = 0; i < 3; i++)
        b.AddRel(i + 1, q.tables[static_cast<size_t>(i)]);
    q.where(b);
    SubplanKey both, key_only;
    std::string err;
    ASSERT_TRUE(pilot::subplan_key_compute(b.Desc(), &both, &err)) << err;
    ASSERT_TRUE(pilot::subplan_key_compute(b.Desc(), &key_only, &err, pilot::KEY_PART_KEY)) << err;
    EXPECT_EQ(key_only.key, both.key);
    EXPECT_EQ(key_only.text, both.text);
    EXPECT_NE(both.template_key, 0u);
    EXPECT_EQ(key_only.template_key, 0u);
    EXPECT_TRUE(key_only.template_text.empty());
    SubplanKey template_only;
    ASSERT_TRUE(pilot::subplan_key_compute(b.Desc(), &template_only, &err, pilot::KEY_PART_TEMPLATE)) << err;
    EXPECT_EQ(template_only.template_key, both.template_key);
    EXPECT_EQ(template_only.template_text, both.template_text);
    EXPECT_EQ(template_only.key, 0u);
    EXPECT_TRUE(template_only.text.empty());
    EXPECT_FALSE(pilot::subplan_key_compute(b.Desc(), &template_only, &err, 0));
}
