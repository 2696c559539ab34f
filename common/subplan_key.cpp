/* subplan_key.cpp — canonicalisation of a relation set; see subplan_key.h. */
#include "subplan_key.h"

#include "pilot_protocol.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <vector>

namespace pilot {

namespace {

/* How a Var is printed while rendering: final names, or colours during refinement. */
struct RenderCtx {
    const std::vector<std::string> *names; /* per local relation index */
    bool with_consts;
    const std::map<int, int> *local; /* caller's rel id -> local index */
};

std::string render(const KeyNode *n, const RenderCtx &ctx);

std::string render_var(const KeyNode *n, const RenderCtx &ctx) {
    auto it = ctx.local->find(n->rel);
    if (it == ctx.local->end())
        throw std::runtime_error("column reference to a relation outside the set");
    return (*ctx.names)[it->second] + "." + (n->text ? n->text : "?");
}

std::string render(const KeyNode *n, const RenderCtx &ctx) {
    if (n == nullptr)
        throw std::runtime_error("null expression node");
    switch (n->kind) {
    case KN_VAR:
        return render_var(n, ctx);
    case KN_CONST:
        return ctx.with_consts ? std::string(n->text ? n->text : "NULL") : std::string("?");
    case KN_CALL: {
        if (n->nargs < 0 || (n->nargs > 0 && n->args == nullptr))
            throw std::runtime_error("bad argument list");
        std::vector<std::string> args;
        args.reserve(static_cast<size_t>(n->nargs));
        for (int i = 0; i < n->nargs; i++)
            args.push_back(render(n->args[i], ctx));
        std::string name = n->text ? n->text : "?";
        if ((n->flags & KF_INFIX) && args.size() == 2) {
            /* order operands; swapping needs the commutator (a op b == b comm a) */
            if (n->commutator != nullptr && args[1] < args[0]) {
                std::swap(args[0], args[1]);
                name = n->commutator;
            }
            return "(" + args[0] + " " + name + " " + args[1] + ")";
        }
        if (n->flags & KF_SORT_ARGS) {
            std::sort(args.begin(), args.end());
            args.erase(std::unique(args.begin(), args.end()), args.end());
        }
        std::string s = name + "(";
        for (size_t i = 0; i < args.size(); i++) {
            if (i)
                s += ", ";
            s += args[i];
        }
        return s + ")";
    }
    default:
        throw std::runtime_error("unknown expression node kind");
    }
}

void collect_rels(const KeyNode *n, const std::map<int, int> &local, std::vector<int> *out) {
    if (n == nullptr)
        throw std::runtime_error("null expression node");
    if (n->kind == KN_VAR) {
        auto it = local.find(n->rel);
        if (it == local.end())
            throw std::runtime_error("column reference to a relation outside the set");
        out->push_back(it->second);
    } else if (n->kind == KN_CALL) {
        if (n->nargs < 0 || (n->nargs > 0 && n->args == nullptr))
            throw std::runtime_error("bad argument list");
        for (int i = 0; i < n->nargs; i++)
            collect_rels(n->args[i], local, out);
    }
}

/* Assigns canonical positions to relations (see header comment). */
std::vector<int> canonical_order(const KeyDesc &d, const std::map<int, int> &local,
                                 const std::vector<std::vector<int>> &clause_rels,
                                 bool with_consts) {
    const int n = d.nrels;
    std::vector<int> color(static_cast<size_t>(n), 0);
    std::vector<std::string> names(static_cast<size_t>(n));

    /* clauses each relation takes part in */
    std::vector<std::vector<int>> member_of(static_cast<size_t>(n));
    for (int c = 0; c < d.nclauses; c++)
        for (int r : clause_rels[static_cast<size_t>(c)])
            if (member_of[static_cast<size_t>(r)].empty() ||
                member_of[static_cast<size_t>(r)].back() != c)
                member_of[static_cast<size_t>(r)].push_back(c);

    auto refine = [&](std::vector<int> &col) {
        int classes = -1;
        for (int round = 0; round <= n + 1; round++) {
            std::vector<std::string> sig(static_cast<size_t>(n));
            for (int r = 0; r < n; r++) {
                /* others print as their colour, this relation as '@' */
                for (int o = 0; o < n; o++)
                    names[static_cast<size_t>(o)] =
                        o == r ? std::string("@") : "c" + std::to_string(col[static_cast<size_t>(o)]);
                RenderCtx ctx{&names, with_consts, &local};
                std::vector<std::string> parts;
                for (int c : member_of[static_cast<size_t>(r)])
                    parts.push_back(render(d.clauses[c], ctx));
                std::sort(parts.begin(), parts.end());
                std::string s = "#" + std::to_string(col[static_cast<size_t>(r)]) + "|" +
                                d.tables[r];
                for (auto &p : parts)
                    s += "|" + p;
                sig[static_cast<size_t>(r)] = s;
            }
            std::vector<std::string> uniq(sig);
            std::sort(uniq.begin(), uniq.end());
            uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
            for (int r = 0; r < n; r++)
                col[static_cast<size_t>(r)] = static_cast<int>(
                    std::lower_bound(uniq.begin(), uniq.end(), sig[static_cast<size_t>(r)]) -
                    uniq.begin());
            int now = static_cast<int>(uniq.size());
            if (now == classes)
                break;
            classes = now;
        }
        return classes;
    };

    /* initial colour: rank of the table name */
    {
        std::vector<std::string> t;
        for (int r = 0; r < n; r++)
            t.push_back(d.tables[r]);
        std::vector<std::string> u(t);
        std::sort(u.begin(), u.end());
        u.erase(std::unique(u.begin(), u.end()), u.end());
        for (int r = 0; r < n; r++)
            color[static_cast<size_t>(r)] = static_cast<int>(
                std::lower_bound(u.begin(), u.end(), t[static_cast<size_t>(r)]) - u.begin());
    }
    int classes = refine(color);
    /* individualise remaining ties one at a time: the lowest tied colour's first
     * member gets a colour of its own, then refine again */
    while (classes < n) {
        std::vector<int> count(static_cast<size_t>(n), 0);
        for (int r = 0; r < n; r++)
            count[static_cast<size_t>(color[static_cast<size_t>(r)])]++;
        int tied = -1;
        for (int c = 0; c < n && tied < 0; c++)
            if (count[static_cast<size_t>(c)] > 1)
                tied = c;
        if (tied < 0)
            break;
        for (int r = 0; r < n; r++)
            color[static_cast<size_t>(r)] *= 2;
        for (int r = 0; r < n; r++)
            if (color[static_cast<size_t>(r)] == 2 * tied) {
                color[static_cast<size_t>(r)] = 2 * tied + 1;
                break;
            }
        int next = refine(color);
        if (next <= classes)
            break; /* cannot happen: individualising adds a class */
        classes = next;
    }
    std::vector<int> order(static_cast<size_t>(n));
    for (int r = 0; r < n; r++)
        order[static_cast<size_t>(r)] = r;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return color[static_cast<size_t>(a)] < color[static_cast<size_t>(b)];
    });
    return order; /* order[k] = local index of canonical relation t(k+1) */
}

std::string canonical_text(const KeyDesc &d, const std::map<int, int> &local,
                           const std::vector<std::vector<int>> &clause_rels, bool with_consts) {
    std::vector<int> order = canonical_order(d, local, clause_rels, with_consts);
    std::vector<std::string> names(static_cast<size_t>(d.nrels));
    std::string out = "pgpk1\n";
    for (size_t k = 0; k < order.size(); k++) {
        names[static_cast<size_t>(order[k])] = "t" + std::to_string(k + 1);
        out += "R t" + std::to_string(k + 1) + " " + d.tables[order[k]] + "\n";
    }
    RenderCtx ctx{&names, with_consts, &local};
    std::vector<std::string> cl;
    for (int c = 0; c < d.nclauses; c++)
        cl.push_back(render(d.clauses[c], ctx));
    std::sort(cl.begin(), cl.end());
    cl.erase(std::unique(cl.begin(), cl.end()), cl.end());
    for (auto &c : cl)
        out += "C " + c + "\n";
    return out;
}

} // namespace

bool subplan_key_compute(const KeyDesc &desc, SubplanKey *out, std::string *error) noexcept {
    try {
        if (out == nullptr)
            return false;
        *out = SubplanKey();
        if (desc.nrels <= 0 || desc.rel_ids == nullptr || desc.tables == nullptr)
            throw std::runtime_error("empty relation set");
        if (desc.nclauses < 0 || (desc.nclauses > 0 && desc.clauses == nullptr))
            throw std::runtime_error("bad clause list");
        std::map<int, int> local;
        for (int i = 0; i < desc.nrels; i++) {
            if (desc.tables[i] == nullptr)
                throw std::runtime_error("relation without a table name");
            if (!local.emplace(desc.rel_ids[i], i).second)
                throw std::runtime_error("relation id listed twice");
        }
        /* Drop duplicate clauses (also ones written with commuted operands or
         * reordered AND/OR/EQ arguments) before anything else: the refinement
         * counts a relation's clauses, so a clause written twice must not make
         * its relations look different from what the same query written once
         * gives.  Clauses are compared rendered with distinct per-relation
         * names, which also validates every node. */
        std::vector<const KeyNode *> kept;
        {
            std::vector<std::string> raw(static_cast<size_t>(desc.nrels));
            for (int i = 0; i < desc.nrels; i++)
                raw[static_cast<size_t>(i)] = "r" + std::to_string(i);
            RenderCtx ctx{&raw, true, &local};
            std::vector<std::string> seen;
            for (int c = 0; c < desc.nclauses; c++) {
                std::string s = render(desc.clauses[c], ctx);
                if (std::find(seen.begin(), seen.end(), s) != seen.end())
                    continue;
                seen.push_back(std::move(s));
                kept.push_back(desc.clauses[c]);
            }
        }
        KeyDesc d = desc;
        d.nclauses = static_cast<int>(kept.size());
        d.clauses = kept.data();
        std::vector<std::vector<int>> clause_rels(static_cast<size_t>(d.nclauses));
        for (int c = 0; c < d.nclauses; c++) {
            collect_rels(d.clauses[c], local, &clause_rels[static_cast<size_t>(c)]);
            auto &v = clause_rels[static_cast<size_t>(c)];
            std::sort(v.begin(), v.end());
            v.erase(std::unique(v.begin(), v.end()), v.end());
        }
        out->text = canonical_text(d, local, clause_rels, true);
        out->template_text = canonical_text(d, local, clause_rels, false);
        out->key = proto::stable_hash64(out->text.data(), out->text.size());
        out->template_key = proto::stable_hash64(out->template_text.data(), out->template_text.size());
        return true;
    } catch (const std::exception &e) {
        if (error)
            *error = e.what();
    } catch (...) {
        if (error)
            *error = "unexpected failure";
    }
    if (out)
        *out = SubplanKey();
    return false;
}

} // namespace pilot
