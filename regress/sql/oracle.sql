-- oracle: true cardinalities loaded from a sub-plan file ("rows||SELECT COUNT(*) ...")
-- become the planner's estimate of every base and join relation they describe.
\getenv tmpdir PG_PILOT_TMPDIR
\set cardfile :tmpdir '/oracle_cards.txt'
\set badfile :tmpdir '/oracle_bad.txt'

-- the relation sets of the 4-table test query, written with other aliases and
-- clause orders than the query itself uses (the key must not care)
CREATE TABLE truth (relations text PRIMARY KEY, q text NOT NULL);
INSERT INTO truth VALUES
 ('r',       'SELECT COUNT(*) FROM region AS rg'),
 ('c',       'SELECT COUNT(*) FROM customer AS cu WHERE cu.age_band = 3 AND cu.tier = 3 AND cu.segment = 3'),
 ('o',       'SELECT COUNT(*) FROM orders AS od WHERE od.channel = 1 AND od.status = 1'),
 ('l',       'SELECT COUNT(*) FROM lineitem AS li'),
 ('c r',     'SELECT COUNT(*) FROM customer AS cu, region AS rg WHERE cu.region_id = rg.id AND cu.segment = 3 AND cu.tier = 3 AND cu.age_band = 3'),
 ('c o',     'SELECT COUNT(*) FROM orders AS od, customer AS cu WHERE od.customer_id = cu.id AND cu.segment = 3 AND cu.tier = 3 AND cu.age_band = 3 AND od.status = 1 AND od.channel = 1'),
 ('l o',     'SELECT COUNT(*) FROM lineitem AS li, orders AS od WHERE li.order_id = od.id AND od.status = 1 AND od.channel = 1'),
 ('c o r',   'SELECT COUNT(*) FROM region AS rg, customer AS cu, orders AS od WHERE rg.id = cu.region_id AND cu.id = od.customer_id AND cu.segment = 3 AND cu.tier = 3 AND cu.age_band = 3 AND od.status = 1 AND od.channel = 1'),
 ('c l o',   'SELECT COUNT(*) FROM customer AS cu, orders AS od, lineitem AS li WHERE cu.id = od.customer_id AND od.id = li.order_id AND cu.segment = 3 AND cu.tier = 3 AND cu.age_band = 3 AND od.status = 1 AND od.channel = 1'),
 ('c l o r', 'SELECT COUNT(*) FROM lineitem AS li, orders AS od, customer AS cu, region AS rg WHERE li.order_id = od.id AND od.customer_id = cu.id AND cu.region_id = rg.id AND cu.segment = 3 AND cu.tier = 3 AND cu.age_band = 3 AND od.status = 1 AND od.channel = 1');
ALTER TABLE truth ADD COLUMN true_rows float8;
UPDATE truth SET true_rows = count_of(q);
COPY (SELECT true_rows::bigint || '||' || q || ';' FROM truth ORDER BY relations) TO :'cardfile';

\set query 'SELECT count(*) FROM region r, customer c, orders o, lineitem l WHERE r.id = c.region_id AND c.id = o.customer_id AND o.id = l.order_id AND c.segment = 3 AND c.tier = 3 AND c.age_band = 3 AND o.status = 1 AND o.channel = 1'

SELECT * FROM pg_pilot.load_cardinalities(:'cardfile', replace => true);
SELECT oracle_entries FROM pg_pilot.pilotd;

-- native: far off
SET pg_pilot.estimator = 'native';
SELECT p.relations, p.node, p.plan_rows, p.per_loop, t.true_rows
FROM plan_nodes(:'query') p LEFT JOIN truth t USING (relations) ORDER BY p.pos;

-- oracle: every base and join relation of the plan carries its true count
-- (serial plan: a parallel plan shows rows per worker, checked below)
SET pg_pilot.estimator = 'oracle';
SET max_parallel_workers_per_gather = 0;
SELECT p.relations, p.node, p.plan_rows, p.per_loop, t.true_rows,
       CASE WHEN NOT p.per_loop THEN p.plan_rows = t.true_rows END AS exact
FROM plan_nodes(:'query') p LEFT JOIN truth t USING (relations) ORDER BY p.pos;
-- other join methods cost with them too; the inner side of a parameterized
-- nested loop keeps PostgreSQL's per-loop estimate (by design)
SET enable_hashjoin = off;
SELECT p.relations, p.node, p.plan_rows, p.per_loop, t.true_rows,
       CASE WHEN NOT p.per_loop THEN p.plan_rows = t.true_rows END AS exact
FROM plan_nodes(:'query') p LEFT JOIN truth t USING (relations) ORDER BY p.pos;
RESET enable_hashjoin;
RESET max_parallel_workers_per_gather;

-- partial (parallel) paths carry the learned rows divided like PostgreSQL
-- divides them: 2 workers + leader share 0.4 -> divisor 2.4
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT p.relations, p.node, p.plan_rows, round(t.true_rows / 2.4) AS true_rows_per_worker
FROM plan_nodes('SELECT count(*) FROM orders o WHERE o.status = 1 AND o.channel = 1') p
     JOIN truth t USING (relations) ORDER BY p.pos;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
SELECT relations, nrels, native_rows, pilot_rows, used_rows, source
FROM pg_pilot.explain_estimates(:'query') ORDER BY nrels, relations;

-- a statement planned again in this session reuses the answers it got, with
-- no round trip to pilotd, while the oracle is unchanged; after a load it asks
-- again (and still plans with the true counts)
SET pg_pilot.estimator = 'oracle';
SET max_parallel_workers_per_gather = 0;
SELECT count(*) > 0 AS planned FROM plan_nodes(:'query');
SELECT requests AS requests_before FROM pg_pilot.stats \gset
SELECT count(*) > 0 AS planned_again FROM plan_nodes(:'query');
SELECT requests - :requests_before AS round_trips FROM pg_pilot.stats;
SELECT loaded FROM pg_pilot.load_cardinalities(:'cardfile', replace => true);
SELECT requests AS requests_before FROM pg_pilot.stats \gset
SELECT bool_and(p.plan_rows = t.true_rows) AS exact
FROM plan_nodes(:'query') p JOIN truth t USING (relations) WHERE NOT p.per_loop;
SELECT requests - :requests_before > 0 AS asked_after_the_load FROM pg_pilot.stats;
RESET max_parallel_workers_per_gather;

-- lines that cannot be keyed are reported with their line number, not dropped silently
COPY (VALUES ('# a comment line is skipped'),
             ('12||SELECT COUNT(*) FROM region AS rg WHERE rg.id < 13;'),
             ('twelve||SELECT COUNT(*) FROM region'),
             ('12 SELECT COUNT(*) FROM region'),
             ('5||SELECT COUNT(*) FROM no_such_table'),
             ('3||SELECT COUNT(*) FROM generate_series(1, 3)'),
             ('-1||SELECT COUNT(*) FROM region')) TO :'badfile';
SELECT * FROM pg_pilot.load_cardinalities(:'badfile');
SELECT * FROM pg_pilot.load_cardinalities('/nonexistent/cards.txt');
RESET pg_pilot.estimator;
