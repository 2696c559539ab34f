-- basic: parameters, the pilotd view, and the subplan key at SQL level
-- every parameter, its built-in default and who may change it
SELECT name, boot_val, unit, context, vartype FROM pg_settings WHERE name LIKE 'pg_pilot.%' ORDER BY name;
SHOW pg_pilot.estimator;
-- a user's mistake gets a clear error
SET pg_pilot.estimator = 'magic';
SET pg_pilot.timeout_ms = -1;
SET pg_pilot.enabled = maybe;
-- privileged parameters
CREATE ROLE pilot_plain_user;
SET ROLE pilot_plain_user;
SET pg_pilot.log_estimates = on;
SET pg_pilot.estimator = 'native';   -- allowed: per-session choice
SELECT pg_pilot.reset_stats();       -- not for PUBLIC
SELECT pg_pilot.clear_cardinalities();
RESET ROLE;
RESET pg_pilot.estimator;
DROP ROLE pilot_plain_user;

-- pilotd is attached and speaks our protocol
SELECT attached, problem IS NULL AS no_problem, protocol_version, slots > 0 AS has_slots,
       heartbeat_age_ms < 5000 AS heartbeat_fresh
FROM pg_pilot.pilotd;
-- pg_pilot.daemon, the old name of pg_pilot.pilotd, stays for one version: the same columns
SELECT (SELECT array_agg(column_name::text || ' ' || data_type ORDER BY ordinal_position)
        FROM information_schema.columns WHERE table_schema = 'pg_pilot' AND table_name = 'daemon')
     = (SELECT array_agg(column_name::text || ' ' || data_type ORDER BY ordinal_position)
        FROM information_schema.columns WHERE table_schema = 'pg_pilot' AND table_name = 'pilotd') AS same_columns,
       (SELECT count(*) FROM information_schema.columns
        WHERE table_schema = 'pg_pilot' AND table_name = 'pilotd') AS pilotd_columns,
       obj_description('pg_pilot.daemon'::regclass, 'pg_class') AS daemon_comment;

-- the key ignores aliases, FROM order, clause order and operand order
SELECT count(DISTINCT key) AS distinct_keys, count(DISTINCT template_key) AS distinct_templates
FROM (VALUES
  ('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.segment = 3 AND o.status = 1'),
  ('SELECT count(*) FROM orders x, customer y WHERE x.status = 1 AND y.segment = 3 AND x.customer_id = y.id'),
  ('SELECT count(*) FROM orders JOIN customer ON customer.id = orders.customer_id WHERE 3 = customer.segment AND 1 = orders.status'),
  ('SELECT count(*) FROM customer c, orders o WHERE o.customer_id = c.id AND o.status = 1 AND c.segment = 3')
) v(q), LATERAL pg_pilot.subplan_key(q);
-- other constants: another key, same template
SELECT a.key <> b.key AS keys_differ, a.template_key = b.template_key AS same_template
FROM pg_pilot.subplan_key('SELECT * FROM customer c WHERE c.segment = 3 AND c.tier < 10') a,
     pg_pilot.subplan_key('SELECT * FROM customer c WHERE c.segment = 4 AND c.tier < 12') b;
-- another predicate: another template
SELECT a.template_key <> b.template_key AS templates_differ
FROM pg_pilot.subplan_key('SELECT * FROM customer c WHERE c.segment = 3') a,
     pg_pilot.subplan_key('SELECT * FROM customer c WHERE c.tier = 3') b;
-- the canonical text itself
SELECT key_text FROM pg_pilot.subplan_key(
  'SELECT * FROM orders o JOIN customer c ON c.id = o.customer_id WHERE o.amount BETWEEN 10 AND 20 AND c.segment IN (1, 2)');
SELECT template_text FROM pg_pilot.subplan_key(
  'SELECT * FROM orders o JOIN customer c ON c.id = o.customer_id WHERE o.amount BETWEEN 10 AND 20 AND c.segment IN (1, 2, 3)');
-- outer joins are part of the key
SELECT a.key <> b.key AS left_join_differs
FROM pg_pilot.subplan_key('SELECT * FROM customer c JOIN orders o ON c.id = o.customer_id') a,
     pg_pilot.subplan_key('SELECT * FROM customer c LEFT JOIN orders o ON c.id = o.customer_id') b;
-- what cannot be keyed is said so
SELECT * FROM pg_pilot.subplan_key('SELECT * FROM generate_series(1, 3) g');
SELECT * FROM pg_pilot.subplan_key('SELECT 1');
SELECT * FROM pg_pilot.subplan_key('SELECT 1; SELECT 2');
SELECT * FROM pg_pilot.subplan_key('CREATE TABLE nope (a int)');

-- different relation sets must get different keys (found in review)
-- a condition in an outer join's ON is not the same as in WHERE
SELECT a.key <> b.key AS on_differs_from_where
FROM pg_pilot.subplan_key('SELECT * FROM customer c LEFT JOIN orders o ON o.customer_id = c.id AND c.segment = 5') a,
     pg_pilot.subplan_key('SELECT * FROM customer c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.segment = 5') b;
SELECT a.key <> b.key AS anti_join_condition_differs
FROM pg_pilot.subplan_key('SELECT * FROM customer c WHERE c.segment = 5 AND NOT EXISTS (SELECT FROM orders o WHERE o.customer_id = c.id)') a,
     pg_pilot.subplan_key('SELECT * FROM customer c WHERE NOT EXISTS (SELECT FROM orders o WHERE o.customer_id = c.id AND c.segment = 5)') b;
-- a comparison under another collation
SELECT a.key <> b.key AS collation_differs
FROM pg_pilot.subplan_key('SELECT * FROM region r WHERE r.name < ''b''') a,
     pg_pilot.subplan_key('SELECT * FROM region r WHERE r.name < ''b'' COLLATE "C"') b;
-- ONLY a parent vs the parent with its children
CREATE TABLE parent_t (a int);
CREATE TABLE child_t () INHERITS (parent_t);
SELECT a.key <> b.key AS only_differs
FROM pg_pilot.subplan_key('SELECT * FROM parent_t WHERE a = 1') a,
     pg_pilot.subplan_key('SELECT * FROM ONLY parent_t WHERE a = 1') b;
DROP TABLE child_t, parent_t;

-- the same relation set gets the same key whatever the session's settings
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE diary (d timestamptz, m mood, x float8);
CREATE TEMP TABLE keys_seen (k text);
\set kq 'SELECT * FROM public.diary WHERE d < ''2024-03-01 12:00:00+00'' AND m = ''happy'' AND x > 0.1'
INSERT INTO keys_seen SELECT key FROM pg_pilot.subplan_key(:'kq');
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SET extra_float_digits = -3;
SET quote_all_identifiers = on;
CREATE SCHEMA elsewhere;
SET search_path = elsewhere;   -- type mood no longer visible unqualified
INSERT INTO keys_seen SELECT key FROM pg_pilot.subplan_key(:'kq');
RESET search_path;
RESET TimeZone;
RESET DateStyle;
RESET extra_float_digits;
RESET quote_all_identifiers;
SELECT count(DISTINCT k) AS distinct_keys_across_settings FROM keys_seen;
DROP TABLE diary;
DROP TYPE mood;
DROP SCHEMA elsewhere;

-- explain_estimates shows nothing about tables the caller may not read
CREATE ROLE pilot_no_access;
SET ROLE pilot_no_access;
SELECT * FROM pg_pilot.explain_estimates('SELECT * FROM customer');
RESET ROLE;
DROP ROLE pilot_no_access;

-- subplans: every relation set the planner sizes for a query, with the key text
-- `pilotd collect --subplans` turns into a counting query (models/key_sql.h)
SELECT relations, nrels, key IS NOT NULL AS keyed, key_text LIKE 'pgpk1%' AS described
FROM pg_pilot.subplans('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = 7')
ORDER BY nrels, relations;
SELECT s.key = k.key AS whole_set_has_its_subplan_key
FROM pg_pilot.subplans('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = 7') s,
     pg_pilot.subplan_key('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.tier = 7') k
WHERE s.nrels = 2;
SET pg_pilot.enabled = off;
SELECT * FROM pg_pilot.subplans('SELECT count(*) FROM customer');
RESET pg_pilot.enabled;
