/* segment_guard.cpp — see segment_guard.h. */
#include "segment_guard.h"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <sys/mman.h>
#include <unistd.h>

namespace pilot {

namespace {

std::atomic<uintptr_t> g_base{0};
std::atomic<size_t> g_len{0};
std::atomic<bool> g_tripped{false};
std::atomic<bool> g_installed{false};
struct sigaction g_previous;

void on_sigbus(int sig, siginfo_t *info, void *) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
    const uintptr_t base = g_base.load(std::memory_order_acquire);
    const size_t len = g_len.load(std::memory_order_acquire);
    if (info->si_code == BUS_ADRERR && base != 0 && addr >= base && addr - base < len) {
        /* mmap() is a plain system call: safe here.  MAP_FIXED swaps the
         * whole range at once; a racing thread sees old pages or zeros. */
        if (mmap(reinterpret_cast<void *>(base), len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                 -1, 0) != MAP_FAILED) {
            g_tripped.store(true, std::memory_order_release);
            return; /* the access is retried, on zero pages */
        }
    }
    /* not ours (or no memory for zeros): the previous action.  A fault
     * repeats when the access is retried; a sent SIGBUS (kill) is raised
     * again.  The guard is then gone for good: re-installed only by a new
     * process. */
    sigaction(sig, &g_previous, nullptr);
    if (info->si_code != BUS_ADRERR && info->si_code != BUS_ADRALN && info->si_code != BUS_OBJERR)
        raise(sig);
}

} // namespace

void segment_guard_arm(void *base, size_t len) noexcept {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    len = (len + page - 1) / page * page; /* the mapping's whole pages */
    g_tripped.store(false, std::memory_order_release);
    g_len.store(len, std::memory_order_release);
    g_base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
    bool expected = false;
    if (g_installed.compare_exchange_strong(expected, true)) {
        struct sigaction sa = {};
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, &g_previous);
    }
}

void segment_guard_disarm() noexcept {
    g_base.store(0, std::memory_order_release);
    g_len.store(0, std::memory_order_release);
}

bool segment_guard_tripped() noexcept { return g_tripped.load(std::memory_order_acquire); }

} // namespace pilot
