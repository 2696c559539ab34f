#!/usr/bin/env python3
"""workload_bench.py — the workload benchmark of `make bench`: native
PostgreSQL vs pg_pilot's learned chain vs true cardinalities (oracle), on a
train and a test workload over one database, in the same run.

    workload_bench.py --db DB --train TRAIN --test TEST --out DIR
                      [--reps 3] [--timeout 30s] [--clients 8] [--seconds 15]

TRAIN/TEST: one query per line, optionally "N||query" (N is ignored: the
truth is computed here).  Steps, on the cluster of PGHOST/PGPORT (pg_pilot
preloaded, pilotd running, CREATE EXTENSION pg_pilot done in DB):
  1. train   every train query runs once with execution feedback collected:
             what the learned side learns from; then `pilotd collect
             --subplans` counts every sub-plan of the first
             --subplan-queries of them (feedback on), so the model also sees
             the sets the chosen plans never execute;
  2. truth   the true count of every relation set the planner sizes for the
             test queries (pg_pilot.subplans(), counted by `pilotd collect
             --oracle-out`, at most --max-subplans per query), feedback
             off, loaded as the oracle;
  2b. model `pilotd train` trains a learned-model version from the feedback
             of step 1 (the feedback store) and pilotd validates it on
             held-out feedback; its state, validation q-errors and size;
  3. qerror  every relation set the planner sizes for a test query, under
             each estimator (native: pilotd answers nothing; memo: execution
             feedback of the train queries; learned: the learned model;
             oracle), against the truth, matched by subplan key;
  4. e2e     every test query under the three modes, interleaved (the order
             rotates), --reps times, each within --timeout (a timeout counts
             as the timeout), feedback off; planning time from EXPLAIN;
  5. feedback  execution time with feedback collection on vs off;
  6. concurrency  pgbench, --clients sessions running the test queries that
             finish natively within 1 s, --seconds per mode: throughput of
             native vs pg_pilot, and pilotd's round trip under that load.
Writes DIR/workload.json and, with matplotlib, DIR/qerror.png and
DIR/speedup.png.  Progress goes to stdout.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "demo"))

MODES = ("native", "learned", "oracle")          # end to end
QMODES = ("native", "memo", "learned", "oracle")  # q-error
ESTIMATOR = {"native": "native", "memo": "memo", "learned": "learned", "oracle": "oracle"}


def log(msg):
    print(msg, flush=True)


def read_queries(path):
    out = []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "||" in line and line.split("||", 1)[0].replace(".", "").isdigit():
            line = line.split("||", 1)[1]
        out.append(line)
    return out


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def qerr(est, true):
    e, t = max(est, 1.0), max(true, 1.0)
    return max(e, t) / min(e, t)


class Bench:
    def __init__(self, a):
        self.a = a
        self.conn = psycopg2.connect(dbname=a.db)
        self.conn.autocommit = True
        self.cur = self.conn.cursor()

    def sql(self, q, args=None):
        self.cur.execute(q, args)
        return self.cur.fetchall() if self.cur.description else None

    def set_mode(self, mode):
        if mode == "native":
            self.sql("SET pg_pilot.enabled = off")
        else:
            self.sql("SET pg_pilot.enabled = on")
            self.sql("SET pg_pilot.estimator = %s", (ESTIMATOR[mode],))

    def timed(self, q):
        """(ms, timed_out) of one execution within the statement timeout."""
        t0 = time.perf_counter()
        try:
            self.cur.execute(q)
            self.cur.fetchall()
            return (time.perf_counter() - t0) * 1000.0, False
        except psycopg2.errors.QueryCanceled:
            return self.timeout_ms, True

    # 1 ------------------------------------------------------------------
    def train(self, queries):
        self.sql("SET pg_pilot.collect_feedback = on")
        self.sql("SET pg_pilot.feedback_sample_rate = 1.0")
        self.set_mode("memo")
        timeouts = 0
        for i, q in enumerate(queries, 1):
            _, out = self.timed(q)
            timeouts += out
            if i % 50 == 0:
                log(f"   train: {i}/{len(queries)}")
        self.wait_drained()
        log(f"   train: {len(queries)} queries run ({timeouts} timed out), feedback drained")
        out = {"queries": len(queries), "timeouts": timeouts}
        n = min(self.a.subplan_queries, len(queries))
        if n > 0:
            # the plans' feedback alone shows the model only the sets the
            # planner chose: count every sub-plan of the first n queries too
            path = os.path.join(self.a.out, "subplan_queries.txt")
            with open(path, "w") as f:
                f.writelines(q.rstrip(";") + "\n" for q in queries[:n])
            t0 = time.time()
            p = subprocess.run([self.a.pilotd, "collect", "--workload", path, "--dsn", self.a.model_dsn,
                                "--timeout-ms", str(int(self.timeout_ms)), "--subplans"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            lines = p.stdout.strip().splitlines()
            for line in lines[-2:]:
                log("   " + line)
            self.wait_drained()
            m = re.search(r"sub-plans: (\d+) counted, (\d+) timed out", p.stdout)
            out["subplans"] = {"queries": n, "counted": int(m.group(1)) if m else None,
                               "timeouts": int(m.group(2)) if m else None,
                               "seconds": round(time.time() - t0, 1), "ok": p.returncode == 0}
        return out

    def wait_drained(self):
        for _ in range(600):
            r = self.sql("SELECT feedback_queued = 0 AND spool_pending = 0 FROM pg_pilot.daemon")
            if r and r[0][0]:
                return
            time.sleep(0.1)

    # 2b -----------------------------------------------------------------
    def model(self):
        """Trains a model version with `pilotd train` and waits for pilotd's verdict."""
        a = self.a
        cmd = [a.pilotd, "train", "-D", a.pgdata, "--state-dir", a.state_dir, "--store-dsn", a.store_dsn,
               "--model-dsn", a.model_dsn, "--train-seconds", str(a.train_seconds),
               "--train-epochs", str(a.train_epochs), "--train-seed", str(a.train_seed)]
        t0 = time.time()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        secs = time.time() - t0
        for line in p.stdout.splitlines():
            log("   " + line)
        out = {"train_seconds": round(secs, 1), "trained": p.returncode == 0}
        if p.returncode != 0:
            return {"model": out}
        version = int(p.stdout.split(" written")[0].rsplit("version ", 1)[1])
        row = None
        for _ in range(300):
            r = self.sql("SELECT state, train_records, validation_records, model_qerror_p50, model_qerror_p90, "
                         "model_qerror_p99, native_qerror_p50, native_qerror_p90, native_qerror_p99, size_bytes, "
                         "note FROM pg_pilot.models WHERE version = %s", (version,))
            if r and r[0][0] in ("serving", "rejected"):
                row = r[0]
                break
            time.sleep(0.1)
        if row is None:
            out["state"] = "undecided"
            return {"model": out}
        out.update({"version": version, "state": row[0], "train_records": row[1], "validation_records": row[2],
                    "validation_qerror": {"model": [round(x, 2) for x in row[3:6]],
                                          "native": [round(x, 2) for x in row[6:9]]},
                    "size_bytes": row[9], "note": row[10]})
        log(f"   model: version {version} {row[0]}: {row[10]}")
        return {"model": out}

    def inference(self):
        """Per planning batch inference time of the serving version (pilotd measures it)."""
        r = self.sql("SELECT version, batches, inference_us_p50, inference_us_p99, served, declined, size_bytes "
                     "FROM pg_pilot.models WHERE state = 'serving'")
        if not r:
            return None
        v = r[0]
        return {"version": v[0], "batches": v[1], "p50_us": v[2], "p99_us": v[3], "served": v[4],
                "declined": v[5], "size_bytes": v[6]}

    # 2 ------------------------------------------------------------------
    def truth(self, tests):
        # the planner's own sets (pg_pilot.subplans(), the keys the estimates
        # are asked under), each counted by `pilotd collect --oracle-out` with
        # feedback off and hash joins only (nested loops on a bad estimate are
        # not a robust way to count), written as the oracle file
        path = os.path.join(self.a.out, "test_queries.txt")
        with open(path, "w") as f:
            f.writelines(q.rstrip(";") + "\n" for q in tests)
        oracle = os.path.join(self.a.out, "oracle.txt")
        timeout = self.a.truth_timeout or self.a.timeout
        timeout_ms = float(self.sql("SELECT extract(epoch FROM %s::interval) * 1000", (timeout,))[0][0])
        p = subprocess.run([self.a.pilotd, "collect", "--workload", path, "--dsn", self.a.model_dsn,
                            "--timeout-ms", str(int(timeout_ms)), "--oracle-out", oracle,
                            "--max-subplans", str(self.a.max_subplans)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "(no output)"
        if p.returncode != 0:
            raise RuntimeError(f"pilotd collect --oracle-out failed: {p.stdout.strip()[-2000:]}")
        m = re.search(r"(\d+) sub-plans counted .*\((\d+) timed out, (\d+) failed, (\d+) not describable, "
                      r"(\d+) queries capped", last)
        counted, timeouts, failed, undescribable, capped = (int(g) for g in m.groups()) if m else (None,) * 5
        truth = {}
        with open(oracle) as f:
            for line in f:
                rows, s = line.rstrip("\n").split("||", 1)
                key = self.sql("SELECT key FROM pg_pilot.subplan_key(%s)", (s,))[0][0]
                truth[key] = float(rows)
        r = self.sql("SELECT lines, loaded, failed FROM pg_pilot.load_cardinalities(%s, replace => true)", (oracle,))
        log(f"   truth: {last}; oracle loaded (lines, loaded, failed): {r[0]}")
        self.truth_by_key = truth
        return {"subplans": counted, "undescribable": undescribable, "capped_queries": capped,
                "timeouts": timeouts, "failed": failed}

    # 3 ------------------------------------------------------------------
    def reconnect(self):
        """A fresh session: one that sat idle through the long counting phase
        once got no pg_pilot answer at all (cause not found yet)."""
        self.conn.close()
        self.conn = psycopg2.connect(dbname=self.a.db)
        self.conn.autocommit = True
        self.cur = self.conn.cursor()
        self.sql("SET statement_timeout = %s", (self.a.timeout,))

    def qerror(self, tests):
        self.reconnect()
        self.sql("SET pg_pilot.collect_feedback = off")
        values = {m: [] for m in QMODES}
        by_nrels = {m: {} for m in QMODES}
        # per (query, key): the rows each mode used, for learned vs native
        used_by = {}
        sources, oracle_sources = {}, {}
        for m in QMODES:
            # pg_pilot on in every mode (explain_estimates reports through it);
            # estimator native: pilotd answers nothing, PostgreSQL's own rows
            self.sql("SET pg_pilot.enabled = on")
            self.sql("SET pg_pilot.estimator = %s", (ESTIMATOR[m],))
            for qi, q in enumerate(tests):
                try:
                    rows = self.sql("SELECT key, nrels, used_rows, source FROM pg_pilot.explain_estimates(%s)", (q,))
                except psycopg2.Error as e:
                    log(f"   qerror: not planned ({str(e).strip()[:80]}): {q[:60]}")
                    continue
                for key, nrels, used, source in rows:
                    t = self.truth_by_key.get(key)
                    if t is None or used is None:
                        continue
                    e = qerr(used, t)
                    values[m].append(e)
                    used_by.setdefault((qi, key), {"nrels": nrels, "true": t})[m] = (used, (source or "?").split(" ")[0])
                    by_nrels[m].setdefault(nrels, []).append(e)
                    if m == "learned":
                        src = (source or "?").split(" ")[0]
                        sources[src] = sources.get(src, 0) + 1
                    if m == "oracle":  # the check of the harness itself: should be all oracle
                        oracle_sources[source or "?"] = oracle_sources.get(source or "?", 0) + 1
        out = {"qerror": {}, "qerror_by_nrels": {}, "learned_sources": sources, "oracle_sources": oracle_sources}
        for m in QMODES:
            v = values[m]
            out["qerror"][m] = {"n": len(v), "p50": round(pct(v, .5), 2) if v else None,
                                "p90": round(pct(v, .9), 2) if v else None,
                                "p99": round(pct(v, .99), 2) if v else None,
                                "max": round(max(v), 2) if v else None}
            out["qerror_by_nrels"][m] = {str(k): {"n": len(x), "p50": round(pct(x, .5), 2),
                                                  "p90": round(pct(x, .9), 2)}
                                         for k, x in sorted(by_nrels[m].items())}
        # learned against PostgreSQL, sub-plan by sub-plan: how many got more
        # than 2x worse or better, and the worst ten
        pairs = [v for v in used_by.values() if "native" in v and "learned" in v]
        worse = better = 0
        for v in pairs:
            v["q_native"] = qerr(v["native"][0], v["true"])
            v["q_learned"] = qerr(v["learned"][0], v["true"])
            worse += v["q_learned"] > 2 * v["q_native"]
            better += v["q_native"] > 2 * v["q_learned"]
        ranked = sorted(pairs, key=lambda v: v["q_learned"] / v["q_native"], reverse=True)
        row = lambda v: {"nrels": v["nrels"], "true": v["true"], "native": v["native"][0],
                         "learned": v["learned"][0], "source": v["learned"][1]}
        out["learned_vs_native"] = {
            "subplans": len(pairs), "worse_2x": worse, "better_2x": better,
            "worst": [row(v) for v in ranked[:10]],
            # every sub-plan made more than 2x worse, for the analysis of the answer rule
            "all_worse_2x": [row(v) for v in ranked if v["q_learned"] > 2 * v["q_native"]]}
        self.qerror_values = values
        log(f"   qerror: learned vs native per sub-plan: {worse} of {len(pairs)} more than 2x worse, "
            f"{better} more than 2x better")
        log("   qerror: " + ", ".join(f"{m} p50/p90/p99 {out['qerror'][m]['p50']}/{out['qerror'][m]['p90']}/"
                                      f"{out['qerror'][m]['p99']}" for m in QMODES))
        return out

    # 4 ------------------------------------------------------------------
    def e2e(self, tests):
        self.sql("SET pg_pilot.collect_feedback = off")
        self.sql("SET statement_timeout = %s", (self.a.timeout,))
        self.sql("SELECT pg_pilot.reset_stats()")
        times = {m: {} for m in MODES}
        outs = {m: set() for m in MODES}
        plan = {"native": {}, "learned": {}}
        for rep in range(self.a.reps):
            for n, q in enumerate(tests):
                for i in range(3):
                    m = MODES[(i + n + rep) % 3]
                    self.set_mode(m)
                    ms, out = self.timed(q)
                    times[m].setdefault(n, []).append(ms)
                    if out:
                        outs[m].add(n)
                    if m in plan:
                        j = self.sql("EXPLAIN (SUMMARY, FORMAT JSON) " + q)[0][0]
                        plan[m].setdefault(n, []).append(j[0]["Planning Time"])
            log(f"   e2e: repetition {rep + 1}/{self.a.reps} done")
        self.set_mode("learned")
        self.sql("RESET statement_timeout")
        med = {m: {n: statistics.median(v) for n, v in times[m].items()} for m in MODES}
        pmed = {m: {n: statistics.median(v) for n, v in plan[m].items()} for m in plan}
        added = [pmed["learned"][n] - pmed["native"][n] for n in pmed["native"] if n in pmed["learned"]]
        st = self.sql("SELECT fallback_timeout, fallback_daemon_down, fallback_unknown, fallback_unkeyable, "
                      "fallback_error, latency_p50_us, latency_p99_us FROM pg_pilot.stats")[0]
        out = {
            "e2e": {m: {"total_ms": round(sum(med[m].values()), 1), "timeouts": len(outs[m]),
                        "per_query_ms": {str(n + 1): round(v, 2) for n, v in sorted(med[m].items())}}
                    for m in MODES},
            "planning": {m: {"p50_ms": round(pct(list(pmed[m].values()), .5), 3),
                             "p99_ms": round(pct(list(pmed[m].values()), .99), 3)} for m in pmed},
            "planning_added": {"p50_ms": round(pct(added, .5), 3), "p99_ms": round(pct(added, .99), 3)},
            "fallback": {"timeouts": st[0], "daemon_down": st[1], "unknown": st[2], "unkeyable": st[3],
                         "errors": st[4]},
            "pilotd": {"roundtrip_us": {"p50": st[5], "p99": st[6]}},
        }
        self.e2e_median = med
        log("   e2e: total " + ", ".join(f"{m} {out['e2e'][m]['total_ms']} ms ({out['e2e'][m]['timeouts']} timeouts)"
                                         for m in MODES))
        return out

    # 5 ------------------------------------------------------------------
    def feedback_overhead(self, tests, reps):
        """Execution time with collection on vs off (same plans: estimator native)."""
        self.sql("SET statement_timeout = %s", (self.a.timeout,))
        self.set_mode("native")
        self.sql("SET pg_pilot.enabled = on")
        self.sql("SET pg_pilot.estimator = 'native'")
        self.sql("SET pg_pilot.feedback_sample_rate = 1.0")
        fast = [q for n, q in enumerate(tests) if self.e2e_median["native"].get(n, 1e9) < 1000]
        t = {"on": {}, "off": {}}
        for rep in range(reps):
            for n, q in enumerate(fast):
                order = ("on", "off") if (n + rep) % 2 == 0 else ("off", "on")
                for mode in order:
                    self.sql(f"SET pg_pilot.collect_feedback = {mode}")
                    ms, _ = self.timed(q)
                    t[mode].setdefault(n, []).append(ms)
        self.sql("SET pg_pilot.collect_feedback = off")
        self.sql("RESET statement_timeout")
        on = sum(statistics.median(v) for v in t["on"].values())
        off = sum(statistics.median(v) for v in t["off"].values())
        out = {"queries": len(fast), "reps": reps, "on_total_ms": round(on, 1), "off_total_ms": round(off, 1),
               "overhead_ratio": round(on / off, 4) if off else None}
        log(f"   feedback: {len(fast)} queries x {reps} reps: off {out['off_total_ms']} ms, "
            f"on {out['on_total_ms']} ms")
        return out

    # 6 ------------------------------------------------------------------
    def concurrency(self, tests):
        fast = [q for n, q in enumerate(tests) if self.e2e_median["native"].get(n, 1e9) < 1000][:20]
        if not fast:
            return None
        d = os.path.join(self.a.out, "pgbench")
        os.makedirs(d, exist_ok=True)
        files = []
        for i, q in enumerate(fast):
            p = os.path.join(d, f"q{i}.sql")
            open(p, "w").write(q + "\n")
            files += ["-f", p]
        res = {}
        for mode, opts in (("native", "-c pg_pilot.enabled=off"),
                           ("pilot", "-c pg_pilot.estimator=learned -c pg_pilot.collect_feedback=off")):
            self.sql("SELECT pg_pilot.reset_stats()")
            env = dict(os.environ, PGOPTIONS=opts)
            p = subprocess.run(["pgbench", "-n", "-c", str(self.a.clients), "-j", "2", "-T", str(self.a.seconds),
                                self.a.db] + files, env=env, capture_output=True, text=True)
            tps = None
            for line in p.stdout.splitlines():
                if line.startswith("tps ="):
                    tps = float(line.split()[2])
            st = self.sql("SELECT latency_p50_us, latency_p99_us, requests FROM pg_pilot.stats")[0]
            res[mode] = {"tps": tps, "roundtrip_p50_us": st[0], "roundtrip_p99_us": st[1], "requests": st[2]}
            if p.returncode != 0:
                log(f"   concurrency: pgbench failed ({mode}): {p.stderr.strip()[:200]}")
        out = {"clients": self.a.clients, "seconds": self.a.seconds, "queries": len(fast), "modes": res,
               "tps_ratio": round(res["pilot"]["tps"] / res["native"]["tps"], 3)
               if res.get("native", {}).get("tps") and res.get("pilot", {}).get("tps") else None}
        log(f"   concurrency: {self.a.clients} clients: native {res['native']['tps']} tps, pg_pilot "
            f"{res['pilot']['tps']} tps, round trip p50/p99 {res['pilot']['roundtrip_p50_us']}/"
            f"{res['pilot']['roundtrip_p99_us']} us")
        return out

    # plots ----------------------------------------------------------------
    def plots(self, report):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log("   (matplotlib missing: no plots)")
            return []
        made = []
        fig, ax = plt.subplots(figsize=(7, 4))
        for m in QMODES:
            v = sorted(self.qerror_values[m])
            if v:
                ax.plot(v, [i / len(v) for i in range(1, len(v) + 1)], label=f"{m} (p90 {pct(v, .9):.1f})")
        ax.set_xscale("log")
        ax.set_xlabel("q-error (log scale)")
        ax.set_ylabel("fraction of sub-plans")
        ax.set_title("q-error of every sub-plan of the test queries")
        ax.legend()
        ax.grid(True, which="both", alpha=.3)
        fig.tight_layout()
        p = os.path.join(self.a.out, "qerror.png")
        fig.savefig(p, dpi=110)
        made.append(p)
        plt.close(fig)

        nat = self.e2e_median["native"]
        ns = sorted(nat)
        fig, ax = plt.subplots(figsize=(9, 4))
        w = 0.4
        for k, m in enumerate(("learned", "oracle")):
            sp = [nat[n] / max(self.e2e_median[m].get(n, nat[n]), 1e-3) for n in ns]
            ax.bar([i + (k - .5) * w for i in range(len(ns))], sp, width=w, label=m)
        ax.set_xticks(range(len(ns)))
        ax.set_xticklabels([str(n + 1) for n in ns], fontsize=7)
        ax.axhline(1.0, color="black", linewidth=.8)
        ax.set_yscale("log")
        ax.set_xlabel("test query")
        ax.set_ylabel("speedup vs native (log)")
        ax.set_title("per-query speedup over native PostgreSQL (median of the repetitions)")
        ax.legend()
        fig.tight_layout()
        p = os.path.join(self.a.out, "speedup.png")
        fig.savefig(p, dpi=110)
        made.append(p)
        plt.close(fig)
        return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--label", default="workload")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--feedback-reps", type=int, default=5)
    ap.add_argument("--timeout", default="10s")
    ap.add_argument("--truth-timeout", default=None,
                    help="per sub-plan count (default: --timeout); a sub-plan that takes longer is left "
                         "out of the q-error")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-subplans", type=int, default=256,
                    help="sub-plans per test query whose truth is computed (smallest sets first)")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--pilotd", default="pilotd")
    ap.add_argument("--pgdata", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--store-dsn", required=True)
    ap.add_argument("--model-dsn", required=True)
    ap.add_argument("--train-seconds", type=int, default=300)
    ap.add_argument("--train-epochs", type=int, default=300)
    ap.add_argument("--train-seed", type=int, default=42)
    ap.add_argument("--subplan-queries", type=int, default=200,
                    help="count every sub-plan of the first n train queries (pilotd collect --subplans)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    b = Bench(a)
    b.timeout_ms = float(b.sql("SELECT extract(epoch FROM %s::interval) * 1000", (a.timeout,))[0][0])
    train, tests = read_queries(a.train), read_queries(a.test)
    log(f"== {a.label}: {len(train)} train queries, {len(tests)} test queries, database {a.db}")
    b.sql("SET statement_timeout = %s", (a.timeout,))
    report = {"workload": a.label, "train": b.train(train)}
    report.update(b.model())
    report["truth"] = b.truth(tests)
    report.update(b.qerror(tests))
    report.update(b.e2e(tests))
    report["inference"] = b.inference()
    report["feedback"] = b.feedback_overhead(tests, a.feedback_reps)
    report["concurrency"] = b.concurrency(tests)
    report["pilotd"]["concurrent_clients"] = a.clients
    if report["concurrency"]:
        pm = report["concurrency"]["modes"]["pilot"]
        report["pilotd"]["concurrent_roundtrip_us"] = {"p50": pm["roundtrip_p50_us"], "p99": pm["roundtrip_p99_us"]}
    report["plots"] = [os.path.basename(p) for p in b.plots(report)]
    with open(os.path.join(a.out, "workload.json"), "w") as f:
        json.dump(report, f, indent=2)
    log(f"   wrote {os.path.join(a.out, 'workload.json')}")


if __name__ == "__main__":
    main()
