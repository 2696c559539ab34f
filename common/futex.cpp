#include "futex.h"

#include <cerrno>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pilot {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word size");

bool futex_wait(std::atomic<uint32_t> *word, uint32_t expected, int64_t timeout_us) {
    if (timeout_us <= 0)
        return false;
    struct timespec ts;
    ts.tv_sec = static_cast<time_t>(timeout_us / 1000000);
    ts.tv_nsec = static_cast<long>((timeout_us % 1000000) * 1000);
    long rc = syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT, expected, &ts,
                      nullptr, 0);
    if (rc == -1 && errno == ETIMEDOUT)
        return false;
    return true; /* woken, value changed (EAGAIN) or interrupted (EINTR) */
}

void futex_wake(std::atomic<uint32_t> *word, int n) {
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

} // namespace pilot
