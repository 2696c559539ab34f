#!/usr/bin/env bash
# run_demo.sh — the driver behind `make demo` (also runnable directly).
#
# Starts a throw-away PostgreSQL 15 cluster with pg_pilot preloaded and a real
# pilotd (private port and socket directory), loads the web shop of
# demo/data.sql, computes the true row count of every sub-plan of the demo
# queries (demo/queries/*.subplans), loads them into pg_pilot's oracle, and for
# each query shows PostgreSQL's estimates against the true counts, the native
# plan against the pg_pilot plan, and their execution times (median of 3
# interleaved runs).  Ends with a summary table and pilotd's round-trip latency.
#
# The cluster and pilotd are stopped on exit, also on failure or Ctrl-C.
# Exits non-zero if something breaks (a slower query is reported, not a failure).
# Output files (plans, timings, the cardinality file) go to demo/out/.
#
# PostgreSQL refuses to run as root: as root, this script re-runs itself as the
# postgres OS user from a scratch copy (regress/lib/as_owner.sh).
#
# Environment: PG_PILOT_TEST_USER (default postgres), PG_PILOT_KEEP=1 keeps the
# scratch directory, PG_PILOT_DEMO_RUNS (default 3), PG_PILOT_DEMO_TIMEOUT
# (statement_timeout of a timed run, default 60s).
set -uo pipefail

SELF_DIR=$(cd "$(dirname "$0")" && pwd)

# results come back to demo/out/ in the repository
pp_after_rerun() {
  if [ -d "$1/demo/out" ]; then
    rm -rf "$SELF_DIR/out" && cp -r "$1/demo/out" "$SELF_DIR/out" \
      && echo "(plans, timings and the cardinality file: $SELF_DIR/out/)"
  fi
}
cols=0
[ -t 1 ] && cols=$(tput cols 2>/dev/null || echo 0)
# shellcheck source=../regress/lib/as_owner.sh
source "$SELF_DIR/../regress/lib/as_owner.sh"
pp_rerun_as_owner demo demo/run_demo.sh PP_DEMO_COLS="$cols"

# ---------------------------------------------------------------------------
T0=$(date +%s.%N)
WORK=${PP_WORK:-$(mktemp -d /tmp/pg_pilot_demo.XXXXXX)}
LIB=${PP_LIB:-$SELF_DIR/../regress/lib}
OUT="$SELF_DIR/out"
mkdir -p "$OUT" 2>/dev/null && [ -w "$OUT" ] || OUT="$WORK/out"
mkdir -p "$OUT"
if [ "$OUT" = "$SELF_DIR/out" ]; then OUTNAME=demo/out; else OUTNAME=$OUT; fi
RUNS=${PG_PILOT_DEMO_RUNS:-3}
TIMEOUT=${PG_PILOT_DEMO_TIMEOUT:-60s}
if [ -n "${PP_DEMO_COLS:-}" ]; then COLS=$PP_DEMO_COLS
elif [ -t 1 ]; then COLS=$(tput cols 2>/dev/null || echo 0)
else COLS=0; fi

# shellcheck source=../regress/lib/cluster.sh
source "$LIB/cluster.sh" || { echo "cannot read $LIB/cluster.sh"; exit 1; }

FAILED=0
fail() { echo "FAILED: $*"; FAILED=1; }
die() { echo "FAILED: $*"; FAILED=1; exit 1; }

cleanup() {
  pp_teardown
  # the cluster holds ~1 GB of data: drop it unless asked to keep it
  if [ -z "${PG_PILOT_KEEP:-}" ] && [ -n "${PP_DIR:-}" ] && [ "$FAILED" -eq 0 ]; then rm -rf "$PP_DIR"; fi
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; FAILED=1; exit 130' INT TERM

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
rule() { printf '%*s\n' "${1:-78}" '' | tr ' ' "${2:--}"; }
# psql on the demo database, without ON_ERROR_STOP (callers check)
dpsql() { "$PG_BIN/psql" -X -q "$@"; }

echo
echo "pg_pilot demo: PostgreSQL's own row estimates vs. true cardinalities injected by pg_pilot"
rule 86 =

# ---------------------------------------------------------------------------
echo
echo "== 1/5  Throw-away cluster and pilotd"
pp_cluster_init "$WORK/cluster" "jit = off" || die "initdb"
pp_cluster_start || die "postgres did not start"
pp_pilotd_start || die "pilotd did not start"
pp_psql -d postgres -c "CREATE DATABASE shop" || die "CREATE DATABASE"
export PGDATABASE=shop
pp_psql -c "CREATE EXTENSION pg_pilot" || die "CREATE EXTENSION pg_pilot"
echo "  $(pp_psql -At -c "SELECT split_part(version(), ' on ', 1)"), port $PGPORT (socket $PGHOST)"
echo "  pilotd pid $(pp_pilotd_pid), pg_pilot $(pp_psql -At -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_pilot'")," \
     "attached: $(pp_psql -At -c "SELECT attached FROM pg_pilot.daemon")"
echo "  settings: $(pp_psql -At -c "SELECT string_agg(name || ' = ' || current_setting(name), ', ' ORDER BY name)
  FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'jit')")"
echo "  (PostgreSQL's defaults, except jit = off: JIT compile time would blur the comparison)"

# ---------------------------------------------------------------------------
echo
echo "== 2/5  Loading the web shop (demo/data.sql)"
t=$(date +%s.%N)
# stdbuf: show psql's progress lines as they come, also when piped
# each step's line is printed when it starts and completed with its duration
stdbuf -oL "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -f "$SELF_DIR/data.sql" 2>&1 | {
  ts=
  while IFS= read -r line; do
    [ -n "$ts" ] && printf '%6s s\n' "$(since "$ts")"
    if [[ "$line" == "  ["* ]]; then printf '%-48s' "$line"; ts=$(date +%s.%N); else echo "$line"; ts=; fi
  done
  [ -n "$ts" ] && printf '%6s s\n' "$(since "$ts")"
}
[ "${PIPESTATUS[0]}" -eq 0 ] || die "loading data.sql"
echo "  loaded in $(since "$t") s:"
pp_psql -At -F ' ' -c "SELECT c.relname, to_char(c.reltuples, 'FM999,999,999'), pg_size_pretty(pg_total_relation_size(c.oid))
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY c.reltuples DESC" |
  while read -r rel rows size unit; do printf '    %-12s %10s rows %8s %s with indexes\n' "$rel" "$rows" "$size" "$unit"; done

# ---------------------------------------------------------------------------
QFILES=("$SELF_DIR"/queries/q*.sql)
[ -e "${QFILES[0]}" ] || die "no queries in $SELF_DIR/queries"
python3 "$SELF_DIR/subplans.py" --check "${QFILES[@]}" || die "sub-plan lists are stale"

declare -A TITLE QUERY
QIDS=()
for f in "${QFILES[@]}"; do
  id=$(basename "$f" .sql)
  QIDS+=("$id")
  TITLE[$id]=$(sed -n 's/^-- title: *//p' "$f" | head -1)
  QUERY[$id]=$(grep -v '^ *--' "$f" | sed '/^ *$/d; $s/; *$//')
done
qlabel() { local n=${1%%_*}; echo "Q${n#q} ${TITLE[$1]}"; }

echo
nsub=$(cat "$SELF_DIR"/queries/q*.subplans | grep -vc '^#')
echo "== 3/5  True cardinality of every sub-plan ($nsub COUNT(*) queries, hash joins, pg_pilot off)"
CARDS="$OUT/cardinalities.txt"
TRUTH="$OUT/truth.tsv"
: >"$CARDS"; : >"$TRUTH"
declare -A COUNT
for id in "${QIDS[@]}"; do
  t=$(date +%s.%N)
  sp="$SELF_DIR/queries/$id.subplans"
  n=$(grep -vc '^#' "$sp")
  printf '  %-46s %2d sub-plans ' "$(qlabel "$id")" "$n"
  ord=0
  rels=
  while IFS= read -r line; do
    case "$line" in
      '#'*) rels=${line#\# }; continue ;;
      '') continue ;;
    esac
    ord=$((ord + 1))
    if [ -z "${COUNT[$line]:-}" ]; then
      c=$(dpsql -At -v ON_ERROR_STOP=1 -c "SET pg_pilot.enabled = off" -c "SET enable_nestloop = off" \
            -c "SET work_mem = '64MB'" -c "SET statement_timeout = '300s'" -c "${line%;}") \
        || { echo; die "counting: $line"; }
      COUNT[$line]=$c
      echo "$c||$line" >>"$CARDS"
    fi
    sorted=$(tr ' ' '\n' <<<"$rels" | LC_ALL=C sort | paste -sd' ')
    printf '%s\t%d\t%s\t%s\t%s\n' "$id" "$ord" "$rels" "$sorted" "${COUNT[$line]}" >>"$TRUTH"
    printf '.'
  done <"$sp"
  printf '%*s %5s s\n' $((16 - n)) '' "$(since "$t")"
done
echo "  wrote $(wc -l <"$CARDS") distinct lines \"rows||SELECT COUNT(*) ...;\" to $OUTNAME/cardinalities.txt"

# ---------------------------------------------------------------------------
echo
echo "== 4/5  Loading them into pg_pilot's oracle"
res=$(pp_psql -At -F ' ' -v "f=$CARDS" <<'SQL'
SELECT lines, loaded, failed, oracle_entries FROM pg_pilot.load_cardinalities(:'f', replace => true);
SQL
) || die "load_cardinalities"
read -r lines loaded failed entries <<<"$res"
echo "  SELECT * FROM pg_pilot.load_cardinalities('.../cardinalities.txt', replace => true)"
echo "  -> lines $lines, loaded $loaded, failed $failed, oracle_entries $entries"
[ "$entries" != "$lines" ] && echo "     (entries are keyed by relation set: sub-plans that two queries share, written differently, are one entry)"
[ "$failed" = 0 ] && [ "$loaded" = "$lines" ] || fail "not every cardinality line was loaded"
pp_psql -v "f=$TRUTH" <<'SQL' || die "truth table"
CREATE TABLE demo_truth (qid text, ord int, relset text, sortkey text, true_rows bigint);
COPY demo_truth FROM :'f';
SQL
pp_psql -At -c "SELECT pg_pilot.reset_stats()" >/dev/null

# ---------------------------------------------------------------------------
# compact_plan WIDTH: EXPLAIN text -> node lines only, indentation halved,
# each line cut at WIDTH characters
compact_plan() {
  awk -v w="$1" '
    function cut(s) { return length(s) > w ? substr(s, 1, w - 3) "..." : s }
    NR == 1 { print cut($0); next }
    /->/ { p = index($0, "->"); s = substr($0, p + 4); sub(/^ +/, "", s)
           pad = ""; for (i = 0; i < int((p - 1) / 2); i++) pad = pad " "
           print cut(pad "-> " s) }'
}

# side_by_side LEFT_FILE RIGHT_FILE WIDTH
side_by_side() {
  awk -v w="$3" 'NR == FNR { l[FNR] = $0; nl = FNR; next } { r[FNR] = $0; nr = FNR }
    END { n = nl > nr ? nl : nr
          for (i = 1; i <= n; i++) printf "  %-" w "s | %s\n", l[i], r[i] }' "$1" "$2"
}

# timed runs: prints "mode run ms status" lines
time_runs() {
  local id=$1 script="$OUT/$id.timing.sql" i mode
  {
    echo "SET statement_timeout = '$TIMEOUT';"
    for i in $(seq 1 "$RUNS"); do
      for mode in native oracle; do
        echo "SET pg_pilot.estimator = '$mode';"
        echo "\\o $WORK/$id.$mode.$i.out"
        echo "\\echo @@run $mode $i"
        echo "\\timing on"
        echo "${QUERY[$id]};"
        echo "\\timing off"
        echo "\\o"
        echo "\\echo @@status :ERROR :SQLSTATE"
      done
    done
  } >"$script"
  dpsql -f "$script" 2>"$OUT/$id.timing.err" |
    awk '/^@@run/ { mode = $2; run = $3 } /^Time:/ { ms = $2 }
         /^@@status/ { st = ($2 == "false") ? "ok" : ($3 == "57014" ? "timeout" : "error:" $3)
                       print mode, run, ms, st }'
}

# median of the values on stdin ("timeout" sorts last); prints "timeout" if the median timed out
median() {
  awk '{ print ($1 == "timeout") ? 1e12 : $1 }' | sort -g |
    awk '{ v[NR] = $1 } END { m = v[int((NR + 1) / 2)]; if (m + 0 >= 1e12) print "timeout"; else print m }'
}

fmt_ms() { if [ "$1" = timeout ]; then echo "timeout"; else awk -v x="$1" 'BEGIN { printf (x >= 100 ? "%.0f ms" : "%.1f ms"), x }'; fi; }

echo
echo "== 5/5  The queries: PostgreSQL alone (pg_pilot.estimator = native) vs. pg_pilot (= oracle)"
declare -A SUM_N SUM_O SUM_X SUM_E
timeout_ms=$(pp_psql -At -c "SET statement_timeout = '$TIMEOUT'; SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
for id in "${QIDS[@]}"; do
  q=${QUERY[$id]}
  echo
  rule 86 =
  echo "$(qlabel "$id")"
  rule 86 =
  sed -n 's/^-- \{0,1\}//p' "$SELF_DIR/queries/$id.sql" | grep -v '^title:' | sed 's/^/  /'
  echo
  sed 's/^/    /' <<<"$q"

  # -- estimates -------------------------------------------------------------
  echo
  echo "  Row estimates of every relation set the planner sized:"
  pp_psql -P footer=off -v "q=$q" -v "id=$id" <<'SQL' | sed '/^$/d; s/^/  /' || fail "$id: explain_estimates"
SET pg_pilot.estimator = 'native';
SELECT COALESCE(t.relset, e.relations) AS "relation set",
       to_char(e.native_rows, 'FM999,999,999,990') AS "PostgreSQL estimate",
       COALESCE(to_char(t.true_rows, 'FM999,999,999,990'), '?') AS "true rows (injected)",
       CASE WHEN t.true_rows IS NULL THEN 'no true count!'
            WHEN f.factor < 1.5 THEN 'ok'
            ELSE to_char(f.factor, CASE WHEN f.factor < 10 THEN 'FM990.0' ELSE 'FM999,999,990' END)
                 || CASE WHEN e.native_rows > t.true_rows THEN 'x too high' ELSE 'x too low' END
                 || CASE WHEN f.factor >= 100 THEN '  <<<' ELSE '' END
       END AS "error of the estimate"
FROM pg_pilot.explain_estimates(:'q') e
LEFT JOIN demo_truth t
  ON t.qid = :'id'
 AND t.sortkey = (SELECT string_agg(a, ' ' ORDER BY a) FROM unnest(string_to_array(e.relations, ' ')) a)
CROSS JOIN LATERAL (SELECT greatest(e.native_rows, t.true_rows)
                           / greatest(least(e.native_rows, t.true_rows), 1) AS factor) f
ORDER BY e.nrels, t.ord;
SQL
  echo "  (ok: within a factor of 1.5; <<<: off by a factor of 100 or more)"
  worst=$(pp_psql -At -v "q=$q" -v "id=$id" <<'SQL'
SET pg_pilot.estimator = 'native';
SELECT CASE WHEN e.native_rows >= t.true_rows
            THEN to_char(e.native_rows / greatest(t.true_rows, 1), 'FM999,999,990') || 'x too high'
            ELSE to_char(t.true_rows / e.native_rows, 'FM999,999,990') || 'x too low' END
FROM pg_pilot.explain_estimates(:'q') e
JOIN demo_truth t
  ON t.qid = :'id'
 AND t.sortkey = (SELECT string_agg(a, ' ' ORDER BY a) FROM unnest(string_to_array(e.relations, ' ')) a)
ORDER BY greatest(e.native_rows, t.true_rows) / greatest(least(e.native_rows, t.true_rows), 1) DESC
LIMIT 1;
SQL
)
  SUM_E[$id]=${worst:-?}
  check=$(pp_psql -At -F ' ' -v "q=$q" -v "id=$id" <<'SQL'
SET pg_pilot.estimator = 'oracle';
SELECT count(*),
       count(*) FILTER (WHERE e.source = 'oracle' AND e.used_rows = greatest(t.true_rows, 1)),
       (SELECT count(*) FROM demo_truth WHERE qid = :'id')
FROM pg_pilot.explain_estimates(:'q') e
LEFT JOIN demo_truth t
  ON t.qid = :'id'
 AND t.sortkey = (SELECT string_agg(a, ' ' ORDER BY a) FROM unnest(string_to_array(e.relations, ' ')) a);
SQL
) || fail "$id: explain_estimates (oracle)"
  read -r nsets nexact ntruth <<<"$check"
  if [ "${nsets:-0}" -gt 0 ] && [ "$nsets" = "$nexact" ] && [ "$nsets" = "$ntruth" ]; then
    echo "  With pg_pilot, the planner used the true row count for all $nsets relation sets (source: oracle)."
  else
    fail "$id: with pg_pilot, only ${nexact:-?} of ${nsets:-?} relation sets used their true count (${ntruth:-?} sub-plans)"
  fi

  # -- plans -------------------------------------------------------------------
  for mode in native oracle; do
    pp_psql -At -v "q=$q" >"$OUT/$id.$mode.plan.txt" <<SQL || fail "$id: EXPLAIN ($mode)"
SET pg_pilot.estimator = '$mode';
EXPLAIN (COSTS OFF) :q
SQL
  done
  echo
  if [ "$COLS" -ge 120 ]; then
    w=$(( (COLS - 6) / 2 )); [ $w -gt 75 ] && w=75
    compact_plan $w <"$OUT/$id.native.plan.txt" >"$WORK/l.txt"
    compact_plan $w <"$OUT/$id.oracle.plan.txt" >"$WORK/r.txt"
    printf "  %-${w}s | %s\n" "Plan, PostgreSQL alone" "Plan with pg_pilot"
    printf "  %-${w}s | %s\n" "$(rule $w)" "$(rule $w)"
    side_by_side "$WORK/l.txt" "$WORK/r.txt" $w
  else
    w=$(( COLS > 60 ? COLS - 4 : 100 ))
    echo "  Plan, PostgreSQL alone:"
    compact_plan $w <"$OUT/$id.native.plan.txt" | sed 's/^/    /'
    echo
    echo "  Plan with pg_pilot:"
    compact_plan $w <"$OUT/$id.oracle.plan.txt" | sed 's/^/    /'
  fi
  echo "  (scan and join nodes only; full plans: $OUTNAME/$id.{native,oracle}.plan.txt)"
  if cmp -s "$OUT/$id.native.plan.txt" "$OUT/$id.oracle.plan.txt"; then
    echo "  The plans are the same."
  fi

  # -- timing ------------------------------------------------------------------
  echo
  [ "$RUNS" -eq 1 ] && runs="1 run" || runs="$RUNS runs each, interleaved"
  echo "  Execution time (wall clock seen by psql, planning included; $runs; statement_timeout $TIMEOUT):"
  time_runs "$id" >"$OUT/$id.timings.txt"
  if grep -q ' error:' "$OUT/$id.timings.txt" || [ "$(wc -l <"$OUT/$id.timings.txt")" -ne $((2 * RUNS)) ]; then
    fail "$id: a timed run failed:"; sed 's/^/    /' "$OUT/$id.timing.err"
  fi
  printf '    %-8s %12s %12s\n' "" "PostgreSQL" "pg_pilot"
  for i in $(seq 1 "$RUNS"); do
    n=$(awk -v i="$i" '$1 == "native" && $2 == i { print ($4 == "ok" ? $3 : $4) }' "$OUT/$id.timings.txt")
    o=$(awk -v i="$i" '$1 == "oracle" && $2 == i { print ($4 == "ok" ? $3 : $4) }' "$OUT/$id.timings.txt")
    printf '    %-8s %12s %12s\n' "run $i" "$(fmt_ms "${n:-?}")" "$(fmt_ms "${o:-?}")"
  done
  mn=$(awk '$1 == "native" { print ($4 == "ok" ? $3 : "timeout") }' "$OUT/$id.timings.txt" | median)
  mo=$(awk '$1 == "oracle" { print ($4 == "ok" ? $3 : "timeout") }' "$OUT/$id.timings.txt" | median)
  if [ "$mn" = timeout ] && [ "$mo" = timeout ]; then x="both timed out"
  elif [ "$mn" = timeout ]; then x=$(awk -v a="$timeout_ms" -v b="$mo" 'BEGIN { printf ">%.0fx faster", a / b }')
  elif [ "$mo" = timeout ]; then x="pg_pilot timed out"
  else x=$(awk -v a="$mn" -v b="$mo" 'BEGIN { if (a >= b) printf "%.1fx faster", a / b; else printf "%.1fx SLOWER", b / a }')
  fi
  printf '    %-8s %12s %12s    pg_pilot: %s\n' "median" "$(fmt_ms "$mn")" "$(fmt_ms "$mo")" "$x"
  # the results of the first run that did not time out, one per plan
  rn=$(awk '$1 == "native" && $4 == "ok" { print $2; exit }' "$OUT/$id.timings.txt")
  ro=$(awk '$1 == "oracle" && $4 == "ok" { print $2; exit }' "$OUT/$id.timings.txt")
  [ -n "$rn" ] && cp "$WORK/$id.native.$rn.out" "$OUT/$id.native.result.txt"
  [ -n "$ro" ] && cp "$WORK/$id.oracle.$ro.out" "$OUT/$id.oracle.result.txt"
  if [ -n "$rn" ] && [ -n "$ro" ]; then
    if cmp -s "$OUT/$id.native.result.txt" "$OUT/$id.oracle.result.txt"; then
      echo "    same result with both plans: yes ($OUTNAME/$id.*.result.txt)"
    else fail "$id: the two plans returned different results"; fi
  fi
  SUM_N[$id]=$mn; SUM_O[$id]=$mo; SUM_X[$id]=$x
done

# ---------------------------------------------------------------------------
echo
rule 86 =
echo "Summary (median of $RUNS runs; worst error = PostgreSQL's estimate vs. the true count, over all relation sets)"
rule 86 =
qw=5
for id in "${QIDS[@]}"; do l=$(qlabel "$id"); [ ${#l} -gt $qw ] && qw=${#l}; done
printf "  %-${qw}s %11s %10s %10s  %s\n" "query" "PostgreSQL" "pg_pilot" "speedup" "worst estimate (PostgreSQL)"
for id in "${QIDS[@]}"; do
  printf "  %-${qw}s %11s %10s %10s  %s\n" "$(qlabel "$id")" "$(fmt_ms "${SUM_N[$id]}")" \
    "$(fmt_ms "${SUM_O[$id]}")" "${SUM_X[$id]% faster}" "${SUM_E[$id]}"
done
lat=$(pp_psql -At -F ' ' -c "SELECT requests, items, round(latency_p50_us::numeric, 1), round(latency_p99_us::numeric, 1) FROM pg_pilot.stats") \
  || fail "pg_pilot.stats"
read -r req items p50 p99 <<<"$lat"
echo
echo "  pilotd round trip (planner -> pilotd -> planner): p50 ${p50:-?} us, p99 ${p99:-?} us"
echo "  over ${req:-?} round trips asking for ${items:-?} relation sets (SELECT latency_p50_us, latency_p99_us FROM pg_pilot.stats)"
echo "  demo took $(since "$T0") s"
[ "$OUTNAME" = demo/out ] || echo "  plans, timings and the cardinality file: $OUTNAME/"
[ "$FAILED" -eq 0 ] || { echo; echo "demo FAILED (see above)"; exit 1; }
