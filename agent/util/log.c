/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

static LogTarget log_target = LOG_TARGET_STDERR;
static int log_max_level = LOG_NOTICE;

void log_open(void) {
        /* systemd sets JOURNAL_STREAM=dev:ino for the stderr it connected to the journal. Only trust it if
         * our stderr really is that stream (a child of a systemd service could inherit the variable). */
        const char *e = getenv("JOURNAL_STREAM");
        struct stat st;
        unsigned long long dev, ino;

        if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 && (unsigned long long) st.st_dev == dev &&
            (unsigned long long) st.st_ino == ino) {
                log_target = LOG_TARGET_JOURNAL;
                log_max_level = LOG_INFO;
        }
        e = getenv("AKS_SSH_ACCESS_LOG_LEVEL");
        if (e) {
                if (streq(e, "debug"))
                        log_max_level = LOG_DEBUG;
                else if (streq(e, "info"))
                        log_max_level = LOG_INFO;
        }
}

LogTarget log_get_target(void) {
        return log_target;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_internal(int level, int error, const char *message_id, const char *const *fields, const char *fmt, ...) {
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;

        if (level > log_max_level)
                return -error;

        errno = error;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap); /* glibc expands %m from errno */
        va_end(ap);

        if (log_target == LOG_TARGET_JOURNAL) {
                struct iovec iov[16];
                char prio[32], mid[64], errno_field[32];
                char msg[sizeof buf + 16];
                size_t n = 0;

                snprintf(msg, sizeof msg, "MESSAGE=%s", buf);
                iov[n++] = (struct iovec) { msg, strlen(msg) };
                snprintf(prio, sizeof prio, "PRIORITY=%d", level);
                iov[n++] = (struct iovec) { prio, strlen(prio) };
                iov[n++] = (struct iovec) { (char *) "SYSLOG_IDENTIFIER=aks-ssh-access", 32 };
                if (message_id) {
                        snprintf(mid, sizeof mid, "MESSAGE_ID=%s", message_id);
                        iov[n++] = (struct iovec) { mid, strlen(mid) };
                }
                if (error > 0) {
                        snprintf(errno_field, sizeof errno_field, "ERRNO=%d", error);
                        iov[n++] = (struct iovec) { errno_field, strlen(errno_field) };
                }
                for (size_t i = 0; fields && fields[i] && n < ELEMENTSOF(iov); i++)
                        iov[n++] = (struct iovec) { (char *) fields[i], strlen(fields[i]) };
                if (sd_journal_sendv(iov, (int) n) >= 0)
                        return -error;
                /* journal gone: fall through to stderr */
        }

        fprintf(stderr, "aks-ssh-access: %s\n", buf);
        return -error;
}

int log_oom(void) {
        return log_error_errno(ENOMEM, "Out of memory.");
}
