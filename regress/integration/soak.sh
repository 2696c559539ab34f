#!/usr/bin/env bash
# Soak: SOAK_CLIENTS (16) concurrent sessions run the fault tests' workload
# (joins of 2-4 tables, an outer join, a GROUP BY) for SOAK_SECONDS (60 in
# make check) with execution feedback on and the feedback store committing.
# Must show: zero failed queries, no crashed backend, pilotd and the sessions'
# backends with stable memory (RSS at ~10 % of the run vs the last sample
# taken while every session was alive), and
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

pid=$(pp_pilotd_pid)
answered0=$(daemon_col "requests")
fb0=$(daemon_col "feedback_received")
out="$PP_DIR/soak_pgbench.out"
PGAPPNAME=pg_pilot_soak "$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECONDS_RUN" -f "$script" -P 10 "$PGDATABASE" >"$out" 2>&1 &
bench=$!

# sample PIDS...: "total largest" RssAnon of the processes, and success only
# if every one of them is still a live postgres process: a sample never counts
# a session that has gone (its memory would read as 0)
sample() {
  local p r t=0 m=0
  for p in "$@"; do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = postgres ] || return 1
    r=$(awk '/^RssAnon:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    [ -n "$r" ] || return 1
    t=$((t + r)); [ "$r" -gt "$m" ] && m=$r
  done
  echo "$t $m"
}
running() { kill -0 "$bench" 2>/dev/null; }

# the first sample once every session is connected and has run for a while
deadline=$((SECONDS + 120))
pids=()
while running && [ $SECONDS -lt $deadline ]; do
  mapfile -t pids < <(backends)
  [ "${#pids[@]}" -ge "$CLIENTS" ] && break
  sleep 0.5
done
warm=$(( SECONDS_RUN / 10 > 3 ? SECONDS_RUN / 10 : 3 ))
sleep "$warm"
t_start=$SECONDS
start=$(sample "${pids[@]}") && pilotd_start_kb=$(rss_kb "$pid")
# then one sample every 2 s while pgbench runs; the end sample is the last one
# taken while every session was still alive, whatever pgbench's pace
end=; t_end=$t_start
while running; do
  if s=$(sample "${pids[@]}"); then end=$s; t_end=$SECONDS; pilotd_end_kb=$(rss_kb "$pid"); fi
  sleep 2
done
wait "$bench"
rc=$?
read -r be_start_total be_start_max <<<"${start:-0 0}"
read -r be_end_total be_end_max <<<"${end:-0 0}"
pilotd_start_kb=${pilotd_start_kb:-0}; pilotd_end_kb=${pilotd_end_kb:-0}
cat "$out" | sed 's/^/# /'

tx=$(grep -oE 'number of transactions actually processed: [0-9]+' "$out" | grep -oE '[0-9]+$')
failed=$(grep -oE 'number of failed transactions: [0-9]+' "$out" | grep -oE ': [0-9]+' | grep -oE '[0-9]+')
aborted=$(grep -c 'aborted\|ERROR' "$out")
answered1=$(daemon_col "requests")
fb1=$(daemon_col "feedback_received")
queries=$(( ${tx:-0} * ${#WORKLOAD[@]} ))
echo "# soak: $CLIENTS sessions x $SECONDS_RUN s: $queries queries (${tx:-0} rounds of ${#WORKLOAD[@]}), failed transactions ${failed:-?}"
echo "# pilotd private memory (RssAnon): $pilotd_start_kb kB at ${warm} s, $pilotd_end_kb kB at the end; requests answered +$((answered1 - answered0)), feedback records +$((fb1 - fb0))"
echo "# ${#pids[@]} backends' private memory: total $be_start_total -> $be_end_total kB, largest $be_start_max -> $be_end_max kB (samples $((t_end - t_start)) s apart)"

check "pgbench ran the soak to its end" [ "$rc" = 0 ]
check "the soak ran queries" [ "$queries" -gt 0 ]
check "zero failed queries" [ "${failed:-1}" = 0 -a "$aborted" = 0 ]
check "all $CLIENTS sessions were measured" [ "${#pids[@]}" = "$CLIENTS" ]
check "pilotd answered and received feedback during the soak" [ $((answered1 - answered0)) -gt 0 -a $((fb1 - fb0)) -gt 0 ]
# A missing sample is the test's own failure, said as such: the memory checks
# below judge growth only between two real samples.
if [ -z "$start" ]; then
  not_ok "memory sample: a session ended before the first sample (pgbench: $(tail -1 "$out"))"
elif [ -z "$end" ] || [ $((t_end - t_start)) -lt $(( SECONDS_RUN / 2 )) ]; then
  not_ok "memory sample: no end sample at least $(( SECONDS_RUN / 2 )) s after the first while every session was alive"
fi
# stable: growth after warm-up within 20 % + 8 MB (pilotd) and 10 % + 4 MB per backend
if [ -n "${PP_ASAN:-}" ]; then
  # ASan keeps freed memory in its quarantine (up to 256 MB a process) and
  # grows its allocator's caches: memory says nothing here; LeakSanitizer
  # checks pilotd at its exit, and make check measures memory uninstrumented
  echo "# make check-asan: memory stability is measured by make check, not under ASan"
elif [ -n "$start" ] && [ -n "$end" ]; then
  check "pilotd's memory is stable" [ "$pilotd_end_kb" -gt 0 -a "$pilotd_end_kb" -le $(( pilotd_start_kb * 12 / 10 + 8192 )) ]
  check "the backends' memory is stable" [ "$be_end_max" -le $(( be_start_max * 11 / 10 + 4096 )) ]
fi
check "pilotd still serves" "$PILOTD" status -D "$PGDATA"
check_no_crash "soak"
finish
