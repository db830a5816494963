/* SPDX-License-Identifier: MIT */
#pragma once

/* The subcommands, and what they share: options, output. */

#include <stdbool.h>
#include <stddef.h>
#include <sysexits.h>

#include "node/node.h"

typedef struct Options {
        bool dry_run;
        bool json;
        const char *root;        /* NULL: the live node */
        const char *imds_url;    /* overrides the configured URL */
        const char *imds_file;   /* "-" = stdin */
        const char *config_file; /* --config */
        bool repair;             /* verify --repair */
        bool from_state;         /* apply: re-assert the state file's mode, user and keys; no IMDS (repair) */
} Options;

int cmd_apply(const Options *o);
int cmd_status(const Options *o);
int cmd_verify(const Options *o);
int cmd_show_imds(const Options *o);

/* Writes the metrics file from the state file's content s (SPEC §7). verify: the verify outcome (0/1/2) and
 * the probed listeners; -1 when not measured (apply: the boot path probes nothing). Failures are logged as
 * warnings and never change an exit code. */
void node_write_metrics(Node *n, const State *s, int verify, bool with_listeners);

/* JSON output shared by the subcommands: a key as {type, fingerprint, comment}, the rejected entries as
 * [{index, reason}], and printing (which frees the object; one_line: unformatted). */
struct cJSON;
struct cJSON *json_key(const SshKey *k);
struct cJSON *json_rejections(const Policy *p);
void json_print_free(struct cJSON *j, bool one_line);
