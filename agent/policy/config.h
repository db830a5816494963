/* SPDX-License-Identifier: MIT */
#pragma once

/* Settings: built-in defaults < /etc/aks-ssh-access.conf < /etc/aks-ssh-access.conf.d/ *.conf (lexical)
 * < --config FILE < command-line flags. Format: `key = value` lines, '#' or ';' comments. */

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

#define CONFIG_FILE "/etc/aks-ssh-access.conf"
#define CONFIG_DIR "/etc/aks-ssh-access.conf.d"
#define DEFAULT_UNITS "ssh.service sshd.service ssh.socket sshd.socket"
#define DEFAULT_DEADLINE_S 90
/* units/aks-ssh-access.service has TimeoutStartSec=150 (tests/integration/test_hardening.py checks they agree);
 * deadline_s is clamped to leave 30 s of it for the fallback (masking every unit, the state file). */
#define UNIT_TIMEOUT_START_S 150
#define DEADLINE_MAX_S 120

/* A problem found while loading, for the caller to log (the loader does not log). */
typedef struct ConfigNote {
        int level;  /* LOG_ERR, LOG_WARNING */
        int error;  /* the errno it stands for (the journal's ERRNO=), 0 none */
        char *text; /* one line, e.g. "test.conf:3: unknown setting \"deadline\"." */
} ConfigNote;

typedef struct Config {
        char *imds_url;
        char *mode_tag;
        unsigned deadline_s;
        Mode fallback_mode;
        char **units;      /* strv */
        bool drift_repair; /* drift = repair: verify (and the timer's run) re-asserts the last applied state */
        char *metrics_dir; /* NULL: the node-exporter textfile directory when it exists; "off": none */
        ConfigNote *notes; /* what config_parse_text()/config_load() found, in order */
        size_t n_notes;
} Config;

int config_init(Config *c); /* defaults */
void config_done(Config *c);

/* Applies one file's text on top of c (pure). Unknown keys and bad values are noted (c->notes) with
 * `origin:line` and returned as -EINVAL after the whole text was applied (valid lines still take effect). */
int config_parse_text(Config *c, const char *text, size_t len, const char *origin);

/* Loads the system files from the root (missing files are fine; a broken line is noted and skipped),
 * then `explicit_file` (must exist and parse cleanly: -ENOENT/-EINVAL otherwise). The caller logs c->notes. */
int config_load(Config *c, int root_fd, const char *explicit_file);
