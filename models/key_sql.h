/*
 * key_sql.h — a relation set's key text (common/subplan_key.h) as the query
 * that counts the set's rows: SELECT count(*) FROM its tables WHERE its joins
 * and predicates.  `pilotd collect --subplans` runs these so the learned model
 * gets labels for every sub-plan of a workload, not only for the sets the
 * chosen plans happen to execute (a model trained on plan nodes alone learns
 * the planner's selection: the sets whose estimates looked cheap).
 *
 * Covers what parse_key() (featurize.h) understands — the sets the model can
 * describe at all: tables (ONLY unless the key says the set includes
 * inheritance children), equi-joins, column-operator-constant comparisons,
 * IN / = ANY, IS [NOT] NULL, [NOT] LIKE / ILIKE.  Constants keep their type
 * with a cast; the ones keys carry in binary form (dates, timestamps, floats)
 * are written back as SQL.  Collations in a key are not rendered (text
 * comparisons then use the column's own).
 */
#ifndef PILOT_MODELS_KEY_SQL_H
#define PILOT_MODELS_KEY_SQL_H

#include <string>

namespace pilot {
namespace model {

/* False with *why when the key is outside those forms. */
bool key_count_sql(const std::string &key_text, std::string *sql, std::string *why);

} // namespace model
} // namespace pilot

#endif
