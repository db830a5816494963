/* SPDX-License-Identifier: MIT */
#pragma once

/* Prometheus node-exporter textfile metrics: <metrics_dir>/aks-ssh-access.prom, written by apply and verify.
 * Formatting is pure (metrics_format); metrics_write puts the text in place atomically. */

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

#define METRICS_FILE "aks-ssh-access.prom"
#define METRICS_DIR_DEFAULT "/var/lib/prometheus/node-exporter"

typedef struct MetricsInput {
        Mode mode; /* MODE_INVALID: nothing applied yet */
        size_t managed_keys;
        bool have_last_apply;
        long long last_apply_time; /* Unix seconds; < 0 unknown */
        int last_apply_exit;
        const char *last_apply_source, *last_apply_result;
        bool fallback;
        int verify;          /* 0 in sync, 1 drift, 2 unknown; -1 not measured (apply) */
        long sshd_answering; /* sockets answering as sshd; -1 not measured */
} MetricsInput;

/* The whole file's text (malloc'ed), or NULL on OOM. */
char *metrics_format(const MetricsInput *m);

/* RFC 3339 "YYYY-MM-DDTHH:MM:SSZ" → Unix seconds, -1 if it is not that. */
long long metrics_parse_time(const char *t);

/* Writes text to <root><dir>/aks-ssh-access.prom atomically, mode 0644 (node-exporter reads it as its own
 * user). dir NULL: the default directory, only when it exists (returns 0, writes nothing otherwise);
 * "off": nothing. Returns 1 written, 0 nothing to do, -errno. */
int metrics_write(int root_fd, const char *dir, const char *text);
