/* SPDX-License-Identifier: MIT */
#pragma once

/* Planning: given the desired mode and what the node looks like now, the ordered unit actions that make it
 * match. Pure: knows nothing about D-Bus or the filesystem. An empty plan means "already in sync". */

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"
#include "state/state.h"

typedef struct UnitInfo {
        const char *name;         /* as configured, e.g. "sshd.service" */
        const char *file_state;   /* systemctl is-enabled word; "not-found" if absent */
        const char *active_state; /* "active", "inactive", ..., "unknown" offline */
        const char *canonical;    /* the unit file it resolves to (alias target), or name */
} UnitInfo;
/* file_state "bad": the unit is broken, its state could not be read. Disabled still stops and masks it; the
 * other modes leave it alone and never pick it to serve port 22 or for the image record. */

typedef enum UnitActionKind {
        UNIT_STOP,
        UNIT_DISABLE,
        UNIT_MASK,
        UNIT_UNMASK,
        UNIT_ENABLE,
        UNIT_RELOAD, /* daemon-reload; unit is NULL */
        UNIT_START,
        UNIT_MASK_GENERATOR,   /* /etc/systemd/system-generators/systemd-ssh-generator -> /dev/null */
        UNIT_UNMASK_GENERATOR, /* remove that symlink (only the agent's own) */
        _UNIT_ACTION_MAX,
} UnitActionKind;

typedef struct UnitAction {
        UnitActionKind kind;
        const char *unit; /* points into the UnitInfo array's strings (or NULL for RELOAD) */
} UnitAction;

typedef struct UnitPlan {
        UnitAction *actions;
        size_t n;
        const char *ssh_unit; /* LocalUser/EntraId: the unit that serves port 22 (service or socket) */
        const char *off_unit; /* ... and the other one, which must not end enabled too (an Also= in the
                               * enabled unit's [Install] enables it): the executor checks it after ENABLE */
        bool socket_activation;
} UnitPlan;

const char *unit_action_to_string(UnitActionKind k);

/* The canonical service / socket among the managed units, for recording how the image had sshd. */
void unit_plan_image_record(const UnitInfo *units, size_t n, ImageRecord *ret);

int unit_plan_build(Mode mode, const UnitInfo *units, size_t n, const ImageRecord *rec, UnitPlan *ret);

/* systemd >= 256's systemd-ssh-generator (sshd-unix-local.socket, sshd-vsock.socket, ...). */
#define SSH_GENERATOR "systemd-ssh-generator"
typedef struct GeneratorInfo {
        bool present; /* the generator binary exists in the tree */
        bool masked;  /* /etc/systemd/system-generators/systemd-ssh-generator masks it */
        bool ours;    /* ... and the agent made that mask (state file) */
} GeneratorInfo;

/* sshd-unix-local.socket, sshd-vsock.socket, sshd-unix-export.socket, sshd-extra.socket, sshd-extra-N.socket */
bool unit_is_generator_socket(const char *name);

/* Disabled: with the generator present, its socket names are masked even where they do not exist yet (a mask
 * in /etc beats generator output) and the generator is masked. LocalUser/EntraId: the agent's own generator
 * mask is removed and the generator's sockets are started again after the daemon-reload. */
int unit_plan_build_gen(Mode mode, const UnitInfo *units, size_t n, const ImageRecord *rec, const GeneratorInfo *gen, UnitPlan *ret);
void unit_plan_done(UnitPlan *p);

/* True when the plan changes unit files (so a daemon-reload is part of it). */
bool unit_plan_changes_files(const UnitPlan *p);
