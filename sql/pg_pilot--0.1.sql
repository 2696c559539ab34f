/* pg_pilot--0.1.sql — objects of the pg_pilot extension (schema pg_pilot) */

\echo Use "CREATE EXTENSION pg_pilot" to load this file. \quit

-- The interface lives in schema pg_pilot (pg_pilot.stats, ...).  Names starting
-- with "pg_" are reserved, so the schema is created here with
-- allow_system_table_mods, which PostgreSQL resets when this script ends.
SET allow_system_table_mods = on;
CREATE SCHEMA pg_pilot;
RESET allow_system_table_mods;

-- Cardinalities for the oracle estimator --------------------------------------

-- Reads a file of "rows||SELECT COUNT(*) FROM ... WHERE ...;" lines (the
-- sub-plan query format of the STATS-CEB / JOB-light benchmarks), derives each
-- query's subplan key in this server and hands key -> rows to pilotd, which
-- stores them durably.  Lines that cannot be keyed are reported as WARNINGs.
CREATE FUNCTION pg_pilot.load_cardinalities(
    path text,
    replace boolean DEFAULT false,
    OUT lines bigint,          -- non-empty, non-comment lines read
    OUT loaded bigint,         -- lines keyed and sent to pilotd
    OUT failed bigint,         -- lines skipped (see the WARNINGs)
    OUT oracle_entries bigint) -- size of pilotd's oracle table afterwards
RETURNS record
AS 'MODULE_PATHNAME', 'pg_pilot_load_cardinalities'
LANGUAGE C VOLATILE;

CREATE FUNCTION pg_pilot.clear_cardinalities()
RETURNS bigint
AS 'MODULE_PATHNAME', 'pg_pilot_clear_cardinalities'
LANGUAGE C VOLATILE;

-- They change what every session's planner sees: not for PUBLIC.
REVOKE ALL ON FUNCTION pg_pilot.load_cardinalities(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_pilot.clear_cardinalities() FROM PUBLIC;

-- Diagnostics -------------------------------------------------------------------

-- Plans the query as this session would and lists every relation set the
-- planner sized: PostgreSQL's estimate, pilotd's, the one used, and its source.
CREATE FUNCTION pg_pilot.explain_estimates(
    query text,
    OUT relations text,
    OUT nrels integer,
    OUT native_rows float8,
    OUT pilot_rows float8,
    OUT used_rows float8,
    OUT source text,
    OUT key text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_pilot_explain_estimates'
LANGUAGE C VOLATILE STRICT;

-- The subplan key of a query's whole relation set (what load_cardinalities stores).
CREATE FUNCTION pg_pilot.subplan_key(
    query text,
    OUT key text,
    OUT template_key text,
    OUT key_text text,
    OUT template_text text)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_pilot_subplan_key'
LANGUAGE C VOLATILE STRICT;

-- Status and statistics ---------------------------------------------------------

CREATE FUNCTION pg_pilot.daemon_status(
    OUT attached boolean,
    OUT segment text,
    OUT problem text,
    OUT pid integer,
    OUT protocol_version integer,
    OUT epoch text,
    OUT slots integer,
    OUT heartbeat_age_ms float8,
    OUT started_at timestamptz,
    OUT requests bigint,
    OUT items bigint,
    OUT answered bigint,
    OUT bad_requests bigint,
    OUT oracle_entries bigint,
    OUT feedback_received bigint,   -- feedback records pilotd took from the queues
    OUT feedback_invalid bigint,    -- records (or queues) that failed validation
    OUT memo_entries bigint,        -- relation sets with an observed cardinality
    OUT feedback_queued bigint,     -- records in the queues not yet acknowledged
    OUT store_state text,           -- feedback store: disabled, ok or retrying
    OUT spool_appended bigint,      -- records made durable in the spool (acknowledged), this run
    OUT spool_pending bigint,       -- records in the spool not yet committed to the store
    OUT store_committed bigint,     -- records committed into the store tables, this run
    OUT store_replayed bigint,      -- of those, records that waited out an outage or a restart
    OUT store_dead_letter bigint,   -- records stored in pg_pilot.feedback_dead_letter
    OUT store_failures bigint,      -- failed store transactions (retried with backoff)
    OUT store_error text)           -- the last store error (NULL once it commits again)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_pilot_daemon_status'
LANGUAGE C VOLATILE;

CREATE VIEW pg_pilot.daemon AS SELECT * FROM pg_pilot.daemon_status();

CREATE FUNCTION pg_pilot.stats(
    OUT requests bigint,                  -- round trips that reached pilotd
    OUT items bigint,                     -- relation sets asked
    OUT answered bigint,                  -- relation sets pilotd gave rows for
    OUT fallback_timeout bigint,          -- no answer within pg_pilot.timeout_ms
    OUT fallback_daemon_down bigint,      -- pilotd not running / heartbeat stale
    OUT fallback_version_mismatch bigint, -- pilotd speaks another protocol version
    OUT fallback_unknown bigint,          -- pilotd did not know the relation set
    OUT fallback_invalid bigint,          -- response failed validation
    OUT fallback_unkeyable bigint,        -- relation set could not be described
    OUT fallback_no_slot bigint,          -- backend beyond pilotd's slots
    OUT fallback_busy bigint,             -- slot busy with an abandoned request
    OUT fallback_error bigint,            -- internal error turned into a fallback
    OUT feedback_sent bigint,             -- execution feedback records handed to pilotd
    OUT feedback_dropped bigint,          -- records dropped: queue full or pilotd down
    OUT feedback_lost bigint,             -- records sent but never acknowledged: pilotd was killed
    OUT latency_p50_us float8,            -- round-trip latency percentiles
    OUT latency_p90_us float8,
    OUT latency_p99_us float8,
    OUT stats_reset timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_pilot_stats'
LANGUAGE C VOLATILE;

CREATE VIEW pg_pilot.stats AS SELECT * FROM pg_pilot.stats();

CREATE FUNCTION pg_pilot.reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'pg_pilot_reset_stats'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION pg_pilot.reset_stats() FROM PUBLIC;

GRANT USAGE ON SCHEMA pg_pilot TO PUBLIC;

-- The feedback store ---------------------------------------------------------------
-- pilotd commits execution feedback here (daemon/pg_store.h), connecting as a
-- role that is a member of pilot_store:
--     CREATE ROLE pilotd LOGIN IN ROLE pilot_store;
-- (and pilotd --store-dsn "dbname=<this database> user=pilotd").  Reading the
-- tables is for the extension's owner and whoever it grants SELECT to.

-- The role is cluster-wide: a second database with the extension, or a
-- re-created extension, finds it there.  A role of that name that can log in
-- or has more rights was not made by this script: say so.
DO $$
DECLARE r pg_catalog.pg_roles;
BEGIN
    SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = 'pilot_store';
    IF NOT FOUND THEN
        CREATE ROLE pilot_store NOLOGIN;
        COMMENT ON ROLE pilot_store IS 'pg_pilot: may write the feedback store (grant it to pilotd''s login role)';
    ELSIF r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls THEN
        RAISE WARNING 'role "pilot_store" already exists and has more than NOLOGIN: it is given write access to pg_pilot''s feedback store'
            USING HINT = 'Check who created it: ALTER ROLE pilot_store NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS.';
    END IF;
END
$$;

-- One row per relation set whose actual size a query observed.
CREATE TABLE pg_pilot.feedback (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    observed_at timestamptz NOT NULL,   -- when pilotd received it
    query_id bigint,                    -- pg_stat_statements' queryid
    subplan_key bigint NOT NULL,        -- pg_pilot.subplan_key(): key (as a signed 64-bit integer)
    template_key bigint NOT NULL,       -- the same without constants
    relations text NOT NULL,            -- "a, b, c"
    nrels integer NOT NULL,
    native_rows float8,                 -- PostgreSQL's estimate (NULL: unknown)
    pilot_rows float8,                  -- the estimate pg_pilot supplied (NULL: none)
    actual_rows float8 NOT NULL
);
CREATE INDEX feedback_observed_at_idx ON pg_pilot.feedback (observed_at);
CREATE INDEX feedback_subplan_key_idx ON pg_pilot.feedback (subplan_key);

-- One row per query whose execution was observed.
CREATE TABLE pg_pilot.query_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at timestamptz NOT NULL,
    query_id bigint,                    -- pg_stat_statements' queryid
    planning_ms float8,                 -- NULL: a cached plan
    execution_ms float8 NOT NULL,
    relation_sets integer NOT NULL      -- rows it added to pg_pilot.feedback
);
CREATE INDEX query_log_logged_at_idx ON pg_pilot.query_log (logged_at);

-- Records pilotd could not use, with why: never silently away.
CREATE TABLE pg_pilot.feedback_dead_letter (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz,
    reason text NOT NULL,
    record bytea NOT NULL               -- the record's bytes as received
);

-- Per pilotd spool: the next spool entry to commit (exactly-once replay).
CREATE TABLE pg_pilot.store_progress (
    spool_id text PRIMARY KEY,
    committed_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

GRANT SELECT, INSERT, DELETE ON pg_pilot.feedback, pg_pilot.query_log,
    pg_pilot.feedback_dead_letter TO pilot_store;
GRANT SELECT, INSERT, UPDATE ON pg_pilot.store_progress TO pilot_store;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA pg_pilot TO pilot_store;

-- The store survives pg_dump of the database.
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.feedback', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.query_log', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.feedback_dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.store_progress', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.feedback_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.query_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.feedback_dead_letter_id_seq', '');

-- The relation sets estimated worst, for a DBA: per subplan key, its latest
-- observation, ranked by the q-error of the estimate the planner used
-- (pg_pilot's when it supplied one, else PostgreSQL's).  q-error =
-- max(estimate, actual) / min(estimate, actual), both at least 1 row.
CREATE VIEW pg_pilot.worst_estimates AS
SELECT relations, nrels, key, observations, last_observed,
       actual_rows, native_rows, pilot_rows,
       round(native_qerror::numeric, 2) AS native_qerror,
       round(pilot_qerror::numeric, 2) AS pilot_qerror,
       round(coalesce(pilot_qerror, native_qerror)::numeric, 2) AS used_qerror,
       query_id
FROM (
    SELECT l.relations, l.nrels,
           lpad(to_hex(l.subplan_key), 16, '0') AS key,
           c.observations, l.observed_at AS last_observed,
           l.actual_rows, l.native_rows, l.pilot_rows, l.query_id,
           greatest(greatest(l.native_rows, 1), greatest(l.actual_rows, 1)) /
               least(greatest(l.native_rows, 1), greatest(l.actual_rows, 1)) AS native_qerror,
           greatest(greatest(l.pilot_rows, 1), greatest(l.actual_rows, 1)) /
               least(greatest(l.pilot_rows, 1), greatest(l.actual_rows, 1)) AS pilot_qerror
    FROM (SELECT DISTINCT ON (subplan_key) *
          FROM pg_pilot.feedback
          ORDER BY subplan_key, id DESC) l
    JOIN (SELECT subplan_key, count(*) AS observations
          FROM pg_pilot.feedback GROUP BY subplan_key) c USING (subplan_key)
) w
ORDER BY coalesce(pilot_qerror, native_qerror) DESC NULLS LAST, observations DESC;
