#!/usr/bin/env bash
# advisor_bench.sh — `make bench-advisor`: the index advisor (`pilotd advise`)
# measured on the generated web shop with its secondary indexes dropped.
#
#   make bench-advisor [OUT=dir] [SCALE=0.5] [TIMEOUT=5s] [BUDGET_MB=mb] [MAX_INDEXES=n]
#                      [ADV_QUERIES=100] [ADV_REPS=5] [ADV_SEED=7] [ADV_SELECTIVE=0.7]
#
# A throw-away cluster and pilotd (regress/lib/cluster.sh); the web shop of
# demo/data.sql at scale SCALE; every index that backs no constraint (the
# foreign-key column indexes) dropped; ADV_QUERIES random join queries from
# regress/bench/workload_gen.py (0-3 joins, 1-3 predicates, ADV_SELECTIVE of
# them selective, join trees started at big tables, seed ADV_SEED); the
# budget BUDGET_MB (default: half the size of the dropped indexes); then
# regress/bench/advisor_bench.py:
#   1. the workload runs once with execution feedback (pilotd's memo learns);
#   2. in one run, the workload's total time (sum of per-query medians over
#      ADV_REPS repetitions, each query within TIMEOUT, a timeout counting as
#      TIMEOUT) under the same planner settings (pg_pilot on, estimator auto):
#        (a) without the dropped indexes,
#        (b) after `pilotd advise --workload W --budget-mb BUDGET_MB --apply`
#            (learned and observed cardinalities while costing),
#        (c) after `pilotd advise --plain ...` (PostgreSQL's own estimates),
#      the indexes each advisor created dropped again after its arm, and (a)
#      measured once more at the end (drift check).
# Writes OUT/advisor.md and OUT/advisor.json (default OUT: bench-out/), the
# workload (OUT/advisor_workload.txt) and the advisors' output
# (OUT/advisor_learned.log, OUT/advisor_plain.log).
# `make bench` runs it at its end unless ADVISOR=0.
set -uo pipefail
SELF_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$SELF_DIR/../.." && pwd)
OUT=${OUT:-$ROOT/bench-out}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
# shellcheck source=../lib/as_owner.sh
source "$SELF_DIR/../lib/as_owner.sh"
# as root the run writes into its scratch directory, copied to OUT afterwards
PP_RERUN_OUT=$OUT
pp_after_rerun() { echo "(results copied to $OUT)"; }
pp_rerun_as_owner bench_advisor regress/bench/advisor_bench.sh OUT="$OUT" SCALE="${SCALE:-}" \
  TIMEOUT="${TIMEOUT:-}" BUDGET_MB="${BUDGET_MB:-}" MAX_INDEXES="${MAX_INDEXES:-}" ADV_QUERIES="${ADV_QUERIES:-}" \
  ADV_REPS="${ADV_REPS:-}" ADV_SEED="${ADV_SEED:-}" ADV_SELECTIVE="${ADV_SELECTIVE:-}" PILOTD="${PILOTD:-}"
WORK=${PP_WORK:-$(mktemp -d /tmp/pg_pilot_bench_advisor.XXXXXX)}
R=$WORK/regress; [ -d "$R" ] || R=$ROOT/regress
SCALE=${SCALE:-0.5}
[ -n "${PILOTD:-}" ] || unset PILOTD
source "$R/lib/cluster.sh"
T0=$(date +%s)
# run_bench.sh calls this script at its end with its own cluster stopped: a
# cluster directory of our own in the same scratch directory
pp_cluster_init "$WORK/cluster_advisor" || exit 1
trap pp_teardown EXIT
echo "== index advisor benchmark: a throw-away cluster and pilotd ($PILOTD)"
pp_cluster_start && pp_store_setup && pp_pilotd_start || exit 1
if ! "$PILOTD" advise --help >/dev/null 2>&1; then
  echo "   warning: '$PILOTD advise --help' fails: this pilotd has no index advisor; arms (b) and (c) will fail"
fi
DB=shop
SHOP_SQL=$ROOT/demo/data.sql; [ -f "$WORK/demo/data.sql" ] && SHOP_SQL=$WORK/demo/data.sql
pp_psql -c "CREATE DATABASE $DB" >/dev/null || exit 1
echo "== generating the web shop at scale $SCALE (demo/data.sql)"
pp_psql -d "$DB" -v scale="$SCALE" -f "$SHOP_SQL" || exit 1
pp_psql -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS pg_pilot" >/dev/null || exit 1
echo "   data: $(( $(date +%s) - T0 )) s"
python3 "$R/bench/advisor_bench.py" --db "$DB" --out "$OUT" --pilotd "$PILOTD" \
  --dsn "dbname=$DB host=$PGHOST port=$PGPORT" --label "shop (scale $SCALE)" \
  --gen "$R/bench/workload_gen.py" --queries "${ADV_QUERIES:-100}" --seed "${ADV_SEED:-7}" \
  --selective "${ADV_SELECTIVE:-0.7}" --reps "${ADV_REPS:-5}" --timeout "${TIMEOUT:-5s}" \
  ${BUDGET_MB:+--budget-mb "$BUDGET_MB"} ${MAX_INDEXES:+--max-indexes "$MAX_INDEXES"}
rc=$?
echo "   index advisor benchmark: $(( $(date +%s) - T0 )) s in all"
exit $rc
