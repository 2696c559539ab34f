#!/usr/bin/env bash
# `pilotd collect --oracle-out`: the true count of every sub-plan the planner
# sizes for a workload's queries (pg_pilot.subplans()), written as an oracle
# file — what `make bench` compares estimates with, from the planner's own
# enumeration instead of a parser of its own:
#   1. one line per describable relation set of the queries, each counted
#      once (as SELECT count(*), hash joins only), nothing collected;
#   2. the counts are right (each line's SQL run again);
#   3. the file loads (pg_pilot.load_cardinalities), and the oracle then
#      answers every set of those queries with its true count;
#   4. --max-subplans N keeps per query the N - 1 smallest sets and the whole
#      query.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"; source "$PP_REGRESS/lib/correlated.sh"

DB=oracle_counts
q "DROP DATABASE IF EXISTS $DB" >/dev/null
correlated_db "$DB" "a"
work="$PP_DIR/oracle_counts_workload.txt"
correlated_shapes_workload "$PP_DIR/oracle_counts_all.txt"
grep JOIN "$PP_DIR/oracle_counts_all.txt" | head -n 12 >"$work"
out="$PP_DIR/oracle_counts.txt"
dq() { pp_psql -d "$DB" -At -c "$1"; }

# 1 ---------------------------------------------------------------------------
store_wait_drained 30
before=$(feedback_rows)
env -u PGHOST -u PGPORT timeout 300 "$PILOTD" collect -D "$PGDATA" --dsn "dbname=$DB" --workload "$work" \
  --oracle-out "$out" >"$PP_DIR/oracle_counts.log" 2>&1
rc=$?
tail -1 "$PP_DIR/oracle_counts.log" | sed 's/^/# /'
check "pilotd collect --oracle-out ran (exit $rc)" [ "$rc" = 0 ]
# the describable sets of the 12 queries, each once
expected=$(while read -r sql; do
  echo "SELECT key FROM pg_pilot.subplans(\$q\$$sql\$q\$) WHERE key_text IS NOT NULL;"
done <"$work" | pp_psql -d "$DB" -At | sort -u | wc -l)
check "one line per describable relation set of the queries ($(wc -l <"$out") lines, $expected sets)" \
  [ "$(wc -l <"$out")" = "$expected" -a "$expected" -gt 12 ]
check "every line is COUNT||SQL" [ "$(grep -cvE '^[0-9]+\|\|SELECT ' "$out")" = 0 ]
store_wait_drained 30
check "nothing collected: the store got no feedback ($before -> $(feedback_rows))" [ "$(feedback_rows)" = "$before" ]

# 2 ---------------------------------------------------------------------------
wrong=0
while IFS= read -r line; do
  n=${line%%||*}; sql=${line#*||}
  [ "$(PGOPTIONS="-c pg_pilot.enabled=off" pp_psql -d "$DB" -At -c "$sql")" = "$n" ] || wrong=$((wrong + 1))
done <"$out"
check "each count is the true one (run again: $wrong wrong)" [ "$wrong" = 0 ]

# 3 ---------------------------------------------------------------------------
loaded=$(dq "SELECT loaded || ' ' || failed FROM pg_pilot.load_cardinalities('$out', replace => true)")
check "the file loads as the oracle ($loaded)" [ "$loaded" = "$(wc -l <"$out") 0" ]
sql=$(head -1 "$work")
sources=$(PGOPTIONS="-c pg_pilot.estimator=oracle" pp_psql -d "$DB" -At \
  -c "SELECT string_agg(DISTINCT source, ',') FROM pg_pilot.explain_estimates(\$q\$$sql\$q\$)")
check "the oracle answers every set of a query with it ($sources)" [ "$sources" = oracle ]
whole=$(PGOPTIONS="-c pg_pilot.estimator=oracle" pp_psql -d "$DB" -At \
  -c "SELECT used_rows FROM pg_pilot.explain_estimates(\$q\$$sql\$q\$) ORDER BY nrels DESC LIMIT 1")
truth=$(PGOPTIONS="-c pg_pilot.enabled=off" pp_psql -d "$DB" -At -c "$sql")
check "with the true count of the whole query ($whole vs $truth)" [ "${whole%.*}" = "$truth" ]

# 4 ---------------------------------------------------------------------------
env -u PGHOST -u PGPORT timeout 300 "$PILOTD" collect -D "$PGDATA" --dsn "dbname=$DB" --workload <(head -1 "$work") \
  --oracle-out "$out.2" --max-subplans 2 >"$PP_DIR/oracle_counts.log" 2>&1
tail -1 "$PP_DIR/oracle_counts.log" | sed 's/^/# /'
check "--max-subplans 2: the smallest set and the whole query ($(wc -l <"$out.2") lines)" \
  [ "$(wc -l <"$out.2")" = 2 -a "$(tail -1 "$out.2" | cut -d'|' -f1)" = "$truth" ]
err=$("$PILOTD" collect --workload "$work" --dsn "dbname=$DB" --oracle-out "$out.3" --max-subplans 1 2>&1)
check "--max-subplans 1 is a clear usage error" grep -q "2 or more" <<<"$err"

q "DROP DATABASE $DB" >/dev/null
check_no_crash "oracle counts"
finish
