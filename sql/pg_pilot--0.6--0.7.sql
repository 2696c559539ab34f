/* pg_pilot 0.6 -> 0.7: pg_pilot.daemon shows key_texts, the relation-set texts
 * pilotd holds and publishes to the backends (a backend sends a text only
 * when pilotd lacks it, so a new connection planning a statement planned
 * before makes no round trip for texts). */
\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.7'" to load this file. \quit

DROP VIEW pg_pilot.daemon;
DROP FUNCTION pg_pilot.daemon_status();

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
    OUT store_error text,           -- the last store error (NULL once it commits again)
    OUT key_texts bigint)           -- relation-set texts pilotd holds and told the backends of
RETURNS record
AS 'MODULE_PATHNAME', 'pg_pilot_daemon_status'
LANGUAGE C VOLATILE;

CREATE VIEW pg_pilot.daemon AS SELECT * FROM pg_pilot.daemon_status();
