#!/usr/bin/env bash
# Feedback store, records that cannot be used: a broken writer pushes records
# with NaN rows, an unknown kind and relation names that are not UTF-8 (next
# to a valid one) into pilotd's ring.  They are never silently dropped: each
# is stored in pg_pilot.feedback_dead_letter with the reason and its bytes.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

check "the store is drained before the test" store_wait_drained
dead_before=$(store_q "SELECT count(*) FROM pg_pilot.feedback_dead_letter")
invalid_before=$(daemon_col feedback_invalid)
slot=$(( $(daemon_col slots) - 1 ))   # a slot no backend of this cluster uses
out=$("$PP_REGRESS/unit/build/feedback_inject" "$PGDATA" "$slot" 2>&1)
echo "# feedback_inject into slot $slot: $out"
check "the four records were accepted into the ring" [ "$out" = "accepted 4" ]
check "the store is drained after the injection" store_wait_drained

check "three dead letters stored" \
  [ "$(store_q "SELECT count(*) FROM pg_pilot.feedback_dead_letter") " = "$((dead_before + 3)) " ]
reasons=$(store_q "SELECT string_agg(reason, ' | ' ORDER BY reason) FROM (SELECT reason FROM pg_pilot.feedback_dead_letter ORDER BY id DESC LIMIT 3) d")
echo "# reasons: $reasons"
check "a reason names the bad row count" grep -q "row count negative or not finite" <<<"$reasons"
check "a reason names the unknown kind" grep -q "unknown record kind" <<<"$reasons"
check "a reason names the bad relation names" grep -q "not clean UTF-8" <<<"$reasons"
check "each dead letter keeps the record's 128 bytes" \
  [ "$(store_q "SELECT bool_and(length(record) = 128) FROM (SELECT record FROM pg_pilot.feedback_dead_letter ORDER BY id DESC LIMIT 3) d")" = t ]
check "the valid record next to them was stored" \
  [ "$(store_q "SELECT actual_rows FROM pg_pilot.feedback WHERE relations = 'inject_ok' ORDER BY id DESC LIMIT 1")" = 42 ]
check "pg_pilot.daemon counts them as invalid" [ "$(daemon_col feedback_invalid)" -eq $((invalid_before + 3)) ]
check "pg_pilot.daemon counts the dead letters" [ "$(daemon_col store_dead_letter)" -ge 3 ]
check_no_crash "invalid feedback records"
finish
