/* pg_pilot--0.4--0.5.sql — the plan guard: per query template, pg_pilot's
 * estimates against PostgreSQL's, timed; pins; pg_pilot.query_stats */

\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.5'" to load this file. \quit

-- Each logged run now says which database it ran in and which estimates it
-- was planned with (the plan guard's arm: 'pilot' or 'native'; NULL when the
-- guard did not take part).  pilotd reloads the guard's recent runs from here
-- after a restart.
ALTER TABLE pg_pilot.query_log
    ADD COLUMN dboid oid,
    ADD COLUMN estimates text CHECK (estimates IN ('pilot', 'native'));
CREATE INDEX query_log_guard_idx ON pg_pilot.query_log (dboid, query_id, id) WHERE estimates IS NOT NULL;

-- The guard table pilotd publishes (every database of the cluster): per query
-- template the decision ('explore', 'pilot', 'native'), the pin ('auto' =
-- none), the runs per side in the decision's window with their median
-- planning + execution time, and when the decision was taken.
CREATE FUNCTION pg_pilot.guard_templates(
    OUT dboid oid,
    OUT query_id bigint,
    OUT decision text,
    OUT pinned text,
    OUT pilot_runs integer,
    OUT native_runs integer,
    OUT pilot_median_ms float8,
    OUT native_median_ms float8,
    OUT decided_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_pilot_guard_templates'
LANGUAGE C VOLATILE;
-- every database's query ids and times: for roles that may see every
-- session's statistics (as pg_stat_statements shows others' query ids only to them)
REVOKE ALL ON FUNCTION pg_pilot.guard_templates() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_pilot.guard_templates() TO pilot_admin, pg_read_all_stats;

-- Pins a query template of this database to 'pilot' (pg_pilot's estimates),
-- 'native' (PostgreSQL's), or 'auto' (the guard decides again).  Durable in
-- pilotd's state directory: survives restarts of pilotd and PostgreSQL.
CREATE FUNCTION pg_pilot.guard_pin(query_id bigint, arm text)
RETURNS void
AS 'MODULE_PATHNAME', 'pg_pilot_guard_pin'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION pg_pilot.guard_pin(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_pilot.guard_pin(bigint, text) TO pilot_admin;

-- Makes the guard forget the runs of every unpinned template of this database:
-- they explore again (after a change the guard cannot see, e.g. new indexes or
-- hardware).  Pins stay; pg_pilot.query_log keeps its history.
CREATE FUNCTION pg_pilot.guard_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'pg_pilot_guard_reset'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION pg_pilot.guard_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_pilot.guard_reset() TO pilot_admin;

-- Per query template (database, query id), like pg_stat_statements: the
-- guard's decision with its reason and the medians it decided on; the runs
-- with pg_pilot's estimates and with PostgreSQL's and their mean planning and
-- execution times, and the worst q-error of pg_pilot's estimates on the
-- template's relation sets (these two from the feedback store: shown in the
-- store's database).  No query texts: join pg_stat_statements on query_id.
-- Readable by pilot_admin and pg_read_all_stats (it shows every database's
-- templates and the store's run history).
CREATE VIEW pg_pilot.query_stats AS
WITH runs AS (
    SELECT l.dboid, l.query_id,
           count(*) FILTER (WHERE l.estimates = 'pilot') AS pilot_calls,
           count(*) FILTER (WHERE l.estimates = 'native') AS native_calls,
           avg(l.planning_ms) FILTER (WHERE l.estimates = 'pilot') AS pilot_mean_planning_ms,
           avg(l.planning_ms) FILTER (WHERE l.estimates = 'native') AS native_mean_planning_ms,
           avg(l.execution_ms) FILTER (WHERE l.estimates = 'pilot') AS pilot_mean_execution_ms,
           avg(l.execution_ms) FILTER (WHERE l.estimates = 'native') AS native_mean_execution_ms
    FROM pg_pilot.query_log l
    WHERE l.estimates IS NOT NULL AND l.dboid IS NOT NULL AND l.query_id IS NOT NULL
    GROUP BY l.dboid, l.query_id
), qerr AS (
    SELECT f.query_id,
           max(GREATEST(GREATEST(f.pilot_rows, 1) / GREATEST(f.actual_rows, 1),
                        GREATEST(f.actual_rows, 1) / GREATEST(f.pilot_rows, 1))) AS worst_qerror
    FROM pg_pilot.feedback f
    WHERE f.pilot_rows IS NOT NULL AND f.query_id IN (SELECT query_id FROM runs)
    GROUP BY f.query_id
), both_sides AS (
    SELECT coalesce(g.dboid, r.dboid) AS dboid, coalesce(g.query_id, r.query_id) AS query_id,
           g.decision, g.pinned, g.pilot_runs, g.native_runs, g.pilot_median_ms, g.native_median_ms,
           g.decided_at, r.pilot_calls, r.native_calls, r.pilot_mean_planning_ms, r.native_mean_planning_ms,
           r.pilot_mean_execution_ms, r.native_mean_execution_ms
    FROM pg_pilot.guard_templates() g
    FULL JOIN runs r ON r.dboid = g.dboid AND r.query_id = g.query_id
)
SELECT d.datname AS database, b.query_id,
       coalesce(b.decision, 'explore') AS decision,
       coalesce(b.pinned, 'auto') AS pinned,
       CASE WHEN b.pinned IN ('pilot', 'native') THEN 'pinned by the DBA'
            WHEN b.decision IN ('pilot', 'native') THEN
                pg_catalog.format('pg_pilot''s median %s ms vs PostgreSQL''s %s ms over %s and %s runs',
                                  round(b.pilot_median_ms::numeric, 2), round(b.native_median_ms::numeric, 2),
                                  b.pilot_runs, b.native_runs)
            WHEN b.decision IS NULL THEN 'not in the guard''s table (pilotd not running, or restarted)'
            ELSE 'exploring: runs alternate until each side has enough' END AS reason,
       b.decided_at,
       round(b.pilot_median_ms::numeric, 3) AS pilot_median_ms,
       round(b.native_median_ms::numeric, 3) AS native_median_ms,
       coalesce(b.pilot_calls, 0) AS pilot_calls,
       coalesce(b.native_calls, 0) AS native_calls,
       round(b.pilot_mean_planning_ms::numeric, 3) AS pilot_mean_planning_ms,
       round(b.native_mean_planning_ms::numeric, 3) AS native_mean_planning_ms,
       round(b.pilot_mean_execution_ms::numeric, 3) AS pilot_mean_execution_ms,
       round(b.native_mean_execution_ms::numeric, 3) AS native_mean_execution_ms,
       round(q.worst_qerror::numeric, 2) AS worst_qerror,
       (SELECT m.version FROM pg_pilot.models m WHERE m.state = 'serving' AND m.dboid = b.dboid LIMIT 1)
           AS model_version
FROM both_sides b
LEFT JOIN pg_catalog.pg_database d ON d.oid = b.dboid
LEFT JOIN qerr q ON q.query_id = b.query_id;
GRANT SELECT ON pg_pilot.query_stats TO pilot_admin, pg_read_all_stats;
