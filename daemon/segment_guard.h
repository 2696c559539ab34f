/* segment_guard.h — pilotd survives another process shrinking its segment.
 *
 * The segment is a file in /dev/shm that any process of the server's OS user
 * can ftruncate().  Every thread of pilotd touches it, and touching a page
 * past the new end is SIGBUS, which would kill pilotd.  Armed, a SIGBUS inside
 * the segment's mapping replaces the whole mapping with zero pages (the
 * faulting access then reads zeros and the thread goes on) and is recorded;
 * the heartbeat sees it, and pilotd shuts down cleanly so that its restart
 * makes a new segment.  A SIGBUS anywhere else keeps its previous action.
 */
#pragma once

#include <cstddef>

namespace pilotd {

/* Covers [base, base + len) (page-aligned, as a mapping is); installs the
 * handler on first use.  One range at a time. */
void segment_guard_arm(void *base, size_t len) noexcept;
/* Stops covering it (before the mapping goes away). */
void segment_guard_disarm() noexcept;
/* A fault in the covered range was absorbed since it was armed. */
bool segment_guard_tripped() noexcept;

} // namespace pilotd
