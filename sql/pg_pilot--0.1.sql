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
    OUT memo_entries bigint)        -- relation sets with an observed cardinality
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
