/* model_registry.cpp — see model_registry.h. */
#include "model_registry.h"

#include "conninfo.h"
#include "durable_file.h"
#include "log.h"
#include "mscn.h"
#include "pilot_protocol.h"
#include "schema_snapshot.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pilotd {

namespace pm = pilot::model;
namespace pp = pilot::proto;

namespace {

void copy_str(char *dst, size_t cap, const std::string &src) {
    pp::copy_clean_utf8(dst, cap, src.c_str(), src.size());
}


/* A model is bound to the table sizes it learned from: a table that grew or
 * shrank more than kMaxSizeChange times (pg_class.reltuples) makes it stale. */
constexpr double kMaxSizeChange = 10.0;

std::string statistics_changed(const pm::Schema &schema, const DatabaseIdentity &now) {
    for (const pm::TableInfo &t : schema.tables)
        for (const auto &[name, rows] : now.reltuples) {
            if (name != t.name || rows < 0 || t.reltuples <= 0)
                continue;
            double a = std::max(1.0, rows), b = std::max(1.0, t.reltuples);
            if (std::max(a / b, b / a) > kMaxSizeChange) {
                char msg[256];
                snprintf(msg, sizeof msg, "table %s has %.0f rows, the model learned it with %.0f", name.c_str(),
                         rows, t.reltuples);
                return msg;
            }
        }
    return "";
}

} // namespace

void LatencyHistogram::add(double us) noexcept {
    int b = us <= 1 ? 0 : static_cast<int>(std::log(us) / std::log(1.2)) + 1;
    b_[std::min(kBuckets - 1, std::max(0, b))].fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const noexcept {
    uint64_t n = 0;
    for (const auto &x : b_)
        n += x.load(std::memory_order_relaxed);
    return n;
}

double LatencyHistogram::percentile(double p) const noexcept {
    uint64_t n = count();
    if (n == 0)
        return -1;
    uint64_t want = static_cast<uint64_t>(std::ceil(p * static_cast<double>(n))), seen = 0;
    for (int b = 0; b < kBuckets; b++) {
        seen += b_[b].load(std::memory_order_relaxed);
        if (seen >= std::max<uint64_t>(1, want))
            return b == 0 ? 1.0 : std::pow(1.2, b);
    }
    return std::pow(1.2, kBuckets - 1);
}

LoadedModel::~LoadedModel() = default;

bool LoadedModel::estimate(const std::vector<std::string> &texts, const std::vector<double> &natives,
                           std::vector<double> *rows, std::vector<bool> *ok, std::vector<float> *band) const noexcept {
    try {
        rows->assign(texts.size(), 0);
        ok->assign(texts.size(), false);
        if (band)
            band->assign(texts.size(), 0.0f);
        std::vector<pm::Features> feats(texts.size());
        std::vector<const pm::Features *> x;
        std::vector<size_t> at;
        pm::SampleCache sample_cache; /* the batch's sets share base relations */
        for (size_t i = 0; i < texts.size(); i++) {
            std::string why;
            if (pm::featurize(schema, texts[i], natives[i], &feats[i], &why, &sample_cache)) {
                x.push_back(&feats[i]);
                at.push_back(i);
            } else if (why == "out of memory") {
                return false; /* not the model's answer: nothing cached */
            }
        }
        std::vector<float> pred;
        std::string why;
        if (x.empty())
            return true; /* every set declined by the featurizer */
        if (!forward->predict(x, &pred, &why))
            return false;
        for (size_t k = 0; k < at.size(); k++) {
            const pm::RuleOutcome o =
                pm::apply_rule(meta.answer_rule, *x[k], pm::label_to_rows(schema, pred[k]), natives[at[k]]);
            if (!o.answer)
                continue; /* PostgreSQL's estimate stands */
            (*rows)[at[k]] = o.rows;
            (*ok)[at[k]] = true;
            if (band) /* asked without PostgreSQL's estimate: the backend decides */
                (*band)[at[k]] = static_cast<float>(o.band);
        }
        return true;
    } catch (...) {
        ok->assign(texts.size(), false);
        return false;
    }
}

std::shared_ptr<LoadedModel> load_model_file(const std::string &path, std::string *why) noexcept {
    try {
        std::string bytes;
        if (!read_file(path, &bytes, why))
            return nullptr;
        auto m = std::make_shared<LoadedModel>();
        std::string weights;
        if (!pm::decode_model(bytes, &m->meta, &m->schema, &weights, why))
            return nullptr;
        {
            auto net = pm::Mscn::load(weights, pm::dims_of(m->schema), m->meta.hidden, why);
            if (!net)
                return nullptr;
            m->forward = pm::MscnForward::build(net->weights(), pm::dims_of(m->schema), m->meta.hidden, why,
                                                pm::bitmap_columns(m->schema));
        }
        if (!m->forward)
            return nullptr;
        m->checksum = pm::model_checksum(bytes);
        m->size_bytes = bytes.size();
        return m;
    } catch (...) {
        *why = "cannot load the model (out of memory?)";
        return nullptr;
    }
}

/* ------------------------------------------------------------------ */

void ModelRegistry::open() noexcept {
    std::lock_guard<std::mutex> g(mu_);
    try {
        if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
            LOG_WARNING("models: %s", errno_text("cannot create", dir_).c_str());
        std::string bytes, why;
        std::string path = dir_ + "/registry.json";
        uint32_t legacy_pinned = 0, legacy_serving = 0; /* the one-version form of an older pilotd */
        struct stat st;
        if (::stat(path.c_str(), &st) == 0) {
            if (!read_file(path, &bytes, &why)) {
                LOG_WARNING("models: %s", why.c_str());
            } else {
                auto j = nlohmann::json::parse(bytes, nullptr, false);
                if (j.is_discarded() || !j.is_object()) {
                    LOG_WARNING("models: %s is not valid JSON; starting with no model states", path.c_str());
                } else {
                    /* {"<database oid>": version}; a number: the format of one
                     * serving version for all, mapped to its database below */
                    auto per_database = [&](const char *key, ServingVersions *to, uint32_t *legacy) {
                        if (!j.contains(key))
                            return;
                        const auto &v = j[key];
                        if (v.is_number_unsigned())
                            *legacy = v.get<uint32_t>();
                        else if (v.is_object())
                            for (auto &[db, n] : v.items())
                                if (n.is_number_unsigned() && n.get<uint32_t>() != 0)
                                    (*to)[static_cast<uint32_t>(strtoul(db.c_str(), nullptr, 10))] =
                                        n.get<uint32_t>();
                    };
                    per_database("pinned", &pinned_, &legacy_pinned);
                    per_database("serving", &serving_versions_, &legacy_serving);
                    /* the pins a standby made as its primary serves */
                    if (j.contains("followed") && j["followed"].is_array())
                        for (const auto &db : j["followed"])
                            if (db.is_number_unsigned() && pinned_.count(db.get<uint32_t>()))
                                followed_.insert(db.get<uint32_t>());
                    if (j.contains("versions") && j["versions"].is_object())
                        for (auto &[k, v] : j["versions"].items()) {
                            uint32_t n = static_cast<uint32_t>(strtoul(k.c_str(), nullptr, 10));
                            uint32_t s = v.value("state", 0u);
                            if (n == 0 || s < pp::MODEL_VALIDATED || s > pp::MODEL_STATE_MAX)
                                continue;
                            Version &ver = versions_[n];
                            ver.state = s;
                            ver.note = v.value("note", std::string());
                        }
                }
            }
        }
        /* states from registry.json are re-checked against the files */
        std::map<uint32_t, Version> remembered;
        remembered.swap(versions_);
        scan_locked();
        auto legacy = [&](uint32_t v, ServingVersions *to) {
            auto it = versions_.find(v);
            if (v != 0 && it != versions_.end() && it->second.meta_known)
                (*to)[it->second.meta.dboid] = v;
        };
        legacy(legacy_pinned, &pinned_);
        legacy(legacy_serving, &serving_versions_);
        for (auto &[n, ver] : versions_) {
            auto it = remembered.find(n);
            if (it != remembered.end() && ver.state != pp::MODEL_REJECTED) {
                ver.state = it->second.state == pp::MODEL_SERVING ? pp::MODEL_VALIDATED : it->second.state;
                if (ver.note.empty())
                    ver.note = it->second.note;
            }
        }
        decide_locked();
    } catch (const std::exception &e) {
        LOG_ERROR("models: cannot open the model registry: %s", e.what());
    }
}

void ModelRegistry::start(uint32_t poll_ms) {
    poller_ = std::thread([this, poll_ms] {
        std::unique_lock<std::mutex> g(poll_mu_);
        while (!stopping_) {
            cv_.wait_for(g, std::chrono::milliseconds(poll_ms), [&] { return stopping_; });
            if (stopping_)
                break;
            g.unlock();
            rescan();
            g.lock();
        }
    });
}

void ModelRegistry::stop() noexcept {
    {
        std::lock_guard<std::mutex> g(poll_mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (poller_.joinable())
        poller_.join();
}

void ModelRegistry::rescan() noexcept {
    std::lock_guard<std::mutex> g(mu_);
    try {
        scan_locked();
        decide_locked();
    } catch (const std::exception &e) {
        LOG_WARNING("models: rescan failed: %s", e.what());
    }
}

std::shared_ptr<const LoadedModel> ModelRegistry::serving(uint32_t dboid) const {
    std::lock_guard<std::mutex> g(serving_mu_);
    auto it = serving_.find(dboid);
    return it == serving_.end() ? nullptr : it->second;
}

ModelRegistry::ServingVersions ModelRegistry::serving_versions() const {
    std::lock_guard<std::mutex> g(mu_);
    return serving_versions_;
}

uint32_t ModelRegistry::serving_version_locked(uint32_t dboid) const {
    auto it = serving_versions_.find(dboid);
    return it == serving_versions_.end() ? 0 : it->second;
}

void ModelRegistry::scan_locked() {
    DIR *d = opendir(dir_.c_str());
    if (!d)
        return;
    std::map<uint32_t, bool> files, markers;
    while (struct dirent *e = readdir(d)) {
        char *end = nullptr;
        unsigned long v = strtoul(e->d_name, &end, 10);
        if (end == e->d_name || v == 0 || v > 0xffffffffUL)
            continue;
        if (strcmp(end, ".model") == 0)
            files[static_cast<uint32_t>(v)] = true;
        else if (strcmp(end, ".training") == 0)
            markers[static_cast<uint32_t>(v)] = true;
    }
    closedir(d);

    /* markers of a trainer that is gone are stale */
    training_.clear();
    for (auto &[n, _] : markers) {
        std::string path = dir_ + "/" + std::to_string(n) + ".training", pid_text, why;
        if (files.count(n))
            continue;
        if (read_file(path, &pid_text, &why)) {
            long pid = strtol(pid_text.c_str(), nullptr, 10);
            if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM))
                training_[n] = true;
        }
    }
    /* versions whose file is gone */
    for (auto it = versions_.begin(); it != versions_.end();) {
        if (!files.count(it->first) && it->second.meta_known) {
            LOG_WARNING("models: version %u: its file is gone", it->first);
            it = versions_.erase(it);
        } else if (!files.count(it->first)) {
            it = versions_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto &[n, _] : files) {
        Version &ver = versions_[n];
        if (ver.meta_known || ver.state == pp::MODEL_REJECTED)
            continue;
        std::string why;
        auto m = load_model_file(dir_ + "/" + std::to_string(n) + ".model", &why);
        if (!m) {
            ver.state = pp::MODEL_REJECTED;
            ver.note = why;
            LOG_WARNING("models: version %u rejected: %s (what serves keeps serving)", n, why.c_str());
            continue;
        }
        ver.meta = m->meta;
        ver.meta_known = true;
        ver.checksum = m->checksum;
        ver.size_bytes = m->size_bytes;
        ver.loaded = m;
        LOG_INFO("models: version %u found: %llu training records, held-out q-error p50/p90/p99 model %s, "
                 "PostgreSQL %s",
                 n, static_cast<unsigned long long>(m->meta.train_records), pm::qerrors_text(m->meta.model_q).c_str(),
                 pm::qerrors_text(m->meta.native_q).c_str());
    }
}

void ModelRegistry::verify_locked(uint32_t v, Version &ver) {
    if (ver.verified || !ver.loaded)
        return;
    std::vector<std::string> tables;
    for (const auto &t : ver.loaded->schema.tables)
        tables.push_back(t.name);
    DatabaseIdentity id;
    std::string why;
    if (ver.meta.dsn.find("password=") != std::string::npos) {
        ver.note = "cannot verify its database: the training connection string had a password";
        return;
    }
    if (!database_identity(dsn_for_server_of(ver.meta.dsn, pgdata_), tables, &id, &why)) {
        ver.note = "cannot verify its database yet: " + why.substr(0, 120);
        return;
    }
    if (id.system_identifier != ver.meta.system_identifier || id.dboid != ver.meta.dboid) {
        ver.state = pp::MODEL_REJECTED;
        ver.note = "bound to database " + ver.meta.database + " of cluster " + ver.meta.system_identifier +
                   ", not this one";
    } else if (id.fingerprint != ver.meta.fingerprint) {
        ver.state = pp::MODEL_REJECTED;
        ver.note = "the tables of database " + ver.meta.database + " changed since training (schema fingerprint " +
                   ver.meta.fingerprint + ", now " + id.fingerprint + ")";
    } else if (std::string changed = statistics_changed(ver.loaded->schema, id); !changed.empty()) {
        ver.state = pp::MODEL_REJECTED;
        ver.note = "the statistics of database " + ver.meta.database + " changed since training: " + changed +
                   "; train a new version";
    } else {
        ver.verified = true;
        if (ver.note.rfind("cannot verify", 0) == 0)
            ver.note.clear();
        return;
    }
    LOG_WARNING("models: version %u rejected: %s", v, ver.note.c_str());
    if (serving_version_locked(ver.meta.dboid) == v)
        serve_locked(ver.meta.dboid, 0, "its database changed");
}

void ModelRegistry::serve_locked(uint32_t dboid, uint32_t v, const char *why) {
    const uint32_t current = serving_version_locked(dboid);
    bool loaded;
    {
        std::lock_guard<std::mutex> g(serving_mu_);
        loaded = serving_.count(dboid) != 0;
    }
    if (v == current && (v == 0 || loaded))
        return;
    uint32_t old = current == v ? 0 : current; /* v again: after a restart */
    if (old && versions_.count(old) && versions_[old].state == pp::MODEL_SERVING)
        versions_[old].state = pp::MODEL_RETIRED;
    std::shared_ptr<const LoadedModel> next;
    if (v) {
        Version &ver = versions_[v];
        ver.state = pp::MODEL_SERVING;
        next = ver.loaded;
    }
    {
        std::lock_guard<std::mutex> g(serving_mu_);
        if (next)
            serving_[dboid] = next;
        else
            serving_.erase(dboid);
    }
    if (v)
        serving_versions_[dboid] = v;
    else
        serving_versions_.erase(dboid);
    if (v)
        LOG_INFO("models: version %u serves database %u now (%s)%s", v, dboid, why,
                 old ? (", version " + std::to_string(old) + " retired").c_str() : "");
    else if (old)
        LOG_INFO("models: version %u stopped serving database %u (%s); PostgreSQL's estimates are used", old, dboid,
                 why);
}

void ModelRegistry::decide_locked() {
    for (auto &[n, ver] : versions_)
        if (ver.state != pp::MODEL_REJECTED)
            verify_locked(n, ver);

    /* quality gate for versions not yet judged */
    for (auto &[n, ver] : versions_) {
        if (ver.state != pp::MODEL_VALIDATED || !ver.verified || !ver.note.empty())
            continue;
        const pm::ModelMeta &m = ver.meta;
        if (!(m.model_q.mean_log < m.native_q.mean_log)) {
            ver.state = pp::MODEL_REJECTED;
            ver.note = "not better than PostgreSQL on held-out feedback (q-error p50/p90/p99 " + pm::qerrors_text(m.model_q) +
                       " vs " + pm::qerrors_text(m.native_q) + ")";
        } else if (m.compared_version && !(m.model_q.mean_log < m.compared_q.mean_log)) {
            ver.state = pp::MODEL_REJECTED;
            ver.note = "not better than version " + std::to_string(m.compared_version) +
                       " on held-out feedback (q-error p50/p90/p99 " + pm::qerrors_text(m.model_q) + " vs " + pm::qerrors_text(m.compared_q) + ")";
        } else {
            ver.note = "beats PostgreSQL (" + pm::qerrors_text(m.model_q) + " vs " + pm::qerrors_text(m.native_q) + ")" +
                       (m.compared_version ? " and version " + std::to_string(m.compared_version) : std::string());
        }
        if (ver.state == pp::MODEL_REJECTED) {
            LOG_INFO("models: version %u rejected: %s", n, ver.note.c_str());
            ver.loaded.reset();
        }
    }
    /* each database on its own: the databases of the versions, and those
     * that serve or pin one (a version whose file went away) */
    std::set<uint32_t> databases;
    for (auto &[n, ver] : versions_)
        if (ver.meta_known)
            databases.insert(ver.meta.dboid);
    for (auto &[db, _] : serving_versions_)
        databases.insert(db);
    for (auto &[db, _] : pinned_)
        databases.insert(db);
    for (uint32_t db : databases)
        decide_database_locked(db);
    /* retired and rejected versions need no network in memory */
    for (auto &[n, ver] : versions_)
        if (serving_version_locked(ver.meta.dboid) != n &&
            (ver.state == pp::MODEL_RETIRED || ver.state == pp::MODEL_REJECTED))
            ver.loaded.reset();
    save_locked();
    publish_locked();
}

void ModelRegistry::decide_database_locked(uint32_t dboid) {
    auto bound_here = [&](const Version &ver) { return ver.meta_known && ver.meta.dboid == dboid; };
    auto p = pinned_.find(dboid);
    if (p != pinned_.end()) {
        auto it = versions_.find(p->second);
        if (it != versions_.end() && bound_here(it->second) && it->second.state != pp::MODEL_REJECTED &&
            it->second.verified && it->second.loaded) {
            serve_locked(dboid, p->second, "pinned");
            return;
        }
    }
    /* the newest version that passed serves; the current one stays otherwise */
    const uint32_t current = serving_version_locked(dboid);
    uint32_t best = 0;
    for (auto &[n, ver] : versions_)
        if (bound_here(ver) && (ver.state == pp::MODEL_VALIDATED || ver.state == pp::MODEL_SERVING) &&
            ver.verified && ver.loaded && ver.note.rfind("beats", 0) == 0)
            best = n;
    if (best == 0 && current && versions_.count(current) && versions_[current].state == pp::MODEL_SERVING &&
        versions_[current].loaded)
        best = current;
    bool loaded;
    {
        std::lock_guard<std::mutex> g(serving_mu_);
        loaded = serving_.count(dboid) != 0;
    }
    if (best != current || (best && !loaded))
        serve_locked(dboid, best, "newest version that beats PostgreSQL and its predecessor");
}

bool ModelRegistry::pin(uint32_t version, uint32_t dboid, std::string *why) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    try {
        const bool was_followed = followed_.erase(dboid) != 0;
        if (pin_locked(version, dboid, why))
            return true;
        if (was_followed)
            followed_.insert(dboid);
        return false;
    } catch (...) {
        *why = "out of memory";
        return false;
    }
}

bool ModelRegistry::follow(uint32_t version, uint32_t dboid, std::string *why) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    try {
        followed_.insert(dboid); /* before: pin_locked() saves it */
        if (pin_locked(version, dboid, why))
            return true;
        if (!pinned_.count(dboid))
            followed_.erase(dboid);
        return false;
    } catch (...) {
        *why = "out of memory";
        return false;
    }
}

size_t ModelRegistry::release_followed() noexcept {
    std::lock_guard<std::mutex> g(mu_);
    try {
        if (followed_.empty())
            return 0;
        const size_t n = followed_.size();
        for (uint32_t dboid : followed_) {
            LOG_INFO("models: database %u: version %u is no longer pinned as the primary's (this server is a "
                     "primary now); it serves until a version trained here beats it",
                     dboid, pinned_.count(dboid) ? pinned_.at(dboid) : 0);
            pinned_.erase(dboid);
        }
        followed_.clear();
        decide_locked();
        return n;
    } catch (...) {
        return 0;
    }
}

bool ModelRegistry::follows(uint32_t dboid) const {
    std::lock_guard<std::mutex> g(mu_);
    return followed_.count(dboid) != 0;
}

/* with mu_ held */
bool ModelRegistry::pin_locked(uint32_t version, uint32_t dboid, std::string *why) {
    if (version == 0) {
        pinned_.erase(dboid);
        LOG_INFO("models: database %u unpinned", dboid);
        /* the registry chooses again among versions that passed */
        for (auto &[n, ver] : versions_)
            if (ver.state == pp::MODEL_RETIRED && ver.note.rfind("beats", 0) == 0 && !ver.loaded) {
                std::string w;
                ver.loaded = load_model_file(dir_ + "/" + std::to_string(n) + ".model", &w);
            }
        decide_locked();
        return true;
    }
    auto it = versions_.find(version);
    if (it == versions_.end() || !it->second.meta_known) {
        *why = "no intact model version " + std::to_string(version);
        return false;
    }
    Version &ver = it->second;
    if (ver.meta.dboid != dboid) {
        *why = "version " + std::to_string(version) + " is bound to database " + ver.meta.database + " (oid " +
               std::to_string(ver.meta.dboid) + "): pin it from there";
        return false;
    }
    if (!ver.loaded) {
        std::string w;
        ver.loaded = load_model_file(dir_ + "/" + std::to_string(version) + ".model", &w);
        if (!ver.loaded) {
            *why = w;
            return false;
        }
    }
    if (!ver.verified)
        verify_locked(version, ver);
    if (!ver.verified) {
        *why = ver.note;
        return false;
    }
    if (ver.state == pp::MODEL_REJECTED && ver.note.rfind("not better", 0) != 0) {
        *why = ver.note; /* incompatible: never served */
        return false;
    }
    pinned_[dboid] = version;
    LOG_INFO("models: version %u pinned for database %u", version, dboid);
    if (ver.state == pp::MODEL_REJECTED)
        ver.state = pp::MODEL_VALIDATED;
    serve_locked(dboid, 0, "pin");
    serve_locked(dboid, version, "pinned");
    save_locked();
    publish_locked();
    return true;
}

void ModelRegistry::save_locked() {
    nlohmann::json pinned = nlohmann::json::object(), serving = nlohmann::json::object();
    for (auto &[db, v] : pinned_)
        pinned[std::to_string(db)] = v;
    for (auto &[db, v] : serving_versions_)
        serving[std::to_string(db)] = v;
    nlohmann::json followed = nlohmann::json::array();
    for (uint32_t db : followed_)
        if (pinned_.count(db))
            followed.push_back(db);
    nlohmann::json j = {{"pinned", pinned},
                        {"followed", followed},
                        {"serving", serving},
                        {"versions", nlohmann::json::object()}};
    for (auto &[n, ver] : versions_)
        j["versions"][std::to_string(n)] = {{"state", ver.state}, {"note", ver.note}};
    std::string text = j.dump(2) + "\n", error;
    if (read_only_ || text == last_saved_)
        return;
    last_saved_ = text;
    if (replace_file(dir_, dir_ + "/registry.json", text.data(), text.size(), &error) == Replaced::Failed)
        LOG_WARNING("models: cannot save the registry: %s", error.c_str());
}

void ModelRegistry::publish_locked() {
    if (!publish_)
        return;
    std::vector<pp::ModelInfo> out;
    /* the newest versions first: training ones, then the files */
    for (auto it = training_.rbegin(); it != training_.rend() && out.size() < pp::kMaxModels; ++it) {
        pp::ModelInfo mi{};
        mi.version = it->first;
        mi.state = pp::MODEL_TRAINING;
        out.push_back(mi);
    }
    for (auto it = versions_.rbegin(); it != versions_.rend() && out.size() < pp::kMaxModels; ++it) {
        const Version &ver = it->second;
        pp::ModelInfo mi{};
        mi.version = it->first;
        mi.state = ver.state;
        mi.pinned = ver.meta_known && pinned_.count(ver.meta.dboid) && pinned_.at(ver.meta.dboid) == it->first;
        if (ver.meta_known) {
            const pm::ModelMeta &m = ver.meta;
            mi.dboid = m.dboid;
            mi.created_unix = m.created_unix;
            mi.train_records = m.train_records;
            mi.validation_records = m.validation_records;
            mi.size_bytes = ver.size_bytes;
            mi.model_qerror[0] = m.model_q.p50;
            mi.model_qerror[1] = m.model_q.p90;
            mi.model_qerror[2] = m.model_q.p99;
            mi.native_qerror[0] = m.native_q.p50;
            mi.native_qerror[1] = m.native_q.p90;
            mi.native_qerror[2] = m.native_q.p99;
            copy_str(mi.database, sizeof mi.database, m.database);
        }
        mi.inference_us[0] = mi.inference_us[1] = -1;
        if (ver.loaded) {
            mi.served = ver.loaded->served.load(std::memory_order_relaxed);
            mi.declined = ver.loaded->declined.load(std::memory_order_relaxed);
            mi.batches = ver.loaded->inference.count();
            mi.inference_us[0] = ver.loaded->inference.percentile(0.5);
            mi.inference_us[1] = ver.loaded->inference.percentile(0.99);
        }
        copy_str(mi.checksum, sizeof mi.checksum, ver.checksum);
        copy_str(mi.note, sizeof mi.note, ver.note);
        out.push_back(mi);
    }
    publish_(out, serving_versions_);
}

/* ------------------------------------------------------------------ */

void LearnedEstimator::estimate(const EstimateBatch &batch, pp::EstimateAnswer *out) {
    /* the version serving the asking backend's database, if any */
    std::shared_ptr<const LoadedModel> m = registry_.serving(batch.dboid);
    if (!m || m->meta.dboid != batch.dboid)
        return;
    try {
        std::vector<uint64_t> keys;
        std::vector<double> natives;
        std::vector<uint32_t> at;
        for (uint32_t i = 0; i < batch.n; i++) {
            if (out[i].source != pp::SRC_NONE)
                continue; /* answered earlier in the chain */
            std::string_view t = batch.item_text(i);
            if (t.empty() || pp::stable_hash64(t.data(), t.size()) != batch.items[i].key)
                continue;
            keys.push_back(batch.items[i].key);
            double nat = batch.items[i].native_rows;
            natives.push_back(std::isfinite(nat) ? nat : -1);
            at.push_back(i);
        }
        if (keys.empty())
            return;
        const size_t n = keys.size();
        std::unique_ptr<bool[]> found(new bool[n]);
        std::vector<CachedAnswer> answers(n);
        if (m->answers.find(keys.data(), natives.data(), n, found.get(), answers.data()) < n) {
            /* the sets not answered before: one featurization and forward pass */
            std::vector<std::string> texts;
            std::vector<double> miss_natives;
            std::vector<uint64_t> miss_keys;
            std::vector<size_t> miss_at;
            for (size_t k = 0; k < n; k++)
                if (!found[k]) {
                    texts.emplace_back(batch.item_text(at[k]));
                    miss_natives.push_back(natives[k]);
                    miss_keys.push_back(keys[k]);
                    miss_at.push_back(k);
                }
            std::vector<double> rows;
            std::vector<bool> ok;
            std::vector<float> band;
            const uint64_t t0 = pp::monotonic_us();
            const bool ran = m->estimate(texts, miss_natives, &rows, &ok, &band);
            const uint64_t inference_us = pp::monotonic_us() - t0;
            m->inference.add(static_cast<double>(inference_us));
            registry_.note_inference(inference_us);
            std::vector<CachedAnswer> computed(texts.size());
            if (ran)
                for (size_t j = 0; j < texts.size(); j++) {
                    computed[j].ok = ok[j];
                    computed[j].rows = rows[j];
                    computed[j].band = band[j];
                    answers[miss_at[j]] = computed[j];
                }
            if (ran) /* a failure (out of memory) is not the model's answer */
                m->answers.put(miss_keys.data(), miss_natives.data(), computed.data(), computed.size());
        }
        uint64_t served = 0;
        for (size_t k = 0; k < n; k++)
            if (answers[k].ok) {
                out[at[k]].rows = answers[k].rows;
                out[at[k]].source = pp::SRC_MODEL;
                out[at[k]].keep_native_within = answers[k].band;
                served++;
            }
        m->served.fetch_add(served, std::memory_order_relaxed);
        m->declined.fetch_add(at.size() - served, std::memory_order_relaxed);
    } catch (...) {
        /* unanswered: PostgreSQL's estimates */
    }
}

} // namespace pilotd
