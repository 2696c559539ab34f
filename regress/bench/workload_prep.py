#!/usr/bin/env python3
"""workload_prep.py — turns a queries file into what the workload benchmark
needs:

    workload_prep.py QUERIES OUT_QUERIES OUT_SUBPLANS

QUERIES: one query per line, optionally prefixed "N||" (a true count, which is
dropped: the harness computes its own truth); blank lines and "#" comments are
skipped.  OUT_QUERIES: the queries, numbered, as "n<TAB>query".
OUT_SUBPLANS: the connected sub-plan COUNT(*) queries of every query (see
demo/subplans.py), deduplicated, as "n<TAB>subplan" (n: the query it came
from).  A query subplans.py cannot read (OR, LIKE, sub-queries, ...) keeps its
place in OUT_QUERIES but gets no sub-plans: the q-error covers the sub-plans of
the queries it can read, and says how many were left out.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "demo"))
import subplans  # noqa: E402  (demo/subplans.py)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    src, out_q, out_s = argv
    queries = []
    for line in open(src):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"^\d+(\.\d+)?\|\|", "", line)
        queries.append(line.replace("\t", " "))
    unreadable = 0
    with open(out_q, "w") as fq, open(out_s, "w") as fs:
        for n, q in enumerate(queries, 1):
            fq.write(f"{n}\t{q}\n")
            try:
                subs = subplans.subplans(q)
            except ValueError:
                unreadable += 1
                continue
            for _, s in subs:
                fs.write(f"{n}\t{s}\n")
    print(f"{len(queries)} queries, {unreadable} without sub-plans (a form subplans.py cannot read)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
