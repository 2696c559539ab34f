#!/usr/bin/env bash
# run_bench.sh — `make bench`: measured claims, ratios against native PostgreSQL
# in the same run.  Today: the sidecar round trip and the planning time pg_pilot
# adds, on real workloads (STATS 2-4 table queries, JOB 4-17 table queries).
#   OUT=dir (default bench-out/)   REPS=n (default 5)
# Needs ../shared/data (stats5, imdb_tiny) beside the repository.
set -uo pipefail
SELF_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$SELF_DIR/../.." && pwd)
OUT=${OUT:-$ROOT/bench-out}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
# shellcheck source=../lib/as_owner.sh
source "$SELF_DIR/../lib/as_owner.sh"
[ "$(id -u)" -eq 0 ] && chown "${PG_PILOT_TEST_USER:-postgres}" "$OUT"
pp_rerun_as_owner bench regress/bench/run_bench.sh OUT="$OUT" REPS="${REPS:-5}"
WORK=${PP_WORK:-$(mktemp -d /tmp/pg_pilot_bench.XXXXXX)}
R=$WORK/regress; [ -d "$R" ] || R=$ROOT/regress
SHARED=${PP_SHARED:-$ROOT/../shared}
REPS=${REPS:-5}
source "$R/lib/cluster.sh"
trap pp_teardown EXIT
echo "== starting a throw-away cluster and pilotd"
# with the feedback store, as in production: feedback on = pilotd also commits
# every record into pg_pilot's tables
pp_cluster_init "$WORK/cluster" && pp_cluster_start && pp_store_setup && pp_pilotd_start || exit 1
echo "postgres $(pp_psql -At -c 'SHOW server_version'), $(nproc) cores, pilotd $("$PILOTD" --version 2>&1 | head -1)"

results=()
bench_workload() { # label db queries-file
  local label=$1 db=$2 file=$3
  echo "== $label: planning $(grep -c . "$file") queries x $REPS reps x 3 modes (interleaved)"
  pp_psql -d "$db" -At -v ON_ERROR_STOP=1 -v label="$label" \
    -c "SET bench.reps = $REPS" \
    -c "CREATE TEMP TABLE bench_queries AS SELECT n::int, l AS q FROM regexp_split_to_table(pg_read_file('$file'), E'\n') WITH ORDINALITY t(l, n) WHERE l ~ '\S'" \
    -f "$R/bench/planning.sql" | tail -1 >"$OUT/planning_$label.json" || return 1
  results+=("$OUT/planning_$label.json")
}

if [ -f "$SHARED/data/stats5/train.txt" ]; then
  pp_psql -c "CREATE DATABASE stats" >/dev/null
  echo "== loading stats5"; (cd "$SHARED/data/stats5" && pp_psql -d stats -f load.sql >/dev/null)
  pp_psql -d stats -c "CREATE EXTENSION pg_pilot" >/dev/null
  pp_psql -d stats -c "SELECT * FROM pg_pilot.load_cardinalities('$SHARED/data/stats5/train.txt', replace => true)"
  cut -d'|' -f3- "$SHARED/data/stats5/train.txt" >"$WORK/stats_queries.txt"
  bench_workload stats5 stats "$WORK/stats_queries.txt"
  # feedback overhead: execute the first FB_QUERIES queries, collection on vs off
  head -n "${FB_QUERIES:-150}" "$WORK/stats_queries.txt" >"$WORK/stats_exec.txt"
  echo "== stats5: executing $(grep -c . "$WORK/stats_exec.txt") queries x $REPS reps, feedback on vs off (interleaved)"
  pp_psql -d stats -At -v ON_ERROR_STOP=1 -v label=stats5 -c "SET bench.reps = $REPS" \
    -c "CREATE TEMP TABLE bench_queries AS SELECT n::int, l AS q FROM regexp_split_to_table(pg_read_file('$WORK/stats_exec.txt'), E'\n') WITH ORDINALITY t(l, n) WHERE l ~ '\S'" \
    -f "$R/bench/feedback.sql" | tail -1 >"$OUT/feedback_stats5.json" || exit 1
  FEEDBACK_JSON="$OUT/feedback_stats5.json"
  # the feedback store: what pilotd committed into pg_pilot's tables (waits
  # until the spool is drained, at most 60 s)
  for _ in $(seq 1 600); do
    [ "$(pp_psql -d stats -At -c "SELECT spool_pending = 0 AND feedback_queued = 0 FROM pg_pilot.daemon")" = t ] && break
    sleep 0.1
  done
  pp_psql -d stats -At -c "SELECT json_build_object('store_state', store_state, 'store_committed', store_committed,
      'spool_pending', spool_pending, 'store_failures', store_failures) FROM pg_pilot.daemon" >"$OUT/store.json"
  python3 - "$FEEDBACK_JSON" "$OUT/store.json" <<'PY'
import json, sys
fb = json.load(open(sys.argv[1])); fb["store"] = json.load(open(sys.argv[2]))
json.dump(fb, open(sys.argv[1], "w"))
PY
fi
if [ -f "$SHARED/data/imdb_tiny/job_test.txt" ]; then
  pp_psql -c "CREATE DATABASE imdb" >/dev/null
  echo "== loading imdb_tiny"; pp_psql -d imdb -f "$SHARED/data/imdb_tiny/imdb_tiny.sql" >/dev/null 2>&1
  pp_psql -d imdb -c "CREATE EXTENSION pg_pilot" -c "ANALYZE" >/dev/null
  bench_workload job imdb "$SHARED/data/imdb_tiny/job_test.txt"
fi
[ ${#results[@]} -gt 0 ] || { echo "no workload found (need ../shared/data)"; exit 1; }

python3 - "$OUT" "${FEEDBACK_JSON:-}" "${results[@]}" <<'PY'
import json, sys
out, fb_file, files = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = [json.load(open(f)) for f in files]
report = {r["workload"]: r for r in runs}
fb = json.load(open(fb_file)) if fb_file else None
if fb:
    report["feedback"] = fb
json.dump(report, open(f"{out}/report.json", "w"), indent=2)
lines = ["# pg_pilot benchmark", "",
         "Planning time per query (median of the reps), PostgreSQL alone vs pg_pilot, same run, modes interleaved.",
         "`pilot_noanswer`: pg_pilot asks pilotd for every relation set, pilotd answers nothing (estimator `native`): pure overhead.",
         "`pilot_oracle`: pilotd answers with loaded cardinalities (estimator `oracle`).", "",
         "| workload | queries | native p50 ms | mode | p50 ms | added p50 ms | added p90 ms | added p99 ms | total vs native | round trip p50 / p99 us |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for r in runs:
    rt = r["sidecar"]["roundtrip_us"]
    for mode in ("pilot_noanswer", "pilot_oracle"):
        a = r["planning_added"][mode]
        lines.append(f"| {r['workload']} | {r['queries']} | {r['planning']['native']['p50_ms']} | {mode} | "
                     f"{r['planning'][mode]['p50_ms']} | {a['p50_ms']} | {a['p90_ms']} | {a['p99_ms']} | "
                     f"{a['total_ratio']}x | {rt['p50']} / {rt['p99']} |")
if fb:
    lines += ["", "Execution time with feedback collection (sample rate 1.0) vs without, same plans, "
              "interleaved, sum of per-query medians:", "",
              "| workload | queries | off total ms | on total ms | overhead | records sent / dropped |",
              "|---|---|---|---|---|---|",
              f"| {fb['workload']} | {fb['queries']} | {fb['off_total_ms']} | {fb['on_total_ms']} | "
              f"{(fb['overhead_ratio'] - 1) * 100:+.1f} % | {fb['feedback_sent']} / {fb['feedback_dropped']} |"]
    st = fb.get("store")
    if st:
        lines += ["", f"Feedback store during the run (records of every benchmark step, committed into "
                  f"pg_pilot.feedback / query_log): state {st['store_state']}, {st['store_committed']} committed, "
                  f"{st['spool_pending']} pending, {st['store_failures']} failed transactions."]
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo
echo "report: $OUT/report.md, $OUT/report.json"
