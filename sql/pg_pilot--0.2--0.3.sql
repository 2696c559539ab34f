/* pg_pilot--0.2--0.3.sql — the index advisor's SQL interface */

\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.3'" to load this file. \quit

-- pilotd's index advisor (daemon/index_advisor.h) writes here, connecting with
-- its --advisor-dsn login, which must be a member of pilot_advisor:
--     CREATE ROLE pilotd_advisor LOGIN IN ROLE pilot_advisor, pg_read_all_stats;
-- To apply recommendations (CREATE INDEX CONCURRENTLY) that login must also
-- own the tables (or be a member of their owner role); to cost the workload
-- it needs SELECT on them.
-- The roles are cluster-wide: a second database with the extension, or a
-- re-created extension, finds them there.  A role of that name that can log
-- in or has more rights was not made by this script: say so.  (A helper for
-- this script only: dropped at its end.)
CREATE FUNCTION pg_pilot.ensure_nologin_role(role_name name, comment text, what text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE r pg_catalog.pg_roles;
BEGIN
    SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = role_name;
    IF NOT FOUND THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        EXECUTE format('COMMENT ON ROLE %I IS %L', role_name, comment);
    ELSIF r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls THEN
        RAISE WARNING 'role "%" already exists and has more than NOLOGIN: it is given %', role_name, what
            USING HINT = format('Check who created it: ALTER ROLE %I NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS.', role_name);
    END IF;
END
$$;
SELECT pg_pilot.ensure_nologin_role('pilot_advisor',
    'pg_pilot: may write index advice (grant it to the login of pilotd''s --advisor-dsn)',
    'write access to pg_pilot''s index advice');

-- Every recommendation and finding of every run.  kind: create (a new
-- index), unused or duplicate (an existing index).  status of a create:
-- proposed -> applied -> helped | no gain -> dropped; failed; superseded by a
-- later run.
CREATE TABLE pg_pilot.index_advice (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL CHECK (kind IN ('create', 'unused', 'duplicate')),
    schema_name name NOT NULL,
    table_name name NOT NULL,
    columns text[] NOT NULL,
    index_name text NOT NULL,
    statement text NOT NULL,             -- CREATE INDEX CONCURRENTLY ... / DROP INDEX CONCURRENTLY ...
    size_bytes float8,                   -- estimated (HypoPG) or actual size
    benefit_ms float8,                   -- estimated workload time saved
    write_cost_ms float8,                -- estimated index maintenance, same window
    learned boolean NOT NULL,            -- costed with pg_pilot's estimates in force
    queries jsonb NOT NULL DEFAULT '[]', -- [{query, queryid, calls, time_ms, cost_before, cost_after}]
    reason text NOT NULL,
    status text NOT NULL DEFAULT 'proposed'
        CHECK (status IN ('proposed', 'superseded', 'applied', 'failed', 'helped', 'no gain', 'dropped')),
    applied_at timestamptz,
    verified_at timestamptz,
    time_before_ms float8,               -- mean execution time of its queries before / after
    time_after_ms float8,
    note text
);

-- One row per advisor job pilotd ran for pg_pilot.run_index_advisor(),
-- apply_index_recommendation() and verify_index_recommendations().
CREATE TABLE pg_pilot.advisor_run (
    id bigint PRIMARY KEY,               -- the job id pilotd answered with
    action text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    state text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    message text
);

GRANT SELECT, INSERT, UPDATE ON pg_pilot.index_advice, pg_pilot.advisor_run TO pilot_advisor;
GRANT USAGE ON SCHEMA pg_pilot TO pilot_advisor;
GRANT USAGE ON SEQUENCE pg_pilot.index_advice_id_seq TO pilot_advisor;
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.index_advice', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.advisor_run', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.index_advice_id_seq', '');

-- The current recommendations.  Query texts are shown to roles that may read
-- all statistics (as pg_stat_statements does), else '<insufficient privilege>'.
CREATE VIEW pg_pilot.index_recommendations AS
SELECT a.id, a.schema_name, a.table_name, a.columns, a.statement,
       a.size_bytes::bigint AS size_bytes,
       pg_catalog.pg_size_pretty(a.size_bytes::bigint) AS size,
       round(a.benefit_ms::numeric, 1) AS benefit_ms,
       round(a.write_cost_ms::numeric, 1) AS write_cost_ms,
       a.learned, a.reason, a.status, a.created_at, a.applied_at,
       a.time_before_ms, a.time_after_ms, a.note,
       CASE WHEN pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')
            THEN a.queries
            ELSE (SELECT coalesce(jsonb_agg(q - 'query' || '{"query": "<insufficient privilege>"}'), '[]')
                  FROM jsonb_array_elements(a.queries) q)
       END AS queries
FROM pg_pilot.index_advice a
WHERE a.kind = 'create' AND a.status <> 'superseded'
ORDER BY a.benefit_ms DESC NULLS LAST, a.id;

-- Existing indexes the last run found never scanned or duplicated.
CREATE VIEW pg_pilot.redundant_indexes AS
SELECT a.id, a.schema_name, a.table_name, a.index_name, a.kind,
       pg_catalog.pg_size_pretty(a.size_bytes::bigint) AS size, a.reason, a.statement, a.created_at
FROM pg_pilot.index_advice a
WHERE a.kind <> 'create' AND a.run_id = (SELECT max(run_id) FROM pg_pilot.index_advice)
ORDER BY a.size_bytes DESC, a.id;

-- Hands a job to pilotd over shared memory; returns its id.  action: 1 advise
-- (budget_mb, max_indexes; NULL: pilotd's settings), 2 apply (recommendation),
-- 3 verify (drop_unhelpful).
CREATE FUNCTION pg_pilot.advisor_request(action integer, budget_mb float8, max_indexes integer,
                                         recommendation bigint, drop_unhelpful boolean)
RETURNS bigint
AS 'MODULE_PATHNAME', 'pg_pilot_advisor_request'
LANGUAGE C VOLATILE;

-- Waits until pilotd finished job `job` (it writes pg_pilot.advisor_run);
-- an ERROR when it failed or did not finish in time.
CREATE FUNCTION pg_pilot.advisor_wait(job bigint, wait_seconds integer)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    r pg_pilot.advisor_run;
    deadline timestamptz := clock_timestamp() + make_interval(secs => coalesce(wait_seconds, 600));
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'pg_pilot: the index advisor''s functions wait for pilotd''s commits and need READ COMMITTED'
            USING HINT = 'Call it outside a REPEATABLE READ or SERIALIZABLE transaction.';
    END IF;
    LOOP
        SELECT * INTO r FROM pg_pilot.advisor_run WHERE id = job;
        IF FOUND AND r.state = 'done' THEN
            RETURN r.message;
        ELSIF FOUND AND r.state = 'failed' THEN
            RAISE EXCEPTION 'pg_pilot: index advisor job % failed: %', job, r.message
                USING HINT = 'See pilotd''s log for details.';
        ELSIF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'pg_pilot: index advisor job % did not finish within % s (state: %)',
                job, wait_seconds, coalesce(r.state, 'not started')
                USING HINT = 'It may still finish: see pg_pilot.advisor_run.  A job that never starts means pilotd '
                             'cannot connect to this database with its --advisor-dsn: see pilotd''s log.';
        END IF;
        PERFORM pg_catalog.pg_sleep(0.1);
    END LOOP;
END
$$;

-- Runs the advisor now on this database's workload (pg_stat_statements,
-- weighted with pg_pilot.query_log) and returns the recommendations.
CREATE FUNCTION pg_pilot.run_index_advisor(budget_mb float8 DEFAULT NULL, max_indexes integer DEFAULT NULL,
                                           wait_seconds integer DEFAULT 600)
RETURNS SETOF pg_pilot.index_recommendations
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    IF budget_mb IS NOT NULL AND NOT (budget_mb > 0) THEN
        RAISE EXCEPTION 'pg_pilot: budget_mb must be positive, not %', budget_mb
            USING HINT = 'Give the storage budget in megabytes, or NULL for pilotd''s --advisor-budget-mb.';
    END IF;
    IF max_indexes IS NOT NULL AND (max_indexes < 1 OR max_indexes > 1000) THEN
        RAISE EXCEPTION 'pg_pilot: max_indexes must be between 1 and 1000, not %', max_indexes;
    END IF;
    PERFORM pg_pilot.advisor_wait(pg_pilot.advisor_request(1, budget_mb, max_indexes, NULL, false), wait_seconds);
    RETURN QUERY SELECT * FROM pg_pilot.index_recommendations WHERE status = 'proposed';
END
$$;

-- Creates recommendation `id`'s index with CREATE INDEX CONCURRENTLY, run by
-- pilotd (a function cannot), and returns what happened.  A procedure: CALL it
-- outside a transaction block.  It commits while it waits, because CREATE
-- INDEX CONCURRENTLY waits for every transaction that holds a snapshot older
-- than the index, the caller's included.  (No SET clause: it would forbid COMMIT;
-- every name is qualified instead.)
CREATE PROCEDURE pg_pilot.apply_index_recommendation(id bigint, wait_seconds integer DEFAULT 3600,
                                                     INOUT result text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    st text;
    job bigint;
    r pg_pilot.advisor_run;
    deadline timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => coalesce(wait_seconds, 3600));
BEGIN
    -- fails at once inside a transaction block, before anything is queued
    COMMIT;
    SELECT a.status INTO st FROM pg_pilot.index_advice a
    WHERE a.id OPERATOR(pg_catalog.=) apply_index_recommendation.id AND a.kind OPERATOR(pg_catalog.=) 'create';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_pilot: no index recommendation %', id
            USING HINT = 'See pg_pilot.index_recommendations for the ids.';
    ELSIF st NOT IN ('proposed', 'failed', 'superseded') THEN
        RAISE EXCEPTION 'pg_pilot: index recommendation % is already %', id, st;
    END IF;
    job := pg_pilot.advisor_request(2, NULL, NULL, id, false);
    COMMIT;
    LOOP
        SELECT * INTO r FROM pg_pilot.advisor_run a WHERE a.id OPERATOR(pg_catalog.=) job;
        IF FOUND AND r.state OPERATOR(pg_catalog.=) 'done' THEN
            result := r.message;
            RETURN;
        ELSIF FOUND AND r.state OPERATOR(pg_catalog.=) 'failed' THEN
            RAISE EXCEPTION 'pg_pilot: applying index recommendation % failed: %', id, r.message
                USING HINT = 'The advisor''s login (pilotd --advisor-dsn) must own the table.  See pilotd''s log.';
        ELSIF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>) deadline THEN
            RAISE EXCEPTION 'pg_pilot: index advisor job % did not finish within % s (state: %)',
                job, wait_seconds, coalesce(r.state, 'not started')
                USING HINT = 'It may still finish: see pg_pilot.index_recommendations and pg_pilot.advisor_run.';
        END IF;
        COMMIT;
        PERFORM pg_catalog.pg_sleep(0.2);
        COMMIT;
    END LOOP;
END
$$;

-- Compares the applied indexes' queries' execution times before and after
-- (pg_pilot.query_log) and marks them helped or no gain; drop_unhelpful drops
-- those that did not help.
CREATE FUNCTION pg_pilot.verify_index_recommendations(drop_unhelpful boolean DEFAULT false,
                                                      wait_seconds integer DEFAULT 600)
RETURNS TABLE (id bigint, index_name text, status text, time_before_ms float8, time_after_ms float8, note text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_pilot.advisor_wait(pg_pilot.advisor_request(3, NULL, NULL, NULL, drop_unhelpful), wait_seconds);
    RETURN QUERY SELECT a.id, a.index_name, a.status, a.time_before_ms, a.time_after_ms, a.note
                 FROM pg_pilot.index_advice a
                 WHERE a.kind = 'create' AND a.applied_at IS NOT NULL ORDER BY a.id;
END
$$;

-- They make pilotd change the database (indexes) or spend its time: not for PUBLIC.
REVOKE ALL ON FUNCTION pg_pilot.advisor_request(integer, float8, integer, bigint, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_pilot.advisor_wait(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_pilot.run_index_advisor(float8, integer, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE pg_pilot.apply_index_recommendation(bigint, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_pilot.verify_index_recommendations(boolean, integer) FROM PUBLIC;

-- pilot_admin: the role that may change what pg_pilot does for every session
-- (load or clear oracle cardinalities, pin a model, reset the counters, run the
-- index advisor and apply its indexes).  Grant it to DBAs:
--     GRANT pilot_admin TO alice;
-- (superusers may do all of it anyway).  Created here, cluster-wide, like
-- pilot_store; a role of that name with more than NOLOGIN is reported.
SELECT pg_pilot.ensure_nologin_role('pilot_admin',
    'pg_pilot: may change what pg_pilot does for every session (grant it to DBAs)',
    'pg_pilot''s administration');
DROP FUNCTION pg_pilot.ensure_nologin_role(name, text, text);
GRANT USAGE ON SCHEMA pg_pilot TO pilot_admin;
GRANT EXECUTE ON FUNCTION pg_pilot.load_cardinalities(text, boolean), pg_pilot.clear_cardinalities(),
    pg_pilot.reset_stats(), pg_pilot.pin_model(integer), pg_pilot.unpin_model(),
    pg_pilot.advisor_request(integer, float8, integer, bigint, boolean), pg_pilot.advisor_wait(bigint, integer),
    pg_pilot.run_index_advisor(float8, integer, integer), pg_pilot.verify_index_recommendations(boolean, integer)
    TO pilot_admin;
GRANT EXECUTE ON PROCEDURE pg_pilot.apply_index_recommendation(bigint, integer, text) TO pilot_admin;
GRANT SELECT ON pg_pilot.index_advice, pg_pilot.advisor_run, pg_pilot.index_recommendations,
    pg_pilot.redundant_indexes TO pilot_admin;
