/* SPDX-License-Identifier: MIT */
#pragma once

/* The record of what the agent last applied: /var/lib/aks-ssh-access/state.json (0600 root). */

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

#define STATE_DIR "/var/lib/aks-ssh-access"
#define STATE_FILE "state.json"
#define LOCK_PATH "/run/aks-ssh-access.lock"
#define LOCK_FALLBACK_NAME "run.lock" /* in STATE_DIR, when LOCK_PATH cannot be created (read-only /run) */

typedef struct StateKey {
        char *type, *fingerprint, *comment;
        char *line; /* the managed line as written ("type blob[ comment]"), for verify --repair; optional
                     * (NULL in a state file of an older version). Public key material: the file is 0600 root. */
} StateKey;

/* How the image had sshd before the agent first masked anything. */
typedef struct ImageRecord {
        bool recorded;
        char *service; /* canonical service unit name, e.g. "ssh.service"; may be NULL */
        char *socket;  /* canonical socket unit name; may be NULL */
        bool service_enabled;
        bool socket_enabled;
} ImageRecord;

typedef struct State {
        Mode mode; /* MODE_INVALID: nothing applied yet */
        char *user;
        char *authorized_keys;
        StateKey *keys;
        size_t n_keys;
        char **units; /* managed units that existed (strv) */
        ImageRecord image;
        bool generator_masked; /* the agent made /etc/systemd/system-generators/systemd-ssh-generator -> /dev/null */
        char *vm_id;
        /* last apply */
        char *last_time;   /* RFC 3339 UTC */
        char *last_source; /* "imds", "file", "fallback" */
        char *last_result; /* "ok", "rejected-entries", "unsafe-path", ... */
        int last_exit;
        char *mode_applied_time; /* when `mode` was last applied from a valid document */
} State;

void state_done(State *s);
void image_record_done(ImageRecord *r);

/* Loads the state file from the root (AT_FDCWD = the real root). -ENOENT if none; -EBADMSG if invalid. */
int state_load(int root_fd, State *ret);

/* Parses state JSON text (pure, for tests and fuzzing). */
int state_parse(const char *text, size_t len, State *ret);

/* Serialises (pure). */
char *state_format(const State *s);

/* Writes it atomically, creating /var/lib/aks-ssh-access (0700) if needed. Returns 0 or -errno (not logged). */
int state_save(int root_fd, const State *s);

/* Takes the lock (flock, non-blocking) under the root's /run. -EWOULDBLOCK if another run holds it (still after
 * half a second: what a killed run's forked child holds for an instant does not count). */
int lock_acquire(int root_fd, int *ret_fd);
