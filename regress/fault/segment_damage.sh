#!/usr/bin/env bash
# Another process damages pilotd's shared segment (any process of the server's
# OS user can write to /dev/shm/<segment>) while 3 sessions plan with the
# oracle estimator, checking every result, and one streams feedback:
#   1. garbage over the slots and feedback rings (the header intact): pilotd
#      refuses what fails validation and serves on;
#   2. the header overwritten: backends refuse the segment at their next use
#      and plan natively; pilotd notices within a heartbeat, says so and exits
#      failed (a service manager restarts it; here the test does);
#   3. the segment truncated to one page: no backend touches the lost pages
#      (they check the size on every use), pilotd absorbs its own faults on
#      them, says so and exits failed;
#   4. the segment opened to other users (chmod 0644): a new session refuses
#      it, pilotd says so and exits failed.
# Each time: no query fails or changes its result, no backend crashes, and
# after the restart estimates come back and every acknowledged feedback record
# is in the store.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

segment=$(daemon_col segment)
SHM="/dev/shm/$segment"
check "the segment file is known ($SHM)" [ -f "$SHM" ]
check "the store is drained before the test" store_wait_drained
mon "SELECT pg_pilot.reset_stats()" >/dev/null
rows_before=$(store_rows)
# SegmentHeader.header_size: the uint32 at offset 12 (after magic and version)
header_bytes=$(python3 -c "import struct; print(struct.unpack_from('<I', open('$SHM', 'rb').read(16), 12)[0])")

# sessions DAMAGE_CMD...: 4 sessions for 6 s, the damage done once all four
# have streamed for 1 s.  Sets SESSIONS_FAILED, SESSION_RUNS and SESSIONS_OK
# (all four ran their loop to the end, none failed)
sessions() {
  local pids=() i
  for i in 1 2 3; do oracle_stream 6 >"$PP_DIR/damage_oracle$i.out" & pids+=($!); done
  feedback_stream 6 >"$PP_DIR/damage_feedback.out" 2>&1 & pids+=($!)
  wait_until 60 streams_running 4
  sleep 1  # they stream on the intact segment first
  "$@"
  SESSIONS_FAILED=0
  for i in "${pids[@]}"; do wait "$i" || SESSIONS_FAILED=$((SESSIONS_FAILED + 1)); done
  SESSIONS_FAILED=$((SESSIONS_FAILED + $(grep -l "ERROR\|wrong result" "$PP_DIR"/damage_*.out | wc -l)))
  SESSION_RUNS=$(cat "$PP_DIR"/damage_*.out | grep -o 'runs=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
  SESSIONS_OK=false
  [ "$SESSIONS_FAILED" -eq 0 ] && [ "$(streams_done "$PP_DIR"/damage_*.out)" -eq 4 ] && SESSIONS_OK=true
}
# garbage OFFSET LENGTH: random bytes written into the segment in place
garbage() { python3 -c "
import os
f = open('$SHM', 'r+b'); f.seek($1); f.write(os.urandom($2)); f.close()"; }
# pilotd_gone PID: it exited (within 30 s: it notices within a heartbeat, but
# a busy machine may be slow to run it)
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
pilotd_gone() { wait_until 30 pid_gone "$1"; }
oracle_source() {
  pp_psql -At -c "SET pg_pilot.estimator = 'oracle'" -c "SELECT string_agg(DISTINCT split_part(source, ' ', 1), ',')
    FROM pg_pilot.explain_estimates(\$q\$${WORKLOAD[0]}\$q\$)"
}

# 1 ------------------------------------------------------------------------
pid=$(pp_pilotd_pid)
size=$(command stat -c %s "$SHM")  # (fault.sh defines a function stat)
refused() { mon "SELECT d.bad_requests + d.feedback_invalid + s.fallback_invalid + s.fallback_busy + s.fallback_timeout
                   FROM pg_pilot.daemon d, pg_pilot.stats s"; }
refused_before=$(refused)
sessions garbage "$header_bytes" $((size - header_bytes))
echo "# garbage over the slots and rings ($((size - header_bytes)) bytes after the $header_bytes-byte header): $SESSION_RUNS queries, $SESSIONS_FAILED failed sessions"
mon "SELECT 'pilotd refused ' || bad_requests || ' requests and ' || feedback_invalid || ' feedback records or rings' FROM pg_pilot.daemon" | sed 's/^/# /'
mon "SELECT 'backends: ' || fallback_invalid || ' invalid responses, ' || fallback_busy || ' busy slots, ' || fallback_timeout || ' timeouts' FROM pg_pilot.stats" | sed 's/^/# /'
check "the garbage was refused and counted ($refused_before -> $(refused))" [ "$(refused)" -gt "$refused_before" ]
check "no query failed or changed its result (garbage in the slots)" $SESSIONS_OK
check "pilotd serves on (same process, header intact)" [ "$(pp_pilotd_pid)" = "$pid" ]
check "estimates come from pilotd again afterwards" [ "$(oracle_source)" = oracle ]
check "the store drains after the garbage" store_wait_drained 60
# the garbage may have posed as feedback (refused, or kept as dead letters):
# the exactly-once accounting starts after it
mon "SELECT pg_pilot.reset_stats()" >/dev/null
rows_before=$(store_rows)

# 2 ------------------------------------------------------------------------
before=$(mon "SELECT fallback_version_mismatch + fallback_daemon_down FROM pg_pilot.stats")
sessions garbage 0 16
echo "# header overwritten: $SESSION_RUNS queries, $SESSIONS_FAILED failed sessions"
check "no query failed or changed its result (header overwritten)" $SESSIONS_OK
check "backends refused the segment, counted ($before -> $(mon "SELECT fallback_version_mismatch + fallback_daemon_down FROM pg_pilot.stats"))" \
  [ "$(mon "SELECT fallback_version_mismatch + fallback_daemon_down FROM pg_pilot.stats")" -gt "$before" ]
check "pilotd exited" pilotd_gone "$pid"
grep "damaged by another process" "$PP_DIR/pilotd.log" | tail -1 | sed 's/^/# pilotd.log: /'
check "pilotd said why (header overwritten)" grep -q "was damaged by another process: its header was overwritten" "$PP_DIR/pilotd.log"
check "and that it exits failed, to be restarted" grep -q "shutting down: the segment is damaged" "$PP_DIR/pilotd.log"
pp_pilotd_start
check "restarted, estimates come from pilotd again" [ "$(oracle_source)" = oracle ]

# 3 ------------------------------------------------------------------------
pid=$(pp_pilotd_pid)
sessions truncate -s 4096 "$SHM"
echo "# truncated to 4096 bytes: $SESSION_RUNS queries, $SESSIONS_FAILED failed sessions"
check "no query failed or changed its result (segment truncated)" $SESSIONS_OK
check "pilotd exited (no SIGBUS death: it said why)" pilotd_gone "$pid"
grep "damaged by another process" "$PP_DIR/pilotd.log" | tail -1 | sed 's/^/# pilotd.log: /'
check "pilotd said why (truncated)" grep -qE "was damaged by another process: (truncated to 4096 of|an access past its end faulted)" "$PP_DIR/pilotd.log"
wait "$pid" 2>/dev/null; rc=$?  # started by this script in step 2
check "pilotd exited with status 1 (not killed by SIGBUS: $rc)" [ "$rc" -eq 1 ]
pp_pilotd_start
check "restarted, estimates come from pilotd again" [ "$(oracle_source)" = oracle ]

# 4 ------------------------------------------------------------------------
pid=$(pp_pilotd_pid)
# pilotd frozen meanwhile: it would notice within a heartbeat and remove the
# segment before the new session looks at it
kill -STOP "$pid"
chmod 0644 "$SHM"
problem=$(pp_psql -At -c "SELECT problem FROM pg_pilot.daemon")  # a new session attaches now
got=$(actual_results)
kill -CONT "$pid"
echo "# segment opened to other users: a new session says \"$problem\""
check "a new session refuses a segment other users may read" grep -q "segment accessible to other users (mode 0644): refused" <<<"$problem"
check "and plans natively with PostgreSQL's results" [ "$got" = "$(expected_results)" ]
check "pilotd exited" pilotd_gone "$pid"
check "pilotd said why (mode)" grep -q "was damaged by another process: opened to other users (mode 0644)" "$PP_DIR/pilotd.log"
pp_pilotd_start
check "restarted, estimates come from pilotd again" [ "$(oracle_source)" = oracle ]

check "every acknowledged feedback record reached the store" store_wait_drained 60
check_stored "$rows_before" within
check_no_crash "segment damage"
finish
