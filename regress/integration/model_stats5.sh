#!/usr/bin/env bash
# The learned model end to end on real data (STATS, Stack Exchange):
#   1. `pilotd collect` runs the first 500 queries of train.txt with feedback on;
#   2. `pilotd train` trains version 1 from the feedback store; the running
#      pilotd validates it and serves it (pg_pilot.models);
#   3. on the 159 held-out queries (never run), the learned estimates of the
#      whole queries are no worse than PostgreSQL's (geometric mean q-error
#      against the true counts in train.txt, within 5 %), and explain shows
#      the source "model";
#      and a relation no sampled row satisfies (and its join) is not
#      estimated below PostgreSQL's estimate (the zero-hit floor);
#   4. bound to its database: a copy of the database gets no model estimates;
#   5. a damaged model file is rejected with a log line, version 1 keeps serving;
#   6. hot swaps (a second training, pin / unpin) under 4 sessions planning the
#      held-out queries: zero failed queries;
#   7. the pinned version survives kill -9 and a restart of pilotd;
#   8. pilotd --model-dsn --train-every N trains a version by itself once N new
#      feedback records arrived, in a background thread, while serving;
#   9. bound to the statistics it learned: after a table shrinks 20 times,
#      pilotd rejects the versions when it loads them, and PostgreSQL plans.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"
DATA="${PP_SHARED:-}/data/stats5"
if [ ! -f "$DATA/train.txt" ]; then echo "ok - skipped: no shared/data/stats5 (# SKIP)"; exit 0; fi
DB=stats5_model
OTHER=stats5_model_copy
export PGDATABASE=$DB
pp_psql -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP DATABASE IF EXISTS $OTHER" -c "CREATE DATABASE $DB" >/dev/null
(cd "$DATA" && pp_psql -f load.sql >/dev/null) || { not_ok "load stats5"; exit 1; }
pp_psql -c "CREATE EXTENSION pg_pilot" -c "ANALYZE" >/dev/null

head -n 500 "$DATA/train.txt" >"$PP_DIR/model_train.txt"
tail -n +501 "$DATA/train.txt" >"$PP_DIR/model_test.txt"
MODEL_DSN="dbname=$DB host=$PGHOST port=$PGPORT"
STATE="$PP_DIR/state"
models() { mon "SELECT $1 FROM pg_pilot.models $2"; }
# wait_model VERSION STATE [SECONDS]: until pg_pilot.models shows it (at most
# 60 s by default: pilotd looks at its models directory every 2 s)
model_in() { [ "$(models "state" "WHERE version = $1")" = "$2" ]; }
wait_model() { wait_until "${3:-60}" model_in "$1" "$2"; }
# train LOG: one version, the number printed.  As a DBA runs it beside the
# service: the DSNs name no host or port and neither does the environment;
# -D names the server (its postmaster.pid), for both connections and for the
# service's check of the version's database
train() {
  env -u PGHOST -u PGPORT -u PGDATABASE "$PILOTD" train -D "$PGDATA" --state-dir "$STATE" \
    --store-dsn "$PP_STORE_DSN" --model-dsn "dbname=$DB" --train-seconds 120 --train-epochs 60 >"$PP_DIR/$1" 2>&1
  local rc=$?
  sed 's/^/# /' "$PP_DIR/$1" >&2
  [ $rc -eq 0 ] && grep -o 'version [0-9]* written' "$PP_DIR/$1" | grep -o '[0-9]*'
}

# 1 ------------------------------------------------------------------------
"$PILOTD" collect --workload "$PP_DIR/model_train.txt" --dsn "$MODEL_DSN" --timeout-ms 30000 >"$PP_DIR/collect.log" 2>&1
rc=$?
tail -1 "$PP_DIR/collect.log" | sed 's/^/# /'
check "pilotd collect ran the 500 training queries" [ $rc -eq 0 ]
check "the feedback store drained" store_wait_drained 60
echo "# feedback rows: $(feedback_rows), key catalog: $(wc -c <"$STATE/keys.catalog") bytes"

# 1b -----------------------------------------------------------------------
# collect --subplans: every sub-plan of a training query is counted with the
# query models/key_sql.cpp writes from its key text; that query has the same
# subplan key, so afterwards the memo knows every describable set of it, and
# the whole query's count is train.txt's label
grep -m1 -E 'FROM [^,]+,[^,]+,' "$PP_DIR/model_train.txt" >"$PP_DIR/model_sub.txt"
label=$(cut -d'|' -f1 "$PP_DIR/model_sub.txt"); qs=$(cut -d'|' -f3- "$PP_DIR/model_sub.txt")
"$PILOTD" collect --workload "$PP_DIR/model_sub.txt" --dsn "$MODEL_DSN" --timeout-ms 30000 --subplans \
  >"$PP_DIR/collect_sub.log" 2>&1
rc=$?
sed 's/^/# /' "$PP_DIR/collect_sub.log" | tail -2
counted=$(grep -oE 'sub-plans: [0-9]+ counted' "$PP_DIR/collect_sub.log" | grep -oE '[0-9]+')
undescribed=$(grep -oE '[0-9]+ not describable' "$PP_DIR/collect_sub.log" | grep -oE '[0-9]+')
check "collect --subplans counted the sub-plans of a 3+ table query, none failed ($counted)" \
  eval '[ $rc -eq 0 ] && [ "${counted:-0}" -ge 3 ] && grep -qE "0 timed out, 0 failed" "$PP_DIR/collect_sub.log"'
store_wait_drained 60 >/dev/null
memo=$(pp_psql -At -c "SET pg_pilot.estimator = 'memo'" -c "SELECT count(*) FILTER (WHERE source = 'memo') || ' ' ||
  count(*) FILTER (WHERE source <> 'memo' AND key IS NOT NULL) || ' ' ||
  max(used_rows) FILTER (WHERE nrels = (SELECT max(nrels) FROM pg_pilot.explain_estimates(\$q\$$qs\$q\$)))
  FROM pg_pilot.explain_estimates(\$q\$$qs\$q\$)")
read -r memo_sets unknown_sets whole_rows <<<"$memo"
echo "# memo answers $memo_sets sets, $unknown_sets keyed sets unknown ($undescribed not describable), whole query $whole_rows rows, label $label"
check "afterwards the memo answers every describable sub-plan" [ "$unknown_sets" = "${undescribed:-x}" ]
check "and the whole query's count is its label" [ "${whole_rows%.*}" = "$label" ]

# 2 ------------------------------------------------------------------------
v1=$(train train1.log)
check "pilotd train wrote version 1" [ "$v1" = 1 ]
check "version 1 serves (validated against PostgreSQL on held-out feedback)" wait_model 1 serving
mon "SELECT version, state, train_records, validation_records, model_qerror_p50, model_qerror_p90, native_qerror_p50,
            native_qerror_p90, size_bytes, note FROM pg_pilot.models" | sed 's/^/# models: /'

# 3 ------------------------------------------------------------------------
cmp=$(pp_psql -At -v ON_ERROR_STOP=1 -f "$PP_REGRESS/lib/workload_check.sql" -c "
SET pg_pilot.collect_feedback = off;
CREATE TEMP TABLE w AS
  SELECT n, greatest(split_part(l, '||', 1)::float8, 1) AS true_rows, split_part(l, '||', 2) AS q
  FROM regexp_split_to_table(pg_read_file('$PP_DIR/model_test.txt'), E'\n') WITH ORDINALITY t(l, n)
  WHERE l LIKE '%||%';
SET pg_pilot.estimator = 'native';
ALTER TABLE w ADD native float8; UPDATE w SET native = pg_temp.top_rows(q);
SET pg_pilot.estimator = 'learned';
ALTER TABLE w ADD learned float8; UPDATE w SET learned = pg_temp.top_rows(q);
SELECT count(*),
       round(exp(avg(ln(greatest(native / true_rows, true_rows / native))))::numeric, 2),
       round(exp(avg(ln(greatest(learned / true_rows, true_rows / learned))))::numeric, 2),
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY greatest(native / true_rows, true_rows / native))::numeric, 1),
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY greatest(learned / true_rows, true_rows / learned))::numeric, 1)
FROM w;")
IFS='|' read -r nq gm_native gm_learned p90_native p90_learned <<<"$cmp"
echo "# held-out whole queries: $nq; geometric mean q-error native $gm_native, learned $gm_learned; p90 native $p90_native, learned $p90_learned"
check "159 held-out queries planned" [ "$nq" = 159 ]
# the served model must not make whole queries worse than PostgreSQL's
# estimates; by how much it makes them better varies from training to
# training (the feedback collected differs by a few records: 3.06 to 3.35
# against 3.32 in five runs) and is make bench's claim, not this test's
check "learned no worse than PostgreSQL on held-out queries (geometric mean q-error within 5 %)" \
  awk -v a="$gm_learned" -v b="$gm_native" 'BEGIN { exit !(a <= 1.05 * b) }'
q1=$(sed -n 1p "$PP_DIR/model_test.txt" | cut -d'|' -f3-)
src=$(pp_psql -At -c "SET pg_pilot.estimator = 'learned'" -c "SELECT string_agg(DISTINCT split_part(source, ' ', 1), ',') FROM pg_pilot.explain_estimates(\$q\$$q1\$q\$)")
echo "# sources of a held-out query under estimator learned: $src"
check "explain_estimates shows the source 'model'" grep -q model <<<"$src"
src=$(pp_psql -At -c "SET pg_pilot.estimator = 'auto'" -c "SELECT string_agg(DISTINCT split_part(source, ' ', 1), ',') FROM pg_pilot.explain_estimates(\$q\$$q1\$q\$)")
check "the auto chain reaches the model after oracle and memo ($src)" grep -q model <<<"$src"

# 3b -----------------------------------------------------------------------
# The zero-hit floor (models/answer_rule.h): posts that no sampled row can
# satisfy (added after training, so the version's sample holds none of them)
# are never estimated below PostgreSQL's estimate, nor are the joins built on
# them.  In a transaction that is rolled back.
zero=$(pp_psql -At -v ON_ERROR_STOP=1 -c "
BEGIN;
SET LOCAL pg_pilot.collect_feedback = off;
CREATE TEMP TABLE extra ON COMMIT DROP AS SELECT * FROM posts ORDER BY id LIMIT 400;
UPDATE extra SET id = id + 100000000, score = 7777;
INSERT INTO posts SELECT * FROM extra;
SET LOCAL pg_pilot.estimator = 'learned';
SELECT nrels || ' ' || round(native_rows) || ' ' || coalesce(round(pilot_rows)::text, '-') || ' ' ||
       round(used_rows) || ' ' || split_part(source, ' ', 1)
FROM pg_pilot.explain_estimates(\$q\$SELECT count(*) FROM badges b, posts p WHERE b.userid = p.owneruserid AND p.score = 7777\$q\$)
WHERE relations LIKE '%p%' ORDER BY nrels;
ROLLBACK;")
echo "$zero" | sed 's/^/# zero sample hits (nrels native pilot used source): /'
check "explain_estimates sized the zero-hit relation and its join" [ "$(wc -l <<<"$zero")" = 2 ]
check "a relation and a join no sampled row satisfies are not estimated below PostgreSQL" \
  awk '{ if ($4 + 0.5 < $2) bad = 1 } END { exit bad || NR != 2 }' <<<"$zero"

# 4 ------------------------------------------------------------------------
pp_psql -d postgres -c "CREATE DATABASE $OTHER TEMPLATE $DB" >/dev/null
src=$(pp_psql -d "$OTHER" -At -c "SET pg_pilot.estimator = 'learned'" -c "SELECT string_agg(DISTINCT split_part(source, ' ', 1), ',') FROM pg_pilot.explain_estimates(\$q\$$q1\$q\$)")
echo "# the same query in database $OTHER (same tables, same data): sources $src"
check "a model is not served for another database (native there)" [ "$src" = native ]

# 5 ------------------------------------------------------------------------
python3 - "$STATE/models/1.model" "$STATE/models/2.model" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[len(b) // 2] ^= 0x40
open(sys.argv[2], 'wb').write(b)
EOF
check "a damaged model file is rejected" wait_model 2 rejected
echo "# version 2: $(models note 'WHERE version = 2')"
check "the rejection says why (checksum)" grep -q checksum <<<"$(models note 'WHERE version = 2')"
check "pilotd logged the rejection" grep -q "version 2 rejected: checksum" "$PP_DIR/pilotd.log"
check "version 1 keeps serving" [ "$(models state 'WHERE version = 1')" = serving ]

# 6 ------------------------------------------------------------------------
cut -d'|' -f3- "$PP_DIR/model_test.txt" | sed 's/^/EXPLAIN /' >"$PP_DIR/model_explain.sql"
# planning the held-out queries with the learned model, round after round,
# until the swaps are over ($PP_DIR/swap.stop; at most 10 minutes)
rm -f "$PP_DIR/swap.stop"
stream() {
  local end=$((SECONDS + 600)) runs=0
  while [ ! -e "$PP_DIR/swap.stop" ] && [ $SECONDS -lt $end ]; do
    pp_psql -q -v ON_ERROR_STOP=1 -c "SET pg_pilot.estimator = 'learned'" -f "$PP_DIR/model_explain.sql" >/dev/null || return 1
    runs=$((runs + 159))
  done
  echo "runs=$runs"
}
pids=()
for i in 1 2 3 4; do stream >"$PP_DIR/swap$i.out" 2>&1 & pids+=($!); done
v3=$(train train3.log)
check "a second training during the stream wrote version 3" [ "$v3" = 3 ]
# pilotd finds it (it looks every 2 s) and judges it: it serves, waits
# validated, or is rejected as not better (which may still be pinned)
judged() { [ -n "$(models state "WHERE version = $1 AND state IN ('serving', 'validated', 'retired', 'rejected')")" ]; }
wait_until 60 judged 3
echo "# version 3: $(models "state || ': ' || note" 'WHERE version = 3')"
swaps=0
for i in 1 2 3; do
  pp_psql -c "SELECT pg_pilot.pin_model(3)" >/dev/null && swaps=$((swaps + 1)); sleep 0.5
  pp_psql -c "SELECT pg_pilot.pin_model(1)" >/dev/null && swaps=$((swaps + 1)); sleep 0.5
done
touch "$PP_DIR/swap.stop"
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
runs=$(cat "$PP_DIR"/swap*.out | grep -o 'runs=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
echo "# $swaps pinned swaps during the stream; $runs queries planned by 4 sessions"
check "zero failed queries across the hot swaps" [ "$failed" = 0 ]
check "queries were planned during the swaps" [ "$runs" -gt 0 ]
check "every pin was accepted" [ "$swaps" = 6 ]
check "version 1 is pinned and serving" [ "$(models "state || ' ' || pinned" 'WHERE version = 1')" = "serving true" ]
err=$(pp_psql -c "SELECT pg_pilot.pin_model(2)" 2>&1)
check "a damaged version cannot be pinned" grep -q "cannot pin model version 2" <<<"$err"

# 7 ------------------------------------------------------------------------
pp_pilotd_kill9; pp_pilotd_start
check "after kill -9 and restart, pinned version 1 serves again" wait_model 1 serving
pp_psql -c "SELECT pg_pilot.unpin_model()" >/dev/null
check "after unpin, a version serves ($(models "version || ' ' || state" "WHERE state = 'serving'"))" \
  [ -n "$(models version "WHERE state = 'serving'")" ]

# 8 ------------------------------------------------------------------------
pp_pilotd_stop
pp_pilotd_start --model-dsn "$MODEL_DSN" --train-every 300 --train-epochs 10
head -n 100 "$PP_DIR/model_train.txt" >"$PP_DIR/model_more.txt"
"$PILOTD" collect --workload "$PP_DIR/model_more.txt" --dsn "$MODEL_DSN" >/dev/null 2>&1
background_decided() { [ -n "$(models version "WHERE version > 3 AND state IN ('serving', 'rejected', 'validated')")" ]; }
wait_until 180 background_decided
decided=$(models "version || ' ' || state" "WHERE version > 3 AND state IN ('serving', 'rejected', 'validated')")
grep "models: " "$PP_DIR/pilotd.log" | grep -E "trained after|training model version [4-9]" | sed 's/^/# /'
check "the background trainer made a version after 300 new records ($decided)" [ -n "$decided" ]
src=$(pp_psql -At -c "SET pg_pilot.estimator = 'learned'" -c "SELECT string_agg(DISTINCT split_part(source, ' ', 1), ',') FROM pg_pilot.explain_estimates(\$q\$$q1\$q\$)")
check "a model still serves after background training ($src)" grep -q model <<<"$src"
pp_pilotd_stop
pp_pilotd_start

# 9 ------------------------------------------------------------------------
pp_psql -c "DELETE FROM badges WHERE id % 20 <> 0" -c "ANALYZE badges" >/dev/null
pp_pilotd_stop; pp_pilotd_start
# pilotd checks every version's database when it loads them and publishes the
# model table just after its segment is up: waited for, until version 1 is
# rejected and none serves (the note then says why)
rejected_at_load() {
  [ "$(models state "WHERE version = 1")" = rejected ] && [ -z "$(models version "WHERE state = 'serving'")" ]
}
wait_until 60 rejected_at_load
note=$(models note "WHERE version = 1")
echo "# version 1 after badges shrank: $(models state 'WHERE version = 1'): $note"
check "a version whose tables changed size is rejected at load" grep -q "statistics of database $DB changed" <<<"$note"
src=$(pp_psql -At -c "SET pg_pilot.estimator = 'learned'" -c "SELECT string_agg(DISTINCT split_part(source, ' ', 1), ',') FROM pg_pilot.explain_estimates(\$q\$$q1\$q\$)")
check "no stale model answers: PostgreSQL's estimates ($src)" [ "$src" = native ]

pp_psql -d postgres -c "DROP DATABASE $OTHER" -c "DROP DATABASE $DB" >/dev/null
check_no_crash "model stats5"
finish
