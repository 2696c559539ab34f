#!/usr/bin/env bash
# Soak: SOAK_CLIENTS (16) concurrent sessions run the fault tests' workload
# (joins of 2-4 tables, an outer join, a GROUP BY) for SOAK_SECONDS (60 in
# make check) with execution feedback on and the feedback store committing.
# Must show: zero failed queries, no crashed backend, pilotd and the sessions'
# backends with stable memory (RSS at ~10 % of the run vs at its end), and
# pilotd's counters moving (requests answered, feedback received).
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"
SECONDS_RUN=${SOAK_SECONDS:-60}
CLIENTS=${SOAK_CLIENTS:-16}
PGBENCH="$PG_BIN/pgbench"

script="$PP_DIR/soak.sql"
: >"$script"
for sql in "${WORKLOAD[@]}"; do echo "$sql;" >>"$script"; done

# private memory (RssAnon): shared buffers and pilotd's segment, which every
# process maps, are not what leaks
rss_kb() { local v; v=$(awk '/^RssAnon:/ {print $2}' "/proc/$1/status" 2>/dev/null); echo "${v:-0}"; }
backends() { mon "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_pilot_soak' AND backend_type = 'client backend' ORDER BY pid"; }
sum_rss() { local t=0 p; for p in "$@"; do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }
max_rss() { local m=0 p r; for p in "$@"; do r=$(rss_kb "$p"); [ "$r" -gt "$m" ] && m=$r; done; echo "$m"; }

pid=$(pp_pilotd_pid)
answered0=$(daemon_col "requests")
fb0=$(daemon_col "feedback_received")
out="$PP_DIR/soak_pgbench.out"
PGAPPNAME=pg_pilot_soak "$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECONDS_RUN" -f "$script" -P 10 "$PGDATABASE" >"$out" 2>&1 &
bench=$!

# the first sample once every session is connected and has run for a while
warm=$(( SECONDS_RUN / 10 > 3 ? SECONDS_RUN / 10 : 3 ))
sleep "$warm"
mapfile -t pids < <(backends)
pilotd_start_kb=$(rss_kb "$pid")
be_start_total=$(sum_rss "${pids[@]}")
be_start_max=$(max_rss "${pids[@]}")
sleep $(( SECONDS_RUN - warm - 5 > 1 ? SECONDS_RUN - warm - 5 : 1 ))
pilotd_end_kb=$(rss_kb "$pid")
be_end_total=$(sum_rss "${pids[@]}")
be_end_max=$(max_rss "${pids[@]}")
wait "$bench"
rc=$?
cat "$out" | sed 's/^/# /'

tx=$(grep -oE 'number of transactions actually processed: [0-9]+' "$out" | grep -oE '[0-9]+$')
failed=$(grep -oE 'number of failed transactions: [0-9]+' "$out" | grep -oE ': [0-9]+' | grep -oE '[0-9]+')
aborted=$(grep -c 'aborted\|ERROR' "$out")
answered1=$(daemon_col "requests")
fb1=$(daemon_col "feedback_received")
queries=$(( ${tx:-0} * ${#WORKLOAD[@]} ))
echo "# soak: $CLIENTS sessions x $SECONDS_RUN s: $queries queries (${tx:-0} rounds of ${#WORKLOAD[@]}), failed transactions ${failed:-?}"
echo "# pilotd private memory (RssAnon): $pilotd_start_kb kB at ${warm} s, $pilotd_end_kb kB at the end; requests answered +$((answered1 - answered0)), feedback records +$((fb1 - fb0))"
echo "# ${#pids[@]} backends' private memory: total $be_start_total -> $be_end_total kB, largest $be_start_max -> $be_end_max kB"

check "pgbench ran the soak to its end" [ "$rc" = 0 ]
check "the soak ran queries" [ "$queries" -gt 0 ]
check "zero failed queries" [ "${failed:-1}" = 0 -a "$aborted" = 0 ]
check "all $CLIENTS sessions were measured" [ "${#pids[@]}" = "$CLIENTS" ]
check "pilotd answered and received feedback during the soak" [ $((answered1 - answered0)) -gt 0 -a $((fb1 - fb0)) -gt 0 ]
# stable: growth after warm-up within 20 % + 8 MB (pilotd) and 10 % + 4 MB per backend
if [ -n "${PP_ASAN:-}" ]; then
  # ASan keeps freed memory in its quarantine (up to 256 MB a process) and
  # grows its allocator's caches: memory says nothing here; LeakSanitizer
  # checks pilotd at its exit, and make check measures memory uninstrumented
  echo "# make check-asan: memory stability is measured by make check, not under ASan"
else
  check "pilotd's memory is stable" [ "$pilotd_start_kb" -gt 0 -a "$pilotd_end_kb" -gt 0 -a "$pilotd_end_kb" -le $(( pilotd_start_kb * 12 / 10 + 8192 )) ]
  check "the backends' memory is stable" [ "$be_start_max" -gt 0 -a "$be_end_max" -gt 0 -a "$be_end_max" -le $(( be_start_max * 11 / 10 + 4096 )) ]
fi
check "pilotd still serves" "$PILOTD" status -D "$PGDATA"
check_no_crash "soak"
finish
