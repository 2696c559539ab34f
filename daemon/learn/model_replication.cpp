/* model_replication.cpp — see model_replication.h. */
#include "model_replication.h"

#include "conninfo.h"
#include "durable_file.h"
#include "log.h"
#include "model_file.h"
#include "pq_session.h"

#include <libpq-fe.h>

#include <chrono>
#include <cstring>
#include <vector>

namespace pilotd {

namespace {

/* a PGresult freed on every path */
struct Result {
    PGresult *r;
    explicit Result(PGresult *res) : r(res) {}
    ~Result() { PQclear(r); }
    bool ok(ExecStatusType want) const { return PQresultStatus(r) == want; }
};

std::string pq_error(pg_conn *c) {
    std::string e = PQerrorMessage(c);
    while (!e.empty() && (e.back() == '\n' || e.back() == ' '))
        e.pop_back();
    return e.substr(0, 300);
}

} // namespace

void ModelReplication::start() {
    thread_ = std::thread([this] { run(); });
}

void ModelReplication::stop() noexcept {
    {
        std::lock_guard<std::mutex> g(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
    disconnect();
}

void ModelReplication::disconnect() noexcept {
    if (conn_ != nullptr)
        PQfinish(conn_);
    conn_ = nullptr;
    published_known_ = false;
}

void ModelReplication::run() noexcept {
    for (;;) {
        std::string error;
        bool ok = false;
        try {
            ok = step(&error);
        } catch (const std::exception &e) {
            error = e.what();
        }
        if (!ok && error != last_error_)
            LOG_WARNING("models: replication through pg_pilot.model_versions: %s (tried again every %u ms)",
                        error.c_str(), poll_ms_);
        else if (ok && !last_error_.empty())
            LOG_INFO("models: replication through pg_pilot.model_versions works again");
        last_error_ = ok ? "" : error;
        if (!ok)
            disconnect(); /* a fresh connection (and role check) next time */
        std::unique_lock<std::mutex> g(mu_);
        if (cv_.wait_for(g, std::chrono::milliseconds(poll_ms_), [&] { return stopping_; }))
            return;
    }
}

bool ModelReplication::step(std::string *error) {
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
        disconnect();
        /* always this server: a standby's store DSN may name its primary */
        const std::string dsn = dsn_for_server_of(dsn_on_local_server(dsn_), pgdata_);
        conn_ = PQconnectdb(dsn.c_str());
        if (PQstatus(conn_) != CONNECTION_OK) {
            *error = "cannot connect (" + redacted_dsn(dsn_) + "): " + pq_error(conn_);
            return false;
        }
        if (!pilotd_own_session(conn_, error))
            return false;
        PQclear(PQexec(conn_, "SET application_name = 'pilotd model replication'"));
    }
    Result have(PQexec(conn_, "SELECT pg_catalog.pg_is_in_recovery(), "
                              "pg_catalog.to_regclass('pg_pilot.model_versions') IS NOT NULL"));
    if (!have.ok(PGRES_TUPLES_OK) || PQntuples(have.r) != 1) {
        *error = pq_error(conn_);
        return false;
    }
    if (strcmp(PQgetvalue(have.r, 0, 1), "t") != 0) {
        *error = "the store's database has no table pg_pilot.model_versions (extension older than 0.8): run "
                 "ALTER EXTENSION pg_pilot UPDATE there";
        return false;
    }
    const bool standby = strcmp(PQgetvalue(have.r, 0, 0), "t") == 0;
    if (standby != standby_)
        LOG_INFO("models: %s", standby ? "this server is a standby: pilotd serves the versions its primary serves "
                                         "(pg_pilot.model_versions, by replication)"
                                       : "this server is a primary: pilotd publishes the versions it serves in "
                                         "pg_pilot.model_versions");
    standby_ = standby;
    if (!standby)
        registry_.release_followed(); /* promoted (now or before a restart) */
    return standby ? follow(error) : publish(error);
}

bool ModelReplication::publish(std::string *error) {
    const ModelRegistry::ServingVersions serving = registry_.serving_versions();
    if (published_known_ && serving == published_)
        return true;
    auto exec = [&](const char *sql) {
        Result r(PQexec(conn_, sql));
        if (!r.ok(PGRES_COMMAND_OK))
            *error = std::string(sql) + ": " + pq_error(conn_);
        return r.ok(PGRES_COMMAND_OK);
    };
    if (!exec("BEGIN"))
        return false;
    std::string versions = "{";
    for (const auto &[dboid, version] : serving) {
        const std::string v = std::to_string(version), db = std::to_string(dboid);
        versions += (versions.size() > 1 ? "," : "") + v;
        std::string bytes, why;
        if (!read_file(models_dir_ + "/" + v + ".model", &bytes, &why)) {
            *error = "version " + v + ": " + why;
            exec("ROLLBACK");
            return false;
        }
        const std::string checksum = pilot::model::model_checksum(bytes);
        /* the row of this number holds this file already?  (A row of the
         * same number with another file was written by a pilotd with
         * another state directory: replaced.) */
        const char *exists_params[2] = {v.c_str(), checksum.c_str()};
        Result exists(PQexecParams(conn_, "SELECT 1 FROM pg_pilot.model_versions WHERE version = $1 AND checksum = $2",
                                   2, nullptr, exists_params, nullptr, nullptr, 0));
        if (!exists.ok(PGRES_TUPLES_OK)) {
            *error = "reading pg_pilot.model_versions: " + pq_error(conn_);
            exec("ROLLBACK");
            return false;
        }
        if (PQntuples(exists.r) == 1)
            continue;
        /* the database's name as this server knows it (its oid if gone) */
        const char *params[5] = {v.c_str(), db.c_str(), checksum.c_str(), bytes.data(), db.c_str()};
        const int lengths[5] = {0, 0, 0, static_cast<int>(bytes.size()), 0};
        const int formats[5] = {0, 0, 0, 1, 0}; /* the file as binary bytea */
        Result ins(PQexecParams(conn_,
                                "INSERT INTO pg_pilot.model_versions (version, dboid, database, serving, checksum, "
                                "model) SELECT $1::integer, $2::oid, coalesce((SELECT datname FROM "
                                "pg_catalog.pg_database WHERE oid = $2::oid), $5::name), false, $3::text, $4::bytea "
                                "ON CONFLICT (version) DO UPDATE SET dboid = EXCLUDED.dboid, database = "
                                "EXCLUDED.database, serving = false, checksum = EXCLUDED.checksum, model = "
                                "EXCLUDED.model, published_at = now()",
                                5, nullptr, params, lengths, formats, 0));
        if (!ins.ok(PGRES_COMMAND_OK)) {
            *error = "writing version " + v + " into pg_pilot.model_versions: " + pq_error(conn_);
            exec("ROLLBACK");
            return false;
        }
        LOG_INFO("models: version %s (%zu bytes) published in pg_pilot.model_versions for standbys", v.c_str(),
                 bytes.size());
    }
    versions += "}";
    /* first off, then on: one serving row per database (a unique index) */
    const char *params[1] = {versions.c_str()};
    Result off(PQexecParams(conn_,
                            "UPDATE pg_pilot.model_versions SET serving = false "
                            "WHERE serving AND NOT version = ANY ($1::integer[])",
                            1, nullptr, params, nullptr, nullptr, 0));
    Result on(PQexecParams(conn_,
                           "UPDATE pg_pilot.model_versions SET serving = true "
                           "WHERE NOT serving AND version = ANY ($1::integer[])",
                           1, nullptr, params, nullptr, nullptr, 0));
    if (!off.ok(PGRES_COMMAND_OK) || !on.ok(PGRES_COMMAND_OK)) {
        *error = "marking the serving versions in pg_pilot.model_versions: " + pq_error(conn_);
        exec("ROLLBACK");
        return false;
    }
    if (!exec("COMMIT"))
        return false;
    published_ = serving;
    published_known_ = true;
    return true;
}

bool ModelReplication::follow(std::string *error) {
    published_known_ = false; /* promoted later: publish what serves then */
    Result rows(PQexec(conn_, "SELECT version, dboid, checksum, model FROM pg_pilot.model_versions "
                              "WHERE serving ORDER BY version"));
    if (!rows.ok(PGRES_TUPLES_OK)) {
        *error = "reading pg_pilot.model_versions: " + pq_error(conn_);
        return false;
    }
    bool wrote = false;
    ModelRegistry::ServingVersions primary;
    for (int i = 0; i < PQntuples(rows.r); i++) {
        const uint32_t version = static_cast<uint32_t>(strtoul(PQgetvalue(rows.r, i, 0), nullptr, 10));
        const uint32_t dboid = static_cast<uint32_t>(strtoul(PQgetvalue(rows.r, i, 1), nullptr, 10));
        const std::string checksum = PQgetvalue(rows.r, i, 2);
        if (version == 0)
            continue;
        primary[dboid] = version;
        const std::string path = models_dir_ + "/" + std::to_string(version) + ".model";
        std::string have, why;
        if (read_file(path, &have, &why) && pilot::model::model_checksum(have) == checksum)
            continue; /* already here */
        size_t n = 0;
        unsigned char *bytes =
            PQunescapeBytea(reinterpret_cast<const unsigned char *>(PQgetvalue(rows.r, i, 3)), &n);
        if (bytes == nullptr) {
            *error = "out of memory reading version " + std::to_string(version);
            return false;
        }
        const std::string image(reinterpret_cast<const char *>(bytes), n);
        PQfreemem(bytes);
        if (pilot::model::model_checksum(image) != checksum) {
            *error = "version " + std::to_string(version) + " in pg_pilot.model_versions does not match its "
                     "checksum " + checksum + ": not used";
            return false;
        }
        if (replace_file(models_dir_, path, image.data(), image.size(), &why) == Replaced::Failed) {
            *error = "cannot write version " + std::to_string(version) + ": " + why;
            return false;
        }
        LOG_INFO("models: version %u of database %u arrived by replication (%zu bytes)", version, dboid,
                 image.size());
        wrote = true;
    }
    if (wrote)
        registry_.rescan();
    const ModelRegistry::ServingVersions serving = registry_.serving_versions();
    for (const auto &[dboid, version] : primary) {
        auto it = serving.find(dboid);
        if (it != serving.end() && it->second == version && registry_.follows(dboid))
            continue;
        std::string why;
        if (!registry_.follow(version, dboid, &why)) {
            *error = "cannot serve version " + std::to_string(version) + " as the primary does: " + why;
            return false;
        }
        if (it == serving.end() || it->second != version)
            LOG_INFO("models: version %u serves database %u, as on the primary", version, dboid);
    }
    return true;
}

} // namespace pilotd
