/* SPDX-License-Identifier: MIT */
#pragma once

/* The IMDS instance document → the node's desired SSH policy. Pure: no I/O. */

#include <stdbool.h>
#include <stddef.h>

#include "sshkey.h"

#define MODE_TAG_DEFAULT "aks-managed-ssh-access"

typedef enum Mode {
        MODE_INVALID = -1,
        MODE_LOCALUSER = 0,
        MODE_DISABLED,
        MODE_ENTRAID,
        _MODE_MAX,
} Mode;

const char *mode_to_string(Mode m);   /* "LocalUser", "Disabled", "EntraId" */
Mode mode_from_string(const char *s); /* case-insensitive; MODE_INVALID otherwise */

typedef struct Rejection {
        size_t index;       /* position in compute.publicKeys */
        const char *reason; /* static string, no key material */
} Rejection;

typedef struct PolicyKey {
        SshKey key;
        char *path;   /* the entry's `path`, checked by policy_check_paths() */
        size_t index; /* position in compute.publicKeys */
} PolicyKey;

typedef struct Policy {
        Mode mode;
        bool mode_from_tag; /* false: the tag was absent and LocalUser is the default */
        char *admin_user;
        char *vm_id;     /* may be NULL */
        PolicyKey *keys; /* valid entries in document order (de-duplicated by policy_check_paths()) */
        size_t n_keys, n_keys_alloc;
        Rejection *rejected;
        size_t n_rejected, n_rejected_alloc;
} Policy;

void policy_done(Policy *p);

/* Parses the document. On an invalid document (not JSON, no compute, no string
 * compute.osProfile.adminUsername, non-array publicKeys/tagsList, unknown mode value) returns -EBADMSG and
 * a static one-line reason in *ret_error. Invalid key entries do not fail the parse: they are listed in
 * ret->rejected. mode_tag NULL means MODE_TAG_DEFAULT. */
int policy_parse(const char *json, size_t len, const char *mode_tag, Policy *ret, const char **ret_error);

/* Rejects (moves to ->rejected) every key whose path is not exactly one of the accepted spellings of the
 * admin's authorized_keys: "<home>/.ssh/authorized_keys" for the passwd home and for its realpath (either
 * may be NULL), then drops duplicate blobs (the first valid occurrence stays). Returns the number of keys
 * rejected for their path. */
size_t policy_check_paths(Policy *p, const char *home, const char *real_home);
