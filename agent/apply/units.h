/* SPDX-License-Identifier: MIT */
#pragma once

/* Unit control: one interface, two implementations.
 *   - live    (units-live.c):    libsystemd sd-bus to org.freedesktop.systemd1 on the running node.
 *   - offline (units-offline.c): an image tree given with --root DIR, no systemd running: runs
 *                                `systemctl --root=DIR is-enabled|mask --force|unmask|enable|disable UNIT`.
 * The planner and the apply code only ever talk to this interface.
 *
 * All functions return 0 (or a positive value where documented) on success and a negative errno on failure:
 * systemd's own for the same cases (its install logic; `systemctl` prints their text), so both backends say
 * the same: -ENOLINK a dangling link at the name, -ELOOP a looping link or an operation through an alias name
 * (offline also: a symlink the tree guard refuses), -ERFKILL masked, -EBADFD / -EISDIR not a unit file. The
 * caller tells only EACCES/EROFS/EEXIST (cannot create, 73) from the rest (70), and any get_file_state()
 * failure makes the unit "bad" (broken). Backends do not log: on failure b->error says why where there is
 * more to say than strerror (systemctl's message offline, "message (D-Bus error name)" live), else it is "";
 * the caller logs once, naming the unit. */

#include <stdbool.h>

typedef struct UnitBackend UnitBackend;

typedef struct UnitBackendVTable {
        const char *name; /* "live" or "offline" */

        /* The word `systemctl is-enabled UNIT` prints: "enabled", "enabled-runtime", "linked", "alias",
         * "masked", "masked-runtime", "static", "indirect", "disabled", "generated", "transient", "bad";
         * "not-found" when no unit file (and no mask) of that name exists. */
        int (*get_file_state)(UnitBackend *b, const char *unit, char **ret_state);

        /* ActiveState: "active", "inactive", "activating", "deactivating", "failed", "reloading";
         * the offline backend answers "unknown". */
        int (*get_active_state)(UnitBackend *b, const char *unit, char **ret_state);

        /* The name of the unit file UNIT resolves to: for an alias (e.g. sshd.service -> ssh.service) the
         * target's name, else a copy of UNIT. -ENOENT when the unit does not exist. */
        int (*resolve_name)(UnitBackend *b, const char *unit, char **ret_name);

        /* Jobs (live only; offline these are no-ops returning 0). Both enqueue with mode "replace" and
         * return without waiting for the job: at boot we run ordered before sshd, waiting would deadlock. */
        int (*stop_no_block)(UnitBackend *b, const char *unit);
        int (*start_no_block)(UnitBackend *b, const char *unit);

        /* Unit file changes, persistent (not --runtime), like systemctl mask --force/unmask/enable/disable
         * UNIT (mask replaces a symlink at the name, never a file or directory).
         * Return 1 if anything changed on disk, 0 if it already was that way. */
        int (*mask)(UnitBackend *b, const char *unit);
        int (*unmask)(UnitBackend *b, const char *unit);
        int (*enable)(UnitBackend *b, const char *unit);
        int (*disable)(UnitBackend *b, const char *unit);

        /* daemon-reload (live only; offline a no-op). */
        int (*reload)(UnitBackend *b);

        void (*free)(UnitBackend *b);
} UnitBackendVTable;

struct UnitBackend {
        const UnitBackendVTable *vtable;
        char error[256]; /* the reason for the last failure (systemctl's message, the D-Bus error), or "" */
};

int unit_backend_new_offline(const char *root, UnitBackend **ret);
int unit_backend_new_live(UnitBackend **ret);

static inline void unit_backend_freep(UnitBackend **b) {
        if (*b)
                (*b)->vtable->free(*b);
}
#define _cleanup_unit_backend_ __attribute__((cleanup(unit_backend_freep)))
