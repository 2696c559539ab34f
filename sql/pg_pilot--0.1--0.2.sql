/* pg_pilot--0.1--0.2.sql — the learned model's SQL interface (protocol 4) */

\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.2'" to load this file. \quit

-- The model versions pilotd knows, from its model table in shared memory
-- (no rows when pilotd is not running).  q-errors are measured on held-out
-- feedback records (NULL: not measured yet).
CREATE FUNCTION pg_pilot.models(
    OUT version integer,
    OUT state text,               -- training, validated, serving, retired or rejected
    OUT database text,            -- the database it was trained for
    OUT dboid oid,
    OUT pinned boolean,           -- pinned with pg_pilot.pin_model()
    OUT created timestamptz,
    OUT train_records bigint,
    OUT validation_records bigint,
    OUT model_qerror_p50 float8,  -- the model's q-error percentiles
    OUT model_qerror_p90 float8,
    OUT model_qerror_p99 float8,
    OUT native_qerror_p50 float8, -- PostgreSQL's, on the same records
    OUT native_qerror_p90 float8,
    OUT native_qerror_p99 float8,
    OUT served bigint,            -- estimates answered
    OUT declined bigint,          -- estimates it declined to give
    OUT batches bigint,           -- planning batches it answered
    OUT inference_us_p50 float8,  -- time per batch: featurization and one forward pass
    OUT inference_us_p99 float8,
    OUT size_bytes bigint,
    OUT checksum text,
    OUT note text)                -- why rejected or retired, ...
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_pilot_models'
LANGUAGE C VOLATILE;

CREATE VIEW pg_pilot.models AS SELECT * FROM pg_pilot.models();

-- Makes pilotd serve this model version until pg_pilot.unpin_model();
-- an ERROR when pilotd cannot.  unpin_model() lets pilotd choose again.
CREATE FUNCTION pg_pilot.pin_model(version integer)
RETURNS void
AS 'MODULE_PATHNAME', 'pg_pilot_pin_model'
LANGUAGE C VOLATILE;

CREATE FUNCTION pg_pilot.unpin_model()
RETURNS void
AS 'MODULE_PATHNAME', 'pg_pilot_unpin_model'
LANGUAGE C VOLATILE;

-- They change what every session's planner sees: not for PUBLIC.
REVOKE ALL ON FUNCTION pg_pilot.pin_model(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_pilot.unpin_model() FROM PUBLIC;
