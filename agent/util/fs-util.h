/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Opens `path` (absolute or relative) inside the tree of root_fd as if root_fd were "/": symlinks are
 * resolved within the root and can never escape it (openat2 RESOLVE_IN_ROOT). root_fd AT_FDCWD means the
 * real root. */
int open_in_root(int root_fd, const char *path, int flags, mode_t mode);
/* The same without openat2 (used when the kernel, valgrind or a seccomp filter refuses it). */
int open_in_root_by_hand(int root_fd, const char *path, int flags, mode_t mode);

/* open_in_root() that also gives the real path of what it opened as seen from the root ("/home/a" for
 * <root>/home/a): realpath(3) inside the root, as sshd resolves a home. -EXDEV if it is no longer inside. */
int open_in_root_realpath(int root_fd, const char *path, int flags, char **ret_path);

/* Creates directory `path` (one level) inside the root if missing, then opens it. */
int mkdir_open_in_root(int root_fd, const char *path, mode_t mode);

/* Reads a whole regular file from fd, at most max bytes (-EFBIG beyond). NUL-terminates. */
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);

/* The same, for a regular file only (-EBADFD for a FIFO, device, socket, directory): what reads configuration
 * and passwd files, which must never block or stream forever. Open with O_NONBLOCK (a FIFO's open blocks). */
int read_regular_fd(int fd, size_t max, char **ret, size_t *ret_size);

/* Reads a whole stream (pipe, stdin) the same way. */
int read_full_stream(int fd, size_t max, char **ret, size_t *ret_size);

/* Writes data to dir_fd/name atomically: a temp file `.<name>.aks-ssh-access-tmp.XXXXXX` in the same
 * directory (O_EXCL, O_NOFOLLOW), fchown(uid, gid) unless uid is (uid_t) -1, fchmod(mode), fsync, renameat,
 * fsync(dir_fd). On failure the temp file is removed and the old file is untouched. */
int write_file_atomic(int dir_fd, const char *name, const void *data, size_t len, mode_t mode, uid_t uid, gid_t gid);

/* Removes temp files of write_file_atomic() for `name` left behind by a killed run. Returns how many. */
int remove_stale_temp_files(int dir_fd, const char *name);

bool is_enabled_state(const char *file_state);
