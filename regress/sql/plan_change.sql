-- plan_change: with true cardinalities injected, the planner picks another plan
-- for a query whose native plan rests on a 1000x underestimate.
\set query 'SELECT count(*) FROM region r, customer c, orders o, lineitem l WHERE r.id = c.region_id AND c.id = o.customer_id AND o.id = l.order_id AND c.segment = 3 AND c.tier = 3 AND c.age_band = 3 AND o.status = 1 AND o.channel = 1'

SET pg_pilot.estimator = 'native';
EXPLAIN (COSTS OFF) :query;
:query;

SET pg_pilot.estimator = 'oracle';
EXPLAIN (COSTS OFF) :query;
:query;

-- with pg_pilot off the plan is PostgreSQL's own again
SET pg_pilot.enabled = off;
EXPLAIN (COSTS OFF) :query;
RESET pg_pilot.enabled;
RESET pg_pilot.estimator;
