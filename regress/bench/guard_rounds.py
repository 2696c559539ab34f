#!/usr/bin/env python3
"""guard_rounds.py — the plan guard's phase of `make bench`: a repeated workload.

The test queries run in R rounds.  In each round every query runs REPS times
under each mode, the modes interleaved and rotated (no mode always first), one
new connection per run (an application without a pool: the guard must work
across backends) and the median kept; time = planning + execution from
EXPLAIN (ANALYZE, FORMAT JSON).  Modes:
  native    pg_pilot.enabled = off: PostgreSQL alone
  control   the same again (with --control): reads this run's noise
  guarded   pg_pilot's estimates (ESTIMATOR, default learned) with pg_pilot.guard
            on: new templates explore (their runs alternate between pg_pilot's
            estimates and PostgreSQL's), then each runs with the faster side
Per round and mode: total against native, queries more than 1.2x (and 2 ms)
slower / faster than native; and the guard's decisions so far
(pg_pilot.guard_templates()).  Writes --out (JSON) and prints a summary.
"""
import argparse
import json
import statistics
import sys
import time

import psycopg2

ap = argparse.ArgumentParser()
ap.add_argument("--db", required=True)
ap.add_argument("--workload", required=True, help="one query per line, optionally 'N||query'")
ap.add_argument("--rounds", type=int, default=4)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--estimator", default="learned")
ap.add_argument("--control", action="store_true")
ap.add_argument("--timeout-ms", type=int, default=10000)
ap.add_argument("--out", required=True)
a = ap.parse_args()


def log(msg):
    print(msg, flush=True)


queries = []
for line in open(a.workload):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if "||" in line and line.split("||", 1)[0].replace(".", "").isdigit():
        line = line.split("||", 1)[1]
    queries.append(line.rstrip(";"))

MODES = [("native", "SET pg_pilot.enabled = off")]
if a.control:
    MODES.append(("control", "SET pg_pilot.enabled = off"))
MODES.append(("guarded", f"SET pg_pilot.estimator = '{a.estimator}'; SET pg_pilot.guard = on; "
                         "SET pg_pilot.collect_feedback = on"))


def timed(q, setup):
    """planning + execution ms of one run on a new connection (the timeout's value when it fails)"""
    conn = psycopg2.connect(dbname=a.db)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(f"SET statement_timeout = {a.timeout_ms}; {setup}")
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + q)
        plan = cur.fetchone()[0][0]
        return plan["Planning Time"] + plan["Execution Time"]
    except psycopg2.Error:
        return float(a.timeout_ms)
    finally:
        conn.close()


def decisions(conn):
    cur = conn.cursor()
    cur.execute("SELECT decision, count(*) FROM pg_pilot.guard_templates() "
                "WHERE dboid = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY 1")
    return dict(cur.fetchall())


mon = psycopg2.connect(dbname=a.db)
mon.autocommit = True
mon.cursor().execute("SET pg_pilot.collect_feedback = off")
t_start = time.time()
rounds = []
log(f"== plan guard: {len(queries)} queries x {a.rounds} rounds x {a.reps} reps x {len(MODES)} modes "
    f"(estimator {a.estimator}), one connection per run")
for r in range(1, a.rounds + 1):
    per = {m: [] for m, _ in MODES}
    for i, q in enumerate(queries):
        runs = {m: [] for m, _ in MODES}
        for k in range(a.reps):
            order = MODES[k % len(MODES):] + MODES[:k % len(MODES)]
            for m, setup in order:
                runs[m].append(timed(q, setup))
        for m in runs:
            per[m].append(statistics.median(runs[m]))
    base = per["native"]
    row = {"round": r, "native_ms": round(sum(base), 1), "modes": {}, "decisions": decisions(mon)}
    for m, _ in MODES[1:]:
        t = per[m]
        slower = [i for i, (x, b) in enumerate(zip(t, base)) if x > 1.2 * b and x - b > 2]
        faster = [i for i, (x, b) in enumerate(zip(t, base)) if x * 1.2 < b and b - x > 2]
        row["modes"][m] = {"total_ms": round(sum(t), 1), "ratio": round(sum(t) / max(sum(base), 1e-9), 3),
                           "slower_1_2x": len(slower), "faster_1_2x": len(faster),
                           "slowest": sorted(({"query": i + 1, "native_ms": round(base[i], 1),
                                               "ms": round(t[i], 1)} for i in slower),
                                             key=lambda s: -s["ms"] / max(s["native_ms"], 1e-9))[:5]}
    rounds.append(row)
    parts = [f"native {row['native_ms']:.0f} ms"]
    for m, v in row["modes"].items():
        parts.append(f"{m} {v['total_ms']:.0f} ms ({v['ratio']:.3f}x, >1.2x slower {v['slower_1_2x']}, "
                     f"faster {v['faster_1_2x']})")
    log(f"round {r}: " + "; ".join(parts) + f"; decisions {row['decisions']}")

out = {"queries": len(queries), "rounds": a.rounds, "reps": a.reps, "estimator": a.estimator,
       "control": a.control, "seconds": round(time.time() - t_start), "per_round": rounds}
json.dump(out, open(a.out, "w"), indent=1)
log(f"   guard rounds: {out['seconds']} s")
