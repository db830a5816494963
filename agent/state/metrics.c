/* SPDX-License-Identifier: MIT */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"

/* Names follow Prometheus' conventions (prometheus.io/docs/practices/naming): one prefix, base units
 * (_seconds), no _total on gauges, an enum as one 0/1 series per value, strings as labels of an _info
 * gauge whose value is 1. */

static const char *const MODES[] = { "Disabled", "EntraId", "LocalUser" };
static const char *const VERIFY[] = { "in_sync", "drift", "unknown" };

static void head(FILE *f, const char *name, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* A label value: \\, \" and \n escaped (text exposition format). */
static char *label(const char *v) {
        char *o = malloc(strlen(v ?: "") * 2 + 1), *p = o;
        if (!o)
                return NULL;
        for (const char *c = v ?: ""; *c; c++) {
                if (*c == '\\' || *c == '"')
                        *p++ = '\\', *p++ = *c;
                else if (*c == '\n')
                        *p++ = '\\', *p++ = 'n';
                else
                        *p++ = *c;
        }
        *p = '\0';
        return o;
}

char *metrics_format(const MetricsInput *m) {
        _cleanup_free_ char *src = label(m->last_apply_source), *res = label(m->last_apply_result);
        char *text = NULL;
        size_t size = 0;
        FILE *f;

        if (!src || !res)
                return NULL;
        f = open_memstream(&text, &size);
        if (!f)
                return NULL;

        head(f, "aks_ssh_access_info", "aks-ssh-access agent version.");
        fprintf(f, "aks_ssh_access_info{version=\"%s\"} 1\n", VERSION);

        head(f, "aks_ssh_access_mode", "SSH access mode last applied: 1 for that mode, 0 for the others (all 0: nothing applied yet).");
        for (size_t i = 0; i < ELEMENTSOF(MODES); i++)
                fprintf(f, "aks_ssh_access_mode{mode=\"%s\"} %d\n", MODES[i],
                        m->mode != MODE_INVALID && streq(mode_to_string(m->mode), MODES[i]));

        if (m->mode != MODE_INVALID) {
                head(f, "aks_ssh_access_managed_keys", "Keys in the admin user's managed authorized_keys block, as last applied.");
                fprintf(f, "aks_ssh_access_managed_keys %zu\n", m->managed_keys);
                head(f, "aks_ssh_access_fallback", "1 when the applied mode is the fallback (IMDS unavailable or its document invalid).");
                fprintf(f, "aks_ssh_access_fallback %d\n", m->fallback);
        }
        if (m->have_last_apply) {
                if (m->last_apply_time >= 0) {
                        head(f, "aks_ssh_access_last_apply_timestamp_seconds", "When apply last ran (Unix time).");
                        fprintf(f, "aks_ssh_access_last_apply_timestamp_seconds %lld\n", m->last_apply_time);
                }
                head(f, "aks_ssh_access_last_apply_exit_code", "Exit code of the last apply (0 ok; see aks-ssh-access(8)).");
                fprintf(f, "aks_ssh_access_last_apply_exit_code %d\n", m->last_apply_exit);
                head(f, "aks_ssh_access_last_apply_success", "1 when the last apply exited 0.");
                fprintf(f, "aks_ssh_access_last_apply_success %d\n", m->last_apply_exit == 0);
                head(f, "aks_ssh_access_last_apply_info", "Source and result of the last apply.");
                fprintf(f, "aks_ssh_access_last_apply_info{source=\"%s\",result=\"%s\"} 1\n", src, res);
        }
        if (m->verify >= 0 && m->verify <= 2) {
                head(f, "aks_ssh_access_in_sync", "1 when verify found the node matching the last applied state, else 0.");
                fprintf(f, "aks_ssh_access_in_sync %d\n", m->verify == 0);
                head(f, "aks_ssh_access_verify_result", "Outcome of the last verify: 1 for that outcome, 0 for the others.");
                for (size_t i = 0; i < ELEMENTSOF(VERIFY); i++)
                        fprintf(f, "aks_ssh_access_verify_result{result=\"%s\"} %d\n", VERIFY[i], (int) i == m->verify);
        }
        if (m->sshd_answering >= 0) {
                head(f, "aks_ssh_access_sshd_answering_sockets",
                     "Listening sockets (TCP, AF_UNIX, AF_VSOCK) that answered with an SSH banner.");
                fprintf(f, "aks_ssh_access_sshd_answering_sockets %ld\n", m->sshd_answering);
                head(f, "aks_ssh_access_sshd_listening_in_disabled",
                     "1 when the mode is Disabled and something answers as sshd (the promise is broken).");
                fprintf(f, "aks_ssh_access_sshd_listening_in_disabled %d\n", m->mode == MODE_DISABLED && m->sshd_answering > 0);
        }
        /* a write error of a memory stream is a failed allocation */
        if (ferror(f) | fclose(f)) {
                free(text);
                return NULL;
        }
        return text;
}

long long metrics_parse_time(const char *t) {
        struct tm tm = {};
        const char *e;

        if (!t)
                return -1;
        e = strptime(t, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!e || *e)
                return -1;
        return (long long) timegm(&tm);
}

int metrics_write(int root_fd, const char *dir, const char *text) {
        _cleanup_close_ int dfd = -1;
        int r;

        if (dir && streq(dir, "off"))
                return 0;
        dfd = open_in_root(root_fd, dir ?: METRICS_DIR_DEFAULT, O_RDONLY | O_DIRECTORY, 0);
        if (dfd < 0)
                return !dir && dfd == -ENOENT ? 0 : dfd; /* no node-exporter directory: nothing to do */
        (void) remove_stale_temp_files(dfd, METRICS_FILE);
        r = write_file_atomic(dfd, METRICS_FILE, text, strlen(text), 0644, (uid_t) -1, (gid_t) -1);
        return r < 0 ? r : 1;
}
