/*
 * test_model_plumbing.cpp — pilotd's plumbing for the learned model (protocol
 * 4), in-process with pilotd's own objects: a ShmServer on a private
 * segment, a PilotdClient talking to it.
 *
 *   - an estimate batch with key texts reaches the KeyTextSink, with the
 *     database and each item's text (unclean texts dropped);
 *   - EST_LEARNED is refused until an estimator serves it; then it answers,
 *     and an estimator appended to EST_AUTO's chain answers after oracle/memo;
 *   - MSG_MODEL_PIN goes to the ModelControl;
 *   - publish_models() is what backends read (read_models, model_serving).
 */
#include "estimator.h"
#include "memo_store.h"
#include "oracle_store.h"
#include "pilot_protocol.h"
#include "request_handler.h"
#include "shm_server.h"
#include "pilotd_client.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

using namespace pilot;
using namespace pilot::proto;
using namespace pilotd;

namespace {

constexpr int64_t kTimeoutUs = 5 * 1000 * 1000;

struct Sink : KeyTextSink {
    std::mutex mu;
    uint32_t batches = 0;
    uint32_t dboid = 0;
    std::vector<std::string> texts; /* per item of the last batch */
    void note(const EstimateBatch &b) noexcept override {
        std::lock_guard<std::mutex> g(mu);
        batches++;
        dboid = b.dboid;
        texts.clear();
        for (uint32_t i = 0; i < b.n; i++)
            texts.emplace_back(b.item_text(i));
    }
};

struct Control : ModelControl {
    std::vector<uint32_t> asked, databases;
    bool pin(uint32_t version, uint32_t dboid, std::string *why) noexcept override {
        asked.push_back(version);
        databases.push_back(dboid);
        if (version == 0 || version == 3)
            return true;
        *why = "unknown version";
        return false;
    }
};

/* answers every item whose text mentions "model" with rows = its text length */
struct TextModel : Estimator {
    const char *name() const override { return "test-model"; }
    void estimate(const EstimateBatch &b, EstimateAnswer *out) override {
        for (uint32_t i = 0; i < b.n; i++) {
            std::string_view t = b.item_text(i);
            if (t.find("model") != std::string_view::npos) {
                out[i].rows = static_cast<double>(t.size());
                out[i].source = SRC_MODEL;
            }
        }
    }
};

class Plumbing : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pp_plumbing.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        segment_ = "pg_pilot.plumbing" + std::to_string(getpid());
        oracle_.reset(new OracleStore(dir_));
        memo_.reset(new MemoStore(1000));
        registry_.reset(new EstimatorRegistry(*oracle_, *memo_));
        handler_.reset(new RequestHandler(*registry_, *oracle_));
    }
    void start() {
        ShmServerOptions opt;
        opt.segment = segment_;
        opt.nslots = 4;
        opt.workers = 1;
        server_.reset(new ShmServer(opt, *handler_));
        server_->start();
        client_.reset(new PilotdClient(segment_, 1, 2000000, 0));
    }
    void TearDown() override {
        client_.reset();
        if (server_)
            server_->stop();
        server_.reset();
        std::string cmd = "rm -rf '" + dir_ + "'";
        if (system(cmd.c_str()) != 0)
            fprintf(stderr, "could not remove %s\n", dir_.c_str());
    }

    /* items with the given texts ("" = none) */
    Outcome ask(uint32_t estimator, const std::vector<std::string> &texts) {
        req_->type = MSG_ESTIMATE;
        req_->estimator = estimator;
        req_->dboid = 4242;
        req_->count = static_cast<uint32_t>(texts.size());
        req_->text_used = 0;
        for (uint32_t i = 0; i < texts.size(); i++) {
            EstimateItem &it = req_->items[i];
            it = EstimateItem{};
            it.key = 1000 + i;
            it.template_key = 2000 + i;
            it.native_rows = 1;
            it.nrels = 1;
            it.text_off = req_->text_used;
            it.text_len = static_cast<uint32_t>(texts[i].size());
            memcpy(req_->text + req_->text_used, texts[i].data(), texts[i].size());
            req_->text_used += it.text_len;
        }
        return client_->call(*req_, *resp_, kTimeoutUs);
    }

    std::string dir_, segment_;
    std::unique_ptr<OracleStore> oracle_;
    std::unique_ptr<MemoStore> memo_;
    std::unique_ptr<EstimatorRegistry> registry_;
    std::unique_ptr<RequestHandler> handler_;
    std::unique_ptr<ShmServer> server_;
    std::unique_ptr<PilotdClient> client_;
    std::unique_ptr<Request> req_{new Request()};
    std::unique_ptr<Response> resp_{new Response()};
};

/* the sink is called after the answer is out: wait (bounded) for it */
bool wait_batches(Sink &sink, uint32_t n) {
    for (int i = 0; i < 5000; i++) {
        {
            std::lock_guard<std::mutex> g(sink.mu);
            if (sink.batches >= n)
                return true;
        }
        usleep(1000);
    }
    return false;
}

TEST_F(Plumbing, KeyTextsReachTheSink) {
    Sink sink;
    handler_->set_key_text_sink(&sink);
    start();
    ASSERT_EQ(ask(EST_AUTO, {"pgpk1\nR t1 public.a", "", "bad\x01"}), Outcome::OK);
    ASSERT_TRUE(wait_batches(sink, 1));
    {
        std::lock_guard<std::mutex> g(sink.mu);
        EXPECT_EQ(sink.batches, 1u);
        EXPECT_EQ(sink.dboid, 4242u);
        ASSERT_EQ(sink.texts.size(), 3u);
        EXPECT_EQ(sink.texts[0], "pgpk1\nR t1 public.a");
        EXPECT_EQ(sink.texts[1], "");
        EXPECT_EQ(sink.texts[2], ""); /* not clean: dropped */
    }
    /* no text at all: not handed over; the next batch with texts is */
    ASSERT_EQ(ask(EST_AUTO, {"", ""}), Outcome::OK);
    ASSERT_EQ(ask(EST_NATIVE, {"x"}), Outcome::OK);
    ASSERT_TRUE(wait_batches(sink, 2));
    std::lock_guard<std::mutex> g(sink.mu);
    EXPECT_EQ(sink.batches, 2u);
    ASSERT_EQ(sink.texts.size(), 1u);
    EXPECT_EQ(sink.texts[0], "x");
}

TEST_F(Plumbing, LearnedEstimatorAndAutoChain) {
    start();
    EXPECT_EQ(ask(EST_LEARNED, {"model x"}), Outcome::REFUSED);
    EXPECT_EQ(resp_->status, static_cast<uint32_t>(ST_UNKNOWN_ESTIMATOR));
    server_->stop();
    server_.reset();

    Estimator *m = registry_->serve(EST_LEARNED, std::make_unique<TextModel>());
    ASSERT_NE(m, nullptr);
    registry_->append_to_auto(m);
    EXPECT_EQ(registry_->serve(EST_MAX + 1, std::make_unique<TextModel>()), nullptr);
    start();
    for (uint32_t est : {EST_LEARNED, EST_AUTO}) {
        ASSERT_EQ(ask(est, {"model abc", "other", ""}), Outcome::OK) << est;
        EXPECT_EQ(resp_->answers[0].source, static_cast<uint32_t>(SRC_MODEL));
        EXPECT_EQ(resp_->answers[0].rows, 9.0);
        EXPECT_EQ(resp_->answers[1].source, static_cast<uint32_t>(SRC_NONE));
        EXPECT_EQ(resp_->answers[2].source, static_cast<uint32_t>(SRC_NONE));
    }
}

TEST_F(Plumbing, ModelPinGoesToTheControl) {
    start();
    req_->type = MSG_MODEL_PIN;
    req_->count = 0;
    req_->session = 3;
    EXPECT_EQ(client_->call(*req_, *resp_, kTimeoutUs), Outcome::REFUSED); /* no control */
    EXPECT_EQ(resp_->status, static_cast<uint32_t>(ST_FAILED));
    server_->stop();
    server_.reset();

    Control control;
    handler_->set_model_control(&control);
    start();
    for (uint64_t v : {3ull, 5ull, 0ull}) {
        req_->type = MSG_MODEL_PIN;
        req_->count = 0;
        req_->session = v;
        req_->dboid = 4242; /* the asking backend's database: pins are per database */
        Outcome o = client_->call(*req_, *resp_, kTimeoutUs);
        EXPECT_EQ(o, v == 5 ? Outcome::REFUSED : Outcome::OK) << v;
        EXPECT_EQ(resp_->status, v == 5 ? static_cast<uint32_t>(ST_FAILED) : static_cast<uint32_t>(ST_OK)) << v;
    }
    EXPECT_EQ(control.asked, (std::vector<uint32_t>{3, 5, 0}));
    EXPECT_EQ(control.databases, (std::vector<uint32_t>{4242, 4242, 4242}));
}

TEST_F(Plumbing, PublishedModelsAreWhatBackendsRead) {
    start();
    ModelInfo out[kMaxModels];
    EXPECT_EQ(client_->read_models(out, kMaxModels), 0);
    EXPECT_FALSE(client_->model_serving());

    std::vector<ModelInfo> models(kMaxModels + 3);
    for (uint32_t i = 0; i < models.size(); i++) {
        ModelInfo &m = models[i];
        memset(static_cast<void *>(&m), 0, sizeof m);
        m.version = i + 1;
        m.state = i == 1 ? MODEL_SERVING : MODEL_RETIRED;
        m.dboid = 5;
        m.model_qerror[0] = 1.5;
        snprintf(m.database, sizeof m.database, "db%u", i);
        memset(m.note, 'n', sizeof m.note); /* not terminated: cut by publish */
    }
    server_->publish_models(models, {{5, 2}});
    int n = client_->read_models(out, kMaxModels);
    ASSERT_EQ(n, static_cast<int>(kMaxModels));
    EXPECT_EQ(out[1].version, 2u);
    EXPECT_EQ(out[1].state, static_cast<uint32_t>(MODEL_SERVING));
    EXPECT_STREQ(out[3].database, "db3");
    EXPECT_EQ(strlen(out[0].note), sizeof out[0].note - 1);
    EXPECT_EQ(out[0].model_qerror[0], 1.5);
    EXPECT_TRUE(client_->model_serving());
    PilotdInfo d = client_->info();
    EXPECT_EQ(d.models, kMaxModels);
    EXPECT_EQ(d.serving_version, 2u);

    server_->publish_models({}, {});
    EXPECT_EQ(client_->read_models(out, kMaxModels), 0);
    EXPECT_FALSE(client_->model_serving());
}

} // namespace
