/* SPDX-License-Identifier: MIT */
/* Runs one command and prints what it cost, for `make bench`:
 *
 *   run1 OUTFILE CMD [ARG...]
 *   → "<wall_ns> <user_us> <sys_us> <maxrss_kib> <exit code or 128+signal>" on stdout
 *
 * The command's stdout and stderr go to OUTFILE. CPU and peak RSS come from wait4(): the command and every
 * descendant it waited for. Built statically and kept tiny on purpose: Linux carries the pre-exec RSS of the
 * forking process into the child's ru_maxrss, so the launcher's own RSS is a lower bound of every figure
 * (a Python launcher would put ~10 MiB there). `run1 --self` prints the launcher's own peak RSS (VmHWM). */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char *argv[]) {
        struct rusage ru;
        long long t0, t1;
        int status, out;
        pid_t pid;

        if (argc == 2 && strcmp(argv[1], "--self") == 0) {
                /* VmHWM, not getrusage(): ru_maxrss of this process includes its parent's RSS at exec. */
                char line[256];
                FILE *f = fopen("/proc/self/status", "re");

                while (f && fgets(line, sizeof line, f))
                        if (strncmp(line, "VmHWM:", 6) == 0)
                                printf("%ld\n", strtol(line + 6, NULL, 10));
                if (f)
                        fclose(f);
                return 0;
        }
        if (argc < 3) {
                fprintf(stderr, "usage: run1 OUTFILE CMD [ARG...]\n");
                return 2;
        }
        out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0) {
                perror("run1: OUTFILE");
                return 2;
        }

        t0 = now_ns();
        pid = vfork();
        if (pid < 0) {
                perror("run1: vfork");
                return 2;
        }
        if (pid == 0) {
                dup2(out, STDOUT_FILENO);
                dup2(out, STDERR_FILENO);
                execv(argv[2], argv + 2);
                _exit(127);
        }
        if (wait4(pid, &status, 0, &ru) < 0) {
                perror("run1: wait4");
                return 2;
        }
        t1 = now_ns();

        printf("%lld %ld %ld %ld %d\n", t1 - t0, (long) ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
               (long) ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec, ru.ru_maxrss,
               WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return 0;
}
