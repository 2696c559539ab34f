#!/usr/bin/env bash
# pilotd stopped (SIGTERM): every query runs natively, at once, with a counter.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

want=$(expected_results)
pp_pilotd_stop
check "pilotd status reports it down" bash -c '! "$PILOTD" status -D "$PGDATA" >/dev/null 2>&1'
down0=$(stat fallback_daemon_down); timeouts0=$(stat fallback_timeout)
start=$(date +%s%N)
got=$(actual_results auto)
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "same results as without pg_pilot while pilotd is down" [ "$got" = "$want" ]
check "fallbacks counted as daemon_down" [ "$(stat fallback_daemon_down)" -gt "$down0" ]
check "no query waited for the dead sidecar (no timeouts)" [ "$(stat fallback_timeout)" = "$timeouts0" ]
echo "# ${#WORKLOAD[@]} queries with pilotd down: ${elapsed_ms} ms"
check "the daemon view says why" [ "$(q "SELECT attached FROM pg_pilot.daemon")" = "f" ]
pp_pilotd_start
check "after pilotd is back, the view shows it attached" [ "$(q "SELECT attached FROM pg_pilot.daemon")" = "t" ]
check_no_crash "pilotd stopped"
finish
