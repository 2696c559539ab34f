/* Unit tests of the learned model's featurizer (models/featurize.h): how key
 * texts become table, join and predicate sets, and what makes it decline. */
#include "featurize.h"
#include "key_sql.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

using namespace pilot::model;

namespace {

/* public.posts(id, score, posttypeid, title, created, owner), public.badges(userid, name) */
Schema MakeSchema() {
    Schema s;
    TableInfo posts;
    posts.name = "public.posts";
    posts.reltuples = 1000;
    posts.columns = {{"id", "integer", ValueKind::Numeric, 1, 8},
                     {"score", "integer", ValueKind::Numeric, -10, 90},
                     {"posttypeid", "integer", ValueKind::Numeric, 1, 3},
                     {"title", "text", ValueKind::Text, 0, 0},
                     {"created", "timestamp without time zone", ValueKind::Numeric, 0, 1e6},
                     {"\"OwnerUserId\"", "integer", ValueKind::Numeric, 1, 4},
                     {"tags", "jsonb", ValueKind::Other, 0, 0}};
    posts.sample_rows = 8;
    posts.num = {{1, 2, 3, 4, 5, 6, 7, 8},
                 {-5, 0, 5, 10, 15, 20, 25, 0},
                 {1, 2, 1, 2, 3, 1, 1, 2},
                 {},
                 {0, 1e5, 2e5, 3e5, 4e5, 5e5, 6e5, 7e5},
                 {1, 1, 2, 2, 3, 3, 4, 4},
                 {}};
    posts.text = {{}, {}, {}, {"apple", "Apple pie", "banana", "it's", "apricot", "cherry", "", "a_b"}, {}, {}, {}};
    posts.null.assign(7, std::vector<uint8_t>(8, 0));
    posts.null[1][7] = 1; /* score NULL in row 8 */
    posts.null[3][6] = 1; /* title NULL in row 7 */
    TableInfo badges;
    badges.name = "public.badges";
    badges.reltuples = 50;
    badges.columns = {{"userid", "integer", ValueKind::Numeric, 1, 4}, {"name", "text", ValueKind::Text, 0, 0}};
    badges.sample_rows = 4;
    badges.num = {{1, 2, 3, 4}, {}};
    badges.text = {{}, {"a", "b", "c", "d"}};
    badges.null.assign(2, std::vector<uint8_t>(4, 0));
    s.tables = {badges, posts};
    s.joins = {join_name("public.badges", "userid", "public.posts", "\"OwnerUserId\"")};
    s.sample_size = 8;
    s.max_log_rows = std::log(1e6) + 1;
    s.index();
    return s;
}

const char *kPosts = "pgpk1\nR t1 public.posts\n";

/* Bits of the sample bitmap of table row r. */
std::string Bitmap(const Schema &s, const Features &f, uint32_t r = 0) {
    Dims d = dims_of(s);
    std::string out;
    for (uint32_t i = 0; i < s.sample_size; i++)
        out += f.tables[r * d.table + s.tables.size() + i] > 0.5f ? '1' : '0';
    return out;
}

Features Feat(const Schema &s, const std::string &clauses, double native = -1) {
    Features f;
    std::string why;
    EXPECT_TRUE(featurize(s, kPosts + clauses, native, &f, &why)) << why << "\n" << clauses;
    return f;
}

std::string Declines(const Schema &s, const std::string &text) {
    Features f;
    std::string why;
    EXPECT_FALSE(featurize(s, text, -1, &f, &why)) << text;
    return why;
}

/* X'..' of a timestamp (microseconds since 2000-01-01, big-endian). */
std::string TimestampHex(double seconds) {
    int64_t us = static_cast<int64_t>(seconds * 1e6);
    char b[17];
    snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(us));
    return b;
}

} // namespace

TEST(Featurize, DimensionsFollowTheSchema) {
    Schema s = MakeSchema();
    Dims d = dims_of(s);
    EXPECT_EQ(d.table, 2u + 8u + 2u);
    EXPECT_EQ(d.join, 1u);
    EXPECT_EQ(d.pred, 9u + PK_COUNT + 3u);
    Features f = Feat(s, "");
    EXPECT_EQ(f.ntables, 1u);
    EXPECT_EQ(f.real_preds, 0u);
    EXPECT_EQ(f.npreds, 1u); /* padding row */
    EXPECT_EQ(f.real_joins, 0u);
    EXPECT_EQ(f.tables[1], 1.0f); /* one-hot: posts is table 1 */
    EXPECT_EQ(Bitmap(s, f), "11111111");
}

TEST(Featurize, RangeOnOneColumnFoldsIntoOneInterval) {
    Schema s = MakeSchema();
    Features f = Feat(s, "C ('0'::integer pg_catalog.<=(integer,integer) t1.score)\n"
                         "C (t1.score pg_catalog.<(integer,integer) '20'::integer)\n");
    EXPECT_EQ(f.real_preds, 1u);
    Dims d = dims_of(s);
    const uint32_t C = s.ncolumns();
    EXPECT_EQ(f.preds[s.global_column(s.table_index("public.posts"), 1)], 1.0f);
    EXPECT_EQ(f.preds[C + PK_RANGE], 1.0f);
    EXPECT_NEAR(f.preds[C + PK_COUNT], 0.1f, 1e-6);     /* (0 - -10) / 100 */
    EXPECT_NEAR(f.preds[C + PK_COUNT + 1], 0.3f, 1e-6); /* (20 - -10) / 100 */
    /* 0 <= score < 20, NULL never qualifies */
    EXPECT_EQ(Bitmap(s, f), "01111000");
    EXPECT_NEAR(f.tables[2 + 8], 4.0f / 8.0f, 1e-6);
    (void)d;
}

TEST(Featurize, ConstantOnTheLeftFlipsTheOperator) {
    Schema s = MakeSchema();
    Features a = Feat(s, "C ('10'::integer pg_catalog.<(integer,integer) t1.score)\n");
    Features b = Feat(s, "C (t1.score pg_catalog.>(integer,integer) '10'::integer)\n");
    EXPECT_EQ(a.preds, b.preds);
    EXPECT_EQ(Bitmap(s, a), "00001110");
}

TEST(Featurize, BinaryTimestampConstants) {
    Schema s = MakeSchema();
    Features f = Feat(s, "C (t1.created pg_catalog.>=(timestamp without time zone,timestamp without time zone) X'" +
                             TimestampHex(3e5) + "'::timestamp without time zone)\n");
    EXPECT_EQ(Bitmap(s, f), "00011111");
    EXPECT_NEAR(f.preds[s.ncolumns() + PK_COUNT], 0.3f, 1e-6);
    /* a binary constant of a type the featurizer cannot read */
    EXPECT_NE(Declines(s, std::string(kPosts) + "C (t1.created pg_catalog.>=(interval,interval) X'00'::interval)\n")
                  .find("constant"),
              std::string::npos);
}

TEST(Featurize, InListsAndEqualityClasses) {
    Schema s = MakeSchema();
    Features in = Feat(s, "C pg_catalog.=(integer,integer) ANY(t1.posttypeid, '{1,3}'::integer[])\n");
    EXPECT_EQ(Bitmap(s, in), "10101110");
    EXPECT_EQ(in.preds[s.ncolumns() + PK_IN], 1.0f);
    EXPECT_NEAR(in.preds[s.ncolumns() + PK_COUNT + 2], std::log1p(2.0f) / 5.0f, 1e-6);
    Features eq = Feat(s, "C EQ('2'::integer, t1.posttypeid)\n");
    EXPECT_EQ(Bitmap(s, eq), "01010001");
    EXPECT_EQ(eq.preds[s.ncolumns() + PK_RANGE], 1.0f); /* numeric = is a point interval */
    EXPECT_FLOAT_EQ(eq.preds[s.ncolumns() + PK_COUNT], eq.preds[s.ncolumns() + PK_COUNT + 1]);
}

TEST(Featurize, TextLikeAndQuotes) {
    Schema s = MakeSchema();
    EXPECT_EQ(Bitmap(s, Feat(s, "C (t1.title pg_catalog.~~(text,text) 'ap%'::text)\n")), "10001000");
    EXPECT_EQ(Bitmap(s, Feat(s, "C (t1.title pg_catalog.~~*(text,text) 'ap%'::text)\n")), "11001000");
    EXPECT_EQ(Bitmap(s, Feat(s, "C (t1.title pg_catalog.!~~(text,text) '%an%'::text)\n")), "11011101");
    EXPECT_EQ(Bitmap(s, Feat(s, "C (t1.title pg_catalog.~~(text,text) 'a\\_b'::text)\n")), "00000001");
    EXPECT_EQ(Bitmap(s, Feat(s, "C ('it''s'::text pg_catalog.=(text,text) t1.title)\n")), "00010000");
    EXPECT_EQ(Bitmap(s, Feat(s, "C (t1.title pg_catalog.=(text,text) ::text('cherry'::character varying))\n")),
              "00000100");
    /* a column under a binary-compatible cast (varchar compared as text) */
    EXPECT_EQ(Bitmap(s, Feat(s, "C (::pg_catalog.text(t1.title) pg_catalog.=(text,text) 'apple'::pg_catalog.text)\n")),
              "10000000");
}

TEST(Featurize, NullTests) {
    Schema s = MakeSchema();
    EXPECT_EQ(Bitmap(s, Feat(s, "C IS NULL(t1.score)\n")), "00000001");
    EXPECT_EQ(Bitmap(s, Feat(s, "C IS NOT NULL(t1.title)\n")), "11111101");
    /* IS NULL works on a column of any type: the sample keeps NULL flags */
    Feat(s, "C IS NULL(t1.tags)\n");
}

TEST(Featurize, JoinsByEquivalenceClass) {
    Schema s = MakeSchema();
    std::string text = "pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n"
                       "C ('10'::integer pg_catalog.<(integer,integer) t2.score)\n";
    Features f;
    std::string why;
    ASSERT_TRUE(featurize(s, text, -1, &f, &why)) << why;
    EXPECT_EQ(f.ntables, 2u);
    EXPECT_EQ(f.real_joins, 1u);
    EXPECT_EQ(f.joins[0], 1.0f);
    EXPECT_EQ(Bitmap(s, f, 0), "11110000"); /* badges: no predicate, 4 sample rows */
    EXPECT_EQ(Bitmap(s, f, 1), "00001110");
    EXPECT_EQ(f.global[0], 0.0f); /* no native estimate */
    EXPECT_NEAR(f.global[2], 2.0f / 16.0f, 1e-6);
    /* independence estimate: badges 50 rows x posts 1000 * 3/8, over the larger table */
    EXPECT_NEAR(f.global[3], rows_to_label(s, 50.0 * 375.0 / 1000.0), 1e-6);
    /* a self-join through an unknown pair of columns */
    EXPECT_NE(Declines(s, "pgpk1\nR t1 public.posts\nR t2 public.posts\nC EQ(t1.id, t2.score)\n").find("join"),
              std::string::npos);
}

TEST(Featurize, NativeEstimateIsAnInput) {
    Schema s = MakeSchema();
    Features f = Feat(s, "", 1000);
    EXPECT_EQ(f.global[0], 1.0f);
    EXPECT_NEAR(f.global[1], rows_to_label(s, 1000), 1e-6);
    EXPECT_NEAR(label_to_rows(s, rows_to_label(s, 1000)), 1000, 1e-3);
}

TEST(Featurize, DeclinesWhatItCannotDescribe) {
    Schema s = MakeSchema();
    std::string p = kPosts;
    EXPECT_NE(Declines(s, p + "C OR((t1.score pg_catalog.=(integer,integer) '1'::integer), "
                               "(t1.score pg_catalog.=(integer,integer) '2'::integer))\n")
                  .find("OR"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C NOT(t1.flag)\n").find("NOT"), std::string::npos);
    EXPECT_NE(Declines(s, p + "C (pg_catalog.lower(t1.title) pg_catalog.=(text,text) 'a'::text)\n")
                  .find("column-operator-constant"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C (t1.score pg_catalog.<(integer,integer) t1.id)\n").find("column-to-column"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C (t1.score public.===(integer,integer) '1'::integer)\n").find("operator"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C (t1.title pg_catalog.~(text,text) 'a.*'::text)\n").find("operator ~"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C (t1.nope pg_catalog.=(integer,integer) '1'::integer)\n").find("unknown"),
              std::string::npos);
    EXPECT_NE(Declines(s, "pgpk1\nR t1 public.users\n").find("public.users"), std::string::npos);
    EXPECT_NE(Declines(s, "pgpk1\nR t1 public.badges\nR t2 public.posts\nC LEFT JOIN(L(t1), R(t2))\n"
                          "C EQ(t1.userid, t2.\"OwnerUserId\")\n")
                  .find("LEFT JOIN"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C (t1.tags pg_catalog.=(jsonb,jsonb) '{}'::jsonb)\n").find("jsonb"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C (t1.score pg_catalog.=(integer,integer) 'x'::text)\n").find("constant"),
              std::string::npos);
    EXPECT_NE(Declines(s, p + "C EQ('1'::integer, '2'::integer, t1.score)\n").find("two constants"),
              std::string::npos);
    EXPECT_NE(Declines(s, "pgpk2\nR t1 public.posts\n").find("format"), std::string::npos);
}

TEST(Featurize, TruncatedTextsNeverCrash) {
    Schema s = MakeSchema();
    std::string text = "pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n"
                       "C pg_catalog.=(integer,integer) ANY(t2.posttypeid, '{1,3}'::integer[])\n"
                       "C (t2.title pg_catalog.~~(text,text) 'it''s%'::text)\n"
                       "C (t2.created pg_catalog.>=(timestamp without time zone,timestamp without time zone) X'" +
                       TimestampHex(3e5) + "'::timestamp without time zone)\n";
    Features f;
    std::string why;
    ASSERT_TRUE(featurize(s, text, 5, &f, &why)) << why;
    for (size_t n = 0; n < text.size(); n++) {
        Features g;
        featurize(s, text.substr(0, n), 5, &g, &why); /* any answer, no crash */
        std::string mutated = text;
        mutated[n] = static_cast<char>(mutated[n] ^ 0x5a);
        featurize(s, mutated, 5, &g, &why);
    }
}

TEST(Featurize, FewestSampleHitsOfTheSet) {
    Schema s = MakeSchema();
    /* no predicate: every sample row (posts has 8) */
    EXPECT_EQ(Feat(s, "").fewest_hits, 8u);
    /* 0 <= score < 20: four rows */
    EXPECT_EQ(Feat(s, "C ('0'::integer pg_catalog.<=(integer,integer) t1.score)\n"
                      "C (t1.score pg_catalog.<(integer,integer) '20'::integer)\n")
                  .fewest_hits,
              4u);
    /* no sampled row satisfies score > 80: zero, whatever the other relations keep */
    EXPECT_EQ(Feat(s, "C ('80'::integer pg_catalog.<(integer,integer) t1.score)\n").fewest_hits, 0u);
    std::string why;
    Features join;
    ASSERT_TRUE(featurize(s,
                          "pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n"
                          "C ('80'::integer pg_catalog.<(integer,integer) t2.score)\n",
                          -1, &join, &why))
        << why;
    EXPECT_EQ(join.fewest_hits, 0u); /* the join inherits its relation's zero */
    ASSERT_TRUE(featurize(s, "pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n",
                          -1, &join, &why))
        << why;
    EXPECT_EQ(join.fewest_hits, 4u); /* badges' four sample rows */
}

/* ---- key texts as counting queries (models/key_sql.h) ---- */

std::string CountSql(const std::string &key) {
    std::string sql, why;
    EXPECT_TRUE(key_count_sql(key, &sql, &why)) << why;
    return sql;
}

TEST(KeySql, JoinsAndPredicatesBecomeTheWhereClause) {
    EXPECT_EQ(CountSql("pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n"
                       "C (t2.score pg_catalog.>=(integer,integer) '10'::integer)\n"
                       "C pg_catalog.=(integer,integer) ANY(t2.posttypeid, '{1,3}'::integer[])\n"
                       "C ('it''s'::text pg_catalog.=(text,text) t2.title)\n"
                       "C (t2.title pg_catalog.!~~*(text,text) 'a\\_%'::text)\n"
                       "C IS NOT NULL(t1.userid)\n"),
              "SELECT count(*) FROM ONLY public.badges t1, ONLY public.posts t2 WHERE t1.userid = t2.\"OwnerUserId\" "
              "AND t2.score >= '10'::integer AND t2.posttypeid = ANY('{1,3}'::integer[]) AND t2.title = 'it''s'::text "
              "AND t2.title NOT ILIKE E'a\\\\_%'::text AND t1.userid IS NOT NULL");
}

TEST(KeySql, EquivalenceClassesWithAConstantAndInheritance) {
    /* t1.a = t2.b = 5: one join, both columns equal to the constant */
    EXPECT_EQ(CountSql("pgpk1\nR t1 public.m*\nR t2 public.n\nC EQ('5'::integer, t1.a, t2.b)\n"),
              "SELECT count(*) FROM public.m t1, ONLY public.n t2 WHERE t1.a = t2.b AND t1.a = '5'::integer "
              "AND t2.b = '5'::integer");
    EXPECT_EQ(CountSql("pgpk1\nR t1 public.posts\n"), "SELECT count(*) FROM ONLY public.posts t1");
    /* a = 0 AND b = 0 on one table: PostgreSQL's class {a, b, 0}; a = b
     * follows from the two predicates */
    EXPECT_EQ(CountSql("pgpk1\nR t1 public.t\nC EQ('0'::integer, t1.a, t1.b)\n"),
              "SELECT count(*) FROM ONLY public.t t1 WHERE t1.a = '0'::integer AND t1.b = '0'::integer");
    EXPECT_EQ(CountSql("pgpk1\nR t1 public.t\nC ('0'::integer pg_catalog.=(integer,integer) t1.a)\n"
                       "C ('0'::integer pg_catalog.=(integer,integer) t1.b)\nC EQ(t1.a, t1.b)\n"),
              "SELECT count(*) FROM ONLY public.t t1 WHERE t1.a = '0'::integer AND t1.b = '0'::integer");
}

TEST(Featurize, TwoColumnsOfOneTableEqualToOneConstant) {
    Schema s = MakeSchema();
    std::string p = kPosts;
    Features f;
    std::string why;
    EXPECT_TRUE(featurize(s, p + "C EQ('1'::integer, t1.score, t1.id)\n", 10, &f, &why)) << why;
    /* as PostgreSQL writes it: the two predicates, and the class of the columns */
    EXPECT_TRUE(featurize(s, p + "C ('1'::integer pg_catalog.=(integer,integer) t1.score)\n"
                                  "C ('1'::integer pg_catalog.=(integer,integer) t1.id)\nC EQ(t1.score, t1.id)\n",
                          10, &f, &why)) << why;
    /* without a constant it is a column-to-column comparison; with two
     * different ones it is not implied */
    EXPECT_NE(Declines(s, p + "C EQ(t1.score, t1.id)\n").find("two columns of one table"), std::string::npos);
    EXPECT_NE(Declines(s, p + "C ('1'::integer pg_catalog.=(integer,integer) t1.score)\n"
                              "C ('2'::integer pg_catalog.=(integer,integer) t1.id)\nC EQ(t1.score, t1.id)\n")
                  .find("two columns of one table"),
              std::string::npos);
}

TEST(KeySql, BinaryConstantsAreWrittenBack) {
    EXPECT_EQ(CountSql(std::string(kPosts) +
                       "C (t1.created pg_catalog.>=(timestamp without time zone,timestamp without time zone) X'" +
                       TimestampHex(3e5) + "'::timestamp without time zone)\n"),
              "SELECT count(*) FROM ONLY public.posts t1 WHERE t1.created >= "
              "(TIMESTAMP '2000-01-01 00:00:00' + 300000000000 * INTERVAL '1 microsecond')");
    EXPECT_EQ(CountSql(std::string(kPosts) + "C (t1.day pg_catalog.<(date,date) X'FFFFFFFE'::date)\n"),
              "SELECT count(*) FROM ONLY public.posts t1 WHERE t1.day < (DATE '2000-01-01' + -2)");
    EXPECT_EQ(CountSql(std::string(kPosts) +
                       "C (t1.w pg_catalog.>(double precision,double precision) X'3FF8000000000000'::double precision)\n"),
              "SELECT count(*) FROM ONLY public.posts t1 WHERE t1.w > '1.5'::double precision");
    std::string sql, why;
    EXPECT_FALSE(key_count_sql(std::string(kPosts) + "C (t1.created pg_catalog.>=(interval,interval) X'00'::interval)\n",
                               &sql, &why));
    EXPECT_NE(why.find("interval"), std::string::npos) << why;
    /* what the featurizer cannot read, this cannot write */
    EXPECT_FALSE(key_count_sql("pgpk1\nR t1 public.badges\nR t2 public.posts\nC LEFT JOIN(L(t1), R(t2))\n", &sql, &why));
}

/* One batch's sets share their base relations: with a SampleCache each
 * (table, predicates) pair is evaluated on the sample once, whatever the
 * relation is called in each key, and the features are the same as without. */
TEST(Featurize, SampleCacheEvaluatesEachRelationOnceAndChangesNothing) {
    Schema s = MakeSchema();
    const std::string score = "pg_catalog.<(integer,integer) t2.score)\n";
    const std::vector<std::string> batch = {
        /* posts with score > 10: alone (t1), in a join (t2) and again */
        "pgpk1\nR t1 public.posts\nC ('10'::integer pg_catalog.<(integer,integer) t1.score)\n",
        "pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n"
        "C ('10'::integer " + score,
        "pgpk1\nR t1 public.posts\nC ('10'::integer pg_catalog.<(integer,integer) t1.score)\n",
        /* another constant: another entry */
        "pgpk1\nR t1 public.badges\nR t2 public.posts\nC EQ(t1.userid, t2.\"OwnerUserId\")\n"
        "C ('20'::integer " + score,
        /* badges without predicates, alone */
        "pgpk1\nR t1 public.badges\n",
    };
    SampleCache cache;
    for (const std::string &text : batch) {
        Features plain, cached;
        std::string why;
        ASSERT_TRUE(featurize(s, text, 7, &plain, &why)) << why;
        ASSERT_TRUE(featurize(s, text, 7, &cached, &why, &cache)) << why;
        EXPECT_EQ(plain.tables, cached.tables) << text;
        EXPECT_EQ(plain.preds, cached.preds) << text;
        EXPECT_EQ(plain.global, cached.global) << text;
    }
    /* posts score > 10, badges, posts score > 20 */
    EXPECT_EQ(cache.evaluations, 3u);
    EXPECT_EQ(cache.size(), 3u);
}
