#!/usr/bin/env bash
# The Debian package (make deb, debian/): it builds, installs with dpkg -i,
# puts its files where they belong, its pilotd@.service passes systemd-analyze
# verify with an exposure level of at most 3.0, the unit's wrapper runs its
# pilotd on a throw-away cluster (data directory read from the cluster's
# /etc/postgresql/15/NAME/postgresql.conf, configuration from
# /etc/pg_pilot/15-NAME.json), CREATE EXTENSION and one estimate round trip
# work, and dpkg -P leaves nothing of it behind.
#
# Installing needs root: as any other user (run_checks.sh runs the suites as
# postgres) this test only says it skipped.  Run it as root from the checkout:
#   regress/integration/deb_package.sh        (builds with make deb first)
#   PP_DEB=build/deb/postgresql-15-pg-pilot_0.8.0-1_amd64.deb regress/integration/deb_package.sh
# make install puts the extension at the paths the package uses: every file
# the package would overwrite is backed up first and put back at the end (also
# when the test fails), so the suites after this one still find theirs.  The
# window between dpkg -i and the restore is about 10 s.
PKG=postgresql-15-pg-pilot
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=${PP_REPO:-$(cd "$HERE/../.." && pwd)}
PG_BIN=/usr/lib/postgresql/15/bin
FAILS=0
ok()     { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; FAILS=$((FAILS + 1)); }
check()  { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; return 1; fi; }
as_pg()  { runuser -u postgres -- "$@"; }
# quiet LOG CMD...: CMD's output goes to LOG, whose end is shown when it fails
quiet()  { local log=$1; shift; "$@" >"$log" 2>&1 || { tail -20 "$log" | sed 's/^/#   /'; return 1; }; }

if [ "$(id -u)" -ne 0 ]; then echo "ok - skipped: installing a package needs root (run regress/integration/deb_package.sh as root) (# SKIP)"; exit 0; fi
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "ok installed"; then
  echo "ok - skipped: $PKG is installed on this machine: not touched (# SKIP)"; exit 0
fi

[ -z "${PP_DEB:-}" ] || PP_DEB=$(realpath "$PP_DEB")
T=$(mktemp -d /tmp/pg_pilot_deb.XXXXXX)
chown postgres: "$T"
cd "$T" || exit 1   # where postgres may be (psql, pilotd)
if [ -z "${PP_DEB:-}" ]; then
  start=$SECONDS
  check "make deb builds the package" quiet "$T/make-deb.log" make -C "$REPO" deb
  echo "# make deb: $((SECONDS - start)) s"
  PP_DEB=$(ls "$REPO"/build/deb/${PKG}_*.deb 2>/dev/null | head -1)
fi
check "the package file exists (${PP_DEB:-none})" [ -f "${PP_DEB:-}" ] || { rm -rf "$T"; exit 1; }
CLUSTER=pgpilot_debtest$$   # a throw-away Debian cluster name: 15-$CLUSTER
INST=15-$CLUSTER
ETC=/etc/postgresql/15/$CLUSTER
# the files the package would overwrite (make install's, at the same paths)
mapfile -t FILES < <(dpkg-deb --fsys-tarfile "$PP_DEB" | tar -t | grep -v '/$' | sed 's|^\./|/|')
BACKED=()
for f in "${FILES[@]}"; do
  if [ -e "$f" ] || [ -L "$f" ]; then
    mkdir -p "$T/backup$(dirname "$f")" && cp -a "$f" "$T/backup$f" && BACKED+=("$f")
  fi
done
echo "# backed up the ${#BACKED[@]} of the package's ${#FILES[@]} files that exist already: ${BACKED[*]}"

stop_all() {
  local pid
  pid=$(cat "$T/data/pg_pilot/pilotd.pid" 2>/dev/null)
  if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  [ -f "$T/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$T/data" -m fast -w stop >/dev/null 2>&1
  rm -rf "$ETC" "/etc/pg_pilot/$INST.json"
}
# puts back what make install had there (after dpkg -P removed it)
cleanup() {
  local f
  stop_all
  if dpkg-query -W "$PKG" >/dev/null 2>&1; then dpkg -P "$PKG" >/dev/null 2>&1; fi
  # a copy renamed into place: a server may have the old pg_pilot.so mapped
  for f in "${BACKED[@]}"; do
    mkdir -p "$(dirname "$f")" && cp -a "$T/backup$f" "$f.pp-restore" && mv -f "$f.pp-restore" "$f"
  done
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP

window=$SECONDS
check "dpkg -i installs it" quiet "$T/dpkg-i.log" dpkg -i "$PP_DEB" || exit 1
listed=$(dpkg -L "$PKG")
for f in /usr/bin/pilotd /usr/lib/pg_pilot/libpilot_mscn.so /usr/lib/pg_pilot/pilotd-cluster \
         /usr/lib/postgresql/15/lib/pg_pilot.so /usr/share/postgresql/15/extension/pg_pilot.control \
         /lib/systemd/system/pilotd@.service /etc/logrotate.d/$PKG /usr/share/doc/$PKG/README.md \
         /usr/share/doc/$PKG/monitoring/grafana-pilotd.json /usr/share/doc/$PKG/pilotd.conf.example; do
  check "installed: $f" bash -c '[ -e "$1" ] && grep -qx "$1" <<<"$2"' _ "$f" "$listed"
done
check "every library pilotd and the model runtime need is found" \
  bash -c '! ldd /usr/bin/pilotd /usr/lib/pg_pilot/libpilot_mscn.so | grep -q "not found"'
# pilotd dlopen()s BINDIR/../lib/pg_pilot/libpilot_mscn.so (models/mscn.cpp)
check "the model runtime loads from where /usr/bin/pilotd looks for it" \
  python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' /usr/bin/../lib/pg_pilot/libpilot_mscn.so
check "/usr/bin/pilotd --version says $(/usr/bin/pilotd --version 2>&1 | head -1)" quiet "$T/version.log" /usr/bin/pilotd --version

if command -v systemd-analyze >/dev/null; then
  # a template: verify loads it as pilotd@i.service (and checks ExecStart's program exists)
  check "systemd-analyze verify accepts pilotd@.service" systemd-analyze verify /lib/systemd/system/pilotd@.service
  exposure=$(systemd-analyze security --offline=true /lib/systemd/system/pilotd@.service 2>/dev/null |
             sed -n 's/.*Overall exposure level for pilotd@[^:]*: \([0-9.]*\).*/\1/p')
  check "its exposure level ${exposure:-?} is at most 3.0" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 3.0) }'
else
  echo "ok - skipped: no systemd-analyze (# SKIP)"
fi

# a throw-away cluster, known to postgresql-common's configuration like one of
# pg_createcluster's (/etc/postgresql/15/NAME) but with its data in $T
port=$(( 20000 + RANDOM % 20000 ))   # no TCP: names the socket in a private directory
mkdir -p "$T/sock" && chown postgres: "$T/sock"
quiet "$T/initdb.log" as_pg "$PG_BIN/initdb" -D "$T/data" -A trust -E UTF8 --locale=C.UTF-8
cat >>"$T/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$T/sock'
shared_preload_libraries = 'pg_pilot'
fsync = off
max_connections = 20
pg_pilot.timeout_ms = 2000
pg_pilot.guard = off
CONF
mkdir -p "$ETC" && echo "data_directory = '$T/data'" >"$ETC/postgresql.conf"
check "the cluster starts with the package's pg_pilot preloaded" \
  quiet "$T/pg_ctl.log" as_pg "$PG_BIN/pg_ctl" -D "$T/data" -l "$T/postgres.log" -w -t 60 start
# what pilotd@$INST.service runs: the wrapper, as root first (ExecStartPre=+), then as postgres
mkdir -p /etc/pg_pilot && echo '{"slots": 77, "store-dsn": "none"}' >"/etc/pg_pilot/$INST.json"
install -d -o postgres -g postgres -m 0750 /var/log/pg_pilot   # LogsDirectory= of the unit
check "pilotd-cluster $INST --prepare makes the state directory" \
  bash -c "/usr/lib/pg_pilot/pilotd-cluster $INST --prepare && [ \"\$(stat -c %U:%a $T/data/pg_pilot)\" = postgres:700 ]"
as_pg /usr/lib/pg_pilot/pilotd-cluster "$INST" </dev/null >"$T/pilotd.out" 2>&1 &
up() { as_pg /usr/bin/pilotd status -D "$T/data" >/dev/null 2>&1; }
for _ in $(seq 1 150); do up && break; sleep 0.1; done
check "pilotd-cluster $INST runs /usr/bin/pilotd on the cluster's data directory" up || sed 's/^/#   /' "$T/pilotd.out"
check "it logs to /var/log/pg_pilot/pilotd-$INST.log" [ -s "/var/log/pg_pilot/pilotd-$INST.log" ]

psql_pg() { as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$T/sock" -p "$port" -d postgres "$@"; }
check "CREATE EXTENSION pg_pilot" psql_pg -c "CREATE EXTENSION pg_pilot"
check "pilotd read /etc/pg_pilot/$INST.json (slots 77)" \
  [ "$(psql_pg -c "SELECT attached, slots FROM pg_pilot.daemon")" = "t|77" ]
# one round trip: a cardinality loaded into pilotd's oracle becomes the planner's estimate
cat >"$T/cards.txt" <<'CARDS'
4242||SELECT COUNT(*) FROM deb_t WHERE a < 500;
CARDS
chown postgres: "$T/cards.txt"
out=$(psql_pg -c "CREATE TABLE deb_t AS SELECT g AS a FROM generate_series(1, 1000) g; ANALYZE deb_t" \
  -c "SELECT loaded FROM pg_pilot.load_cardinalities('$T/cards.txt', replace => true)" \
  -c "SET pg_pilot.estimator = 'oracle'" \
  -c "SELECT used_rows::bigint, source FROM pg_pilot.explain_estimates('SELECT * FROM deb_t WHERE a < 500')" \
  -c "SELECT answered > 0 FROM pg_pilot.daemon" 2>&1)
echo "$out" | sed 's/^/# /'
check "the estimate came from pilotd's oracle (4242 rows, source oracle, answered > 0)" \
  [ "$out" = "$(printf '1\n4242|oracle\nt')" ]
# the package's logrotate file: renamed, then SIGHUP (systemctl kill in the
# postrotate; sent here by hand: no systemd as init) makes pilotd reopen its log
log=/var/log/pg_pilot/pilotd-$INST.log
if command -v logrotate >/dev/null; then
  check "logrotate rotates pilotd's log with /etc/logrotate.d/$PKG" \
    quiet "$T/logrotate.log" logrotate -f -s "$T/logrotate.state" /etc/logrotate.d/$PKG
  kill -HUP "$(cat "$T/data/pg_pilot/pilotd.pid")"
  reopened() { grep -q "log file reopened" "$log" 2>/dev/null; }
  for _ in $(seq 1 50); do reopened && break; sleep 0.1; done
  check "after SIGHUP pilotd writes to a new $log ($log.1 kept)" bash -c "[ -f $log.1 ] && grep -q 'log file reopened' $log"
else
  echo "ok - skipped: no logrotate (# SKIP)"
fi
stop_all
stopped() { ! up && [ ! -f "$T/data/postmaster.pid" ]; }
check "pilotd and the cluster stopped" stopped

check "dpkg -P removes it" quiet "$T/dpkg-P.log" dpkg -P "$PKG"
check "dpkg knows nothing of it any more" bash -c "! dpkg-query -W $PKG >/dev/null 2>&1"
left=()
for f in "${FILES[@]}" /etc/pg_pilot /usr/lib/pg_pilot /var/log/pg_pilot /usr/share/doc/$PKG; do
  if [ -e "$f" ] || [ -L "$f" ]; then left+=("$f"); fi
done
check "none of its files, /etc/pg_pilot or /var/log/pg_pilot is left (left: ${left[*]:-none})" [ ${#left[@]} -eq 0 ]

cleanup
trap - EXIT
echo "# dpkg -i to the files put back: $((SECONDS - window)) s"
same=0
for f in "${BACKED[@]}"; do cmp -s "$T/backup$f" "$f" && same=$((same + 1)); done
check "the ${#BACKED[@]} files that were there before are back ($same identical)" [ "$same" -eq ${#BACKED[@]} ]
rm -rf "$T"
[ "$FAILS" -eq 0 ]
