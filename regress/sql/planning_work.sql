-- planning_work: pg_pilot's work in a planning does not grow with the sets
-- the planner builds.  pilotd publishes which table sets it may answer (the
-- known-sets filter); a set of other tables is neither keyed nor asked, and
-- only the chosen plan's sets are keyed, once each, for execution feedback.
-- A 17-table join goes through GEQO, which revisits sets.
DO $$
BEGIN
  FOR i IN 1..17 LOOP
    EXECUTE format('CREATE TABLE pw%s (id int, next_id int)', i);
    EXECUTE format('INSERT INTO pw%s SELECT g, g FROM generate_series(1, 20) g', i);
    EXECUTE format('ANALYZE pw%s', i);
  END LOOP;
END $$;
CREATE FUNCTION pw_query(n int) RETURNS text LANGUAGE sql AS $$
  SELECT 'SELECT count(*) FROM ' || string_agg(format('pw%s', i), ', ' ORDER BY i) ||
         ' WHERE ' || string_agg(format('pw%s.next_id = pw%s.id', i, i + 1), ' AND ' ORDER BY i)
           FILTER (WHERE i < n)
  FROM generate_series(1, n) i
$$;
CREATE FUNCTION pw_explain(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP RETURN NEXT line; END LOOP;
END $$;
SHOW geqo_threshold;

-- nothing known of these tables: 17 base relations and the 136 connected
-- join sets are not asked; the chosen plan's 33 sets (17 scans, 16 joins)
-- are keyed once each, for their feedback
CREATE TABLE pw_texts_before AS SELECT key_texts FROM pg_pilot.pilotd;
SELECT pg_pilot.reset_stats();
SELECT count(*) AS plan_lines FROM pw_explain(pw_query(17));
SELECT not_asked, keys_computed, items = keys_computed AS key_texts_sent_once FROM pg_pilot.stats;
-- planned again: no key computed (the backend's memo of keys knows the
-- statement's sets), no text sent (pilotd has them)
SELECT pg_pilot.reset_stats();
SELECT count(*) AS plan_lines FROM pw_explain(pw_query(17));
SELECT not_asked, keys_computed, requests, items FROM pg_pilot.stats;

-- a new connection plans it: its keys are computed (a new backend's memo is
-- empty), but no text is sent: pilotd published that it holds them, once
-- its catalog writer wrote them (batched, ~200 ms: waited for)
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN (SELECT key_texts FROM pg_pilot.pilotd) >= (SELECT key_texts + 33 FROM pw_texts_before);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT d.key_texts - b.key_texts >= 33 AS plan_texts_published FROM pg_pilot.pilotd d, pw_texts_before b;
DROP TABLE pw_texts_before;
\c
SELECT pg_pilot.reset_stats();
SELECT count(*) AS plan_lines FROM pw_explain(pw_query(17));
SELECT not_asked, keys_computed, requests, items FROM pg_pilot.stats;

-- executed: pilotd learns the executed sets' counts and their table sets;
-- planning it again asks for exactly those sets (each keyed once) and gets
-- the observed counts back
SET pg_pilot.estimator = 'memo';
SELECT count(*) FROM pw1, pw2, pw3 WHERE pw1.next_id = pw2.id AND pw2.next_id = pw3.id;
SELECT pg_pilot.reset_stats();
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    PERFORM pg_pilot.reset_stats();
    EXECUTE 'EXPLAIN SELECT count(*) FROM pw1, pw2, pw3 WHERE pw1.next_id = pw2.id AND pw2.next_id = pw3.id';
    EXIT WHEN (SELECT answered FROM pg_pilot.stats) = 5;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT items, answered, not_asked, keys_computed - items <= 1 AS at_most_a_new_plan_set_keyed_after
FROM pg_pilot.stats;
SELECT relations, source FROM pg_pilot.explain_estimates(
  'SELECT count(*) FROM pw1, pw2, pw3 WHERE pw1.next_id = pw2.id AND pw2.next_id = pw3.id') ORDER BY 1;

-- estimator native: nothing is asked, whatever pilotd knows
SET pg_pilot.estimator = 'native';
SELECT pg_pilot.reset_stats();
SELECT count(*) AS plan_lines FROM pw_explain('SELECT count(*) FROM pw1, pw2, pw3 WHERE pw1.next_id = pw2.id AND pw2.next_id = pw3.id');
SELECT not_asked, keys_computed, requests FROM pg_pilot.stats;
RESET pg_pilot.estimator;

-- the same results with and without pg_pilot
DO $$
DECLARE with_pilot bigint; without_pilot bigint;
BEGIN
  EXECUTE pw_query(17) INTO with_pilot;
  SET LOCAL pg_pilot.enabled = off;
  EXECUTE pw_query(17) INTO without_pilot;
  RAISE NOTICE 'rows with pg_pilot % without %', with_pilot, without_pilot;
END $$;
DROP FUNCTION pw_explain(text);
DROP FUNCTION pw_query(int);
DO $$
BEGIN
  FOR i IN 1..17 LOOP
    EXECUTE format('DROP TABLE pw%s', i);
  END LOOP;
END $$;
