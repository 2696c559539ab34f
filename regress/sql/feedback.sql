-- feedback: a query's actual row counts go to pilotd; planning it again uses
-- them (estimator 'memo'), so every relation set of the new plan is exact.
-- Hash joins only, so that every node of the first plan runs once and is
-- observed (inner sides of nested loops report per-loop counts; merge join
-- inputs may stop early: neither is stored).
SET enable_nestloop = off;
SET enable_mergejoin = off;
SET max_parallel_workers_per_gather = 0;
SET pg_pilot.estimator = 'memo';
SET pg_pilot.collect_feedback = on;
SET pg_pilot.feedback_sample_rate = 1.0;
-- (records dropped before this test: e.g. the harness's CREATE EXTENSION ran
-- before pilotd was started)
SELECT feedback_dropped AS dropped_before FROM pg_pilot.stats \gset
\set query 'SELECT count(*) FROM region r, customer c, orders o, lineitem l WHERE r.id = c.region_id AND c.id = o.customer_id AND o.id = l.order_id AND c.segment = 7 AND c.tier = 7 AND c.age_band = 7 AND o.status > 1 AND l.qty > 1'

CREATE TEMP TABLE feedback_truth (relations text, q text, true_rows float8);
INSERT INTO feedback_truth (relations, q) VALUES
 ('c',       'SELECT count(*) FROM customer c WHERE c.segment = 7 AND c.tier = 7 AND c.age_band = 7'),
 ('o',       'SELECT count(*) FROM orders o WHERE o.status > 1'),
 ('l',       'SELECT count(*) FROM lineitem l WHERE l.qty > 1'),
 ('r',       'SELECT count(*) FROM region r'),
 ('c r',     'SELECT count(*) FROM region r, customer c WHERE r.id = c.region_id AND c.segment = 7 AND c.tier = 7 AND c.age_band = 7'),
 ('c o',     'SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.segment = 7 AND c.tier = 7 AND c.age_band = 7 AND o.status > 1'),
 ('l o',     'SELECT count(*) FROM orders o, lineitem l WHERE o.id = l.order_id AND o.status > 1 AND l.qty > 1'),
 ('c o r',   'SELECT count(*) FROM region r, customer c, orders o WHERE r.id = c.region_id AND c.id = o.customer_id AND c.segment = 7 AND c.tier = 7 AND c.age_band = 7 AND o.status > 1'),
 ('c l o',   'SELECT count(*) FROM customer c, orders o, lineitem l WHERE c.id = o.customer_id AND o.id = l.order_id AND c.segment = 7 AND c.tier = 7 AND c.age_band = 7 AND o.status > 1 AND l.qty > 1'),
 ('c l o r', 'SELECT count(*) FROM region r, customer c, orders o, lineitem l WHERE r.id = c.region_id AND c.id = o.customer_id AND o.id = l.order_id AND c.segment = 7 AND c.tier = 7 AND c.age_band = 7 AND o.status > 1 AND l.qty > 1');
SET pg_pilot.collect_feedback = off;   -- computing the truth is not part of the test
UPDATE feedback_truth SET true_rows = count_of(q);
SET pg_pilot.collect_feedback = on;

-- waits (at most 5 s) until the memo answers for the n-relation set of q
CREATE FUNCTION wait_for_memo_of(q text, n int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..500 LOOP
    IF EXISTS (SELECT FROM pg_pilot.explain_estimates(q) WHERE nrels = n AND source = 'memo') THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
  RETURN false;
END $$;

-- first plan: PostgreSQL's estimates (the memo knows nothing of these sets yet)
SELECT p.relations, p.node, p.plan_rows, t.true_rows, p.plan_rows = t.true_rows AS exact
FROM plan_nodes(:'query') p LEFT JOIN feedback_truth t USING (relations) ORDER BY p.pos;

-- run it: every node's actual rows go to pilotd
:query;
SELECT wait_for_memo_of(:'query', 4) AS feedback_arrived;  -- a query's records arrive as one batch

-- plan it again: every relation set carries its observed count (q-error 1)
SELECT p.relations, p.node, p.plan_rows, t.true_rows, p.plan_rows = t.true_rows AS exact
FROM plan_nodes(:'query') p LEFT JOIN feedback_truth t USING (relations) ORDER BY p.pos;
-- a further run observes the same counts: nothing changes
:query;
SELECT pg_sleep(0.2);
SELECT p.relations, p.node, p.plan_rows, t.true_rows, p.plan_rows = t.true_rows AS exact
FROM plan_nodes(:'query') p LEFT JOIN feedback_truth t USING (relations) ORDER BY p.pos;
-- and the source of each estimate
SELECT relations, used_rows, source FROM pg_pilot.explain_estimates(:'query')
WHERE source = 'memo' ORDER BY nrels, relations;

-- the inner side of a nested loop returns rows per outer row: even run once,
-- its count is not the size of its relation set and is not stored
SET enable_nestloop = on;
SET enable_hashjoin = off;
\set nlq 'SELECT count(*) FROM customer c JOIN orders o ON o.customer_id = c.id WHERE c.id BETWEEN 4242 AND 4242'
EXPLAIN (COSTS OFF) :nlq;
:nlq;
SELECT wait_for_memo_of('SELECT count(*) FROM customer c WHERE c.id BETWEEN 4242 AND 4242', 1) AS outer_side_arrived;
-- the whole orders table: not 5 rows from the memo
SELECT relations, used_rows, source FROM pg_pilot.explain_estimates('SELECT count(*) FROM orders o');
RESET enable_hashjoin;

-- plans the plancache copies are observed too: prepared statements ...
SET enable_nestloop = off;
SET enable_mergejoin = off;
PREPARE fb_prepared(int) AS
  SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = $1 AND o.channel = 2;
EXECUTE fb_prepared(5);
SELECT wait_for_memo_of('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = 5 AND o.channel = 2', 2)
  AS prepared_statement_observed;
DEALLOCATE fb_prepared;
-- ... and PL/pgSQL's static SQL (its cached plan; a PL/pgSQL variable would
-- be a parameter, which keeps the set unkeyed)
CREATE FUNCTION fb_plpgsql() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = 6 AND o.channel = 3;
  RETURN n;
END $$;
SELECT fb_plpgsql() > 0 AS ran;
SELECT wait_for_memo_of('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = 6 AND o.channel = 3', 2)
  AS plpgsql_observed;
-- the function's next call reuses the cached plan (the copy found directly)
SELECT feedback_sent AS sent_before FROM pg_pilot.stats \gset
SELECT fb_plpgsql() > 0 AS ran_again;
SELECT feedback_sent - :sent_before AS records_of_the_reused_plan FROM pg_pilot.stats;
-- a generic plan (parameters, not constants) has no keyed join: nothing to learn
SET plan_cache_mode = force_generic_plan;
PREPARE fb_generic(int) AS
  SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = $1 AND o.channel = 4;
EXECUTE fb_generic(7);
SELECT wait_for_memo_of('SELECT count(*) FROM orders o WHERE o.channel = 4', 1) AS generic_plan_observed;
SELECT relations, source = 'memo' AS learned
FROM pg_pilot.explain_estimates('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = 7 AND o.channel = 4')
ORDER BY nrels, relations;
RESET plan_cache_mode;
DEALLOCATE fb_generic;
DROP FUNCTION fb_plpgsql();

-- the records were counted as sent, none dropped
SELECT feedback_sent > 0 AS sent, feedback_dropped = :dropped_before AS none_dropped FROM pg_pilot.stats;
RESET enable_nestloop;
RESET enable_mergejoin;
RESET max_parallel_workers_per_gather;
RESET pg_pilot.estimator;
