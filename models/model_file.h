/*
 * model_file.h — one trained model version as one file: its metadata, the
 * Schema it was trained with (tables, columns, ranges, samples, joins) and
 * the network's weights, closed by a checksum of everything before it.
 *
 *   "PGPILOTM" | u32 format | u64 n | JSON (metadata + schema) | u64 n | weights | u64 checksum
 *
 * Little-endian integers; the checksum is stable_hash64 (common/pilot_protocol.h)
 * of all preceding bytes.  A file that fails any check is rejected with a
 * reason: a model is either loaded whole or not at all.
 */
#ifndef PILOT_MODELS_MODEL_FILE_H
#define PILOT_MODELS_MODEL_FILE_H

#include "answer_rule.h"
#include "featurize.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pilot {
namespace model {

constexpr uint32_t kModelFormat = 2;

struct QErrors {
    double p50 = 0, p90 = 0, p99 = 0, max = 0, mean_log = 0;
};

struct ModelMeta {
    uint32_t version = 0;
    uint64_t created_unix = 0;
    uint32_t hidden = 0;
    uint64_t seed = 0; /* of the initial weights and the batch order: the same feedback and seed train the same network */
    /* the database it is bound to */
    std::string system_identifier;
    std::string database;
    uint32_t dboid = 0;
    std::string fingerprint; /* schema fingerprint of its tables (see daemon/learn/schema_snapshot.h) */
    std::string dsn;         /* where it was trained from, without password */
    /* training */
    uint64_t train_records = 0;
    uint64_t validation_records = 0;
    uint64_t declined_records = 0; /* feedback the featurizer could not describe */
    double train_seconds = 0;
    QErrors model_q, native_q;     /* on the held-out validation records */
    uint32_t compared_version = 0; /* the serving version it was compared with (0: none) */
    QErrors compared_q;            /* that version on the same records */
    /* serving: when PostgreSQL's estimate stands (answer_rule.h); calibrated
     * on held-out templates */
    AnswerRule answer_rule;
    uint64_t validation_worse_2x = 0;  /* held-out records the model made more than 2x worse than PostgreSQL */
    uint64_t validation_better_2x = 0; /* and more than 2x better */
};

/* Serializes; never fails except on allocation. */
std::string encode_model(const ModelMeta &meta, const Schema &schema, const std::string &weights);

/* Parses and checks a whole file image.  False with *why on any defect. */
bool decode_model(const std::string &bytes, ModelMeta *meta, Schema *schema, std::string *weights,
                  std::string *why) noexcept;

/* Hex of the checksum stored at the end of a file image ("" if too short). */
std::string model_checksum(const std::string &bytes);

/* "p50/p90/p99", two decimals: how logs, notes and `pilotd train` show it. */
std::string qerrors_text(const QErrors &q);

/* q-error summary of estimates against truths (same length). */
QErrors summarize_qerrors(const std::vector<double> &estimates, const std::vector<double> &truths);

} // namespace model
} // namespace pilot

#endif
