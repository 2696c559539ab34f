#!/usr/bin/env bash
# Models travel with the WAL: a hot standby (pg_basebackup -R, streaming
# replication) with a pilotd of its own serves the version its primary
# serves, loaded from its local replica of pg_pilot.model_versions, and swaps
# when the primary serves a new one (it arrives by replay).
#   1. the primary's pilotd serves a version for a database and publishes it
#      in pg_pilot.model_versions (the feedback store's database);
#   2. the standby's pilotd serves the same version (same number, same
#      checksum) for that database, and the standby's planning asks it:
#      explain shows the source "model" for join sets, answered by that
#      version (its served count there grows by at least as many);
#   3. a new version on the primary: the standby follows;
#   4. the standby's queries never fail meanwhile;
#   5. the standby's feedback is committed to the primary's store exactly
#      once, also across kill -9 of the standby's pilotd;
#   6. pg_pilot.pilotds on the primary lists both pilotds with their role;
#   0. its pilotd runs with the default state directory, DATADIR/pg_pilot,
#      which pg_basebackup copied with the primary's spool: that copy is set
#      aside, the standby's pilotd starts a spool of its own;
#   7. promoted, the standby's pilotd serves the same version and stores to
#      its own server, each record once, and no query fails; the version is
#      no longer pinned as the old primary's (versions trained there serve).
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"; source "$PP_REGRESS/lib/correlated.sh"

DB=standby_app
S="$PP_DIR/standby"
q "DROP DATABASE IF EXISTS $DB" >/dev/null
correlated_db "$DB" "a"
work="$PP_DIR/standby_workload.txt"
correlated_shapes_workload "$work" # 30 templates: the version answers some joins
env -u PGHOST -u PGPORT timeout 300 "$PILOTD" collect -D "$PGDATA" --dsn "dbname=$DB" --workload "$work" >/dev/null 2>&1
check "the feedback reached the store" store_wait_drained 60

models() { mon "SELECT $1 FROM pg_pilot.models $2"; }
train() { # -> version, serving on the primary for $DB (pinned there if the gate said no)
  local v
  env -u PGHOST -u PGPORT -u PGDATABASE timeout 300 "$PILOTD" train -D "$PGDATA" --state-dir "$PP_DIR/state" \
    --store-dsn "$PP_STORE_DSN" --model-dsn "dbname=$DB" --train-seconds 20 --train-epochs "$1" >"$PP_DIR/standby_train.log" 2>&1
  v=$(grep -o 'version [0-9]* written' "$PP_DIR/standby_train.log" | grep -o '[0-9]*')
  [ -n "$v" ] || { tail -5 "$PP_DIR/standby_train.log" | sed 's/^/# train: /' >&2; return 1; }
  judged() { local s; s=$(models state "WHERE version = $v"); [ "$s" = serving ] || [ "$s" = rejected ]; }
  wait_until 60 judged
  [ "$(models state "WHERE version = $v")" = serving ] || pp_psql -d "$DB" -c "SELECT pg_pilot.pin_model($v)" >/dev/null
  echo "$v"
}
published() { [ "$(pp_store_psql -At -c "SELECT serving FROM pg_pilot.model_versions WHERE version = $1")" = t ]; }
# model_sets PSQL...: how many join sets of 300 join queries explain_estimates
# sizes with the model
model_sets() {
  grep JOIN "$work" | head -n 300 | while read -r sql; do echo "SELECT source FROM pg_pilot.explain_estimates(\$q\$$sql\$q\$);"; done |
    PGOPTIONS="-c pg_pilot.estimator=learned" "$@" -d "$DB" -At | grep -c '^model$'
}
# a version that answers some join sets (which ones it declines depends on
# the templates the trainer held out to calibrate with: they follow the keys)
for epochs in 40 60 80; do
  v1=$(train "$epochs")
  [ -z "$v1" ] && break
  on_primary=$(model_sets pp_psql)
  [ "$on_primary" -gt 0 ] && break
  echo "# version $v1 answers no join set: training again"
done
check "the primary serves version ${v1:-none} for $DB" [ -n "$v1" ]
check "and publishes it in pg_pilot.model_versions" wait_until 30 published "${v1:-0}"

# a streaming standby of the primary, on its own port and socket directory
mkdir -p "$S/sock" && chmod 700 "$S" "$S/sock"
SPORT=$(pp_free_port)
# as with pilotd's default state directory, DATADIR/pg_pilot, which
# pg_basebackup copies: the primary's spool (its records, its identity) in the
# primary's data directory while the backup runs
cp -a "$PP_DIR/state/spool" "$PGDATA/pg_pilot_spool_copy" && mkdir -p "$PGDATA/pg_pilot" &&
  mv "$PGDATA/pg_pilot_spool_copy" "$PGDATA/pg_pilot/spool"
"$PG_BIN/pg_basebackup" -D "$S/data" -R -X stream -c fast >"$S/basebackup.log" 2>&1
rm -rf "$PGDATA/pg_pilot"
check "pg_basebackup -R makes a standby" [ -f "$S/data/standby.signal" ]
check "and copies the primary's spool into DATADIR/pg_pilot, but not its marker" \
  [ "$(cat "$S/data/pg_pilot/spool/id")" = "$(cat "$PP_DIR/state/spool/id")" -a ! -e "$S/data/pg_pilot/spool/pgsql_tmp.spool_of_this_server" ]
cat >>"$S/data/postgresql.conf" <<CONF
port = $SPORT
unix_socket_directories = '$S/sock'
hot_standby = on
CONF
"$PG_BIN/pg_ctl" -D "$S/data" -l "$S/postgres.log" -w -t 60 start >/dev/null || tail -20 "$S/postgres.log"
spsql() { "$PG_BIN/psql" -X -q -h "$S/sock" -p "$SPORT" "$@"; }
check "the standby runs in recovery" [ "$(spsql -d postgres -At -c 'SELECT pg_is_in_recovery()')" = t ]
"$PILOTD" -D "$S/data" --log-file "$S/pilotd.log" --pid-file "$S/pilotd.pid" \
  --store-dsn "$PP_STORE_DSN" --model-poll-ms 200 </dev/null >>"$S/pilotd.log" 2>&1 &
SPILOTD=$!
standby_up() { "$PILOTD" status -D "$S/data" >/dev/null 2>&1; }
check "the standby's pilotd starts" wait_until 30 standby_up
# (its state directory: the default, DATADIR/pg_pilot, with the copied spool)
check "it sets the copied spool aside: the records are the primary pilotd's to commit" \
  grep -q "came with the base backup" "$S/pilotd.log"
check "and starts a spool of its own (another identity than the primary's)" \
  [ -s "$S/data/pg_pilot/spool/id" -a "$(cat "$S/data/pg_pilot/spool/id")" != "$(cat "$PP_DIR/state/spool/id")" ]
smodels() { spsql -d "$DB" -At -c "SELECT $1 FROM pg_pilot.models $2"; }
standby_serves() { [ "$(smodels "state" "WHERE version = $1")" = serving ]; }
check "the standby's pilotd serves version $v1, as the primary does" wait_until 60 standby_serves "$v1"
check "the same file (checksum $(models checksum "WHERE version = $v1"))" \
  [ "$(smodels checksum "WHERE version = $v1")" = "$(models checksum "WHERE version = $v1")" ]
grep -E "arrived by replication|as on the primary" "$S/pilotd.log" | sed 's/^/# /'

# the standby's planning asks it
asked() { smodels "served + declined" "WHERE version = $1"; }
plan_standby() {
  head -n 20 "$work" | sed -e 's/^/EXPLAIN /' -e 's/$/;/' |
    PGOPTIONS="-c pg_pilot.estimator=learned" spsql -d "$DB" -v ON_ERROR_STOP=1 >/dev/null
}
a0=$(asked "$v1")
plan_standby; rc=$?
check "queries plan on the standby (exit $rc)" [ "$rc" = 0 ]
grew() { [ "$(asked "$1")" -gt "$2" ] 2>/dev/null; }
check "the standby's planning asks version $v1 ($a0 -> $(wait_until 30 grew "$v1" "$a0"; asked "$v1"))" grew "$v1" "$a0"
# and gets its answers: explain_estimates of the 300 join queries, the sets
# sized by the model, as on the primary; and that version's served count
# (a backend asks pilotd once per distinct set: the count grows by at least
# the number of distinct sets the model sized)
served() { smodels served "WHERE version = $1"; }
served_grew() { [ $(( $(served "$1") - $2 )) -ge "$3" ]; }
s0=$(served "$v1")
n=$(model_sets spsql)
distinct=$(grep JOIN "$work" | head -n 300 | while read -r sql; do
    echo "SELECT key FROM pg_pilot.explain_estimates(\$q\$$sql\$q\$) WHERE source = 'model';"
  done | PGOPTIONS="-c pg_pilot.estimator=learned" spsql -d "$DB" -At | sort -u | grep -c .)
check "explain on the standby shows the source model for $n join sets, as on the primary (${on_primary:-none})" \
  [ "$n" -gt 0 -a "$n" = "${on_primary:-none}" ]
check "answered by version $v1: its served count there grew by at least the $distinct distinct sets ($s0 -> $(wait_until 30 served_grew "$v1" "$s0" "$distinct"; served "$v1"))" \
  served_grew "$v1" "$s0" "$distinct"

# a new version on the primary arrives by replay; the standby follows
v2=$(train 45)
check "the primary serves a new version ${v2:-none}" [ -n "$v2" -a "${v2:-0}" != "$v1" ]
check "the standby's pilotd serves version $v2 too" wait_until 60 standby_serves "${v2:-0}"
check "and version $v1 no longer serves there" [ "$(smodels state "WHERE version = $v1")" != serving ]
plan_standby; rc=$?
check "queries still plan on the standby (exit $rc)" [ "$rc" = 0 ]

# 5: feedback from the standby.  A standby is read-only: its pilotd commits
# to the primary's store, found through primary_conninfo (the store DSN names
# no server; its model replication still reads the standby's own replica),
# with its own spool and watermark: each record exactly once, also across
# kill -9 of that pilotd
kill -TERM "$SPILOTD" 2>/dev/null; wait "$SPILOTD" 2>/dev/null
pp_psql -d "$DB" -c "CREATE TABLE t3 AS SELECT g AS id, g % 100 AS k FROM generate_series(1, 5000) g; ANALYZE t3" >/dev/null
replayed() { spsql -d "$DB" -c "SELECT 1 FROM t3 LIMIT 1" >/dev/null 2>&1; }
wait_until 60 replayed
store_connections() { grep -c "store: connected" "$S/pilotd.log"; }
store_connected() { [ "$(store_connections)" -gt "$1" ]; }
standby_pilotd() {
  connected_before=$(store_connections)
  "$PILOTD" -D "$S/data" --log-file "$S/pilotd.log" --pid-file "$S/pilotd.pid" \
    --store-dsn "$PP_STORE_DSN" --store-backoff-max-ms 1000 --model-poll-ms 200 \
    </dev/null >>"$S/pilotd.log" 2>&1 &
  SPILOTD=$!
  wait_until 30 standby_up
  wait_until 30 store_connected "$connected_before" # before that, pg_pilot.daemon shows no spool yet
}
standby_pilotd
on_standby() { # FROM TO: executions with distinct constants (distinct relation sets), feedback on
  for i in $(seq "$1" "$2"); do echo "SELECT count(*) FROM t3 WHERE k = $((i % 100)) AND id > $i;"; done |
    PGOPTIONS="-c pg_pilot.collect_feedback=on -c pg_pilot.feedback_sample_rate=1.0" spsql -d "$DB" >/dev/null
}
dboid=$(q "SELECT oid FROM pg_database WHERE datname = '$DB'")
t3_rows() { store_q "SELECT count(*) || ' ' || count(DISTINCT subplan_key) FROM pg_pilot.feedback WHERE relations = 't3' AND dboid = $dboid"; }
rows_are() { [ "$(t3_rows)" = "$1" ]; }
on_standby 1 30
check "the standby's feedback reaches the primary's store ($(wait_until 60 rows_are "30 30"; t3_rows))" rows_are "30 30"
on_standby 31 60
acked() { [ "$(spsql -d "$DB" -At -c "SELECT feedback_queued FROM pg_pilot.daemon")" = 0 ]; }
wait_until 30 acked
kill -KILL "$SPILOTD" 2>/dev/null; wait "$SPILOTD" 2>/dev/null
echo "# the standby's pilotd killed with SIGKILL after acknowledging the second 30"
standby_pilotd
drained() { [ "$(spsql -d "$DB" -At -c "SELECT spool_pending = 0 AND store_state = 'ok' FROM pg_pilot.daemon")" = t ]; }
wait_until 60 drained
check "after kill -9 and a restart: each of the 60 stored exactly once ($(t3_rows))" rows_are "60 60"
check "the restarted standby's pilotd serves version $v2 again" wait_until 30 standby_serves "$v2"
# 6: the fleet, as the primary's store sees it
fleet() { store_q "SELECT role || ' ' || (since_last_commit < interval '10 minutes') || ' ' || (records_waiting IS NOT NULL)
                   FROM pg_pilot.pilotds WHERE pgdata = '$1' ORDER BY last_commit DESC LIMIT 1"; }
# (a pilotd is a spool: pilotds of earlier suites, with other state
# directories beside the same server, have rows of their own)
check "pg_pilot.pilotds lists the standby's pilotd: role standby, a recent commit ($(fleet "$S/data"))" \
  [ "$(fleet "$S/data")" = "standby true true" ]
check "and the primary's: role primary ($(fleet "$PGDATA"))" [ "$(fleet "$PGDATA")" = "primary true true" ]

# 7: promotion.  The standby's pilotd keeps serving its version and, its
# server no longer a standby, stores to it from then on
caught_up() { [ "$(spsql -d "$PP_STORE_DB" -At -c "SELECT count(*) FROM pg_pilot.feedback WHERE relations = 't3'")" = 60 ]; }
wait_until 60 caught_up
"$PG_BIN/pg_ctl" -D "$S/data" -w -t 60 promote >/dev/null
check "the standby is promoted" [ "$(spsql -d postgres -At -c 'SELECT pg_is_in_recovery()')" = f ]
noticed() { grep -q "was promoted: storing to it from now on" "$S/pilotd.log"; }
check "its pilotd notices and stores to its own server from now on" wait_until 30 noticed || grep "store" "$S/pilotd.log" | tail -5 | sed 's/^/# /' 
on_standby 61 90; rc=$?
check "queries run on the promoted server (exit $rc)" [ "$rc" = 0 ]
local_rows() { spsql -d "$PP_STORE_DB" -At -c "SELECT count(*) || ' ' || count(DISTINCT subplan_key) FROM pg_pilot.feedback
                                              WHERE relations = 't3' AND dboid = $dboid"; }
local_are() { [ "$(local_rows)" = "$1" ]; }
check "its store holds the 60 from before and the 30 from after, each once ($(wait_until 60 local_are "90 90"; local_rows))" \
  local_are "90 90"
check "the old primary's store got none of the new ones ($(t3_rows))" rows_are "60 60"
check "it still serves version $v2" standby_serves "$v2"
# the standby pinned the primary's versions; a primary now, it drops those
# pins (kept across the kill -9 above in registry.json), so that versions it
# trains can serve: version $v2 serves until one beats it
released() { grep -q "version $v2 is no longer pinned as the primary's" "$S/pilotd.log"; }
check "its pilotd releases the pin it followed the old primary with" wait_until 30 released
check "version $v2 serves there unpinned ($(smodels "state || ' pinned ' || pinned" "WHERE version = $v2"))" \
  [ "$(smodels "state || ' ' || pinned" "WHERE version = $v2")" = "serving false" ]
role_here() { [ "$(spsql -d "$PP_STORE_DB" -At -c "SELECT role FROM pg_pilot.pilotds WHERE pgdata = '$S/data'")" = primary ]; }
check "pg_pilot.pilotds there says primary" wait_until 30 role_here

kill -TERM "$SPILOTD" 2>/dev/null; wait "$SPILOTD" 2>/dev/null
"$PG_BIN/pg_ctl" -D "$S/data" -m fast -w -t 60 stop >/dev/null
rm -rf "$S/data"  # its pilotd's log stays with the run's
pp_psql -d "$DB" -c "SELECT pg_pilot.unpin_model()" >/dev/null 2>&1
q "DROP DATABASE $DB" >/dev/null
check_no_crash "models on a standby"
finish
