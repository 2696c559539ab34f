/* pg_pilot 0.8 -> 0.9: the plan guard watches table statistics.
 *
 * A run's planning and execution times say which estimates plan a query
 * template better only for the table sizes it was planned with: when ANALYZE
 * or VACUUM finds a table much larger or smaller, the template explores again
 * (pilotd's --guard-stats-change-pct).  pg_pilot.query_log keeps the number
 * each run was planned with, so that pilotd, restarted, replays the runs
 * through the same check and gets back only those of the current sizes.
 * Rows stored before 0.9 have NULL (unknown: no check).
 *
 * And one name for the process: the view pg_pilot.daemon is now
 * pg_pilot.pilotd.  pg_pilot.daemon stays for one version, a deprecated view
 * of the same columns; it is dropped in 0.10. */
\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.9'" to load this file. \quit

ALTER TABLE pg_pilot.query_log ADD COLUMN table_rows_log float8;
COMMENT ON COLUMN pg_pilot.query_log.table_rows_log IS
    'sum over the plan''s tables of ln(1 + pg_class.reltuples) when it was planned; NULL: unknown (before pg_pilot 0.9)';

-- The view of what the segment says about pilotd, under pilotd's name.  A
-- rename keeps the view's definition (SELECT * FROM pg_pilot.daemon_status()),
-- owner, privileges and extension membership.  pg_pilot.daemon, the old name,
-- reads it for one more version; like the view it replaces, it has no grants
-- (readable by its owner, the superuser who ran CREATE EXTENSION).
ALTER VIEW pg_pilot.daemon RENAME TO pilotd;
CREATE VIEW pg_pilot.daemon AS SELECT * FROM pg_pilot.pilotd;
COMMENT ON VIEW pg_pilot.daemon IS 'deprecated: use pg_pilot.pilotd; dropped in 0.10';
