/* SPDX-License-Identifier: MIT */
#pragma once

/* The subcommands, and what they share: options, exit codes, reading the node. */

#include <stdbool.h>
#include <stddef.h>
#include <sysexits.h>

#include "apply/home.h"
#include "apply/units.h"
#include "plan/plan.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "state/state.h"
#include "util/listeners.h"

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

/* Exit codes (SPEC §6), by severity when several things went wrong: the most severe wins. */
int exit_code_worse(int a, int b);
/* An errno from the key part or unit part → exit code. */
int exit_code_from_errno(int r);

/* The node the command works on. */
typedef struct Node {
        int root_fd; /* AT_FDCWD for the live node */
        const char *root;
        Config config;
        UnitBackend *backend;
        /* What listens and answers as sshd (node_listeners(), probed once per run). */
        ListenerList listeners;
        int listeners_r; /* 0, or -ENOENT: not checkable (no /proc under the root), or -errno */
        bool listeners_probed;
} Node;

int node_open(const Options *o, bool need_backend, Node *ret);
void node_done(Node *n);

/* Fetches the document from --imds-file or IMDS. Returns 0 or an exit code (65/66/69) with a one-line
 * reason in *ret_detail. ret_source gets "imds" or "file". */
int node_fetch(const Options *o, const Node *n, char **ret_body, size_t *ret_len, const char **ret_source, char **ret_detail);

/* Every managed unit's state (units that do not exist have file_state "not-found"; a unit whose state
 * cannot be read has file_state "bad" and errors[i] says why, else errors[i] is NULL). */
typedef struct UnitInfoList {
        UnitInfo *units;
        char **errors;
        size_t n;
} UnitInfoList;
int node_query_units(Node *n, UnitInfoList *ret);
void unit_info_list_done(UnitInfoList *l);

/* The managed block's keys as they are in the user's authorized_keys now (lines that do not parse are
 * kept with type "invalid"). -ENOENT-free: a missing file/dir gives an empty list. */
typedef struct BlockKeys {
        SshKey *keys;
        size_t n;
        size_t n_invalid;
        bool found;
        const char *damage; /* unpaired markers (authorized_keys_check()): what, at damage_line; else NULL */
        size_t damage_line;
} BlockKeys;
int node_read_block(const Node *n, AdminUser *u, BlockKeys *ret);
void block_keys_done(BlockKeys *b);

/* Compares the node with the state: 0 in sync, 1 drift, 2 unknown; *ret_what gets one line. */
int node_verify(Node *n, const State *s, char **ret_what);

/* The node's listeners, probed for an SSH banner (live: /proc/self/net; with --root: <root>/proc/self/net,
 * i.e. only when the tree has /proc mounted). Returns 0, -ENOENT (not checkable) or -errno; cached. */
int node_listeners(Node *n, const ListenerList **ret);
/* Disabled's promise "nothing answers as sshd": 1 and *ret_what = "drift: sshd answers on X" when something
 * does, else 0 (also when not checkable). */
int node_verify_listeners(Node *n, char **ret_what);

/* Writes the metrics file from the state file on disk (SPEC §7). verify: the verify outcome (0/1/2) and
 * the probed listeners; -1 when not measured (apply: the boot path probes nothing). Failures are logged as
 * warnings and never change an exit code. */
void node_write_metrics(Node *n, int verify, bool with_listeners);

char *now_rfc3339(void);

/* The policy the state file records (mode, user, managed key lines), for a repair: 0, EX_NOINPUT when
 * the state cannot say (nothing applied, key lines missing), EX_SOFTWARE on OOM. */
int policy_from_state(const State *s, Policy *ret, const char **ret_source);

/* JSON output shared by the subcommands: a key as {type, fingerprint, comment}, the rejected entries as
 * [{index, reason}], and printing (which frees the object). */
struct cJSON;
struct cJSON *json_key(const SshKey *k);
struct cJSON *json_rejections(const Policy *p);
void json_print_free(struct cJSON *j);
