#!/usr/bin/env bash
# pilotd frozen with SIGSTOP while 4 sessions stream queries, then thawed with
# SIGCONT: no query fails or changes its result; while it is frozen the
# planner stops waiting for it (its heartbeat goes stale: native plans at once,
# counted); once thawed the sessions get pilotd's estimates again.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

q4="${WORKLOAD[0]}"
down_before=$(stat fallback_daemon_down)
timeouts_before=$(stat fallback_timeout)

pid=$(pp_pilotd_pid)
# each session: 8 s of the 4-table query in a loop, every result checked
for i in 1 2 3 4; do oracle_stream 8 >"$PP_DIR/sigstop_stream$i.out" & done
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
