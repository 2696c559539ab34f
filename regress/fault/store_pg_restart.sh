#!/usr/bin/env bash
# Feedback store across a restart of PostgreSQL: queries stream with feedback,
# the server is restarted (fast mode) right after, pilotd keeps running and
# reconnects by itself; what the backends sent before and after the restart
# is all in the store, once.  (pg_pilot.stats starts from zero with the new
# server, so the count before the restart is taken just before it.)
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

check "the store is drained before the test" store_wait_drained
mon "SELECT pg_pilot.reset_stats()" >/dev/null
rows_before=$(store_rows)
failed=0
feedback_stream 2 >"$PP_DIR/rstream1.out" 2>&1 || failed=$((failed + 1))
read -r sent1 lost1 <<<"$(mon "SELECT feedback_sent, feedback_lost FROM pg_pilot.stats" | tr '|' ' ')"
pp_cluster_restart
postmaster_pid_at_start=$(pp_postmaster_pid)   # a new postmaster, on purpose
echo "# PostgreSQL restarted after $sent1 records were sent"
feedback_stream 2 >"$PP_DIR/rstream2.out" 2>&1 || failed=$((failed + 1))
check "no query failed" [ "$failed" -eq 0 ]
check "everything drained into the store after the restart" store_wait_drained 60
read -r sent2 lost2 <<<"$(mon "SELECT feedback_sent, feedback_lost FROM pg_pilot.stats" | tr '|' ' ')"
stored=$(( $(store_rows) - rows_before ))
sent=$((sent1 + sent2)); lost=$((lost1 + lost2))
echo "# records: sent $sent1 before and $sent2 after the restart, lost $lost, stored $stored"
check "records were sent on both sides of the restart" [ "$sent1" -gt 0 -a "$sent2" -gt 0 ]
check "every acknowledged record is stored (stored $stored >= sent $sent - lost $lost)" [ "$stored" -ge $((sent - lost)) ]
check "nothing was stored twice (stored $stored <= sent $sent)" [ "$stored" -le "$sent" ]
check "pilotd kept running through the restart" bash -c '"$1" status -D "$2" >/dev/null' _ "$PILOTD" "$PGDATA"
check_no_crash "PostgreSQL restarted under pilotd"
finish
