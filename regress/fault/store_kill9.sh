#!/usr/bin/env bash
# Feedback store, crash: 4 sessions stream queries with execution feedback on;
# pilotd is killed with SIGKILL in the middle and restarted.  Counted at the
# end, once everything drained into pg_pilot's tables:
#   stored >= sent - lost   every record pilotd acknowledged is in the store
#                           (lost: sent, but still in the queue of the killed
#                           pilotd: never acknowledged, counted by the backends)
#   stored <= sent          nothing stored twice (exactly-once replay)
# and no query failed.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

check "the store is drained before the test" store_wait_drained
mon "SELECT pg_pilot.reset_stats()" >/dev/null
rows_before=$(store_rows)
dead_before=$(store_q "SELECT count(*) FROM pg_pilot.feedback_dead_letter")

# what pilotd says it acknowledged in this test, read just before the kill
# (spool_appended counts from pilotd's start, which may be before this test)
appended_at_start=$(daemon_col spool_appended)
before_kill9() {
  acked_before_kill=$(( $(daemon_col spool_appended) - appended_at_start ))
  echo "# pilotd has acknowledged $acked_before_kill records (and maybe a few more by the kill)"
}
kill9_during_sessions 4 fstream 3 1.5 feedback_stream 8
check "no session failed a query" [ "$SESSIONS_FAILED" -eq 0 ]
check "the sessions kept running queries through the outage ($SESSION_RUNS in all, $SESSIONS_DONE of 4 ran to the end, $OUTAGE_FALLBACKS plannings without pilotd while it was dead)" \
  [ "$SESSIONS_DONE" -eq 4 -a "${OUTAGE_FALLBACKS:-0}" -gt 0 ]

check "everything drained into the store after the restart" store_wait_drained 60
read -r sent dropped lost <<<"$(mon "SELECT feedback_sent, feedback_dropped, feedback_lost FROM pg_pilot.stats" | tr '|' ' ')"
stored=$(( $(store_rows) - rows_before ))
echo "# records: sent $sent, dropped (queue full or pilotd down) $dropped, lost with the killed pilotd $lost, stored $stored"
check "records were sent during the test" [ "$sent" -gt 0 ]
check "the records pilotd had acknowledged before the kill are stored ($acked_before_kill <= $stored)" \
  [ "$stored" -ge "$acked_before_kill" ]
check "every acknowledged record is stored (stored $stored >= sent $sent - lost $lost)" [ "$stored" -ge $((sent - lost)) ]
check "nothing was stored twice (stored $stored <= sent $sent)" [ "$stored" -le "$sent" ]
check "no new dead letters (nothing garbled by the kill)" \
  [ "$(store_q "SELECT count(*) FROM pg_pilot.feedback_dead_letter")" = "$dead_before" ]
check_no_crash "pilotd SIGKILL with the feedback store"
finish
