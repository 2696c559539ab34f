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
# below the 300 ms pilotd takes.  Planned 5 times in one session, 0.5 s apart
# (pilotd has answered the previous request by then), reading the timeout
# counter around each; judged on the fastest planning that timed out waiting
# for pilotd: a busy machine may stall any one planning, but cannot make them
# all wait 300 ms
plans=()
for _ in 1 2 3 4 5; do
  plans+=(-c "SELECT pg_sleep(0.5)" -c "SELECT 'timeouts ' || fallback_timeout FROM pg_pilot.stats"
          -c "EXPLAIN (SUMMARY, FORMAT JSON) ${WORKLOAD[0]}")
done
plans+=(-c "SELECT 'timeouts ' || fallback_timeout FROM pg_pilot.stats")
# the planning times (ms) of the plannings that counted a timeout
waited=$(pp_psql -At -c "SET pg_pilot.timeout_ms = 5" "${plans[@]}" | awk '
  /^timeouts / { if (t != "" && $2 > last) print t; last = $2; t = "" }
  /"Planning Time":/ { t = $NF; gsub(/[^0-9.]/, "", t) }' | tr '\n' ' ')
plan_ms=$(tr ' ' '\n' <<<"$waited" | grep . | sort -g | head -1)
echo "# planning times that timed out on a 300 ms sidecar with a 5 ms budget: ${waited:-none }ms"
check "planning stayed within the time budget (fastest: ${plan_ms:-none} ms < 100 ms)" \
  awk -v t="${plan_ms:-999}" 'BEGIN { exit !(t < 100) }'
check_no_crash "slow pilotd"
pp_pilotd_stop
pp_pilotd_start
finish
