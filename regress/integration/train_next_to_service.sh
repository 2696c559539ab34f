#!/usr/bin/env bash
# `pilotd train -D DIR` next to a running service needs nothing else: the
# service writes the settings it shares (model and store DSNs, training
# settings) to STATE_DIR/pilotd.settings.json (mode 0600); train starts from
# them, under its config file and command line.  Without them, a usage error
# that says what to give.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

# a state directory of its own: the version trained here must not serve in
# the suites after this one
state="$PP_DIR/train_state"
settings="$state/pilotd.settings.json"
pp_pilotd_stop
# the relation-set texts the suites before gathered (what training reads)
mkdir -p -m 700 "$state" && cp "$PP_DIR/state/keys.catalog" "$state/" 2>/dev/null
pp_pilotd_start --state-dir "$state" --model-dsn "dbname=pg_pilot_regress" --train-every 0 --train-seconds 5 \
  --train-epochs 30 --train-seed 7 >/dev/null
check "the service wrote the settings it shares" [ -f "$settings" ]
check "readable by its owner only (mode 0600: DSNs may hold passwords)" [ "$(command stat -c %a "$settings")" = 600 ]
check "they name the model's database" grep -q '"model-dsn": "dbname=pg_pilot_regress"' "$settings"

# feedback to train on, and feedback on a temporary table (gone with its
# session: training must leave it out, not fail)
for i in $(seq 1 40); do
  q "SELECT count(*) FROM orders o JOIN customer c ON c.id = o.customer_id
     WHERE o.status = $((i % 4)) AND o.id < $((i * 2000))" >/dev/null
done
q "CREATE TEMP TABLE train_gone AS SELECT g AS id FROM generate_series(1, 200) g; ANALYZE train_gone;
   SELECT count(*) FROM train_gone t JOIN orders o ON o.id = t.id WHERE t.id < 150" >/dev/null
check "that feedback reached the store" store_wait_drained 30

out=$(timeout 300 "$PILOTD" train -D "$PGDATA" --state-dir "$state" 2>&1); rc=$?
echo "$out" | sed 's/^/# /' | head -12
check "pilotd train -D with nothing else trains a version (exit $rc)" [ "$rc" = 0 ]
check "it says it took the service's settings" grep -q "settings of the service of $PGDATA" <<<"$out"
check "and trains for the service's database" grep -q 'model-dsn "dbname=pg_pilot_regress"' <<<"$out"
check "with the service's training settings (seed 7)" grep -q "(seed 7)" <<<"$out"
# the regress suites leave feedback on temporary tables (gone with their
# sessions) and dropped ones: left out, not a failed training
check "feedback on a table that is gone (temporary) is left out, and said so" \
  grep -qE "relation sets left out: [0-9]+ of their tables are gone or temporary" <<<"$out"

out=$(timeout 120 "$PILOTD" train -D "$PGDATA" --state-dir "$state" --model-dsn "dbname=pg_pilot_no_such_db" 2>&1); rc=$?
check "the command line wins over the service's settings" grep -q 'model-dsn "dbname=pg_pilot_no_such_db"' <<<"$out"
check "and that database is the one it tried (exit 1: $rc)" \
  bash -c '[ "$1" = 1 ] && grep -q "pg_pilot_no_such_db" <<<"$2"' _ "$rc" "$out"

empty=$(mktemp -d "$PP_DIR/no_service.XXXXXX")
out=$("$PILOTD" train -D "$PGDATA" --state-dir "$empty" 2>&1); rc=$?
check "no service settings and no --model-dsn: a usage error (exit 2) that says what to give" \
  bash -c '[ "$1" = 2 ] && grep -q -- "--model-dsn DSN" <<<"$2"' _ "$rc" "$out"

# what this pilotd acknowledged reaches the store before it goes
store_wait_drained 30
pp_pilotd_stop
pp_pilotd_start >/dev/null
check_no_crash "train next to the service"
finish
