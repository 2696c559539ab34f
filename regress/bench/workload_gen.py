#!/usr/bin/env python3
"""workload_gen.py — random select-project-join COUNT(*) queries over a
database's foreign-key join graph, for `make bench`.

    workload_gen.py -d DB -n 200 --seed 1 > train.txt
    workload_gen.py -d DB -n 60 --seed 2 > test.txt

Reads the schema from the database (psql on PGHOST/PGPORT): declared foreign
keys are the joins; the other columns, with their statistics (pg_stats: most
common values, histogram bounds), give the predicates.  Each query joins 2 to
7 tables (1-6 joins) along foreign keys, each table at most once, and has 1 to
5 predicates: equality with a common value, or a range (<, >, BETWEEN) between
histogram bounds, on columns that are neither keys nor join columns.  Output:
one query per line,

    SELECT COUNT(*) FROM customer t0, orders t1 WHERE t0.id = t1.customer_id AND t1.status = 'returned';

in the restricted form demo/subplans.py reads (its sub-plans are the oracle's
truth).  Deterministic for a given seed and database.  Python standard library
only.

--selective P (default 0: the above unchanged) makes each predicate, with
probability P, a selective one, the kind an index serves: equality with a
histogram bound (a value that is not among the most common ones) or a range
between two adjacent histogram bounds (one bucket, about 1 % of the rows); on
a column without a histogram, equality with its least common value.
--big-tables starts each query's join tree at a table drawn with probability
proportional to the square root of its row count (default: uniformly), so
that fewer queries touch only the small dimension tables.  The index advisor
benchmark (regress/bench/advisor_bench.py) uses both.
"""
import argparse
import json
import random
import subprocess
import sys

CATALOG_SQL = r"""
SELECT json_build_object(
  'fks', (SELECT coalesce(json_agg(json_build_object(
              'src', c.conrelid::regclass::text, 'dst', c.confrelid::regclass::text,
              'src_cols', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
                           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),
              'dst_cols', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(n, ord)
                           JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n))
            ORDER BY c.conrelid::regclass::text, c.conname), '[]')
          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE c.contype = 'f' AND n.nspname = 'public'),
  'keys', (SELECT coalesce(json_agg(json_build_object('table', c.conrelid::regclass::text, 'col', a.attname)), '[]')
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
           WHERE c.contype IN ('p', 'u', 'f') AND n.nspname = 'public'),
  'columns', (SELECT coalesce(json_agg(json_build_object(
                 'table', s.tablename, 'col', s.attname, 'type', format_type(a.atttypid, a.atttypmod),
                 'category', t.typcategory,
                 'mcv', s.most_common_vals::text::text[], 'hist', s.histogram_bounds::text::text[])
               ORDER BY s.tablename, s.attname), '[]')
              FROM pg_stats s
              JOIN pg_class c ON c.relname = s.tablename
              JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
              JOIN pg_type t ON t.oid = a.atttypid
              WHERE s.schemaname = 'public' AND t.typcategory IN ('N', 'S', 'D', 'B')),
  'rows', (SELECT coalesce(json_object_agg(c.oid::regclass::text, greatest(c.reltuples, 0)), '{}')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')))
"""


def load_catalog(db):
    out = subprocess.run(["psql", "-X", "-At", "-d", db, "-c", CATALOG_SQL], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def literal(value, category):
    if category == 'N':
        return value
    return "'" + value.replace("'", "''") + "'"


class Generator:
    def __init__(self, cat, rng, selective=0.0, big_tables=False):
        self.rng = rng
        self.selective = selective
        self.rows = cat.get('rows') or {}
        self.big_tables = big_tables
        self.edges = {}  # table -> [(other, [(my_col, other_col)])]
        for fk in cat['fks']:
            pairs = list(zip(fk['src_cols'], fk['dst_cols']))
            self.edges.setdefault(fk['src'], []).append((fk['dst'], pairs))
            self.edges.setdefault(fk['dst'], []).append((fk['src'], [(b, a) for a, b in pairs]))
        keys = {(k['table'], k['col']) for k in cat['keys']}
        self.columns = {}  # table -> usable predicate columns
        for c in cat['columns']:
            if (c['table'], c['col']) in keys or c['table'] not in self.edges:
                continue
            if not c['mcv'] and not c['hist']:
                continue
            self.columns.setdefault(c['table'], []).append(c)
        self.tables = sorted(t for t in self.edges if t in self.columns)
        if not self.tables:
            sys.exit("workload_gen: no tables with foreign keys and usable column statistics")

    def join_tree(self, n):
        """A random connected set of n tables (each at most once) and its join edges."""
        if self.big_tables:
            w = [max(self.rows.get(t, 1.0), 1.0) ** 0.5 for t in self.tables]
            start = self.rng.choices(self.tables, weights=w)[0]
        else:
            start = self.rng.choice(self.tables)
        chosen, joins = [start], []
        while len(chosen) < n:
            frontier = [(t, o, pairs) for t in chosen for o, pairs in self.edges.get(t, [])
                        if o not in chosen]
            if not frontier:
                break
            t, o, pairs = self.rng.choice(frontier)
            chosen.append(o)
            joins.append((t, o, pairs))
        return chosen, joins

    def selective_predicate(self, alias, c):
        cat, h = c['category'], c['hist'] or []
        if len(h) >= 2 and cat != 'B':
            i = self.rng.randrange(len(h) - 1)
            if self.rng.random() < 0.5:
                return f"{alias}.{c['col']} = {literal(h[i], cat)}"
            return f"{alias}.{c['col']} BETWEEN {literal(h[i], cat)} AND {literal(h[i + 1], cat)}"
        if c['mcv']:
            return f"{alias}.{c['col']} = {literal(c['mcv'][-1], cat)}"  # the least common of them
        return None

    def predicate(self, alias, c):
        cat = c['category']
        # no extra random draw without --selective: the same queries as before for a seed
        if self.selective > 0 and self.rng.random() < self.selective:
            p = self.selective_predicate(alias, c)
            if p:
                return p
        r = self.rng.random()
        if c['mcv'] and (r < 0.5 or not c['hist'] or cat in ('S', 'B')):
            return f"{alias}.{c['col']} = {literal(self.rng.choice(c['mcv']), cat)}"
        if not c['hist'] or len(c['hist']) < 3:
            return None
        h = c['hist']
        i, j = sorted(self.rng.sample(range(len(h)), 2))
        lo, hi = literal(h[i], cat), literal(h[j], cat)
        r = self.rng.random()
        if r < 0.33:
            return f"{alias}.{c['col']} < {hi}"
        if r < 0.66:
            return f"{alias}.{c['col']} > {lo}"
        return f"{alias}.{c['col']} BETWEEN {lo} AND {hi}"

    def query(self, min_joins, max_joins, min_preds, max_preds):
        for _ in range(100):
            tables, joins = self.join_tree(self.rng.randint(min_joins, max_joins) + 1)
            if len(tables) < min_joins + 1:
                continue
            alias = {t: f"t{i}" for i, t in enumerate(tables)}
            clauses = [f"{alias[a]}.{x} = {alias[b]}.{y}" for a, b, pairs in joins for x, y in pairs]
            preds, used = [], set()
            for _ in range(self.rng.randint(min_preds, max_preds)):
                t = self.rng.choice(tables)
                c = self.rng.choice(self.columns[t])
                if (t, c['col']) in used:
                    continue
                p = self.predicate(alias[t], c)
                if p:
                    used.add((t, c['col']))
                    preds.append(p)
            if not preds:
                continue
            frm = ", ".join(f"{t} {alias[t]}" for t in tables)
            return f"SELECT COUNT(*) FROM {frm} WHERE {' AND '.join(clauses + preds)};"
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dbname", required=True)
    ap.add_argument("-n", "--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-joins", type=int, default=1)
    ap.add_argument("--max-joins", type=int, default=6)
    ap.add_argument("--min-predicates", type=int, default=1)
    ap.add_argument("--max-predicates", type=int, default=5)
    ap.add_argument("--selective", type=float, default=0.0,
                    help="probability that a predicate is a selective one (an index's kind); default 0")
    ap.add_argument("--big-tables", action="store_true",
                    help="start join trees at big tables (weight: square root of the row count)")
    a = ap.parse_args()
    gen = Generator(load_catalog(a.dbname), random.Random(a.seed), a.selective, a.big_tables)
    seen, out = set(), []
    attempts = 0
    while len(out) < a.queries and attempts < a.queries * 20:
        attempts += 1
        q = gen.query(a.min_joins, a.max_joins, a.min_predicates, a.max_predicates)
        if q and q not in seen:
            seen.add(q)
            out.append(q)
    if len(out) < a.queries:
        print(f"workload_gen: only {len(out)} distinct queries", file=sys.stderr)
    print("\n".join(out))


if __name__ == "__main__":
    main()
