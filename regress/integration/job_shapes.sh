#!/usr/bin/env bash
# The 113 Join Order Benchmark queries on imdb_tiny (LIKE, IN, OR, IS NULL,
# BETWEEN, up to 17 tables, GEQO): with pg_pilot on they give the results they
# give without it; their COUNT(*) versions, loaded as an oracle file, come back
# as the exact estimate of each query's whole relation set.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"
DATA="${PP_SHARED:-}/data/imdb_tiny"
if [ ! -f "$DATA/job_test.txt" ]; then echo "ok - skipped: no shared/data/imdb_tiny (# SKIP)"; exit 0; fi
export PGDATABASE=imdb
pp_psql -d postgres -c "DROP DATABASE IF EXISTS imdb" -c "CREATE DATABASE imdb" >/dev/null
pp_psql -f "$DATA/imdb_tiny.sql" >/dev/null 2>&1
pp_psql -c "CREATE EXTENSION pg_pilot" -c "ANALYZE" >/dev/null
nq=$(grep -c . "$DATA/job_test.txt")

# results with and without pg_pilot (with the oracle file loaded below, plans change)
run_all() {
  pp_psql -At -c "SET pg_pilot.enabled = $1" -c "SET pg_pilot.estimator = 'oracle'" -f "$DATA/job_test.txt" 2>&1 | md5sum
}
cards="$PP_DIR/job_cards.txt"
pp_psql -At -v ON_ERROR_STOP=1 -c "
CREATE TEMP TABLE jq AS
  SELECT n, regexp_replace(l, '^\s*SELECT\s.*?\sFROM\s', 'SELECT COUNT(*) FROM ', 'i') AS q
  FROM regexp_split_to_table(pg_read_file('$DATA/job_test.txt'), E'\n') WITH ORDINALITY t(l, n)
  WHERE l ~ '\S';
CREATE FUNCTION pg_temp.count_of(q text) RETURNS bigint LANGUAGE plpgsql AS \$f\$
DECLARE c bigint; BEGIN EXECUTE q INTO c; RETURN c; END \$f\$;
COPY (SELECT pg_temp.count_of(q) || '||' || q FROM jq ORDER BY n) TO '$cards';" >/dev/null
res=$(q "SELECT lines || ' ' || loaded || ' ' || failed FROM pg_pilot.load_cardinalities('$cards', replace => true)")
echo "# load_cardinalities(JOB COUNT(*) versions): lines loaded failed = $res"
check "all $nq JOB queries keyed and loaded" [ "$res" = "$nq $nq 0" ]

off=$(run_all off); on=$(run_all on)
check "JOB results with pg_pilot on equal those without it" [ "$off" = "$on" ]
errors=$(pp_psql -At -c "SET pg_pilot.estimator = 'oracle'" -f "$DATA/job_test.txt" 2>&1 | grep -c ERROR)
check "no JOB query raised an error with pg_pilot on" [ "$errors" -eq 0 ]

exact=$(pp_psql -At -f "$PP_REGRESS/lib/workload_check.sql" -c "
SET pg_pilot.estimator = 'oracle';
SELECT count(*) || ' ' || count(*) FILTER (WHERE pg_temp.top_rows(split_part(l, '||', 2)) = greatest(split_part(l, '||', 1)::float8, 1))
FROM regexp_split_to_table(pg_read_file('$cards'), E'\n') l WHERE l LIKE '%||%';")
echo "# timeouts so far: $(stat fallback_timeout)"
echo "# queries, exact whole-query estimates under the oracle: $exact"
check "oracle estimate == true count for all $nq JOB queries (up to 17 tables, GEQO)" [ "$exact" = "$nq $nq" ]
keyed=$(q "SELECT fallback_error FROM pg_pilot.stats")
check "no internal error turned into a fallback" [ "$keyed" = "0" ]
pp_psql -d postgres -c "DROP DATABASE imdb" >/dev/null
check_no_crash "JOB shapes"
finish
