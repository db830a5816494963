/* SPDX-License-Identifier: MIT */
#pragma once

/* Running a helper program (systemctl, sshd) directly: fork+execve, no shell, stdin /dev/null, the
 * environment given (never ours), stdout and stderr captured, killed after a timeout or when we die. */

#include <stdbool.h>
#include <stddef.h>

typedef struct SpawnResult {
        int exit_status; /* the exit code; -1 when it was killed by a signal or the timeout */
        bool timed_out;
        char *out, *err; /* NUL-terminated, at most SPAWN_OUTPUT_MAX bytes each */
} SpawnResult;

#define SPAWN_OUTPUT_MAX 16384

/* argv[0] is an absolute path. 0 when it ran (whatever its exit status), a negative errno when it could
 * not be run. */
int spawn_capture(char *const argv[], char *const envp[], unsigned timeout_ms, SpawnResult *ret);
void spawn_result_done(SpawnResult *r);
