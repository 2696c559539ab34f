/* mscn_forward.cpp — see mscn_forward.h.  Mirrors TorchMscn::forward()
 * (mscn_torch.cpp): a change to one is a change to both, and test_model
 * compares them. */
#include "mscn_forward.h"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <unordered_map>

namespace pilot {
namespace model {

namespace {

constexpr uint32_t kHeads = 5;

thread_local uint64_t t_elements_computed = 0;

bool shape_ok(const DenseLayer &l, uint32_t in, uint32_t out) {
    return l.in == in && l.out == out && l.weight.size() == static_cast<size_t>(in) * out && l.bias.size() == out &&
           std::all_of(l.weight.begin(), l.weight.end(), [](float v) { return std::isfinite(v); }) &&
           std::all_of(l.bias.begin(), l.bias.end(), [](float v) { return std::isfinite(v); });
}

/* [out][in] row-major -> [in][out] for columns first..first+n of the input */
std::vector<float> input_major(const DenseLayer &l, uint32_t first, uint32_t n) {
    std::vector<float> t(static_cast<size_t>(n) * l.out);
    for (uint32_t o = 0; o < l.out; o++)
        for (uint32_t i = 0; i < n; i++)
            t[static_cast<size_t>(i) * l.out + o] = l.weight[static_cast<size_t>(o) * l.in + first + i];
    return t;
}

/* y += v * column, over n outputs: the loop the compiler vectorizes */
inline void axpy(float v, const float *column, float *y, uint32_t n) noexcept {
    for (uint32_t k = 0; k < n; k++)
        y[k] += v * column[k];
}

inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

} // namespace

uint64_t MscnForward::last_elements_computed() noexcept { return t_elements_computed; }

std::unique_ptr<MscnForward> MscnForward::build(const MscnWeights &w, const Dims &d, uint32_t hidden,
                                                std::string *why, BitmapColumns bitmap) noexcept {
    try {
        const uint32_t H = hidden;
        if (H == 0 || !shape_ok(w.tables_a, d.table, H) || !shape_ok(w.tables_b, H, H) ||
            !shape_ok(w.joins_a, d.join, H) || !shape_ok(w.joins_b, H, H) || !shape_ok(w.preds_a, d.pred, H) ||
            !shape_ok(w.preds_b, H, H) || !shape_ok(w.out1, 3 * H + d.global, H) || !shape_ok(w.out2, H, kHeads)) {
            if (why)
                *why = "network weights do not fit: a layer has another shape than features and network size call "
                       "for, or is not finite";
            return nullptr;
        }
        auto f = std::unique_ptr<MscnForward>(new MscnForward());
        f->dims_ = d;
        f->hidden_ = H;
        auto path = [&](const DenseLayer &a, const DenseLayer &b, uint32_t slice, SetPath *p) {
            p->in = a.in;
            p->a_t = input_major(a, 0, a.in);
            p->a_bias = a.bias;
            p->b_t = input_major(b, 0, H);
            p->b_bias = b.bias;
            p->proj_t = input_major(w.out1, slice * H, H);
        };
        path(w.tables_a, w.tables_b, 0, &f->tables_);
        path(w.joins_a, w.joins_b, 1, &f->joins_);
        path(w.preds_a, w.preds_b, 2, &f->preds_);
        if (bitmap.count > 0 && bitmap.first <= d.table && bitmap.count <= d.table - bitmap.first) {
            SetPath &t = f->tables_;
            t.bitmap = bitmap;
            t.bitmap_sum.assign(H, 0.0f);
            for (uint32_t i = bitmap.first; i < bitmap.first + bitmap.count; i++)
                for (uint32_t k = 0; k < H; k++)
                    t.bitmap_sum[k] += t.a_t[static_cast<size_t>(i) * H + k];
        }
        f->global_t_ = input_major(w.out1, 3 * H, d.global);
        f->out1_bias_ = w.out1.bias;
        f->out2_w_ = w.out2.weight;
        f->out2_bias_ = w.out2.bias;
        return f;
    } catch (...) {
        if (why)
            *why = "cannot build the serving network (out of memory?)";
        return nullptr;
    }
}

/* The element MLP and its projection, as one function compiled twice: for
 * AVX2 with FMA (chosen at load time on CPUs that have them) and for the
 * baseline; the inner loops are the axpys above. */
__attribute__((target_clones("arch=haswell", "default"))) void
project_element(uint32_t in, uint32_t H, const float *a_t, const float *a_bias, const float *b_t, const float *b_bias,
                const float *proj_t, uint32_t bits_first, uint32_t bits_count, const float *bits_sum, const float *x,
                float *h1, float *h2, float *proj) noexcept {
    std::copy(a_bias, a_bias + H, h1);
    uint32_t ones = 0;
    for (uint32_t i = bits_first; i < bits_first + bits_count; i++)
        ones += x[i] != 0.0f;
    /* mostly ones: sum(x_i a_i) = sum(a_i) + sum((x_i - 1) a_i) over the bitmap */
    const bool complement = bits_count > 0 && 2 * ones > bits_count;
    if (complement)
        axpy(1.0f, bits_sum, h1, H);
    for (uint32_t i = 0; i < in; i++) {
        const float v = complement && i >= bits_first && i < bits_first + bits_count ? x[i] - 1.0f : x[i];
        if (v != 0.0f)
            axpy(v, &a_t[static_cast<size_t>(i) * H], h1, H);
    }
    std::copy(b_bias, b_bias + H, h2);
    for (uint32_t j = 0; j < H; j++)
        if (h1[j] > 0.0f) /* relu */
            axpy(h1[j], &b_t[static_cast<size_t>(j) * H], h2, H);
    std::fill(proj, proj + H, 0.0f);
    for (uint32_t j = 0; j < H; j++)
        if (h2[j] > 0.0f)
            axpy(h2[j], &proj_t[static_cast<size_t>(j) * H], proj, H);
}

void MscnForward::project(const SetPath &p, const float *x, float *h1, float *h2, float *proj) const noexcept {
    project_element(p.in, hidden_, p.a_t.data(), p.a_bias.data(), p.b_t.data(), p.b_bias.data(), p.proj_t.data(),
                    p.bitmap.first, p.bitmap.count, p.bitmap_sum.data(), x, h1, h2, proj);
}

bool MscnForward::predict(const std::vector<const Features *> &x, std::vector<float> *out,
                          std::string *why) const noexcept {
    try {
        out->clear();
        t_elements_computed = 0;
        for (const Features *f : x)
            if (!features_fit(*f, dims_)) {
                if (why)
                    *why = "features do not match the network's dimensions";
                return false;
            }
        const uint32_t H = hidden_;
        std::vector<float> h1(H), h2(H), acc(H), z1(H);
        /* distinct elements of the batch, per set: row bytes -> projection */
        struct Memo {
            std::unordered_map<std::string_view, size_t> at;
            std::vector<float> proj;
        } memo[3];
        const SetPath *paths[3] = {&tables_, &joins_, &preds_};
        auto projection = [&](int set, const float *row) -> const float * {
            const SetPath &p = *paths[set];
            Memo &m = memo[set];
            std::string_view bytes(reinterpret_cast<const char *>(row), sizeof(float) * p.in);
            auto it = m.at.find(bytes);
            if (it == m.at.end()) {
                size_t slot = m.proj.size() / H;
                m.proj.resize(m.proj.size() + H);
                project(p, row, h1.data(), h2.data(), &m.proj[slot * H]);
                t_elements_computed++;
                it = m.at.emplace(bytes, slot).first;
            }
            return &m.proj[it->second * H];
        };
        out->reserve(x.size());
        for (const Features *f : x) {
            std::copy(out1_bias_.begin(), out1_bias_.end(), acc.begin());
            const float *g = f->global.data();
            for (uint32_t i = 0; i < dims_.global; i++)
                if (g[i] != 0.0f)
                    axpy(g[i], &global_t_[static_cast<size_t>(i) * H], acc.data(), H);
            /* masked means: the real rows come first (padding rows have mask 0) */
            const struct {
                int set;
                const float *rows;
                uint32_t n, dim;
            } sets[3] = {{0, f->tables.data(), f->ntables, dims_.table},
                         {1, f->joins.data(), f->real_joins, dims_.join},
                         {2, f->preds.data(), f->real_preds, dims_.pred}};
            for (const auto &s : sets) {
                if (s.n == 0)
                    continue;
                const float inv = 1.0f / static_cast<float>(s.n);
                for (uint32_t r = 0; r < s.n; r++)
                    axpy(inv, projection(s.set, s.rows + static_cast<size_t>(r) * s.dim), acc.data(), H);
            }
            for (uint32_t k = 0; k < H; k++)
                z1[k] = std::max(acc[k], 0.0f);
            float z[kHeads];
            for (uint32_t o = 0; o < kHeads; o++) {
                float v = out2_bias_[o];
                const float *wrow = &out2_w_[static_cast<size_t>(o) * H];
                for (uint32_t k = 0; k < H; k++)
                    v += wrow[k] * z1[k];
                z[o] = v;
            }
            /* the heads, as TorchMscn::forward() combines them */
            const float has_native = g[0], is_join = g[4];
            const float scratch = sigmoid(z[0]);
            const float correction = (1 - is_join) * std::tanh(z[1]) + is_join * std::tanh(z[4]);
            const float native = std::clamp(g[1] + correction, 0.0f, 1.0f);
            const float indep = std::clamp(g[3] + std::tanh(z[2]), 0.0f, 1.0f);
            const float gate = sigmoid(z[3]);
            const float join = gate * scratch + (1 - gate) * indep;
            out->push_back(has_native * native + (1 - has_native) * join);
        }
        return true;
    } catch (...) {
        out->clear();
        if (why)
            *why = "inference failed (out of memory?)";
        return false;
    }
}

} // namespace model
} // namespace pilot
