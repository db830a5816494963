/* SPDX-License-Identifier: MIT */
#pragma once

/* One error table: (part of the run, code) → exit code (SPEC §6), the result word recorded in state.json
 * and the MESSAGE_ID of the event. Codes are what the parts return: a positive documented outcome of the
 * module (HOME_E_*, AK_E_*, SSHD_E_*), or a negative errno for an unexpected failure, mapped by its class
 * (EPERM 77, EACCES/EROFS 73, EIO/ENOSPC 74, ...) unless the part's row says otherwise.
 * Pure: no I/O, no logging. */

#include <stdbool.h>

#include "apply/home.h"

typedef enum Part {
        PART_OOM,
        PART_IMDS,                  /* IMDS unavailable (fallback) */
        PART_DOCUMENT,              /* invalid document (fallback) */
        PART_REJECTED,              /* publicKeys entries rejected */
        PART_USER,                  /* admin_user_lookup; HOME_E_ROOT: the admin has uid 0 */
        PART_HOME,                  /* home_open */
        PART_SSH_DIR,               /* ssh_dir_open, reading */
        PART_KEYS_READ,             /* authorized_keys_read */
        PART_KEYS_MERGE,            /* authorized_keys_merge: AK_E_DAMAGED */
        PART_PREVIOUS_KEYS,         /* authorized_keys_remove_managed of the previous admin */
        PART_SSH_DIR_CREATE,        /* ssh_dir_open(create) / ssh_dir_tighten before writing */
        PART_KEYS_WRITE,            /* authorized_keys_write */
        PART_UNIT_QUERY,            /* node_query_units */
        PART_UNIT_BROKEN,           /* a managed unit whose state cannot be read */
        PART_UNITS,                 /* a unit action */
        PART_SSHD_READ,             /* sshd_config unreadable outside EntraId (it may hide our block) */
        PART_SSHD_WRITE,            /* removing EntraId's block */
        PART_LEGACY_DROPIN,         /* removing the old drop-in outside EntraId */
        PART_LEGACY_DROPIN_ENTRAID, /* ... in EntraId (it says the same as the block: never worse than 73) */
        PART_SSHD_CHECK,            /* sshd -t before a start */
        PART_ENTRAID,               /* EntraId cannot be made effective: fail closed */
        PART_STATE,                 /* state_save */
        PART_LOCK,                  /* lock_acquire */
        _PART_MAX,
} Part;

typedef struct ErrorInfo {
        int exit;
        const char *result;
        const char *message_id; /* may be NULL */
} ErrorInfo;

ErrorInfo error_lookup(Part part, int code);

/* Exit codes (SPEC §6), by severity when several things went wrong: the most severe wins. */
int exit_code_worse(int a, int b);
