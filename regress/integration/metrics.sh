#!/usr/bin/env bash
# pilotd's Prometheus endpoint (--metrics-address), with real processes: what
# it serves passes `promtool check metrics`; its counters follow what pilotd
# does (estimates asked and answered, feedback received, the key catalog);
# a port already taken costs the metrics, not the estimates; a malformed
# address is a usage error.
source "$PP_REGRESS/lib/cluster.sh"; source "$PP_REGRESS/lib/fault.sh"

port=$(pp_free_port)
URL="http://127.0.0.1:$port/metrics"
scrape() { curl -fsS --max-time 10 "$URL"; }
# metric NAME [LABELS]: its value in a fresh scrape (empty when absent)
metric() { scrape | awk -v m="$1${2:-}" '$1 == m { print $2; exit }'; }
grew() { [ -n "$2" ] && [ "$(metric "$1")" != "" ] && awk -v a="$(metric "$1")" -v b="$2" 'BEGIN { exit !(a > b) }'; }

pp_pilotd_stop
pp_pilotd_start --metrics-address "127.0.0.1:$port" >/dev/null
check "pilotd logs where its metrics are" grep -q "metrics: http://127.0.0.1:$port/metrics" "$PP_DIR/pilotd.log"
out=$(scrape)
check "the endpoint answers" [ -n "$out" ]
check "what it serves passes promtool check metrics" bash -c 'promtool check metrics <<<"$1"' _ "$out"
check "pilotd_info names the protocol" grep -qE '^pilotd_info\{.*protocol="[0-9]+".*\} 1$' <<<"$out"
check "the segment is published" [ "$(metric pilotd_segment_published)" = 1 ]
check "the store state is one of its states" grep -qE '^pilotd_store_state\{state="(disabled|ok|retrying)"\} 1$' <<<"$out"

# the shipped dashboard's queries are valid PromQL (promtool check rules)
dashboard="$PP_WORK/monitoring/grafana-pilotd.json"
python3 - "$dashboard" >"$PP_DIR/dashboard_rules.yml" <<'PY'
import json, sys
exprs = [t["expr"] for p in json.load(open(sys.argv[1]))["panels"] for t in p["targets"]]
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    print(f"      - record: dashboard_query_{i}\n        expr: {json.dumps(e.replace('$job', '.*'))}")
PY
check "the Grafana dashboard's queries are valid PromQL" promtool check rules "$PP_DIR/dashboard_rules.yml"

# the shipped sql_exporter collector: every query runs on pg_pilot's views and
# returns the columns its metric names
python3 - "$PP_WORK/monitoring/sql_exporter.yml" >"$PP_DIR/collector.tsv" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
named = {q["query_name"]: q["query"] for q in c.get("queries", [])}
for m in c["metrics"]:
    sql = m.get("query") or named[m["query_ref"]]
    cols = m.get("key_labels", []) + m["values"]
    print(m["metric_name"] + "\t" + ",".join(cols) + "\t" + " ".join(sql.split()))
PY
collector_ok() {
  local name cols sql got n=0
  while IFS=$'\t' read -r name cols sql; do
    got=$(mon "CREATE TEMP VIEW collector_q AS $sql; TABLE collector_q;
               SELECT string_agg(attname, ',') FROM pg_attribute WHERE attrelid = 'collector_q'::regclass AND attnum > 0" 2>&1) ||
      { echo "# $name: $got"; return 1; }
    got=$(tail -1 <<<"$got")
    for c in ${cols//,/ }; do
      grep -qw "$c" <<<"$got" || { echo "# $name: no column $c in ($got)"; return 1; }
    done
    n=$((n + 1))
  done <"$PP_DIR/collector.tsv"
  echo "# sql_exporter collector: $n metrics' queries ran"
  [ "$n" -ge 8 ]
}
check "the sql_exporter collector's queries run and return their metrics' columns" collector_ok

# estimates: a true count loaded, then asked and answered
items0=$(metric pilotd_estimate_items_total); answered0=$(metric pilotd_estimate_answered_total)
oracle0=$(metric pilotd_estimate_answers_total '{source="oracle"}')
timed0=$(metric pilotd_estimate_request_seconds_count)
cat >"$PP_DIR/metrics_cards.txt" <<CARDS
7||SELECT COUNT(*) FROM orders AS o WHERE o.status = 3;
CARDS
mon "SELECT loaded FROM pg_pilot.load_cardinalities('$PP_DIR/metrics_cards.txt', replace => false)" >/dev/null
check "pilotd_oracle_entries counts the loaded count" [ "$(metric pilotd_oracle_entries)" -ge 1 ]
mon "EXPLAIN SELECT count(*) FROM orders o WHERE o.status = 3" >/dev/null
check "pilotd_estimate_items_total grew with the ask" grew pilotd_estimate_items_total "$items0"
check "pilotd_estimate_answered_total grew with the answer" grew pilotd_estimate_answered_total "$answered0"
check "pilotd_estimate_answers_total{source=\"oracle\"}: the oracle answered it" \
  grew 'pilotd_estimate_answers_total{source="oracle"}' "$oracle0"
check "pilotd_estimate_request_seconds: the request was timed" grew pilotd_estimate_request_seconds_count "$timed0"
check "the time histogram has its buckets, +Inf last" \
  bash -c 'grep -c "^pilotd_estimate_request_seconds_bucket" <<<"$1" | grep -qx 13 && grep -q "^pilotd_estimate_request_seconds_bucket{le=\"+Inf\"}" <<<"$1"' _ "$(scrape)"

# execution feedback and the key texts it brings
received0=$(metric pilotd_feedback_received_total)
texts0=$(metric pilotd_key_texts); entries0=$(metric pilotd_key_catalog_entries)
# constants no suite used before: relation sets whose texts pilotd lacks
q "SELECT count(*) FROM orders o JOIN customer c ON c.id = o.customer_id WHERE o.status = 2 AND o.id < 4711" >/dev/null
check "pilotd_feedback_received_total grows with an executed query" \
  wait_until 30 grew pilotd_feedback_received_total "$received0"
check "pilotd_key_texts grows with the query's new texts" wait_until 30 grew pilotd_key_texts "$texts0"
check "pilotd_key_catalog_entries: and they are written" wait_until 30 grew pilotd_key_catalog_entries "$entries0"
mon "SELECT pg_pilot.clear_cardinalities()" >/dev/null

# a port someone else holds: no metrics, estimates as before
pp_pilotd_stop
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $port)); s.listen(1); time.sleep(60)" &
holder=$!
sleep 0.5
pp_pilotd_start --metrics-address "127.0.0.1:$port" >/dev/null
check "a taken port: pilotd says so and serves without metrics" \
  grep -q "metrics: cannot listen on 127.0.0.1:$port.*serving without metrics" "$PP_DIR/pilotd.log"
check "and estimates are served (pg_pilot.daemon attached)" [ "$(daemon_col attached)" = t ]
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

err=$("$PILOTD" -D "$PGDATA" --metrics-address "localhost" 2>&1); rc=$?
usage_error() { [ "$rc" = 2 ] && grep -q "must be HOST:PORT" <<<"$err"; }
check "a malformed address is a usage error (exit 2) that says the form" usage_error
help_documents() { "$PILOTD" --help | grep -q -- "--metrics-address HOST:PORT"; }
check "pilotd --help documents --metrics-address" help_documents

pp_pilotd_stop
pp_pilotd_start >/dev/null
check_no_crash "metrics"
finish
