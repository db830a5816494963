/* SPDX-License-Identifier: MIT */
#include "fs-util.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

#define TEMP_INFIX ".aks-ssh-access-tmp."

/* Without openat2 (old kernels, valgrind, seccomp filters that refuse it): the same resolution by hand.
 * Every component is looked at without following it; a symlink's target is spliced into the rest of the
 * path and resolved from the root (absolute) or from its directory (relative); ".." stops at the root. */
static int splice_link(int dir, const char *comp, const char *rest, int root_fd, char **todo, int *ret_dir) {
        char target[4096];
        ssize_t n = readlinkat(dir, comp, target, sizeof target - 1);
        char *joined;

        if (n < 0)
                return -errno;
        target[n] = '\0';
        if (asprintf(&joined, "%s/%s", target, rest) < 0)
                return -ENOMEM;
        free(*todo);
        *todo = joined;
        if (target[0] == '/') {
                int r = openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (r < 0)
                        return -errno;
                *ret_dir = r;
        } else
                *ret_dir = -1; /* stay in dir */
        return 0;
}

int open_in_root_by_hand(int root_fd, const char *path, int flags, mode_t mode) {
        _cleanup_free_ char *todo = strdup(path);
        _cleanup_close_ int dir = -1;
        unsigned links = 0;
        size_t pos = 0;

        if (!todo)
                return -ENOMEM;
        dir = openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return -errno;
        for (;;) {
                struct stat st;
                char comp[NAME_MAX + 1];
                const char *rest;
                size_t len;
                int fd, r, nd = -1;

                while (todo[pos] == '/')
                        pos++;
                if (todo[pos] == '\0') {
                        fd = openat(dir, ".", (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
                        return fd < 0 ? -errno : fd;
                }
                len = strcspn(todo + pos, "/");
                if (len > NAME_MAX)
                        return -ENAMETOOLONG;
                memcpy(comp, todo + pos, len);
                comp[len] = '\0';
                pos += len;
                rest = todo + pos;
                while (*rest == '/')
                        rest++;
                bool last = *rest == '\0';

                if (streq(comp, "."))
                        continue;
                if (streq(comp, "..")) {
                        struct stat b;
                        if (fstat(dir, &st) < 0 || fstat(root_fd, &b) < 0)
                                return -errno;
                        if (st.st_dev == b.st_dev && st.st_ino == b.st_ino)
                                continue; /* clamped at the root */
                        fd = openat(dir, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                        if (fd < 0)
                                return -errno;
                        close(dir);
                        dir = fd;
                        continue;
                }

                if (fstatat(dir, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT || !last || !(flags & O_CREAT))
                                return -errno;
                } else if (S_ISLNK(st.st_mode) && !(last && (flags & O_NOFOLLOW))) {
                        if (++links > 40)
                                return -ELOOP;
                        r = splice_link(dir, comp, rest, root_fd, &todo, &nd);
                        if (r < 0)
                                return r;
                        pos = 0;
                        if (nd >= 0) {
                                close(dir);
                                dir = nd;
                        }
                        continue;
                }

                if (last) {
                        fd = openat(dir, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
                        return fd < 0 ? -errno : fd;
                }
                fd = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                close(dir);
                dir = fd;
                pos = (size_t) (rest - todo);
        }
}

int open_in_root(int root_fd, const char *path, int flags, mode_t mode) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        int fd;

        if (root_fd == AT_FDCWD) {
                fd = openat(AT_FDCWD, path, flags | O_CLOEXEC, mode);
                return fd < 0 ? -errno : fd;
        }
        while (*path == '/')
                path++;
        if (*path == '\0')
                path = ".";
        /* EAGAIN: a rename inside the root raced with the lookup; try again a few times. */
        for (int attempt = 0; attempt < 16; attempt++) {
                fd = (int) syscall(SYS_openat2, root_fd, path, &how, sizeof how);
                if (fd >= 0 || errno != EAGAIN)
                        break;
        }
        if (fd < 0 && (errno == ENOSYS || errno == EPERM))
                return open_in_root_by_hand(root_fd, path, flags, mode);
        return fd < 0 ? -errno : fd;
}

/* The path the kernel has for fd (via /proc/self/fd), or NULL with errno set. */
static char *fd_path(int fd) {
        char proc[64], buf[4096];
        ssize_t n;

        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        n = readlink(proc, buf, sizeof buf - 1);
        if (n < 0)
                return NULL;
        buf[n] = '\0';
        return strdup(buf);
}

int open_in_root_realpath(int root_fd, const char *path, int flags, char **ret_path) {
        _cleanup_close_ int fd = open_in_root(root_fd, path, flags, 0);
        _cleanup_free_ char *p = NULL, *r = NULL;
        size_t n = 0;

        if (fd < 0)
                return fd;
        p = fd_path(fd);
        if (!p)
                return -errno ?: -EIO;
        if (root_fd != AT_FDCWD) {
                r = fd_path(root_fd);
                if (!r)
                        return -errno ?: -EIO;
                n = streq(r, "/") ? 0 : strlen(r);
                if (strncmp(p, r, n) != 0 || (p[n] != '/' && p[n] != '\0'))
                        return -EXDEV; /* moved out of the root meanwhile */
        }
        *ret_path = strdup(p[n] ? p + n : "/");
        if (!*ret_path)
                return -ENOMEM;
        return TAKE_FD(fd);
}

int mkdir_open_in_root(int root_fd, const char *path, mode_t mode) {
        _cleanup_free_ char *parent = strdup(path);
        _cleanup_close_ int pfd = -1;
        char *slash;
        int fd;

        if (!parent)
                return -ENOMEM;
        fd = open_in_root(root_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (fd != -ENOENT)
                return fd;
        slash = strrchr(parent, '/');
        if (!slash || slash[1] == '\0')
                return -EINVAL;
        *slash = '\0';
        pfd = open_in_root(root_fd, *parent ? parent : "/", O_RDONLY | O_DIRECTORY, 0);
        if (pfd < 0)
                return pfd;
        if (mkdirat(pfd, slash + 1, mode) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(pfd, slash + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int read_loop(int fd, size_t max, size_t hint, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = hint + 1 > 4096 ? hint + 1 : 4096;

        buf = malloc(alloc + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (size == alloc) {
                        if (alloc > max)
                                return -EFBIG;
                        if (!GREEDY_REALLOC(buf, alloc * 2 + 1))
                                return -ENOMEM;
                        alloc *= 2;
                }
                n = read(fd, buf + size, alloc - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max)
                        return -EFBIG;
        }
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode) && (size_t) st.st_size > max)
                return -EFBIG;
        return read_loop(fd, max, S_ISREG(st.st_mode) ? (size_t) st.st_size : 0, ret, ret_size);
}

int read_regular_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        struct stat st;
        int flags;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* Opened with O_NONBLOCK so that a FIFO could not hang the open; a regular file reads the same. */
        flags = fcntl(fd, F_GETFL);
        if (flags >= 0 && (flags & O_NONBLOCK))
                (void) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        return read_full_fd(fd, max, ret, ret_size);
}

int read_full_stream(int fd, size_t max, char **ret, size_t *ret_size) {
        return read_loop(fd, max, 0, ret, ret_size);
}

static int write_all(int fd, const void *data, size_t len) {
        const char *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int write_file_atomic(int dir_fd, const char *name, const void *data, size_t len, mode_t mode, uid_t uid, gid_t gid) {
        char tmp[256];
        _cleanup_close_ int fd = -1;
        int r;

        for (int attempt = 0;; attempt++) {
                unsigned char rnd[6];
                char hex[13];

                randombytes_buf(rnd, sizeof rnd);
                sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
                if ((size_t) snprintf(tmp, sizeof tmp, ".%s" TEMP_INFIX "%s", name, hex) >= sizeof tmp)
                        return -ENAMETOOLONG;
                fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt > 16)
                        return -errno;
        }

        r = write_all(fd, data, len);
        if (r >= 0 && uid != (uid_t) -1 && fchown(fd, uid, gid) < 0)
                r = -errno;
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dir_fd, tmp, 0);
                return r;
        }
        if (fsync(dir_fd) < 0)
                return -errno;
        return 0;
}

int remove_stale_temp_files(int dir_fd, const char *name) {
        char prefix[256];
        int n = 0, dfd;
        DIR *d;
        struct dirent *de;

        if ((size_t) snprintf(prefix, sizeof prefix, ".%s" TEMP_INFIX, name) >= sizeof prefix)
                return -ENAMETOOLONG;
        dfd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return -errno;
        }
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                if (unlinkat(dir_fd, de->d_name, 0) == 0)
                        n++;
        }
        closedir(d);
        return n;
}

bool is_enabled_state(const char *s) {
        return s &&
                (streq(s, "enabled") || streq(s, "enabled-runtime") || streq(s, "linked") || streq(s, "linked-runtime") ||
                 streq(s, "alias"));
}
