/* SPDX-License-Identifier: MIT */
#pragma once

/* The admin user's home, .ssh and authorized_keys, handled the way a root process must treat files a user
 * controls (cf. OpenSSH safe_path()): every component checked for owner and mode, nothing under the home
 * followed if it is a symlink, regular files only, and all access relative to directory fds.
 *
 * Errors: -ENOENT (user or file missing), -EPERM (unsafe: a symlink, wrong type, bad owner or mode, hard
 * link; the problem is logged precisely), other negative errno for I/O failures. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct AdminUser {
        char *name;
        uid_t uid;
        gid_t gid;
        char *home;      /* as in the passwd database */
        char *real_home; /* the home's realpath inside the root, like sshd resolves it */
} AdminUser;

void admin_user_done(AdminUser *u);

/* Looks the user up in the passwd database of the target root: NSS (getpwnam) when root_fd is AT_FDCWD,
 * else DIR/etc/passwd. -ENOENT when missing. */
int admin_user_lookup(int root_fd, const char *name, AdminUser *ret);

/* Opens the home directory, filling u->real_home. Components above the home must be root-owned and not
 * group/world writable; the home must be owned by the user or root and not group/world writable. */
int home_open(int root_fd, AdminUser *u, int *ret_fd);

/* Opens <home>/.ssh; creates it (0700, owned by the user) when create is set and it is missing. An existing
 * one must be a real directory owned by the user or root, not group/world writable; when create is set, the user's
 * own one is tightened to 0700. -ENOENT if missing and !create. */
int ssh_dir_open(int home_fd, const AdminUser *u, bool create, int *ret_fd);

/* Sets the user's own .ssh to 0700 when keys are about to be written (writing); a root-owned one is left. */
int ssh_dir_tighten(int ssh_fd, const AdminUser *u, bool writing);

/* Reads .ssh/authorized_keys (regular file, owner user or root, not group/world writable, one link).
 * -ENOENT if absent. */
int authorized_keys_read(int ssh_fd, const AdminUser *u, char **ret_text, size_t *ret_len);

/* Atomically replaces .ssh/authorized_keys with text (0600, owned by the user). */
int authorized_keys_write(int ssh_fd, const AdminUser *u, const char *text, size_t len);

/* Removes the managed block from the authorized_keys of user `name` (a previous admin), with every check above;
 * every other byte stays. 1 removed, 0 nothing to remove (no .ssh, no file, no block), 2 a uid-0 user (never
 * touched), -ENOENT no such user, -EPERM an unsafe path, -EBADMSG a damaged block (left as it is). */
int authorized_keys_remove_managed(int root_fd, const char *name);

#define AUTHORIZED_KEYS_MAX ((size_t) 64 * 1024 * 1024)
