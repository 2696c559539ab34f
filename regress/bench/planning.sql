-- planning.sql — planning time per query: PostgreSQL alone vs pg_pilot asking
-- with nothing to answer (estimator 'native': nothing asked, the chosen plan's
-- sets keyed for feedback = pg_pilot's own work)
-- vs pg_pilot with the oracle's answers.  Modes are interleaved per query and
-- repeated (:reps); the median per query and mode is kept.
-- Input: temp table bench_queries(n int, q text), psql variables :reps, :label.
CREATE OR REPLACE FUNCTION pg_temp.plan_ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j jsonb;
BEGIN
  EXECUTE 'EXPLAIN (SUMMARY, FORMAT JSON) ' || q INTO j;
  RETURN (j->0->>'Planning Time')::float8;
END $$;
CREATE TEMP TABLE bench_t (n int, mode text, rep int, ms float8);
SELECT pg_pilot.reset_stats();
DO $$
DECLARE r record;
BEGIN
  FOR rep IN 1..current_setting('bench.reps')::int LOOP
    FOR r IN SELECT * FROM bench_queries ORDER BY n LOOP
      -- each mode plans the query twice in a row and keeps the second: the
      -- first planning after a switch pays for caches the other mode used
      -- (some 10-40 us), which a server that runs one mode never pays
      SET pg_pilot.enabled = off;
      PERFORM pg_temp.plan_ms(r.q);
      INSERT INTO bench_t SELECT r.n, 'native', rep, pg_temp.plan_ms(r.q);
      SET pg_pilot.enabled = on;
      SET pg_pilot.estimator = 'native';
      PERFORM pg_temp.plan_ms(r.q);
      INSERT INTO bench_t SELECT r.n, 'pilot_noanswer', rep, pg_temp.plan_ms(r.q);
      SET pg_pilot.estimator = 'oracle';
      PERFORM pg_temp.plan_ms(r.q);
      INSERT INTO bench_t SELECT r.n, 'pilot_oracle', rep, pg_temp.plan_ms(r.q);
    END LOOP;
  END LOOP;
END $$;
CREATE TEMP TABLE bench_med AS
  SELECT n, mode, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM bench_t GROUP BY n, mode;
CREATE TEMP TABLE bench_added AS
  SELECT b.mode, b.n, b.ms - a.ms AS added_ms, a.ms AS native_ms, b.ms AS ms
  FROM bench_med a JOIN bench_med b USING (n) WHERE a.mode = 'native' AND b.mode <> 'native';
SELECT json_build_object(
  'workload', :'label',
  'queries', (SELECT count(*) FROM bench_queries),
  'reps', current_setting('bench.reps')::int,
  'planning', (SELECT json_object_agg(mode, s) FROM (
      SELECT mode, json_build_object(
        'p50_ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
        'p99_ms', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
        'total_ms', round(sum(ms)::numeric, 1)) AS s
      FROM bench_med GROUP BY mode) m),
  'planning_added', (SELECT json_object_agg(mode, s) FROM (
      SELECT mode, json_build_object(
        'p50_ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY added_ms)::numeric, 3),
        'p90_ms', round(percentile_cont(0.9) WITHIN GROUP (ORDER BY added_ms)::numeric, 3),
        'p99_ms', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY added_ms)::numeric, 3),
        'total_ratio', round((sum(ms) / nullif(sum(native_ms), 0))::numeric, 3)) AS s
      FROM bench_added GROUP BY mode) m),
  'pilotd', (SELECT json_build_object('roundtrip_us', json_build_object('p50', latency_p50_us, 'p90', latency_p90_us, 'p99', latency_p99_us),
                                      'requests', requests, 'relation_sets', items, 'answered', answered,
                                      'not_asked', not_asked, 'keys_computed', keys_computed,
                                      'sets_sized', answered + fallback_timeout + fallback_daemon_down + fallback_version_mismatch
                                                    + fallback_unknown + fallback_invalid + fallback_unkeyable + fallback_no_slot
                                                    + fallback_busy + fallback_error,
                                      -- two modes, each planning every query twice per rep
                                      'pilot_plannings', 4 * current_setting('bench.reps')::int * (SELECT count(*) FROM bench_queries),
                                      'added_total_ms', (SELECT round(sum(added_ms)::numeric * current_setting('bench.reps')::int * 2, 1) FROM bench_added),
                                      'fallback', json_build_object('timeouts', fallback_timeout, 'daemon_down', fallback_daemon_down,
                                                                    'unknown', fallback_unknown, 'unkeyable', fallback_unkeyable))
             FROM pg_pilot.stats));
