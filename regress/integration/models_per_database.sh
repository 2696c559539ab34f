#!/usr/bin/env bash
# Every database of the cluster gets its own serving model version, and a
# backend only ever gets the one of its own database.
#   1. two databases (same tables, different data) each collect feedback and
#      `pilotd train` a version for each;
#   2. both versions serve at once (pg_pilot.models: one serving row per
#      database, each with its database);
#   3. planning in one database asks its own version only (the served and
#      declined counters of pg_pilot.models), a third database asks none;
#   4. pins are per database: a version cannot be pinned from another
#      database, and unpinning one database leaves the other's version serving;
#   5. after kill -9 and a restart of pilotd both serve again;
#   6. with --model-databases all the service trains a version for each
#      database that has the extension by itself.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"; source "$PP_REGRESS/lib/correlated.sh"

A=perdb_a; B=perdb_b; C=perdb_c
state="$PP_DIR/perdb_state"
for db in $A $B $C; do q "DROP DATABASE IF EXISTS $db" >/dev/null; done
# a state directory of its own: these versions must not serve in the suites after this one
pp_pilotd_stop
mkdir -p -m 700 "$state"
pp_pilotd_start --state-dir "$state" --train-every 0 --model-poll-ms 200 >/dev/null

# the same tables; b follows a differently in each database
correlated_db $A "a"               # b = a
correlated_db $B "(a * 7) % 50"    # b = 7a mod 50
work="$PP_DIR/perdb_workload.txt"
correlated_workload "$work"
for db in $A $B; do
  out=$(env -u PGHOST -u PGPORT timeout 300 "$PILOTD" collect -D "$PGDATA" --dsn "dbname=$db" --workload "$work" 2>&1)
  check "collect in $db" grep -q "200 queries, 200 ok" <<<"$out"
done
check "the feedback reached the store" store_wait_drained 60
# the memo too answers each database with what was observed there: the same
# query (the same subplan key) counts 400 rows in $A and none in $B
memo_rows() { PGOPTIONS="-c pg_pilot.estimator=memo" pp_psql -d "$1" -At -c \
  "SELECT source || ' ' || round(used_rows) FROM pg_pilot.explain_estimates('SELECT count(*) FROM t1 WHERE a = 1 AND b = 1')"; }
ma=$(memo_rows $A); mb=$(memo_rows $B)
ta=$(pp_psql -d $A -At -c "SELECT count(*) FROM t1 WHERE a = 1 AND b = 1")
tb=$(pp_psql -d $B -At -c "SELECT count(*) FROM t1 WHERE a = 1 AND b = 1")
check "the memo answers $A with $A's count ($ma, true $ta) and $B with $B's ($mb, true $tb)" \
  [ "$ma" = "memo $ta" -a "$mb" = "memo $(( tb > 1 ? tb : 1 ))" -a "$ta" != "$tb" ]

models() { mon "SELECT $1 FROM pg_pilot.models $2"; }
dboid() { q "SELECT oid FROM pg_database WHERE datname = '$1'"; }
train() { # DB -> version
  env -u PGHOST -u PGPORT -u PGDATABASE timeout 300 "$PILOTD" train -D "$PGDATA" --state-dir "$state" \
    --store-dsn "$PP_STORE_DSN" --model-dsn "dbname=$1" --train-seconds 20 --train-epochs 40 >"$PP_DIR/perdb_train_$1.log" 2>&1 &&
    grep -o 'version [0-9]* written' "$PP_DIR/perdb_train_$1.log" | grep -o '[0-9]*'
}
va=$(train $A); vb=$(train $B)
tail -3 "$PP_DIR/perdb_train_$A.log" | sed 's/^/# /'
check "a version for each database ($A: ${va:-none}, $B: ${vb:-none})" [ -n "$va" -a -n "$vb" ]
judged() { local s; s=$(models state "WHERE version = $1"); [ "$s" = serving ] || [ "$s" = rejected ]; }
wait_until 60 judged "${va:-0}"; wait_until 60 judged "${vb:-0}"
# the quality gate decides for each database on its own; one it rejected
# (not better than PostgreSQL on its held-out feedback) is pinned from its
# database, so that both serve here whatever the gate said
for pair in "$A:$va" "$B:$vb"; do
  db=${pair%%:*}; v=${pair#*:}
  echo "# version $v ($db): $(models "state || ' / ' || note" "WHERE version = $v")"
  [ "$(models state "WHERE version = $v")" = serving ] || pp_psql -d "$db" -c "SELECT pg_pilot.pin_model($v)" >/dev/null
done
serving_row() { [ "$(models "dboid || ' ' || state" "WHERE version = $1")" = "$2 serving" ]; }
check "version $va serves $A" wait_until 30 serving_row "$va" "$(dboid $A)"
check "and version $vb serves $B at the same time" wait_until 30 serving_row "$vb" "$(dboid $B)"
check "pg_pilot.models names each version's database" \
  [ "$(models database "WHERE version = $va")/$(models database "WHERE version = $vb")" = "$A/$B" ]

# 3: who answers whom.  A version is asked for every set of its database it
# may describe (pg_pilot.models: served + declined; on this little feedback
# it may decline them all).  The same 40 queries planned in $A and then in
# $B ask the same number N of sets, each of its own database's version.
# pg_pilot.models is a snapshot of all versions' counters, published after
# each look at the models directory: one that shows $B's planning done also
# shows everything planned before it.
asked() { models "served + declined" "WHERE version = $1"; }
plan_in() { # DB: plans the workload's first 40 queries with the learned estimator
  head -n 40 "$work" | sed -e 's/^/EXPLAIN /' -e 's/$/;/' | PGOPTIONS="-c pg_pilot.estimator=learned" pp_psql -d "$1" >/dev/null
}
a0=$(asked "$va"); b0=$(asked "$vb")
plan_in $A
plan_in $B
# A's planning ended before B's began: a snapshot with B's count equal to
# A's nonzero one is after both (a version asked by both databases, or by
# neither, never gets there)
same_nonzero() { local a b; a=$(($(asked "$va") - a0)); b=$(($(asked "$vb") - b0)); [ "$a" -gt 0 ] && [ "$a" = "$b" ]; }
wait_until 30 same_nonzero
check "planning in $A asks version $va only and planning in $B version $vb only ($a0 -> $(asked "$va"), $b0 -> $(asked "$vb"))" \
  same_nonzero
n=$(($(asked "$va") - a0))
echo "# each database's planning asked $n sets of its own version"
q "CREATE DATABASE $C TEMPLATE $A" >/dev/null
plan_in $C
plan_in $B # its count reaching b0 + 2n marks a snapshot after $C's planning
twice() { [ "$(asked "$vb")" -ge $((b0 + 2 * n)) ]; }
wait_until 30 twice
check "a database with no version of its own asks none ($A's version: $((a0 + n)) -> $(asked "$va"); $B's: $(asked "$vb"))" \
  [ "$(asked "$va")" = $((a0 + n)) -a "$(asked "$vb")" = $((b0 + 2 * n)) ]
src_c=$(PGOPTIONS="-c pg_pilot.estimator=learned" pp_psql -d $C -At -c \
  "SELECT string_agg(DISTINCT split_part(source, ' ', 1), ',') FROM pg_pilot.explain_estimates(\$q\$$(sed -n 3p "$work")\$q\$)")
check "and plans with PostgreSQL's estimates (sources $src_c)" [ "$src_c" = native ]

# 4: pins are per database
err=$(pp_psql -d $A -c "SELECT pg_pilot.pin_model($vb)" 2>&1)
check "a version cannot be pinned from another database" grep -q "cannot pin model version $vb" <<<"$err"
grep "bound to database" "$PP_DIR/pilotd.log" | tail -1 | sed 's/^/# /'
pp_psql -d $A -c "SELECT pg_pilot.pin_model($va)" >/dev/null
pp_psql -d $A -c "SELECT pg_pilot.unpin_model()" >/dev/null
check "unpinning $A leaves $B's version serving" serving_row "$vb" "$(dboid $B)"
# pinned again: a version the gate rejected serves after a restart only pinned
pp_psql -d $A -c "SELECT pg_pilot.pin_model($va)" >/dev/null

# 5: both again after kill -9
pp_pilotd_kill9
pp_pilotd_start --state-dir "$state" --train-every 0 --model-poll-ms 200 >/dev/null
check "after kill -9 and a restart, $A's version serves again" wait_until 60 serving_row "$va" "$(dboid $A)"
check "and $B's" wait_until 60 serving_row "$vb" "$(dboid $B)"

# 6: the service trains a version for every database with the extension
pp_pilotd_stop
pp_pilotd_start --state-dir "$state" --model-dsn "dbname=postgres" --model-databases all --train-every 100 \
  --train-seconds 10 --train-epochs 20 --model-poll-ms 200 >/dev/null
for db in $A $B; do
  env -u PGHOST -u PGPORT timeout 300 "$PILOTD" collect -D "$PGDATA" --dsn "dbname=$db" --workload "$work" >/dev/null 2>&1
done
trained_for() { [ -n "$(models version "WHERE version > $vb AND dboid = $1 AND state <> 'training'")" ]; }
check "--model-databases all: the service trains a version for $A by itself" wait_until 180 trained_for "$(dboid $A)"
check "and one for $B" wait_until 180 trained_for "$(dboid $B)"
check "its log says it trains every database with the extension" \
  grep -q "model databases all with the extension" "$PP_DIR/pilotd.log"

pp_pilotd_stop
pp_pilotd_start >/dev/null
for db in $A $B $C; do q "DROP DATABASE $db" >/dev/null; done
check_no_crash "a model per database"
finish
