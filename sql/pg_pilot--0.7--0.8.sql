/* pg_pilot 0.7 -> 0.8: pg_pilot.feedback records the database each relation
 * set was observed in.  pilotd serves a model version per database, and two
 * databases with the same tables and queries have the same subplan keys: the
 * trainer of one database must not learn the other's counts.  Rows stored
 * before 0.8 have NULL (the trainer then goes by the key catalog). */
\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.8'" to load this file. \quit

ALTER TABLE pg_pilot.feedback ADD COLUMN dboid oid;
COMMENT ON COLUMN pg_pilot.feedback.dboid IS
    'the database (pg_database.oid) the relation set was observed in; NULL: stored before pg_pilot 0.8';
