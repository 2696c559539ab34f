# fault.sh — helpers for the fault tests (sourced after cluster.sh; the cluster
# and pilotd of run_checks.sh are running, and the pg_regress database with the
# setup.sql data and the oracle entries of oracle.sql exists).
# Output is TAP-like: "ok - ..." / "not ok - ..." lines, counted by run_checks.sh.

export PGDATABASE=pg_pilot_regress
PP_FAILS=0

ok()     { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; PP_FAILS=$((PP_FAILS + 1)); }
check()  { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

q() { pp_psql -At -c "$1"; }

# streams_running N: at least N sessions are inside the loop of an
# oracle_stream or feedback_stream (their DO block is running)
streams_running() {
  local n
  n=$(mon "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active'
             AND query LIKE '%DECLARE%runs int := 0%'" 2>/dev/null)
  [ "${n:-0}" -ge "$1" ]
}

# streams_done FILE...: how many of the sessions' outputs end their loop
# with "runs=N" (a session that got stuck or failed has none)
streams_done() { grep -l 'runs=[0-9]' "$@" 2>/dev/null | wc -l; }

# stat NAME: a pg_pilot.stats column
stat() { q "SELECT $1 FROM pg_pilot.stats"; }

# The workload: queries with the results PostgreSQL gives without pg_pilot.
WORKLOAD=(
  "SELECT count(*) FROM region r, customer c, orders o, lineitem l WHERE r.id = c.region_id AND c.id = o.customer_id AND o.id = l.order_id AND c.segment = 3 AND c.tier = 3 AND c.age_band = 3 AND o.status = 1 AND o.channel = 1"
  "SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.segment = 3 AND c.tier = 3 AND c.age_band = 3 AND o.status = 1 AND o.channel = 1"
  "SELECT count(*) FROM orders o, lineitem l WHERE o.id = l.order_id AND o.amount < 100"
  "SELECT sum(l.qty) FROM orders o JOIN lineitem l ON l.order_id = o.id WHERE o.status = 1"
  "SELECT count(*) FROM customer c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.region_id < 5"
  "SELECT r.name, count(*) FROM region r JOIN customer c ON c.region_id = r.id WHERE c.tier = 7 GROUP BY r.name ORDER BY 2 DESC, 1 LIMIT 3"
)

# Expected results, computed with pg_pilot off.
expected_results() {
  local sql
  for sql in "${WORKLOAD[@]}"; do
    pp_psql -At -c "SET pg_pilot.enabled = off" -c "$sql" | tr '\n' ' '; echo
  done
}

# Runs the workload with pg_pilot on in one session; prints one line per query.
actual_results() {
  local sql
  for sql in "${WORKLOAD[@]}"; do
    pp_psql -At -c "SET pg_pilot.estimator = '${1:-auto}'" -c "$sql" 2>&1 | tr '\n' ' '; echo
  done
}

# A session running the 4-table query (WORKLOAD[0]) in a loop for $1 seconds
# with the oracle estimator, checking every result against PostgreSQL's own
# (an exception ends it); prints runs=N.  More psql arguments (-c ...) run in
# the same backend afterwards.
oracle_stream() {
  local secs=$1 q4="${WORKLOAD[0]}" want
  shift
  want=$(pp_psql -At -c "SET pg_pilot.enabled = off" -c "$q4")
  pp_psql -At -v ON_ERROR_STOP=1 -c "SET pg_pilot.estimator = 'oracle'" -c "
DO \$\$
DECLARE n bigint; runs int := 0; t0 timestamptz := clock_timestamp();
BEGIN
  WHILE clock_timestamp() - t0 < interval '$secs seconds' LOOP
    EXECUTE \$q\$$q4\$q\$ INTO n;
    IF n <> $want THEN RAISE EXCEPTION 'wrong result % after % runs', n, runs; END IF;
    runs := runs + 1;
    PERFORM pg_sleep(0.005);
  END LOOP;
  RAISE NOTICE 'runs=%', runs;
END \$\$;" "$@" 2>&1
}

postmaster_pid_at_start=$(pp_postmaster_pid)
crashes_at_start=$(grep -c "terminated by signal" "$PP_DIR/postgres.log" 2>/dev/null)

# No backend crashed and the postmaster was not restarted since the test began.
check_no_crash() {
  local crashes
  crashes=$(grep -c "terminated by signal" "$PP_DIR/postgres.log" 2>/dev/null)
  check "no backend crashed ($1)" [ "$crashes" = "$crashes_at_start" ] 
  check "postmaster still the same process ($1)" [ "$(pp_postmaster_pid)" = "$postmaster_pid_at_start" ]
}

finish() {
  "$PILOTD" status -D "$PGDATA" >/dev/null 2>&1 || pp_pilotd_start >/dev/null
  [ "$PP_FAILS" -eq 0 ]
}

# --- the feedback store (pp_store_setup) ---------------------------------------
# Monitoring queries must not produce feedback themselves.
mon()       { PGOPTIONS="-c pg_pilot.collect_feedback=off" pp_psql -At -c "$1"; }
store_q()   { PGOPTIONS="-c pg_pilot.collect_feedback=off" pp_psql -d "$PP_STORE_DB" -At -c "$1"; }
daemon_col() { mon "SELECT $1 FROM pg_pilot.daemon"; }

# Rows in the store (every kind of record becomes exactly one row).
store_rows() {
  store_q "SELECT (SELECT count(*) FROM pg_pilot.feedback) + (SELECT count(*) FROM pg_pilot.query_log)
                + (SELECT count(*) FROM pg_pilot.feedback_dead_letter)"
}

# Waits (at most $1 s, default 30) until pilotd has acknowledged and committed
# everything: nothing queued in the rings, nothing pending in the spool, three
# times in a row 0.1 s apart (a record pushed just as a drain round ended shows
# up in the next round, 5 ms later).
store_wait_drained() {
  local i calm=0
  for i in $(seq 1 $(( ${1:-30} * 10 ))); do
    if [ "$(mon "SELECT feedback_queued = 0 AND spool_pending = 0 AND store_state = 'ok' FROM pg_pilot.daemon" 2>/dev/null)" = t ]; then
      calm=$((calm + 1)); [ "$calm" -ge 3 ] && return 0
    else
      calm=0
    fi
    sleep 0.1
  done
  return 1
}

# Rows in pg_pilot.feedback
feedback_rows() { store_q "SELECT count(*) FROM pg_pilot.feedback"; }

# A session running the workload for $1 seconds with feedback collected for
# every query; fails (exit status) if any query fails.  Prints runs=N.
feedback_stream() {
  local secs=$1 body="" sql
  for sql in "${WORKLOAD[@]}"; do body+="EXECUTE \$q\$$sql\$q\$; runs := runs + 1;"; done
  pp_psql -At -v ON_ERROR_STOP=1 -c "SET pg_pilot.collect_feedback = on" \
    -c "SET pg_pilot.feedback_sample_rate = 1.0" -c "
DO \$\$
DECLARE runs int := 0; t0 timestamptz := clock_timestamp();
BEGIN
  WHILE clock_timestamp() - t0 < interval '$secs seconds' LOOP
    $body
    PERFORM pg_sleep(0.002);
  END LOOP;
  RAISE NOTICE 'runs=%', runs;
END \$\$;" 2>&1
}

# feedback_streams_start N SECS PREFIX: N feedback_stream sessions in the
# background, output in $PP_DIR/PREFIX<i>.out; feedback_streams_wait PREFIX
# waits for them and sets STREAMS_FAILED (sessions with an error) and
# STREAMS_RUNS (queries run, from their "runs=N" notices).
feedback_streams_start() {
  local i
  for i in $(seq 1 "$1"); do feedback_stream "$2" >"$PP_DIR/$3$i.out" 2>&1 & done
}
feedback_streams_wait() {
  wait
  STREAMS_FAILED=$(grep -l "ERROR" "$PP_DIR/$1"*.out | wc -l)
  STREAMS_RUNS=$(cat "$PP_DIR/$1"*.out | grep -o 'runs=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
}

# check_stored ROWS_BEFORE [within]: every feedback record the backends sent
# since the last reset_stats() and that was not counted lost is in the store,
# exactly once (the store had ROWS_BEFORE rows at the reset).  "within": the
# backends could not see what pilotd acknowledged last (a damaged segment),
# so their lost count is an upper bound: nothing missing beyond it, nothing
# stored twice.
check_stored() {
  local sent dropped lost stored
  read -r sent dropped lost <<<"$(mon "SELECT feedback_sent, feedback_dropped, feedback_lost FROM pg_pilot.stats" | tr '|' ' ')"
  stored=$(( $(store_rows) - $1 ))
  echo "# feedback records: sent $sent, dropped (queue full or pilotd down) $dropped, counted lost $lost, stored $stored"
  if [ "${2:-}" = within ]; then
    check "nothing missing beyond what was counted lost (stored $stored >= sent $sent - lost $lost)" [ "$stored" -ge $((sent - lost)) ]
    check "nothing stored twice (stored $stored <= sent $sent)" [ "$stored" -le "$sent" ]
  else
    check "every record sent is stored once (stored $stored = sent $sent - lost $lost)" [ "$stored" -eq $((sent - lost)) ]
  fi
}

# --- pilotd killed under concurrent sessions ------------------------------------
# kill9_during_sessions N PREFIX KILL_AT PAUSE CMD [ARGS...]
# Runs CMD (a stream: oracle_stream or feedback_stream) in N background
# sessions (output in $PP_DIR/PREFIX<i>.out); once all N are streaming, kills
# pilotd with SIGKILL KILL_AT seconds later (calling before_kill9 first, when
# the test defines it); keeps it dead for PAUSE seconds and until the sessions
# planned without it (counted in pg_pilot.stats as fallback_daemon_down);
# restarts it and waits for the sessions.  Sets SESSIONS_FAILED, SESSION_RUNS
# (the sum of their "runs=N" notices), SESSIONS_DONE (sessions that ran their
# loop to the end) and OUTAGE_FALLBACKS (plannings without pilotd while it
# was dead).
down_count() { mon "SELECT fallback_daemon_down FROM pg_pilot.stats"; }
down_moved() { [ "$(down_count)" -gt "$1" ] 2>/dev/null; }
kill9_during_sessions() {
  local n=$1 prefix=$2 kill_at=$3 pause=$4 i pid pids=() down
  shift 4
  for i in $(seq 1 "$n"); do
    "$@" >"$PP_DIR/$prefix$i.out" 2>&1 &
    pids+=($!)
  done
  wait_until 60 streams_running "$n"
  sleep "$kill_at"  # they stream with pilotd up for a while first
  if declare -F before_kill9 >/dev/null; then before_kill9; fi
  down=$(down_count)
  pp_pilotd_kill9
  echo "# pilotd killed with SIGKILL"
  sleep "$pause"    # an outage of PAUSE seconds at least ...
  wait_until 60 down_moved "$down"  # ... in which the sessions planned without it
  OUTAGE_FALLBACKS=$(( $(down_count) - down ))
  pp_pilotd_start
  echo "# pilotd restarted; $OUTAGE_FALLBACKS plannings fell back while it was dead"
  SESSIONS_FAILED=0
  for pid in "${pids[@]}"; do wait "$pid" || SESSIONS_FAILED=$((SESSIONS_FAILED + 1)); done
  for i in $(seq 1 "$n"); do echo "# session $i: $(tr '\n' ' ' <"$PP_DIR/$prefix$i.out")"; done
  SESSION_RUNS=$(cat "$PP_DIR/$prefix"*.out | grep -o 'runs=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
  SESSIONS_DONE=$(streams_done "$PP_DIR/$prefix"*.out)
  echo "# queries run across the sessions: $SESSION_RUNS; sessions that ran to the end: $SESSIONS_DONE of $n"
}
