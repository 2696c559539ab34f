#!/usr/bin/env python3
"""advisor_bench.py — the index advisor benchmark of `make bench-advisor`:
total workload time with no secondary indexes vs after `pilotd advise --apply`
with pg_pilot's learned cardinalities vs after `pilotd advise --plain --apply`
(PostgreSQL's own estimates in the what-if costing), in one run.

    advisor_bench.py --db DB --out DIR --dsn DSN [--pilotd pilotd] [--budget-mb MB]
                     [--max-indexes N] [--queries 100] [--reps 5] [--timeout 5s] [--workload FILE]

On the cluster of PGHOST/PGPORT (pg_pilot preloaded, pilotd running, CREATE
EXTENSION pg_pilot done in DB), DB loaded:
  1. drops every index of schema public that backs no constraint (primary
     keys and unique constraints stay), VACUUM (FREEZE, ANALYZE), and resets the database's
     statistics counters (pg_stat_reset(): the bulk load is not write traffic
     of the workload, which is read-only);
  2. the workload: --workload FILE (one query per line, optionally "N||query";
     identical lines are its frequency), or --queries random queries from
     workload_gen.py (--gen; 0-3 joins, 1-3 predicates, --selective of them
     selective, join trees started at big tables: --big-tables);
  3. runs it once with execution feedback on (pilotd's memo learns);
  4. arms, in this order, each timed the same way: every distinct query
     --reps times within --timeout (a timeout counts as the timeout), the
     median times its frequency, summed; pg_pilot on, estimator auto,
     feedback off:
       none     no secondary index;
       learned  after `pilotd advise --workload W --budget-mb B --apply`;
       plain    after `pilotd advise --plain --workload W --budget-mb B --apply`;
     the indexes an advisor created (every index not there before its arm) are
     dropped after its arm; then `none` is measured once more (drift check).
  The budget: --budget-mb, by default half the size of the dropped indexes.
Writes DIR/advisor.json and DIR/advisor.md, DIR/advisor_workload.txt and the
advisors' output DIR/advisor_learned.log, DIR/advisor_plain.log.  Exits 1 when
an advisor run failed (the report is written anyway).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import psycopg2

ARMS = ("none", "learned", "plain")
ARM_TITLE = {"none": "(a) no secondary index",
             "learned": "(b) advisor, learned cardinalities",
             "plain": "(c) advisor, plain what-if (PostgreSQL's estimates)"}
MB = 1024 * 1024


def log(msg):
    print(msg, flush=True)


def read_workload(path):
    """[(query, frequency)] in first-seen order."""
    freq, order = {}, []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "||" in line and line.split("||", 1)[0].strip().replace(".", "").isdigit():
            line = line.split("||", 1)[1].strip()
        if line not in freq:
            order.append(line)
            freq[line] = 0
        freq[line] += 1
    return [(q, freq[q]) for q in order]


class Bench:
    def __init__(self, a):
        self.a = a
        self.conn = psycopg2.connect(dbname=a.db)
        self.conn.autocommit = True
        self.cur = self.conn.cursor()
        self.timeout_ms = float(self.sql("SELECT extract(epoch FROM %s::interval) * 1000", (a.timeout,))[0][0])

    def sql(self, q, args=None):
        self.cur.execute(q, args)
        return self.cur.fetchall() if self.cur.description else None

    def settle(self):
        """Waits (at most 60 s) until no other session of this database runs a statement."""
        for _ in range(600):
            r = self.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND pid <> pg_backend_pid() AND state <> 'idle'")
            if not r[0][0]:
                return
            time.sleep(0.1)

    def planner_settings(self, feedback):
        self.sql("SET pg_pilot.enabled = on")
        self.sql("SET pg_pilot.estimator = 'auto'")
        self.sql(f"SET pg_pilot.collect_feedback = {'on' if feedback else 'off'}")
        self.sql("SET pg_pilot.feedback_sample_rate = 1.0")
        self.sql("SET statement_timeout = %s", (self.a.timeout,))

    def timed(self, q):
        """(ms, timed_out, error) of one execution within the statement timeout."""
        t0 = time.perf_counter()
        try:
            self.cur.execute(q)
            self.cur.fetchall()
            return (time.perf_counter() - t0) * 1000.0, False, None
        except psycopg2.errors.QueryCanceled:
            return self.timeout_ms, True, None
        except psycopg2.Error as e:
            return self.timeout_ms, False, str(e).strip().splitlines()[0]

    def indexes(self):
        """{name: (table, definition, bytes, constraint-backed, valid)} of schema public."""
        rows = self.sql("""
            SELECT ic.relname, i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid),
                   pg_relation_size(i.indexrelid),
                   EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid), i.indisvalid
            FROM pg_index i
            JOIN pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = ic.relnamespace
            WHERE n.nspname = 'public'""")
        return {r[0]: tuple(r[1:]) for r in rows}

    # 1 ------------------------------------------------------------------
    def drop_secondary(self):
        dropped = []
        for name, (table, definition, size, backs, _) in sorted(self.indexes().items()):
            if backs:
                continue
            self.sql(f'DROP INDEX public."{name}"')
            dropped.append({"name": name, "table": table, "definition": definition, "bytes": size})
        # hint bits and the visibility map set now, not during the first arm
        # (which would make it look slower than the later ones)
        self.sql("VACUUM (FREEZE, ANALYZE)")
        # the bulk load is not the workload: without this the advisor's write
        # cost (rows changed per second since the counters were reset) would
        # count the freshly loaded tables as being written all the time
        self.sql("SELECT pg_stat_reset()")
        kept = sorted(self.indexes())
        total = sum(d["bytes"] for d in dropped)
        log(f"   dropped {len(dropped)} secondary indexes ({total / MB:.1f} MB); kept {len(kept)} "
            f"(primary keys, unique constraints)")
        tables = self.sql("""
            SELECT c.relname, c.reltuples::bigint, pg_relation_size(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 3 DESC""")
        return {"dropped": dropped, "dropped_bytes": total, "kept": kept,
                "tables": [{"table": t, "rows": r, "bytes": b} for t, r, b in tables]}

    # 2 ------------------------------------------------------------------
    def workload(self):
        a = self.a
        path = os.path.join(a.out, "advisor_workload.txt")
        if a.workload:
            with open(a.workload) as src, open(path, "w") as dst:
                dst.write(src.read())
            source = a.workload
        else:
            cmd = [sys.executable, a.gen, "-d", a.db, "-n", str(a.queries), "--seed", str(a.seed),
                   "--min-joins", "0", "--max-joins", str(a.max_joins), "--min-predicates", "1",
                   "--max-predicates", str(a.max_predicates), "--selective", str(a.selective), "--big-tables"]
            with open(path, "w") as f:
                subprocess.run(cmd, check=True, stdout=f)
            source = " ".join(["workload_gen.py"] + cmd[3:])
        self.workload_file = path
        self.queries = read_workload(path)
        n = sum(f for _, f in self.queries)
        log(f"   workload: {len(self.queries)} distinct queries, {n} in all ({source})")
        return {"source": source, "file": os.path.basename(path), "distinct": len(self.queries), "queries": n}

    # 3 ------------------------------------------------------------------
    def learn(self):
        self.planner_settings(feedback=True)
        t0 = time.time()
        timeouts = errors = 0
        for q, _ in self.queries:
            _, out, err = self.timed(q)
            timeouts += out
            errors += err is not None
        self.wait_drained()
        secs = time.time() - t0
        log(f"   learn: {len(self.queries)} queries run with feedback in {secs:.1f} s "
            f"({timeouts} timed out, {errors} failed), feedback drained")
        return {"seconds": round(secs, 1), "timeouts": timeouts, "errors": errors}

    def wait_drained(self):
        for _ in range(600):
            r = self.sql("SELECT feedback_queued = 0 AND spool_pending = 0 FROM pg_pilot.daemon")
            if r and r[0][0]:
                return
            time.sleep(0.1)

    # 4 ------------------------------------------------------------------
    def measure(self, arm):
        self.planner_settings(feedback=False)
        times = [[] for _ in self.queries]
        timeouts, errors = set(), {}
        t0 = time.time()
        for rep in range(self.a.reps):
            for n, (q, _) in enumerate(self.queries):
                ms, out, err = self.timed(q)
                times[n].append(ms)
                if out:
                    timeouts.add(n)
                if err:
                    errors[n] = err
            log(f"   {arm}: repetition {rep + 1}/{self.a.reps}: {sum(t[-1] * f for t, (_, f) in zip(times, self.queries)) / 1000:.1f} s")
        self.sql("RESET statement_timeout")
        med = [statistics.median(t) for t in times]
        total = sum(m * f for m, (_, f) in zip(med, self.queries))
        log(f"   {arm}: total {total / 1000:.2f} s ({len(timeouts)} queries timed out, {len(errors)} failed; "
            f"{time.time() - t0:.0f} s to measure)")
        return {"total_ms": round(total, 1), "timeouts": len(timeouts), "errors": len(errors),
                "error_samples": sorted(set(errors.values()))[:5],
                "per_query_ms": [round(m, 2) for m in med]}

    def advise(self, arm, before):
        a = self.a
        cmd = [a.pilotd, "advise", "--dsn", a.dsn, "--workload", self.workload_file,
               "--budget-mb", str(a.budget_mb), "--timeout-ms", str(int(self.timeout_ms)), "--apply"]
        if a.max_indexes:
            cmd += ["--max-indexes", str(a.max_indexes)]
        if arm == "plain":
            cmd.append("--plain")
        log(f"   {arm}: {' '.join(cmd)}")
        t0 = time.time()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=a.advisor_timeout)
            output, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            output += f"\n(advisor_bench: killed after {a.advisor_timeout} s)\n"
            rc = None
        except OSError as e:
            output, rc = f"(advisor_bench: cannot run {a.pilotd}: {e})\n", None
        secs = time.time() - t0
        with open(os.path.join(a.out, f"advisor_{arm}.log"), "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + output)
        for line in output.splitlines():
            log("      " + line)
        recs = [l[len("recommend: "):].strip() for l in output.splitlines() if l.startswith("recommend: ")]
        summary = [l[len("advise: "):].strip() for l in output.splitlines() if l.startswith("advise: ")]
        after = self.indexes()
        created = [{"name": n, "table": v[0], "definition": v[1], "bytes": v[2], "valid": v[4]}
                   for n, v in sorted(after.items()) if n not in before]
        size = sum(c["bytes"] for c in created)
        res = {"command": " ".join(cmd), "exit_code": rc, "seconds": round(secs, 1),
               "recommendations": recs, "summary": summary[-1] if summary else None,
               "created": created, "created_bytes": size,
               "within_budget": size <= a.budget_mb * MB,
               "unexpected_names": [c["name"] for c in created if not c["name"].startswith("pilot_")],
               "invalid": [c["name"] for c in created if not c["valid"]]}
        ok = rc == 0
        self.settle()
        log(f"   {arm}: advisor exit {rc} after {secs:.1f} s; {len(recs)} recommended, {len(created)} created "
            f"({size / MB:.2f} MB of {a.budget_mb} MB)")
        if not ok:
            log(f"   {arm}: the advisor FAILED (output in advisor_{arm}.log)")
        if len(created) != len(recs):
            log(f"   {arm}: warning: {len(recs)} recommendations but {len(created)} new indexes")
        return res, ok

    def drop_created(self, created):
        for c in created:
            self.sql(f'DROP INDEX IF EXISTS public."{c["name"]}"')
        left = self.sql(r"SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE 'pilot\_%'")
        if left[0][0]:
            # an index the advisor created under another name than listed: drop pilot_% all the same
            for (n,) in self.sql(r"SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                                 r"AND indexname LIKE 'pilot\_%'"):
                self.sql(f'DROP INDEX IF EXISTS public."{n}"')


def report(a, rep):
    arms = rep["arms"]
    base = arms["none"]["total_ms"]
    L = ["# pg_pilot index advisor benchmark", "",
         f"Workload **{rep['workload']['label']}**, every secondary index dropped "
         f"({len(rep['data']['dropped'])} indexes, {rep['data']['dropped_bytes'] / MB:.1f} MB; primary keys and "
         f"unique constraints kept): {rep['workload']['distinct']} distinct queries ({rep['workload']['source']}), "
         f"run once with execution feedback first. Each arm: every query {a.reps} time{'s' if a.reps > 1 else ''} "
         f"within {a.timeout} "
         f"(a timeout counts as {a.timeout}), the median times its frequency, summed; pg_pilot on, estimator "
         f"`auto`, feedback off; the arms in this order, in one run. Budget {a.budget_mb} MB{a.budget_note}"
         + (f", at most {a.max_indexes} indexes" if a.max_indexes else "") + ".", "",
         "| arm | indexes created | size MB | advisor s | total workload s | vs (a) | timeouts | failed queries |",
         "|---|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        m = arms[arm]
        adv = m.get("advisor")
        if m.get("total_ms") is None:
            L.append(f"| {ARM_TITLE[arm]} | advisor failed | | {adv['seconds'] if adv else ''} | not measured | | | |")
            continue
        n = len(adv["created"]) if adv else 0
        size = f"{adv['created_bytes'] / MB:.2f}" if adv else "0"
        secs = adv["seconds"] if adv else ""
        ratio = f"{m['total_ms'] / base:.3f}x" if base else ""
        L.append(f"| {ARM_TITLE[arm]} | {n} | {size} | {secs} | {m['total_ms'] / 1000:.2f} | {ratio} | "
                 f"{m['timeouts']} | {m['errors']} |")
    for arm in ("learned", "plain"):
        adv = arms[arm].get("advisor")
        if not adv:
            continue
        L += ["", f"## {ARM_TITLE[arm]}", "", f"`{adv['command']}`: exit {adv['exit_code']}, {adv['seconds']} s "
              "(measuring the workload, what-if costing and CREATE INDEX CONCURRENTLY)."]
        if adv["summary"]:
            L.append(f"Summary: `{adv['summary']}`")
        if adv["created"]:
            L += ["", "| index | size MB |", "|---|---|"]
            L += [f"| `{c['definition']}` | {c['bytes'] / MB:.2f} |" for c in adv["created"]]
            L.append(f"| total ({'within' if adv['within_budget'] else '**over**'} the {a.budget_mb} MB budget) | "
                     f"{adv['created_bytes'] / MB:.2f} |")
        else:
            L += ["", "No index created."]
        if adv["recommendations"]:
            L += ["", "Recommendations as printed:", ""] + [f"- `{r}`" for r in adv["recommendations"]]
        if adv["invalid"]:
            L += ["", f"**Invalid** (a failed CREATE INDEX CONCURRENTLY): {adv['invalid']}"]
        if adv["unexpected_names"]:
            L += ["", f"New indexes not named `pilot_%`: {adv['unexpected_names']}"]
        m = arms[arm]
        if m.get("per_query_ms") and arms["none"].get("per_query_ms"):
            b, x = arms["none"]["per_query_ms"], m["per_query_ms"]
            faster = sum(1 for p, q in zip(b, x) if q < p / 1.2 and p - q > 1)
            slower = sum(1 for p, q in zip(b, x) if q > p * 1.2 and q - p > 1)
            L += ["", f"Per query vs (a): {faster} faster, {slower} slower (by more than 20 % and 1 ms), "
                  f"{len(b) - faster - slower} about the same."]
    again = rep.get("none_again")
    if again and base:
        L += ["", f"Drift check: (a) measured again at the end, after the advisors' indexes were dropped: "
              f"{again['total_ms'] / 1000:.2f} s ({again['total_ms'] / base:.3f}x the first)."]
        r = {arm: arms[arm].get("ratio_vs_none_mean") for arm in ("learned", "plain")}
        if all(v is not None for v in r.values()):
            L[-1] += (f" Against the mean of the two (a) measurements: (b) {r['learned']:.3f}x, "
                      f"(c) {r['plain']:.3f}x.")
    L += ["", f"Learning run (feedback on): {rep['learn']['seconds']} s, {rep['learn']['timeouts']} timeouts. "
          f"The whole benchmark (after loading the data): {rep['seconds']} s."]
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dsn", required=True, help="the advisor's connection string (the same database)")
    ap.add_argument("--pilotd", default="pilotd")
    ap.add_argument("--label", default="workload")
    ap.add_argument("--workload", help="a workload file instead of a generated one")
    ap.add_argument("--gen", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "workload_gen.py"))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--selective", type=float, default=0.7)
    ap.add_argument("--max-joins", type=int, default=3)
    ap.add_argument("--max-predicates", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--timeout", default="5s")
    ap.add_argument("--budget-mb", type=float, default=None,
                    help="the advisors' budget; default: half the size of the dropped indexes")
    ap.add_argument("--max-indexes", type=int, default=None)
    ap.add_argument("--advisor-timeout", type=int, default=1800, help="seconds before an advisor run is killed")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    b = Bench(a)
    log(f"== index advisor benchmark: {a.label}, database {a.db}")
    rep = {"data": b.drop_secondary()}
    a.budget_note = ""
    if a.budget_mb is None:
        a.budget_mb = max(1, round(rep["data"]["dropped_bytes"] / MB / 2))
        a.budget_note = " (half the size of the dropped indexes)"
    if a.budget_mb == int(a.budget_mb):
        a.budget_mb = int(a.budget_mb)
    log(f"   budget: {a.budget_mb} MB{a.budget_note}")
    rep["workload"] = b.workload()
    rep["workload"]["label"] = a.label
    rep["learn"] = b.learn()
    baseline = b.indexes()
    rep["arms"] = {"none": b.measure("none")}
    failed = []
    for arm in ("learned", "plain"):
        adv, ok = b.advise(arm, baseline)
        rep["arms"][arm] = {"advisor": adv}
        if ok:
            rep["arms"][arm].update(b.measure(arm))
        else:
            failed.append(arm)
            rep["arms"][arm]["total_ms"] = None
        b.drop_created(adv["created"])
    rep["none_again"] = b.measure("none (again)")
    rep["settings"] = {"reps": a.reps, "timeout": a.timeout, "budget_mb": a.budget_mb, "max_indexes": a.max_indexes,
                       "queries": a.queries, "seed": a.seed, "selective": a.selective}
    rep["seconds"] = round(time.time() - t0, 1)
    base = rep["arms"]["none"]["total_ms"]
    mean = (base + rep["none_again"]["total_ms"]) / 2
    for arm in ("learned", "plain"):
        t = rep["arms"][arm].get("total_ms")
        rep["arms"][arm]["ratio_vs_none"] = round(t / base, 4) if t is not None and base else None
        rep["arms"][arm]["ratio_vs_none_mean"] = round(t / mean, 4) if t is not None and mean else None
    with open(os.path.join(a.out, "advisor.json"), "w") as f:
        json.dump(rep, f, indent=2)
    md = report(a, rep)
    with open(os.path.join(a.out, "advisor.md"), "w") as f:
        f.write(md)
    log("")
    log(md)
    log(f"report: {os.path.join(a.out, 'advisor.md')}, {os.path.join(a.out, 'advisor.json')}")
    if failed:
        log(f"advisor_bench: the advisor failed in arm(s) {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
