/* pg_pilot 0.7 -> 0.8: models for every database, and on standbys.
 *
 * pg_pilot.feedback records the database each relation
 * set was observed in.  pilotd serves a model version per database, and two
 * databases with the same tables and queries have the same subplan keys: the
 * trainer of one database must not learn the other's counts.  Rows stored
 * before 0.8 have NULL (the trainer then goes by the key catalog). */
\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.8'" to load this file. \quit

ALTER TABLE pg_pilot.feedback ADD COLUMN dboid oid;
COMMENT ON COLUMN pg_pilot.feedback.dboid IS
    'the database (pg_database.oid) the relation set was observed in; NULL: stored before pg_pilot 0.8';

/* The model versions that pilotd serves, in the database: physical
 * replication then delivers every version to every standby, whose pilotd
 * loads the version its primary serves from its local replica (checksum,
 * database identity and statistics checked as for a file), and swaps when a
 * new one arrives by replay.  Written by pilotd of the primary through its
 * store login (the feedback store's database holds the versions of every
 * database of the cluster).  bytea, not large objects: a version is about a
 * megabyte, read and written whole, and dropped with its row. */
CREATE TABLE pg_pilot.model_versions (
    version integer PRIMARY KEY,     -- pilotd's version number (STATE_DIR/models/N.model)
    dboid oid NOT NULL,              -- the database it is bound to
    database name NOT NULL,
    serving boolean NOT NULL,        -- the primary's pilotd serves it for its database now
    checksum text NOT NULL,          -- the file's own checksum (hex), checked again when loaded
    model bytea NOT NULL,            -- the model file, byte for byte
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX model_versions_serving_idx ON pg_pilot.model_versions (dboid) WHERE serving;
REVOKE ALL ON pg_pilot.model_versions FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON pg_pilot.model_versions TO pilot_store;
GRANT SELECT ON pg_pilot.model_versions TO pg_monitor;
-- pg_dump keeps the versions with the data (like the feedback tables)
SELECT pg_catalog.pg_extension_config_dump('pg_pilot.model_versions', '');

/* The fleet: every pilotd that commits feedback to this store (a primary's,
 * each standby's) has its row in store_progress, named by its spool; it now
 * also says where it runs, as what, and how much it had still to commit. */
ALTER TABLE pg_pilot.store_progress
    ADD COLUMN host text,        -- the machine pilotd runs on (gethostname)
    ADD COLUMN pgdata text,      -- the data directory of the server beside it
    ADD COLUMN role text,        -- primary or standby (standby.signal in that data directory)
    ADD COLUMN waiting bigint;   -- spool records it still had to commit after this commit
CREATE VIEW pg_pilot.pilotds AS
    SELECT spool_id, host, pgdata, role,
           updated_at AS last_commit,
           now() - updated_at AS since_last_commit,
           waiting AS records_waiting
    FROM pg_pilot.store_progress;
COMMENT ON VIEW pg_pilot.pilotds IS
    'pilotds that committed feedback to this store: where, as what, when last, and how many records they still had to commit';
REVOKE ALL ON pg_pilot.pilotds FROM PUBLIC;
GRANT SELECT ON pg_pilot.pilotds TO pg_monitor;
