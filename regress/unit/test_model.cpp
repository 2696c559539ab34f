/* Unit tests of the learned model (models/mscn.h, models/mscn_forward.h,
 * models/model_file.h): training learns, a saved model gives the same outputs
 * after loading, the serving forward pass computes libtorch's function, and
 * damaged or mismatched files are rejected. */
#include "featurize.h"
#include "model_file.h"
#include "mscn.h"
#include "mscn_forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <unistd.h>
#include <random>
#include <string>

using namespace pilot::model;

namespace {

/* The network's runtime library, as pilotd finds it: the build's, else the
 * installed one (PILOTD_MODEL_LIB wins when set). */
const bool kRuntimeChosen = [] {
    if (!getenv("PILOTD_MODEL_LIB"))
        setenv("PILOTD_MODEL_LIB",
               access(PILOTD_MODEL_LIB_PATH, R_OK) == 0 ? PILOTD_MODEL_LIB_PATH
                                                       : "/usr/local/lib/pg_pilot/libpilot_mscn.so",
               0);
    return true;
}();

Schema MakeSchema() {
    Schema s;
    TableInfo t;
    t.name = "public.t";
    t.reltuples = 100000;
    t.columns = {{"a", "integer", ValueKind::Numeric, 0, 100}, {"b", "text", ValueKind::Text, 0, 0}};
    t.sample_rows = 16;
    t.num = {{}, {}};
    t.text = {{}, {}};
    t.null.assign(2, std::vector<uint8_t>(16, 0));
    for (int i = 0; i < 16; i++) {
        t.num[0].push_back(i * 100.0 / 15);
        t.text[1].push_back(i % 2 ? "odd" : "even");
    }
    s.tables = {t};
    s.sample_size = 16;
    s.max_log_rows = std::log(1e5) + 1;
    s.index();
    return s;
}

/* "a < x" over a column of 100000 rows whose sample looks uniform, but the
 * true count is 100000 * (x / 100)^3: a correlation the independence
 * estimate (the network's starting point) misses, which training must learn */
std::string Key(int x) {
    return "pgpk1\nR t1 public.t\nC (t1.a pg_catalog.<(integer,integer) '" + std::to_string(x) + "'::integer)\n";
}

struct Data {
    std::vector<Features> f;
    std::vector<float> y;
    std::vector<const Features *> x() const {
        std::vector<const Features *> out;
        for (const auto &v : f)
            out.push_back(&v);
        return out;
    }
};

Data MakeData(const Schema &s, int n, unsigned seed) {
    Data d;
    std::mt19937 rng(seed);
    for (int i = 0; i < n; i++) {
        int x = 1 + static_cast<int>(rng() % 99);
        Features f;
        std::string why;
        EXPECT_TRUE(featurize(s, Key(x), -1, &f, &why)) << why;
        d.f.push_back(f);
        d.y.push_back(rows_to_label(s, 100000.0 * std::pow(x / 100.0, 3)));
    }
    return d;
}

double MeanAbs(const std::vector<float> &a, const std::vector<float> &b) {
    double sum = 0;
    for (size_t i = 0; i < a.size(); i++)
        sum += std::fabs(a[i] - b[i]);
    return sum / a.size();
}

} // namespace

TEST(Mscn, RuntimeLoads) {
    std::string why;
    ASSERT_TRUE(Mscn::runtime_available(&why)) << why;
}

TEST(Mscn, TrainingLearnsASelectivity) {
    Schema s = MakeSchema();
    Data train = MakeData(s, 400, 1), test = MakeData(s, 100, 2);
    auto net = Mscn::create(dims_of(s), 32, 7);
    std::vector<float> before, after;
    std::string why;
    ASSERT_TRUE(net->predict(test.x(), &before, &why)) << why;
    TrainOptions o;
    o.epochs = 60;
    net->train(train.x(), train.y, o);
    ASSERT_TRUE(net->predict(test.x(), &after, &why)) << why;
    double err_before = MeanAbs(before, test.y), err_after = MeanAbs(after, test.y);
    /* in rows: the mean q-error on unseen constants is small */
    EXPECT_LT(err_after, err_before / 3) << err_before << " -> " << err_after;
    EXPECT_LT(std::exp(err_after * s.max_log_rows), 1.6);
}

TEST(Mscn, SaveAndLoadGiveTheSameOutputs) {
    Schema s = MakeSchema();
    Data train = MakeData(s, 100, 3), test = MakeData(s, 50, 4);
    auto net = Mscn::create(dims_of(s), 16, 9);
    TrainOptions o;
    o.epochs = 5;
    net->train(train.x(), train.y, o);
    ModelMeta meta;
    meta.version = 3;
    meta.hidden = 16;
    meta.database = "db";
    meta.dboid = 16384;
    meta.model_q.p50 = 1.5;
    std::string file = encode_model(meta, s, net->save());

    ModelMeta meta2;
    Schema s2;
    std::string weights, why;
    ASSERT_TRUE(decode_model(file, &meta2, &s2, &weights, &why)) << why;
    EXPECT_EQ(meta2.version, 3u);
    EXPECT_EQ(meta2.dboid, 16384u);
    EXPECT_EQ(meta2.model_q.p50, 1.5);
    EXPECT_EQ(s2.tables.size(), 1u);
    EXPECT_EQ(s2.tables[0].text[1][1], "odd");
    auto net2 = Mscn::load(weights, dims_of(s2), meta2.hidden, &why);
    ASSERT_TRUE(net2) << why;
    std::vector<float> a, b;
    ASSERT_TRUE(net->predict(test.x(), &a, &why));
    /* features computed with the loaded schema, too */
    std::vector<Features> f2(test.f.size());
    std::vector<const Features *> x2;
    for (int i = 0; i < 50; i++) {
        ASSERT_TRUE(featurize(s2, Key(1 + (i * 7) % 99), -1, &f2[i], &why));
    }
    for (auto &f : f2)
        x2.push_back(&f);
    ASSERT_TRUE(net2->predict(test.x(), &b, &why));
    EXPECT_EQ(a, b); /* bit for bit */
    std::vector<float> c, d;
    ASSERT_TRUE(net->predict(x2, &c, &why));
    ASSERT_TRUE(net2->predict(x2, &d, &why));
    EXPECT_EQ(c, d);
    EXPECT_EQ(model_checksum(file).size(), 16u);
}

TEST(Mscn, DamagedFilesAreRejected) {
    Schema s = MakeSchema();
    auto net = Mscn::create(dims_of(s), 16, 1);
    ModelMeta meta;
    meta.hidden = 16;
    std::string file = encode_model(meta, s, net->save());
    ModelMeta m;
    Schema s2;
    std::string w, why;
    /* any flipped byte: the checksum */
    for (size_t at : {size_t(0), size_t(9), file.size() / 2, file.size() - 9, file.size() - 1}) {
        std::string bad = file;
        bad[at] = static_cast<char>(bad[at] ^ 1);
        EXPECT_FALSE(decode_model(bad, &m, &s2, &w, &why)) << at;
        EXPECT_FALSE(why.empty());
    }
    /* truncated, empty, not a model */
    EXPECT_FALSE(decode_model(file.substr(0, file.size() - 100), &m, &s2, &w, &why));
    EXPECT_FALSE(decode_model("", &m, &s2, &w, &why));
    EXPECT_FALSE(decode_model(std::string(4096, 'x'), &m, &s2, &w, &why));
    EXPECT_NE(why.find("not a pg_pilot model"), std::string::npos) << why;
    /* intact weights of another shape */
    Dims other = dims_of(s);
    other.pred += 1;
    EXPECT_EQ(Mscn::load(net->save(), other, 16, &why), nullptr);
    EXPECT_NE(why.find("weights"), std::string::npos) << why;
    EXPECT_EQ(Mscn::load(net->save(), dims_of(s), 32, &why), nullptr);
    EXPECT_EQ(Mscn::load("garbage", dims_of(s), 16, &why), nullptr);
}

TEST(Mscn, MismatchedFeaturesAreRefusedNotCrashed) {
    Schema s = MakeSchema();
    auto net = Mscn::create(dims_of(s), 8, 1);
    Features f;
    f.ntables = 1;
    f.tables.assign(3, 0.0f); /* wrong width */
    std::vector<float> out;
    std::string why;
    EXPECT_FALSE(net->predict({&f}, &out, &why));
    EXPECT_NE(why.find("dimensions"), std::string::npos);
}

namespace {

/* Random features of these dimensions: sets of 1-4 rows (some padding), sparse
 * 0/1 codes and a few real values, as featurize() writes them; base relations
 * and joins, with and without PostgreSQL's estimate. */
std::vector<Features> RandomFeatures(const Dims &d, int n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    auto fill = [&](uint32_t rows, uint32_t dim, std::vector<float> *v) {
        v->assign(static_cast<size_t>(rows) * dim, 0.0f);
        for (auto &x : *v)
            x = unit(rng) < 0.3f ? (unit(rng) < 0.5f ? 1.0f : unit(rng)) : 0.0f;
    };
    std::vector<Features> out(n);
    for (auto &f : out) {
        f.ntables = 1 + rng() % 4;
        f.njoins = 1 + rng() % 3;
        f.real_joins = rng() % (f.njoins + 1);
        f.npreds = 1 + rng() % 4;
        f.real_preds = rng() % (f.npreds + 1);
        fill(f.ntables, d.table, &f.tables);
        fill(f.njoins, d.join, &f.joins);
        fill(f.npreds, d.pred, &f.preds);
        f.global = {static_cast<float>(rng() % 2), unit(rng), unit(rng), unit(rng), static_cast<float>(rng() % 2)};
        f.nrels = f.ntables;
    }
    /* a batch of sub-plans shares set elements: copy rows between records */
    for (int i = 1; i < n; i += 2)
        std::copy(out[i - 1].tables.begin(), out[i - 1].tables.begin() + d.table, out[i].tables.begin());
    return out;
}

std::vector<const Features *> Pointers(const std::vector<Features> &v) {
    std::vector<const Features *> x;
    for (const auto &f : v)
        x.push_back(&f);
    return x;
}

/* Small feature dimensions for the forward-pass tests. */
Dims TestDims() {
    Dims d;
    d.table = 40;
    d.join = 6;
    d.pred = 12;
    d.global = 5;
    return d;
}

/* A network trained a few epochs on random features and labels: its
 * correction heads and gate are no longer 0, so every head counts. */
std::unique_ptr<Mscn> TrainedOnRandom(const Dims &d, uint32_t hidden, uint64_t seed) {
    auto net = Mscn::create(d, hidden, seed);
    std::vector<Features> train = RandomFeatures(d, 300, 5);
    std::vector<float> y;
    std::mt19937 rng(6);
    for (size_t i = 0; i < train.size(); i++)
        y.push_back(std::uniform_real_distribution<float>(0, 1)(rng));
    TrainOptions o;
    o.epochs = 6;
    o.learning_rate = 1e-2;
    net->train(Pointers(train), y, o);
    return net;
}

} // namespace

/* The serving forward pass computes libtorch's function: a trained network,
 * random inputs, every record within 1e-5, alone and in one batch. */
TEST(MscnForward, MatchesLibtorchWithin1e5) {
    const Dims d = TestDims();
    for (uint32_t hidden : {8u, 32u, 128u}) {
        auto net = TrainedOnRandom(d, hidden, 11 + hidden);
        std::string why;
        auto fwd = MscnForward::build(net->weights(), d, hidden, &why);
        ASSERT_TRUE(fwd) << why;
        std::vector<Features> test = RandomFeatures(d, 200, 7 + hidden);
        std::vector<float> expect, got;
        ASSERT_TRUE(net->predict(Pointers(test), &expect, &why)) << why;
        ASSERT_TRUE(fwd->predict(Pointers(test), &got, &why)) << why;
        ASSERT_EQ(got.size(), expect.size());
        double spread = 0;
        for (size_t i = 0; i < got.size(); i++) {
            EXPECT_NEAR(got[i], expect[i], 1e-5) << "hidden " << hidden << " record " << i;
            spread += std::fabs(expect[i] - expect[0]);
        }
        EXPECT_GT(spread, 1e-3) << "the trained network gives every record the same label: the comparison is empty";
        /* one at a time: the same labels as in the batch */
        for (size_t i = 0; i < 5; i++) {
            std::vector<float> one;
            ASSERT_TRUE(fwd->predict({&test[i]}, &one, &why));
            EXPECT_NEAR(one[0], got[i], 1e-6);
        }
    }
}

/* Sample bitmaps with mostly ones (relations that keep most rows) are summed
 * the other way round: still libtorch's function. */
TEST(MscnForward, MostlySetBitmapsMatchLibtorch) {
    const Dims d = TestDims();
    const BitmapColumns bitmap{5, 30};
    auto net = TrainedOnRandom(d, 32, 5);
    std::string why;
    auto fwd = MscnForward::build(net->weights(), d, 32, &why, bitmap);
    ASSERT_TRUE(fwd) << why;
    std::vector<Features> test = RandomFeatures(d, 100, 9);
    std::mt19937 rng(10);
    for (size_t r = 0; r < test.size(); r++) {
        const float p_one = r % 3 == 0 ? 0.2f : r % 3 == 1 ? 0.9f : 1.0f; /* few, most, all */
        for (uint32_t t = 0; t < test[r].ntables; t++)
            for (uint32_t i = bitmap.first; i < bitmap.first + bitmap.count; i++)
                test[r].tables[t * d.table + i] =
                    std::uniform_real_distribution<float>(0, 1)(rng) < p_one ? 1.0f : 0.0f;
    }
    std::vector<float> expect, got;
    ASSERT_TRUE(net->predict(Pointers(test), &expect, &why)) << why;
    ASSERT_TRUE(fwd->predict(Pointers(test), &got, &why)) << why;
    ASSERT_EQ(got.size(), expect.size());
    for (size_t i = 0; i < got.size(); i++)
        EXPECT_NEAR(got[i], expect[i], 1e-5) << "record " << i;
    /* a bitmap outside the table input is not used */
    EXPECT_TRUE(MscnForward::build(net->weights(), d, 32, &why, BitmapColumns{35, 10}));
}

/* Set elements shared by the records of a batch are computed once. */
TEST(MscnForward, SharedElementsAreComputedOnce) {
    Schema s = MakeSchema();
    auto net = Mscn::create(dims_of(s), 16, 3);
    std::string why;
    auto fwd = MscnForward::build(net->weights(), dims_of(s), 16, &why);
    ASSERT_TRUE(fwd) << why;
    Features f;
    ASSERT_TRUE(featurize(s, Key(40), -1, &f, &why)) << why;
    std::vector<const Features *> x(10, &f);
    std::vector<float> out;
    ASSERT_TRUE(fwd->predict(x, &out, &why));
    /* one table instance and one predicate, whatever the batch size */
    EXPECT_EQ(MscnForward::last_elements_computed(), 2u);
    ASSERT_EQ(out.size(), 10u);
    for (float v : out)
        EXPECT_EQ(v, out[0]);
}

TEST(MscnForward, WrongShapesAreRefusedNotCrashed) {
    Schema s = MakeSchema();
    auto net = Mscn::create(dims_of(s), 8, 1);
    std::string why;
    MscnWeights w = net->weights();
    EXPECT_FALSE(MscnForward::build(w, dims_of(s), 16, &why));
    EXPECT_NE(why.find("shape"), std::string::npos) << why;
    MscnWeights bad = w;
    bad.out2.bias.pop_back();
    EXPECT_FALSE(MscnForward::build(bad, dims_of(s), 8, &why));
    bad = w;
    bad.preds_b.weight[3] = std::nanf("");
    EXPECT_FALSE(MscnForward::build(bad, dims_of(s), 8, &why));
    auto fwd = MscnForward::build(w, dims_of(s), 8, &why);
    ASSERT_TRUE(fwd) << why;
    Features f;
    f.ntables = 1;
    f.tables.assign(3, 0.0f); /* wrong width */
    std::vector<float> out;
    EXPECT_FALSE(fwd->predict({&f}, &out, &why));
    EXPECT_NE(why.find("dimensions"), std::string::npos);
}
