/* status.h — `pilotd status`: the running pilotd's state, read from the
 * segment with pilot::PilotdClient::info() (the feedback counters, which
 * PilotdInfo lacks, straight from the mapped header). */
#ifndef PILOTD_STATUS_H
#define PILOTD_STATUS_H

#include "config.h"

namespace pilotd {

constexpr int kExitNotRunning = 3;

/* Prints the state; returns 0 when pilotd is up and ready, 3 when not.
 * Throws ConfigError without a data directory. */
int run_status(const Invocation &inv);

} // namespace pilotd

#endif
