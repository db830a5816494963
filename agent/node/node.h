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

/* Every managed unit's state: the configured units and, with systemd's ssh generator in the tree (gen, from
 * generator_query()), its sockets. -ENOMEM only: a unit that cannot be read is reported in the list. */
int node_query_units(Node *n, const GeneratorInfo *gen, UnitInfoList *ret);
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
void block_keys_done(BlockKeys *b);

/* The admin user `name` (NULL: none): passwd entry, home (not for a uid-0 user), .ssh and authorized_keys
 * into s (user_r, home_r, ssh_dir_r, keys_r, keys_text; the fds kept for the executor). -ENOMEM only. */
int node_observe_user(Node *n, const char *name, Snapshot *s);

/* The generator (gen.ours from s->prev.generator_masked) and the managed units into s (units_r). */
void node_observe_units(Node *n, Snapshot *s);

/* The managed block of user `name` (node_observe_user() into s): 0, or the first error of the passwd
 * lookup, the home, .ssh, authorized_keys (a missing .ssh or file: an empty block). */
int node_read_block(Node *n, const char *name, Snapshot *s, BlockKeys *ret);

/* Reads the node once, for the policy (and previous state) the caller put into *s: the admin user, home
 * and authorized_keys, the units and the generator, sshd_config and the old drop-in. -ENOMEM only: what
 * cannot be read is recorded as such (the *_r fields). */
int node_observe(Node *n, Snapshot *s);
void snapshot_done(Snapshot *s);

/* Logs the decision's problems from *logged on (once each, with the table's MESSAGE_ID). */
void node_log_problems(const Snapshot *s, const Decision *d, size_t *logged);

/* Runs the decision's steps in order, feeding each result back (decide_feedback). *ret_changed: anything
 * on the node changed. -ENOMEM only. */
int node_execute(Node *n, Snapshot *s, Decision *d, bool *ret_changed);

/* The node's listeners, probed for an SSH banner (live: /proc/self/net; with --root: <root>/proc/self/net,
 * i.e. only when the tree has /proc mounted). Returns 0, -ENOENT (not checkable) or -errno; cached. */
int node_listeners(Node *n, const ListenerList **ret);
