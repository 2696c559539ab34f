-- advisor: the index advisor's SQL interface (extension 0.3) without pilotd's
-- advisor (the integration test index_advisor.sh runs it end to end): the
-- upgrade from 0.2, privileges, argument errors, the views.
SELECT extversion FROM pg_extension WHERE extname = 'pg_pilot';
SELECT source, target, path FROM pg_extension_update_paths('pg_pilot')
WHERE target = '0.3' AND path IS NOT NULL ORDER BY source;

-- the objects, and what is revoked from PUBLIC
SELECT p.proname, p.prokind, has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_run
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_pilot'
WHERE p.proname IN ('advisor_request', 'advisor_wait', 'run_index_advisor', 'apply_index_recommendation',
                    'verify_index_recommendations')
ORDER BY p.proname;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'pilot_advisor';
SELECT has_table_privilege('pilot_advisor', 'pg_pilot.index_advice', 'INSERT') AS advisor_writes_advice,
       has_table_privilege('pilot_advisor', 'pg_pilot.advisor_run', 'UPDATE') AS advisor_writes_runs,
       has_table_privilege('public', 'pg_pilot.index_advice', 'SELECT') AS public_reads_advice;

-- a DBA's mistakes: clear errors before anything is sent to pilotd
SELECT * FROM pg_pilot.run_index_advisor(budget_mb => 0);
SELECT * FROM pg_pilot.run_index_advisor(max_indexes => 0);
CALL pg_pilot.apply_index_recommendation(424242);
SELECT pg_pilot.advisor_request(7, NULL, NULL, NULL, false);
SELECT pg_pilot.advisor_request(2, NULL, NULL, NULL, false);
SELECT pg_pilot.advisor_request(1, 'NaN', NULL, NULL, false);
-- the pilotd of this suite runs without --advisor-dsn: refused, with a hint
SELECT * FROM pg_pilot.run_index_advisor();
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_pilot.advisor_wait(1, 1);
ROLLBACK;

-- the views: a recommendation as pilotd writes it; its query texts only for
-- roles that may read all statistics
INSERT INTO pg_pilot.index_advice (run_id, kind, schema_name, table_name, columns, index_name, statement,
                                   size_bytes, benefit_ms, write_cost_ms, learned, queries, reason)
VALUES (1, 'create', 'public', 'orders', '{customer_id}', 'pilot_orders_customer_id_idx',
        'CREATE INDEX CONCURRENTLY "pilot_orders_customer_id_idx" ON "public"."orders" ("customer_id")',
        8192 * 30, 123.45, 0.5, true,
        '[{"query": "SELECT count(*) FROM orders WHERE customer_id = $1", "queryid": 7, "calls": 5, "time_ms": 130, "cost_before": 1000, "cost_after": 10}]',
        'filter on orders.customer_id in 1 query'),
       (1, 'duplicate', 'public', 'customer', '{}', 'customer_dup_idx', 'DROP INDEX CONCURRENTLY "public"."customer_dup_idx"',
        8192, NULL, NULL, true, '[]', 'its columns lead index customer_pkey, which serves the same scans');
SELECT table_name, columns, size, benefit_ms, status, queries->0->>'query' AS top_query
FROM pg_pilot.index_recommendations;
SELECT index_name, kind, size, reason FROM pg_pilot.redundant_indexes;
CREATE ROLE pilot_advice_reader;
GRANT USAGE ON SCHEMA pg_pilot TO pilot_advice_reader;
GRANT SELECT ON pg_pilot.index_recommendations TO pilot_advice_reader;
SET ROLE pilot_advice_reader;
SELECT table_name, queries->0->>'query' AS top_query, queries->0->>'cost_after' AS cost_after
FROM pg_pilot.index_recommendations;
SELECT count(*) FROM pg_pilot.index_advice;
RESET ROLE;
DROP OWNED BY pilot_advice_reader;
DROP ROLE pilot_advice_reader;
DELETE FROM pg_pilot.index_advice;

-- pilot_admin: a DBA granted it may run the state-changing functions; others may not
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'pilot_admin';
CREATE ROLE pilot_test_dba;
CREATE ROLE pilot_test_user;
GRANT pilot_admin TO pilot_test_dba;
SET ROLE pilot_test_user;
SELECT pg_pilot.reset_stats();
SELECT * FROM pg_pilot.run_index_advisor();
RESET ROLE;
SET ROLE pilot_test_dba;
SELECT pg_pilot.reset_stats() IS NOT NULL AS reset_done;
SELECT * FROM pg_pilot.run_index_advisor(budget_mb => -1);
SELECT count(*) FROM pg_pilot.index_recommendations;
RESET ROLE;
DROP ROLE pilot_test_dba;
DROP ROLE pilot_test_user;

-- the update path 0.2 -> 0.3 in a scratch database
CREATE DATABASE pg_pilot_upgrade3;
\c pg_pilot_upgrade3
SET client_min_messages = warning;
CREATE EXTENSION pg_pilot VERSION '0.2';
SELECT to_regclass('pg_pilot.index_recommendations') IS NULL AS no_advisor_yet;
ALTER EXTENSION pg_pilot UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_pilot';
SELECT count(*) FROM pg_pilot.index_recommendations;
SELECT count(*) FROM pg_pilot.redundant_indexes;
\c pg_pilot_regress
DROP DATABASE pg_pilot_upgrade3 WITH (FORCE);
