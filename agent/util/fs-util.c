/* SPDX-License-Identifier: MIT */
#include "fs-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

#define TEMP_INFIX ".aks-ssh-access-tmp."

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
        fd = (int) syscall(SYS_openat2, root_fd, path, &how, sizeof how);
        return fd < 0 ? -errno : fd;
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
                        size_t na = alloc * 2;
                        char *nb = realloc(buf, na + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
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

char *fd_path(int fd) {
        char proc[64], buf[4096];
        ssize_t n;

        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        n = readlink(proc, buf, sizeof buf - 1);
        if (n < 0)
                return NULL;
        buf[n] = '\0';
        return strdup(buf);
}

bool is_enabled_state(const char *s) {
        return s && (streq(s, "enabled") || streq(s, "enabled-runtime") || streq(s, "linked") ||
                     streq(s, "linked-runtime") || streq(s, "alias"));
}
