-- setup: extension and a small dataset with correlated columns, where
-- PostgreSQL's independence assumption underestimates by orders of magnitude.
CREATE EXTENSION pg_pilot;
CREATE EXTENSION hypopg;
SET client_min_messages = warning;

-- region 1..50; customer: segment, tier and age_band are all functions of one
-- hidden class (id % 20), so "segment = 3 AND tier = 3 AND age_band = 3" keeps
-- 1/20 of the rows while PostgreSQL expects (1/20)^3.
CREATE TABLE region (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE customer (id int PRIMARY KEY, region_id int NOT NULL, segment int NOT NULL,
                       tier int NOT NULL, age_band int NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status int NOT NULL,
                     channel int NOT NULL, amount int NOT NULL);
CREATE TABLE lineitem (order_id int NOT NULL, product int NOT NULL, qty int NOT NULL);

INSERT INTO region SELECT g, 'region ' || g FROM generate_series(1, 50) g;
INSERT INTO customer
  SELECT g, 1 + (g * 7) % 50, g % 20, g % 20, g % 20 FROM generate_series(1, 20000) g;
-- orders of a class-3 customer are status 1 / channel 1 (correlated with the customer)
INSERT INTO orders
  SELECT g, c, CASE WHEN c % 20 = 3 THEN 1 ELSE (g % 9) + 2 END,
         CASE WHEN c % 20 = 3 THEN 1 ELSE (g % 7) + 2 END, g % 1000
  FROM (SELECT g, 1 + (g * 13) % 20000 AS c FROM generate_series(1, 100000) g) s;
INSERT INTO lineitem SELECT 1 + (g * 17) % 100000, g % 500, 1 + g % 5 FROM generate_series(1, 200000) g;
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON lineitem (order_id);

-- deterministic statistics: sample every row of every table
SET default_statistics_target = 1000;
ANALYZE region, customer, orders, lineitem;
RESET default_statistics_target;

-- plan_nodes(query): every scan and join node of the query's plan, in plan
-- order (depth-first): the aliases below it, its row estimate, and whether it
-- is the inner side of a parameterized nested loop (rows per outer row).
CREATE FUNCTION plan_aliases(p jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p ? 'Alias' THEN ARRAY[p->>'Alias'] ELSE '{}'::text[] END
      || COALESCE((SELECT array_agg(a ORDER BY a)
                   FROM jsonb_array_elements(p->'Plans') c, unnest(plan_aliases(c)) a), '{}')
$$;
CREATE FUNCTION plan_walk(p jsonb, depth int, parent text)
RETURNS TABLE(relations text, node text, plan_rows float8, per_loop boolean)
LANGUAGE plpgsql AS $$
DECLARE c jsonb;
BEGIN
  IF p->>'Node Type' ~ '(Scan|Join|Nested Loop)' THEN
    relations := (SELECT string_agg(a, ' ' ORDER BY a) FROM unnest(plan_aliases(p)) a);
    node := repeat('  ', depth) || (p->>'Node Type');
    plan_rows := (p->>'Plan Rows')::float8;
    per_loop := parent = 'Nested Loop' AND p->>'Parent Relationship' = 'Inner'
                AND (p ? 'Index Cond' OR p ? 'Recheck Cond');
    RETURN NEXT;
  END IF;
  FOR c IN SELECT * FROM jsonb_array_elements(COALESCE(p->'Plans', '[]')) LOOP
    RETURN QUERY SELECT * FROM plan_walk(c, depth + 1, p->>'Node Type');
  END LOOP;
END $$;
CREATE FUNCTION plan_nodes(q text)
RETURNS TABLE(pos bigint, relations text, node text, plan_rows float8, per_loop boolean)
LANGUAGE plpgsql AS $$
DECLARE j jsonb;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
  RETURN QUERY SELECT w.ordinality, w.relations, w.node, w.plan_rows, w.per_loop
               FROM plan_walk(j->0->'Plan', 0, '') WITH ORDINALITY w;
END $$;
-- count_of(query): runs a SELECT COUNT(*) query
CREATE FUNCTION count_of(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE q INTO n;
  RETURN n;
END $$;
