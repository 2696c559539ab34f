#!/usr/bin/env bash
# Real data (STATS, Stack Exchange): load the 659 training queries' true counts
# (the file as published, "rows||SELECT COUNT(*) ...") with
# pg_pilot.load_cardinalities, then plan every query with the oracle: the
# estimate of each query's whole relation set must be its true count.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"
DATA="${PP_SHARED:-}/data/stats5"
if [ ! -f "$DATA/train.txt" ]; then echo "ok - skipped: no shared/data/stats5 (# SKIP)"; exit 0; fi
export PGDATABASE=stats5
pp_psql -d postgres -c "DROP DATABASE IF EXISTS stats5" -c "CREATE DATABASE stats5" >/dev/null
(cd "$DATA" && pp_psql -f load.sql >/dev/null) || { not_ok "load stats5"; exit 1; }
pp_psql -c "CREATE EXTENSION pg_pilot" >/dev/null
res=$(q "SELECT lines || ' ' || loaded || ' ' || failed FROM pg_pilot.load_cardinalities('$DATA/train.txt', replace => true)")
echo "# load_cardinalities(train.txt): lines loaded failed = $res"
check "every line of train.txt keyed and loaded" [ "$res" = "659 659 0" ]

out=$(pp_psql -At -v ON_ERROR_STOP=1 -f "$PP_REGRESS/lib/workload_check.sql" -c "
SET pg_pilot.estimator = 'oracle';
CREATE TEMP TABLE w AS
  SELECT n, split_part(l, '||', 1)::float8 AS true_rows, split_part(l, '||', 2) AS q
  FROM regexp_split_to_table(pg_read_file('$DATA/train.txt'), E'\n') WITH ORDINALITY t(l, n)
  WHERE l LIKE '%||%';
SELECT count(*) || ' ' || count(*) FILTER (WHERE pg_temp.top_rows(q) = greatest(true_rows, 1))
FROM w;")
echo "# timeouts so far: $(stat fallback_timeout)"
echo "# queries, exact whole-query estimates under the oracle: $out"
check "oracle estimate == true count for all 659 queries" [ "$out" = "659 659" ]
native=$(pp_psql -At -f "$PP_REGRESS/lib/workload_check.sql" -c "
SET pg_pilot.estimator = 'native';
SELECT count(*) FILTER (WHERE pg_temp.top_rows(split_part(l, '||', 2)) = greatest(split_part(l, '||', 1)::float8, 1))
FROM regexp_split_to_table(pg_read_file('$DATA/train.txt'), E'\n') l WHERE l LIKE '%||%';")
echo "# for comparison, exact native estimates: $native of 659"
pp_psql -d postgres -c "DROP DATABASE stats5" >/dev/null
check_no_crash "stats5 oracle"
finish
