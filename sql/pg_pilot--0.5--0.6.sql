/* pg_pilot 0.5 -> 0.6: pg_pilot.stats counts what the planning work skipped
 * and did: relation sets not asked (pilotd's known-sets filter knows no set of
 * their tables) and subplan keys computed. */
\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.6'" to load this file. \quit

DROP VIEW pg_pilot.stats;
DROP FUNCTION pg_pilot.stats();

CREATE FUNCTION pg_pilot.stats(
    OUT requests bigint,                  -- round trips that reached pilotd
    OUT items bigint,                     -- relation sets asked
    OUT answered bigint,                  -- relation sets pilotd gave rows for
    OUT fallback_timeout bigint,          -- no answer within pg_pilot.timeout_ms
    OUT fallback_daemon_down bigint,      -- pilotd not running / heartbeat stale
    OUT fallback_version_mismatch bigint, -- pilotd speaks another protocol version
    OUT fallback_unknown bigint,          -- pilotd did not know the relation set (asked or not)
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
    OUT stats_reset timestamptz,
    OUT not_asked bigint,                 -- relation sets neither keyed nor asked: pilotd knows no
                                          -- set of their tables, or the estimator is native
    OUT keys_computed bigint)             -- subplan keys computed (at most one per relation set
                                          -- and planning)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_pilot_stats'
LANGUAGE C VOLATILE;

CREATE VIEW pg_pilot.stats AS SELECT * FROM pg_pilot.stats();
