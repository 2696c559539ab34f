#!/usr/bin/env bash
# The index advisor end to end (real PostgreSQL, pilotd, HypoPG, pg_stat_statements):
#   1. a schema with a missing index (orders.customer_id) and one that exists
#      (customer.region, also duplicated); a workload run with feedback on;
#   2. pg_pilot.run_index_advisor() (a job in pilotd --advisor-dsn) recommends
#      orders(customer_id) with a positive benefit, nothing on customer(region),
#      skips (and counts) a query it cannot plan, reports the duplicate index;
#   3. CALL apply_index_recommendation() creates it concurrently and the affected
#      queries' plans use it; verify_index_recommendations() finds it helped
#      from the measured execution times;
#   4. a DBA's mistakes get clear errors; a pilotd without an advisor refuses;
#   5. `pilotd advise` on a workload file with a broken query: skipped, counted.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"
DB=advisor_db
export PGDATABASE=$DB
pp_psql -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
pp_psql >/dev/null <<'SQL' || { not_ok "advisor schema"; exit 1; }
CREATE EXTENSION pg_pilot;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE customer (id int PRIMARY KEY, region int NOT NULL, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status int NOT NULL, amount numeric NOT NULL);
INSERT INTO customer SELECT g, g % 50, 'customer ' || g FROM generate_series(1, 20000) g;
INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) % 20000, g % 5, (g % 1000) / 10.0 FROM generate_series(1, 400000) g;
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Order Lines" ("Line Id" int PRIMARY KEY, "Order's Id" int NOT NULL, qty int NOT NULL);
INSERT INTO "Sales"."Order Lines" SELECT g, g / 4, g % 7 FROM generate_series(1, 200000) g;
CREATE INDEX customer_region_idx ON customer (region);
CREATE INDEX customer_region_dup_idx ON customer (region);
ANALYZE;
-- the load is not the workload: index write costs count changes from here on
-- (the load's counts are flushed first, else they arrive after the reset)
SELECT pg_stat_force_next_flush();
SELECT pg_stat_reset();
SQL

# the workload: each query several times with different constants (one
# pg_stat_statements entry each), feedback on so pg_pilot.query_log has times
run_workload() { # ROUNDS
  local i sql=""
  for i in $(seq 1 "$1"); do
    sql+="SELECT count(*), sum(amount) FROM orders WHERE customer_id = $((i * 13 + 1));
SELECT c.name, o.amount FROM customer c JOIN orders o ON o.customer_id = c.id WHERE c.id = $((i * 17 + 3));
SELECT count(*) FROM customer WHERE region = $((i % 50));
SELECT count(*) FROM scratch WHERE x = $i;
SELECT sum(qty) FROM \"Sales\".\"Order Lines\" WHERE \"Order's Id\" = $((i * 101));
"
  done
  pp_psql -c "SET pg_pilot.collect_feedback = on" -c "SET pg_pilot.feedback_sample_rate = 1" \
    -c "CREATE TEMP TABLE scratch AS SELECT g AS x FROM generate_series(1, 100) g" -c "$sql" >/dev/null
}
pp_psql -c "SELECT pg_stat_statements_reset()" >/dev/null
run_workload 6

# pilotd with the advisor, logging in as the README says: a member of
# pilot_advisor and pg_read_all_stats that owns the tables and may create in
# their schemas (not a superuser);
# HypoPG installed by the DBA
pp_psql -d postgres -c "DROP ROLE IF EXISTS advisor_login" -c "CREATE ROLE advisor_login LOGIN IN ROLE pilot_advisor, pg_read_all_stats" >/dev/null
pp_psql -c "CREATE EXTENSION hypopg" -c "GRANT CREATE ON SCHEMA public TO advisor_login" -c "ALTER TABLE orders OWNER TO advisor_login" -c "ALTER TABLE customer OWNER TO advisor_login" \
  -c "ALTER SCHEMA \"Sales\" OWNER TO advisor_login" -c "ALTER TABLE \"Sales\".\"Order Lines\" OWNER TO advisor_login" >/dev/null
ADVISOR_DSN="host=$PGHOST port=$PGPORT user=advisor_login dbname=$DB password=s3cret-advisor"  # trust: not checked
pp_pilotd_stop
pp_pilotd_start --advisor-dsn "$ADVISOR_DSN" >/dev/null || not_ok "pilotd with --advisor-dsn starts"

recs=$(q "SELECT table_name || '(' || array_to_string(columns, ',') || ')' FROM pg_pilot.run_index_advisor(budget_mb => 100, max_indexes => 3)" 2>&1)
rc=$?
echo "# recommendations: $(echo "$recs" | tr '\n' ' ')"
check "run_index_advisor() succeeds with recommendations" [ "$rc" = 0 -a -n "$recs" ]
check "the advisor recommends the missing index orders(customer_id)" grep -qx "orders(customer_id)" <<<"$recs"
check "no recommendation on customer(region), which has an index" [ "$(grep -c '^customer(region' <<<"$recs")" = 0 ]
check "a quoted schema, table and column: \"Sales\".\"Order Lines\"(\"Order's Id\")" grep -qx "Order Lines(Order's Id)" <<<"$recs"
check "its statement quotes every name" \
  [ "$(q "SELECT statement FROM pg_pilot.index_recommendations WHERE table_name = 'Order Lines'")" = "CREATE INDEX CONCURRENTLY \"pilot_order_lines_order_s_id_idx\" ON \"Sales\".\"Order Lines\" (\"Order's Id\")" ]
rec=$(q "SELECT id FROM pg_pilot.index_recommendations WHERE table_name = 'orders' AND columns = '{customer_id}' AND status = 'proposed'")
check "its benefit is positive and its statement creates it concurrently" \
  [ "$(q "SELECT benefit_ms > 0 AND statement LIKE 'CREATE INDEX CONCURRENTLY % ON \"public\".\"orders\" (\"customer_id\")' AND size_bytes > 0 FROM pg_pilot.index_recommendations WHERE id = ${rec:-0}")" = t ]
check "its top queries' costs drop" \
  [ "$(q "SELECT bool_and((x->>'cost_after')::float8 < (x->>'cost_before')::float8) AND count(*) >= 1 FROM pg_pilot.index_recommendations r, jsonb_array_elements(r.queries) x WHERE r.id = ${rec:-0}")" = t ]
msg=$(q "SELECT message FROM pg_pilot.advisor_run WHERE action = 'advise' ORDER BY id DESC LIMIT 1")
echo "# advisor run: $msg"
skipped=$(grep -oE '[0-9]+ skipped' <<<"$msg" | grep -oE '[0-9]+')
check "a query it cannot plan (another session's temp table) is skipped and counted" [ "${skipped:-0}" -ge 1 ]
check "... and named in pilotd's log" grep -q 'skipped cannot be prepared (relation "scratch" does not exist' "$PP_DIR/pilotd.log"
check "the run was costed with pg_pilot's estimates" grep -q "(learned cardinalities)" <<<"$msg"
check "the duplicate index is reported" \
  [ "$(q "SELECT count(*) FROM pg_pilot.redundant_indexes WHERE kind = 'duplicate' AND index_name IN ('customer_region_idx', 'customer_region_dup_idx')")" = 1 ]

plan_q1="EXPLAIN (COSTS OFF) SELECT count(*), sum(amount) FROM orders WHERE customer_id = 4242"
check "before: the query scans orders sequentially" grep -q "Seq Scan on orders" <<<"$(q "$plan_q1")"
err=$(pp_psql -At -c "BEGIN" -c "CALL pg_pilot.apply_index_recommendation($rec, 120)" 2>&1)
check "CALL inside a transaction block: an error, and nothing queued" \
  [ "$(grep -c 'invalid transaction termination' <<<"$err")" = 1 -a "$(q "SELECT count(*) FROM pg_pilot.advisor_run WHERE action = 'apply'")" = 0 ]
applied=$(q "CALL pg_pilot.apply_index_recommendation($rec, 120)" 2>&1)
echo "# apply: $applied"
check "apply creates the index" [ "$(q "SELECT count(*) FROM pg_indexes WHERE tablename = 'orders' AND indexdef LIKE '%(customer_id)'")" = 1 ]
check "apply reports the affected queries planning with it" grep -qE "; [1-9][0-9]* of [0-9]+ affected queries plan with it" <<<"$applied"
check "after: the query uses the new index" grep -q "Index.* on pilot_orders_customer_id_idx\|Index.* using pilot_orders_customer_id_idx" <<<"$(q "$plan_q1")"
check "the recommendation is marked applied" [ "$(q "SELECT status FROM pg_pilot.index_recommendations WHERE id = $rec")" = applied ]

# verification from feedback: the same queries again, now with the index;
# verify once the store has 3 runs of the query after the index was built
run_workload 6
qid=$(q "SELECT (x->>'queryid')::bigint FROM pg_pilot.index_recommendations r, jsonb_array_elements(r.queries) x WHERE r.id = $rec AND x->>'query' LIKE 'SELECT count(*), sum(amount)%'")
applied_at=$(q "SELECT applied_at FROM pg_pilot.index_recommendations WHERE id = $rec")
logged_after_index() {
  [ "$(pp_store_psql -At -c "SELECT count(*) FROM pg_pilot.query_log WHERE query_id = ${qid:-0} AND logged_at >= '$applied_at'")" -ge 3 ] 2>/dev/null
}
wait_until 120 logged_after_index
status=$(q "SELECT status FROM pg_pilot.verify_index_recommendations() WHERE id = $rec" 2>&1)
echo "# verify: $(q "SELECT status, round(time_before_ms::numeric, 3), round(time_after_ms::numeric, 3), note FROM pg_pilot.index_recommendations WHERE id = $rec")"
check "verify: measured executions show the index helped" [ "$status" = helped ]

# a recommendation whose index name is taken by now: refused, the existing index kept
fake=$(q "INSERT INTO pg_pilot.index_advice (run_id, kind, schema_name, table_name, columns, index_name, statement, learned, reason)
          VALUES (1, 'create', 'public', 'customer', '{name}', 'customer_region_idx', 'x', true, 'test') RETURNING id")
err=$(q "CALL pg_pilot.apply_index_recommendation($fake, 60)" 2>&1)
check "apply under a name taken meanwhile: refused" grep -q "exists already" <<<"$err"
check "... and the existing index is still there" [ "$(q "SELECT count(*) FROM pg_indexes WHERE indexname = 'customer_region_idx'")" = 1 ]
q "DELETE FROM pg_pilot.index_advice WHERE id = $fake" >/dev/null

# a DBA's mistakes: clear errors
err=$(q "CALL pg_pilot.apply_index_recommendation(999999)" 2>&1)
check "apply of an unknown id: a clear error" grep -q "no index recommendation 999999" <<<"$err"
err=$(q "CALL pg_pilot.apply_index_recommendation($rec)" 2>&1)
check "apply twice: a clear error" grep -qE "is already (applied|helped)" <<<"$err"
err=$(q "SELECT * FROM pg_pilot.run_index_advisor(budget_mb => -1)" 2>&1)
check "a negative budget: a clear error" grep -q "budget_mb must be positive" <<<"$err"
check "the advisor functions are not for PUBLIC" \
  [ "$(q "SELECT has_function_privilege('public', 'pg_pilot.run_index_advisor(float8, integer, integer)', 'EXECUTE')")" = f ]

# the schedule: --advisor-every-s runs verify, then advise, on the DSN's database
runs_before=$(q "SELECT count(*) FROM pg_pilot.advisor_run WHERE action = 'advise' AND state = 'done'")
pp_pilotd_stop
pp_pilotd_start --advisor-dsn "$ADVISOR_DSN" --advisor-every-s 2 >/dev/null
advised_again() { [ "$(q "SELECT count(*) FROM pg_pilot.advisor_run WHERE action = 'advise' AND state = 'done'")" -gt "$runs_before" ] 2>/dev/null; }
check "--advisor-every-s: pilotd advises by itself" wait_until 60 advised_again
check "--advisor-every-s: and verifies first" [ "$(q "SELECT count(*) FROM pg_pilot.advisor_run WHERE action = 'verify'")" -ge 2 ]
check "the advisor DSN's password is not logged" [ "$(grep -c 's3cret-advisor' "$PP_DIR/pilotd.log")" = 0 ]

# without --advisor-dsn: refused with a hint, and no harm done
pp_pilotd_stop
pp_pilotd_start >/dev/null
err=$(q "SELECT * FROM pg_pilot.run_index_advisor()" 2>&1)
check "a pilotd without the advisor refuses the job with a hint" grep -q "refused the index advisor job" <<<"$err"
check "queries still run" [ "$(q "SELECT count(*) FROM orders WHERE customer_id = 4242")" -ge 1 ]

# the command line on a workload file with a query it cannot cost
cat >"$PP_DIR/advisor_workload.txt" <<'W'
SELECT count(*) FROM orders WHERE status = 3 AND amount > 99.5
SELECT count(*) FROM orders WHERE status = 3 AND amount > 99.5
SELECT count(*) FROM no_such_table
UPDATE orders SET amount = 0 WHERE id = -1
W
out=$("$PILOTD" advise --dsn "dbname=$DB host=$PGHOST port=$PGPORT" --workload "$PP_DIR/advisor_workload.txt" --no-store 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
check "pilotd advise: exit 0 with a broken query in the workload" [ "$rc" = 0 ]
check "pilotd advise: the broken query and the UPDATE are skipped and counted" grep -q ", 2 skipped" <<<"$out"
check "pilotd advise: one costed query" grep -q "; 1 queries costed" <<<"$out"
check "pilotd advise --help" bash -c "'$PILOTD' advise --help | grep -q 'usage: pilotd advise'"
"$PILOTD" advise --dsn "dbname=$DB" --budget-mb -3 >/dev/null 2>&1
check "pilotd advise: a bad value is a usage error (exit 2)" [ $? = 2 ]

check_no_crash "index advisor"
pp_psql -d postgres -c "DROP DATABASE $DB" -c "DROP ROLE advisor_login" >/dev/null
finish
