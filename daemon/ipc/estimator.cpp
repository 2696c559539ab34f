/* estimator.cpp — see estimator.h. */
#include "estimator.h"

#include <cmath>

namespace pilotd {

using namespace pilot::proto;

void clear_answers(EstimateAnswer *out, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        out[i].rows = 0;
        out[i].source = SRC_NONE;
        out[i].keep_native_within = 0;
    }
}

uint32_t sanitize_answers(EstimateAnswer *out, uint32_t n) {
    uint32_t answered = 0;
    for (uint32_t i = 0; i < n; i++) {
        EstimateAnswer &a = out[i];
        a.keep_native_within = 0;
        if (a.source == SRC_NONE || a.source > SRC_MAX || !std::isfinite(a.rows) || a.rows < 0) {
            a.source = SRC_NONE;
            a.rows = 0;
        } else {
            answered++;
        }
    }
    return answered;
}

std::string_view EstimateBatch::item_text(uint32_t i) const {
    if (i >= n || text == nullptr)
        return {};
    const EstimateItem &it = items[i];
    /* bounds were validated; checked again, cheaply, for any other caller */
    if (it.text_len == 0 || it.text_off > text_used || it.text_len > text_used - it.text_off)
        return {};
    return std::string_view(text + it.text_off, it.text_len);
}

void OracleEstimator::estimate(const EstimateBatch &batch, EstimateAnswer *out) {
    const EstimateItem *items = batch.items;
    const uint32_t n = batch.n;
    OracleSnapshot snap = store_.snapshot(); /* one consistent table per batch */
    if (snap->empty())
        return;
    for (uint32_t i = 0; i < n; i++) {
        auto it = snap->find(items[i].key);
        if (it != snap->end()) {
            out[i].rows = it->second;
            out[i].source = SRC_ORACLE;
        }
    }
}

void MemoEstimator::estimate(const EstimateBatch &batch, EstimateAnswer *out) {
    const EstimateItem *items = batch.items;
    uint32_t n = batch.n;
    double rows[kMaxItems];
    bool known[kMaxItems];
    if (n > kMaxItems)
        n = kMaxItems;
    store_.lookup(batch.dboid, items, n, rows, known); /* one shared lock per batch */
    for (uint32_t i = 0; i < n; i++) {
        if (known[i]) {
            out[i].rows = rows[i];
            out[i].source = SRC_MEMO;
        }
    }
}

void ChainEstimator::estimate(const EstimateBatch &batch, EstimateAnswer *out) {
    EstimateAnswer stage[kMaxItems];
    EstimateBatch b = batch;
    if (b.n > kMaxItems)
        b.n = kMaxItems;
    const uint32_t n = b.n;
    for (Estimator *e : chain_) {
        clear_answers(stage, n);
        e->estimate(b, stage);
        sanitize_answers(stage, n);
        bool all = true;
        for (uint32_t i = 0; i < n; i++) {
            if (out[i].source == SRC_NONE && stage[i].source != SRC_NONE)
                out[i] = stage[i];
            all = all && out[i].source != SRC_NONE;
        }
        if (all)
            break;
    }
}

EstimatorRegistry::EstimatorRegistry(const OracleStore &oracle, const MemoStore &memo) {
    Estimator *native = add(std::make_unique<NativeEstimator>());
    Estimator *oracle_est = add(std::make_unique<OracleEstimator>(oracle));
    Estimator *memo_est = add(std::make_unique<MemoEstimator>(memo));
    /* EST_AUTO's chain: injected cardinalities first, then what execution
     * observed; the learned model is appended with append_to_auto() */
    auto chain = std::make_unique<ChainEstimator>("auto", std::vector<Estimator *>{oracle_est, memo_est});
    auto_chain_ = chain.get();
    add(std::move(chain));

    by_id_[EST_AUTO] = auto_chain_;
    by_id_[EST_NATIVE] = native;
    by_id_[EST_ORACLE] = oracle_est;
    by_id_[EST_MEMO] = memo_est;
}

Estimator *EstimatorRegistry::add(std::unique_ptr<Estimator> e) {
    owned_.push_back(std::move(e));
    return owned_.back().get();
}

Estimator *EstimatorRegistry::serve(uint32_t id, std::unique_ptr<Estimator> e) {
    if (id >= by_id_.size() || !e)
        return nullptr;
    Estimator *p = add(std::move(e));
    by_id_[id] = p;
    return p;
}

void EstimatorRegistry::append_to_auto(Estimator *e) {
    if (e != nullptr)
        auto_chain_->append(e);
}

Estimator *EstimatorRegistry::find(uint32_t id) const { return id < by_id_.size() ? by_id_[id] : nullptr; }

} // namespace pilotd
