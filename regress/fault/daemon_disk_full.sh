#!/usr/bin/env bash
# Disk full under pilotd's state directory, simulated with a file-size limit
# on the running pilotd (prlimit --fsize 1 KiB: every write that grows a file,
# the memo journal, the spool, the log, fails with EFBIG, as on a full disk),
# while 4 sessions stream queries with feedback on; then the limit is lifted.
# No query fails, pilotd survives (SIGXFSZ does not kill it), the feedback
# it could not make durable is not acknowledged but waits in the queues, and
# once there is room again it drains: every record sent is stored once.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

check "the store is drained before the test" store_wait_drained
mon "SELECT pg_pilot.reset_stats()" >/dev/null
rows_before=$(store_rows)
pid=$(pp_pilotd_pid)
appended_before=$(daemon_col spool_appended)

prlimit --pid "$pid" --fsize=1024:unlimited
feedback_streams_start 4 5 diskfull_stream
# mid-stream: the sessions' feedback piles up unacknowledged
feedback_waits() { [ "$(daemon_col feedback_queued)" -gt 0 ] 2>/dev/null; }
wait_until 60 feedback_waits
appended_full=$(daemon_col spool_appended)
feedback_streams_wait diskfull_stream
queued_end=$(daemon_col feedback_queued)
echo "# disk full: $STREAMS_RUNS queries; pilotd acknowledged $((appended_full - appended_before)) records by the time feedback was waiting, $queued_end waiting in the queues at the end"
check "no query failed while the disk was full" [ "$STREAMS_FAILED" -eq 0 -a "$STREAMS_RUNS" -gt 20 ]
check "pilotd survived the failed writes (same process)" kill -0 "$pid"
check "feedback it could not make durable was not acknowledged: it waits in the queues" [ "$queued_end" -gt 0 ]

prlimit --pid "$pid" --fsize=unlimited:unlimited
check "with room again everything drains into the store" store_wait_drained 60
check_stored "$rows_before"
check "pilotd is still the same process" [ "$(pp_pilotd_pid)" = "$pid" ]
check_no_crash "disk full under pilotd"
finish
