#!/usr/bin/env python3
"""train_workload.py — the training workload of the demo's learned model.

    demo/train_workload.py [-n 40] [--orders 2] [--seed 1] demo/queries/q*.sql > train.sql

Writes COUNT(*) queries over the web shop of demo/data.sql, one per line, in
the shapes of the demo queries (the same tables joined the same way) but with
other constants and other combinations of filters:

    A  review, order_item, orders, customer   (like q1: reviews of bought products)
    B  customer, orders, order_item, product, category   (like q2 and q3)
    C  customer, orders, order_item, product   (like q4: segments, payment, channel)

Each of the -n queries is written --orders times, its tables joined in a
different random order (explicit JOINs), after "SET join_collapse_limit = 1"
and with nested loop and merge joins off: run with execution feedback on
(`pilotd collect --workload`, as run_demo.sh does), every scan and every join
of these hash-join plans reports its full row count, so one run labels a whole
chain of relation sets (`pilotd collect --subplans` would count each sub-plan
with a query of its own, which costs far more).  The model is trained on that
feedback and then asked about the demo queries, which it has never seen.  To
keep them unseen:

  - no training query names a country a demo query names (customer or ship-to
    country: 1 US, 2 DE and 8 IT for the current queries);
  - none uses a range bound of a demo query (price > 100, birth_year < 1990,
    rating <= 2): other bounds instead;
  - no relation set with a filter, a single table or a join, is the same as
    one of a demo query (the same tables, joins and filters): only unfiltered
    tables and their joins (order_item, orders JOIN order_item, ...) can be
    shared.  A department a demo query filters on alone appears in an IN list.

The first lines of the output ("-- unseen: ...") say so.  The demo queries are
read from the files given (the restricted form of subplans.py); the countries
from demo/data.sql.  Deterministic for a seed.  Python standard library only.
"""
import argparse
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import subplans  # noqa: E402  (the demo queries' parser)

PAYMENTS = {  # the payment methods data.sql gives each country's consumers
    'NL': ['ideal', 'card', 'paypal'], 'AT': ['invoice', 'paypal', 'card'],
    'SE': ['klarna', 'card'], 'NO': ['klarna', 'card'], 'DK': ['klarna', 'card'],
    'FI': ['klarna', 'card'], 'CN': ['alipay', 'card'], 'JP': ['konbini', 'card'],
}
DEPARTMENTS = ['Electronics', 'Home', 'Fashion', 'Beauty', 'Sports', 'Toys', 'Office', 'Grocery']
STATUSES = ['delivered', 'returned', 'cancelled']
CHANNELS = ['web', 'app', 'marketplace', 'phone']
SEGMENTS = ['student', 'business', 'consumer']
ALL_PAYMENTS = ['card', 'paypal', 'invoice', 'ideal', 'klarna', 'alipay', 'konbini']
PRICE_BOUNDS = [20, 30, 50, 80, 120, 150, 200, 300, 500, 800]
BIRTH_BOUNDS = [1960, 1970, 1980, 1985, 1995, 1998, 2000, 2003]


def countries(data_sql):
    """id -> (code, language, currency) from data.sql's INSERT INTO country."""
    out = {}
    pat = re.compile(r"\(\s*(\d+)\s*,\s*'(\w+)'\s*,\s*'[^']*'\s*,\s*'[^']*'\s*,\s*'(\w+)'\s*,\s*'(\w+)'")
    for m in pat.finditer(open(data_sql).read()):
        out[int(m.group(1))] = (m.group(2), m.group(3), m.group(4))
    return out


def norm(pred):
    return re.sub(r'\s+', ' ', pred.strip())


def signatures(sql):
    """The query's connected sub-plans that have a filter, each as (tables,
    predicates) with every alias replaced by its table name (each table
    appears once in these queries)."""
    tables, filters, _, _ = subplans.parse(sql)
    alias = dict(tables)
    out = set()
    for _, q in subplans.subplans(sql):
        from_part, where = subplans.split_query(q) if ' WHERE ' in q else (q, '')
        rels = frozenset(alias[a] for a in re.findall(r'\bAS (\w+)', from_part))
        preds = set()
        for p in subplans.split_and(where) if where else []:
            p = norm(re.sub(r'\b(\w+)\.', lambda m: alias.get(m.group(1), m.group(1)) + '.', p))
            m = re.fullmatch(r'([\w.]+) = ([\w.]+)', p)
            if m and '.' in m.group(1) and '.' in m.group(2):   # an equi-join: either side first
                p = ' = '.join(sorted(m.groups()))
            preds.add(p)
        joins = sum(1 for p in preds if re.fullmatch(r'[\w]+\.[\w]+ = [\w]+\.[\w]+', p))
        if len(preds) > joins:
            out.add((rels, frozenset(preds)))
    return out


def demo_constants(paths):
    """The demo queries' sub-plan signatures, the country ids they name and
    their range bounds ("price > 100")."""
    sigs, demo_countries, bounds = set(), set(), set()
    for path in paths:
        sql = subplans.strip_comments(open(path).read())
        sigs |= signatures(sql)
        demo_countries |= {int(c) for c in re.findall(r'\b\w+\.(?:country_id|ship_country_id)\s*=\s*(\d+)', sql)}
        bounds |= {bound(m) for m in re.finditer(r'\b\w+\.(\w+)\s*(<=|>=|<|>)\s*(\d+(?:\.\d+)?)', sql)}
    return sigs, demo_countries, bounds


def bound(m):
    return '%s %s %s' % m.groups()


# The shapes: tables (alias, table) in the demo query's FROM order, and the
# join predicates as (alias, alias, predicate); the comma form of a training
# query writes the first ones (as the demo query does), an explicit join order
# may need the one an equivalence class implies (c.id = r.customer_id).
SHAPES = {
    'A': ([('r', 'review'), ('oi', 'order_item'), ('o', 'orders'), ('c', 'customer')],
          [('r', 'oi', 'r.product_id = oi.product_id'), ('oi', 'o', 'oi.order_id = o.id'),
           ('o', 'r', 'o.customer_id = r.customer_id'), ('c', 'o', 'c.id = o.customer_id'),
           ('c', 'r', 'c.id = r.customer_id')], 4),
    'B': ([('c', 'customer'), ('o', 'orders'), ('oi', 'order_item'), ('p', 'product'), ('cat', 'category')],
          [('o', 'c', 'o.customer_id = c.id'), ('oi', 'o', 'oi.order_id = o.id'),
           ('oi', 'p', 'oi.product_id = p.id'), ('p', 'cat', 'p.category_id = cat.id')], 4),
    'C': ([('c', 'customer'), ('o', 'orders'), ('oi', 'order_item'), ('p', 'product')],
          [('o', 'c', 'o.customer_id = c.id'), ('oi', 'o', 'oi.order_id = o.id'),
           ('oi', 'p', 'oi.product_id = p.id')], 3),
}


class Gen:
    def __init__(self, rnd, ctry, exclude):
        self.r = rnd
        self.ctry = ctry
        self.ids = sorted(i for i in ctry if i not in exclude)

    def country(self):
        return self.r.choice(self.ids)

    def some(self, preds, lo=1):
        """a random subset of preds (a list) of at least lo, order kept"""
        k = self.r.randint(lo, len(preds))
        pick = set(self.r.sample(range(len(preds)), k))
        return [p for i, p in enumerate(preds) if i in pick]

    def payment(self, code):
        return self.r.choice(PAYMENTS.get(code, ['card', 'paypal']) + ['invoice'])

    def filters_a(self):
        """like q1: reviews of bought products by customers of one country"""
        cid = self.country()
        code, lang, cur = self.ctry[cid]
        r_lang = lang if self.r.random() < 0.85 else self.r.choice(['en', 'es', 'fr', lang])
        rating = self.r.choice(['r.rating <= 1', 'r.rating = 1', 'r.rating >= 4', 'r.rating = 5',
                                'r.rating <= 3', 'r.rating >= 3'])
        return {'r': self.some(["r.language = '%s'" % r_lang, rating]),
                'o': self.some(["o.status = '%s'" % self.r.choice(STATUSES), 'o.ship_country_id = %d' % cid], 0),
                'c': self.some(['c.country_id = %d' % cid, "c.currency = '%s'" % cur], 0)}

    def filters_b(self):
        """like q2 and q3: customers of one country, a department, a price bound"""
        cid = self.country()
        code, lang, cur = self.ctry[cid]
        op = self.r.choice(['>', '<'])
        return {'c': self.some(['c.country_id = %d' % cid, "c.language = '%s'" % lang, "c.currency = '%s'" % cur]),
                'o': self.some(['o.ship_country_id = %d' % cid, "o.currency = '%s'" % cur,
                                "o.payment = '%s'" % self.payment(code)], 0),
                'p': ['p.price %s %d' % (op, self.r.choice(PRICE_BOUNDS))] if self.r.random() < 0.85 else [],
                'cat': [self.department()]}

    def department(self):
        """one department, or two (a department filter of a demo query is never used alone)"""
        if self.r.random() < 0.6:
            return "cat.department = '%s'" % self.r.choice(DEPARTMENTS)
        return "cat.department IN (%s)" % ', '.join("'%s'" % d for d in sorted(self.r.sample(DEPARTMENTS, 2)))

    def filters_c(self):
        """like q4: a segment and birth years, payment and channel"""
        by = 'c.birth_year %s %d' % (self.r.choice(['<', '>']), self.r.choice(BIRTH_BOUNDS))
        return {'c': self.some(["c.segment = '%s'" % self.r.choice(SEGMENTS), by]),
                'o': self.some(["o.payment = '%s'" % self.r.choice(ALL_PAYMENTS),
                                "o.channel = '%s'" % self.r.choice(CHANNELS)]),
                'p': ['p.price > %d' % self.r.choice(PRICE_BOUNDS)] if self.r.random() < 0.3 else []}

    def join_order(self, shape):
        """a random connected join order of the shape's tables"""
        tables, edges, _ = SHAPES[shape]
        aliases = [a for a, _ in tables]
        order = [self.r.choice(aliases)]
        while len(order) < len(aliases):
            nxt = sorted({b if a in order else a for a, b, _ in edges
                          if (a in order) != (b in order)})
            order.append(self.r.choice(nxt))
        return order


def comma_form(shape, filters):
    tables, edges, n_written = SHAPES[shape]
    preds = [p for _, _, p in edges[:n_written]] + [p for a, _ in tables for p in filters.get(a, [])]
    return ('SELECT COUNT(*) FROM ' + ', '.join('%s %s' % (t, a) for a, t in tables)
            + ' WHERE ' + ' AND '.join(preds) + ';')


def join_form(shape, filters, order):
    """the query with its tables joined in this order (join_collapse_limit = 1)"""
    tables, edges, _ = SHAPES[shape]
    table = dict(tables)
    sql = 'SELECT COUNT(*) FROM %s %s' % (table[order[0]], order[0])
    for i, a in enumerate(order[1:], 1):
        on = [p for x, y, p in edges if (x == a and y in order[:i]) or (y == a and x in order[:i])]
        sql += ' JOIN %s %s ON %s' % (table[a], a, ' AND '.join(on))
    preds = [p for a in order for p in filters.get(a, [])]
    return sql + (' WHERE ' + ' AND '.join(preds) if preds else '') + ';'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('queries', nargs='+', help='the demo queries (kept unseen)')
    ap.add_argument('-n', type=int, default=40, help='number of queries before the join orders (default 40)')
    ap.add_argument('--orders', type=int, default=2, help='join orders per template (default 2)')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--data', default=os.path.join(HERE, 'data.sql'))
    a = ap.parse_args()

    ctry = countries(a.data)
    if len(ctry) < 10:
        sys.exit('train_workload.py: cannot read the countries from %s' % a.data)
    demo, demo_countries, demo_bounds = demo_constants(a.queries)
    g = Gen(random.Random(a.seed), ctry, demo_countries)
    kinds = [('A', g.filters_a), ('B', g.filters_b), ('B', g.filters_b), ('C', g.filters_c)]
    seen, out, tries = set(), [], 0
    while len(seen) < a.n:
        tries += 1
        if tries > 100 * a.n:
            sys.exit('train_workload.py: cannot find %d distinct queries' % a.n)
        shape, make = kinds[len(seen) % len(kinds)]
        filters = make()
        preds = [p for ps in filters.values() for p in ps]
        if any(bound(m) in demo_bounds for p in preds
               for m in re.finditer(r'\b\w+\.(\w+)\s*(<=|>=|<|>)\s*(\d+(?:\.\d+)?)', p)):
            continue
        sql = comma_form(shape, filters)
        try:
            if sql in seen or signatures(sql) & demo:
                continue
        except ValueError:  # a form subplans.py refuses (one constant in two unjoined tables)
            continue
        seen.add(sql)
        orders = []
        for _ in range(20 * a.orders):
            o = g.join_order(shape)
            if o not in orders:
                orders.append(o)
            if len(orders) == a.orders:
                break
        out += [join_form(shape, filters, o) for o in orders]
    codes = {i: ctry[i][0] for i in demo_countries}
    print('-- training workload of the pg_pilot demo (demo/train_workload.py -n %d --orders %d --seed %d)'
          % (a.n, a.orders, a.seed))
    print('-- unseen: no training query names a country of the demo queries (customer or ship-to: %s)'
          % ', '.join('%d %s' % (i, codes[i]) for i in sorted(codes)))
    print('-- unseen: none uses their bounds (%s): other bounds instead' % ', '.join(sorted(demo_bounds)))
    print('-- unseen: no relation set with a filter (a single table or a join) is the same as one of a demo query')
    # every join's full count: hash joins only, in the order written
    print('SET join_collapse_limit = 1;\nSET enable_nestloop = off;\nSET enable_mergejoin = off;')
    print('\n'.join(out))


if __name__ == '__main__':
    main()
