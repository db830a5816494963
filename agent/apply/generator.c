/* SPDX-License-Identifier: MIT */
#include "generator.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"

static const char *const generator_paths[] = {
        "/usr/lib/systemd/system-generators/" SSH_GENERATOR,
        "/lib/systemd/system-generators/" SSH_GENERATOR,
};

static const char *const output_dirs[] = { "/run/systemd/generator.early", "/run/systemd/generator", "/run/systemd/generator.late" };

/* The name in dfd is a symlink to /dev/null: a mask. */
static bool is_mask_link(int dfd) {
        char buf[16];
        ssize_t n = readlinkat(dfd, SSH_GENERATOR, buf, sizeof buf - 1);

        return n == 9 && memcmp(buf, "/dev/null", 9) == 0;
}

int generator_query(int root_fd, GeneratorInfo *gen) {
        _cleanup_close_ int dfd = -1;
        struct stat st;

        gen->present = gen->masked = false;
        for (size_t i = 0; i < ELEMENTSOF(generator_paths) && !gen->present; i++) {
                _cleanup_close_ int fd = open_in_root(root_fd, generator_paths[i], O_PATH, 0);
                gen->present = fd >= 0 && fstat(fd, &st) >= 0 && S_ISREG(st.st_mode);
        }
        dfd = open_in_root(root_fd, GENERATOR_MASK_DIR, O_PATH | O_DIRECTORY, 0);
        if (dfd < 0)
                return dfd == -ENOENT ? 0 : dfd;
        if (fstatat(dfd, SSH_GENERATOR, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        /* an empty file masks too */
        gen->masked = S_ISLNK(st.st_mode) ? is_mask_link(dfd) : S_ISREG(st.st_mode) && st.st_size == 0;
        return 0;
}

int generator_mask(int root_fd) {
        _cleanup_close_ int dfd = mkdir_open_in_root(root_fd, GENERATOR_MASK_DIR, 0755);
        GeneratorInfo gen = {};
        int r;

        if (dfd < 0)
                return dfd;
        if (symlinkat("/dev/null", dfd, SSH_GENERATOR) >= 0) {
                (void) fsync(dfd);
                return 1;
        }
        if (errno != EEXIST)
                return -errno;
        r = generator_query(root_fd, &gen);
        if (r < 0)
                return r;
        return gen.masked ? 0 : -EEXIST; /* something else at the name: never replaced */
}

int generator_unmask(int root_fd) {
        _cleanup_close_ int dfd = open_in_root(root_fd, GENERATOR_MASK_DIR, O_PATH | O_DIRECTORY, 0);
        struct stat st;

        if (dfd == -ENOENT)
                return 0;
        if (dfd < 0)
                return dfd;
        if (fstatat(dfd, SSH_GENERATOR, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISLNK(st.st_mode) || !is_mask_link(dfd))
                return 0; /* not a mask: not ours */
        if (unlinkat(dfd, SSH_GENERATOR, 0) < 0)
                return -errno;
        return 1;
}

static int strv_add(char ***l, size_t *n, const char *s) {
        for (size_t i = 0; i < *n; i++)
                if (streq((*l)[i], s))
                        return 0;
        return strv_consume(l, n, strdup(s));
}

int generator_socket_names(int root_fd, char ***ret) {
        static const char *const fixed[] = { "sshd-unix-local.socket", "sshd-vsock.socket", "sshd-unix-export.socket",
                                             "sshd-extra.socket" };
        _cleanup_strv_free_ char **l = calloc(1, sizeof *l);
        size_t n = 0;
        int r = l ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(fixed); i++)
                r = strv_add(&l, &n, fixed[i]);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(output_dirs); i++) {
                int fd = open_in_root(root_fd, output_dirs[i], O_RDONLY | O_DIRECTORY, 0);
                DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

                if (!d) {
                        if (fd >= 0)
                                close(fd);
                        continue;
                }
                for (struct dirent *de; r >= 0 && (de = readdir(d));)
                        if (unit_is_generator_socket(de->d_name))
                                r = strv_add(&l, &n, de->d_name);
                closedir(d);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}
