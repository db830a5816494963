/* SPDX-License-Identifier: MIT */
/* fs-util: resolution inside a root (openat2 and by hand must agree and never escape), atomic writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "unit.h"

static char top[256] = "/tmp/test-fs-util.XXXXXX";

static void put(const char *rel, const char *text) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", top, rel);
        FILE *f = fopen(p, "w");
        fputs(text, f);
        fclose(f);
}

static void link_(const char *target, const char *rel) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", top, rel);
        if (symlink(target, p) < 0)
                abort();
}

/* What the fd opened for `path` inside the root reads, or "ERR<errno>". */
static char *read_via(int root, const char *path, bool by_hand) {
        static char buf[8][256];
        static int slot;
        char *b = buf[slot++ % 8];
        int fd = by_hand ? open_in_root_by_hand(root, path, O_RDONLY, 0) : open_in_root(root, path, O_RDONLY, 0);
        if (fd < 0) {
                snprintf(b, 256, "ERR%d", -fd);
                return b;
        }
        ssize_t n = read(fd, b, 255);
        close(fd);
        b[n < 0 ? 0 : n] = '\0';
        return b;
}

int main(void) {
        char p[512];
        int root;

        if (!mkdtemp(top))
                return 1;
        snprintf(p, sizeof p, "%s/root", top);
        mkdir(p, 0755);
        strcat(top, "/root");
        mkdir(strcat(strcpy(p, top), "/etc"), 0755);
        mkdir(strcat(strcpy(p, top), "/a"), 0755);
        mkdir(strcat(strcpy(p, top), "/a/b"), 0755);
        put("etc/passwd", "inside\n");
        put("etc/f", "f\n");
        link_("/etc", "a/abs");                            /* absolute: resolved from the root */
        link_("../../etc", "a/b/rel");                     /* relative */
        link_("../../../../../../../etc/passwd", "a/esc"); /* tries to climb out: clamped */
        link_("/a/abs/f", "chain");                        /* a link through a link */
        link_("loop2", "loop1");
        link_("loop1", "loop2");
        link_("/nonexistent", "dangling");

        root = open(top, O_PATH | O_DIRECTORY);
        static const struct {
                const char *path, *want;
        } cases[] = {
                { "/etc/f", "f\n" },
                { "a/abs/f", "f\n" },
                { "a/b/rel/f", "f\n" },
                { "a/esc", "inside\n" }, /* the root's passwd, never the host's */
                { "/../../etc/passwd", "inside\n" },
                { "chain", "f\n" },
                { "a/./b/../abs/f", "f\n" },
                { "loop1", "ERR40" },   /* ELOOP */
                { "dangling", "ERR2" }, /* ENOENT inside the root */
                { "etc/nope", "ERR2" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CHECK_STREQ(read_via(root, cases[i].path, false), cases[i].want, cases[i].path);
                CHECK_STREQ(read_via(root, cases[i].path, true), cases[i].want, cases[i].path);
        }

        /* O_NOFOLLOW on the last component refuses a symlink there, both ways. */
        CHECK_INTEQ(open_in_root(root, "chain", O_RDONLY | O_NOFOLLOW, 0), -ELOOP, "last symlink with O_NOFOLLOW");
        CHECK_INTEQ(open_in_root_by_hand(root, "chain", O_RDONLY | O_NOFOLLOW, 0), -ELOOP, "last symlink with O_NOFOLLOW (by hand)");
        /* with O_DIRECTORY the kernel says ENOTDIR for a symlink: both ways alike */
        CHECK_INTEQ(open_in_root(root, "a/abs", O_RDONLY | O_NOFOLLOW | O_DIRECTORY, 0), -ENOTDIR, "dir symlink with O_NOFOLLOW");
        CHECK_INTEQ(open_in_root_by_hand(root, "a/abs", O_RDONLY | O_NOFOLLOW | O_DIRECTORY, 0), -ENOTDIR,
                    "dir symlink with O_NOFOLLOW (by hand)");

        /* The real path inside the root, as sshd's realpath of a home would be (symlinks resolved in it). */
        static const struct {
                const char *path, *want;
        } reals[] = {
                { "a/abs", "/etc" }, { "a/b/rel/", "/etc" }, { "/a/b/..", "/a" }, { "../..", "/" }, { "/", "/" },
        };
        for (size_t i = 0; i < ELEMENTSOF(reals); i++) {
                _cleanup_free_ char *real = NULL;
                int rfd = open_in_root_realpath(root, reals[i].path, O_PATH | O_DIRECTORY, &real);
                CHECK(rfd >= 0, reals[i].path);
                CHECK_STREQ(real, reals[i].want, reals[i].path);
                if (rfd >= 0)
                        close(rfd);
        }
        _cleanup_free_ char *none = NULL;
        CHECK_INTEQ(open_in_root_realpath(root, "dangling", O_PATH, &none), -ENOENT, "a dangling link has no real path");
        CHECK(!none, "nothing returned on failure");

        /* O_CREAT through an absolute link lands inside the root. */
        int fd = open_in_root_by_hand(root, "a/abs/new", O_WRONLY | O_CREAT | O_EXCL, 0600);
        CHECK(fd >= 0, "create through a link");
        close(fd);
        CHECK(access(strcat(strcpy(p, top), "/etc/new"), F_OK) == 0, "created inside the root's /etc");

        /* write_file_atomic: exact bytes, mode, and no temp file left; stale temps are swept. */
        int dfd = open(strcat(strcpy(p, top), "/etc"), O_RDONLY | O_DIRECTORY);
        CHECK_INTEQ(write_file_atomic(dfd, "out", "abc\n", 4, 0640, (uid_t) -1, (gid_t) -1), 0, "atomic write");
        CHECK_STREQ(read_via(root, "etc/out", false), "abc\n", "atomic write content");
        struct stat st;
        CHECK(fstatat(dfd, "out", &st, 0) == 0 && (st.st_mode & 07777) == 0640, "mode set");
        put("etc/.out.aks-ssh-access-tmp.deadbeef0000", "stale");
        put("etc/.other.aks-ssh-access-tmp.deadbeef0000", "not ours to sweep for 'out'");
        CHECK_INTEQ(remove_stale_temp_files(dfd, "out"), 1, "one stale temp of out removed");
        CHECK(faccessat(dfd, ".other.aks-ssh-access-tmp.deadbeef0000", F_OK, 0) == 0, "other names' temps kept");
        close(dfd);
        close(root);

        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int) (strlen(top) - 5), top);
        if (system(cmd) != 0)
                fprintf(stderr, "cleanup of %s failed\n", top);
        return unit_finish();
}
