#!/usr/bin/env bash
# A read-only state directory (what a file system remounted read-only, or a
# wrong mode, does to pilotd), simulated with the directory's and its files'
# write permissions taken away (the test runs as the owner, not root):
#   1. while pilotd runs and 4 sessions stream queries with feedback on: every
#      open for writing fails, so feedback is not acknowledged and waits; no
#      query fails; writable again, everything drains and is stored once;
#   2. `pilotd train` with a read-only models directory fails at once, saying
#      why, before any training; no version appears;
#   3. pilotd started on a read-only state directory refuses to start and says
#      which directory and what to do; queries plan natively meanwhile, counted
#      in pg_pilot.stats; writable again, it starts and replays its spool.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"
STATE="$PP_DIR/state"
writable() { chmod -R u+w "$STATE"; }
read_only() { chmod -R a-w "$STATE"; }
trap writable EXIT

# 1 ------------------------------------------------------------------------
check "the store is drained before the test" store_wait_drained
mon "SELECT pg_pilot.reset_stats()" >/dev/null
rows_before=$(store_rows)
pid=$(pp_pilotd_pid)
failures_before=$(grep -c "cannot open" "$PP_DIR/pilotd.log")
read_only
feedback_streams_start 4 5 readonly_stream
feedback_streams_wait readonly_stream
queued=$(daemon_col feedback_queued)
echo "# read-only state directory: $STREAMS_RUNS queries, $queued records waiting unacknowledged at the end"
check "no query failed while the state directory was read-only" [ "$STREAMS_FAILED" -eq 0 -a "$STREAMS_RUNS" -gt 20 ]
check "pilotd survived (same process)" kill -0 "$pid"
check "feedback it could not make durable was not acknowledged: it waits" [ "$queued" -gt 0 ]
grep "cannot open" "$PP_DIR/pilotd.log" | tail -1 | sed 's/^/# pilotd.log: /'
check "pilotd logged why" [ "$(grep -c "cannot open" "$PP_DIR/pilotd.log")" -gt "$failures_before" ]
writable
check "writable again, everything drains into the store" store_wait_drained 60
check_stored "$rows_before"

# 2 ------------------------------------------------------------------------
mkdir -p "$STATE/models"
versions_before=$(mon "SELECT count(*) FROM pg_pilot.models")
read_only
t0=$SECONDS
"$PILOTD" train -D "$PGDATA" --state-dir "$STATE" --store-dsn "$PP_STORE_DSN" \
  --model-dsn "dbname=pg_pilot_regress host=$PGHOST port=$PGPORT" >"$PP_DIR/readonly_train.log" 2>&1
rc=$?
writable
sed 's/^/# /' "$PP_DIR/readonly_train.log"
check "pilotd train fails on a read-only models directory" [ "$rc" -ne 0 ]
# before training: it failed to claim a version number, so it never said
# "training model version N" (the time it took is shown, not judged)
check "at once, before training ($((SECONDS - t0)) s, no \"training model version\" line)" \
  bash -c '! grep -q "training model version" "$1"' _ "$PP_DIR/readonly_train.log"
check "and says which file it could not create" grep -q "cannot create \"$STATE/models/[0-9]*.training\".*Permission denied" "$PP_DIR/readonly_train.log"
check "no model version appeared" [ "$(mon "SELECT count(*) FROM pg_pilot.models")" = "$versions_before" ]

# 3 ------------------------------------------------------------------------
pp_pilotd_stop
read_only
timeout 30 "$PILOTD" -D "$PGDATA" --state-dir "$STATE" --log-file "$PP_DIR/readonly_start.log" \
  --pid-file "$PP_DIR/readonly.pid" --store-dsn "$PP_STORE_DSN" </dev/null >>"$PP_DIR/readonly_start.log" 2>&1
rc=$?
writable
tail -2 "$PP_DIR/readonly_start.log" | sed 's/^/# /'
check "pilotd refuses to start on a read-only state directory (exit $rc)" [ "$rc" -ne 0 ]
check "and says which directory and what to do" \
  grep -q "state directory \"$STATE\" is not writable: Permission denied (.*--state-dir)" "$PP_DIR/readonly_start.log"
before=$(stat fallback_daemon_down)
got=$(actual_results)
check "without pilotd, queries give PostgreSQL's results" [ "$got" = "$(expected_results)" ]
check "and the planner counted the missing pilotd ($before -> $(stat fallback_daemon_down))" [ "$(stat fallback_daemon_down)" -gt "$before" ]
pp_pilotd_start
pilotd_up() { "$PILOTD" status -D "$PGDATA" >/dev/null; }
check "writable again, pilotd starts" pilotd_up
check "and its store is drained" store_wait_drained 60
check_no_crash "read-only state directory"
finish
