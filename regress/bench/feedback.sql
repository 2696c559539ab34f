-- feedback.sql — execution time with feedback collection (sample rate 1.0) vs
-- without, same queries, same plans (estimator 'native' in both modes: pilotd
-- answers nothing, so the memo cannot change a plan), interleaved per query
-- and repeated (:reps).  Input: temp table bench_queries(n int, q text).
CREATE OR REPLACE FUNCTION pg_temp.exec_ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE q;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SET pg_pilot.estimator = 'native';
SET pg_pilot.feedback_sample_rate = 1.0;
CREATE TEMP TABLE fb_t (n int, mode text, rep int, ms float8);
DO $$
DECLARE r record;
BEGIN
  FOR rep IN 1..current_setting('bench.reps')::int LOOP
    FOR r IN SELECT * FROM bench_queries ORDER BY n LOOP
      IF (r.n + rep) % 2 = 0 THEN   -- alternate which mode goes first
        SET pg_pilot.collect_feedback = off;
        INSERT INTO fb_t SELECT r.n, 'off', rep, pg_temp.exec_ms(r.q);
        SET pg_pilot.collect_feedback = on;
        INSERT INTO fb_t SELECT r.n, 'on', rep, pg_temp.exec_ms(r.q);
      ELSE
        SET pg_pilot.collect_feedback = on;
        INSERT INTO fb_t SELECT r.n, 'on', rep, pg_temp.exec_ms(r.q);
        SET pg_pilot.collect_feedback = off;
        INSERT INTO fb_t SELECT r.n, 'off', rep, pg_temp.exec_ms(r.q);
      END IF;
    END LOOP;
  END LOOP;
END $$;
-- medians per query and mode, then totals
WITH m AS (SELECT n, mode, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms FROM fb_t GROUP BY n, mode)
SELECT json_build_object(
  'workload', :'label',
  'queries', (SELECT count(*) FROM bench_queries),
  'reps', current_setting('bench.reps')::int,
  'off_total_ms', round((SELECT sum(ms) FROM m WHERE mode = 'off')::numeric, 1),
  'on_total_ms', round((SELECT sum(ms) FROM m WHERE mode = 'on')::numeric, 1),
  'overhead_ratio', round(((SELECT sum(ms) FROM m WHERE mode = 'on') / (SELECT sum(ms) FROM m WHERE mode = 'off'))::numeric, 4),
  'feedback_sent', (SELECT feedback_sent FROM pg_pilot.stats),
  'feedback_dropped', (SELECT feedback_dropped FROM pg_pilot.stats));
