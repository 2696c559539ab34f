/* status.cpp — see status.h. */
#include "status.h"

#include "pilot_protocol.h"
#include "process_util.h"
#include "pilotd_client.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace pilotd {

namespace {

std::string format_duration(uint64_t s) {
    char buf[64];
    if (s >= 86400)
        snprintf(buf, sizeof buf, "%llud %02lluh %02llum %02llus", static_cast<unsigned long long>(s / 86400),
                 static_cast<unsigned long long>(s % 86400 / 3600), static_cast<unsigned long long>(s % 3600 / 60),
                 static_cast<unsigned long long>(s % 60));
    else if (s >= 3600)
        snprintf(buf, sizeof buf, "%lluh %02llum %02llus", static_cast<unsigned long long>(s / 3600),
                 static_cast<unsigned long long>(s % 3600 / 60), static_cast<unsigned long long>(s % 60));
    else if (s >= 60)
        snprintf(buf, sizeof buf, "%llum %02llus", static_cast<unsigned long long>(s / 60),
                 static_cast<unsigned long long>(s % 60));
    else
        snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(s));
    return buf;
}

} // namespace

int run_status(const Invocation &inv) {
    const Config &c = inv.config;
    if (c.pgdata.empty())
        throw ConfigError("status needs the data directory: pilotd status -D DIR");
    /* The segment is the server's OS user's: the owner of the data
     * directory, whoever asks (root, or a DBA's own account) */
    struct stat dir;
    const bool dir_known = stat(c.pgdata.c_str(), &dir) == 0;
    const int dir_errno = errno;
    /* what to do when it cannot tell because of who asks */
    auto hint = [&] {
        if (!dir_known)
            printf("hint:             cannot see the data directory (%s): run pilotd status as its owner, "
                   "the server's OS user (e.g. sudo -u postgres pilotd status -D %s)\n",
                   strerror(dir_errno), c.pgdata.c_str());
        else if (geteuid() != 0 && geteuid() != dir.st_uid)
            printf("hint:             the segment is readable only by the data directory's owner, %s: run "
                   "pilotd status as that user (or as root)\n",
                   describe_uid(dir.st_uid).c_str());
    };
    std::string segment = pilot::proto::segment_name_for_datadir(c.pgdata);
    printf("data directory:   %s\n", c.pgdata.c_str());
    if (segment.empty()) {
        printf("status:           not running (cannot resolve the data directory)\n");
        hint();
        return kExitNotRunning;
    }
    pilot::PilotdClient client(segment, 0, static_cast<uint64_t>(inv.status_stale_ms) * 1000, 0);
    if (dir_known)
        client.set_expected_owner(static_cast<unsigned>(dir.st_uid));
    pilot::PilotdInfo d = client.info();
    printf("segment:          /dev/shm/%s\n", d.segment.c_str());
    if (!d.attached) {
        printf("attached:         no\n");
        printf("status:           not running (%s)\n", d.last_problem.c_str());
        if (access(("/dev/shm/" + segment).c_str(), F_OK) == 0) /* there, but not for us */
            hint();
        return kExitNotRunning;
    }
    uint64_t now = static_cast<uint64_t>(time(nullptr));
    uint64_t uptime = now > d.started_at_unix ? now - d.started_at_unix : 0;
    char started[64] = "?";
    time_t st = static_cast<time_t>(d.started_at_unix);
    struct tm tm;
    if (gmtime_r(&st, &tm) != nullptr)
        strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("attached:         yes\n");
    printf("status:           running and ready\n");
    printf("pid:              %u\n", d.pilotd_pid);
    printf("epoch:            %016llx\n", static_cast<unsigned long long>(d.epoch));
    printf("protocol version: %u\n", d.version);
    printf("slots:            %u\n", d.nslots);
    printf("heartbeat age:    %.1f ms\n", static_cast<double>(d.heartbeat_age_us) / 1000.0);
    printf("started:          %s\n", started);
    printf("uptime:           %s\n", format_duration(uptime).c_str());
    printf("requests:         %llu\n", static_cast<unsigned long long>(d.requests));
    printf("items:            %llu\n", static_cast<unsigned long long>(d.items));
    printf("answered:         %llu\n", static_cast<unsigned long long>(d.answered));
    printf("bad requests:     %llu\n", static_cast<unsigned long long>(d.bad_requests));
    printf("oracle entries:   %llu\n", static_cast<unsigned long long>(d.oracle_entries));
    printf("feedback:         %llu received, %llu invalid, %llu queued\n",
           static_cast<unsigned long long>(d.feedback_received), static_cast<unsigned long long>(d.feedback_invalid),
           static_cast<unsigned long long>(d.feedback_queued));
    printf("memo entries:     %llu\n", static_cast<unsigned long long>(d.memo_entries));
    printf("key texts:        %llu\n", static_cast<unsigned long long>(d.key_texts));
    printf("feedback store:   %s; %llu committed (%llu replayed), %llu waiting in the spool, %llu dead letters, "
           "%llu failed transactions\n",
           pilot::proto::store_state_name(d.store_state), static_cast<unsigned long long>(d.store_committed),
           static_cast<unsigned long long>(d.store_replayed), static_cast<unsigned long long>(d.spool_pending),
           static_cast<unsigned long long>(d.store_dead_letter), static_cast<unsigned long long>(d.store_failures));
    if (!d.store_error.empty())
        printf("store error:      %s\n", d.store_error.c_str());
    if (d.models != UINT32_MAX) {
        if (d.serving_version != 0)
            printf("models:           %u, serving v%u\n", d.models, d.serving_version);
        else
            printf("models:           %u, none serving\n", d.models);
    }
    return 0;
}

} // namespace pilotd
