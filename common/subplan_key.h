/*
 * subplan_key.h — the canonical description of a relation set ("subplan key").
 *
 * The key is the join point of estimates, feedback, memo and models, so it has
 * exactly one implementation: this file.  The extension describes a relation
 * set from the planner's structures as a KeyDesc (tables, and clauses as small
 * expression trees whose column references name a relation by an arbitrary
 * integer id); subplan_key_compute() turns it into canonical text, independent
 * of aliases, of the range-table order and of clause order, plus the same text
 * with every constant replaced by '?' (the "template").  Both are hashed with
 * proto::stable_hash64, so they are stable across sessions, restarts and hosts.
 *
 * Canonical form (version line first, one item per line):
 *
 *   pgpk1
 *   R t1 public.movie_info
 *   R t2 public.title
 *   C (t1.movie_id = t2.id)
 *   C (t2.production_year > '2000'::integer)
 *
 * Relation instances are numbered by colour refinement: a relation's colour is
 * its table name plus the (sorted) clauses it takes part in, rendered with the
 * other relations' colours, iterated until stable; remaining ties (self-joins
 * colour refinement cannot tell apart) are broken by trying each tied relation
 * in turn, refining again, and keeping the smallest resulting text (relations
 * an automorphism maps onto each other are tried once).  Clauses are then
 * rendered with the final names; commutative operators (AND/OR, equivalence
 * sets, and binary operators that are their own commutator or have one) order
 * their operands, so "a.x = b.y" and "b.y = a.x", "5 < a.x" and "a.x > 5" give
 * one key.  Clause lists are sorted and de-duplicated (duplicate clauses are
 * dropped before refinement, so writing a clause twice never changes a key).
 *
 * The structs are plain data so the extension can fill them from palloc'd
 * memory without any C++ object being live while PostgreSQL code may throw.
 */
#ifndef PG_PILOT_SUBPLAN_KEY_H
#define PG_PILOT_SUBPLAN_KEY_H

#include <cstdint>
#include <string>

namespace pilot {

enum KeyNodeKind : int {
    KN_VAR = 1,   /* column reference: rel + text (column name, "*" for whole row) */
    KN_CONST = 2, /* literal, already rendered as text (e.g. '5'::integer); '?' in templates */
    KN_CALL = 3,  /* operator or function: text is its name */
};

enum KeyNodeFlags : uint32_t {
    KF_INFIX = 1u,     /* binary operator: rendered "(a op b)" */
    KF_SORT_ARGS = 2u, /* arguments form a set (AND, OR, equivalence class) */
};

struct KeyNode {
    int kind;                /* KeyNodeKind */
    uint32_t flags;          /* KeyNodeFlags */
    int rel;                 /* KN_VAR: id of the relation (must be in KeyDesc::rel_ids) */
    const char *text;        /* see KeyNodeKind */
    const char *commutator;  /* KF_INFIX: name of the commuted operator, or nullptr */
    int nargs;
    const KeyNode *const *args;
    /* key_node_text_hash() of text and commutator, filled in by a builder
     * that keys many sets from the same nodes (the planner's catalog), so
     * they are hashed once; 0: not filled in (computed when needed) */
    uint64_t text_hash;
    uint64_t commutator_hash;
};

/* The hash of a node's text (or commutator) that KeyNode caches. */
uint64_t key_node_text_hash(const char *text) noexcept;

struct KeyDesc {
    int nrels;
    const int *rel_ids;         /* caller's id per relation (e.g. range-table index) */
    const char *const *tables;  /* schema-qualified, quoted table name per relation */
    int nclauses;
    const KeyNode *const *clauses;
};

struct SubplanKey {
    uint64_t key = 0;          /* 0 = could not be computed */
    uint64_t template_key = 0;
    std::string text;          /* canonical text with constants */
    std::string template_text; /* canonical text with '?' for constants */
};

/* Which forms subplan_key_compute() computes: each costs about as much as
 * the other (the planner's asks need only the key, execution feedback only
 * the template of the chosen plan's sets).  A form not computed has key 0
 * and empty text. */
enum KeyParts : unsigned {
    KEY_PART_KEY = 1,
    KEY_PART_TEMPLATE = 2,
    KEY_PARTS_BOTH = 3,
};

/* A fingerprint of the description exactly as given (relation ids, tables,
 * clause trees in their order, constants included): equal descriptions give
 * equal fingerprints, so a caller may reuse the key it computed for one;
 * unlike the key it is not canonical (another spelling of the same set
 * differs).  Cheap: one pass over the nodes, using their cached text hashes.
 * 0 for a malformed description (or one nested over 1,000 deep): the
 * caller then computes the key. */
uint64_t subplan_desc_fingerprint(const KeyDesc &desc) noexcept;

/* Computes the forms asked for.  Returns false (and sets *error) for a
 * malformed description: a Var naming a relation not in the set, a null
 * pointer, an empty set.  Never throws. */
bool subplan_key_compute(const KeyDesc &desc, SubplanKey *out, std::string *error,
                         unsigned parts = KEY_PARTS_BOTH) noexcept;

} // namespace pilot

#endif
