/* subplan_key.cpp — canonicalisation of a relation set; see subplan_key.h. */
#include "subplan_key.h"

#include "pilot_protocol.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <map>
#include <set>
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

/* Throws on a malformed node (what render() would throw on). */
void validate(const KeyNode *n, const std::map<int, int> &local) {
    if (n == nullptr)
        throw std::runtime_error("null expression node");
    if (n->kind == KN_VAR) {
        if (local.find(n->rel) == local.end())
            throw std::runtime_error("column reference to a relation outside the set");
    } else if (n->kind == KN_CALL) {
        if (n->nargs < 0 || (n->nargs > 0 && n->args == nullptr))
            throw std::runtime_error("bad argument list");
        for (int i = 0; i < n->nargs; i++)
            validate(n->args[i], local);
    } else if (n->kind != KN_CONST) {
        throw std::runtime_error("unknown expression node kind");
    }
}

uint64_t hmix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 31);
}

uint64_t htext(const char *s) {
    return s ? proto::stable_hash64(s, std::strlen(s)) : 0x5bd1e9955bd1e995ULL;
}

/* a node's hashed texts: cached in the node by its builder, else computed */
uint64_t text_hash_of(const KeyNode *n) { return n->text_hash ? n->text_hash : htext(n->text); }
uint64_t commutator_hash_of(const KeyNode *n) { return n->commutator_hash ? n->commutator_hash : htext(n->commutator); }

/* render() with each relation named by its own index, as a hash: equal for
 * clauses that render equal (commuted operands, reordered argument sets) */
uint64_t structural_hash(const KeyNode *n, const std::map<int, int> &local) {
    switch (n->kind) {
    case KN_VAR:
        return hmix(hmix(1, static_cast<uint64_t>(local.at(n->rel))), text_hash_of(n));
    case KN_CONST:
        return hmix(2, text_hash_of(n));
    default: {
        std::vector<uint64_t> args;
        for (int i = 0; i < n->nargs; i++)
            args.push_back(structural_hash(n->args[i], local));
        if ((n->flags & KF_INFIX) && args.size() == 2) {
            uint64_t a = hmix(hmix(hmix(4, text_hash_of(n)), args[0]), args[1]);
            if (n->commutator == nullptr)
                return a;
            return std::min(a, hmix(hmix(hmix(4, commutator_hash_of(n)), args[1]), args[0]));
        }
        if (n->flags & KF_SORT_ARGS) {
            std::sort(args.begin(), args.end());
            args.erase(std::unique(args.begin(), args.end()), args.end());
        }
        uint64_t h = hmix(5, text_hash_of(n));
        for (uint64_t x : args)
            h = hmix(h, x);
        return h;
    }
    }
}

/*
 * Canonical numbering of the relations (see header comment).
 *
 * Colour refinement alone does not decide every tie: in a regular join graph
 * (e.g. a 3-cycle next to a 4-cycle of one table) every instance looks the
 * same locally although they are not interchangeable, so picking "the first
 * member" of a tied colour would depend on the listing order.  Ties are
 * therefore broken by a search: each member of the tied colour is
 * individualised in turn, refined, recursively, and the smallest resulting
 * text wins.  Members that an automorphism of the description (fixing the
 * relations individualised so far) maps onto an already tried member lead to
 * the same texts and are skipped; automorphisms come from swapping two
 * relations and from two leaves with equal texts.  For genuinely symmetric
 * self-joins this tries one member per level, so the search stays linear.
 * kMaxLeaves bounds pathological inputs.
 */
class Canon {
public:
    Canon(const KeyDesc &d, const std::map<int, int> &local,
          const std::vector<std::vector<int>> &clause_rels, bool with_consts)
        : d_(d), local_(local), with_consts_(with_consts), n_(d.nrels),
          member_of_(static_cast<size_t>(d.nrels)) {
        for (int r = 0; r < n_; r++)
            table_hash_.push_back(text_hash(d.tables[r]));
        for (int c = 0; c < d.nclauses; c++)
            for (int r : clause_rels[static_cast<size_t>(c)])
                if (member_of_[static_cast<size_t>(r)].empty() ||
                    member_of_[static_cast<size_t>(r)].back() != c)
                    member_of_[static_cast<size_t>(r)].push_back(c);
    }

    std::string text() {
        /* initial colour: rank of the table name */
        std::vector<std::string> t;
        for (int r = 0; r < n_; r++)
            t.push_back(d_.tables[r]);
        std::vector<std::string> u(t);
        std::sort(u.begin(), u.end());
        u.erase(std::unique(u.begin(), u.end()), u.end());
        std::vector<int> color(static_cast<size_t>(n_));
        for (int r = 0; r < n_; r++)
            color[static_cast<size_t>(r)] = static_cast<int>(
                std::lower_bound(u.begin(), u.end(), t[static_cast<size_t>(r)]) - u.begin());
        int classes = refine(color);
        std::vector<int> prefix;
        search(color, classes, &prefix);
        return best_;
    }

private:
    static constexpr int kMaxLeaves = 512;

    /*
     * Refines col in place until stable; returns the number of colours.
     *
     * A relation's signature is its colour, its table and the multiset of its
     * clauses, each hashed with this relation as "self" and the others as their
     * colours.  New colours rank (old colour, signature), so cells only split
     * and keep their order (relations stay numbered by table name first).
     * Hashing instead of rendering text keeps this cheap; it is invariant under
     * renaming, and a hash collision could only leave a cell coarser, which the
     * search resolves by comparing exact texts at the leaves.
     */
    int refine(std::vector<int> &col) {
        int classes = -1;
        std::vector<std::pair<std::pair<int, uint64_t>, int>> keyed(static_cast<size_t>(n_));
        std::vector<uint64_t> parts;
        for (int round = 0; round <= n_ + 1; round++) {
            for (int r = 0; r < n_; r++) {
                parts.clear();
                for (int c : member_of_[static_cast<size_t>(r)])
                    parts.push_back(hash_node(d_.clauses[c], r, col));
                std::sort(parts.begin(), parts.end());
                uint64_t sig = table_hash_[static_cast<size_t>(r)];
                for (uint64_t h : parts)
                    sig = mix(sig, h);
                keyed[static_cast<size_t>(r)] = {{col[static_cast<size_t>(r)], sig}, r};
            }
            std::sort(keyed.begin(), keyed.end());
            int rank = -1;
            for (size_t i = 0; i < keyed.size(); i++) {
                if (i == 0 || keyed[i].first != keyed[i - 1].first)
                    rank++;
                col[static_cast<size_t>(keyed[i].second)] = rank;
            }
            int now = rank + 1;
            if (now == classes)
                break;
            classes = now;
        }
        return classes;
    }

    static uint64_t mix(uint64_t h, uint64_t v) { return hmix(h, v); }
    static uint64_t text_hash(const char *s) { return htext(s); }

    /* what render() would print, as a hash: same canonicalisation of
     * commutative operators and argument sets, relation "self" marked, the
     * others named by their colour */
    uint64_t hash_node(const KeyNode *n, int self, const std::vector<int> &col) const {
        switch (n->kind) {
        case KN_VAR: {
            const int rel = local_.at(n->rel);
            uint64_t name = rel == self ? 0x73656c66ULL /* "self" */
                                        : mix(0xc010c010ULL, static_cast<uint64_t>(col[static_cast<size_t>(rel)]));
            return mix(mix(1, name), node_text_hash(n));
        }
        case KN_CONST:
            return with_consts_ ? mix(2, node_text_hash(n)) : 3;
        default: {
            /* most calls have few arguments: no heap allocation for them */
            uint64_t small[8];
            std::vector<uint64_t> big;
            uint64_t *args = small;
            size_t nargs = static_cast<size_t>(n->nargs);
            if (nargs > 8) {
                big.resize(nargs);
                args = big.data();
            }
            for (size_t i = 0; i < nargs; i++)
                args[i] = hash_node(n->args[i], self, col);
            if ((n->flags & KF_INFIX) && nargs == 2) {
                uint64_t a = mix(mix(mix(4, node_text_hash(n)), args[0]), args[1]);
                if (n->commutator == nullptr)
                    return a;
                uint64_t b = mix(mix(mix(4, node_commutator_hash(n)), args[1]), args[0]);
                return std::min(a, b);
            }
            if (n->flags & KF_SORT_ARGS) {
                std::sort(args, args + nargs);
                nargs = static_cast<size_t>(std::unique(args, args + nargs) - args);
            }
            uint64_t h = mix(5, node_text_hash(n));
            for (size_t i = 0; i < nargs; i++)
                h = mix(h, args[i]);
            return h;
        }
        }
    }

    /* the node's hashed texts: computed once by whoever built the node
     * (KeyNode::text_hash), else here */
    static uint64_t node_text_hash(const KeyNode *n) { return text_hash_of(n); }
    static uint64_t node_commutator_hash(const KeyNode *n) { return commutator_hash_of(n); }

    /* the clauses rendered with relation r named "r<g[r]>", sorted: equal to
     * plain_ iff g maps the description onto itself */
    std::vector<std::string> relabelled(const std::vector<int> &g) const {
        std::vector<std::string> names(static_cast<size_t>(n_));
        for (int r = 0; r < n_; r++)
            names[static_cast<size_t>(r)] = "r" + std::to_string(g[static_cast<size_t>(r)]);
        RenderCtx ctx{&names, with_consts_, &local_};
        std::vector<std::string> out;
        for (int c = 0; c < d_.nclauses; c++)
            out.push_back(render(d_.clauses[c], ctx));
        std::sort(out.begin(), out.end());
        return out;
    }

    bool is_automorphism(const std::vector<int> &g) {
        for (int r = 0; r < n_; r++)
            if (std::string(d_.tables[r]) != d_.tables[g[static_cast<size_t>(r)]])
                return false;
        if (plain_.empty() && d_.nclauses > 0) { /* only needed when there are ties */
            std::vector<int> identity(static_cast<size_t>(n_));
            for (int r = 0; r < n_; r++)
                identity[static_cast<size_t>(r)] = r;
            plain_ = relabelled(identity);
        }
        return relabelled(g) == plain_;
    }

    /* is v the image of an already tried member under a known automorphism
     * fixing the individualised relations, or under swapping the two? */
    bool equivalent_to_tried(int v, const std::vector<int> &tried, const std::vector<int> &prefix) {
        std::vector<const std::vector<int> *> usable;
        for (const auto &g : gens_) {
            bool fixes = true;
            for (int p : prefix)
                if (g[static_cast<size_t>(p)] != p)
                    fixes = false;
            if (fixes)
                usable.push_back(&g);
        }
        /* orbit of v under the group the usable generators generate */
        std::vector<char> in_orbit(static_cast<size_t>(n_), 0);
        std::vector<int> todo = {v};
        in_orbit[static_cast<size_t>(v)] = 1;
        while (!todo.empty()) {
            int x = todo.back();
            todo.pop_back();
            for (const auto *g : usable) {
                int y = (*g)[static_cast<size_t>(x)];
                if (!in_orbit[static_cast<size_t>(y)]) {
                    in_orbit[static_cast<size_t>(y)] = 1;
                    todo.push_back(y);
                }
            }
        }
        for (int u : tried)
            if (in_orbit[static_cast<size_t>(u)])
                return true;
        for (int u : tried) {
            std::vector<int> g(static_cast<size_t>(n_));
            for (int r = 0; r < n_; r++)
                g[static_cast<size_t>(r)] = r;
            std::swap(g[static_cast<size_t>(u)], g[static_cast<size_t>(v)]);
            if (is_automorphism(g)) {
                gens_.push_back(std::move(g));
                return true;
            }
        }
        return false;
    }

    void leaf(const std::vector<int> &color) {
        leaves_++;
        std::vector<int> order(static_cast<size_t>(n_));
        for (int r = 0; r < n_; r++)
            order[static_cast<size_t>(r)] = r;
        std::sort(order.begin(), order.end(), [&](int a, int b) {
            return color[static_cast<size_t>(a)] < color[static_cast<size_t>(b)];
        });
        /* order[k] = local index of canonical relation t(k+1) */
        std::vector<std::string> names(static_cast<size_t>(n_));
        std::string out = "pgpk1\n";
        for (size_t k = 0; k < order.size(); k++) {
            names[static_cast<size_t>(order[k])] = "t" + std::to_string(k + 1);
            out += "R t" + std::to_string(k + 1) + " " + d_.tables[order[k]] + "\n";
        }
        RenderCtx ctx{&names, with_consts_, &local_};
        std::vector<std::string> cl;
        for (int c = 0; c < d_.nclauses; c++)
            cl.push_back(render(d_.clauses[c], ctx));
        std::sort(cl.begin(), cl.end());
        cl.erase(std::unique(cl.begin(), cl.end()), cl.end());
        for (auto &c : cl)
            out += "C " + c + "\n";

        auto it = seen_.find(out);
        if (it != seen_.end()) {
            /* same text from another numbering: that relabelling is an automorphism */
            std::vector<int> g(static_cast<size_t>(n_));
            for (size_t k = 0; k < order.size(); k++)
                g[static_cast<size_t>(it->second[k])] = order[k];
            if (is_automorphism(g))
                gens_.push_back(std::move(g));
        } else {
            seen_.emplace(out, order);
        }
        if (best_.empty() || out < best_)
            best_ = std::move(out);
    }

    void search(const std::vector<int> &color, int classes, std::vector<int> *prefix) {
        if (classes >= n_) {
            leaf(color);
            return;
        }
        /* the lowest tied colour */
        std::vector<int> count(static_cast<size_t>(n_), 0);
        for (int r = 0; r < n_; r++)
            count[static_cast<size_t>(color[static_cast<size_t>(r)])]++;
        int tied = -1;
        for (int c = 0; c < n_ && tied < 0; c++)
            if (count[static_cast<size_t>(c)] > 1)
                tied = c;
        if (tied < 0) { /* cannot happen: fewer than n colours means a tie */
            leaf(color);
            return;
        }
        std::vector<int> tried;
        for (int v = 0; v < n_; v++) {
            if (color[static_cast<size_t>(v)] != tied)
                continue;
            if (!tried.empty() && (leaves_ >= kMaxLeaves || equivalent_to_tried(v, tried, *prefix)))
                continue;
            tried.push_back(v);
            /* v gets a colour of its own, then refine again */
            std::vector<int> next(color);
            for (int r = 0; r < n_; r++)
                next[static_cast<size_t>(r)] *= 2;
            next[static_cast<size_t>(v)] = 2 * tied + 1;
            int k = refine(next);
            prefix->push_back(v);
            search(next, k, prefix);
            prefix->pop_back();
        }
    }

    const KeyDesc &d_;
    const std::map<int, int> &local_;
    const bool with_consts_;
    const int n_;
    std::vector<std::vector<int>> member_of_; /* clauses each relation takes part in */
    std::vector<uint64_t> table_hash_;
    std::vector<std::string> plain_;          /* relabelled(identity), computed on demand */
    std::vector<std::vector<int>> gens_;      /* automorphisms found so far */
    std::map<std::string, std::vector<int>> seen_; /* leaf text -> its numbering */
    std::string best_;
    int leaves_ = 0;
};

std::string canonical_text(const KeyDesc &d, const std::map<int, int> &local,
                           const std::vector<std::vector<int>> &clause_rels, bool with_consts) {
    return Canon(d, local, clause_rels, with_consts).text();
}

} // namespace

uint64_t key_node_text_hash(const char *text) noexcept { return htext(text); }

namespace {
/* false: a malformed node (what validate() refuses) */
bool fingerprint_node(const KeyNode *n, int depth, uint64_t *h) {
    if (n == nullptr || depth > 1000)
        return false;
    *h = hmix(*h, static_cast<uint64_t>(n->kind) << 32 | n->flags);
    *h = hmix(*h, text_hash_of(n));
    switch (n->kind) {
    case KN_VAR:
        *h = hmix(*h, static_cast<uint64_t>(static_cast<uint32_t>(n->rel)));
        return true;
    case KN_CONST:
        return true;
    case KN_CALL:
        if (n->nargs < 0 || (n->nargs > 0 && n->args == nullptr))
            return false;
        *h = hmix(*h, commutator_hash_of(n));
        *h = hmix(*h, static_cast<uint64_t>(n->nargs));
        for (int i = 0; i < n->nargs; i++)
            if (!fingerprint_node(n->args[i], depth + 1, h))
                return false;
        return true;
    default:
        return false;
    }
}
} // namespace

uint64_t subplan_desc_fingerprint(const KeyDesc &desc) noexcept {
    if (desc.nrels <= 0 || desc.rel_ids == nullptr || desc.tables == nullptr || desc.nclauses < 0 ||
        (desc.nclauses > 0 && desc.clauses == nullptr))
        return 0;
    uint64_t h = hmix(0x6b657964657363ULL /* "keydesc" */, static_cast<uint64_t>(desc.nrels));
    for (int i = 0; i < desc.nrels; i++) {
        if (desc.tables[i] == nullptr)
            return 0;
        h = hmix(h, static_cast<uint64_t>(static_cast<uint32_t>(desc.rel_ids[i])));
        h = hmix(h, htext(desc.tables[i]));
    }
    h = hmix(h, static_cast<uint64_t>(desc.nclauses));
    for (int c = 0; c < desc.nclauses; c++)
        if (!fingerprint_node(desc.clauses[c], 0, &h))
            return 0;
    return h == 0 ? 1 : h;
}

bool subplan_key_compute(const KeyDesc &desc, SubplanKey *out, std::string *error, unsigned parts) noexcept {
    try {
        if (out == nullptr || (parts & KEY_PARTS_BOTH) == 0)
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
            /* candidates by structural hash; equal hashes are confirmed on text */
            std::unordered_map<uint64_t, std::vector<size_t>> by_hash; /* -> indexes into kept */
            std::vector<std::string> kept_text; /* rendered lazily, parallel to kept */
            for (int c = 0; c < desc.nclauses; c++) {
                const KeyNode *clause = desc.clauses[c];
                validate(clause, local);
                auto &same = by_hash[structural_hash(clause, local)];
                std::string text;
                bool dup = false;
                if (!same.empty()) {
                    text = render(clause, ctx);
                    for (size_t k : same) {
                        if (kept_text[k].empty())
                            kept_text[k] = render(kept[k], ctx);
                        if (kept_text[k] == text)
                            dup = true;
                    }
                }
                if (!dup) {
                    same.push_back(kept.size());
                    kept.push_back(clause);
                    kept_text.push_back(std::move(text));
                }
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
        if (parts & KEY_PART_KEY) {
            out->text = canonical_text(d, local, clause_rels, true);
            out->key = proto::stable_hash64(out->text.data(), out->text.size());
        }
        if (parts & KEY_PART_TEMPLATE) {
            out->template_text = canonical_text(d, local, clause_rels, false);
            out->template_key = proto::stable_hash64(out->template_text.data(), out->template_text.size());
        }
        return true;
    } catch (const std::exception &e) {
        try {
            if (error)
                *error = e.what();
        } catch (...) { /* out of memory: leave *error as it is */
        }
    } catch (...) {
        try {
            if (error)
                *error = "unexpected failure";
        } catch (...) {
        }
    }
    if (out)
        *out = SubplanKey();
    return false;
}

} // namespace pilot
