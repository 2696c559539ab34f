/*
 * futex.h — wait/wake on a 32-bit word in shared memory (Linux futex, shared,
 * not FUTEX_PRIVATE).  Used instead of process-shared mutexes because a process
 * killed while waiting on a futex leaves nothing behind.
 */
#ifndef PG_PILOT_FUTEX_H
#define PG_PILOT_FUTEX_H

#include <atomic>
#include <cstdint>

namespace pilot {

/* Sleeps while *word == expected, at most timeout_us (0 = don't sleep).
 * Returns false on timeout; spurious wake-ups return true. */
bool futex_wait(std::atomic<uint32_t> *word, uint32_t expected, int64_t timeout_us);

/* Wakes up to n waiters of *word. */
void futex_wake(std::atomic<uint32_t> *word, int n);

} // namespace pilot

#endif
