/* SPDX-License-Identifier: MIT */
#include "spawn-util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

static long elapsed_ms(const struct timespec *start) {
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

int spawn_capture(char *const argv[], size_t cap, unsigned timeout_ms, SpawnResult *ret) {
        static char *const envp[] = { (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *) "LC_ALL=C", (char *) "SYSTEMD_COLORS=0",
                                      (char *) "SYSTEMD_PAGER=", NULL };
        int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, status = 0, r;
        char *buf[2] = { calloc(1, cap + 1), calloc(1, cap + 1) };
        size_t len[2] = {};
        struct timespec start;
        bool timed_out = false;
        pid_t pid, parent;

        if (!buf[0] || !buf[1]) {
                free(buf[0]);
                free(buf[1]);
                return -ENOMEM;
        }
        if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        /* fork+exec rather than posix_spawn: the child must die with us (PR_SET_PDEATHSIG). A systemctl
         * left running after the agent was killed would change the tree behind the next run's back. */
        parent = getpid();
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto fail;
        }
        if (pid == 0) {
                int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(outp[1], STDOUT_FILENO) < 0 ||
                    dup2(errp[1], STDERR_FILENO) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                execve(argv[0], argv, envp);
                _exit(127);
        }
        close(outp[1]);
        close(errp[1]);
        outp[1] = errp[1] = -1;

        /* Read both pipes to their end, bounded in time: a helper that hangs must not hold the agent. */
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int open_fds = 2; open_fds > 0;) {
                struct pollfd p[2] = { { .fd = outp[0], .events = POLLIN }, { .fd = errp[0], .events = POLLIN } };
                long left = (long) timeout_ms - elapsed_ms(&start);

                if (left <= 0) {
                        (void) kill(pid, SIGKILL);
                        timed_out = true;
                        break;
                }
                if (poll(p, 2, (int) left) < 0 && errno != EINTR) {
                        (void) kill(pid, SIGKILL);
                        break;
                }
                for (int i = 0; i < 2; i++) {
                        if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        char scratch[4096];
                        /* Past the cap, keep draining so that the child never blocks on a full pipe. */
                        bool room = len[i] < cap;
                        ssize_t n = read(p[i].fd, room ? buf[i] + len[i] : scratch, room ? cap - len[i] : sizeof scratch);
                        if (n > 0 && room)
                                len[i] += (size_t) n;
                        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                                close(i == 0 ? outp[0] : errp[0]);
                                if (i == 0)
                                        outp[0] = -1;
                                else
                                        errp[0] = -1;
                                open_fds--;
                        }
                }
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (outp[0] >= 0)
                close(outp[0]);
        if (errp[0] >= 0)
                close(errp[0]);
        *ret = (SpawnResult) {
                .exit_status = !timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                .timed_out = timed_out,
                .out = buf[0],
                .err = buf[1],
        };
        return 0;

fail:
        for (int i = 0; i < 2; i++) {
                if (outp[i] >= 0)
                        close(outp[i]);
                if (errp[i] >= 0)
                        close(errp[i]);
        }
        free(buf[0]);
        free(buf[1]);
        return r;
}

void spawn_result_done(SpawnResult *r) {
        free(r->out);
        free(r->err);
        *r = (SpawnResult) {};
}
