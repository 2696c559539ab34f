/* segment_guard.h — pilotd and the backends survive another process
 * shrinking the shared segment.
 *
 * The segment is a file in /dev/shm that any process of the server's OS user
 * can ftruncate().  Touching a page past the new end is SIGBUS, which would
 * kill pilotd or crash a backend (and with it restart the whole server): a
 * backend checks the size on every use, but a truncation in the middle of a
 * round trip would still fault.  Armed, a SIGBUS inside the segment's mapping
 * replaces the whole mapping with zero pages (the faulting access then reads
 * zeros, which fail validation, and the code goes on) and is recorded: the
 * backend then leaves the segment; pilotd's heartbeat sees it and pilotd
 * shuts down cleanly so that its restart makes a new segment.  A SIGBUS
 * anywhere else keeps its previous action (PostgreSQL sets none: a core).
 */
#ifndef PILOT_SEGMENT_GUARD_H
#define PILOT_SEGMENT_GUARD_H

#include <cstddef>

namespace pilot {

/* Covers the mapping at base of len bytes (rounded up to whole pages, as the
 * mapping is); installs the
 * handler on first use.  One range per process at a time (a backend maps one
 * segment; pilotd serves one). */
void segment_guard_arm(void *base, size_t len) noexcept;
/* Stops covering it (before the mapping goes away). */
void segment_guard_disarm() noexcept;
/* A fault in the covered range was absorbed since it was armed. */
bool segment_guard_tripped() noexcept;

} // namespace pilot

#endif
