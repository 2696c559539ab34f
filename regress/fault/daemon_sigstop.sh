#!/usr/bin/env bash
# pilotd frozen with SIGSTOP while 4 sessions stream queries, then thawed with
# SIGCONT: no query fails or changes its result; while it is frozen the
# planner stops waiting for it (its heartbeat goes stale: native plans at once,
# counted); once thawed the sessions get pilotd's estimates again.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

q4="${WORKLOAD[0]}"
# plannings that did without pilotd: it was down (stale heartbeat) or too slow
fallbacks() { mon "SELECT fallback_daemon_down + fallback_timeout FROM pg_pilot.stats"; }
fallbacks_moved() { [ "$(fallbacks)" -gt "$1" ] 2>/dev/null; }

pid=$(pp_pilotd_pid)
# each session: 8 s of the 4-table query in a loop, every result checked
for i in 1 2 3 4; do oracle_stream 8 >"$PP_DIR/sigstop_stream$i.out" & done
wait_until 60 streams_running 4
sleep 1.5   # they stream with pilotd awake first
frozen_before=$(fallbacks)
kill -STOP "$pid"
sleep 4     # frozen for 4 s (pg_pilot.daemon_stale_ms is 1 s) ...
wait_until 60 fallbacks_moved "$frozen_before"  # ... and until a planning did without it
frozen_fallbacks=$(( $(fallbacks) - frozen_before ))
kill -CONT "$pid"
wait
failed=$(grep -l "ERROR" "$PP_DIR"/sigstop_stream*.out | wc -l)
runs=$(grep -ohE 'runs=[0-9]+' "$PP_DIR"/sigstop_stream*.out | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
done_sessions=$(streams_done "$PP_DIR"/sigstop_stream*.out)
echo "# $runs queries in 4 sessions, $done_sessions ran to the end; while frozen: $frozen_fallbacks plannings without pilotd (fallback_daemon_down + fallback_timeout)"
check "no session failed a query or got another result while pilotd was frozen" [ "$failed" -eq 0 ]
check "the sessions kept running queries ($runs in all; $done_sessions of 4 ran to the end)" [ "$done_sessions" -eq 4 ]
check "while frozen, planning fell back natively and counted it" [ "$frozen_fallbacks" -gt 0 ]
# thawed: pilotd's heartbeat is fresh again within moments (waited for, a busy
# machine may take a while to run it)
serves_again() { [ "$(cat "$PP_DIR/pilotd.pid")" = "$pid" ] && "$PILOTD" status -D "$PGDATA" >/dev/null; }
check "pilotd is the same process and serves again after SIGCONT" wait_until 30 serves_again
oracle_estimates() {
  [ "$(pp_psql -At -c "SET pg_pilot.estimator = 'oracle'" -c "SELECT count(*) FILTER (WHERE source = 'oracle') FROM pg_pilot.explain_estimates(\$q\$$q4\$q\$)")" = 10 ]
}
check "after SIGCONT a new session gets pilotd's estimates again" wait_until 30 oracle_estimates
check_no_crash "pilotd SIGSTOP"
finish
