/* SPDX-License-Identifier: MIT */
#pragma once

/* Running a helper program (systemctl, sshd) directly: fork+execve, no shell, stdin /dev/null, a clean
 * fixed environment (never ours: PATH, LC_ALL=C, no colours, no pager), stdout and stderr captured, killed
 * after a timeout or when we die. */

#include <stdbool.h>
#include <stddef.h>

typedef struct SpawnResult {
        int exit_status; /* the exit code; -1 when it was killed by a signal or the timeout */
        bool timed_out;
        char *out, *err; /* NUL-terminated, at most `cap` bytes each (the rest is read and dropped) */
} SpawnResult;

/* argv[0] is an absolute path. 0 when it ran (whatever its exit status), a negative errno when it could
 * not be run. */
int spawn_capture(char *const argv[], size_t cap, unsigned timeout_ms, SpawnResult *ret);
void spawn_result_done(SpawnResult *r);
