#!/usr/bin/env bash
# run_demo.sh — the driver behind `make demo` (also runnable directly).
#
# Starts a throw-away PostgreSQL 15 cluster with pg_pilot preloaded, a real
# pilotd (private port and socket directory) and its feedback store, loads the
# web shop of demo/data.sql, trains the learned model on a workload of other
# queries (demo/train_workload.py, run with execution feedback by `pilotd
# collect`, trained by `pilotd train`), computes the true row count of every
# sub-plan of the demo queries (demo/queries/*.subplans) and loads them into
# pg_pilot's oracle.  For each demo query — never seen by the model — it shows
# PostgreSQL's estimates and the learned model's against the true counts, the
# three plans, and their execution times (median of 3 interleaved runs).  Ends
# with a summary table and pilotd's round-trip latency and fallback counters.
#
# The cluster and pilotd are stopped on exit, also on failure or Ctrl-C.
# Exits non-zero if something breaks (a slower query or a learned estimate
# worse than PostgreSQL's is reported, not a failure).
# Output files (plans, timings, the cardinality file, the training workload
# and its logs) go to demo/out/.
#
# PostgreSQL refuses to run as root: as root, this script re-runs itself as the
# postgres OS user from a scratch copy (regress/lib/as_owner.sh).
#
# Environment: PG_PILOT_TEST_USER (default postgres), PG_PILOT_KEEP=1 keeps the
# scratch directory, PG_PILOT_DEMO_RUNS (default 3), PG_PILOT_DEMO_TIMEOUT
# (statement_timeout of a timed run, default 60s), PG_PILOT_DEMO_SCALE (data
# size, default 0.5), PG_PILOT_DEMO_BUDGET_MS (pg_pilot.timeout_ms of the demo
# cluster, default 500), PG_PILOT_DEMO_TRAIN_QUERIES (training query templates,
# default 40), PG_PILOT_DEMO_TRAIN_SECONDS (pilotd train's budget, default 40).
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
SCALE=${PG_PILOT_DEMO_SCALE:-0.5}
BUDGET_MS=${PG_PILOT_DEMO_BUDGET_MS:-500}
TRAIN_QUERIES=${PG_PILOT_DEMO_TRAIN_QUERIES:-40}
TRAIN_SECONDS=${PG_PILOT_DEMO_TRAIN_SECONDS:-40}
MODES=(native learned oracle)
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
  # the cluster holds ~0.5 GB of data: drop it unless asked to keep it
  if [ -z "${PG_PILOT_KEEP:-}" ] && [ -n "${PP_DIR:-}" ] && [ "$FAILED" -eq 0 ]; then rm -rf "$PP_DIR"; fi
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; FAILED=1; exit 130' INT TERM

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
rule() { printf '%*s\n' "${1:-78}" '' | tr ' ' "${2:--}"; }
# psql on the demo database, without ON_ERROR_STOP (callers check)
dpsql() { "$PG_BIN/psql" -X -q "$@"; }
# the pg_pilot.stats counters of planning fallbacks, "timeout daemon_down busy no_slot"
fallbacks() { pp_psql -At -F ' ' -c "SELECT fallback_timeout, fallback_daemon_down, fallback_busy, fallback_no_slot FROM pg_pilot.stats"; }
num() { awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x); n = length(s); o = ""
  while (n > 3) { o = "," substr(s, n - 2, 3) o; n -= 3 } print substr(s, 1, n) o }'; }

echo
echo "pg_pilot demo: PostgreSQL's own row estimates vs. a learned model vs. the true cardinalities"
rule 86 =

# ---------------------------------------------------------------------------
echo
echo "== 1/6  Throw-away cluster, pilotd and its feedback store"
# The demo shows what better estimates do to plans, not how fast pilotd answers
# on a busy machine: planning may wait up to BUDGET_MS for pilotd (the default,
# 5 ms, is a production budget; on a loaded 2-core machine pilotd's p99 round
# trip can come close to it, and a late answer means PostgreSQL's estimate).
# It compares the estimators one by one (pg_pilot.estimator), so the plan
# guard, which would plan some runs with PostgreSQL's estimates, is off.
pp_cluster_init "$WORK/cluster" "jit = off" "pg_pilot.timeout_ms = $BUDGET_MS" "pg_pilot.guard = off" || die "initdb"
pp_cluster_start || die "postgres did not start"
pp_store_setup >/dev/null || die "feedback store setup"
pp_pilotd_start || die "pilotd did not start"
pp_psql -d postgres -c "CREATE DATABASE shop" || die "CREATE DATABASE"
export PGDATABASE=shop
pp_psql -c "CREATE EXTENSION pg_pilot" || die "CREATE EXTENSION pg_pilot"
echo "  $(pp_psql -At -c "SELECT split_part(version(), ' on ', 1)"), port $PGPORT (socket $PGHOST)"
echo "  pilotd pid $(pp_pilotd_pid), pg_pilot $(pp_psql -At -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_pilot'")," \
     "attached: $(pp_psql -At -c "SELECT attached FROM pg_pilot.daemon"), feedback store: database $PP_STORE_DB ($(pp_psql -At -c "SELECT store_state FROM pg_pilot.daemon"))"
echo "  settings: $(pp_psql -At -c "SELECT string_agg(name || ' = ' || current_setting(name), ', ' ORDER BY name)
  FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'jit')")"
echo "  (PostgreSQL's defaults, except jit = off: JIT compile time would blur the comparison)"
echo "  pg_pilot.timeout_ms = $(pp_psql -At -c "SHOW pg_pilot.timeout_ms") for this demo (default 5ms): how long planning may wait for pilotd"
echo "  (the demo is about what the estimates do to the plans, not about pilotd's speed: on a busy machine a round"
echo "   trip can take more than 5 ms, and a late answer means PostgreSQL's own estimate; the counters at the end"
echo "   say how often that happened)"

# ---------------------------------------------------------------------------
echo
echo "== 2/6  Loading the web shop (demo/data.sql, scale $SCALE)"
t=$(date +%s.%N)
# stdbuf: show psql's progress lines as they come, also when piped
# each step's line is printed when it starts and completed with its duration
stdbuf -oL "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -v "scale=$SCALE" -f "$SELF_DIR/data.sql" 2>&1 | {
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

# ---------------------------------------------------------------------------
echo
echo "== 3/6  Training the learned model on other queries (execution feedback, pilotd train)"
t=$(date +%s.%N)
WL="$OUT/train_workload.sql"
python3 "$SELF_DIR/train_workload.py" -n "$TRAIN_QUERIES" "${QFILES[@]}" >"$WL" || die "demo/train_workload.py"
nwl=$(grep -c '^SELECT' "$WL")
echo "  demo/train_workload.py: $TRAIN_QUERIES queries in the shapes of the demo queries (the same joins), with other"
echo "  filters and constants, each run in $(( nwl / TRAIN_QUERIES )) join orders (hash joins): $nwl queries after 3 SET lines ($OUTNAME/train_workload.sql)."
echo "  The demo queries stay unseen:"
sed -n 's/^-- unseen: /    - /p' "$WL"
MODEL_DSN="dbname=shop host=$PGHOST port=$PGPORT"
"$PILOTD" collect --workload "$WL" --dsn "$MODEL_DSN" --timeout-ms 60000 >"$OUT/collect.log" 2>&1 \
  || { sed 's/^/    /' "$OUT/collect.log" | tail -5; die "pilotd collect"; }
echo "  pilotd collect (feedback on): $(tail -1 "$OUT/collect.log" | sed 's/^collect: //')"
drained() { [ "$(pp_psql -At -c "SELECT feedback_queued = 0 AND spool_pending = 0 AND store_state = 'ok' FROM pg_pilot.daemon")" = t ]; }
wait_until 60 drained || die "the feedback store did not drain within 60 s: $(pp_psql -At -c "SELECT store_state || ' ' || coalesce(store_error, '') FROM pg_pilot.daemon")"
read -r fb_rows fb_sets <<<"$(pp_psql -d "$PP_STORE_DB" -At -F ' ' -c "SELECT count(*), count(DISTINCT subplan_key) FROM pg_pilot.feedback")"
echo "  feedback store: $(num "$fb_rows") observations of $(num "$fb_sets") relation sets (pg_pilot.feedback)"
"$PILOTD" train -D "$PGDATA" --state-dir "$PP_DIR/state" --store-dsn "$PP_STORE_DSN" --model-dsn "$MODEL_DSN" \
  --train-seconds "$TRAIN_SECONDS" --train-epochs 300 >"$OUT/train.log" 2>&1 \
  || { sed 's/^/    /' "$OUT/train.log" | tail -8; die "pilotd train"; }
VERSION=$(grep -o 'version [0-9]* written' "$OUT/train.log" | grep -o '[0-9]*')
echo "  pilotd train --train-seconds $TRAIN_SECONDS: version ${VERSION:-?}, $(grep -o '[0-9]* relation sets to train on.*held out for validation' "$OUT/train.log" | sed 's/ (whole query templates)//; s/held out for validation/held out/')"
sed -n 's/^pilotd train: held-out q-error/    its own held-out check, q-error/p; s/^pilotd train: wrote .*(\(.*\)) in \([0-9.]*\) s$/    \1, trained in \2 s/p' "$OUT/train.log"
[ -n "$VERSION" ] || die "pilotd train wrote no version (see $OUTNAME/train.log)"
decided() { [ -n "$(pp_psql -At -c "SELECT state FROM pg_pilot.models WHERE version = $VERSION AND state IN ('serving', 'rejected', 'retired')")" ]; }
wait_until 60 decided || die "pilotd did not decide about version $VERSION within 60 s: $(pp_psql -At -c "SELECT state FROM pg_pilot.models WHERE version = $VERSION")"
read -r MODEL_STATE <<<"$(pp_psql -At -c "SELECT state FROM pg_pilot.models WHERE version = $VERSION")"
MODEL_NOTE=$(pp_psql -At -c "SELECT note FROM pg_pilot.models WHERE version = $VERSION")
echo "  pg_pilot.models: version $VERSION $MODEL_STATE: $MODEL_NOTE"
if [ "$MODEL_STATE" != serving ]; then
  echo "  The model does not serve: with pg_pilot.estimator = 'learned' the planner keeps PostgreSQL's estimates."
fi
# the relation sets of the demo queries that the training feedback observed:
# "key filtered relations" of every set the planner sizes (pg_pilot.subplans),
# filtered = its key text has a clause other than an equi-join
for id in "${QIDS[@]}"; do
  pp_psql -At -F ' ' -v "q=${QUERY[$id]}" <<'SQL'
SET pg_pilot.estimator = 'native';
SELECT ('x' || lpad(key, 16, '0'))::bit(64)::bigint, key_text ~ '(^|\n)C \(', replace(relations, ' ', '+')
FROM pg_pilot.subplans(:'q') WHERE key IS NOT NULL;
SQL
done | sort -u -k1,1 >"$WORK/demo_keys.txt"
ndemo=$(wc -l <"$WORK/demo_keys.txt")
pp_psql -d "$PP_STORE_DB" -At -c "SELECT DISTINCT subplan_key FROM pg_pilot.feedback
  WHERE subplan_key IN ($(cut -d' ' -f1 "$WORK/demo_keys.txt" | paste -sd,))" >"$WORK/seen_keys.txt"
nseen=$(wc -l <"$WORK/seen_keys.txt")
nseen_f=$(awk 'NR == FNR { s[$1] = 1; next } ($1 in s) && $2 == "t"' "$WORK/seen_keys.txt" "$WORK/demo_keys.txt" | wc -l)
echo "  Relation sets of the demo queries in the training feedback (the same key): $nseen of $ndemo," \
     "$nseen_f of them with a filter"
if [ "$nseen" -gt 0 ]; then
  echo "    ($(awk 'NR == FNR { s[$1] = 1; next } ($1 in s) { gsub(/\+/, " ", $3); print $3 ($2 == "t" ? " (with a filter)" : "") }' \
       "$WORK/seen_keys.txt" "$WORK/demo_keys.txt" | sort -u | paste -sd';' | sed 's/;/; /g'))"
fi
echo "  trained in $(since "$t") s"

# ---------------------------------------------------------------------------
echo
nsub=$(cat "$SELF_DIR"/queries/q*.subplans | grep -vc '^#')
echo "== 4/6  True cardinality of every sub-plan of the demo queries ($nsub COUNT(*) queries, hash joins, pg_pilot off)"
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
      # no feedback: the model must not learn the demo queries' counts
      c=$(dpsql -At -v ON_ERROR_STOP=1 -c "SET pg_pilot.enabled = off" -c "SET pg_pilot.collect_feedback = off" \
            -c "SET enable_nestloop = off" -c "SET work_mem = '64MB'" -c "SET statement_timeout = '300s'" -c "${line%;}") \
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
echo "== 5/6  Loading them into pg_pilot's oracle"
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
-- the estimates of every relation set the planner sized, per query and estimator
CREATE TABLE demo_est (qid text, mode text, relations text, sortkey text, nrels int,
                       native_rows float8, used_rows float8, source text);
CREATE FUNCTION demo_sortkey(rels text) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT string_agg(a, ' ' ORDER BY a) FROM unnest(string_to_array(rels, ' ')) a $$;
CREATE FUNCTION demo_qerror(est float8, truth float8) RETURNS float8 LANGUAGE sql IMMUTABLE
  AS $$ SELECT greatest(greatest(est, 1) / greatest(truth, 1), greatest(truth, 1) / greatest(est, 1)) $$;
-- "ok" within a factor of 1.5, else "116x too high"; "  <<<" from a factor of 100
CREATE FUNCTION demo_error(est float8, truth float8) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN truth IS NULL THEN 'no true count!'
              WHEN f < 1.5 THEN 'ok'
              ELSE to_char(f, CASE WHEN f < 10 THEN 'FM990.0' ELSE 'FM999,999,990' END)
                   || CASE WHEN est > truth THEN 'x too high' ELSE 'x too low' END
                   || CASE WHEN f >= 100 THEN '  <<<' ELSE '' END END
  FROM (SELECT demo_qerror(est, truth) AS f) s $$;
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
      for mode in "${MODES[@]}"; do
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

# speedup NATIVE_MS OTHER_MS: "12.3x faster", "1.5x SLOWER", ">100x faster", ...
speedup() {
  if [ "$1" = timeout ] && [ "$2" = timeout ]; then echo "both timed out"
  elif [ "$1" = timeout ]; then awk -v a="$timeout_ms" -v b="$2" 'BEGIN { printf ">%.0fx faster", a / b }'
  elif [ "$2" = timeout ]; then echo "timed out"
  else awk -v a="$1" -v b="$2" 'BEGIN { if (a >= b) printf "%.1fx faster", a / b; else printf "%.1fx SLOWER", b / a }'
  fi
}

# record_estimates ID MODE: explain_estimates of the query under that estimator into demo_est
record_estimates() {
  pp_psql -v "q=${QUERY[$1]}" -v "id=$1" -v "mode=$2" <<'SQL'
DELETE FROM demo_est WHERE qid = :'id' AND mode = :'mode';
SET pg_pilot.estimator = :'mode';
INSERT INTO demo_est
SELECT :'id', :'mode', e.relations, demo_sortkey(e.relations), e.nrels, e.native_rows, e.used_rows, e.source
FROM pg_pilot.explain_estimates(:'q') e;
SQL
}

echo
echo "== 6/6  The queries: PostgreSQL alone, the learned model, and the true counts"
echo "  PostgreSQL = pg_pilot.estimator 'native' (the same round trips to pilotd, PostgreSQL's own estimates);"
echo "  learned = 'learned' (the model of step 3; where it declines, PostgreSQL's estimate stands); true counts = 'oracle'"
declare -A SUM_T SUM_X SUM_Q SUM_M
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
  for mode in native learned; do record_estimates "$id" "$mode" || fail "$id: explain_estimates ($mode)"; done
  # with the true counts: every relation set must have been planned with its
  # own; a planning that ran out of its budget (a busy machine) is tried again
  for attempt in 1 2 3; do
    before=$(fallbacks)
    record_estimates "$id" oracle || fail "$id: explain_estimates (oracle)"
    after=$(fallbacks)
    check=$(pp_psql -At -F ' ' -v "id=$id" <<'SQL'
SELECT count(*), count(*) FILTER (WHERE e.source = 'oracle' AND e.used_rows = greatest(t.true_rows, 1)),
       (SELECT count(*) FROM demo_truth WHERE qid = :'id')
FROM demo_est e LEFT JOIN demo_truth t ON t.qid = e.qid AND t.sortkey = e.sortkey
WHERE e.qid = :'id' AND e.mode = 'oracle';
SQL
)
    read -r nsets nexact ntruth <<<"$check"
    if [ "${nsets:-0}" -gt 0 ] && [ "$nsets" = "$nexact" ] && [ "$nsets" = "$ntruth" ]; then break; fi
    if [ "$before" = "$after" ] || [ "$attempt" = 3 ]; then break; fi
    echo "  (attempt $attempt: pilotd answered too late, fallbacks timeout/daemon_down/busy/no_slot $before -> $after; trying again)"
  done
  echo
  echo "  Row estimates of every relation set the planner sized:"
  pp_psql -P footer=off -v "id=$id" <<'SQL' | sed '/^$/d; s/^/  /' || fail "$id: estimates table"
SELECT n.relations AS "relation set",
       to_char(n.used_rows, 'FM999,999,999,990') AS "PostgreSQL",
       to_char(l.used_rows, 'FM999,999,999,990') || CASE WHEN l.source = 'model' THEN '' ELSE ' -' END AS "learned",
       COALESCE(to_char(t.true_rows, 'FM999,999,999,990'), '?') AS "true rows",
       demo_error(n.used_rows, t.true_rows) AS "error of PostgreSQL",
       CASE WHEN l.source = 'model' THEN demo_error(l.used_rows, t.true_rows) ELSE '-' END AS "error of learned"
FROM demo_est n
LEFT JOIN demo_est l ON l.qid = n.qid AND l.mode = 'learned' AND l.sortkey = n.sortkey
LEFT JOIN demo_truth t ON t.qid = n.qid AND t.sortkey = n.sortkey
WHERE n.qid = :'id' AND n.mode = 'native'
ORDER BY n.nrels, t.ord;
SQL
  echo "  (ok: within a factor of 1.5; <<<: off by a factor of 100 or more; -: the model declined and PostgreSQL's"
  echo "   estimate stands, for a join computed from the learned sizes of its parts)"
  # q-error median / max over the relation sets, PostgreSQL and learned; sets the model answered
  read -r qn_med qn_max ql_med ql_max nmodel nall <<<"$(pp_psql -At -F ' ' -v "id=$id" <<'SQL'
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY demo_qerror(n.used_rows, t.true_rows))::numeric, 1),
       round(max(demo_qerror(n.used_rows, t.true_rows))::numeric, 0),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY demo_qerror(l.used_rows, t.true_rows))::numeric, 1),
       round(max(demo_qerror(l.used_rows, t.true_rows))::numeric, 0),
       count(*) FILTER (WHERE l.source = 'model'), count(*)
FROM demo_est n
JOIN demo_est l ON l.qid = n.qid AND l.mode = 'learned' AND l.sortkey = n.sortkey
JOIN demo_truth t ON t.qid = n.qid AND t.sortkey = n.sortkey
WHERE n.qid = :'id' AND n.mode = 'native';
SQL
)"
  echo "  q-error (median / max over the relation sets): PostgreSQL $qn_med / $(num "$qn_max"), learned $ql_med / $(num "$ql_max");"
  echo "  the model answered $nmodel of $nall relation sets."
  SUM_Q[$id]="$qn_med / $(num "$qn_max")|$ql_med / $(num "$ql_max")"
  if [ "${nsets:-0}" -gt 0 ] && [ "$nsets" = "$nexact" ] && [ "$nsets" = "$ntruth" ]; then
    echo "  With the true counts, the planner used them for all $nsets relation sets (source: oracle)."
  elif [ "$before" != "$after" ]; then
    fail "$id: with pg_pilot, only ${nexact:-?} of ${nsets:-?} relation sets used their true count: pilotd answered too late" \
         "3 times (fallbacks timeout/daemon_down/busy/no_slot $before -> $after at pg_pilot.timeout_ms = $BUDGET_MS):" \
         "the machine is too busy for this demo (PG_PILOT_DEMO_BUDGET_MS raises the budget)"
  else
    fail "$id: with pg_pilot, only ${nexact:-?} of ${nsets:-?} relation sets used their true count (${ntruth:-?} sub-plans)"
  fi

  # -- plans -------------------------------------------------------------------
  for mode in "${MODES[@]}"; do
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
    printf "  %-${w}s | %s\n" "Plan, PostgreSQL alone" "Plan with the true counts"
    printf "  %-${w}s | %s\n" "$(rule $w)" "$(rule $w)"
    side_by_side "$WORK/l.txt" "$WORK/r.txt" $w
  else
    w=$(( COLS > 60 ? COLS - 4 : 100 ))
    echo "  Plan, PostgreSQL alone:"
    compact_plan $w <"$OUT/$id.native.plan.txt" | sed 's/^/    /'
    echo
    echo "  Plan with the true counts:"
    compact_plan $w <"$OUT/$id.oracle.plan.txt" | sed 's/^/    /'
  fi
  if cmp -s "$OUT/$id.native.plan.txt" "$OUT/$id.oracle.plan.txt"; then
    echo "  The plans are the same."
  fi
  echo
  if cmp -s "$OUT/$id.learned.plan.txt" "$OUT/$id.oracle.plan.txt"; then
    echo "  Plan with the learned model: the same as with the true counts."
  elif cmp -s "$OUT/$id.learned.plan.txt" "$OUT/$id.native.plan.txt"; then
    echo "  Plan with the learned model: the same as PostgreSQL's."
  else
    echo "  Plan with the learned model:"
    compact_plan $(( COLS > 60 ? COLS - 4 : 100 )) <"$OUT/$id.learned.plan.txt" | sed 's/^/    /'
  fi
  echo "  (scan and join nodes only; full plans: $OUTNAME/$id.{native,learned,oracle}.plan.txt)"

  # -- timing ------------------------------------------------------------------
  echo
  [ "$RUNS" -eq 1 ] && runs="1 run" || runs="$RUNS runs each, interleaved"
  echo "  Execution time (wall clock seen by psql, planning included; $runs; statement_timeout $TIMEOUT):"
  before=$(fallbacks)
  time_runs "$id" >"$OUT/$id.timings.txt"
  after=$(fallbacks)
  if grep -q ' error:' "$OUT/$id.timings.txt" || [ "$(wc -l <"$OUT/$id.timings.txt")" -ne $((${#MODES[@]} * RUNS)) ]; then
    fail "$id: a timed run failed:"; sed 's/^/    /' "$OUT/$id.timing.err"
  fi
  printf '    %-8s %12s %12s %12s\n' "" "PostgreSQL" "learned" "true counts"
  for i in $(seq 1 "$RUNS"); do
    row=()
    for mode in "${MODES[@]}"; do
      v=$(awk -v i="$i" -v m="$mode" '$1 == m && $2 == i { print ($4 == "ok" ? $3 : $4) }' "$OUT/$id.timings.txt")
      row+=("$(fmt_ms "${v:-?}")")
    done
    printf '    %-8s %12s %12s %12s\n' "run $i" "${row[@]}"
  done
  declare -A MED=()
  for mode in "${MODES[@]}"; do
    MED[$mode]=$(awk -v m="$mode" '$1 == m { print ($4 == "ok" ? $3 : "timeout") }' "$OUT/$id.timings.txt" | median)
  done
  xl=$(speedup "${MED[native]}" "${MED[learned]}")
  xo=$(speedup "${MED[native]}" "${MED[oracle]}")
  printf '    %-8s %12s %12s %12s\n' "median" "$(fmt_ms "${MED[native]}")" "$(fmt_ms "${MED[learned]}")" "$(fmt_ms "${MED[oracle]}")"
  echo "    learned: $xl; true counts: $xo (than PostgreSQL alone)"
  if [ "$before" != "$after" ]; then
    echo "    NOTE: pilotd answered too late during these runs (fallbacks timeout/daemon_down/busy/no_slot $before -> $after):"
    echo "          the machine was busy; those plannings kept PostgreSQL's estimates for the rest of the query"
  fi
  # the results of the first run of each plan that did not time out
  declare -A RES=()
  for mode in "${MODES[@]}"; do
    r=$(awk -v m="$mode" '$1 == m && $4 == "ok" { print $2; exit }' "$OUT/$id.timings.txt")
    [ -n "$r" ] && cp "$WORK/$id.$mode.$r.out" "$OUT/$id.$mode.result.txt" && RES[$mode]=1
  done
  same=yes
  for mode in learned oracle; do
    if [ -n "${RES[native]:-}" ] && [ -n "${RES[$mode]:-}" ] && ! cmp -s "$OUT/$id.native.result.txt" "$OUT/$id.$mode.result.txt"; then
      same=no; fail "$id: the $mode plan returned another result than PostgreSQL's"
    fi
  done
  [ "$same" = yes ] && echo "    same result with every plan: yes ($OUTNAME/$id.*.result.txt)"
  SUM_T[$id]="${MED[native]} ${MED[learned]} ${MED[oracle]}"
  SUM_X[$id]="$xl|$xo"
done

# ---------------------------------------------------------------------------
echo
rule 100 =
echo "Summary (median of $RUNS runs; x: how much faster than PostgreSQL alone, below 1: slower; q-error: median / max over the"
echo "relation sets the planner sized, of the estimate against the true count; learned: model version ${VERSION:-?}, $MODEL_STATE,"
echo "on queries it never saw)"
rule 100 =
qw=5
for id in "${QIDS[@]}"; do l=$(qlabel "$id"); [ ${#l} -gt $qw ] && qw=${#l}; done
# speedups as "12.3x" (faster) or "0.31x" (slower: SLOWER in the per-query lines)
short_x() { case "$1" in *faster) echo "${1% faster}" ;; *SLOWER) awk -v x="${1%x SLOWER}" 'BEGIN { printf "%.2fx", 1 / x }' ;; *) echo "$1" ;; esac; }
printf "  %-${qw}s %10s  %-18s  %-18s  %s\n" "" "" "" "" "q-error (median / max)"
printf "  %-${qw}s %10s  %9s %-8s  %11s %-6s  %-15s %s\n" "query" "PostgreSQL" "learned" "" "true counts" "" "PostgreSQL" "learned"
for id in "${QIDS[@]}"; do
  read -r tn tl to <<<"${SUM_T[$id]}"
  printf "  %-${qw}s %10s  %9s %-8s  %9s %-8s  %-15s %s\n" "$(qlabel "$id")" "$(fmt_ms "$tn")" \
    "$(fmt_ms "$tl")" "$(short_x "${SUM_X[$id]%|*}")" "$(fmt_ms "$to")" "$(short_x "${SUM_X[$id]#*|}")" \
    "${SUM_Q[$id]%|*}" "${SUM_Q[$id]#*|}"
done
echo
echo "  Learned model: version ${VERSION:-?} ($MODEL_STATE) — $(pp_psql -At -c "SELECT train_records || ' relation sets trained on, estimates served ' || served || ', declined ' || declined
   || ', inference per planning batch p50 ' || round(inference_us_p50::numeric) || ' us, p99 ' || round(inference_us_p99::numeric) || ' us'
   FROM pg_pilot.models WHERE version = ${VERSION:-0}")"
read -r req items answered p50 p99 fto fdown fbusy fslot <<<"$(pp_psql -At -F ' ' -c "SELECT requests, items, answered,
  round(latency_p50_us::numeric), round(latency_p99_us::numeric), fallback_timeout, fallback_daemon_down, fallback_busy, fallback_no_slot
  FROM pg_pilot.stats")" || fail "pg_pilot.stats"
echo "  pilotd round trip (planner -> pilotd -> planner): p50 ${p50:-?} us, p99 ${p99:-?} us, over ${req:-?} round trips asking"
echo "  for ${items:-?} relation sets (SELECT latency_p50_us, latency_p99_us FROM pg_pilot.stats)"
late=$(( ${fto:-0} + ${fdown:-0} + ${fbusy:-0} + ${fslot:-0} ))
echo "  planning budget pg_pilot.timeout_ms = $BUDGET_MS: ran out ${fto:-?} times; pilotd down ${fdown:-?}, busy ${fbusy:-?}, no slot ${fslot:-?}"
if [ "$late" -gt 0 ]; then
  echo "  (the machine was busy: $late times planning went on with PostgreSQL's estimates for lack of an answer in time)"
else
  echo "  (every answer came in time)"
fi
# -- the plan guard: the same queries again, each run on a new connection -------
GUARD_RUNS=${PG_PILOT_DEMO_GUARD_RUNS:-8}
echo
echo "  The plan guard (pg_pilot.guard = on, estimator auto: the true counts here), each query $GUARD_RUNS times, one"
echo "  connection per run: a new query template explores (its runs alternate with PostgreSQL's estimates until"
echo "  each side has 3), then keeps the faster side; ms per run, then the median of the last 3 against PostgreSQL alone:"
for id in "${QIDS[@]}"; do
  runs=()
  for i in $(seq 1 "$GUARD_RUNS"); do
    t=$(dpsql -At -c "SET statement_timeout = '$TIMEOUT'" -c "SET pg_pilot.guard = on" -c '\timing on' \
          -c "${QUERY[$id]}" 2>/dev/null | awk '/^Time:/ { print $2 }')
    runs+=("${t:-timeout}")
  done
  last=$(printf '%s\n' "${runs[@]: -3}" | median)
  read -r tn _ <<<"${SUM_T[$id]}"
  printf "  %-${qw}s %s -> %s\n" "$(qlabel "$id")" \
    "$(for r in "${runs[@]}"; do [ "$r" = timeout ] && printf 'timeout ' || printf '%.0f ' "$r"; done)" \
    "$(speedup "$tn" "$last")"
done
echo "  decisions: $(pp_psql -At -c "SELECT string_agg(decision || ' ' || n, ', ') FROM (SELECT decision, count(*) AS n
  FROM pg_pilot.guard_templates() GROUP BY 1 ORDER BY 1) d")"
echo "  demo took $(since "$T0") s"
[ "$OUTNAME" = demo/out ] || echo "  plans, timings and the cardinality file: $OUTNAME/"
[ "$FAILED" -eq 0 ] || { echo; echo "demo FAILED (see above)"; exit 1; }
