/* SPDX-License-Identifier: MIT */
#include "sshd-config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs-util.h"
#include "log.h"
#include "macro.h"

extern char **environ;

int sshd_dropin_state(int root_fd) {
        _cleanup_close_ int fd = open_in_root(root_fd, SSHD_DROPIN_DIR "/" SSHD_DROPIN_NAME, O_RDONLY | O_NOFOLLOW, 0);
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        r = read_full_fd(fd, 65536, &text, &len);
        if (r < 0)
                return r;
        return len == strlen(SSHD_DROPIN_TEXT) && memcmp(text, SSHD_DROPIN_TEXT, len) == 0 ? 1 : -EEXIST;
}

int sshd_dropin_install(int root_fd) {
        _cleanup_close_ int dfd = -1;
        int r = sshd_dropin_state(root_fd);

        if (r == 1)
                return 0;
        dfd = mkdir_open_in_root(root_fd, SSHD_DROPIN_DIR, 0755);
        if (dfd < 0)
                return log_error_errno(dfd, "Cannot open %s: %m", SSHD_DROPIN_DIR);
        r = write_file_atomic(dfd, SSHD_DROPIN_NAME, SSHD_DROPIN_TEXT, strlen(SSHD_DROPIN_TEXT), 0644, 0, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s/%s: %m", SSHD_DROPIN_DIR, SSHD_DROPIN_NAME);
        return 1;
}

int sshd_dropin_remove(int root_fd) {
        _cleanup_close_ int dfd = open_in_root(root_fd, SSHD_DROPIN_DIR, O_RDONLY | O_DIRECTORY, 0);

        if (dfd == -ENOENT)
                return 0;
        if (dfd < 0)
                return dfd;
        if (unlinkat(dfd, SSHD_DROPIN_NAME, 0) < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Cannot remove %s/%s: %m", SSHD_DROPIN_DIR, SSHD_DROPIN_NAME);
        (void) fsync(dfd);
        return 1;
}

int sshd_config_check(bool with_dropin) {
        char tmp[] = "/tmp/aks-ssh-access-sshd-check.XXXXXX";
        char out[1024] = "";
        _cleanup_close_ int tfd = -1;
        int pipefd[2], status;
        pid_t pid;
        posix_spawn_file_actions_t fa;
        char *argv[] = { (char *) SSHD_BINARY, (char *) "-t", (char *) "-f", NULL, NULL };
        size_t got = 0;

        if (access(SSHD_BINARY, X_OK) < 0)
                return -ENOENT;
        /* Debian's sshd -t insists on its privilege separation directory, which ssh.service creates only
         * when it starts, i.e. after us (the agent's unit has RuntimeDirectory=sshd for that; a run by hand
         * does not). An empty /run/sshd is harmless where sshd uses another one. */
        (void) mkdir("/run/sshd", 0755);

        if (with_dropin) {
                /* sshd takes the first value it sees: our setting, then the real configuration. */
                static const char text[] = SSHD_DROPIN_TEXT "Include " SSHD_CONFIG "\n";
                tfd = mkostemp(tmp, O_CLOEXEC);
                if (tfd < 0)
                        return log_error_errno(errno, "Cannot create a temporary sshd configuration: %m");
                if (write(tfd, text, sizeof text - 1) != (ssize_t) (sizeof text - 1)) {
                        (void) unlink(tmp);
                        return log_error_errno(EIO, "Cannot write a temporary sshd configuration.");
                }
                argv[3] = tmp;
        } else
                argv[3] = (char *) SSHD_CONFIG;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        int r = posix_spawn(&pid, SSHD_BINARY, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(pipefd[1]);
        if (r != 0) {
                close(pipefd[0]);
                if (with_dropin)
                        (void) unlink(tmp);
                return log_error_errno(r, "Cannot run %s -t: %m", SSHD_BINARY);
        }

        /* Collect its message, bounded in time: sshd -t is quick; a hang must not hold the boot. */
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                long left = 10000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
                if (left <= 0) {
                        kill(pid, SIGKILL);
                        break;
                }
                if (poll(&p, 1, (int) left) <= 0)
                        continue;
                ssize_t n = read(pipefd[0], out + got, sizeof out - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t) n;
                if (got >= sizeof out - 1)
                        break;
        }
        close(pipefd[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (with_dropin)
                (void) unlink(tmp);
        out[got] = '\0';
        out[strcspn(out, "\n")] = '\0';

        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        log_event(LOG_ERR, MID_SSHD_CONFIG_BAD, NULL, "sshd configuration check failed%s: %s",
                  with_dropin ? " with the EntraId drop-in" : "", *out ? out : "(no message)");
        return -EBADMSG;
}
