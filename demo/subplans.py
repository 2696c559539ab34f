#!/usr/bin/env python3
"""subplans.py — the connected sub-plan COUNT(*) queries of a demo query.

    demo/subplans.py demo/queries/q1_*.sql            print them
    demo/subplans.py --write demo/queries/*.sql       (re)write each qN_*.subplans
    demo/subplans.py --check demo/queries/*.sql       exit 1 if a .subplans file is stale

A demo query is written in a restricted form that this script can read without
a SQL parser:

    SELECT <anything> FROM table alias, table alias, ...
    WHERE <predicate> AND <predicate> AND ...
    [GROUP BY ... | ORDER BY ... | LIMIT ...]

Each top-level AND-ed predicate references columns as alias.column.  One alias:
a filter of that table; two aliases: a join predicate between them (three or
more aliases in one predicate are refused).  Equi-joins "a.x = b.y" are merged
into equivalence classes the way PostgreSQL does, so "a.x = b.y AND b.y = c.z"
also joins a and c.  For every subset of the tables that the join predicates
connect, the sub-plan is

    SELECT COUNT(*) FROM <those tables> WHERE <the join predicates among them>
                                         AND <the filters on them>;

— the single tables (with their filters) and the whole query included.  They
are ordered by number of tables, then in FROM order, each preceded by a
"# aliases" comment line (load_cardinalities skips comment lines).

Refused, because PostgreSQL would derive clauses the sub-plans do not have: a
join column compared to a constant, and one constant compared with "=" in two
tables that no join predicate connects.
"""
import itertools
import re
import sys

IDENT = r'[A-Za-z_][A-Za-z0-9_]*'


def strip_comments(sql):
    out, i, n = [], 0, len(sql)
    while i < n:
        if sql.startswith('--', i):
            j = sql.find('\n', i)
            i = n if j < 0 else j
        elif sql[i] == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and sql.startswith("''", j):
                    j += 2
                elif sql[j] == "'":
                    break
                else:
                    j += 1
            out.append(sql[i:j + 1])
            i = j + 1
        else:
            out.append(sql[i])
            i += 1
    return ''.join(out)


def top_level_tokens(s):
    """Yields (position, word) of the words of s outside quotes and parentheses."""
    depth, i, n = 0, 0, len(s)
    while i < n:
        ch = s[i]
        if ch == "'":
            j = i + 1
            while j < n and not (s[j] == "'" and not s.startswith("''", j)):
                j += 2 if s.startswith("''", j) else 1
            i = j + 1
            continue
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        elif depth == 0 and (ch.isalpha() or ch == '_') and (i == 0 or not (s[i - 1].isalnum() or s[i - 1] in '_.')):
            m = re.match(IDENT, s[i:])
            yield i, m.group(0)
            i += len(m.group(0))
            continue
        i += 1


def split_query(sql):
    s = ' '.join(strip_comments(sql).split()).rstrip(';').strip()
    words = [(p, w.upper()) for p, w in top_level_tokens(s)]
    def find(word, start=0):
        for p, w in words:
            if p >= start and w == word:
                return p
        return -1
    f = find('FROM')
    w = find('WHERE', f)
    if f < 0 or w < 0:
        raise ValueError('query needs "SELECT ... FROM ... WHERE ..."')
    end = len(s)
    for kw in ('GROUP', 'ORDER', 'LIMIT', 'HAVING'):
        p = find(kw, w)
        if p >= 0:
            end = min(end, p)
    return s[f + 4:w].strip(), s[w + 5:end].strip()


def split_and(where):
    parts, last, between = [], 0, False
    for p, word in top_level_tokens(where):
        up = word.upper()
        if up == 'BETWEEN':
            between = True
        elif up == 'AND':
            if between:          # the AND of "x BETWEEN a AND b"
                between = False
                continue
            parts.append(where[last:p].strip())
            last = p + 3
    parts.append(where[last:].strip())
    if any(not x for x in parts):
        raise ValueError('empty predicate in WHERE')
    return parts


def parse(sql):
    from_part, where = split_query(sql)
    tables = []  # (alias, table)
    for item in from_part.split(','):
        toks = item.split()
        if len(toks) == 3 and toks[1].upper() == 'AS':
            toks = [toks[0], toks[2]]
        if len(toks) != 2 or not all(re.fullmatch(IDENT + r'(\.' + IDENT + ')?', t) for t in toks):
            raise ValueError('FROM item %r: expected "table alias"' % item.strip())
        tables.append((toks[1], toks[0]))
    aliases = [a for a, _ in tables]
    if len(set(aliases)) != len(aliases):
        raise ValueError('duplicate alias in FROM')
    filters = {a: [] for a in aliases}
    joins = []      # (frozenset{a, b}, predicate): other join predicates
    equalities = []  # (alias.col, alias.col): equi-joins, merged into classes below
    consts = {}      # constant -> aliases compared to it with "="
    for pred in split_and(where):
        unquoted = re.sub(r"'(?:[^']|'')*'", "''", pred)
        used = sorted(set(re.findall(r'(?<![A-Za-z0-9_.])(' + IDENT + r')\.' + IDENT, unquoted)))
        unknown = [u for u in used if u not in aliases]
        if unknown:
            raise ValueError('predicate %r uses unknown alias %s' % (pred, unknown))
        eq = re.fullmatch(r'(%s\.%s)\s*=\s*(%s\.%s)' % (IDENT, IDENT, IDENT, IDENT), pred)
        if len(used) == 1:
            filters[used[0]].append(pred)
            c = re.fullmatch(r'%s\.%s\s*=\s*(.+)' % (IDENT, IDENT), pred)
            if c:
                consts.setdefault(c.group(1).strip(), set()).add(used[0])
        elif len(used) == 2 and eq:
            equalities.append((eq.group(1), eq.group(2)))
        elif len(used) == 2:
            joins.append((frozenset(used), pred))
        else:
            raise ValueError('predicate %r must reference one or two aliases' % pred)
    # PostgreSQL puts every column compared to the same constant into one
    # equivalence class and then also sizes joins between those tables, even
    # without a join predicate between them: refuse unless they are joined
    direct = {frozenset((l.split('.')[0], r.split('.')[0])) for l, r in equalities}
    direct |= {pair for pair, _ in joins}
    for const, users in consts.items():
        for pair in itertools.combinations(sorted(users), 2):
            if frozenset(pair) not in direct:
                raise ValueError('constant %s is compared with "=" in tables %s and %s, which no '
                                 'join predicate connects: use another constant' % (const, pair[0], pair[1]))
    # equivalence classes of the equi-joins: "a.x = b.y AND b.y = c.z" also
    # joins a and c (a.x = c.z), exactly as PostgreSQL derives it
    parent = {}
    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for l, r in equalities:
        parent[find(l)] = find(r)
    classes = {}
    for l, r in equalities:
        for m in (l, r):
            members = classes.setdefault(find(m), [])
            if m not in members:
                members.append(m)
    for members in classes.values():
        col_filters = [p for ps in filters.values() for p in ps
                       if re.match(r'\s*(%s)\s*=' % '|'.join(re.escape(m) for m in members), p)]
        if col_filters:
            raise ValueError('join column compared to a constant (%s): PostgreSQL would '
                             'derive it for the other tables too' % col_filters[0])
    return tables, filters, joins, list(classes.values())


def join_predicates(subset, joins, classes):
    """The join predicates among the aliases of subset, and the pairs they connect."""
    subset = set(subset)
    preds, edges = [], []
    for pair, p in joins:
        if pair <= subset:
            preds.append(p)
            edges.append(pair)
    for members in classes:
        inside = [m for m in members if m.split('.')[0] in subset]
        # one equality per member after the first: the class restricted to subset
        for m in inside[1:]:
            preds.append('%s = %s' % (inside[0], m))
        for i, m in enumerate(inside):
            for n in inside[i + 1:]:
                a, b = m.split('.')[0], n.split('.')[0]
                if a != b:
                    edges.append(frozenset((a, b)))
    return preds, edges


def connected(subset, edges):
    subset = set(subset)
    seen, todo = set(), [next(iter(subset))]
    while todo:
        a = todo.pop()
        if a in seen:
            continue
        seen.add(a)
        for pair in edges:
            if a in pair:
                todo.extend(pair - seen)
    return seen == subset


def subplans(sql):
    tables, filters, joins, classes = parse(sql)
    order = {a: i for i, (a, _) in enumerate(tables)}
    out = []
    for k in range(1, len(tables) + 1):
        for combo in itertools.combinations(tables, k):
            subset = [a for a, _ in combo]
            preds, edges = join_predicates(subset, joins, classes)
            if not connected(subset, edges):
                continue
            for a in subset:
                preds.extend(filters[a])
            q = 'SELECT COUNT(*) FROM ' + ', '.join('%s AS %s' % (t, a) for a, t in combo)
            if preds:
                q += ' WHERE ' + ' AND '.join(preds)
            out.append((' '.join(sorted(subset, key=order.get)), q + ';'))
    return out


def render(sql):
    return ''.join('# %s\n%s\n' % (rels, q) for rels, q in subplans(sql))


def main(argv):
    mode = None
    if argv and argv[0] in ('--write', '--check'):
        mode, argv = argv[0], argv[1:]
    if not argv or argv[0] in ('-h', '--help'):
        sys.stderr.write(__doc__)
        return 2
    stale = 0
    for path in argv:
        try:
            with open(path) as f:
                text = render(f.read())
        except (OSError, ValueError) as e:
            sys.stderr.write('%s: %s\n' % (path, e))
            return 1
        target = re.sub(r'\.sql$', '', path) + '.subplans'
        if mode is None:
            sys.stdout.write(text)
        elif mode == '--write':
            with open(target, 'w') as f:
                f.write(text)
            print('%s: %d sub-plans' % (target, text.count('\n# ') + 1))
        else:
            try:
                current = open(target).read()
            except OSError:
                current = None
            if current != text:
                sys.stderr.write('%s is stale: run demo/subplans.py --write %s\n' % (target, path))
                stale += 1
    return 1 if stale else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
