/*
 * advisor_service.h — runs index-advisor jobs inside pilotd, one at a time,
 * on a thread of their own (never on the threads that answer estimates).
 *
 * Jobs arrive as MSG_ADVISOR from a backend (pg_pilot.run_index_advisor(),
 * apply_index_recommendation(), verify_index_recommendations()) and, with
 * --advisor-every-s, from a schedule.  A job connects with --advisor-dsn to
 * the asking database, records itself in pg_pilot.advisor_run (running ->
 * done | failed, with a message), and:
 *   advise  runs index_advisor.h on the database's pg_stat_statements
 *           workload and writes pg_pilot.index_advice;
 *   apply   creates one recommendation's index (CREATE INDEX CONCURRENTLY),
 *           checks which of its queries now plan with it;
 *   verify  for each applied index, compares its queries' mean execution
 *           times before and after it was created (pg_pilot.query_log in the
 *           feedback store): helped (at least 10 % faster) or no gain, and
 *           with drop_unhelpful drops an index of no gain.
 * The queue is bounded; a job that cannot be queued is refused at once.
 */
#ifndef PILOTD_ADVISOR_SERVICE_H
#define PILOTD_ADVISOR_SERVICE_H

#include "index_advisor.h"
#include "pilot_protocol.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace pilotd {

/* What the request handler hands jobs to. */
class AdvisorControl {
  public:
    virtual ~AdvisorControl() = default;
    /* Queues job for database dboid (0: advisor-dsn's own); *job_id on
     * success, else *why. */
    virtual bool submit(const pilot::proto::AdvisorJob &job, uint32_t dboid, uint64_t *job_id,
                        std::string *why) noexcept = 0;
};

struct AdvisorServiceOptions {
    std::string dsn;        /* --advisor-dsn */
    std::string store_dsn;  /* the feedback store (query_log), "none": none */
    uint32_t every_s = 0;   /* scheduled runs */
    AdvisorOptions defaults; /* budget, count, width, min benefit, write cost */
};

class AdvisorService final : public AdvisorControl {
  public:
    explicit AdvisorService(AdvisorServiceOptions o);
    ~AdvisorService() override;
    void start();
    void stop();
    bool submit(const pilot::proto::AdvisorJob &job, uint32_t dboid, uint64_t *job_id,
                std::string *why) noexcept override;

    static constexpr size_t kMaxQueued = 8;

  private:
    struct Job {
        uint64_t id;
        uint32_t dboid;
        pilot::proto::AdvisorJob job;
    };
    void loop();
    void run(const Job &j);
    bool do_advise(PqSession &db, const Job &j, std::string *message);
    bool do_apply(PqSession &db, const Job &j, std::string *message);
    bool do_verify(PqSession &db, bool drop_unhelpful, std::string *message);
    uint64_t next_id();

    AdvisorServiceOptions o_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Job> queue_;
    bool stop_ = false;
    std::atomic<bool> stopping_{false};    /* read by a running advise() */
    std::mutex active_mu_;                 /* not mu_: cancelling is network I/O, submit() must not wait */
    const PqSession *active_ = nullptr;    /* the running job's session (under active_mu_) */
    uint64_t last_id_ = 0;
    std::thread thread_;
};

} // namespace pilotd

#endif
