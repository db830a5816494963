/* SPDX-License-Identifier: MIT */
#pragma once

/* The node a command works on: reading it (observe.c) and changing it by a decision's steps (execute.c). */

#include <stdbool.h>
#include <stddef.h>

#include "apply/units.h"
#include "decide/decide.h"
#include "policy/config.h"
#include "util/listeners.h"

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

/* root NULL: the live node. imds_url overrides the configured one. Returns 0 or an exit code (logged). */
int node_open(const char *root, const char *config_file, const char *imds_url, bool need_backend, Node *ret);
void node_done(Node *n);

/* The managed block's keys as they are in the user's authorized_keys now (lines that do not parse are
 * counted in n_invalid). */
typedef struct BlockKeys {
        SshKey *keys;
        size_t n;
        size_t n_invalid;
        bool found;
        const char *damage; /* unpaired markers (authorized_keys_check()): what, at damage_line; else NULL */
        size_t damage_line;
} BlockKeys;
void block_keys_done(BlockKeys *b);

/* The managed block of the snapshot's user: 0, or the first error of the passwd lookup, the home, .ssh,
 * authorized_keys (a missing .ssh or file: an empty block). */
int node_block(const Snapshot *s, BlockKeys *ret);

/* Reads the node once, for the policy (and previous state) the caller put into *s: the admin user (passwd
 * entry, home: not for a uid-0 user, .ssh, authorized_keys; the fds kept for the executor), the managed units
 * (the configured ones and, with systemd's ssh generator in the tree, its sockets) and the generator,
 * sshd_config and the old drop-in. -ENOMEM only: what cannot be read is recorded as such (the *_r fields; a
 * unit that cannot be read is in the list, broken). */
int node_observe(Node *n, Snapshot *s);
void snapshot_done(Snapshot *s);
#define SNAPSHOT_INIT                                                                                                  \
        (Snapshot) {                                                                                                   \
                .prev.mode = MODE_INVALID, .policy.mode = MODE_INVALID, .home_fd = -1, .ssh_fd = -1, .sshd.dir_fd = -1 \
        }

/* The policy the state file records (mode, user, managed key lines), for a repair: 0, EX_NOINPUT when
 * the state cannot say (nothing applied, key lines missing), EX_SOFTWARE on OOM. */
int policy_from_state(const State *s, Policy *ret, const char **ret_source);

/* verify and status: the state file into s->prev (*ret_state: state_load()'s result; without a state file the
 * units and sshd_config are still read), the policy it records (a repair's), and the node read for it.
 * *ret_keys_differ: a state of an older version (no key lines) whose fingerprints the block does not match.
 * -ENOMEM only. */
int node_observe_recorded(Node *n, Snapshot *s, int *ret_state, bool *ret_keys_differ);

/* Fetches the document from imds_file ("-": stdin) or IMDS (each retry logged). Returns 0 or an exit code
 * (65/66/69) with a one-line reason in *ret_detail. ret_source gets "imds" or "file". */
int node_fetch(const Node *n, const char *imds_file, char **ret_body, size_t *ret_len, const char **ret_source, char **ret_detail);

/* Logs the decision's problems from *logged on (once each, with the table's MESSAGE_ID). */
void node_log_problems(const Snapshot *s, const Decision *d, size_t *logged);

/* Runs the decision's steps in order, feeding each result back (decide_feedback). *ret_changed: anything
 * on the node changed. -ENOMEM only. */
int node_execute(Node *n, Snapshot *s, Decision *d, bool *ret_changed);

/* The node's listeners, probed for an SSH banner (live: /proc/self/net; with --root: <root>/proc/self/net,
 * i.e. only when the tree has /proc mounted). Returns 0, -ENOENT (not checkable) or -errno; cached. */
int node_listeners(Node *n, const ListenerList **ret);
