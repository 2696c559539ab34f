/*
 * mscn_forward.h — the serving forward pass of the network of mscn.h in plain
 * C++, from the trained weights.  libtorch trains; this answers.
 *
 * Why not libtorch: a planning batch is a handful of small sets, and
 * libtorch's per-operator dispatch, padding and allocation cost about 0.4 ms
 * a batch where the arithmetic needs tens of microseconds.  The function is
 * the same (a unit test holds it to libtorch's outputs within 1e-5); the
 * evaluation order exploits what a planning batch looks like:
 *   - sub-plans of one query share their base relations, joins and
 *     predicates: each distinct set element is computed once per batch;
 *   - the first layer after the masked means is linear, so each element is
 *     projected through its slice of that layer once, and a set only averages
 *     the projections (W · mean(h) = mean(W · h));
 *   - inputs are one-hot codes and sample bitmaps, and hidden activations
 *     are ReLUs: mostly zeros, skipped (weights stored input-major);
 *   - a sample bitmap with more ones than zeros (a relation whose predicates
 *     keep most rows) starts from the sum of all its columns and subtracts
 *     the zeros: an unfiltered table costs nothing for its 256 bits.
 */
#ifndef PILOT_MODELS_MSCN_FORWARD_H
#define PILOT_MODELS_MSCN_FORWARD_H

#include "featurize.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pilot {
namespace model {

/* A fully connected layer as libtorch's Linear holds it: y = W x + b with
 * weight [out][in] row-major. */
struct DenseLayer {
    uint32_t in = 0, out = 0;
    std::vector<float> weight; /* out * in */
    std::vector<float> bias;   /* out */
};

/* Every weight of the network (mscn.h), by the module it belongs to. */
struct MscnWeights {
    DenseLayer tables_a, tables_b; /* the table set's element MLP */
    DenseLayer joins_a, joins_b;
    DenseLayer preds_a, preds_b;
    DenseLayer out1; /* [hidden] <- [3 * hidden + global] */
    DenseLayer out2; /* [5 heads] <- [hidden] */
};

/* Where the table set's input holds the sample bitmap (featurize.h):
 * columns [first, first + count), each 0 or 1. */
struct BitmapColumns {
    uint32_t first = 0, count = 0;
};
inline BitmapColumns bitmap_columns(const Schema &s) {
    return {static_cast<uint32_t>(s.tables.size()), s.sample_size};
}

class MscnForward {
  public:
    /* nullptr and *why when the weights do not have the shapes these
     * dimensions call for, or are not finite.  bitmap: none, or within the
     * table input.  Never throws. */
    static std::unique_ptr<MscnForward> build(const MscnWeights &w, const Dims &dims, uint32_t hidden,
                                              std::string *why, BitmapColumns bitmap = BitmapColumns()) noexcept;

    /* Labels in [0, 1], one per x, as Mscn::predict().  False (with *why)
     * when a feature vector does not fit the dimensions; never throws. */
    bool predict(const std::vector<const Features *> &x, std::vector<float> *out,
                 std::string *why) const noexcept;

    /* The element projections computed by the last predict() of this thread
     * (distinct set elements): how much sharing a batch had.  For tests. */
    static uint64_t last_elements_computed() noexcept;

  private:
    /* One set's element MLP, with its slice of out1, input-major. */
    struct SetPath {
        uint32_t in = 0;
        std::vector<float> a_t, a_bias; /* [in][hidden], [hidden] */
        std::vector<float> b_t, b_bias; /* [hidden][hidden] (input-major), [hidden] */
        std::vector<float> proj_t;      /* [hidden][hidden]: out1's columns for this set, input-major */
        BitmapColumns bitmap;           /* count 0: none */
        std::vector<float> bitmap_sum;  /* [hidden]: the sum of a_t over the bitmap's columns */
    };
    SetPath tables_, joins_, preds_;
    std::vector<float> global_t_; /* [global][hidden]: out1's columns for the global inputs */
    std::vector<float> out1_bias_;
    std::vector<float> out2_w_, out2_bias_; /* [5][hidden], [5] */
    Dims dims_;
    uint32_t hidden_ = 0;

    /* The projection of one set element: out1_slice · relu(B relu(A x + a) + b). */
    void project(const SetPath &p, const float *x, float *h1, float *h2, float *proj) const noexcept;
};

} // namespace model
} // namespace pilot

#endif
