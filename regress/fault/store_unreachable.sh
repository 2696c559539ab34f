#!/usr/bin/env bash
# Feedback store unreachable: pilotd's role loses INSERT on pg_pilot.feedback
# while queries stream.  pilotd keeps acknowledging into its spool, says why in
# pg_pilot.daemon, survives a kill -9 with the spool full of the outage's
# records, and once the permission is back, the spool drains: nothing
# acknowledged is lost, nothing is stored twice, no query failed.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

check "the store is drained before the test" store_wait_drained
mon "SELECT pg_pilot.reset_stats()" >/dev/null
rows_before=$(store_rows)
feedback_before=$(feedback_rows)
store_q "REVOKE INSERT ON pg_pilot.feedback FROM pilot_store"
echo "# REVOKE INSERT ON pg_pilot.feedback FROM pilot_store"

feedback_stream 3 >"$PP_DIR/ustream1.out" 2>&1 &
s1=$!
feedback_stream 3 >"$PP_DIR/ustream2.out" 2>&1 &
s2=$!
failed=0
wait $s1 || failed=$((failed + 1)); wait $s2 || failed=$((failed + 1))
# pilotd acknowledges the records into its spool and fails to commit them:
# waited for (a busy machine may be slow to get there), then read
outage_seen() {
  [ "$(mon "SELECT store_state = 'retrying' AND spool_pending > 0 AND store_error LIKE '%permission%' FROM pg_pilot.daemon")" = t ]
}
wait_until 60 outage_seen
read -r state pending error <<<"$(mon "SELECT store_state, spool_pending, replace(coalesce(store_error, '-'), ' ', '_') FROM pg_pilot.daemon" | tr '|' ' ')"
echo "# during the outage: store_state $state, spool_pending $pending, store_error: ${error//_/ }"
check "the daemon view says the store is retrying" [ "$state" = retrying ]
check "the store error names the refused permission" grep -q "permission_denied" <<<"$error"
check "the outage's records wait in the spool" [ "${pending:-0}" -gt 0 ]
check "nothing of the outage reached pg_pilot.feedback" [ "$(feedback_rows)" -eq "$feedback_before" ]
spooled=$pending
st=$("$PILOTD" status -D "$PGDATA" 2>&1)
check "pilotd status shows the store retrying and why" \
  bash -c 'grep -q "feedback store:   retrying" <<<"$1" && grep -q "store error:.*permission denied" <<<"$1"' _ "$st"

pp_pilotd_kill9
pp_pilotd_start
echo "# pilotd killed with SIGKILL during the outage and restarted"
holds_spooled() { [ "$(daemon_col spool_pending)" -ge "$spooled" ] 2>/dev/null; }
check "the restarted pilotd still holds the spooled records" wait_until 30 holds_spooled
feedback_stream 2 >"$PP_DIR/ustream3.out" 2>&1 || failed=$((failed + 1))
check "no query failed during the outage" [ "$failed" -eq 0 ]

store_q "GRANT INSERT ON pg_pilot.feedback TO pilot_store"
echo "# GRANT INSERT ON pg_pilot.feedback TO pilot_store"
check "the spool drained once the permission was back" store_wait_drained 60
read -r sent lost <<<"$(mon "SELECT feedback_sent, feedback_lost FROM pg_pilot.stats" | tr '|' ' ')"
stored=$(( $(store_rows) - rows_before ))
replayed=$(daemon_col store_replayed)
echo "# records: sent $sent, lost with the killed pilotd $lost, stored $stored, replayed after the outage $replayed"
check "the spooled records are stored ($stored >= $spooled)" [ "$stored" -ge "$spooled" ]
check "every acknowledged record is stored (stored $stored >= sent $sent - lost $lost)" [ "$stored" -ge $((sent - lost)) ]
check "nothing was stored twice (stored $stored <= sent $sent)" [ "$stored" -le "$sent" ]
check "replayed records are counted" [ "${replayed:-0}" -gt 0 ]
check "the daemon view is clear again" [ "$(daemon_col "coalesce(store_error, 'none')")" = none ]
check_no_crash "feedback store unreachable"
finish
