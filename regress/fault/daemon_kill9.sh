#!/usr/bin/env bash
# pilotd killed with SIGKILL during a stream of queries in 4 concurrent sessions,
# restarted while they run: no query fails or changes its result, the sessions
# re-attach by themselves, and the oracle entries pilotd had acknowledged are
# served again after the restart.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

entries_before=$(q "SELECT oracle_entries FROM pg_pilot.daemon")
q4="${WORKLOAD[0]}"
want=$(pp_psql -At -c "SET pg_pilot.enabled = off" -c "$q4")

# each session: 8 s of the 4-table query in a loop, checking every result;
# at the end, in the same backend, asks whether estimates come from the oracle again
stream() {
  pp_psql -At -v ON_ERROR_STOP=1 -c "SET pg_pilot.estimator = 'oracle'" -c "
DO \$\$
DECLARE n bigint; runs int := 0; t0 timestamptz := clock_timestamp();
BEGIN
  WHILE clock_timestamp() - t0 < interval '8 seconds' LOOP
    EXECUTE \$q\$$q4\$q\$ INTO n;
    IF n <> $want THEN RAISE EXCEPTION 'wrong result % after % runs', n, runs; END IF;
    runs := runs + 1;
    PERFORM pg_sleep(0.005);
  END LOOP;
  RAISE NOTICE 'runs=%', runs;
END \$\$;" \
  -c "SELECT 'oracle_sources=' || count(*) FILTER (WHERE source = 'oracle') || '/' || count(*)
      FROM pg_pilot.explain_estimates(\$q\$$q4\$q\$)" 2>&1
}

kill9_during_sessions 4 stream 2 2 stream
check "no session failed a query during kill -9 and restart" [ "$SESSIONS_FAILED" -eq 0 ]
check "the sessions kept running queries (more than 100)" [ "$SESSION_RUNS" -gt 100 ]
check "every session re-attached: all 10 estimates from the oracle again" \
  [ "$(grep -c 'oracle_sources=10/10' "$PP_DIR"/stream*.out | awk -F: '{s+=$2} END {print s}')" -eq 4 ]
check "acknowledged oracle entries survived kill -9 ($entries_before)" \
  [ "$(q "SELECT oracle_entries FROM pg_pilot.daemon")" = "$entries_before" ]
check_no_crash "pilotd SIGKILL"
finish
