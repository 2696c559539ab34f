/*
 * crc32.h — the CRC-32 (IEEE 802.3, reflected, as zlib's crc32()) that every
 * append-only file of pilotd's state directory carries per entry: oracle.bin,
 * memo.journal, the feedback spool and keys.catalog.  A torn or damaged entry
 * is told from a whole one by it.
 */
#ifndef PILOTD_CRC32_H
#define PILOTD_CRC32_H

#include <cstddef>
#include <cstdint>

namespace pilotd {

/* crc: the value so far, to continue over several pieces (0 to start) */
uint32_t crc32(const void *data, size_t len, uint32_t crc = 0);

} // namespace pilotd

#endif
