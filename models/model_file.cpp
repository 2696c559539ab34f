/* model_file.cpp — see model_file.h. */
#include "model_file.h"

#include "pilot_protocol.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace pilot {
namespace model {

namespace {

using nlohmann::json;
constexpr char kMagic[8] = {'P', 'G', 'P', 'I', 'L', 'O', 'T', 'M'};

void put_u64(std::string &s, uint64_t v) {
    for (int i = 0; i < 8; i++)
        s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u32(std::string &s, uint32_t v) {
    for (int i = 0; i < 4; i++)
        s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_u64(const std::string &s, size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | static_cast<uint8_t>(s[at + i]);
    return v;
}
uint32_t get_u32(const std::string &s, size_t at) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | static_cast<uint8_t>(s[at + i]);
    return v;
}

json q_json(const QErrors &q) {
    return {{"p50", q.p50}, {"p90", q.p90}, {"p99", q.p99}, {"max", q.max}, {"mean_log", q.mean_log}};
}
QErrors q_from(const json &j) {
    QErrors q;
    q.p50 = j.at("p50").get<double>();
    q.p90 = j.at("p90").get<double>();
    q.p99 = j.at("p99").get<double>();
    q.max = j.at("max").get<double>();
    q.mean_log = j.at("mean_log").get<double>();
    return q;
}

/* the rule's cells, row by row: [relation bucket][hit bucket] */
json rule_json(const AnswerRule &r) {
    json cells = json::array();
    for (const auto &row : r.cells)
        for (const RuleCell &c : row)
            cells.push_back({{"within", c.keep_native_within}, {"beyond", c.keep_native_beyond},
                             {"calibrated_on", c.calibrated_on}});
    return {{"rel_buckets", AnswerRule::kRelBuckets}, {"hit_buckets", AnswerRule::kHitBuckets}, {"cells", cells}};
}
bool rule_from(const json &j, AnswerRule *r) {
    if (j.at("rel_buckets").get<int>() != AnswerRule::kRelBuckets ||
        j.at("hit_buckets").get<int>() != AnswerRule::kHitBuckets)
        return false;
    const json &cells = j.at("cells");
    if (!cells.is_array() || cells.size() != AnswerRule::kRelBuckets * AnswerRule::kHitBuckets)
        return false;
    size_t i = 0;
    for (auto &row : r->cells)
        for (RuleCell &c : row) {
            const json &cj = cells.at(i++);
            c.keep_native_within = cj.at("within").get<double>();
            c.keep_native_beyond = cj.at("beyond").get<double>();
            c.calibrated_on = cj.at("calibrated_on").get<uint32_t>();
        }
    return r->plausible();
}

/* NaN and infinities do not survive JSON: the sample stores NULL flags apart */
double finite_or_zero(double v) { return std::isfinite(v) ? v : 0.0; }

} // namespace

std::string encode_model(const ModelMeta &m, const Schema &s, const std::string &weights) {
    json meta = {{"version", m.version},
                 {"created_unix", m.created_unix},
                 {"hidden", m.hidden},
                 {"system_identifier", m.system_identifier},
                 {"database", m.database},
                 {"dboid", m.dboid},
                 {"fingerprint", m.fingerprint},
                 {"dsn", m.dsn},
                 {"train_records", m.train_records},
                 {"validation_records", m.validation_records},
                 {"declined_records", m.declined_records},
                 {"train_seconds", m.train_seconds},
                 {"model_q", q_json(m.model_q)},
                 {"native_q", q_json(m.native_q)},
                 {"compared_version", m.compared_version},
                 {"compared_q", q_json(m.compared_q)},
                 {"seed", m.seed},
                 {"answer_rule", rule_json(m.answer_rule)},
                 {"validation_worse_2x", m.validation_worse_2x},
                 {"validation_better_2x", m.validation_better_2x}};
    json tables = json::array();
    for (const TableInfo &t : s.tables) {
        json cols = json::array();
        for (size_t c = 0; c < t.columns.size(); c++) {
            const ColumnInfo &ci = t.columns[c];
            json col = {{"name", ci.name}, {"type", ci.type}, {"kind", static_cast<int>(ci.kind)},
                        {"min", finite_or_zero(ci.min)}, {"max", finite_or_zero(ci.max)}};
            if (c < t.null.size())
                col["null"] = t.null[c];
            if (c < t.num.size() && !t.num[c].empty()) {
                std::vector<double> v(t.num[c].size());
                std::transform(t.num[c].begin(), t.num[c].end(), v.begin(), finite_or_zero);
                col["num"] = v;
            }
            if (c < t.text.size() && !t.text[c].empty()) {
                /* bytes as stored: JSON wants UTF-8, the database may not be */
                json texts = json::array();
                for (const std::string &x : t.text[c])
                    texts.push_back(json::binary_t(std::vector<uint8_t>(x.begin(), x.end())));
                col["text"] = texts;
            }
            cols.push_back(col);
        }
        tables.push_back({{"name", t.name}, {"reltuples", t.reltuples}, {"sample_rows", t.sample_rows},
                          {"columns", cols}});
    }
    json doc = {{"meta", meta},
                {"schema", {{"tables", tables}, {"joins", s.joins}, {"sample_size", s.sample_size},
                            {"max_log_rows", s.max_log_rows}}}};
    std::vector<uint8_t> body = json::to_cbor(doc);

    std::string out(kMagic, sizeof kMagic);
    put_u32(out, kModelFormat);
    put_u64(out, body.size());
    out.append(body.begin(), body.end());
    put_u64(out, weights.size());
    out += weights;
    put_u64(out, proto::stable_hash64(out.data(), out.size()));
    return out;
}

std::string model_checksum(const std::string &bytes) {
    if (bytes.size() < 8)
        return "";
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(get_u64(bytes, bytes.size() - 8)));
    return hex;
}

bool decode_model(const std::string &b, ModelMeta *m, Schema *s, std::string *weights, std::string *why) noexcept {
    try {
        const size_t head = sizeof kMagic + 4 + 8;
        if (b.size() < head + 8 + 8 || memcmp(b.data(), kMagic, sizeof kMagic) != 0) {
            *why = "not a pg_pilot model file";
            return false;
        }
        if (get_u64(b, b.size() - 8) != proto::stable_hash64(b.data(), b.size() - 8)) {
            *why = "checksum mismatch: the file is damaged";
            return false;
        }
        uint32_t format = get_u32(b, sizeof kMagic);
        if (format != kModelFormat) {
            *why = "model file format " + std::to_string(format) + ", this pilotd reads format " +
                   std::to_string(kModelFormat);
            return false;
        }
        uint64_t n = get_u64(b, sizeof kMagic + 4);
        if (n > b.size() - head - 16) {
            *why = "truncated model file";
            return false;
        }
        json doc = json::from_cbor(b.begin() + head, b.begin() + head + n);
        uint64_t wn = get_u64(b, head + n);
        if (wn != b.size() - head - n - 16) {
            *why = "truncated model file";
            return false;
        }
        *weights = b.substr(head + n + 8, wn);

        const json &meta = doc.at("meta");
        m->version = meta.at("version").get<uint32_t>();
        m->created_unix = meta.at("created_unix").get<uint64_t>();
        m->hidden = meta.at("hidden").get<uint32_t>();
        m->system_identifier = meta.at("system_identifier").get<std::string>();
        m->database = meta.at("database").get<std::string>();
        m->dboid = meta.at("dboid").get<uint32_t>();
        m->fingerprint = meta.at("fingerprint").get<std::string>();
        m->dsn = meta.at("dsn").get<std::string>();
        m->train_records = meta.at("train_records").get<uint64_t>();
        m->validation_records = meta.at("validation_records").get<uint64_t>();
        m->declined_records = meta.at("declined_records").get<uint64_t>();
        m->train_seconds = meta.at("train_seconds").get<double>();
        m->model_q = q_from(meta.at("model_q"));
        m->native_q = q_from(meta.at("native_q"));
        m->compared_version = meta.at("compared_version").get<uint32_t>();
        m->compared_q = q_from(meta.at("compared_q"));
        m->seed = meta.value("seed", static_cast<uint64_t>(0));
        m->validation_worse_2x = meta.value("validation_worse_2x", static_cast<uint64_t>(0));
        m->validation_better_2x = meta.value("validation_better_2x", static_cast<uint64_t>(0));
        if (meta.contains("answer_rule")) {
            if (!rule_from(meta.at("answer_rule"), &m->answer_rule)) {
                *why = "implausible answer rule";
                return false;
            }
        } else {
            /* written before the trust region: one band for base relations, one for joins */
            const double base = meta.value("decline_below_native", 0.0), join = meta.value("decline_below_join", 0.0);
            m->answer_rule = AnswerRule::bands(std::min(base, kNoLimit), std::min(join, kNoLimit));
        }
        if (!m->answer_rule.plausible()) {
            *why = "implausible decline threshold";
            return false;
        }
        if (m->hidden == 0 || m->hidden > 4096) {
            *why = "implausible network size";
            return false;
        }

        const json &sj = doc.at("schema");
        *s = Schema();
        s->joins = sj.at("joins").get<std::vector<std::string>>();
        s->sample_size = sj.at("sample_size").get<uint32_t>();
        s->max_log_rows = sj.at("max_log_rows").get<double>();
        if (s->sample_size > 100000 || !(s->max_log_rows >= 1) || !std::isfinite(s->max_log_rows)) {
            *why = "implausible schema section";
            return false;
        }
        m->answer_rule.ceiling_rows = std::exp(s->max_log_rows - 1.0); /* the largest count trained on */
        for (const json &tj : sj.at("tables")) {
            TableInfo t;
            t.name = tj.at("name").get<std::string>();
            t.reltuples = tj.at("reltuples").get<double>();
            t.sample_rows = tj.at("sample_rows").get<uint32_t>();
            if (t.sample_rows > s->sample_size) {
                *why = "table " + t.name + ": sample larger than the bitmap";
                return false;
            }
            for (const json &cj : tj.at("columns")) {
                ColumnInfo c;
                c.name = cj.at("name").get<std::string>();
                c.type = cj.at("type").get<std::string>();
                int kind = cj.at("kind").get<int>();
                if (kind < 0 || kind > static_cast<int>(ValueKind::Other)) {
                    *why = "column " + c.name + ": unknown value kind";
                    return false;
                }
                c.kind = static_cast<ValueKind>(kind);
                c.min = cj.at("min").get<double>();
                c.max = cj.at("max").get<double>();
                t.columns.push_back(c);
                t.null.push_back(cj.contains("null") ? cj["null"].get<std::vector<uint8_t>>() : std::vector<uint8_t>());
                t.num.push_back(cj.contains("num") ? cj["num"].get<std::vector<double>>() : std::vector<double>());
                std::vector<std::string> texts;
                if (cj.contains("text"))
                    for (const json &x : cj["text"]) {
                        const auto &bin = x.get_binary();
                        texts.emplace_back(bin.begin(), bin.end());
                    }
                t.text.push_back(std::move(texts));
                /* every sample vector is either absent or one value per row */
                size_t rows = t.sample_rows;
                if ((!t.null.back().empty() && t.null.back().size() != rows) ||
                    (!t.num.back().empty() && t.num.back().size() != rows) ||
                    (!t.text.back().empty() && t.text.back().size() != rows)) {
                    *why = "table " + t.name + ": sample of column " + c.name + " has the wrong length";
                    return false;
                }
            }
            s->tables.push_back(std::move(t));
        }
        s->index();
        return true;
    } catch (const std::exception &e) {
        *why = std::string("unreadable model file: ") + e.what();
    } catch (...) {
        *why = "unreadable model file";
    }
    return false;
}

std::string qerrors_text(const QErrors &q) {
    char b[96];
    snprintf(b, sizeof b, "%.2f/%.2f/%.2f", q.p50, q.p90, q.p99);
    return b;
}

QErrors summarize_qerrors(const std::vector<double> &est, const std::vector<double> &truth) {
    QErrors q;
    std::vector<double> e;
    e.reserve(est.size());
    double sum_log = 0;
    for (size_t i = 0; i < est.size() && i < truth.size(); i++) {
        const double v = qerror(est[i], truth[i]);
        e.push_back(v);
        sum_log += std::log(v);
    }
    if (e.empty())
        return q;
    std::sort(e.begin(), e.end());
    auto pct = [&](double p) { return e[std::min(e.size() - 1, static_cast<size_t>(p * (e.size() - 1) + 0.5))]; };
    q.p50 = pct(0.5);
    q.p90 = pct(0.9);
    q.p99 = pct(0.99);
    q.max = e.back();
    q.mean_log = sum_log / e.size();
    return q;
}

} // namespace model
} // namespace pilot
