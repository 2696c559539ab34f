/*
 * test_fuzz.cpp — a bounded random-input driver for everything either side
 * decodes from memory it does not trust: the request pilotd copies out of a
 * slot (validate_request, drop_unclean_texts), the response a backend reads
 * (validate_response), a feedback record (feedback_check), the segment header
 * (validate_header), a model-table entry (clean_model_info), and the key-text
 * parser of the learned model (parse_key).
 *
 * Inputs are mutations of valid seeds (flipped bits, random bytes, boundary
 * values, truncations) plus plain random bytes.  Each target runs for
 * PP_FUZZ_SECONDS (default 2) with a seed printed on failure (PP_FUZZ_SEED to
 * replay).  Beyond "does not crash" (ASan/UBSan builds make that sharp), every
 * input a decoder accepts is checked against the invariants the consumer
 * relies on.
 */
#include "featurize.h"
#include "pilot_protocol.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace pilot::proto;

namespace {

double fuzz_seconds() {
    const char *s = getenv("PP_FUZZ_SECONDS");
    double v = s ? atof(s) : 2.0;
    return v > 0 ? v : 2.0;
}

uint64_t fuzz_seed() {
    const char *s = getenv("PP_FUZZ_SEED");
    return s ? strtoull(s, nullptr, 10) : static_cast<uint64_t>(std::random_device{}());
}

/* Runs body(rng, iteration) until the time budget is spent; returns iterations. */
template <class F> uint64_t fuzz_for(const char *name, F body) {
    const uint64_t seed = fuzz_seed();
    std::mt19937_64 rng(seed);
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(fuzz_seconds());
    uint64_t n = 0;
    while (std::chrono::steady_clock::now() < end) {
        for (int k = 0; k < 64; k++, n++) {
            body(rng, n);
            if (::testing::Test::HasFailure()) {
                ADD_FAILURE() << name << ": replay with PP_FUZZ_SEED=" << seed << " (iteration " << n << ")";
                return n;
            }
        }
    }
    printf("fuzz %s: %llu inputs (seed %llu)\n", name, static_cast<unsigned long long>(n),
           static_cast<unsigned long long>(seed));
    return n;
}

/* Mutates len bytes at p: a few flipped bits, random bytes, boundary words. */
void mutate(std::mt19937_64 &rng, void *p, size_t len) {
    auto *b = static_cast<unsigned char *>(p);
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; e++) {
        size_t at = rng() % len;
        switch (rng() % 5) {
        case 0: b[at] ^= static_cast<unsigned char>(1u << (rng() % 8)); break;
        case 1: b[at] = static_cast<unsigned char>(rng()); break;
        case 2: b[at] = (rng() & 1) ? 0xff : 0x00; break;
        case 3:
            if (at + 4 <= len) {
                static const uint32_t edge[] = {0u, 1u, 0x7fffffffu, 0x80000000u, 0xffffffffu, 256u, 257u, 65536u};
                uint32_t v = edge[rng() % (sizeof edge / sizeof edge[0])];
                memcpy(b + at, &v, 4);
            }
            break;
        default:
            if (at + 8 <= len) {
                static const double edge[] = {std::nan(""), std::numeric_limits<double>::infinity(), -1.0, -0.0,
                                              1e308, 0.0};
                double v = edge[rng() % (sizeof edge / sizeof edge[0])];
                memcpy(b + at, &v, 8);
            }
            break;
        }
    }
}

bool nul_terminated(const char *s, size_t cap) { return memchr(s, '\0', cap) != nullptr; }

} // namespace

TEST(Fuzz, RequestDecoders) {
    auto seedreq = std::make_unique<Request>();
    auto r = std::make_unique<Request>();
    memset(seedreq.get(), 0, sizeof(Request));
    const std::string text = "pgpk1\nR t1 public.orders\nC (t1.status = 3::integer)";
    uint64_t accepted = 0;
    const uint64_t inputs = fuzz_for("request", [&](std::mt19937_64 &rng, uint64_t n) {
        /* a valid request of a random type, then mutated (header and the first items) */
        Request &s = *seedreq;
        s.type = 1 + static_cast<uint32_t>(n % MSG_TYPE_MAX);
        s.count = s.type == MSG_ESTIMATE || s.type == MSG_ORACLE_ADD ? 1 + static_cast<uint32_t>(rng() % 4) : 0;
        s.estimator = static_cast<uint32_t>(rng() % (EST_MAX + 1));
        s.text_used = 0;
        for (uint32_t i = 0; i < s.count; i++) {
            if (s.type == MSG_ORACLE_ADD) {
                s.entries[i].key = 1 + i;
                s.entries[i].rows = 10.0 * i;
            } else {
                s.items[i] = EstimateItem{};
                s.items[i].key = 1 + i;
                s.items[i].nrels = 1;
            }
        }
        if (s.type == MSG_ESTIMATE) {
            memcpy(s.text, text.data(), text.size());
            s.text_used = static_cast<uint32_t>(text.size());
            s.items[0].text_len = s.text_used;
        }
        if (s.type == MSG_ADVISOR) {
            s.advisor = AdvisorJob{};
            s.advisor.action = 1 + static_cast<uint32_t>(rng() % ADVISE_ACTION_MAX);
            s.advisor.recommendation = 5;
        }
        const size_t head = offsetof(Request, items) + 4 * sizeof(EstimateItem);
        memcpy(r.get(), &s, head);
        memcpy(r->text, s.text, 256);
        if (rng() % 8 == 0)
            for (size_t i = 0; i < head; i++)
                reinterpret_cast<unsigned char *>(r.get())[i] = static_cast<unsigned char>(rng());
        else
            mutate(rng, r.get(), head);
        if (rng() % 2)
            mutate(rng, r->text, 256);
        if (!validate_request(*r))
            return;
        accepted++;
        /* what pilotd relies on once a request is accepted */
        ASSERT_GE(r->type, 1u);
        ASSERT_LE(r->type, static_cast<uint32_t>(MSG_TYPE_MAX));
        ASSERT_LE(r->count, kMaxItems);
        if (r->type == MSG_ESTIMATE) {
            ASSERT_LE(r->estimator, static_cast<uint32_t>(EST_MAX));
            ASSERT_LE(r->text_used, kMaxText);
            for (uint32_t i = 0; i < r->count; i++) {
                ASSERT_NE(r->items[i].key, 0u);
                ASSERT_LE(static_cast<uint64_t>(r->items[i].text_off) + r->items[i].text_len, r->text_used);
            }
            drop_unclean_texts(*r);
            for (uint32_t i = 0; i < r->count; i++)
                if (r->items[i].text_len > 0)
                    ASSERT_TRUE(key_text_clean(r->text + r->items[i].text_off, r->items[i].text_len));
        }
        if (r->type == MSG_ORACLE_ADD)
            for (uint32_t i = 0; i < r->count; i++)
                ASSERT_TRUE(std::isfinite(r->entries[i].rows) && r->entries[i].rows >= 0);
        if (r->type == MSG_ADVISOR) {
            ASSERT_GE(r->advisor.action, 1u);
            ASSERT_LE(r->advisor.action, static_cast<uint32_t>(ADVISE_ACTION_MAX));
            ASSERT_TRUE(std::isfinite(r->advisor.budget_mb));
            ASSERT_LE(r->advisor.max_indexes, 1000u);
        }
        if (r->type == MSG_MODEL_PIN)
            ASSERT_LE(r->session, static_cast<uint64_t>(UINT32_MAX));
    });
    /* neither vacuous (nothing accepted) nor blind (everything accepted) */
    EXPECT_GT(accepted, 0u);
    EXPECT_LT(accepted, inputs);
}

TEST(Fuzz, ResponseDecoder) {
    auto req = std::make_unique<Request>();
    auto resp = std::make_unique<Response>();
    memset(req.get(), 0, sizeof(Request));
    uint64_t accepted = 0;
    const uint64_t inputs = fuzz_for("response", [&](std::mt19937_64 &rng, uint64_t) {
        req->type = MSG_ESTIMATE;
        req->seq = rng();
        req->count = 1 + static_cast<uint32_t>(rng() % 8);
        memset(resp.get(), 0, offsetof(Response, answers) + 8 * sizeof(EstimateAnswer));
        resp->seq = req->seq;
        resp->count = req->count;
        for (uint32_t i = 0; i < req->count; i++) {
            resp->answers[i].rows = 100.0;
            resp->answers[i].source = SRC_MEMO;
        }
        mutate(rng, resp.get(), offsetof(Response, answers) + 8 * sizeof(EstimateAnswer));
        if (!validate_response(*req, *resp))
            return;
        accepted++;
        /* what the planner relies on: only finite, non-negative rows with a known source */
        ASSERT_EQ(resp->seq, req->seq);
        if (resp->status != ST_OK)
            return;
        ASSERT_EQ(resp->count, req->count);
        for (uint32_t i = 0; i < resp->count; i++) {
            const EstimateAnswer &a = resp->answers[i];
            ASSERT_LE(a.source, static_cast<uint32_t>(SRC_MAX));
            if (a.source != SRC_NONE) {
                ASSERT_TRUE(std::isfinite(a.rows));
                ASSERT_GE(a.rows, 0.0);
            }
        }
    });
    /* neither vacuous (nothing accepted) nor blind (everything accepted) */
    EXPECT_GT(accepted, 0u);
    EXPECT_LT(accepted, inputs);
}

TEST(Fuzz, FeedbackRecordDecoder) {
    uint64_t accepted = 0;
    const uint64_t inputs = fuzz_for("feedback record", [&](std::mt19937_64 &rng, uint64_t n) {
        FeedbackRecord f{};
        f.kind = n % 2 ? FB_RELSET : FB_QUERY;
        f.key = f.kind == FB_RELSET ? 42 : 0;
        f.template_key = f.key;
        f.native_rows = 10;
        f.pilot_rows = -1;
        f.actual_rows = 12;
        f.nrels = 2;
        snprintf(f.relations, sizeof f.relations, "%s", f.kind == FB_RELSET ? "orders, customer" : "");
        if (rng() % 8 == 0)
            for (size_t i = 0; i < sizeof f; i++)
                reinterpret_cast<unsigned char *>(&f)[i] = static_cast<unsigned char>(rng());
        else
            mutate(rng, &f, sizeof f);
        if (feedback_check(f) != FBC_OK)
            return;
        accepted++;
        ASSERT_GE(f.kind, 1u);
        ASSERT_LE(f.kind, static_cast<uint32_t>(FB_KIND_MAX));
        ASSERT_TRUE(std::isfinite(f.actual_rows));
        ASSERT_GE(f.actual_rows, 0.0);
        ASSERT_TRUE(std::isfinite(f.native_rows) && std::isfinite(f.pilot_rows));
        ASSERT_TRUE(nul_terminated(f.relations, sizeof f.relations));
        ASSERT_TRUE(key_text_clean(f.relations, strlen(f.relations)));
    });
    /* neither vacuous (nothing accepted) nor blind (everything accepted) */
    EXPECT_GT(accepted, 0u);
    EXPECT_LT(accepted, inputs);
}

TEST(Fuzz, ModelTableEntry) {
    uint64_t accepted = 0;
    const uint64_t inputs = fuzz_for("model info", [&](std::mt19937_64 &rng, uint64_t) {
        ModelInfo m{};
        m.version = 3;
        m.state = MODEL_SERVING;
        snprintf(m.database, sizeof m.database, "app");
        snprintf(m.note, sizeof m.note, "fine");
        mutate(rng, &m, sizeof m);
        if (!clean_model_info(m))
            return;
        accepted++;
        ASSERT_GE(m.state, 1u);
        ASSERT_LE(m.state, static_cast<uint32_t>(MODEL_STATE_MAX));
        for (const char *s : {m.checksum, m.database, m.note}) {
            size_t cap = s == m.checksum ? sizeof m.checksum : s == m.database ? sizeof m.database : sizeof m.note;
            ASSERT_TRUE(nul_terminated(s, cap));
        }
        ASSERT_TRUE(key_text_clean(m.note, strlen(m.note)));
        ASSERT_TRUE(key_text_clean(m.database, strlen(m.database)));
    });
    /* neither vacuous (nothing accepted) nor blind (everything accepted) */
    EXPECT_GT(accepted, 0u);
    EXPECT_LT(accepted, inputs);
}

TEST(Fuzz, SegmentHeader) {
    const uint32_t nslots = 2;
    const uint64_t size = segment_size(nslots);
    std::vector<unsigned char> seg(size);
    uint64_t accepted = 0;
    const uint64_t inputs = fuzz_for("segment header", [&](std::mt19937_64 &rng, uint64_t) {
        auto *h = reinterpret_cast<SegmentHeader *>(seg.data());
        memset(seg.data(), 0, sizeof(SegmentHeader));
        h->magic = kMagic;
        h->version = kProtocolVersion;
        h->header_size = sizeof(SegmentHeader);
        h->slot_size = sizeof(Slot);
        h->nslots = nslots;
        h->total_size = size;
        h->pilotd_state.store(PILOTD_READY);
        h->heartbeat_us.store(1000);
        mutate(rng, seg.data(), 128); /* the fields a backend checks live at the front */
        const uint64_t mapped = rng() % 4 == 0 ? rng() % (size + 1) : size;
        if (validate_header(h, mapped, 1500, 1000000) != HDR_OK)
            return;
        accepted++;
        /* a backend then indexes slots: they must lie inside the mapping */
        ASSERT_GE(mapped, sizeof(SegmentHeader));
        ASSERT_GT(h->nslots, 0u);
        ASSERT_LE(segment_size(h->nslots), mapped);
        ASSERT_EQ(h->slot_size, sizeof(Slot));
    });
    /* neither vacuous (nothing accepted) nor blind (everything accepted) */
    EXPECT_GT(accepted, 0u);
    EXPECT_LT(accepted, inputs);
}

TEST(Fuzz, KeyTextParser) {
    const std::vector<std::string> seeds = {
        "pgpk1\nR t1 public.posts\nC (t1.score >= 3::integer)\nC (t1.score < 20::integer)\n",
        "pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n"
        "C (t1.date <= X'00020c4a1f5a8b00'::timestamp)\n",
        "pgpk1\nR t1 public.posts\nC (t1.tags ~~ '%<sql>%'::text)\nC (t1.posttypeid = ANY ('{1,2}'::integer[]))\n",
        "pgpk1\nR t1 public.users\nC (t1.location IS NOT NULL)\nC (t1.name <> 'it''s'::text)\n",
        "pgpk1\nR t1 public.badges\nR t2 public.posts\nC LEFT JOIN(L(t1), R(t2))\n",
    };
    uint64_t accepted = 0;
    const uint64_t inputs = fuzz_for("key text", [&](std::mt19937_64 &rng, uint64_t n) {
        std::string t = seeds[n % seeds.size()];
        switch (rng() % 4) {
        case 0: t.resize(rng() % (t.size() + 1)); break;                      /* truncated */
        case 1: mutate(rng, &t[0], t.size()); break;                           /* bytes changed */
        case 2: t.insert(rng() % (t.size() + 1), t.substr(rng() % t.size())); break; /* spliced */
        default:
            for (char &c : t)
                if (rng() % 16 == 0)
                    c = "()'\"\n ,:X{}\\"[rng() % 13];
            break;
        }
        pilot::model::KeyInfo k;
        std::string why;
        if (!pilot::model::parse_key(t, &k, &why)) {
            ASSERT_FALSE(why.empty()) << "a refusal says why";
            return;
        }
        accepted++;
        /* what featurize() relies on: every reference is to a parsed relation */
        for (const auto &j : k.joins) {
            ASSERT_GE(j.rel_a, 0);
            ASSERT_LT(j.rel_a, static_cast<int>(k.rels.size()));
            ASSERT_GE(j.rel_b, 0);
            ASSERT_LT(j.rel_b, static_cast<int>(k.rels.size()));
        }
        for (const auto &p : k.preds) {
            ASSERT_GE(p.rel, 0);
            ASSERT_LT(p.rel, static_cast<int>(k.rels.size()));
        }
    });
    /* neither vacuous (nothing accepted) nor blind (everything accepted) */
    EXPECT_GT(accepted, 0u);
    EXPECT_LT(accepted, inputs);
}
