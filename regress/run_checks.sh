#!/usr/bin/env bash
# run_checks.sh — the driver behind `make check`.
#
# Runs, against real processes only:
#   1. C++ unit tests (regress/unit/build/test_*): subplan key, protocol, pilotd;
#   2. pg_regress suites (regress/sql, schedule in regress/schedule) on a
#      throw-away PostgreSQL 15 cluster with pg_pilot preloaded and a real pilotd,
#      both on a private port and socket directory;
#   3. fault tests (regress/fault/*.sh) against the same cluster.
# and ends with the line "N passed, N failed".
#
# Every suite runs under a hard timeout (PP_SUITE_TIMEOUT seconds, default 900;
# 1800 under make check-asan): a hung suite is killed with everything it
# started and counts as failed with its name and the end of its log, so the
# run always ends with that line.
#
# PostgreSQL refuses to run as root: as root, this script re-runs itself as the
# postgres OS user from a scratch copy (lib/as_owner.sh).  Only the Debian
# package's test (integration/deb_package.sh: dpkg -i, a throw-away Debian
# cluster) runs before that, as root; its counts are handed on.
set -uo pipefail

SELF_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/as_owner.sh
source "$SELF_DIR/lib/as_owner.sh"
root_counts=""
if [ "$(id -u)" -eq 0 ] && [ -z "${PP_ASAN:-}" ] && { [ -z "${PP_ONLY:-}" ] || [[ deb_package =~ $PP_ONLY ]]; }; then
  echo "== as root: the Debian package (integration/deb_package)"
  deb_out=$(mktemp /tmp/pg_pilot_deb_out.XXXXXX)
  timeout --kill-after=20 "${PP_SUITE_TIMEOUT:-900}" bash "$SELF_DIR/integration/deb_package.sh" >"$deb_out" 2>&1
  rc=$?
  cat "$deb_out"
  p=$(grep -cE '^ok ' "$deb_out"); f=$(grep -cE '^not ok ' "$deb_out")
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - deb_package exited with $rc"; fi
  root_counts="$p $f"
  rm -f "$deb_out"
fi
pp_rerun_as_owner check regress/run_checks.sh "PP_ONLY=${PP_ONLY:-}" "PP_ASAN=${PP_ASAN:-}" "PP_ROOT_COUNTS=$root_counts"

WORK=${PP_WORK:-$(mktemp -d /tmp/pg_pilot_check.XXXXXX)}
R="$WORK/regress"
[ -d "$R" ] || cp -r "$SELF_DIR" "$R"
# the shipped monitoring files (integration/metrics.sh checks them)
[ -d "$WORK/monitoring" ] || [ ! -d "$SELF_DIR/../monitoring" ] || cp -r "$SELF_DIR/../monitoring" "$WORK/monitoring"
export PP_WORK="$WORK" PP_REGRESS="$R"
if [ -z "${PP_SHARED:-}" ]; then
  for d in "$WORK/shared" "$SELF_DIR/../../shared"; do
    [ -d "$d/data" ] && { PP_SHARED=$(cd "$d" && pwd); break; }
  done
fi
export PP_SHARED=${PP_SHARED:-}
UNIT_BUILD=build
if [ -n "${PP_ASAN:-}" ]; then
  # make check-asan: the sanitized pilotd and unit tests; every report goes
  # to $WORK/sanitizer.* and fails the run
  UNIT_BUILD=build-asan
  export PILOTD="$R/unit/build-asan/pilotd" PILOTD_MODEL_LIB="$R/unit/build-asan/libpilot_mscn.so"
  export ASAN_OPTIONS="log_path=$WORK/sanitizer:detect_leaks=1:abort_on_error=0"
  export UBSAN_OPTIONS="log_path=$WORK/sanitizer:print_stacktrace=1"
  # the server runs the sanitized extension from a shadow installation
  # shellcheck source=lib/asan_server.sh
  source "$R/lib/asan_server.sh"
  pp_asan_server "$WORK/pgroot" "$R/unit/build-asan/pg_pilot.so" || { echo "0 passed, 1 failed"; exit 1; }
fi
# shellcheck source=lib/cluster.sh
source "$R/lib/cluster.sh"

PASSED=0
FAILED=0
FAILURES=()

SUITE_TIMEOUT=${PP_SUITE_TIMEOUT:-$([ -n "${PP_ASAN:-}" ] && echo 1800 || echo 900)}
# suite CMD...: CMD under the hard timeout (timeout signals its whole process
# group: the suite's psql, pgbench and pilotd die with it); exit status 124
# when it was killed
suite() { timeout --kill-after=20 "$SUITE_TIMEOUT" "$@"; }
# timed_out NAME RC LOG: says so when RC is the timeout's
timed_out() {
  [ "$2" -eq 124 ] || [ "$2" -eq 137 ] || return 1
  echo "not ok - $1 did not end within $SUITE_TIMEOUT s (PP_SUITE_TIMEOUT) and was killed; the end of its log ($3):"
  tail -20 "$3" | sed 's/^/#   /'
}

count() { # count PASSED FAILED NAME
  PASSED=$((PASSED + $1)); FAILED=$((FAILED + $2))
  [ "$2" -gt 0 ] && FAILURES+=("$3")
  return 0
}

cleanup() { pp_teardown; }
# PP_ONLY=REGEX (development): run only the suites whose name matches
only() { [ -z "${PP_ONLY:-}" ] || [[ $1 =~ $PP_ONLY ]]; }
trap cleanup EXIT
if [ -n "${PP_ROOT_COUNTS:-}" ]; then
  read -r p f <<<"$PP_ROOT_COUNTS"
  count "$p" "$f" "integration/deb_package (as root)"
fi

echo "== unit tests"
for t in "$R"/unit/$UNIT_BUILD/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  only "$name" || continue
  out="$WORK/$name.out"
  (cd "$WORK" && PILOTD="$PILOTD" suite "$t" >"$out" 2>&1)
  rc=$?
  timed_out "$name" "$rc" "$out" && { count 0 1 "$name"; continue; }
  p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | head -1)
  f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$out" | grep -oE '[0-9]+' | head -1)
  p=${p:-0}; f=${f:-0}
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  echo "$name: $p passed, $f failed"
  [ "$f" -gt 0 ] && { grep -E '^\[  FAILED  \]|Failure|error' "$out" | head -40; }
  count "$p" "$f" "$name"
done

echo "== cluster"
# Tests check what estimates are used, not how fast pilotd is: a generous wait
# budget keeps them exact on a loaded machine.  Tests of the budget itself set
# pg_pilot.timeout_ms explicitly.  They also check which estimates a planning
# uses, so the plan guard (which plans some runs with PostgreSQL's estimates on
# purpose) is off; integration/plan_guard.sh turns it on.
pp_cluster_init "$WORK/cluster" "pg_pilot.timeout_ms = 2000" "pg_pilot.guard = off" || { echo "initdb failed"; echo "$PASSED passed, $((FAILED + 1)) failed"; exit 1; }
pp_cluster_start || { echo "postgres did not start"; echo "$PASSED passed, $((FAILED + 1)) failed"; exit 1; }
pp_store_setup || { echo "feedback store setup failed"; echo "$PASSED passed, $((FAILED + 1)) failed"; exit 1; }
pp_pilotd_start || { echo "pilotd did not start"; echo "$PASSED passed, $((FAILED + 1)) failed"; exit 1; }
echo "postgres on port $PGPORT (socket $PGHOST), pilotd pid $PILOTD_PID, feedback store in database $PP_STORE_DB"
if [ -n "${PP_ASAN:-}" ]; then
  if pp_asan_server_loaded "$(pp_postmaster_pid)"; then
    echo "ok - the server runs the sanitized pg_pilot.so ($PP_ASAN_SO) with libasan preloaded"; count 1 0 asan-server
  else
    echo "not ok - the server did not load the sanitized pg_pilot.so"; count 0 1 asan-server
  fi
fi

echo "== pg_regress"
if only pg_regress; then
PG_REGRESS="$(pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress"
export PG_PILOT_TMPDIR="$WORK/tmp"
mkdir -p "$PG_PILOT_TMPDIR"
out="$WORK/pg_regress.out"
suite "$PG_REGRESS" --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
  --dbname=pg_pilot_regress --inputdir="$R" --outputdir="$WORK/regress-out" \
  --schedule="$R/schedule" >"$out" 2>&1
rc=$?
cat "$out"
p=$(grep -cE '\.\.\. ok' "$out")
f=$(grep -cE '\.\.\. FAILED|failed \(ignored\)' "$out")
if ! grep -qE '\.\.\. ok|\.\.\. FAILED' "$out"; then f=$((f + 1)); fi
timed_out pg_regress "$rc" "$out" && f=$((f + 1))
[ "$f" -gt 0 ] && [ -f "$WORK/regress-out/regression.diffs" ] && head -300 "$WORK/regress-out/regression.diffs"
count "$p" "$f" "pg_regress"
fi

echo "== fault and integration tests"
for t in "$R"/fault/*.sh "$R"/integration/*.sh; do
  [ -f "$t" ] || continue
  name=$(basename "$t" .sh)
  only "$name" || continue
  # it installs a package: run as root before the rest, or not at all
  if [ "$name" = deb_package ]; then
    [ -n "${PP_ROOT_COUNTS:-}" ] || echo "# deb_package not run: it needs root (make check as root runs it first)"
    continue
  fi
  out="$WORK/fault_$name.out"
  suite bash "$t" >"$out" 2>&1
  rc=$?
  cat "$out"
  if timed_out "$name" "$rc" "$out" >>"$out"; then
    tail -22 "$out"
    # a suite killed while it held pilotd stopped (SIGSTOP) leaves it frozen
    pkill -CONT -u "$(id -u)" -x pilotd 2>/dev/null
  fi
  p=$(grep -cE '^ok ' "$out")
  f=$(grep -cE '^not ok ' "$out")
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$name exited with $rc"; fi
  count "$p" "$f" "fault/$name"
  # every fault test must leave a running cluster and pilotd behind it
  pp_psql -c "SELECT 1" >/dev/null 2>&1 || pp_cluster_start
  "$PILOTD" status -D "$PGDATA" >/dev/null 2>&1 || pp_pilotd_start
done

if [ -n "${PP_ASAN:-}" ]; then
  pp_teardown  # pilotd's leak check runs at its exit
  echo "== sanitizer reports"
  reports=$(ls "$WORK"/sanitizer.* 2>/dev/null | wc -l)
  if [ "$reports" -gt 0 ]; then
    head -60 "$WORK"/sanitizer.*
    echo "not ok - $reports sanitizer reports (in $WORK/sanitizer.*)"
    count 0 1 sanitizers
  else
    echo "ok - no AddressSanitizer or UndefinedBehaviorSanitizer report"
    count 1 0 sanitizers
  fi
fi
echo
[ ${#FAILURES[@]} -gt 0 ] && echo "failed suites: ${FAILURES[*]} (logs in $WORK)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
