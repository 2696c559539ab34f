/* pg_pilot 0.8 -> 0.9: the plan guard watches table statistics.
 *
 * A run's planning and execution times say which estimates plan a query
 * template better only for the table sizes it was planned with: when ANALYZE
 * or VACUUM finds a table much larger or smaller, the template explores again
 * (pilotd's --guard-stats-change-pct).  pg_pilot.query_log keeps the number
 * each run was planned with, so that pilotd, restarted, replays the runs
 * through the same check and gets back only those of the current sizes.
 * Rows stored before 0.9 have NULL (unknown: no check). */
\echo Use "ALTER EXTENSION pg_pilot UPDATE TO '0.9'" to load this file. \quit

ALTER TABLE pg_pilot.query_log ADD COLUMN table_rows_log float8;
COMMENT ON COLUMN pg_pilot.query_log.table_rows_log IS
    'sum over the plan''s tables of ln(1 + pg_class.reltuples) when it was planned; NULL: unknown (before pg_pilot 0.9)';
