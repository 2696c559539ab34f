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
