/* SPDX-License-Identifier: MIT */
#include "errors.h"

#include <errno.h>
#include <stddef.h>
#include <sysexits.h>

#include "apply/authorized-keys.h"
#include "apply/sshd-config.h"
#include "log.h"
#include "macro.h"

/* Severity order: internal/system failures first, then what blocks sshd, the key part, the document. */
static int severity(int code) {
        switch (code) {
        case 0: return 0;
        case EX_DATAERR: return 1;     /* 65 rejected entries / invalid document */
        case EX_NOUSER: return 2;      /* 67 */
        case EX_NOPERM: return 3;      /* 77 */
        case EX_UNAVAILABLE: return 4; /* 69 */
        case EX_CONFIG: return 5;      /* 78 */
        case EX_IOERR: return 6;       /* 74 */
        case EX_CANTCREAT: return 7;   /* 73 */
        case EX_SOFTWARE: return 8;    /* 70 */
        default: return 9;
        }
}

int exit_code_worse(int a, int b) {
        return severity(b) > severity(a) ? b : a;
}

/* The unexpected failures (a negative errno) by class; 0: none, the row says. */
static int errno_class(int r) {
        switch (-r) {
        case EPERM:
        case ELOOP:
        case ENOTDIR:
        case EMLINK: return EX_NOPERM;
        case ENOENT: return EX_NOUSER;
        case EACCES:
        case EROFS:
        case EEXIST:
        case ENAMETOOLONG: return EX_CANTCREAT;
        case EIO:
        case ENOSPC:
        case EDQUOT:
        case EFBIG: return EX_IOERR;
        default: return 0;
        }
}

/* home.c's documented outcomes (home.h). */
static int home_class(int code) {
        switch (code) {
        case HOME_E_UNSAFE: return EX_NOPERM;
        case HOME_E_IMMUTABLE: return EX_CANTCREAT;
        case HOME_E_DAMAGED: return EX_DATAERR;
        default: return EX_NOUSER; /* HOME_E_NO_USER, HOME_E_NOT_FOUND, HOME_E_ROOT */
        }
}

/* exit ERRNO_OR(x): a negative errno's class, else x. BY_HOME (the parts of home.c): a HOME_E_* by
 * home_class(), a negative errno by its class, else 70. */
#define ERRNO_OR(exit) (-(exit))
#define BY_HOME (-1)
#define E_CANTCREAT -EACCES, -EROFS, -EEXIST, -ENAMETOOLONG

typedef struct ErrorRow {
        Part part;
        int codes[4]; /* the codes this row is for (0 ends them); none: every other code of the part */
        int exit;
        const char *result;
        const char *message_id;
} ErrorRow;

/* The first row of the part that lists the code, else the part's row without codes. MESSAGE_ID NULL: the
 * event is logged without one (or by the module itself, e.g. sshd -t's message). */
static const ErrorRow table[] = {
        { PART_OOM, {}, EX_SOFTWARE, "out-of-memory", NULL },
        { PART_IMDS, {}, EX_UNAVAILABLE, "imds-unavailable", MID_IMDS_UNAVAILABLE },
        { PART_DOCUMENT, {}, EX_DATAERR, "invalid-document", MID_DOCUMENT_INVALID },
        { PART_REJECTED, {}, EX_DATAERR, "rejected-entries", MID_KEY_REJECTED },
        { PART_USER, { HOME_E_ROOT }, EX_NOUSER, "admin-user-root", MID_USER_MISSING },
        { PART_USER, {}, EX_NOUSER, "admin-user-missing", MID_USER_MISSING },
        { PART_HOME, { HOME_E_NOT_FOUND, -ENOENT }, EX_NOUSER, "home-missing", MID_UNSAFE_PATH },
        { PART_HOME, {}, BY_HOME, "unsafe-path", MID_UNSAFE_PATH },
        { PART_SSH_DIR, {}, BY_HOME, "unsafe-path", MID_UNSAFE_PATH },
        { PART_KEYS_READ, { HOME_E_UNSAFE, -EPERM }, EX_NOPERM, "unsafe-path", MID_UNSAFE_PATH },
        { PART_KEYS_READ, {}, BY_HOME, "io-error", MID_UNSAFE_PATH },
        /* Unpaired markers: which lines are ours cannot be told, so the file is left as it is. */
        { PART_KEYS_MERGE, { AK_E_DAMAGED }, EX_DATAERR, "authorized-keys-damaged", MID_UNSAFE_PATH },
        { PART_KEYS_MERGE, {}, EX_SOFTWARE, "out-of-memory", NULL },
        { PART_PREVIOUS_KEYS, { HOME_E_DAMAGED }, EX_DATAERR, "authorized-keys-damaged", MID_UNSAFE_PATH },
        { PART_PREVIOUS_KEYS, {}, BY_HOME, "previous-admin-keys", MID_UNSAFE_PATH },
        /* ENOENT: .ssh vanished between creating and opening it (a race in the home): the user exists, the
         * directory could not be made, 73 — not "no such user" (67). */
        { PART_SSH_DIR_CREATE, { HOME_E_UNSAFE, -EPERM }, EX_NOPERM, "unsafe-path", MID_UNSAFE_PATH },
        { PART_SSH_DIR_CREATE, { -ENOENT }, EX_CANTCREAT, "cannot-create", MID_UNSAFE_PATH },
        { PART_SSH_DIR_CREATE, {}, BY_HOME, "cannot-create", MID_UNSAFE_PATH },
        /* The paths were checked already: EPERM here is an immutable/append-only file or directory (or an
         * LSM), i.e. "cannot create" (73), not an unsafe path (77). */
        { PART_KEYS_WRITE, { HOME_E_IMMUTABLE, -EPERM }, EX_CANTCREAT, "cannot-create", MID_UNSAFE_PATH },
        { PART_KEYS_WRITE, {}, BY_HOME, "io-error", MID_UNSAFE_PATH },
        { PART_UNIT_QUERY, {}, EX_SOFTWARE, "unit-control-failed", NULL },
        { PART_UNIT_BROKEN, {}, EX_SOFTWARE, "unit-broken", MID_UNIT_FAILED },
        { PART_UNITS, { E_CANTCREAT }, EX_CANTCREAT, "unit-control-failed", MID_UNIT_FAILED },
        { PART_UNITS, {}, EX_SOFTWARE, "unit-control-failed", MID_UNIT_FAILED },
        { PART_SSHD_READ, { SSHD_E_TOO_LARGE }, EX_IOERR, "sshd-config-unreadable", NULL },
        { PART_SSHD_READ, {}, ERRNO_OR(EX_IOERR), "sshd-config-unreadable", NULL },
        /* EPERM: an immutable sshd_config; EBUSY: a bind-mounted one (rename fails). */
        { PART_SSHD_WRITE, { -EPERM, -EBUSY }, EX_CANTCREAT, "cannot-create", NULL },
        { PART_SSHD_WRITE, {}, ERRNO_OR(EX_SOFTWARE), "cannot-create", NULL },
        { PART_LEGACY_DROPIN, {}, ERRNO_OR(EX_CANTCREAT), "cannot-create", NULL },
        { PART_LEGACY_DROPIN_ENTRAID, {}, EX_CANTCREAT, "cannot-create", NULL },
        { PART_SSHD_CHECK, {}, EX_CONFIG, "sshd-config-invalid", NULL },
        { PART_ENTRAID, {}, EX_CONFIG, "entraid-not-effective", MID_SSHD_CONFIG_BAD },
        { PART_STATE, { E_CANTCREAT }, EX_CANTCREAT, "state-write-failed", NULL },
        { PART_STATE, {}, EX_IOERR, "state-write-failed", NULL },
        { PART_LOCK, { -EWOULDBLOCK }, EX_TEMPFAIL, "locked", NULL },
        { PART_LOCK, { E_CANTCREAT }, EX_CANTCREAT, "cannot-create", NULL },
        { PART_LOCK, {}, EX_IOERR, "io-error", NULL },
};

ErrorInfo error_lookup(Part part, int code) {
        const ErrorRow *any = NULL, *hit = NULL;

        for (size_t i = 0; i < ELEMENTSOF(table) && !hit; i++) {
                if (table[i].part != part)
                        continue;
                if (!table[i].codes[0] && !any)
                        any = &table[i];
                for (size_t k = 0; k < ELEMENTSOF(table[i].codes) && table[i].codes[k] && !hit; k++)
                        if (table[i].codes[k] == code)
                                hit = &table[i];
        }
        hit = hit ?: any;
        if (!hit)
                return (ErrorInfo) { EX_SOFTWARE, "failed", NULL };
        int exit = hit->exit;
        if (exit == BY_HOME)
                exit = code > 0 ? home_class(code) : errno_class(code) ?: EX_SOFTWARE;
        else if (exit < 0)
                exit = errno_class(code) ?: -exit;
        return (ErrorInfo) { exit, hit->result, hit->message_id };
}
