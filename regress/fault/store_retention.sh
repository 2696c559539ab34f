#!/usr/bin/env bash
# Feedback store retention: with --store-max-rows 20 (checked every second),
# pg_pilot.feedback and pg_pilot.query_log keep only their newest 20 rows.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

pp_pilotd_stop
pp_pilotd_start --store-max-rows 20 --store-retention-interval-s 1
feedback_stream 1 >/dev/null 2>&1
check "the store is drained" store_wait_drained
# a retention round after the last commit (every second, once the spool is
# empty) brings both tables down to 20 rows and logs it: waited for
retained() {
  [ "$(store_q "SELECT (SELECT count(*) FROM pg_pilot.feedback) <= 20 AND (SELECT count(*) FROM pg_pilot.query_log) <= 20")" = t ] &&
    grep -q "store retention: deleted" "$PP_DIR/pilotd.log"
}
wait_until 60 retained
read -r fb ql <<<"$(store_q "SELECT (SELECT count(*) FROM pg_pilot.feedback), (SELECT count(*) FROM pg_pilot.query_log)" | tr '|' ' ')"
echo "# rows left: pg_pilot.feedback $fb, pg_pilot.query_log $ql"
check "pg_pilot.feedback holds at most 20 rows" [ "$fb" -le 20 ]
check "pg_pilot.query_log holds at most 20 rows" [ "$ql" -le 20 ]
check "pg_pilot.feedback kept its newest rows" \
  [ "$(store_q "SELECT min(id) > max(id) - 20 FROM pg_pilot.feedback")" = t ]
check "the retention was logged" grep -q "store retention: deleted" "$PP_DIR/pilotd.log"
pp_pilotd_stop
pp_pilotd_start
finish
