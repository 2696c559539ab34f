/* pg_pilot--0.3--0.4.sql — the relation sets of a query with their key texts */

\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.4'" to load this file. \quit

-- Plans the query as this session would and lists every relation set the
-- planner sized, with its canonical description (the text its subplan key is
-- the hash of; NULL where the set cannot be described).  `pilotd collect
-- --subplans` counts these sets so the learned model also sees sub-plans the
-- chosen plans never execute.  Like EXPLAIN, it needs SELECT on the tables.
CREATE FUNCTION pg_pilot.subplans(
    query text,
    OUT relations text,
    OUT nrels integer,
    OUT key text,
    OUT key_text text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_pilot_subplans'
LANGUAGE C VOLATILE STRICT;
