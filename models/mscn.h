/*
 * mscn.h — the set-convolution network (MSCN, Kipf et al. CIDR 2019) that
 * turns Features (featurize.h) into a normalized log-cardinality label.
 *
 *   tables ─ MLP ─ masked mean ┐
 *   joins  ─ MLP ─ masked mean ├─ concat ─ MLP ─ 4 heads ─ label in [0, 1]
 *   preds  ─ MLP ─ masked mean ┤
 *   global ───────────────────-┘
 *
 * Base relations (PostgreSQL's estimate is an input): PostgreSQL's label plus
 * a tanh correction.  Joins: a learned gate mixes a from-scratch sigmoid head
 * with the featurizer's independence estimate plus a tanh correction.  The
 * corrections and the gate start at zero, so an untrained network starts
 * from those estimates rather than from noise.
 *
 * Trained on the absolute error of the log (the log of the q-error) after a
 * warm start on squared error.  Inference for one planning batch is one forward
 * pass.  libtorch lives only in mscn.cpp: this header is plain C++.
 */
#ifndef PILOT_MODELS_MSCN_H
#define PILOT_MODELS_MSCN_H

#include "featurize.h"
#include "mscn_forward.h"

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pilot {
namespace model {

struct TrainOptions {
    uint32_t epochs = 80;
    uint32_t batch = 64;
    double learning_rate = 1e-3;
    uint64_t seed = 42;
    double max_seconds = 120;   /* stops early (between epochs) past this */
    std::function<void(uint32_t epoch, double loss)> progress; /* optional, once per epoch */
    const std::atomic<bool> *cancel = nullptr; /* set: train() throws TrainingCancelled soon */
    /* optional early stopping: after each epoch the mean absolute label error
     * on these records is measured, and the weights of the best epoch are
     * kept (they are not trained on) */
    const std::vector<const Features *> *dev_x = nullptr;
    const std::vector<float> *dev_y = nullptr;
    uint32_t *best_epoch = nullptr; /* out: the epoch kept (0: the last) */
};

struct TrainingCancelled : std::runtime_error {
    TrainingCancelled() : std::runtime_error("training cancelled") {}
};

/*
 * The network.  libtorch is big (~0.5 s to load, ~100 MB resident), so it is
 * not linked into pilotd: the implementation lives in libpilot_mscn.so
 * (mscn_torch.cpp), loaded with dlopen() the first time a network is created
 * or loaded.  `pilotd status`, --help and a pilotd without any model never
 * load it.  The library is looked for in $PILOTD_MODEL_LIB (a path), next to
 * the executable, then in ../lib/pg_pilot/ relative to it.
 */
class Mscn {
  public:
    virtual ~Mscn() = default;
    /* A fresh network for features of these dimensions.  Throws on failure
     * (also when the runtime library cannot be loaded). */
    static std::unique_ptr<Mscn> create(const Dims &dims, uint32_t hidden, uint64_t seed);
    /* A network from save() bytes; nullptr and *why when the bytes are not a
     * network of these dimensions.  Never throws. */
    static std::unique_ptr<Mscn> load(const std::string &bytes, const Dims &dims, uint32_t hidden,
                                      std::string *why) noexcept;
    /* Loads the runtime library if needed; false and *why when it cannot. */
    static bool runtime_available(std::string *why) noexcept;

    /* Trains on x (labels y: rows_to_label()).  Throws on failure. */
    virtual void train(const std::vector<const Features *> &x, const std::vector<float> &y,
                       const TrainOptions &o) = 0;
    /* One forward pass; labels in [0, 1].  False (with *why) on failure; never throws. */
    virtual bool predict(const std::vector<const Features *> &x, std::vector<float> *out,
                         std::string *why) const noexcept = 0;
    /* Weights as bytes (libtorch archive). */
    virtual std::string save() const = 0;
    /* Weights as plain arrays, for the serving forward pass (mscn_forward.h). */
    virtual MscnWeights weights() const = 0;
    virtual uint64_t parameters() const = 0;
};

/* The runtime library's entry points (mscn_torch.cpp), resolved by name;
 * the version changes with the Mscn interface (v2: weights()). */
extern "C" {
using MscnCreateFn = Mscn *(const Dims *dims, uint32_t hidden, uint64_t seed); /* throws */
using MscnLoadFn = Mscn *(const char *bytes, size_t n, const Dims *dims, uint32_t hidden, std::string *why);
}
constexpr const char *kMscnCreateSymbol = "pilot_mscn_create_v2";
constexpr const char *kMscnLoadSymbol = "pilot_mscn_load_v2";

} // namespace model
} // namespace pilot

#endif
