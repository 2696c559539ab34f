-- chain: pg_pilot calls the hooks installed before it; pg_stat_statements
-- (preloaded before pg_pilot) and hypopg keep working with learned estimates on.
CREATE EXTENSION pg_stat_statements;
SELECT pg_stat_statements_reset();
SET pg_pilot.estimator = 'oracle';
SELECT count(*) FROM customer c, orders o
WHERE c.id = o.customer_id AND c.segment = 3 AND c.tier = 3 AND c.age_band = 3 AND o.status = 1 AND o.channel = 1;
SELECT calls, rows FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM customer c, orders o%';

-- a hypothetical index is planned with, while pg_pilot sets the rows
SELECT count(*) > 0 AS created FROM hypopg_create_index('CREATE INDEX ON orders (amount)');
CREATE FUNCTION explain_text(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN ' || q LOOP RETURN NEXT line; END LOOP;
END $$;
SELECT bool_or(l ~ '<\d+>btree_orders_amount') AS uses_hypothetical_index
FROM explain_text('SELECT * FROM orders o WHERE o.amount = 5') l;
SELECT hypopg_reset();
RESET pg_pilot.estimator;
DROP EXTENSION pg_stat_statements;
