#!/usr/bin/env bash
# pilotd killed with SIGKILL during a stream of queries in 4 concurrent sessions,
# restarted while they run: no query fails or changes its result, the sessions
# re-attach by themselves, and the oracle entries pilotd had acknowledged are
# served again after the restart.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

entries_before=$(q "SELECT oracle_entries FROM pg_pilot.daemon")
q4="${WORKLOAD[0]}"

# each session: 8 s of the 4-table query in a loop, checking every result;
# at the end, in the same backend, asks whether estimates come from the oracle again
kill9_during_sessions 4 stream 2 2 oracle_stream 8 \
  -c "SELECT 'oracle_sources=' || count(*) FILTER (WHERE source = 'oracle') || '/' || count(*)
      FROM pg_pilot.explain_estimates(\$q\$$q4\$q\$)"
check "no session failed a query during kill -9 and restart" [ "$SESSIONS_FAILED" -eq 0 ]
check "the sessions kept running queries (more than 100)" [ "$SESSION_RUNS" -gt 100 ]
check "every session re-attached: all 10 estimates from the oracle again" \
  [ "$(grep -c 'oracle_sources=10/10' "$PP_DIR"/stream*.out | awk -F: '{s+=$2} END {print s}')" -eq 4 ]
check "acknowledged oracle entries survived kill -9 ($entries_before)" \
  [ "$(q "SELECT oracle_entries FROM pg_pilot.daemon")" = "$entries_before" ]
check_no_crash "pilotd SIGKILL"
finish
