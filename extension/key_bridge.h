/*
 * key_bridge.h — the extension's only door to common/subplan_key.  The C++
 * objects it produces live in static storage, so callers hold no object with a
 * destructor while they call PostgreSQL code that may raise an ERROR.
 */
#ifndef PG_PILOT_KEY_BRIDGE_H
#define PG_PILOT_KEY_BRIDGE_H

#include <cstdint>

namespace pilot {
struct KeyDesc;
}

/* On success fills the hashes and points *text / *template_text at static
 * storage valid until the next call (parts: pilot::KeyParts; a form not
 * asked for is 0 and ""). On failure sets *error (static storage).
 * Never throws. */
bool pilot_key_compute(const pilot::KeyDesc *desc, unsigned parts, uint64_t *key, uint64_t *template_key,
					   const char **text, const char **template_text, const char **error) noexcept;
/* pilot::subplan_desc_fingerprint(); 0 for a malformed description. */
uint64_t pilot_key_fingerprint(const pilot::KeyDesc *desc) noexcept;

#endif
