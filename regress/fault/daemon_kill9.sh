#!/usr/bin/env bash
# pilotd killed with SIGKILL during a stream of queries in 4 concurrent sessions,
# restarted while they run: no query fails or changes its result, the sessions
# re-attach by themselves, and the oracle entries pilotd had acknowledged are
# served again after the restart.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

entries_before=$(q "SELECT oracle_entries FROM pg_pilot.daemon")
q4="${WORKLOAD[0]}"

# each session: 8 s of the 4-table query in a loop, checking every result;
# at the end, in the same backend, asks whether estimates come from the oracle
# again (asking again every 0.2 s for at most 60 s: on a busy machine the
# restart may end after the loop did)
kill9_during_sessions 4 stream 2 2 oracle_stream 8 -c "
DO \$\$
DECLARE n bigint; total bigint; t0 timestamptz := clock_timestamp();
BEGIN
  LOOP
    SELECT count(*) FILTER (WHERE source = 'oracle'), count(*) INTO n, total
      FROM pg_pilot.explain_estimates(\$q\$$q4\$q\$);
    EXIT WHEN n = total OR clock_timestamp() - t0 > interval '60 seconds';
    PERFORM pg_sleep(0.2);
  END LOOP;
  RAISE NOTICE 'oracle_sources=%/%', n, total;
END \$\$;"
check "no session failed a query during kill -9 and restart" [ "$SESSIONS_FAILED" -eq 0 ]
check "the sessions kept running queries through the outage ($SESSION_RUNS in all, $SESSIONS_DONE of 4 ran to the end, $OUTAGE_FALLBACKS plannings without pilotd while it was dead)" \
  [ "$SESSIONS_DONE" -eq 4 -a "${OUTAGE_FALLBACKS:-0}" -gt 0 ]
check "every session re-attached: all 10 estimates from the oracle again" \
  [ "$(grep -c 'oracle_sources=10/10' "$PP_DIR"/stream*.out | awk -F: '{s+=$2} END {print s}')" -eq 4 ]
check "acknowledged oracle entries survived kill -9 ($entries_before)" \
  [ "$(q "SELECT oracle_entries FROM pg_pilot.daemon")" = "$entries_before" ]
check_no_crash "pilotd SIGKILL"
finish
