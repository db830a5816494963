/* SPDX-License-Identifier: MIT */
/* Bench-only LD_PRELOAD shim, used only to count instructions of `apply --root` under valgrind 3.19, which does
 * not know openat2(2) (it fails the call with ENOSYS). syscall(SYS_openat2, dfd, path, how, size) becomes
 * openat(dfd, path without leading '/', how->flags, how->mode): the same files for a scratch root without
 * symlinks that leave it. NOT the agent's semantics (no RESOLVE_IN_ROOT); never use it outside the bench. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

long syscall(long n, ...);

long syscall(long n, ...) {
        static long (*real)(long, ...);
        long a[6];
        va_list ap;

        va_start(ap, n);
        for (int i = 0; i < 6; i++)
                a[i] = va_arg(ap, long);
        va_end(ap);

        if (n == SYS_openat2) {
                const char *path = (const char *) a[1];
                const struct open_how *how = (const struct open_how *) a[2];

                while (*path == '/')
                        path++;
                return openat((int) a[0], *path ? path : ".", (int) how->flags, (mode_t) how->mode);
        }
        if (!real)
                real = (long (*)(long, ...)) dlsym(RTLD_NEXT, "syscall");
        if (!real) {
                errno = ENOSYS;
                return -1;
        }
        return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
