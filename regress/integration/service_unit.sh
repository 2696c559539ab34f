#!/usr/bin/env bash
# The systemd unit shipped for pilotd (daemon/pilotd.service, installed by
# make install): systemd accepts it, its hardening keeps the exposure level
# systemd-analyze security reports at 3.0 or below, the command line it runs
# uses only options pilotd knows, and it sets nothing that would harm the
# PostgreSQL server running as the same user.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"
# make install puts it beside the README (PREFIX/share/doc/pg_pilot)
UNIT=${PP_UNIT:-$(dirname "$(command -v pilotd || echo /usr/local/bin/pilotd)")/../share/doc/pg_pilot/pilotd.service}
if ! command -v systemd-analyze >/dev/null; then echo "ok - skipped: no systemd-analyze (# SKIP)"; exit 0; fi
check "the unit file exists ($UNIT)" [ -f "$UNIT" ]
cp "$UNIT" "$PP_DIR/pilotd.service"
# verify checks the unit's directives and that ExecStart's program exists
check "systemd-analyze verify accepts the unit" systemd-analyze verify "$PP_DIR/pilotd.service"
exposure=$(systemd-analyze security --offline=true "$PP_DIR/pilotd.service" 2>/dev/null |
           sed -n 's/.*Overall exposure level for pilotd.service: \([0-9.]*\).*/\1/p')
echo "# systemd-analyze security: overall exposure $exposure"
check "exposure level $exposure is at most 3.0" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 3.0) }'
exec_line=$(sed -n 's/^ExecStart=//p' "$UNIT")
help=$("$PILOTD" --help 2>&1)
unknown=""
for opt in $(grep -oE '(^| )--?[a-zA-Z][a-zA-Z-]*' <<<"$exec_line"); do
  grep -qE "(^|[ ,])$opt([ ,=]|$)" <<<"$help" || unknown+=" $opt"
done
check "ExecStart uses only options pilotd --help lists (unknown:${unknown:- none})" [ -z "$unknown" ]
check "the unit runs pilotd as postgres with no capabilities" \
  bash -c "grep -qx 'User=postgres' '$UNIT' && grep -qx 'CapabilityBoundingSet=' '$UNIT' && grep -qx 'NoNewPrivileges=true' '$UNIT'"
check "the unit restarts pilotd when it exits failed" grep -qx 'Restart=on-failure' "$UNIT"
# RemoveIPC=true would remove PostgreSQL's own shared memory (same user) at stop
check "the unit does not set RemoveIPC" bash -c "! grep -qE '^RemoveIPC=(true|yes|1)' '$UNIT'"
check "the segment stays reachable (/dev/shm writable, no private /dev or /tmp)" \
  bash -c "grep -qE '^ReadWritePaths=.*/dev/shm' '$UNIT' && ! grep -qE '^(PrivateDevices|PrivateTmp)=(true|yes)' '$UNIT'"
finish
