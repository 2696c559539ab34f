-- workload_check.sql — helpers for the integration tests on real workloads.
-- oracle_top_rows(query): the row estimate of the relation set below the
-- query's top Aggregate (the whole FROM list), serial plan.
CREATE OR REPLACE FUNCTION pg_temp.top_rows(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j jsonb; p jsonb;
BEGIN
  SET LOCAL max_parallel_workers_per_gather = 0;
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
  p := j->0->'Plan';
  WHILE p->>'Node Type' IN ('Aggregate', 'Limit', 'Sort', 'Result') AND p ? 'Plans' LOOP
    p := p->'Plans'->0;
  END LOOP;
  RETURN (p->>'Plan Rows')::float8;
END $$;
