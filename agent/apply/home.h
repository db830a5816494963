/* SPDX-License-Identifier: MIT */
#pragma once

/* The admin user's home, .ssh and authorized_keys, handled the way a root process must treat files a user
 * controls (cf. OpenSSH safe_path()): every component checked for owner and mode, nothing under the home
 * followed if it is a symlink, regular files only, and all access relative to directory fds.
 *
 * Nothing here logs. Results (dbus-broker's split): 0 success; a positive HOME_E_* below is an outcome the
 * caller must handle (and map to an exit code); a negative errno is an unexpected failure (I/O, ENOMEM),
 * passed up unchanged. On every failure u->error holds one line naming the path and the problem (without
 * a final period), for the caller's log line: "refusing to use /home/a/.ssh: it is a symlink". */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum {
        HOME_E_NO_USER = 1, /* no such user in the passwd database, or that database is unusable (exit 67) */
        HOME_E_NOT_FOUND,   /* the home, .ssh or authorized_keys does not exist */
        HOME_E_UNSAFE,      /* refused: a symlink, not a directory / regular file, a bad owner or mode, hard
                             * links, a system directory as home, a component swapped while checking (77) */
        HOME_E_IMMUTABLE,   /* a checked path the kernel will not change (EPERM: immutable, append-only, an
                             * LSM), or .ssh removed while creating / writing it: "cannot create" (73) */
        HOME_E_ROOT,        /* the user has uid 0: its keys are never touched for a document */
        HOME_E_DAMAGED,     /* the managed block's markers do not pair up (AK_E_DAMAGED): left as it is */
};

#define HOME_ERROR_MAX 512

typedef struct AdminUser {
        char *name;
        uid_t uid;
        gid_t gid;
        char *home;                 /* as in the passwd database */
        char *real_home;            /* the home's realpath inside the root, like sshd resolves it */
        char error[HOME_ERROR_MAX]; /* why the last call on this user failed, or "" */
} AdminUser;

void admin_user_done(AdminUser *u);

/* Looks the user up in the passwd database of the target root: NSS (getpwnam) when root_fd is AT_FDCWD,
 * else DIR/etc/passwd. HOME_E_NO_USER when missing; HOME_E_UNSAFE when that passwd file is not a regular
 * file or the entry has no absolute home (-EFBIG: the file is too large); on failure only ret->error is set. */
int admin_user_lookup(int root_fd, const char *name, AdminUser *ret);

/* Opens the home directory, filling u->real_home. Components above the home must be root-owned and not
 * group/world writable; the home must be owned by the user or root and not group/world writable.
 * HOME_E_NOT_FOUND when it does not exist, HOME_E_UNSAFE otherwise. */
int home_open(int root_fd, AdminUser *u, int *ret_fd);

/* Opens <home>/.ssh; creates it (0700, owned by the user) when create is set and it is missing. An existing
 * one must be a real directory owned by the user or root, not group/world writable; when create is set, the user's
 * own one is tightened to 0700. HOME_E_NOT_FOUND if missing and !create; HOME_E_UNSAFE, HOME_E_IMMUTABLE. */
int ssh_dir_open(int home_fd, AdminUser *u, bool create, int *ret_fd);

/* Sets the user's own .ssh to 0700 when keys are about to be written (writing); a root-owned one is left. */
int ssh_dir_tighten(int ssh_fd, AdminUser *u, bool writing);

/* Reads .ssh/authorized_keys (regular file, owner user or root, not group/world writable, one link).
 * HOME_E_NOT_FOUND if absent, HOME_E_UNSAFE. */
int authorized_keys_read(int ssh_fd, AdminUser *u, char **ret_text, size_t *ret_len);

/* Atomically replaces .ssh/authorized_keys with text (0600, owned by the user). HOME_E_IMMUTABLE. */
int authorized_keys_write(int ssh_fd, AdminUser *u, const char *text, size_t len);

/* Removes the managed block from the authorized_keys of user `name` (a previous admin), with every check above;
 * every other byte stays. u receives the user (free it with admin_user_done()) and the reason of a failure.
 * 0 done: *ret_removed says whether a block went (nothing to remove: no home, .ssh, file or block);
 * HOME_E_NO_USER, HOME_E_ROOT (never touched), HOME_E_UNSAFE, HOME_E_IMMUTABLE, HOME_E_DAMAGED. */
int authorized_keys_remove_managed(int root_fd, const char *name, AdminUser *u, bool *ret_removed);

#define AUTHORIZED_KEYS_MAX ((size_t) 64 * 1024 * 1024)
