/*
 * model_replication.h — model versions that travel with PostgreSQL's own
 * replication, so that a hot standby serves the model its primary serves.
 *
 * On a primary, pilotd writes each version it serves into the table
 * pg_pilot.model_versions of the feedback store's database (the file byte for
 * byte, its database, its checksum; serving = true for the version each
 * database serves now).  Physical replication delivers the table to every
 * standby.  On a standby (pg_is_in_recovery()), pilotd reads the serving rows
 * from its local replica, writes each version it lacks into STATE_DIR/models
 * (the registry then checks it as any file: checksum, database identity,
 * statistics) and pins it for its database as a followed pin: the standby
 * swaps when a new version arrives by replay.  Promoted, the server is a
 * primary: the followed pins go (the version keeps serving until one trained
 * here beats it) and pilotd publishes.  No file copying, no RPC of our own.
 *
 * One thread looks every poll interval; a failure is logged (once until it
 * changes) and tried again at the next look.  Serving never waits for it.
 */
#ifndef PILOTD_MODEL_REPLICATION_H
#define PILOTD_MODEL_REPLICATION_H

#include "model_registry.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

struct pg_conn;

namespace pilotd {

class ModelReplication {
  public:
    /* dsn: the feedback store's (on the server of pgdata unless it names
     * another); models_dir: the registry's */
    ModelReplication(std::string dsn, std::string pgdata, std::string models_dir, ModelRegistry &registry,
                     uint32_t poll_ms)
        : dsn_(std::move(dsn)), pgdata_(std::move(pgdata)), models_dir_(std::move(models_dir)),
          registry_(registry), poll_ms_(poll_ms) {}
    ~ModelReplication() { stop(); }
    ModelReplication(const ModelReplication &) = delete;
    ModelReplication &operator=(const ModelReplication &) = delete;

    void start();
    void stop() noexcept;

  private:
    void run() noexcept;
    /* one look: publish (primary) or follow (standby); false with *error */
    bool step(std::string *error);
    bool publish(std::string *error);
    bool follow(std::string *error);
    void disconnect() noexcept;

    const std::string dsn_, pgdata_, models_dir_;
    ModelRegistry &registry_;
    const uint32_t poll_ms_;
    pg_conn *conn_ = nullptr;
    bool standby_ = false;
    /* primary: the serving versions the table says, after the last publish */
    ModelRegistry::ServingVersions published_;
    bool published_known_ = false;
    std::string last_error_;

    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
};

} // namespace pilotd

#endif
