# cluster.sh — start and stop a throw-away PostgreSQL 15 cluster and pilotd on a
# private port and socket directory.  Sourced by the test, demo and bench
# drivers; runs as the OS user that owns the cluster (never root).
#
#   pp_cluster_init DIR [extra postgresql.conf lines...]   initdb + config
#   pp_cluster_start / pp_cluster_stop / pp_cluster_restart
#   pp_pilotd_start [pilotd options...] / pp_pilotd_stop / pp_pilotd_kill9
#   pp_store_setup [DB]     feedback store: DB (default pg_pilot_store) with the
#                           extension and a login role "pilotd" in pilot_store;
#                           exports PP_STORE_DSN, which pp_pilotd_start passes on
#   pp_psql [psql args...]                                  psql -X -q on the cluster
#   wait_until SECONDS CMD [ARGS...]                        poll CMD until it succeeds
#
# Exports PGHOST (socket dir), PGPORT, PGDATA, PGUSER, PP_DIR, PILOTD_PID.

PG_BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
PILOTD=${PILOTD:-$(command -v pilotd || echo /usr/local/bin/pilotd)}
# a throw-away cluster's pilotd never reads the machine's configuration
# (/etc/pg_pilot/pilotd.json, which a package install may have)
export PILOTD_CONFIG=""

pp_free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$p" ]; then
      echo "$p"; return 0
    fi
  done
  echo 54329
}

pp_cluster_init() {
  PP_DIR=$1; shift
  mkdir -p "$PP_DIR/sock" "$PP_DIR/state"
  chmod 700 "$PP_DIR" "$PP_DIR/sock" "$PP_DIR/state"
  export PGDATA="$PP_DIR/data" PGHOST="$PP_DIR/sock" PGPORT=$(pp_free_port) PGUSER=$(id -un) PP_DIR
  export PGDATABASE=postgres
  "$PG_BIN/initdb" -D "$PGDATA" -U "$PGUSER" -A trust -E UTF8 --locale=C.UTF-8 >"$PP_DIR/initdb.log" 2>&1 \
    || { cat "$PP_DIR/initdb.log"; return 1; }
  cat >>"$PGDATA/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$PGHOST'
shared_preload_libraries = 'pg_stat_statements, pg_pilot'
fsync = off
max_connections = 60
logging_collector = off
log_min_messages = warning
lc_messages = 'C'
CONF
  for line in "$@"; do echo "$line" >>"$PGDATA/postgresql.conf"; done
}

# pg_ctl; under make check-asan the server starts with libasan preloaded
# (lib/asan_server.sh), its leak check off and its reports beside pilotd's.
pp_pg_ctl() {
  if [ -n "${PP_SERVER_PRELOAD:-}" ]; then
    LD_PRELOAD="$PP_SERVER_PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$PG_BIN/pg_ctl" "$@"
  else
    "$PG_BIN/pg_ctl" "$@"
  fi
}

pp_cluster_start() {
  pp_pg_ctl -D "$PGDATA" -l "$PP_DIR/postgres.log" -w -t 60 start >/dev/null \
    || { tail -20 "$PP_DIR/postgres.log"; return 1; }
}

pp_cluster_stop() {
  [ -n "${PGDATA:-}" ] && [ -f "$PGDATA/postmaster.pid" ] && \
    pp_pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1
  return 0
}

pp_cluster_restart() {
  pp_pg_ctl -D "$PGDATA" -l "$PP_DIR/postgres.log" -m fast -w -t 60 restart >/dev/null
}

pp_postmaster_pid() { head -1 "$PGDATA/postmaster.pid" 2>/dev/null; }

pp_psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# wait_until SECONDS CMD [ARGS...]: runs CMD every 0.15 s until it succeeds
# (then returns 0) or SECONDS have passed (then says what it waited for, on
# stderr, and returns 1).  For every "after this, that must have happened": a
# test never bets on a sleep being long enough.  Deadlines are generous (the
# machine may be busy with other work); a condition that holds early costs no
# wait.  CMD runs anew each time: a condition that reads the database is a
# function (or bash -c), not a [ "$(...)" ... ] expanded once by the caller.
wait_until() {
  local secs=$1 deadline
  shift
  deadline=$(( ${EPOCHREALTIME//[!0-9]/} + secs * 1000000 ))
  while :; do
    "$@" && return 0
    if [ "${EPOCHREALTIME//[!0-9]/}" -ge "$deadline" ]; then
      echo "# gave up after $secs s waiting for: $*" >&2
      return 1
    fi
    sleep 0.15
  done
}

# Waits until pilotd's segment is up (pilotd status exits 0), at most 15 s.
pp_pilotd_wait() {
  local out
  for _ in $(seq 1 150); do
    # ready, and it is the pilotd just started: for 100 ms after a kill -9 the
    # dead one's segment still has a fresh heartbeat (see daemon_dead())
    if out=$("$PILOTD" status -D "$PGDATA" 2>/dev/null); then
      [ -z "${PILOTD_PID:-}" ] && return 0
      grep -qE "^pid: +$PILOTD_PID\$" <<<"$out" && return 0
    fi
    if [ -n "${PILOTD_PID:-}" ] && ! kill -0 "$PILOTD_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "pilotd did not come up; its log:" >&2
  tail -20 "$PP_DIR/pilotd.log" >&2
  return 1
}

pp_store_setup() {
  PP_STORE_DB=${1:-pg_pilot_store}
  pp_psql -d postgres -c "CREATE DATABASE $PP_STORE_DB" &&
  pp_psql -d "$PP_STORE_DB" -c "CREATE EXTENSION pg_pilot" &&
  pp_psql -d postgres -c "CREATE ROLE pilotd LOGIN IN ROLE pilot_store" || return 1
  # tests wait for the store to drain: retry at least once a second
  export PP_STORE_DB PP_STORE_DSN="dbname=$PP_STORE_DB user=pilotd"
}

# psql on the feedback store's database
pp_store_psql() { pp_psql -d "$PP_STORE_DB" "$@"; }

pp_pilotd_start() {
  "$PILOTD" -D "$PGDATA" --state-dir "$PP_DIR/state" --log-file "$PP_DIR/pilotd.log" \
    --pid-file "$PP_DIR/pilotd.pid" --store-dsn "${PP_STORE_DSN:-none}" --store-backoff-max-ms 1000 \
    "$@" </dev/null >>"$PP_DIR/pilotd.log" 2>&1 &
  PILOTD_PID=$!
  export PILOTD_PID
  pp_pilotd_wait
}

# The running pilotd's pid: from its pid file (pilotd may have been restarted
# by another script), else the one this shell started.
pp_pilotd_pid() {
  local pid
  pid=$(cat "$PP_DIR/pilotd.pid" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; return; fi
  if [ -n "${PILOTD_PID:-}" ] && kill -0 "$PILOTD_PID" 2>/dev/null; then echo "$PILOTD_PID"; fi
}

pp_pilotd_stop() {
  local pid
  pid=$(pp_pilotd_pid)
  if [ -n "$pid" ]; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  PILOTD_PID=
  return 0
}

pp_pilotd_kill9() {
  local pid
  pid=$(pp_pilotd_pid)
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    wait "$pid" 2>/dev/null
  fi
  PILOTD_PID=
  return 0
}

pp_teardown() {
  pp_pilotd_stop
  pp_cluster_stop
}
