#!/usr/bin/env bash
# Every pilotd command reads the same configuration: the config file (-c, or
# the default one, here named by PILOTD_CONFIG) and the data directory (-D,
# or "pgdata" in the file), whose postmaster.pid gives the server's address.
# `pilotd collect` and `pilotd advise` with nothing but a workload run on the
# configured model-dsn, with the advisor-* settings, even with PGHOST/PGPORT
# unset; status finds its data directory in the file.  Long commands draw a
# progress line on a terminal and write only the 10 % steps into a log.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

DB=one_config_db
q "DROP DATABASE IF EXISTS $DB" >/dev/null
q "CREATE DATABASE $DB" >/dev/null
pp_psql -d "$DB" -c "CREATE TABLE t (a int, b int, pad text);
  INSERT INTO t SELECT g % 5000, g % 4999, repeat('x', 40) FROM generate_series(1, 100000) g; ANALYZE t;" >/dev/null
cfg="$PP_DIR/one_config.json"
cat >"$cfg" <<JSON
// what a DBA would put in /etc/pg_pilot/pilotd.json: no host, no port
{
    "pgdata": "$PGDATA",
    "model-dsn": "dbname=$DB",
    "advisor-max-indexes": 1
}
JSON
work="$PP_DIR/one_config_workload.txt"
for i in $(seq 1 15); do
  echo "SELECT count(*) FROM t WHERE a = $i"
  echo "SELECT count(*) FROM t WHERE b = $((i * 7))"
done >"$work"
# the commands must not find the server through the environment
bare() { env -u PGHOST -u PGPORT -u PGDATABASE "$@"; }

out=$(bare PILOTD_CONFIG="$cfg" timeout 120 "$PILOTD" collect --workload "$work" 2>&1); rc=$?
echo "$out" | sed 's/^/# /' | tail -4
check "collect with only --workload runs on the configured model-dsn (exit $rc)" \
  bash -c '[ "$1" = 0 ] && grep -q "30 queries, 30 ok" <<<"$2"' _ "$rc" "$out"
check "at the server of the configured data directory" grep -qE "on dbname=$DB host='?$PGHOST'? port='?$PGPORT'?" <<<"$out"
check "a log gets the 10 % steps as lines, nothing redrawn" \
  bash -c '[ "$(grep -c "/30 queries (" <<<"$1")" = 9 ] && ! grep -q $'"'"'\r'"'"' <<<"$1"' _ "$out"

# -c names the file; -D names the server (the file's pgdata is overridden)
nocfg="$PP_DIR/one_config_nopgdata.json"
echo "{\"model-dsn\": \"dbname=$DB\"}" >"$nocfg"
out=$(bare PILOTD_CONFIG= timeout 120 "$PILOTD" collect -c "$nocfg" -D "$PGDATA" --workload "$work" 2>&1); rc=$?
check "collect -c FILE -D DIR (exit $rc)" bash -c '[ "$1" = 0 ] && grep -q "30 ok" <<<"$2"' _ "$rc" "$out"

# on a terminal: one line redrawn in place, with rate and time left
tty_out=$(bare PILOTD_CONFIG="$cfg" timeout 120 script -qec "'$PILOTD' collect --workload '$work'" /dev/null 2>&1); rc=$?
check "on a terminal the progress line is redrawn in place (exit $rc)" \
  bash -c 'grep -q $'"'"'\r\e\[K'"'"'"collect: [0-9]*/30 queries" <<<"$1"' _ "$tty_out"
check "it shows the rate and the time so far" grep -qE "[0-9.]+/s, .* so far" <<<"$tty_out"

out=$(bare PILOTD_CONFIG="$cfg" timeout 300 "$PILOTD" advise --workload "$work" --no-store 2>&1); rc=$?
echo "$out" | grep -E "^(recommend|advise: [0-9])" | sed 's/^/# /'
check "advise with only --workload advises the configured database (exit $rc)" \
  bash -c '[ "$1" = 0 ] && grep -q "queries costed" <<<"$2"' _ "$rc" "$out"
check "with the configured advisor-max-indexes (1)" grep -q "^advise: 1 index," <<<"$out"
out=$(bare PILOTD_CONFIG="$cfg" timeout 300 "$PILOTD" advise --workload "$work" --no-store --max-indexes 2 2>&1)
check "the command line overrides it (--max-indexes 2)" grep -q "^advise: 2 indexes," <<<"$out"

out=$(bare PILOTD_CONFIG="$cfg" "$PILOTD" status 2>&1); rc=$?
check "status finds the data directory in the config file (exit $rc)" \
  bash -c '[ "$1" = 0 ] && grep -q "$2" <<<"$3"' _ "$rc" "$PGDATA" "$out"

out=$(PILOTD_CONFIG="$PP_DIR/no_such.json" "$PILOTD" status 2>&1); rc=$?
check "PILOTD_CONFIG naming a missing file: a usage error that says so (exit $rc)" \
  bash -c '[ "$1" = 2 ] && grep -q "PILOTD_CONFIG names" <<<"$2"' _ "$rc" "$out"
echo '{"no-such-key": 1}' >"$PP_DIR/bad.json"
out=$(bare PILOTD_CONFIG="$PP_DIR/bad.json" "$PILOTD" collect --workload "$work" 2>&1); rc=$?
check "collect reads the same file as the service: an unknown key is a usage error (exit $rc)" \
  bash -c '[ "$1" = 2 ] && grep -q "unknown key" <<<"$2"' _ "$rc" "$out"

q "DROP DATABASE $DB" >/dev/null
check_no_crash "one configuration"
finish
