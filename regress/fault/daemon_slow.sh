#!/usr/bin/env bash
# A pilotd that answers slower than pg_pilot.timeout_ms: queries plan natively
# within the budget, results are unchanged, timeouts are counted.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

want=$(expected_results)
export PGOPTIONS="-c pg_pilot.timeout_ms=5"   # the production default, below pilotd's 300 ms
pp_pilotd_stop
pp_pilotd_start --debug-answer-delay-ms 300
t0=$(stat fallback_timeout)
got=$(actual_results auto)
check "same results as without pg_pilot with a slow sidecar" [ "$got" = "$want" ]
check "timeouts counted" [ "$(stat fallback_timeout)" -gt "$t0" ]
# one query's planning waits at most pg_pilot.timeout_ms (5 ms) in total, far
# below the 300 ms pilotd takes (slack for a loaded machine)
plan_ms=$(pp_psql -At -c "SET pg_pilot.timeout_ms = 5" \
  -c "EXPLAIN (SUMMARY, FORMAT JSON) ${WORKLOAD[0]}" | grep -o '"Planning Time": [0-9.]*' | grep -oE '[0-9.]+$')
echo "# planning time with a 300 ms sidecar and a 5 ms budget: ${plan_ms} ms"
check "planning stayed within the time budget (< 100 ms)" awk -v t="$plan_ms" 'BEGIN { exit !(t < 100) }'
check_no_crash "slow pilotd"
pp_pilotd_stop
pp_pilotd_start
finish
