/* mscn_torch.cpp — the network of mscn.h with libtorch: the only translation
 * unit that includes libtorch, built into libpilot_mscn.so (see mscn.h). */
#include "mscn.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

namespace pilot {
namespace model {

namespace {

struct SetMlp : torch::nn::Module {
    torch::nn::Linear a{nullptr}, b{nullptr};
    SetMlp(int64_t in, int64_t hidden) {
        a = register_module("a", torch::nn::Linear(in, hidden));
        b = register_module("b", torch::nn::Linear(hidden, hidden));
    }
    /* x [B, N, in], mask [B, N, 1] -> [B, hidden]: masked mean over the set */
    torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &mask) {
        auto h = torch::relu(b->forward(torch::relu(a->forward(x))));
        auto s = (h * mask).sum(1);
        auto n = mask.sum(1).clamp_min(1.0);
        return s / n;
    }
};

struct Net : torch::nn::Module {
    std::shared_ptr<SetMlp> tables, joins, preds;
    torch::nn::Linear out1{nullptr}, out2{nullptr};
    Net(const Dims &d, int64_t hidden) {
        tables = register_module("tables", std::make_shared<SetMlp>(d.table, hidden));
        joins = register_module("joins", std::make_shared<SetMlp>(d.join, hidden));
        preds = register_module("preds", std::make_shared<SetMlp>(d.pred, hidden));
        out1 = register_module("out1", torch::nn::Linear(3 * hidden + d.global, hidden));
        out2 = register_module("out2", torch::nn::Linear(hidden, 5));
        /* the corrections and the gate start at exactly 0: an untrained
         * network reproduces PostgreSQL's estimate where it has it, and
         * otherwise mixes the independence estimate half and half with the
         * from-scratch head */
        torch::NoGradGuard guard;
        for (int64_t row : {1, 2, 3, 4}) {
            out2->weight[row].zero_();
            out2->bias[row].zero_();
        }
    }
};

struct Batch {
    torch::Tensor t, tm, j, jm, p, pm, g;
};

/* Pads the sets of x[idx] into dense tensors. */
Batch make_batch(const std::vector<const Features *> &x, const std::vector<size_t> &idx, const Dims &d) {
    const int64_t B = static_cast<int64_t>(idx.size());
    uint32_t nt = 1, nj = 1, np = 1;
    for (size_t i : idx) {
        nt = std::max(nt, x[i]->ntables);
        nj = std::max(nj, x[i]->njoins);
        np = std::max(np, x[i]->npreds);
    }
    Batch b;
    b.t = torch::zeros({B, nt, static_cast<int64_t>(d.table)});
    b.tm = torch::zeros({B, nt, 1});
    b.j = torch::zeros({B, nj, static_cast<int64_t>(d.join)});
    b.jm = torch::zeros({B, nj, 1});
    b.p = torch::zeros({B, np, static_cast<int64_t>(d.pred)});
    b.pm = torch::zeros({B, np, 1});
    b.g = torch::zeros({B, static_cast<int64_t>(d.global)});
    float *t = b.t.data_ptr<float>(), *tm = b.tm.data_ptr<float>();
    float *j = b.j.data_ptr<float>(), *jm = b.jm.data_ptr<float>();
    float *p = b.p.data_ptr<float>(), *pm = b.pm.data_ptr<float>();
    float *g = b.g.data_ptr<float>();
    for (int64_t r = 0; r < B; r++) {
        const Features &f = *x[idx[r]];
        std::copy(f.tables.begin(), f.tables.end(), t + r * nt * d.table);
        std::fill(tm + r * nt, tm + r * nt + f.ntables, 1.0f);
        std::copy(f.joins.begin(), f.joins.end(), j + r * nj * d.join);
        std::fill(jm + r * nj, jm + r * nj + f.real_joins, 1.0f);
        std::copy(f.preds.begin(), f.preds.end(), p + r * np * d.pred);
        std::fill(pm + r * np, pm + r * np + f.real_preds, 1.0f);
        std::copy(f.global.begin(), f.global.end(), g + r * d.global);
    }
    return b;
}

} // namespace

class TorchMscn final : public Mscn {
  public:
    Dims dims;
    int64_t hidden;
    std::shared_ptr<Net> net;

    void train(const std::vector<const Features *> &x, const std::vector<float> &y, const TrainOptions &o) override;
    bool predict(const std::vector<const Features *> &x, std::vector<float> *out,
                 std::string *why) const noexcept override;
    std::string save() const override;
    uint64_t parameters() const override;
    MscnWeights weights() const override;

    /* Heads: (0) a label from scratch, (1) a correction of PostgreSQL's
     * estimate, (2) a correction of the independence estimate, (3) a gate.
     * Where PostgreSQL's estimate is an input (base relations) the prediction
     * is (1); elsewhere (joins) the gate mixes (0) and (2), so the network
     * leans on the independence estimate where it is a good start (key /
     * foreign-key joins) and learns from scratch where it is not. */
    torch::Tensor forward(const Batch &b) const {
        auto ht = net->tables->forward(b.t, b.tm);
        auto hj = net->joins->forward(b.j, b.jm);
        auto hp = net->preds->forward(b.p, b.pm);
        auto h = torch::cat({ht, hj, hp, b.g}, 1);
        auto z = net->out2->forward(torch::relu(net->out1->forward(h)));
        auto has_native = b.g.select(1, 0);
        auto is_join = b.g.select(1, 4);
        auto scratch = torch::sigmoid(z.select(1, 0));
        /* base relations and joins correct PostgreSQL's estimate with heads of
         * their own: its base estimates are usually close, its join estimates
         * are where correlations make it miss */
        auto correction = (1 - is_join) * torch::tanh(z.select(1, 1)) + is_join * torch::tanh(z.select(1, 4));
        auto native = (b.g.select(1, 1) + correction).clamp(0.0, 1.0);
        auto indep = (b.g.select(1, 3) + torch::tanh(z.select(1, 2))).clamp(0.0, 1.0);
        auto gate = torch::sigmoid(z.select(1, 3));
        auto join = gate * scratch + (1 - gate) * indep;
        return has_native * native + (1 - has_native) * join;
    }
};

std::unique_ptr<TorchMscn> create_net(const Dims &dims, uint32_t hidden, uint64_t seed) {
    /* serving runs one request per worker thread: no intra-op thread pool */
    static const bool threads_set = [] {
        torch::set_num_threads(1);
        return true;
    }();
    (void)threads_set;
    torch::manual_seed(seed);
    auto m = std::make_unique<TorchMscn>();
    m->dims = dims;
    m->hidden = hidden;
    m->net = std::make_shared<Net>(dims, hidden);
    return m;
}

std::unique_ptr<TorchMscn> load_net(const std::string &bytes, const Dims &dims, uint32_t hidden,
                                    std::string *why) noexcept {
    try {
        auto m = create_net(dims, hidden, 0);
        /* Module::load() takes tensors of any shape: check them ourselves */
        std::vector<std::vector<int64_t>> expected;
        for (const auto &p : m->net->named_parameters())
            expected.push_back(p.value().sizes().vec());
        std::istringstream in(bytes);
        torch::serialize::InputArchive archive;
        archive.load_from(in);
        m->net->load(archive);
        size_t i = 0;
        for (const auto &p : m->net->named_parameters()) {
            if (i >= expected.size() || p.value().sizes().vec() != expected[i] ||
                !torch::isfinite(p.value()).all().item<bool>()) {
                if (why)
                    *why = "network weights do not fit: parameter " + p.key() +
                           " has another shape than features and network size call for, or is not finite";
                return nullptr;
            }
            i++;
        }
        m->net->eval();
        return m;
    } catch (const std::exception &e) {
        if (why) {
            std::string msg = e.what();
            *why = "network weights unreadable: " + msg.substr(0, msg.find('\n'));
        }
    } catch (...) {
        if (why)
            *why = "network weights unreadable";
    }
    return nullptr;
}

std::string TorchMscn::save() const {
    torch::serialize::OutputArchive archive;
    net->save(archive);
    std::ostringstream out;
    archive.save_to(out);
    return out.str();
}

MscnWeights TorchMscn::weights() const {
    auto copy = [](const torch::nn::Linear &l) {
        DenseLayer d;
        auto w = l->weight.detach().contiguous();
        auto b = l->bias.detach().contiguous();
        d.out = static_cast<uint32_t>(w.size(0));
        d.in = static_cast<uint32_t>(w.size(1));
        d.weight.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
        d.bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + b.numel());
        return d;
    };
    MscnWeights m;
    m.tables_a = copy(net->tables->a);
    m.tables_b = copy(net->tables->b);
    m.joins_a = copy(net->joins->a);
    m.joins_b = copy(net->joins->b);
    m.preds_a = copy(net->preds->a);
    m.preds_b = copy(net->preds->b);
    m.out1 = copy(net->out1);
    m.out2 = copy(net->out2);
    return m;
}

uint64_t TorchMscn::parameters() const {
    uint64_t n = 0;
    for (const auto &p : net->parameters())
        n += static_cast<uint64_t>(p.numel());
    return n;
}

void TorchMscn::train(const std::vector<const Features *> &x, const std::vector<float> &y, const TrainOptions &o) {
    if (x.size() != y.size() || x.empty())
        throw std::invalid_argument("training needs as many labels as examples, and at least one");
    for (const Features *f : x)
        if (!features_fit(*f, dims))
            throw std::invalid_argument("features do not match the network's dimensions");
    torch::manual_seed(o.seed);
    auto &model = *net;
    model.train();
    torch::optim::Adam opt(model.parameters(), torch::optim::AdamOptions(o.learning_rate));
    std::vector<size_t> order(x.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(o.seed);
    const auto start = std::chrono::steady_clock::now();
    const uint32_t warm = std::max<uint32_t>(1, o.epochs / 3);
    const bool has_dev = o.dev_x && o.dev_y && !o.dev_x->empty() && o.dev_x->size() == o.dev_y->size();
    Batch dev_batch;
    torch::Tensor dev_target;
    std::vector<torch::Tensor> params = model.parameters(), best;
    double best_dev = std::numeric_limits<double>::infinity();
    uint32_t best_epoch = 0;
    if (has_dev) {
        for (const Features *f : *o.dev_x)
            if (!features_fit(*f, dims))
                throw std::invalid_argument("features do not match the network's dimensions");
        std::vector<size_t> all(o.dev_x->size());
        std::iota(all.begin(), all.end(), 0);
        dev_batch = make_batch(*o.dev_x, all, dims);
        dev_target = torch::tensor(*o.dev_y);
        best.resize(params.size());
    }
    for (uint32_t epoch = 0; epoch < o.epochs; epoch++) {
        std::shuffle(order.begin(), order.end(), rng);
        double total = 0;
        size_t batches = 0;
        for (size_t s = 0; s < order.size(); s += o.batch) {
            if (o.cancel && o.cancel->load(std::memory_order_relaxed))
                throw TrainingCancelled();
            std::vector<size_t> idx(order.begin() + s, order.begin() + std::min(order.size(), s + o.batch));
            Batch b = make_batch(x, idx, dims);
            std::vector<float> yb(idx.size());
            for (size_t i = 0; i < idx.size(); i++)
                yb[i] = y[idx[i]];
            auto target = torch::from_blob(yb.data(), {static_cast<int64_t>(yb.size())}).clone();
            auto pred = forward(b);
            /* squared error first (smooth start), then absolute error of the
             * log (the log of the q-error: what is reported) */
            auto loss = epoch < warm ? (pred - target).pow(2).mean() : (pred - target).abs().mean();
            opt.zero_grad();
            loss.backward();
            opt.step();
            total += loss.item<double>();
            batches++;
        }
        if (has_dev) {
            c10::InferenceMode guard;
            double dev = (forward(dev_batch) - dev_target).abs().mean().item<double>();
            if (dev < best_dev) {
                best_dev = dev;
                best_epoch = epoch + 1;
                for (size_t i = 0; i < params.size(); i++)
                    best[i] = params[i].detach().clone();
            }
        }
        if (o.progress)
            o.progress(epoch + 1, batches ? total / batches : 0);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (secs > o.max_seconds)
            break;
    }
    if (has_dev && best_epoch > 0) {
        torch::NoGradGuard guard;
        for (size_t i = 0; i < params.size(); i++)
            params[i].copy_(best[i]);
    }
    if (o.best_epoch)
        *o.best_epoch = best_epoch;
    model.eval();
}

bool TorchMscn::predict(const std::vector<const Features *> &x, std::vector<float> *out,
                        std::string *why) const noexcept {
    try {
        out->clear();
        if (x.empty())
            return true;
        for (const Features *f : x)
            if (!features_fit(*f, dims)) {
                if (why)
                    *why = "features do not match the network's dimensions";
                return false;
            }
        c10::InferenceMode guard;
        std::vector<size_t> idx(x.size());
        std::iota(idx.begin(), idx.end(), 0);
        Batch b = make_batch(x, idx, dims);
        auto pred = forward(b).contiguous();
        const float *p = pred.data_ptr<float>();
        out->assign(p, p + x.size());
        return true;
    } catch (const std::exception &e) {
        if (why)
            *why = std::string("inference failed: ") + e.what();
    } catch (...) {
        if (why)
            *why = "inference failed";
    }
    return false;
}

} // namespace model
} // namespace pilot

/* the entry points mscn.cpp resolves with dlsym() */
extern "C" __attribute__((visibility("default"))) pilot::model::Mscn *
pilot_mscn_create_v2(const pilot::model::Dims *dims, uint32_t hidden, uint64_t seed) {
    return pilot::model::create_net(*dims, hidden, seed).release();
}

extern "C" __attribute__((visibility("default"))) pilot::model::Mscn *
pilot_mscn_load_v2(const char *bytes, size_t n, const pilot::model::Dims *dims, uint32_t hidden, std::string *why) {
    return pilot::model::load_net(std::string(bytes, n), *dims, hidden, why).release();
}
