/* request_handler.cpp — see request_handler.h. */
#include "request_handler.h"

#include "log.h"

#include <exception>

namespace pilotd {

using namespace pilot::proto;

namespace {
constexpr uint32_t kBadLogPerWindow = 10;
constexpr uint64_t kBadLogWindowUs = 60ull * 1000000ull;

const char *msg_name(uint32_t t) {
    switch (t) {
    case MSG_PING: return "PING";
    case MSG_ESTIMATE: return "ESTIMATE";
    case MSG_ORACLE_BEGIN: return "ORACLE_BEGIN";
    case MSG_ORACLE_ADD: return "ORACLE_ADD";
    case MSG_ORACLE_COMMIT: return "ORACLE_COMMIT";
    case MSG_ORACLE_CLEAR: return "ORACLE_CLEAR";
    case MSG_MODEL_PIN: return "MODEL_PIN";
    case MSG_ADVISOR: return "ADVISOR";
    case MSG_GUARD_PIN: return "GUARD_PIN";
    case MSG_GUARD_RESET: return "GUARD_RESET";
    default: return "invalid";
    }
}
} // namespace

RequestHandler::RequestHandler(EstimatorRegistry &registry, OracleStore &oracle)
    : registry_(registry), oracle_(oracle) {}

HandleResult RequestHandler::handle(uint32_t slot, uint32_t client_pid, const Request &req,
                                    Response &resp) noexcept {
    HandleResult r;
    resp.seq = req.seq;
    resp.status = ST_OK;
    resp.count = 0;
    resp.oracle_entries = 0;
    try {
        if (!validate_request(req)) {
            r.bad_request = true;
            resp.status = ST_BAD_REQUEST;
            log_bad_request(slot, client_pid, req);
            return r;
        }
        switch (req.type) {
        case MSG_PING:
            break;
        case MSG_ESTIMATE:
            estimate(req, resp, r);
            break;
        case MSG_MODEL_PIN:
            model_pin(slot, client_pid, req, resp);
            break;
        case MSG_ADVISOR:
            advisor(slot, client_pid, req, resp);
            break;
        case MSG_GUARD_PIN:
            guard_pin(slot, client_pid, req, resp);
            break;
        case MSG_GUARD_RESET:
            if (guard_ == nullptr) {
                resp.status = ST_FAILED;
            } else {
                const size_t n = guard_->reset(req.dboid);
                LOG_INFO("guard: %zu query templates of database %u reset by pid %u (slot %u): they explore again",
                         n, req.dboid, client_pid, slot);
            }
            break;
        default:
            oracle(slot, client_pid, req, resp);
            break;
        }
    } catch (const std::exception &e) {
        LOG_ERROR("slot %u: %s request failed: %s", slot, msg_name(req.type), e.what());
        resp.status = ST_FAILED;
        resp.count = 0;
    } catch (...) {
        LOG_ERROR("slot %u: %s request failed", slot, msg_name(req.type));
        resp.status = ST_FAILED;
        resp.count = 0;
    }
    return r;
}

void RequestHandler::estimate(const Request &req, Response &resp, HandleResult &r) {
    Estimator *e = registry_.find(req.estimator);
    if (e == nullptr) {
        resp.status = ST_UNKNOWN_ESTIMATOR;
        return;
    }
    const uint64_t start_us = pilot::proto::monotonic_us();
    uint32_t n = req.count; /* validated: <= kMaxItems, texts within text_used */
    EstimateBatch batch{req.items, n, req.dboid, req.text, req.text_used};
    clear_answers(resp.answers, n);
    e->estimate(batch, resp.answers);
    r.items = n;
    r.answered = sanitize_answers(resp.answers, n);
    resp.count = n;
    for (uint32_t i = 0; i < n; i++)
        if (resp.answers[i].source <= SRC_MAX)
            by_source_[resp.answers[i].source].fetch_add(1, std::memory_order_relaxed);
    estimate_times_.add(pilot::proto::monotonic_us() - start_us);
    if (sink_ != nullptr && req.text_used > 0) {
        for (uint32_t i = 0; i < n; i++) {
            if (req.items[i].text_len > 0) {
                r.key_texts = true; /* the sink sees it once the answer is out */
                break;
            }
        }
    }
}

void RequestHandler::note_key_texts(const Request &req) noexcept {
    if (sink_ == nullptr || req.type != MSG_ESTIMATE || req.count > kMaxItems || req.text_used > kMaxText)
        return;
    EstimateBatch batch{req.items, req.count, req.dboid, req.text, req.text_used};
    sink_->note(batch);
}

void RequestHandler::advisor(uint32_t slot, uint32_t client_pid, const Request &req, Response &resp) {
    std::string why = "pilotd runs without an index advisor (start it with --advisor-dsn)";
    uint64_t id = 0;
    if (advisor_control_ != nullptr && advisor_control_->submit(req.advisor, req.dboid, &id, &why)) {
        resp.oracle_entries = id;
        LOG_INFO("index advisor: job %llu (action %u) queued for pid %u (slot %u), database oid %u",
                 static_cast<unsigned long long>(id), req.advisor.action, client_pid, slot, req.dboid);
        return;
    }
    resp.status = ST_FAILED;
    LOG_WARNING("pid %u (slot %u): index advisor job refused: %s", client_pid, slot, why.c_str());
}

void RequestHandler::guard_pin(uint32_t slot, uint32_t client_pid, const Request &req, Response &resp) {
    /* validated: query id non-zero, flags a GuardArm */
    const GuardTemplateKey key{req.dboid, req.session};
    const uint32_t arm = req.flags;
    std::string why = "no plan guard in this pilotd";
    if (guard_ != nullptr && guard_->pin(key, arm, &why)) {
        LOG_INFO("guard: query %lld (database %u) %s%s by pid %u (slot %u)", static_cast<long long>(key.query_id),
                 key.dboid, arm == ARM_UNKNOWN ? "unpinned" : "pinned to ",
                 arm == ARM_UNKNOWN ? "" : guard_arm_name(arm), client_pid, slot);
        return;
    }
    resp.status = ST_FAILED;
    LOG_WARNING("pid %u (slot %u): cannot pin query %lld: %s", client_pid, slot, static_cast<long long>(key.query_id),
                why.c_str());
}

void RequestHandler::model_pin(uint32_t slot, uint32_t client_pid, const Request &req, Response &resp) {
    const uint32_t version = static_cast<uint32_t>(req.session); /* validated: <= UINT32_MAX */
    std::string why;
    if (model_control_ == nullptr) {
        why = "no learned model in this pilotd";
    } else if (model_control_->pin(version, req.dboid, &why)) {
        if (version == 0)
            LOG_INFO("model unpinned by pid %u (slot %u)", client_pid, slot);
        else
            LOG_INFO("model version %u pinned by pid %u (slot %u)", version, client_pid, slot);
        return;
    }
    resp.status = ST_FAILED;
    if (version == 0)
        LOG_WARNING("pid %u (slot %u): cannot unpin the model: %s", client_pid, slot, why.c_str());
    else
        LOG_WARNING("pid %u (slot %u): cannot pin model version %u: %s", client_pid, slot, version,
                    why.c_str());
}

void RequestHandler::oracle(uint32_t slot, uint32_t client_pid, const Request &req, Response &resp) {
    std::string error;
    switch (req.type) {
    case MSG_ORACLE_BEGIN: {
        std::lock_guard<std::mutex> g(sessions_mu_);
        Session &s = sessions_[slot];
        s.id = req.seq;
        s.replace = (req.flags & ORACLE_REPLACE) != 0;
        s.entries.clear();
        s.entries.shrink_to_fit();
        LOG_DEBUG("slot %u (pid %u): oracle load session %llu begun (%s)", slot, client_pid,
                  static_cast<unsigned long long>(s.id), s.replace ? "replace" : "merge");
        break;
    }
    case MSG_ORACLE_ADD: {
        std::lock_guard<std::mutex> g(sessions_mu_);
        auto it = sessions_.find(slot);
        if (it == sessions_.end() || it->second.id != req.session || req.session == 0) {
            resp.status = ST_NO_SESSION;
            break;
        }
        Session &s = it->second;
        if (s.entries.size() + req.count > kMaxStagedEntries) {
            LOG_ERROR("slot %u (pid %u): oracle load session %llu exceeds %zu entries: discarded", slot,
                      client_pid, static_cast<unsigned long long>(s.id), kMaxStagedEntries);
            sessions_.erase(it);
            resp.status = ST_FAILED;
            break;
        }
        s.entries.insert(s.entries.end(), req.entries, req.entries + req.count);
        break;
    }
    case MSG_ORACLE_COMMIT: {
        Session s;
        {
            std::lock_guard<std::mutex> g(sessions_mu_);
            auto it = sessions_.find(slot);
            if (it == sessions_.end() || it->second.id != req.session || req.session == 0) {
                resp.status = ST_NO_SESSION;
                break;
            }
            s = std::move(it->second);
            sessions_.erase(it);
        }
        uint64_t n = 0;
        if (!oracle_.commit(s.entries, s.replace, &n, &error)) {
            LOG_ERROR("slot %u (pid %u): oracle load of %zu entries NOT committed: %s", slot, client_pid,
                      s.entries.size(), error.c_str());
            resp.status = ST_FAILED;
            break;
        }
        LOG_INFO("oracle load committed: %zu entries (%s) from pid %u, %llu entries in total",
                 s.entries.size(), s.replace ? "replace" : "merge", client_pid,
                 static_cast<unsigned long long>(n));
        break;
    }
    case MSG_ORACLE_CLEAR: {
        if (!oracle_.clear(&error)) {
            LOG_ERROR("slot %u (pid %u): oracle clear failed: %s", slot, client_pid, error.c_str());
            resp.status = ST_FAILED;
            break;
        }
        LOG_INFO("oracle cleared by pid %u", client_pid);
        break;
    }
    default:
        resp.status = ST_BAD_REQUEST; /* unreachable: validated */
        break;
    }
    resp.oracle_entries = oracle_.size();
}

void RequestHandler::log_bad_request(uint32_t slot, uint32_t client_pid, const Request &req) {
    if (!log_enabled(LogLevel::Warning))
        return;
    uint64_t now = monotonic_us();
    uint64_t suppressed = 0;
    {
        std::lock_guard<std::mutex> g(bad_log_mu_);
        if (bad_log_window_start_us_ == 0 || now - bad_log_window_start_us_ >= kBadLogWindowUs) {
            suppressed = bad_suppressed_;
            bad_suppressed_ = 0;
            bad_log_window_start_us_ = now;
            bad_logged_in_window_ = 0;
        }
        if (bad_logged_in_window_ >= kBadLogPerWindow) {
            bad_suppressed_++;
            return;
        }
        bad_logged_in_window_++;
    }
    if (suppressed)
        LOG_WARNING("%llu more bad requests were not logged", static_cast<unsigned long long>(suppressed));
    LOG_WARNING("bad request in slot %u from pid %u: type %u (%s), estimator %u, count %u (max %u), "
                "text %u bytes (max %u)",
                slot, client_pid, req.type, msg_name(req.type), req.estimator, req.count, kMaxItems,
                req.text_used, kMaxText);
}

} // namespace pilotd
