/*
 * asan_first.c — preloaded after libasan when make check-asan runs the server
 * (lib/asan_server.sh).
 *
 * An uninstrumented program with libasan preloaded initializes ASan lazily, at
 * its first malloc.  In postgres that is inside libgpg-error's constructor,
 * within glibc's bindtextdomain() while it holds the gettext lock; ASan's
 * initialization calls dlerror(), which takes the same lock for reading, and
 * the lock is left broken: postgres then hangs in its own bindtextdomain().
 * Interposing bindtextdomain() to allocate once before the real one runs makes
 * ASan initialize with no lock held.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char *bindtextdomain(const char *domain, const char *dir) {
    static char *(*real_bindtextdomain)(const char *, const char *);
    void *volatile first = malloc(1); /* volatile: the pair is not optimized away */
    free(first);
    if (!real_bindtextdomain)
        real_bindtextdomain = (char *(*)(const char *, const char *)) dlsym(RTLD_NEXT, "bindtextdomain");
    return real_bindtextdomain ? real_bindtextdomain(domain, dir) : NULL;
}
