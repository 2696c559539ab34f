-- models: extension 0.2 (protocol 4): the learned estimator, pilotd's model
-- table and pinning a model version, with no model trained yet.
SELECT extversion FROM pg_extension WHERE extname = 'pg_pilot';
SELECT source, target, path FROM pg_extension_update_paths('pg_pilot')
WHERE source = '0.1' AND target = '0.2';

-- the learned estimator is a valid choice; with no model every set stays native
SET pg_pilot.estimator = learned;
SHOW pg_pilot.estimator;
SELECT relations, nrels, pilot_rows, source
FROM pg_pilot.explain_estimates('SELECT count(*) FROM customer c, orders o WHERE c.id = o.customer_id AND c.segment = 3')
ORDER BY nrels, relations;
RESET pg_pilot.estimator;

-- no model versions yet
SELECT count(*) FROM pg_pilot.models;
SELECT * FROM pg_pilot.models;

-- pinning a version pilotd does not know is a clear error
SELECT pg_pilot.pin_model(42);
SELECT pg_pilot.pin_model(0);
SELECT pg_pilot.pin_model(NULL);

-- pinning changes every session's planner: not for PUBLIC; the table is readable
CREATE ROLE pilot_model_user;
SET ROLE pilot_model_user;
SELECT pg_pilot.pin_model(1);
SELECT pg_pilot.unpin_model();
SELECT count(*) FROM pg_pilot.models();
RESET ROLE;
DROP ROLE pilot_model_user;

-- the update path: 0.1, then ALTER EXTENSION ... UPDATE, in a scratch database
CREATE DATABASE pg_pilot_upgrade;
\c pg_pilot_upgrade
SET client_min_messages = warning;
CREATE EXTENSION pg_pilot VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'pg_pilot';
SELECT to_regclass('pg_pilot.models') IS NULL AS no_models_view_yet;
ALTER EXTENSION pg_pilot UPDATE TO '0.2';
SELECT extversion FROM pg_extension WHERE extname = 'pg_pilot';
SELECT count(*) FROM pg_pilot.models;
SELECT p.proname, p.proacl IS NOT NULL AS revoked_from_public
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_pilot'
WHERE p.proname IN ('models', 'pin_model', 'unpin_model')
ORDER BY p.proname;
\c pg_pilot_regress
DROP DATABASE pg_pilot_upgrade WITH (FORCE);
