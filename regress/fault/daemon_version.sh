#!/usr/bin/env bash
# A pilotd of another protocol version: nothing is sent to it, queries plan
# natively at once, the mismatch is counted and shown.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

want=$(expected_results)
pp_pilotd_stop
"$PILOTD" -D "$PGDATA" --state-dir "$PP_DIR/state" --log-file "$PP_DIR/pilotd.log" \
  --pid-file "$PP_DIR/pilotd.pid" --store-dsn "${PP_STORE_DSN:-none}" --debug-protocol-version 99 </dev/null >>"$PP_DIR/pilotd.log" 2>&1 &
# it is up once a new session finds its segment (renamed into place when
# ready) and names the mismatch; until then a session finds no segment
mismatch_shown() { [ "$(q "SELECT problem FROM pg_pilot.daemon")" = "protocol version mismatch" ]; }
check "the daemon view names the problem" wait_until 30 mismatch_shown
v0=$(stat fallback_version_mismatch); t0=$(stat fallback_timeout)
got=$(actual_results auto)
check "same results as without pg_pilot with a pilotd of protocol 99" [ "$got" = "$want" ]
check "version mismatch counted" [ "$(stat fallback_version_mismatch)" -gt "$v0" ]
check "nothing waited (no timeouts)" [ "$(stat fallback_timeout)" = "$t0" ]
check_no_crash "pilotd of another protocol version"
pp_pilotd_stop
pp_pilotd_start
finish
