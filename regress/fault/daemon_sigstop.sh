#!/usr/bin/env bash
# pilotd frozen with SIGSTOP while 4 sessions stream queries, then thawed with
# SIGCONT: no query fails or changes its result; while it is frozen the
# planner stops waiting for it (its heartbeat goes stale: native plans at once,
# counted); once thawed the sessions get pilotd's estimates again.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

q4="${WORKLOAD[0]}"
want=$(pp_psql -At -c "SET pg_pilot.enabled = off" -c "$q4")
down_before=$(stat fallback_daemon_down)
timeouts_before=$(stat fallback_timeout)

# each session: 8 s of the 4-table query in a loop, every result checked
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
END \$\$;" 2>&1
}

pid=$(pp_pilotd_pid)
for i in 1 2 3 4; do stream >"$PP_DIR/sigstop_stream$i.out" & done
sleep 1.5
kill -STOP "$pid"
sleep 4
kill -CONT "$pid"
wait
failed=$(grep -l "ERROR" "$PP_DIR"/sigstop_stream*.out | wc -l)
runs=$(grep -ohE 'runs=[0-9]+' "$PP_DIR"/sigstop_stream*.out | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
echo "# $runs queries in 4 sessions; fallback_daemon_down +$(( $(stat fallback_daemon_down) - down_before )), fallback_timeout +$(( $(stat fallback_timeout) - timeouts_before ))"
check "no session failed a query or got another result while pilotd was frozen" [ "$failed" -eq 0 ]
check "the sessions kept running queries (more than 20)" [ "$runs" -gt 20 ]
check "while frozen, planning fell back natively and counted it" \
  [ $(( $(stat fallback_daemon_down) + $(stat fallback_timeout) - down_before - timeouts_before )) -gt 0 ]
check "pilotd is the same process and serves again after SIGCONT" bash -c "[ \"\$(cat '$PP_DIR/pilotd.pid')\" = '$pid' ] && '$PILOTD' status -D '$PGDATA' >/dev/null"
check "after SIGCONT a new session gets pilotd's estimates again" \
  [ "$(pp_psql -At -c "SET pg_pilot.estimator = 'oracle'" -c "SELECT count(*) FILTER (WHERE source = 'oracle') FROM pg_pilot.explain_estimates(\$q\$$q4\$q\$)")" = 10 ]
check_no_crash "pilotd SIGSTOP"
finish
