-- feedback_store: what the feedback test's queries observed is committed by
-- pilotd into the extension's tables in the store database (the harness runs
-- pilotd with --store-dsn "dbname=pg_pilot_store user=pilotd").
\set query 'SELECT count(*) FROM region r, customer c, orders o, lineitem l WHERE r.id = c.region_id AND c.id = o.customer_id AND o.id = l.order_id AND c.segment = 7 AND c.tier = 7 AND c.age_band = 7 AND o.status > 1 AND l.qty > 1'
SET pg_pilot.feedback_sample_rate = 1.0;
:query;
\c pg_pilot_store
-- waits (at most 10 s) until everything pilotd acknowledged is committed
CREATE FUNCTION pg_temp.store_drained() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..1000 LOOP
    IF (SELECT spool_pending = 0 AND feedback_queued = 0 AND store_committed > 0 FROM pg_pilot.pilotd) THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN false;
END $$;
SELECT pg_temp.store_drained() AS drained;
SELECT store_state, store_error, store_committed > 0 AS committed, store_dead_letter
FROM pg_pilot.pilotd;

-- the feedback test's four-way join, found by its subplan key: observed on
-- every run; PostgreSQL's estimate was off, the memo's (used since the second
-- run) was exact
\c pg_pilot_regress
SELECT key AS query_key FROM pg_pilot.subplan_key(:'query') \gset
\c pg_pilot_store
SELECT relations, nrels, actual_rows, observations >= 3 AS observed_every_run,
       pilot_qerror AS memo_qerror, used_qerror
FROM pg_pilot.worst_estimates WHERE key = :'query_key';
-- the first observation: PostgreSQL's own estimate, far off; no pg_pilot estimate
SELECT greatest(native_rows, actual_rows) / least(native_rows, actual_rows) > 10 AS native_far_off,
       pilot_rows IS NULL AS no_pilot_estimate
FROM pg_pilot.feedback WHERE lpad(to_hex(subplan_key), 16, '0') = :'query_key'
ORDER BY id LIMIT 1;

-- for a join, the native rows are PostgreSQL's own estimate of it (computed by
-- the backend before the planner sizes the join: native_join_size.cpp): the
-- same as the planner's with pg_pilot off, up to the rounding of other orders
\c pg_pilot_regress
SET pg_pilot.enabled = off;
CREATE FUNCTION pg_temp.top_join_rows(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE p json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO p;
  RETURN (p->0->'Plan'->'Plans'->0->>'Plan Rows')::float8;
END $$;
SELECT pg_temp.top_join_rows(:'query') AS planner_join_rows \gset
\c pg_pilot_store
SELECT abs(ln(native_rows / :planner_join_rows)) < 0.01 AS native_is_postgresqls
FROM pg_pilot.feedback WHERE lpad(to_hex(subplan_key), 16, '0') = :'query_key'
ORDER BY id LIMIT 1;

-- the view ranks by the q-error of the estimate used: worst first
SELECT bool_and(used_qerror >= 1) AS defined,
       (SELECT array_agg(used_qerror) FROM pg_pilot.worst_estimates)
         = (SELECT array_agg(used_qerror ORDER BY used_qerror DESC) FROM pg_pilot.worst_estimates) AS ranked
FROM pg_pilot.worst_estimates;

-- every observed query is logged, with its planning and execution time
SELECT count(*) > 0 AS logged,
       bool_and(execution_ms >= 0) AS execution_times,
       bool_and(planning_ms >= 0 OR planning_ms IS NULL) AS planning_times,
       count(query_id) > 0 AS query_ids
FROM pg_pilot.query_log;

-- the store is not public: a plain role cannot read it
CREATE ROLE feedback_reader_test;
SET ROLE feedback_reader_test;
SELECT count(*) FROM pg_pilot.feedback;
RESET ROLE;
DROP ROLE feedback_reader_test;
